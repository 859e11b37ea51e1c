//! How every recorded report reads: its terminal tables and its Markdown, as insta snapshots
//! (tests/snapshots/). A rendering change shows up as a reviewed diff (`cargo insta review`).

use crate::output::read_report;
use crate::render::style::Style;
use crate::scenarios::render_report;

use super::fixtures::fixture_paths;

#[test]
fn every_fixture_renders_as_recorded() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for path in fixture_paths() {
            let report = read_report(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            insta::assert_snapshot!(
                format!("{name}.table"),
                render_report(&report, Style::terminal(false))
            );
            insta::assert_snapshot!(
                format!("{name}.md"),
                render_report(&report, Style::markdown())
            );
        }
    });
}
