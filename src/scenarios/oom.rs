//! `gpu-doctor inject oom`: fill device memory to CUDA_ERROR_OUT_OF_MEMORY in a non-primary
//! context on the first selected GPU, prove the context still works, free, check memory.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::faults::OomFacts;
use crate::probe::faults::{self as probe, Steps, oom::OomConfig};
use crate::render::faults as render;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Redirect, Scenario};
use crate::units::{Size, Span, check_above};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Allocator {
    /// cuMemAlloc.
    #[default]
    Sync,
    /// cuMemAllocAsync from the device's default memory pool.
    Async,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OomParams {
    /// sync: cuMemAlloc; async: cuMemAllocAsync from the device's default memory pool.
    #[arg(long, value_enum, default_value_t = Self::default().allocator)]
    pub allocator: Allocator,
    /// Precision of the edge: the smallest allocation tried (e.g. 2MiB, 512KiB).
    #[arg(long, default_value_t = Self::default().granularity, value_name = "SIZE")]
    pub granularity: Size,
    /// First (largest) chunk; halved on each OUT_OF_MEMORY down to the granularity.
    #[arg(long, default_value_t = Self::default().chunk, value_name = "SIZE")]
    pub chunk: Size,
    /// Stop at this fraction of the free memory instead of the edge (0 < F <= 1).
    #[arg(long, value_name = "F")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Keep the memory allocated this long before freeing it (Ctrl-C frees it earlier), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Span>,
    /// Program mode (`--limit SIZE -- COMMAND`): docs/shim.md.
    #[command(flatten)]
    #[serde(skip)]
    #[schemars(skip)]
    pub program: crate::scenarios::program::OomProgramArgs,
}

impl Default for OomParams {
    fn default() -> Self {
        OomParams {
            allocator: Allocator::Sync,
            granularity: "2MiB".parse().expect("a size"),
            chunk: "1GiB".parse().expect("a size"),
            fraction: None,
            hold: None,
            program: Default::default(),
        }
    }
}

/// The fill configuration, or the input error (exit 2) that says which flag is wrong.
fn config_of(params: &OomParams) -> Result<OomConfig> {
    let granularity = params.granularity.bytes();
    let chunk = params.chunk.bytes();
    if granularity == 0 || chunk < granularity {
        return Err(input(
            "--granularity must be > 0 and no larger than --chunk",
        ));
    }
    if let Some(f) = params.fraction {
        check_above("--fraction", f, 0.0, 1.0).map_err(input)?;
    }
    Ok(OomConfig {
        async_alloc: params.allocator == Allocator::Async,
        granularity,
        chunk,
        fraction: params.fraction,
        hold: params.hold.as_ref().map(Span::duration),
    })
}

/// What an `inject oom` report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OomData {
    pub facts: OomFacts,
}

pub struct Oom;

impl Scenario for Oom {
    type Params = OomParams;
    type Data = OomData;
    const NAME: &'static str = "inject oom";
    const ABOUT: &'static str =
        "Fill device memory to CUDA_ERROR_OUT_OF_MEMORY, prove the context survives, free, check.";
    const EXAMPLES: &'static str = "gpu-doctor inject oom\ngpu-doctor inject oom --allocator async\ngpu-doctor inject oom --fraction 0.9 --hold 5m   # memory pressure for another program\ngpu-doctor inject oom --limit 4GiB -- python train.py   # program mode: docs/shim.md";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const IN_INJECT_ALL: bool = true;

    fn planned_wait(params: &OomParams) -> Duration {
        params.hold.as_ref().map(Span::duration).unwrap_or_default()
    }

    fn validate(params: &OomParams) -> Result<()> {
        config_of(params).map(|_| ())
    }

    fn redirect(params: &OomParams) -> Option<Result<Redirect>> {
        params.program.redirect()
    }

    fn probe(params: &OomParams, ctx: &RunCtx) -> Result<Probed<OomData>> {
        let cfg = config_of(params)?;
        let t = probe::target(ctx)?;
        let steps = Steps::new(ctx);
        let facts = probe::oom::run(ctx, &steps, &t, &cfg)?;
        Ok(Probed::new(OomData { facts }, t.nvml.host(), vec![t.info]))
    }

    fn analyze(_params: &OomParams, data: &mut OomData, run: &Report) -> Analysis {
        faults::oom(&data.facts, &run.steps)
    }

    fn render(data: &OomData, _report: &Report, out: &mut String, style: Style) {
        let mut rows = render::oom_rows(&data.facts);
        rows.extend(render::memory_rows(&data.facts.memory));
        render::facts_table(out, rows, style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::find;

    #[test]
    fn params_default_and_validate_through_serde() {
        let s = find(Oom::NAME).unwrap();
        let p = s.normalize_params(serde_json::Value::Null).unwrap();
        assert_eq!(p["granularity"], "2MiB");
        assert_eq!(p["allocator"], "sync");
        let p = s
            .normalize_params(serde_json::json!({"allocator": "async", "hold": "5s"}))
            .unwrap();
        assert_eq!(p["allocator"], "async");
        assert!(s.normalize_params(serde_json::json!({"bogus": 1})).is_err());
        assert_eq!(s.planned_wait(&p), Duration::from_secs(5));
    }

    #[test]
    fn bad_input_is_a_usage_error_before_any_gpu_work() {
        for p in [
            OomParams {
                fraction: Some(1.5),
                ..Default::default()
            },
            OomParams {
                fraction: Some(f64::NAN),
                ..Default::default()
            },
            OomParams {
                granularity: "0".parse().unwrap(),
                ..Default::default()
            },
            OomParams {
                granularity: "2GiB".parse().unwrap(),
                ..Default::default()
            },
        ] {
            let err = Oom::validate(&p).unwrap_err();
            assert_eq!(crate::error::exit_code_of(&err), 2, "{p:?}: {err}");
        }
    }
}
