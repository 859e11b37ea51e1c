//! Runs scenarios and finishes their reports, the same way for every scenario: in this
//! process or in an isolated child, or (`--from`) by analysing a saved report again; then the
//! verdict, the duration and the host. Lists of scenarios (`inject all`, suites) run here too.

use std::collections::HashMap;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::analyze::verdict;
use crate::context::{RunCtx, RunOptions};
use crate::error::{self, exit};
use crate::isolate::{self, protocol::EventSink};
use crate::probe::{loader, nvml};
use crate::report::{Finding, Report, Severity, Status, codes};
use crate::scenarios::{self, DynScenario};

/// One scenario to run: which, with what params (JSON, normalised by the scenario), and
/// whether from a saved report (a file, or the example built into the binary) instead of the
/// GPU.
#[derive(Clone)]
pub struct Request {
    pub(crate) scenario: &'static dyn DynScenario,
    pub(crate) params: serde_json::Value,
    pub(crate) from: Option<PathBuf>,
    /// `--example`: the report built into the binary (crate::examples).
    pub(crate) example: bool,
    /// The saved report `from` names, read once by [`Request::checked`].
    saved: Option<Arc<Report>>,
    /// [`Request::checked`] has run.
    checked: bool,
}

/// Saved reports already read, by path: a suite whose entries share a `from` file reads it
/// once.
pub(crate) type SavedReports = HashMap<PathBuf, Arc<Report>>;

impl Request {
    pub(crate) fn new(scenario: &'static dyn DynScenario, params: serde_json::Value) -> Self {
        Request {
            scenario,
            params,
            from: None,
            example: false,
            saved: None,
            checked: false,
        }
    }

    /// Normalises the params (defaults filled in, unknown or mistyped fields refused),
    /// validates them, and reads the saved report of `--from` (it must hold a readable report
    /// of the scenario): everything that can be checked before a GPU is touched. Suites call it
    /// for every entry before the first one runs. (Program-mode redirects are followed when the
    /// command line is read: `crate::cli`.)
    pub(crate) fn checked(self) -> Result<Request> {
        self.checked_with(&mut SavedReports::new())
    }

    /// [`Request::checked`], reading each saved report once across calls.
    pub(crate) fn checked_with(self, saved_reports: &mut SavedReports) -> Result<Request> {
        let name = self.scenario.name();
        let params = self
            .scenario
            .normalize_params(self.params)
            .map_err(|e| error::input(format!("{name}: {e}")))?;
        self.scenario.validate(&params)?;
        let saved = match (&self.from, self.example) {
            (Some(path), _) => {
                let saved = match saved_reports.get(path) {
                    Some(r) => r.clone(),
                    None => {
                        let r = Arc::new(crate::output::read_report(path)?);
                        saved_reports.insert(path.clone(), r.clone());
                        r
                    }
                };
                check_saved(self.scenario, &params, &saved, &path.display().to_string())?;
                Some(saved)
            }
            (None, true) => {
                let saved = Arc::new(crate::examples::report()?);
                check_saved(self.scenario, &params, &saved, "the example")?;
                Some(saved)
            }
            (None, false) => None,
        };
        Ok(Request {
            params,
            saved,
            checked: true,
            ..self
        })
    }

    /// What `params.from` records for a re-analysis.
    fn source_label(&self) -> Option<String> {
        match (&self.from, self.example) {
            (Some(p), _) => Some(p.display().to_string()),
            (None, true) => Some(crate::examples::LABEL.to_string()),
            (None, false) => None,
        }
    }
}

/// Runs one scenario and returns its finished report.
pub(crate) fn execute(request: Request, opts: &RunOptions) -> Result<Report> {
    let request = if request.checked {
        request
    } else {
        request.checked()?
    };
    if let (Some(saved), Some(label)) = (&request.saved, request.source_label()) {
        return reanalyse(request.scenario, &request.params, saved, &label);
    }
    let Request {
        scenario, params, ..
    } = request;
    if scenario.isolated() && !isolate::in_child() {
        // Fail fast, with the clear message, where the child could not run at all.
        if scenario.needs_cuda() {
            loader::check_cuda_present()?;
        }
        let mut opts = opts.clone();
        opts.timeout += scenario.planned_wait(&params);
        let mut report = isolate::run_isolated(scenario.name(), &params, &opts)?;
        fill_host(&mut report);
        return Ok(report);
    }
    let ctx = RunCtx::new(opts.clone(), EventSink::none());
    run_in_process(scenario, &params, &ctx)
}

/// Runs the scenario named `name` as the command line would (for tests in the crate).
#[cfg(test)]
pub(crate) fn execute_named(
    name: &str,
    params: serde_json::Value,
    from: Option<&Path>,
    opts: &RunOptions,
) -> Result<Report> {
    let scenario = scenarios::find(name).expect("a registered scenario");
    let mut request = Request::new(scenario, params);
    request.from = from.map(Path::to_path_buf);
    execute(request, opts)
}

fn run_in_process(
    scenario: &dyn DynScenario,
    params: &serde_json::Value,
    ctx: &RunCtx,
) -> Result<Report> {
    let started = Instant::now();
    let mut report = scenario.run(params, ctx)?;
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    report.interrupted |= crate::context::interrupted();
    verdict::finalize(&mut report);
    fill_host(&mut report);
    Ok(report)
}

/// The saved report itself, then a suite's reports in it.
fn candidates(saved: &Report) -> impl Iterator<Item = &Report> {
    std::iter::once(saved).chain(&saved.reports)
}

/// Checks that `saved` (named `label`) holds a readable report of `scenario`.
fn check_saved(
    scenario: &dyn DynScenario,
    params: &serde_json::Value,
    saved: &Report,
    label: &str,
) -> Result<()> {
    match candidates(saved).find_map(|r| scenario.reads_saved(params, r)) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(error::input(format!(
            "{label}: {}: {e}",
            crate::report::a_report(scenario.name())
        ))),
        None => Err(error::input(not_found(scenario.name(), saved, label))),
    }
}

/// `--from`: the scenario's report in `saved` (the report itself, or one of a suite's
/// reports), analysed again with `params`. Its host, devices, steps and duration are the
/// recorded ones.
fn reanalyse(
    scenario: &dyn DynScenario,
    params: &serde_json::Value,
    saved: &Report,
    label: &str,
) -> Result<Report> {
    let bad = |e: anyhow::Error| error::input(format!("{label}: {e:#}"));
    let mut report = candidates(saved)
        .find_map(|r| scenario.reanalyse(params, r))
        .ok_or_else(|| error::input(not_found(scenario.name(), saved, label)))?
        .map_err(bad)?;
    if let Some(obj) = report.params.as_object_mut() {
        obj.insert("from".into(), label.into());
    }
    verdict::finalize(&mut report);
    Ok(report)
}

/// Why a saved report holds nothing for `scenario`.
fn not_found(scenario: &str, saved: &Report, label: &str) -> String {
    let holds: Vec<&str> = saved.reports.iter().map(|r| r.scenario.as_str()).collect();
    let wanted = crate::report::a_report(scenario);
    if holds.is_empty() {
        format!(
            "{label}: {}, not {wanted}",
            crate::report::a_report(&saved.scenario)
        )
    } else {
        format!(
            "{label}: {} whose scenarios ({}) include no '{scenario}' report",
            crate::report::a_report(&saved.scenario),
            holds.join(", ")
        )
    }
}

/// Host facts NVML did not already fill (hostname and kernel need no driver).
fn fill_host(report: &mut Report) {
    if report.host.hostname.is_empty() {
        report.host.hostname = nvml::host_name();
    }
    if report.host.kernel.is_empty() {
        report.host.kernel = nvml::kernel_release();
    }
}

/// The hidden `__child` command's arguments: what the parent of an isolated run passes.
#[derive(Debug, Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub params: String,
    #[arg(long)]
    pub options: String,
}

/// The hidden `__child` command: run one scenario, stream events on stdout, report last.
/// Errors go to stderr with their exit code; the parent turns them into its own.
pub(crate) fn child_main(args: &ChildArgs) -> Result<i32> {
    let scenario = scenarios::find(&args.scenario)
        .ok_or_else(|| error::input(format!("unknown scenario {}", args.scenario)))?;
    let params: serde_json::Value = serde_json::from_str(&args.params)?;
    let opts: RunOptions = serde_json::from_str(&args.options)?;
    let ctx = RunCtx::new(opts, EventSink::stdout());
    let report = run_in_process(scenario, &params, &ctx)?;
    ctx.announce(&isolate::Event::Report {
        report: Box::new(report),
    });
    Ok(exit::OK)
}

/// `gpu-doctor inject all`: every scenario that joins it, default params, one combined report.
/// A scenario the box cannot serve is `skipped`; when none could run, that is the command's
/// answer (exit 3), not an empty pass.
pub(crate) fn execute_inject_all(opts: &RunOptions) -> Result<Report> {
    let items: Vec<Request> = scenarios::registry()
        .iter()
        .filter(|s| s.in_inject_all())
        .map(|s| Request::new(*s, serde_json::Value::Null))
        .collect();
    let names: Vec<&str> = items.iter().map(|r| r.scenario.name()).collect();
    let report = execute_list(
        "inject all",
        serde_json::json!({ "scenarios": names }),
        &items,
        opts,
        |_, _| {},
        |_, _| {},
    )?;
    if report.status == Status::Skipped {
        return Err(error::unavailable(skipped_reason(&report)));
    }
    Ok(report)
}

/// Runs a list of requests and combines the reports: `before(i, scenario)` as item `i` starts,
/// `after(i, report)` once its report is final (a suite applies its thresholds there). Errors
/// that mean "cannot run here" turn into a skipped report with the reason; an internal error of
/// one scenario becomes an `error` report with a `SCENARIO_ERROR` finding, so the others still
/// run; input errors stop the run.
pub(crate) fn execute_list(
    name: &str,
    params: serde_json::Value,
    items: &[Request],
    opts: &RunOptions,
    mut before: impl FnMut(usize, &dyn DynScenario),
    mut after: impl FnMut(usize, &mut Report),
) -> Result<Report> {
    let started = Instant::now();
    let mut combined = Report::begin(name, params);
    for (i, item) in items.iter().enumerate() {
        if crate::context::interrupted() {
            combined.interrupted = true;
            break;
        }
        before(i, item.scenario);
        let item_started = Instant::now();
        let mut report = match execute(item.clone(), opts) {
            Ok(r) => r,
            Err(e) if error::exit_code_of(&e) == exit::UNAVAILABLE => {
                skipped(item.scenario.name(), &item.params, &e.to_string())
            }
            Err(e) if error::exit_code_of(&e) == exit::INTERNAL => {
                let mut r = errored(item.scenario.name(), &item.params, &format!("{e:#}"));
                r.duration_ms = item_started.elapsed().as_secs_f64() * 1e3;
                r
            }
            Err(e) => return Err(e),
        };
        after(i, &mut report);
        if combined.host.driver_version.is_none() {
            combined.host = report.host.clone();
        }
        for d in &report.devices {
            if !combined.devices.iter().any(|x| x.uuid == d.uuid) {
                combined.devices.push(d.clone());
            }
        }
        combined.interrupted |= report.interrupted;
        combined.reports.push(report);
    }
    combined.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    combined.status = combined
        .reports
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != Status::Skipped)
        .max()
        .unwrap_or(Status::Skipped);
    fill_host(&mut combined);
    Ok(combined)
}

/// Why a report (or the first of a combined report's scenarios) was skipped.
pub fn skipped_reason(report: &Report) -> String {
    std::iter::once(report)
        .chain(report.reports.iter())
        .find_map(|r| r.data.get("skipped_reason").and_then(|v| v.as_str()))
        .unwrap_or("nothing could run on this machine")
        .to_string()
}

/// A report for a scenario that stopped with an internal error (a bug or an unexpected
/// failure of gpu-doctor itself, not of the GPU).
pub(crate) fn errored(name: &str, params: &serde_json::Value, message: &str) -> Report {
    let mut r = Report::begin(name, params.clone());
    r.status = Status::Error;
    r.findings.push(
        Finding::new(
            Severity::Fail,
            codes::SCENARIO_ERROR,
            format!("the scenario stopped with an internal error: {message}"),
        )
        .hint("This is a gpu-doctor problem rather than a GPU one; please report it with this report attached."),
    );
    fill_host(&mut r);
    r
}

/// A report for a scenario that could not run on this box.
pub(crate) fn skipped(name: &str, params: &serde_json::Value, reason: &str) -> Report {
    let mut r = Report::begin(name, params.clone());
    r.status = Status::Skipped;
    r.data = serde_json::json!({ "skipped_reason": reason });
    fill_host(&mut r);
    r
}
