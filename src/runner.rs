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
    if scenario.isolated() && !isolate::in_child() {
        // Fail fast, with the clear message, where the child could not run at all.
        if scenario.needs_cuda() {
            check_cuda_library()?;
        }
        let mut report = isolate::run_isolated(scenario.name(), &params, opts)?;
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

/// Presence check of libcuda without initialising it (dlopen only).
fn check_cuda_library() -> Result<()> {
    loader::check_cuda_present()
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
