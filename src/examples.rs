//! A report shipped inside the binary, so `--example` shows what gpu-doctor reports on any
//! machine, from any directory: the full suite recorded on an H100 box
//! (tests/fixtures/h100-suite-full.json), which holds a report of every built-in scenario.

use anyhow::Result;

use crate::report::Report;

/// The recorded suite report, as JSON.
const SUITE: &str = include_str!("../tests/fixtures/h100-suite-full.json");

/// What `--example` says it analyses (a report's `params.from`).
pub const LABEL: &str = "example (tests/fixtures/h100-suite-full.json, built in)";

/// The scenarios the example holds a report of: the commands that take `--example`.
pub const SCENARIOS: &[&str] = &[
    "info",
    "topo",
    "inject oom",
    "inject ctx-destroy",
    "inject stream-misuse",
    "inject illegal-address",
    "trace ctx",
    "bandwidth",
];

/// The example report.
pub fn report() -> Result<Report> {
    crate::output::parse_report(SUITE)
        .map_err(|e| anyhow::anyhow!("the built-in example report does not read: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_holds_a_report_of_every_scenario_it_lists() {
        let r = super::report().unwrap();
        let held: Vec<&str> = r.reports.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(held, super::SCENARIOS);
    }
}
