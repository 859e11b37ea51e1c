//! `gpu-doctor inject ctx-destroy`: destroy a context with memory, a stream and a kernel in
//! flight (from its thread and from another), reset the primary context under a holder, and
//! check that a fresh context works and the memory came back.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::Ctx;
use crate::probe::faults::{self as probe, Steps};
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CtxDestroyParams {
    /// Internal: only the launch with a destroyed context's handles (run in a process of its
    /// own, since the driver may crash on it).
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale_launch: bool,
}

pub struct CtxDestroy;

impl Scenario for CtxDestroy {
    type Params = CtxDestroyParams;
    const NAME: &'static str = "inject ctx-destroy";
    const ABOUT: &'static str =
        "destroy contexts with work in flight, reset the primary context, use stale handles";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(params: &CtxDestroyParams, ctx: &mut Ctx) -> Result<Report> {
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let t = probe::target(ctx)?;
        report.host = t.nvml.host();
        report.devices.push(t.info.clone());
        let steps = Steps::new(ctx);
        if params.stale_launch {
            probe::ctx_destroy::stale_launch(ctx, &steps, &t)?;
            report.steps = steps.into_vec();
            return Ok(report);
        }
        let facts = probe::ctx_destroy::run(ctx, &steps, &t)?;
        report.steps = steps.into_vec();
        if !ctx.interrupted() {
            let started_at_ms = ctx.now_ms();
            let sub = probe::run_subprocess(
                Self::NAME,
                &serde_json::json!({ "stale_launch": true }),
                &ctx.opts,
            )?;
            faults::merge_crash_prone(&mut report.steps, &sub.steps, started_at_ms);
        }
        report.findings.extend(faults::crashed_calls(
            &report.steps,
            report.host.driver_version.as_deref(),
        ));
        let a = faults::ctx_destroy(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
    }
}
