//! `gpu-doctor inject ctx-destroy`: destroy a context with memory, a stream and a kernel in
//! flight (from its thread and from another), reset the primary context under a holder, and
//! check that a fresh context works and the memory came back.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::Ctx;
use crate::probe::faults::ctx_destroy::DestroyPart;
use crate::probe::faults::{self as probe, Steps};
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CtxDestroyParams {
    /// Internal: run one crash-prone part in this process (the parent runs each in its own).
    #[arg(long, value_enum, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<DestroyPart>,
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
        if let Some(part) = params.part {
            let steps = Steps::new(ctx);
            let variant = probe::ctx_destroy::run_part(ctx, &steps, &t, part)?;
            report.steps = steps.into_vec();
            report.data = serde_json::json!({ "variant": variant });
            return Ok(report);
        }
        let mut facts = probe::ctx_destroy::begin(&t)?;
        for part in DestroyPart::ALL {
            if ctx.interrupted() {
                break;
            }
            let sub = super::run_crash_prone_part(
                ctx,
                &mut report,
                Self::NAME,
                &serde_json::json!({ "part": part }),
            )?;
            if let Some(v) = sub
                .data
                .get("variant")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
            {
                facts.variants.push(v);
            }
        }
        let steps = Steps::new(ctx);
        probe::ctx_destroy::finish(&steps, &t, &mut facts);
        report.steps.extend(steps.into_vec());
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
