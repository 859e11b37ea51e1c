//! Scenarios: one file each, all implementing [`Scenario`], plus one line in [`registry`].
//!
//! A scenario carries its whole pipeline: its name and parameters (one `Params` type for the
//! command line, suite files and reports, defaults written once in its `Default`), the typed
//! facts it gathers (`Data`), its `probe` (the only part that touches the GPU, through
//! `crate::probe`), its pure `analyze` (through `crate::analyze`), and its `render` (through
//! `crate::render`). The runner (`crate::runner`) does the plumbing every scenario shares:
//! isolation in a child process, the report skeleton (host, devices, steps, timing), the
//! verdict, and `--from` (re-analysing a saved report). The command line (`crate::cli`), suites
//! (`crate::suite`) and `inject all` find scenarios here, never by a list of their own.
//!
//! Adding a scenario: write `src/scenarios/NAME.rs` with a unit struct implementing
//! [`Scenario`], and add `entry::<NAME::Struct>()` to [`registry`]. Its finding codes go in
//! `crate::report::codes`, its docs in docs/. See docs/design.md.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{ArgMatches, Args, FromArgMatches};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use crate::context::RunCtx;
use crate::error::input;
use crate::render::style::Style;
use crate::report::{Analysis, DeviceInfo, Finding, Host, Report, codes};

pub(crate) mod bandwidth;
pub(crate) mod ctx_destroy;
pub(crate) mod fragmentation;
pub(crate) mod health;
pub(crate) mod illegal_address;
pub(crate) mod info;
pub(crate) mod leak_check;
pub(crate) mod nvml;
pub(crate) mod oom;
pub(crate) mod program;
pub(crate) mod stream_misuse;
pub(crate) mod topo;
pub(crate) mod trace_ctx;
pub(crate) mod watch;

/// What a probe hands back: its typed facts, and where they come from. The steps it made are
/// recorded in the [`RunCtx`] as they happen.
pub(crate) struct Probed<D> {
    pub data: D,
    pub host: Host,
    pub devices: Vec<DeviceInfo>,
    /// Findings the probe observed rather than concluded (a sub-process that crashed), in the
    /// order they came; analysis findings follow them.
    pub findings: Vec<Finding>,
}

impl<D> Probed<D> {
    pub fn new(data: D, host: Host, devices: Vec<DeviceInfo>) -> Self {
        Probed {
            data,
            host,
            devices,
            findings: Vec::new(),
        }
    }
}

/// The scenario that serves a command line, with its params: the command's own, or another
/// (program mode: `inject oom --limit … -- CMD` is the `inject oom --` scenario).
pub(crate) struct Redirect {
    pub scenario: &'static str,
    pub params: serde_json::Value,
}

/// How a command line's run of a scenario ends: its report, as usual, or one line for another
/// program to read (node-problem-detector) with the exit code that program expects.
pub(crate) enum Finished {
    Report(Report),
    Line {
        /// The report, when there is one (written with `-o`).
        report: Option<Report>,
        text: String,
        code: i32,
    },
}

/// One scenario: what it takes, what it gathers, how it judges and shows it.
pub(crate) trait Scenario: Send + Sync + 'static {
    /// Parameters, shared by the command line (clap), suite files and reports (serde). Their
    /// `Default` is the one place defaults are written: clap attributes read it.
    type Params: Args
        + FromArgMatches
        + Serialize
        + DeserializeOwned
        + JsonSchema
        + Default
        + Debug
        + Clone
        + Send
        + Sync;
    /// The facts the probe gathers and analysis completes (views, summaries); stored as the
    /// report's `data`, so `--from` can analyse them again on any machine.
    type Data: Serialize + DeserializeOwned + Debug;

    /// The name in reports and suites; its words are the command (`inject oom`).
    const NAME: &'static str;
    /// One line for `--help` and suite listings.
    const ABOUT: &'static str;
    /// Examples for `--help`, one command per line.
    const EXAMPLES: &'static str = "";
    /// Destructive scenarios run in a re-executed child process (crate::isolate).
    const ISOLATED: bool = false;
    /// Needs the CUDA driver, not only NVML (checked before a child is started).
    const NEEDS_CUDA: bool = false;
    /// Part of `gpu-doctor inject all`.
    const IN_INJECT_ALL: bool = false;
    /// Has a command of its own (program modes are reached through their built-in's command).
    const IN_CLI: bool = true;
    /// A part of another scenario, run in a process of its own: no command, not in suites.
    const INTERNAL: bool = false;
    /// Its own tables show every metric it reports (the generic Metrics table would repeat
    /// them; it is shown with --verbose).
    const METRICS_IN_TABLES: bool = false;
    /// Its `Data` holds everything `analyze` reads, so `--from` re-runs the verdicts. When not
    /// (program modes keep a digest of the program's events), `--from` re-renders the saved
    /// findings.
    const REANALYSABLE: bool = true;
    /// Streams JSON lines while it runs (`watch --json`): its report is then printed as one
    /// more line, not as pretty JSON.
    const JSON_LINES: bool = false;

    /// Checks params beyond their types (ranges, combinations, writable paths) before anything
    /// runs: bad input is exit 2 before a child process or the driver is started.
    fn validate(_params: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// Time the scenario deliberately waits with these params (`inject oom --hold`): the runner
    /// adds it to an isolated child's timeout.
    fn planned_wait(_params: &Self::Params) -> Duration {
        Duration::ZERO
    }

    /// Another scenario serves these params (see [`Redirect`]); None for this one. Followed
    /// when the command line is read: the flags that redirect are not in the params' JSON.
    fn redirect(_params: &Self::Params) -> Option<Result<Redirect>> {
        None
    }

    /// Gathers the facts: the only part that touches NVML or CUDA.
    fn probe(params: &Self::Params, ctx: &RunCtx) -> Result<Probed<Self::Data>>;

    /// Judges the facts (no I/O): findings and metrics, and the derived parts of `data`
    /// (views, summaries). `run` is the report so far: host, devices, steps.
    fn analyze(params: &Self::Params, data: &mut Self::Data, run: &Report) -> Analysis;

    /// The data of this scenario in a saved report: None when `saved` is not one of its
    /// reports, an error when it is but the data does not read.
    fn saved_data(_params: &Self::Params, saved: &Report) -> Option<Result<Self::Data, String>> {
        (saved.scenario == Self::NAME)
            .then(|| serde_json::from_value(saved.data.clone()).map_err(|e| format!("data: {e}")))
    }

    /// The files [`Scenario::write_outputs`] writes with these params, by flag
    /// (`("--chrome-trace", path)`): checked before anything runs, against the inputs and the
    /// other outputs.
    fn outputs(_params: &Self::Params) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }

    /// Files the params ask for besides the report (a Chrome trace), written once the report is
    /// complete.
    fn write_outputs(_params: &Self::Params, _data: &Self::Data, _report: &Report) -> Result<()> {
        Ok(())
    }

    /// The scenario's own tables, between the report's header and its generic sections.
    fn render(data: &Self::Data, report: &Report, out: &mut String, style: Style);

    /// What the command line's run ends with, from the runner's result: the report as it is
    /// for most scenarios. `health` acts on it for a scheduler here (drains the node in Slurm,
    /// answers node-problem-detector in one line, applies `--on-error`). Suites do not call it.
    fn finish(_params: &Self::Params, result: Result<Report>) -> Result<Finished> {
        result.map(Finished::Report)
    }
}

/// Object-safe view of a [`Scenario`] with params as JSON, for the registry.
pub(crate) trait DynScenario: Send + Sync {
    fn name(&self) -> &'static str;
    fn about(&self) -> &'static str;
    fn examples(&self) -> &'static str;
    fn isolated(&self) -> bool;
    fn needs_cuda(&self) -> bool;
    fn in_inject_all(&self) -> bool;
    fn in_cli(&self) -> bool;
    fn internal(&self) -> bool;
    /// See [`Scenario::METRICS_IN_TABLES`].
    fn metrics_in_tables(&self) -> bool;
    /// See [`Scenario::JSON_LINES`].
    fn json_lines(&self) -> bool;
    /// See [`Scenario::REANALYSABLE`].
    fn reanalysable(&self) -> bool;
    /// The params' flags, added to `command`.
    fn add_args(&self, command: clap::Command) -> clap::Command;
    /// The scenario the command line asks for and its params as JSON: this one, or the one its
    /// params redirect to (program mode). Redirects are followed here, on the typed params:
    /// the flags that ask for them are not part of the params' JSON.
    fn params_from_matches(&self, matches: &ArgMatches) -> Result<Redirect, clap::Error>;
    /// Validates and normalises params given as JSON (suite files, the child command line):
    /// unknown fields and wrong types are errors; missing fields take their defaults.
    fn normalize_params(&self, params: serde_json::Value) -> Result<serde_json::Value, String>;
    fn params_schema(&self) -> serde_json::Value;
    /// See [`Scenario::validate`].
    fn validate(&self, params: &serde_json::Value) -> Result<()>;
    /// See [`Scenario::planned_wait`].
    fn planned_wait(&self, params: &serde_json::Value) -> Duration;
    /// See [`Scenario::outputs`].
    fn outputs(&self, params: &serde_json::Value) -> Vec<(&'static str, PathBuf)>;
    /// Whether `saved` is a report of this scenario whose data reads (None: not one of its
    /// reports): what `--from` needs, checked before anything runs.
    fn reads_saved(&self, params: &serde_json::Value, saved: &Report)
    -> Option<Result<(), String>>;
    /// Probes and analyses in this process; the runner finishes the report.
    fn run(&self, params: &serde_json::Value, ctx: &RunCtx) -> Result<Report>;
    /// Analyses the data of `saved` again with `params` (`--from`); None when `saved` is not a
    /// report of this scenario.
    fn reanalyse(&self, params: &serde_json::Value, saved: &Report) -> Option<Result<Report>>;
    /// The scenario's tables for a report of it.
    fn render(&self, report: &Report, out: &mut String, style: Style);
    /// See [`Scenario::finish`].
    fn finish(&self, params: &serde_json::Value, result: Result<Report>) -> Result<Finished>;
}

struct Erased<S>(std::marker::PhantomData<S>);

/// A number given on the command line that is not finite (`nan`, `inf`) serialises to JSON
/// null: caught here, for every float flag of every scenario, before a null can read as "not
/// set" (a NaN threshold would silently disable its check).
fn refuse_non_finite(matches: &ArgMatches, params: &serde_json::Value) -> Result<(), clap::Error> {
    for id in matches.ids() {
        let id = id.as_str();
        if matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        if params.get(id).is_some_and(serde_json::Value::is_null) {
            let given = matches
                .get_raw(id)
                .and_then(|mut v| v.next())
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "--{}: '{given}' is not a finite number\n",
                    id.replace('_', "-")
                ),
            ));
        }
    }
    Ok(())
}

fn typed<S: Scenario>(params: &serde_json::Value) -> Result<S::Params> {
    serde_json::from_value(params.clone())
        .map_err(|e| input(format!("{}: bad params: {e}", S::NAME)))
}

impl<S: Scenario> DynScenario for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn about(&self) -> &'static str {
        S::ABOUT
    }
    fn examples(&self) -> &'static str {
        S::EXAMPLES
    }
    fn isolated(&self) -> bool {
        S::ISOLATED
    }
    fn needs_cuda(&self) -> bool {
        S::NEEDS_CUDA
    }
    fn in_inject_all(&self) -> bool {
        S::IN_INJECT_ALL
    }
    fn in_cli(&self) -> bool {
        S::IN_CLI && !S::INTERNAL
    }
    fn internal(&self) -> bool {
        S::INTERNAL
    }
    fn metrics_in_tables(&self) -> bool {
        S::METRICS_IN_TABLES
    }
    fn json_lines(&self) -> bool {
        S::JSON_LINES
    }
    fn reanalysable(&self) -> bool {
        S::REANALYSABLE
    }
    fn add_args(&self, command: clap::Command) -> clap::Command {
        S::Params::augment_args(command)
    }
    fn params_from_matches(&self, matches: &ArgMatches) -> Result<Redirect, clap::Error> {
        // With a saved report the flags a run needs are optional (cli.rs): the params are
        // the defaults with what was given.
        let saved = matches!(matches.try_get_one::<PathBuf>("from"), Ok(Some(_)))
            || matches!(matches.try_get_one::<bool>("example"), Ok(Some(true)));
        let p = if saved {
            let mut p = S::Params::default();
            p.update_from_arg_matches(matches)?;
            p
        } else {
            S::Params::from_arg_matches(matches)?
        };
        let served = match S::redirect(&p) {
            Some(r) => r.map_err(|e| {
                clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e:#}\n"))
            })?,
            None => Redirect {
                scenario: S::NAME,
                params: serde_json::to_value(p).expect("params serialise"),
            },
        };
        refuse_non_finite(matches, &served.params)?;
        Ok(served)
    }
    fn normalize_params(&self, params: serde_json::Value) -> Result<serde_json::Value, String> {
        let params = if params.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            params
        };
        let typed: S::Params = serde_json::from_value(params).map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(typed).expect("params serialise"))
    }
    fn params_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(S::Params)).expect("schema serialises")
    }
    fn validate(&self, params: &serde_json::Value) -> Result<()> {
        S::validate(&typed::<S>(params)?)
    }
    fn planned_wait(&self, params: &serde_json::Value) -> Duration {
        typed::<S>(params)
            .map(|p| S::planned_wait(&p))
            .unwrap_or_default()
    }
    fn outputs(&self, params: &serde_json::Value) -> Vec<(&'static str, PathBuf)> {
        typed::<S>(params)
            .map(|p| S::outputs(&p))
            .unwrap_or_default()
    }
    fn reads_saved(
        &self,
        params: &serde_json::Value,
        saved: &Report,
    ) -> Option<Result<(), String>> {
        match typed::<S>(params) {
            Ok(p) => S::saved_data(&p, saved).map(|d| d.map(|_| ())),
            Err(e) => Some(Err(e.to_string())),
        }
    }
    fn run(&self, params: &serde_json::Value, ctx: &RunCtx) -> Result<Report> {
        let p = typed::<S>(params)?;
        let probed = S::probe(&p, ctx)?;
        let mut report = Report::begin(S::NAME, params.clone());
        report.host = probed.host;
        report.devices = probed.devices;
        report.steps = ctx.take_steps();
        report.interrupted = ctx.interrupted();
        report.findings = probed.findings;
        let mut data = probed.data;
        let analysis = S::analyze(&p, &mut data, &report);
        report.findings.extend(analysis.findings);
        report.metrics.extend(analysis.metrics);
        report.data = serde_json::to_value(&data)?;
        S::write_outputs(&p, &data, &report)?;
        Ok(report)
    }
    fn reanalyse(&self, params: &serde_json::Value, saved: &Report) -> Option<Result<Report>> {
        let p = match typed::<S>(params) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let data = S::saved_data(&p, saved)?;
        Some((|| {
            let mut data =
                data.map_err(|e| input(format!("{}: {e}", crate::report::a_report(S::NAME))))?;
            let mut report = Report::begin(S::NAME, params.clone());
            report.host = saved.host.clone();
            report.devices = saved.devices.clone();
            report.started_at = saved.started_at.clone();
            report.duration_ms = saved.duration_ms;
            report.steps = saved.steps.clone();
            report.interrupted = saved.interrupted;
            if !S::REANALYSABLE {
                report.findings = saved.findings.clone();
                report.metrics = saved.metrics.clone();
                report.data = saved.data.clone();
                return Ok(report);
            }
            // What the parent concluded about a child process is not in the data: keep it.
            report.findings = saved
                .findings
                .iter()
                .filter(|f| codes::CHILD_FAILURES.contains(&f.code.as_str()))
                .cloned()
                .collect();
            let analysis = S::analyze(&p, &mut data, &report);
            report.findings.extend(analysis.findings);
            report.metrics.extend(analysis.metrics);
            report.data = serde_json::to_value(&data)?;
            S::write_outputs(&p, &data, &report)?;
            Ok(report)
        })())
    }
    fn render(&self, report: &Report, out: &mut String, style: Style) {
        if report.data.is_null() || report.data.get("skipped_reason").is_some() {
            return;
        }
        match serde_json::from_value::<S::Data>(report.data.clone()) {
            Ok(data) => S::render(&data, report, out, style),
            Err(e) => out.push_str(&format!(
                "\n(the report's data could not be read as '{}' data: {e})\n",
                S::NAME
            )),
        }
    }
    fn finish(&self, params: &serde_json::Value, result: Result<Report>) -> Result<Finished> {
        match typed::<S>(params) {
            Ok(p) => S::finish(&p, result),
            Err(_) => result.map(Finished::Report),
        }
    }
}

/// Helper for [`registry`].
const fn entry<S: Scenario>() -> &'static dyn DynScenario {
    &Erased::<S>(std::marker::PhantomData)
}

/// Every scenario gpu-doctor knows, in the order `inject all`, listings and `--help` use.
pub(crate) fn registry() -> &'static [&'static dyn DynScenario] {
    static ALL: &[&dyn DynScenario] = &[
        entry::<info::Info>(),
        entry::<topo::Topo>(),
        entry::<health::Health>(),
        entry::<oom::Oom>(),
        entry::<ctx_destroy::CtxDestroy>(),
        entry::<ctx_destroy::CtxDestroyPart>(),
        entry::<stream_misuse::StreamMisuse>(),
        entry::<stream_misuse::DestroyedStream>(),
        entry::<illegal_address::IllegalAddress>(),
        entry::<illegal_address::IllegalAddressVariant>(),
        entry::<fragmentation::Fragmentation>(),
        entry::<trace_ctx::TraceCtx>(),
        entry::<bandwidth::Bandwidth>(),
        entry::<program::ProgramOom>(),
        entry::<program::InjectError>(),
        entry::<program::ProgramTrace>(),
        entry::<leak_check::LeakCheck>(),
        entry::<nvml::InjectNvml>(),
        entry::<nvml::Replay>(),
        entry::<watch::Watch>(),
    ];
    ALL
}

/// The scenarios a person can name (in suites, listings): all but internal parts.
pub(crate) fn public() -> impl Iterator<Item = &'static dyn DynScenario> {
    registry().iter().copied().filter(|s| !s.internal())
}

pub(crate) fn find(name: &str) -> Option<&'static dyn DynScenario> {
    registry().iter().copied().find(|s| s.name() == name)
}

/// The whole report as text: the generic header, the scenario's own tables, the generic
/// sections (steps, metrics, scenarios of a suite, findings).
pub fn render_report(report: &Report, style: Style) -> String {
    // Text from a report (messages, a program's command line, affinity strings) is shown,
    // never obeyed by the terminal.
    let report = &*crate::render::text::printable_report(report);
    let mut out = String::new();
    crate::render::report::header(&mut out, report, style);
    let scenario = find(&report.scenario);
    if let Some(s) = scenario {
        s.render(report, &mut out, style);
    }
    let metrics_shown = scenario.is_some_and(|s| s.metrics_in_tables());
    crate::render::report::sections(&mut out, report, style, metrics_shown);
    out
}

/// Runs `part`, an internal scenario that may crash its process (a driver call NVIDIA documents
/// as undefined), in a process of its own; records its steps in this run (a death there is the
/// driver's answer, see `analyze::faults::merge_crash_prone`) and returns its report for its
/// data.
pub(crate) fn run_crash_prone_part(
    ctx: &RunCtx,
    part: &str,
    params: &serde_json::Value,
) -> Result<Report> {
    let started_at_ms = ctx.now_ms();
    let sub = crate::isolate::run_isolated(part, params, &ctx.opts)?;
    for step in crate::analyze::faults::merge_crash_prone(&sub.steps, started_at_ms) {
        ctx.record(step);
    }
    Ok(sub)
}
