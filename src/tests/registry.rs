//! The registry is the one list of scenarios: its names are unique, each scenario parses its
//! defaults from an empty command line, renders its own recorded report, and is documented.

use std::collections::BTreeSet;

use clap::Command;

use crate::output::read_report;
use crate::render::style::Style;
use crate::report::Report;
use crate::scenarios::{self, DynScenario, registry};

use super::fixtures::fixture_paths;

#[test]
fn names_are_unique_and_say_what_they_are() {
    let mut seen = BTreeSet::new();
    for s in registry() {
        assert!(seen.insert(s.name()), "{} registered twice", s.name());
        let about = s.about();
        assert!(
            (about.ends_with('.') || about.ends_with('?'))
                && about.chars().next().is_some_and(char::is_uppercase),
            "{}: ABOUT is one sentence: {about:?}",
            s.name()
        );
    }
}

#[test]
fn an_empty_command_line_gives_the_default_params() {
    for s in registry().iter().filter(|s| s.in_cli()) {
        let matches = match s.add_args(Command::new("x")).try_get_matches_from(["x"]) {
            Ok(m) => m,
            // A command that needs arguments (inject error -- COMMAND) has no defaults to run.
            Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => continue,
            Err(e) => panic!("{}: {e}", s.name()),
        };
        let parsed = s.params_from_matches(&matches).unwrap();
        assert_eq!(parsed.scenario, s.name(), "no redirect without flags");
        assert_eq!(
            parsed.params,
            s.normalize_params(serde_json::Value::Null).unwrap(),
            "{}: clap's defaults and Params::default() differ",
            s.name()
        );
    }
}

/// The first report of `s` among the fixtures (a file, or a suite's scenario).
fn recorded(s: &dyn DynScenario) -> Option<Report> {
    fixture_paths().into_iter().find_map(|p| {
        let r = read_report(&p).ok()?;
        std::iter::once(r.clone())
            .chain(r.reports)
            .find(|u| u.scenario == s.name() && u.data.get("skipped_reason").is_none())
    })
}

#[test]
fn every_scenario_renders_its_recorded_report() {
    for s in scenarios::public() {
        let report = recorded(s).unwrap_or_else(|| {
            panic!(
                "{}: no recorded report in tests/fixtures (record one on the device machine)",
                s.name()
            )
        });
        let mut out = String::new();
        s.render(&report, &mut out, Style::terminal(false));
        assert!(
            out.lines().filter(|l| !l.trim().is_empty()).count() >= 3,
            "{}: its own tables are (nearly) empty:\n{out}",
            s.name()
        );
        assert!(!out.contains("could not be read"), "{}:\n{out}", s.name());
    }
}

#[test]
fn every_command_is_in_the_readme_and_the_docs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let docs: String = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    let mut missing = Vec::new();
    for s in registry().iter().filter(|s| s.in_cli()) {
        let command = format!("gpu-doctor {}", s.name());
        if !readme.contains(&command) {
            missing.push(format!("README.md lacks `{command}`"));
        }
        if !docs.contains(&command) {
            missing.push(format!("docs/ lack `{command}`"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Every option and argument of every command says what it is for in `--help`, and every
/// command that takes `--from` shows an example of it.
#[test]
fn every_option_has_a_description_and_every_from_an_example() {
    fn walk(cmd: &Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        if cmd.get_arguments().any(|a| a.get_id() == "from") {
            let examples = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !examples.contains("--from") {
                missing.push(format!("{path}: no --from example"));
            }
        }
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    let mut cmd = crate::cli::command();
    cmd.build();
    walk(&cmd, "gpu-doctor", &mut missing);
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}

/// docs/suites.md names every scenario a suite can run, and only those.
#[test]
fn the_suite_docs_list_every_scenario_name() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/suites.md")).unwrap();
    let line = docs
        .split("- **Scenario names**")
        .nth(1)
        .and_then(|rest| rest.split("\n- ").next())
        .expect("a Scenario names bullet");
    let listed: BTreeSet<&str> = line.split('`').skip(1).step_by(2).collect();
    let public: BTreeSet<&str> = scenarios::public().map(|s| s.name()).collect();
    let extra: Vec<&&str> = listed.difference(&public).collect();
    let missing: Vec<&&str> = public.difference(&listed).collect();
    assert!(missing.is_empty(), "docs/suites.md lacks {missing:?}");
    // Backticked words that are not names (keys, examples) are allowed only as such.
    assert!(
        extra.iter().all(|e| e.contains('=') || e.contains('[')),
        "docs/suites.md lists unknown scenarios {extra:?}"
    );
}
