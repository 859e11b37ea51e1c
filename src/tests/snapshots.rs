//! How every recorded report reads: its terminal tables (80 columns) and its Markdown, as insta
//! snapshots (tests/snapshots/). A rendering change shows up as a reviewed diff
//! (`cargo insta review`). And every line of every terminal rendering of every fixture — as
//! recorded, analysed again (`--from`), and with `--verbose` — fits 80 columns.

use crate::output::read_report;
use crate::render::style::Style;
use crate::report::Report;
use crate::scenarios::render_report;

use super::fixtures::{fixture_paths, fixtures_dir};

const WIDTH: usize = 80;

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
                render_report(&report, Style::terminal(false).with_width(Some(WIDTH)))
            );
            insta::assert_snapshot!(
                format!("{name}.md"),
                render_report(&report, Style::markdown())
            );
        }
    });
}

/// Program mode's own tables (src/render/program.rs) are not yet designed for 80 columns:
/// for these scenarios only the parts every report shares are checked. Remove a name once its
/// tables fit.
const OWN_TABLES_NOT_YET_80: &[&str] = &["inject oom --", "inject error", "trace ctx --"];

/// What is checked for `report`: the whole rendering, or for the scenarios above the header
/// and the generic sections.
fn rendering(report: &Report, style: Style) -> String {
    if !OWN_TABLES_NOT_YET_80.contains(&report.scenario.as_str()) {
        return render_report(report, style);
    }
    let mut out = String::new();
    crate::render::report::header(&mut out, report, style);
    crate::render::report::sections(&mut out, report, style, false);
    out
}

/// The lines of `text` wider than [`WIDTH`], with where they come from.
fn too_wide(what: &str, text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.chars().count() > WIDTH)
        .map(|l| format!("{what}: {} columns: {l}", l.chars().count()))
        .collect()
}

#[test]
fn every_table_of_every_fixture_fits_80_columns() {
    let style = Style::terminal(false).with_width(Some(WIDTH));
    let mut wide = Vec::new();
    for path in fixture_paths() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let report = read_report(&path).unwrap();
        for (how, s) in [("", style), (" --verbose", style.with_verbose(true))] {
            wide.extend(too_wide(&format!("{name}{how}"), &rendering(&report, s)));
        }
        // Analysed again, as `--from` shows it (a derived fixture's views are recomputed).
        for r in std::iter::once(&report).chain(&report.reports) {
            let Some(s) = crate::scenarios::find(&r.scenario) else {
                continue;
            };
            let again = crate::runner::execute_named(
                s.name(),
                serde_json::Value::Null,
                Some(&path),
                &Default::default(),
            );
            if let Ok(again) = again {
                wide.extend(too_wide(
                    &format!("{name} --from ({})", r.scenario),
                    &rendering(&again, style),
                ));
            }
        }
    }
    assert!(wide.is_empty(), "{}", wide.join("\n"));
}

#[test]
fn text_from_reports_cannot_drive_the_terminal() {
    let mut report = read_report(&fixtures_dir().join("h100-topo.json")).unwrap();
    let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}evil\u{202e}gpj.exe\u{9b}31m";
    report.findings.push(
        crate::report::Finding::new(
            crate::report::Severity::Fail,
            "PCIE_WIDTH_DEGRADED",
            format!("link {hostile}"),
        )
        .hint(hostile),
    );
    report.host.hostname = hostile.into();
    report.devices[0].name = hostile.into();
    for style in [
        Style::terminal(false),
        Style::terminal(true),
        Style::markdown(),
    ] {
        let text = render_report(&report, style);
        // Colour (ESC [ … m) is ours; no other control or bidirectional override gets out.
        let without_colour = strip_sgr(&text);
        let bad: Vec<char> = without_colour
            .chars()
            .filter(|&c| crate::render::text::is_hostile(c))
            .collect();
        assert!(bad.is_empty(), "{bad:?} in\n{text}");
        assert!(text.contains("\\u{1b}[2J"), "shown escaped:\n{text}");
        assert!(text.contains("\\u{202e}"), "shown escaped:\n{text}");
    }
}

/// `text` without the SGR colour sequences comfy-table writes.
fn strip_sgr(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\u{1b}[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(|c: char| !(c.is_ascii_digit() || c == ';')) {
            Some(j) if after[j..].starts_with('m') => rest = &after[j + 1..],
            _ => {
                out.push_str(&rest[i..i + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
