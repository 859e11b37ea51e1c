//! Runs scenarios and finishes their reports, the same way for every scenario: in this
//! process or in an isolated child, or (`--from`) by analysing a saved report again; then the
//! verdict, the duration and the host. Lists of scenarios (`inject all`, suites) run here too.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::analyze::verdict;
use crate::context::{RunCtx, RunOptions};
use crate::error::{self, exit};
use crate::isolate::{self, protocol::EventSink};
use crate::probe::nvml_library::{Harness, Setup};
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
    /// gpu-doctor's NVML library for this scenario alone (a suite entry's `replay`, `faults`):
    /// it then runs in a process of its own, which loads the library.
    pub(crate) nvml: Option<Setup>,
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
            nvml: None,
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
        // A saved report of a scenario that is not analysed again is only re-rendered: its
        // params (a COMMAND, inject error's call) are never used, so they need no checking.
        let saved_as_is = (self.from.is_some() || self.example) && !self.scenario.reanalysable();
        if !saved_as_is {
            self.scenario.validate(&params)?;
        }
        if let Some(setup) = &self.nvml {
            setup.check()?;
        }
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

/// No output of a run (`-o`, a scenario's own files such as a Chrome trace) overwrites one of
/// `inputs` (a suite file), a saved report a request reads, or another output.
pub(crate) fn check_paths(
    inputs: &[&Path],
    items: &[Request],
    output: Option<&Path>,
) -> Result<()> {
    let mut inputs: Vec<&Path> = inputs.to_vec();
    let mut seen = HashSet::new();
    for r in items {
        if let Some(p) = &r.from
            && seen.insert(p)
        {
            inputs.push(p);
        }
    }
    let own: Vec<(&'static str, PathBuf)> = items
        .iter()
        .flat_map(|r| r.scenario.outputs(&r.params))
        .collect();
    let mut outputs: Vec<(&str, &Path)> = output.map(|p| ("-o", p)).into_iter().collect();
    outputs.extend(own.iter().map(|(f, p)| (*f, p.as_path())));
    crate::output::check_distinct(&inputs, &outputs)
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
        scenario,
        params,
        nvml,
        ..
    } = request;
    if let Some(setup) = nvml {
        let session = NvmlSession::new(&setup)?;
        let mut report =
            isolate::run_isolated_with_env(scenario.name(), &params, opts, session.env())?;
        fill_host(&mut report);
        session.finish(&mut report);
        return Ok(report);
    }
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
    /// The scenario to run (its registry name).
    #[arg(long)]
    pub scenario: String,
    /// Its params, as JSON.
    #[arg(long)]
    pub params: String,
    /// The run options (devices, quiet, timeout), as JSON.
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
            // A lost GPU has no UUID: it is the same GPU as another report's by its index.
            let known = combined.devices.iter().any(|x| {
                x.uuid == d.uuid || ((x.uuid.is_empty() || d.uuid.is_empty()) && x.index == d.index)
            });
            if !known {
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

/// Adds findings gathered outside a scenario's analysis (the NVML library's) to a finished
/// report: its status gets no better, and a failing one makes it fail.
pub(crate) fn add_findings(report: &mut Report, findings: Vec<Finding>) {
    if findings.is_empty() {
        return;
    }
    if !matches!(report.status, Status::Skipped | Status::Error) {
        report.status = report.status.max(verdict::status_from_findings(&findings));
    }
    report.findings.extend(findings);
}

/// gpu-doctor's NVML as its own library for a run (`--replay` and `--fault` before a
/// command, or a suite entry's `replay` and `faults`): the library, its environment, and what
/// it served, for the report.
pub(crate) struct NvmlSession {
    harness: Harness,
    snapshot: Option<String>,
    recorded: Option<String>,
}

impl NvmlSession {
    /// Checks `setup` (snapshot, faults against its GPUs or the real ones) and prepares the
    /// library; nothing uses it yet.
    pub fn new(setup: &Setup) -> Result<NvmlSession> {
        let snap = setup.check()?;
        if snap.is_none() {
            // Faults on the real driver: a GPU it lacks would never see them.
            let nvml = crate::probe::nvml::NvmlProbe::open()?;
            crate::scenarios::nvml::check_fault_gpus(&setup.faults, &nvml)?;
        }
        let recorded = snap.map(|s| {
            let r = &s.recorded;
            let what = if r.synthetic {
                format!("synthetic, {}", r.note.as_deref().unwrap_or(&r.tool))
            } else {
                format!(
                    "recorded on {} by {}",
                    r.hostname.as_deref().unwrap_or("an unnamed host"),
                    r.tool
                )
            };
            format!("{} GPU(s), {what}", s.gpu_count())
        });
        Ok(NvmlSession {
            harness: Harness::for_self(setup)?,
            snapshot: setup.snapshot.as_ref().map(|p| p.display().to_string()),
            recorded,
        })
    }

    /// The variables that make a child process load the library.
    pub fn env(&self) -> &[(String, std::ffi::OsString)] {
        self.harness.env()
    }

    /// This process (and its children) loads the library from now on.
    ///
    /// # Safety
    /// Call it while the process has one thread: it sets environment variables.
    pub unsafe fn apply_to_self(&self) {
        // SAFETY: the caller guarantees one thread.
        unsafe { self.harness.apply_to_self() };
    }

    /// What the library served, into the report.
    pub fn finish(&self, report: &mut Report) {
        let (events, _) = self.harness.events();
        let (origin, findings) =
            crate::analyze::nvml::origin(self.snapshot.as_deref(), self.recorded.clone(), &events);
        add_findings(report, findings);
        report.nvml = Some(origin);
    }
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
