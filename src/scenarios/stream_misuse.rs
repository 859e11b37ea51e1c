//! `gpu-doctor inject stream-misuse`: streams used after destroy, from the wrong context,
//! without ordering events, in capture, and the default-stream semantics.
//!
//! Uses of a destroyed stream can crash the driver (driver 580 does): that part runs as
//! [`DestroyedStream`], an internal scenario, in a process of its own, where a crash is an
//! answer, not the end of the scenario.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::faults::StreamMisuseFacts;
use crate::probe::faults::stream_misuse::Part;
use crate::probe::faults::{self as probe, Steps};
use crate::render::faults as render;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario, run_crash_prone_part};

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamMisuseParams {
    /// Iterations of the missing-event race, run once without and once with the event.
    #[arg(long, default_value_t = Self::default().iterations, value_name = "N")]
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

fn check_iterations(iterations: u32) -> Result<()> {
    if iterations == 0 || iterations > 100_000 {
        return Err(input("--iterations must be between 1 and 100000"));
    }
    Ok(())
}

/// What an `inject stream-misuse` report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamMisuseData {
    pub facts: StreamMisuseFacts,
}

pub struct StreamMisuse;

impl Scenario for StreamMisuse {
    type Params = StreamMisuseParams;
    type Data = StreamMisuseData;
    const NAME: &'static str = "inject stream-misuse";
    const ABOUT: &'static str =
        "Streams used after destroy, from the wrong context, without ordering events, in capture.";
    const EXAMPLES: &'static str = "gpu-doctor inject stream-misuse --iterations 200";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const IN_INJECT_ALL: bool = true;

    fn validate(params: &StreamMisuseParams) -> Result<()> {
        check_iterations(params.iterations)
    }

    fn probe(params: &StreamMisuseParams, ctx: &RunCtx) -> Result<Probed<StreamMisuseData>> {
        let mut parts: Vec<Part> = match params.only {
            Some(p) => vec![p],
            None => Part::ALL.to_vec(),
        };
        let crash_prone = parts.contains(&Part::DestroyedStream);
        parts.retain(|p| *p != Part::DestroyedStream);
        let t = probe::target(ctx)?;
        let steps = Steps::new(ctx);
        let facts = probe::stream_misuse::run(ctx, &steps, &t, &parts, params.iterations)?;
        if crash_prone && !ctx.interrupted() {
            let sub = serde_json::json!({ "iterations": params.iterations });
            run_crash_prone_part(ctx, DestroyedStream::NAME, &sub)?;
        }
        Ok(Probed::new(
            StreamMisuseData { facts },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(
        _params: &StreamMisuseParams,
        data: &mut StreamMisuseData,
        run: &Report,
    ) -> Analysis {
        let mut a = Analysis {
            findings: faults::crashed_calls(&run.steps, run.host.driver_version.as_deref()),
            ..Default::default()
        };
        let own = faults::stream_misuse(&data.facts, &run.steps);
        a.findings.extend(own.findings);
        a.metrics.extend(own.metrics);
        a
    }

    fn render(data: &StreamMisuseData, _report: &Report, out: &mut String, style: Style) {
        let mut rows = render::stream_misuse_rows(&data.facts);
        rows.extend(render::memory_rows(&data.facts.memory));
        render::facts_table(out, rows, style);
    }
}

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DestroyedStreamParams {
    #[arg(long, default_value_t = Self::default().iterations)]
    pub iterations: u32,
}

impl Default for DestroyedStreamParams {
    fn default() -> Self {
        DestroyedStreamParams {
            iterations: StreamMisuseParams::default().iterations,
        }
    }
}

/// The destroyed-stream part of `inject stream-misuse`, in the process its parent started.
pub struct DestroyedStream;

impl Scenario for DestroyedStream {
    type Params = DestroyedStreamParams;
    type Data = StreamMisuseData;
    const NAME: &'static str = "inject stream-misuse (destroyed-stream)";
    const ABOUT: &'static str =
        "The destroyed-stream part of inject stream-misuse, in a process of its own.";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const INTERNAL: bool = true;

    fn validate(params: &DestroyedStreamParams) -> Result<()> {
        check_iterations(params.iterations)
    }

    fn probe(params: &DestroyedStreamParams, ctx: &RunCtx) -> Result<Probed<StreamMisuseData>> {
        let t = probe::target(ctx)?;
        let steps = Steps::new(ctx);
        let facts = probe::stream_misuse::run(
            ctx,
            &steps,
            &t,
            &[Part::DestroyedStream],
            params.iterations,
        )?;
        Ok(Probed::new(
            StreamMisuseData { facts },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(_: &DestroyedStreamParams, _: &mut StreamMisuseData, _: &Report) -> Analysis {
        Analysis::default()
    }

    fn render(_: &StreamMisuseData, _: &Report, _: &mut String, _: Style) {}
}
