//! `gpu-doctor inject stream-misuse`: streams used after destroy, from the wrong context,
//! without ordering events, in capture, and the default-stream semantics.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::Ctx;
use crate::error::input;
use crate::probe::faults::stream_misuse::Part;
use crate::probe::faults::{self as probe, Steps};
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamMisuseParams {
    /// Iterations of the missing-event race, run once without and once with the event.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub iterations: u32,
    /// Run one part only (destroyed-stream, cross-context, missing-event, capture,
    /// default-stream), e.g. under compute-sanitizer.
    #[arg(long, value_enum, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<Part>,
    /// Internal: this process runs the crash-prone part alone (set by the parent).
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub own_process: bool,
}

impl Default for StreamMisuseParams {
    fn default() -> Self {
        StreamMisuseParams {
            iterations: 50,
            only: None,
            own_process: false,
        }
    }
}

pub struct StreamMisuse;

impl Scenario for StreamMisuse {
    type Params = StreamMisuseParams;
    const NAME: &'static str = "inject stream-misuse";
    const ABOUT: &'static str = "destroyed and foreign streams, missing events (stale reads), capture misuse, default streams";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn validate(params: &StreamMisuseParams) -> Result<()> {
        if params.iterations == 0 || params.iterations > 100_000 {
            return Err(input("--iterations must be between 1 and 100000"));
        }
        Ok(())
    }

    fn run(params: &StreamMisuseParams, ctx: &mut Ctx) -> Result<Report> {
        let mut parts: Vec<Part> = match params.only {
            Some(p) => vec![p],
            None => Part::ALL.to_vec(),
        };
        // Uses of a destroyed stream can crash the driver (driver 580 does): they run in a
        // process of their own, where a crash is an answer, not the end of the scenario.
        let crash_prone = !params.own_process && parts.contains(&Part::DestroyedStream);
        if crash_prone {
            parts.retain(|p| *p != Part::DestroyedStream);
        }
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let t = probe::target(ctx)?;
        report.host = t.nvml.host();
        report.devices.push(t.info.clone());
        let steps = Steps::new(ctx);
        let facts = probe::stream_misuse::run(ctx, &steps, &t, &parts, params.iterations)?;
        report.steps = steps.into_vec();
        if crash_prone && !ctx.interrupted() {
            let sub_params = serde_json::json!({
                "only": Part::DestroyedStream,
                "own_process": true,
                "iterations": params.iterations,
            });
            super::run_crash_prone_part(ctx, &mut report, Self::NAME, &sub_params)?;
        }
        report.findings.extend(faults::crashed_calls(
            &report.steps,
            report.host.driver_version.as_deref(),
        ));
        let a = faults::stream_misuse(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
    }
}
