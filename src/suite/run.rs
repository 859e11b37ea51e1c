//! `gpu-doctor run SUITE`: the scenarios in order, progress on stderr, each report checked
//! against its entry's thresholds; `--check` only lists what would run.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;

use super::{Entry, RunArgs, Suite, load};
use crate::analyze::thresholds;
use crate::context::RunOptions;
use crate::error;
use crate::report::{Report, Status};
use crate::runner::{Request, SavedReports};

/// Checks a scenario's report against the entry's thresholds (analyze::thresholds) and its
/// `required` flag.
pub fn apply_thresholds(report: &mut Report, entry: &Entry, file: &str) {
    thresholds::apply(
        report,
        &entry.thresholds,
        entry.required,
        &format!("{file}:{}", entry.line),
    );
}

/// `gpu-doctor run SUITE`: runs the suite's scenarios in order and returns the combined report
/// (which the caller writes to `output`).
pub fn run(args: &RunArgs, opts: &RunOptions, output: Option<&Path>) -> Result<Report> {
    let suite = load(&args.suite)?;
    // Everything `run` checks before a scenario starts, for every entry: `--check` is exactly
    // this, and a bad value in the last entry stops the run before the first one starts.
    let items = requests(&suite)?;
    // No output of the run (the report, an entry's Chrome trace) overwrites the suite file.
    crate::runner::check_paths(&[&args.suite], &items, output)?;
    if args.check {
        return Ok(plan_report(&suite));
    }
    let params = serde_json::json!({
        "suite": suite.name,
        "file": suite.file,
    });
    let progress = Progress::new(opts, suite.scenarios.len());
    let current = std::cell::Cell::new(0usize);
    let result = crate::runner::execute_list(
        "suite",
        params,
        &items,
        opts,
        |i, s| {
            current.set(i);
            progress.start(s.name());
        },
        |i, r| {
            apply_thresholds(r, &suite.scenarios[i], &suite.file);
            progress.done(i, r);
        },
    );
    progress.finish();
    let mut report = result.map_err(|e| {
        let entry = &suite.scenarios[current.get()];
        e.context(format!(
            "{}:{}: scenario `{}`",
            suite.file,
            entry.line,
            entry.scenario.name()
        ))
    })?;
    report.data = serde_json::json!({ "suite": suite });
    Ok(report)
}

/// Every entry as a checked request (params normalised, program modes followed, values
/// validated); the first error names the entry's line.
fn requests(suite: &Suite) -> Result<Vec<Request>> {
    let mut saved = SavedReports::new();
    suite
        .scenarios
        .iter()
        .map(|e| {
            let mut r = Request::new(e.scenario, e.params.clone());
            r.from = e.from.clone();
            if e.replay.is_some() || !e.faults.is_empty() {
                r.nvml = Some(crate::probe::nvml_library::Setup {
                    snapshot: e.replay.clone(),
                    faults: crate::scenarios::nvml::parse_faults(&e.faults)?,
                });
            }
            r.checked_with(&mut saved).map_err(|err| {
                let msg = format!(
                    "{}:{}: scenario `{}`: {err:#}",
                    suite.file,
                    e.line,
                    e.scenario.name()
                );
                if error::exit_code_of(&err) == error::exit::UNAVAILABLE {
                    error::unavailable(msg)
                } else {
                    error::input(msg)
                }
            })
        })
        .collect()
}

/// What `run --check` prints: the suite's scenarios, none run (each `skipped`); the suite
/// itself passed the check.
fn plan_report(suite: &Suite) -> Report {
    let mut report = Report::begin(
        "suite",
        serde_json::json!({ "suite": suite.name, "file": suite.file, "check": true }),
    );
    for e in &suite.scenarios {
        let r = crate::runner::skipped(e.scenario.name(), &e.params, "not run: --check");
        report.reports.push(r);
    }
    report.status = Status::Pass;
    report.data = serde_json::json!({ "suite": suite });
    report
}

/// Suite progress on stderr: a bar on a terminal, one line per scenario otherwise, nothing
/// with --quiet.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    len: usize,
}

impl Progress {
    fn new(opts: &RunOptions, len: usize) -> Self {
        if opts.quiet {
            return Progress {
                bar: None,
                lines: false,
                len,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "suite [{bar:30}] {pos}/{len} {msg} {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            Progress {
                bar: Some(bar),
                lines: false,
                len,
            }
        } else {
            Progress {
                bar: None,
                lines: true,
                len,
            }
        }
    }

    fn start(&self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_string());
        }
    }

    /// One line per scenario, when it is done (in a log, a line at the start too would only
    /// double the lines): its status and time, or why it was skipped, in a few words.
    fn done(&self, i: usize, r: &Report) {
        let how = match r.data.get("skipped_reason").and_then(|v| v.as_str()) {
            Some(reason) => format!(
                "skipped: {}",
                reason.split([':', ';']).next().unwrap_or(reason).trim()
            ),
            None => format!("{} ({:.0} ms)", r.status.as_str(), r.duration_ms),
        };
        let line = format!("[{}/{}] {}: {how}", i + 1, self.len, r.scenario);
        if let Some(bar) = &self.bar {
            bar.println(line);
            bar.inc(1);
        } else if self.lines {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Finding, Metric, Severity, codes};
    use crate::scenarios;
    use crate::suite::{Bound, Thresholds};

    fn entry(thresholds: Thresholds, required: bool) -> Entry {
        Entry {
            scenario: scenarios::find("info").unwrap(),
            line: 7,
            params: serde_json::json!({}),
            from: None,
            replay: None,
            faults: vec![],
            required,
            thresholds,
        }
    }

    #[test]
    fn thresholds_become_findings_and_status() {
        let mut t = Thresholds {
            severity: Severity::Fail,
            max_duration_ms: Some(100.0),
            ..Default::default()
        };
        t.metrics.insert(
            "bw".into(),
            Bound {
                min: Some(20.0),
                max: None,
            },
        );
        t.metrics.insert(
            "missing".into(),
            Bound {
                min: None,
                max: Some(1.0),
            },
        );
        let mut r = Report::begin("bandwidth", serde_json::json!({}));
        r.duration_ms = 50.0;
        r.metrics.insert(
            "bw.gpu0".into(),
            Metric::new(25.0, "GB/s", crate::report::Better::Higher).device(0),
        );
        r.metrics.insert(
            "bw.gpu1".into(),
            Metric::new(12.5, "GB/s", crate::report::Better::Higher).device(1),
        );
        apply_thresholds(&mut r, &entry(t, false), "s.toml");
        assert_eq!(r.status, Status::Fail);
        let th: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.code == codes::THRESHOLD)
            .collect();
        assert_eq!(th.len(), 2, "{th:?}");
        assert_eq!(th[0].device, Some(1));
        assert_eq!(th[0].severity, Severity::Fail);
        assert!(
            th[0]
                .message
                .contains("bw.gpu1 = 12.500 GB/s, below the suite's min 20"),
            "{}",
            th[0].message
        );
        assert!(th[0].hint.as_deref().unwrap().contains("s.toml:7"));
        assert_eq!(th[1].severity, Severity::Warn);
        assert!(th[1].message.contains("no such metric"));
    }

    #[test]
    fn status_and_duration_limits() {
        let t = Thresholds {
            severity: Severity::Warn,
            max_duration_ms: Some(10.0),
            max_status: Some(Status::Pass),
            ..Default::default()
        };
        let mut r = Report::begin("info", serde_json::json!({}));
        r.duration_ms = 11.0;
        r.findings.push(Finding::new(Severity::Warn, "X", "w"));
        r.status = Status::Warn;
        apply_thresholds(&mut r, &entry(t.clone(), false), "s.toml");
        assert_eq!(r.findings.len(), 3);
        assert_eq!(r.status, Status::Warn);

        let mut ok = Report::begin("info", serde_json::json!({}));
        ok.duration_ms = 9.0;
        apply_thresholds(&mut ok, &entry(t, false), "s.toml");
        assert!(ok.findings.is_empty());
        assert_eq!(ok.status, Status::Pass);
    }

    #[test]
    fn a_required_skipped_scenario_fails_an_optional_one_stays_skipped() {
        let mut r = crate::runner::skipped("info", &serde_json::json!({}), "no GPU");
        apply_thresholds(&mut r, &entry(Thresholds::default(), false), "s.toml");
        assert_eq!(r.status, Status::Skipped);
        apply_thresholds(&mut r, &entry(Thresholds::default(), true), "s.toml");
        assert_eq!(r.status, Status::Fail);
        assert!(r.findings[0].message.contains("no GPU"));
    }
}
