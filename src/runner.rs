//! Runs a scenario — in process, or in an isolated child — and finishes its report
//! (status, duration, host).

use std::time::Instant;

use anyhow::Result;

use crate::analyze::verdict;
use crate::cli::ChildArgs;
use crate::context::{Ctx, EventSink, RunOptions};
use crate::error::{self, exit};
use crate::isolate::{self, Event};
use crate::probe::{loader, nvml};
use crate::report::Report;
use crate::scenarios::{self, DynScenario, Scenario};

/// Runs a scenario from the command line with typed params.
pub fn execute_typed<S: Scenario>(params: &S::Params, opts: &RunOptions) -> Result<Report> {
    let scenario = scenarios::find(S::NAME).expect("every scenario is registered");
    execute(scenario, serde_json::to_value(params)?, opts)
}

/// Runs a scenario, isolated in a child process when it asks for it.
pub fn execute(
    scenario: &dyn DynScenario,
    params: serde_json::Value,
    opts: &RunOptions,
) -> Result<Report> {
    let params = scenario
        .normalize_params(params)
        .map_err(|e| error::input(format!("{}: {e}", scenario.name())))?;
    scenario.validate(&params)?;
    if scenario.isolated_for(&params) && !isolate::in_child() {
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
    let mut ctx = Ctx::new(opts.clone(), EventSink::none());
    run_in_process(scenario, &params, &mut ctx)
}

fn run_in_process(
    scenario: &dyn DynScenario,
    params: &serde_json::Value,
    ctx: &mut Ctx,
) -> Result<Report> {
    let started = Instant::now();
    let mut report = scenario.run_json(params, ctx)?;
    report.params = params.clone();
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    report.interrupted |= crate::context::interrupted();
    verdict::finalize(&mut report);
    fill_host(&mut report);
    Ok(report)
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

/// The hidden `__child` command: run one scenario, stream events on stdout, report last.
/// Errors go to stderr with their exit code; the parent turns them into its own.
pub fn child_main(args: &ChildArgs) -> Result<i32> {
    let scenario = scenarios::find(&args.scenario)
        .ok_or_else(|| error::input(format!("unknown scenario {}", args.scenario)))?;
    let params: serde_json::Value = serde_json::from_str(&args.params)?;
    let opts: RunOptions = serde_json::from_str(&args.options)?;
    let mut ctx = Ctx::new(opts, EventSink::stdout());
    let report = run_in_process(scenario, &params, &mut ctx)?;
    ctx.events.emit(&Event::Report {
        report: Box::new(report),
    });
    Ok(exit::OK)
}

/// Runs several scenarios with their default params in order and returns one combined report
/// whose `reports` hold theirs (`inject all`). A scenario the box cannot serve is `skipped`;
/// when none could run, that is the command's answer (exit 3), not an empty pass.
pub fn execute_many(name: &str, scenarios: &[&str], opts: &RunOptions) -> Result<Report> {
    let items: Vec<(&'static dyn DynScenario, serde_json::Value)> = scenarios
        .iter()
        .map(|n| {
            (
                scenarios::find(n).expect("registered"),
                serde_json::Value::Null,
            )
        })
        .collect();
    let report = execute_list(
        name,
        serde_json::json!({ "scenarios": scenarios }),
        &items,
        opts,
    )?;
    if report.status == crate::report::Status::Skipped {
        return Err(error::unavailable(skipped_reason(&report)));
    }
    Ok(report)
}

/// Runs a list of (scenario, params) and combines the reports. Errors that mean "cannot run
/// here" turn into a skipped report with the reason; input errors stop the run.
pub fn execute_list(
    name: &str,
    params: serde_json::Value,
    items: &[(&'static dyn DynScenario, serde_json::Value)],
    opts: &RunOptions,
) -> Result<Report> {
    execute_list_with(name, params, items, opts, |_, _| {}, |_, _| {})
}

/// [`execute_list`] with hooks: `before(i, scenario)` as item `i` starts, `after(i, report)`
/// once its report is final (a suite applies its thresholds there), before it is combined.
/// An internal error of one scenario becomes an `error` report with a `SCENARIO_ERROR`
/// finding, so the others still run and the combined report is kept.
pub fn execute_list_with(
    name: &str,
    params: serde_json::Value,
    items: &[(&'static dyn DynScenario, serde_json::Value)],
    opts: &RunOptions,
    mut before: impl FnMut(usize, &dyn DynScenario),
    mut after: impl FnMut(usize, &mut Report),
) -> Result<Report> {
    let started = Instant::now();
    let mut combined = Report::begin(name, params);
    for (i, (scenario, p)) in items.iter().enumerate() {
        if crate::context::interrupted() {
            combined.interrupted = true;
            break;
        }
        before(i, *scenario);
        let item_started = Instant::now();
        let mut report = match execute(*scenario, p.clone(), opts) {
            Ok(r) => r,
            Err(e) if error::exit_code_of(&e) == exit::UNAVAILABLE => {
                skipped(scenario.name(), p, &e.to_string())
            }
            Err(e) if error::exit_code_of(&e) == exit::INTERNAL => {
                let mut r = errored(scenario.name(), p, &format!("{e:#}"));
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
        .filter(|s| *s != crate::report::Status::Skipped)
        .max()
        .unwrap_or(crate::report::Status::Skipped);
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
pub fn errored(name: &str, params: &serde_json::Value, message: &str) -> Report {
    let mut r = Report::begin(name, params.clone());
    r.status = crate::report::Status::Error;
    r.findings.push(
        crate::report::Finding::new(
            crate::report::Severity::Fail,
            crate::report::codes::SCENARIO_ERROR,
            format!("the scenario stopped with an internal error: {message}"),
        )
        .hint("This is a gpu-doctor problem rather than a GPU one; please report it with this report attached."),
    );
    fill_host(&mut r);
    r
}

/// A report for a scenario that could not run on this box.
pub fn skipped(name: &str, params: &serde_json::Value, reason: &str) -> Report {
    let mut r = Report::begin(name, params.clone());
    r.status = crate::report::Status::Skipped;
    r.data = serde_json::json!({ "skipped_reason": reason });
    fill_host(&mut r);
    r
}
