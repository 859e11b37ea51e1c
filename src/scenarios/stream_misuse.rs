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
}

impl Default for StreamMisuseParams {
    fn default() -> Self {
        StreamMisuseParams {
            iterations: 50,
            only: None,
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

    fn run(params: &StreamMisuseParams, ctx: &mut Ctx) -> Result<Report> {
        if params.iterations == 0 || params.iterations > 100_000 {
            return Err(input("--iterations must be between 1 and 100000"));
        }
        let parts: Vec<Part> = match params.only {
            Some(p) => vec![p],
            None => Part::ALL.to_vec(),
        };
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let t = probe::target(ctx)?;
        report.host = t.nvml.host();
        report.devices.push(t.info.clone());
        let steps = Steps::new(ctx);
        let facts = probe::stream_misuse::run(ctx, &steps, &t, &parts, params.iterations)?;
        report.steps = steps.into_vec();
        let a = faults::stream_misuse(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
    }
}
