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
pub struct CtxDestroyParams {}

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
        let facts = probe::ctx_destroy::run(ctx, &steps, &t)?;
        report.steps = steps.into_vec();
        let a = faults::ctx_destroy(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
    }
}
