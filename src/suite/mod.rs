//! Suites: TOML files listing scenarios with their params and thresholds (docs/suites.md).
//!
//! A suite is parsed from the spanned TOML tree (`toml::de::DeTable`) so every error names
//! `file:line:column`, what was found and what is allowed. Scenario params are validated by
//! the scenario's own `Params` type (`DynScenario::normalize_params`), the type the command
//! line uses, so suite files and the CLI cannot drift. Thresholds become `THRESHOLD` findings
//! inside the scenario's report and so count towards its status.
//!
//! Files: `parse` (TOML → [`Suite`], errors located by line and column), `hints` (did you
//! mean, params help from the params' JSON schema), `run` (running a suite: progress, the
//! `--check` plan, thresholds applied to each scenario's report).

mod hints;
mod parse;
mod run;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

pub use crate::analyze::thresholds::{Bound, Thresholds};
use crate::error;
use crate::scenarios::DynScenario;

pub use parse::{line_col_of, parse};
pub use run::run;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Suite file (TOML), e.g. scenarios/quick.toml. Format: docs/suites.md.
    #[arg(value_name = "SUITE.toml")]
    pub suite: PathBuf,
    /// Only check the suite file and list what it would run (no GPU needed).
    #[arg(long)]
    pub check: bool,
}

/// A parsed, validated suite.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub file: String,
    pub scenarios: Vec<Entry>,
}

/// One `[[scenario]]` of a suite.
#[derive(Clone, Serialize)]
pub struct Entry {
    #[serde(rename = "name", serialize_with = "ser_scenario")]
    pub scenario: &'static dyn DynScenario,
    /// Line of the `[[scenario]]` header in the suite file.
    pub line: usize,
    /// Normalised params (every field, defaults filled in).
    pub params: serde_json::Value,
    /// A saved report to analyse instead of probing (`from = "x.json"`, also accepted under
    /// `[scenario.params]`, where earlier versions took it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// Run the scenario on this recorded machine (`replay = "box.nvml.json"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// NVML faults for this scenario (`faults = ["gpu-lost@gpu1"]`), docs/nvml.md.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// A skipped run of a required scenario is a failure.
    pub required: bool,
    #[serde(skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("scenario", &self.scenario.name())
            .field("line", &self.line)
            .field("params", &self.params)
            .field("required", &self.required)
            .field("thresholds", &self.thresholds)
            .finish()
    }
}

fn ser_scenario<S: serde::Serializer>(
    s: &&'static dyn DynScenario,
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

/// A problem in a suite file, located by line and column (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl SuiteError {
    pub fn display(&self, file: &str) -> String {
        format!("{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Reads and validates a suite file: every problem is an input error (exit 2) naming
/// `file:line:column`.
pub fn load(path: &Path) -> Result<Suite> {
    let file = path.display().to_string();
    if let Err(e) = std::fs::metadata(path) {
        return Err(error::input(format!(
            "{file}: cannot read suite file: {e} (shipped suites: scenarios/quick.toml, scenarios/full.toml, scenarios/ci.toml)"
        )));
    }
    let bytes = crate::output::read_bounded(path, "a suite file")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col_of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        error::input(format!(
            "{file}:{line}:{column}: the suite file is not UTF-8 text"
        ))
    })?;
    parse(&text, &file).map_err(|e| error::input(e.display(&file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::thresholds::metric_matches;
    use crate::scenarios;

    #[test]
    fn per_device_metric_names_match_their_base() {
        assert!(metric_matches("bw", "bw"));
        assert!(metric_matches("bw", "bw.gpu12"));
        assert!(!metric_matches("bw", "bw.gpu"));
        assert!(!metric_matches("bw", "bw_x"));
        assert!(!metric_matches("bw", "bw.gpu1x"));
    }

    #[test]
    fn shipped_suites_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for name in ["quick", "full", "ci"] {
            let s = load(&dir.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(s.name, name);
        }
        let full = load(&dir.join("full.toml")).unwrap();
        // Program mode runs the user's own COMMAND: a shipped suite cannot name one. `health`
        // is the node check made of info, topo and a quick kernel for schedulers: full.toml
        // runs its parts.
        let needs_program = [
            "inject oom --",
            "inject error",
            "trace ctx --",
            "inject nvml",
            "replay",
            "health",
            "leak-check",
        ];
        for s in scenarios::registry()
            .iter()
            .filter(|s| !s.internal() && !needs_program.contains(&s.name()))
        {
            assert!(
                full.scenarios.iter().any(|e| e.scenario.name() == s.name()),
                "full.toml lacks {}",
                s.name()
            );
        }
    }
}
