//! `gpu-doctor inject oom`: fill device memory to CUDA_ERROR_OUT_OF_MEMORY in a non-primary
//! context on the first selected GPU, prove the context still works, free, check memory.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::Ctx;
use crate::error::input;
use crate::probe::faults::{self as probe, Steps, oom::OomConfig};
use crate::report::Report;
use crate::scenarios::Scenario;
use crate::units::{parse_size, size_arg};

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
    #[arg(long, value_enum, default_value_t = Allocator::Sync)]
    pub allocator: Allocator,
    /// Precision of the edge: the smallest allocation tried (e.g. 2MiB, 512KiB).
    #[arg(long, default_value = "2MiB", value_parser = size_arg, value_name = "SIZE")]
    pub granularity: String,
    /// First (largest) chunk; halved on each OUT_OF_MEMORY down to the granularity.
    #[arg(long, default_value = "1GiB", value_parser = size_arg, value_name = "SIZE")]
    pub chunk: String,
    /// Stop at this fraction of the free memory instead of the edge (0 < F <= 1).
    #[arg(long, value_name = "F")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Keep the memory allocated this long before freeing it (Ctrl-C frees it earlier), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
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
            granularity: "2MiB".into(),
            chunk: "1GiB".into(),
            fraction: None,
            hold: None,
            program: Default::default(),
        }
    }
}

fn duration_arg(s: &str) -> Result<String, String> {
    crate::cli::parse_duration(s).map(|_| s.trim().to_string())
}

/// The fill configuration, or the input error (exit 2) that says which flag is wrong.
fn config_of(params: &OomParams) -> Result<OomConfig> {
    let granularity =
        parse_size(&params.granularity).map_err(|e| input(format!("--granularity: {e}")))?;
    let chunk = parse_size(&params.chunk).map_err(|e| input(format!("--chunk: {e}")))?;
    if granularity == 0 || chunk < granularity {
        return Err(input(
            "--granularity must be > 0 and no larger than --chunk",
        ));
    }
    if let Some(f) = params.fraction
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(input(format!("--fraction must be in (0, 1], not {f}")));
    }
    Ok(OomConfig {
        async_alloc: params.allocator == Allocator::Async,
        granularity,
        chunk,
        fraction: params.fraction,
        hold: hold_of(params)?,
    })
}

fn hold_of(p: &OomParams) -> Result<Option<Duration>> {
    p.hold
        .as_deref()
        .map(|h| crate::cli::parse_duration(h).map_err(|e| input(format!("--hold: {e}"))))
        .transpose()
}

pub struct Oom;

impl Scenario for Oom {
    type Params = OomParams;
    const NAME: &'static str = "inject oom";
    const ABOUT: &'static str =
        "fill device memory to OUT_OF_MEMORY, prove the context survives, free, check";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn planned_wait(params: &OomParams) -> Duration {
        hold_of(params).ok().flatten().unwrap_or_default()
    }

    fn validate(params: &OomParams) -> Result<()> {
        config_of(params).map(|_| ())
    }

    fn run(params: &OomParams, ctx: &mut Ctx) -> Result<Report> {
        let cfg = config_of(params)?;
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let t = probe::target(ctx)?;
        report.host = t.nvml.host();
        report.devices.push(t.info.clone());
        let steps = Steps::new(ctx);
        let facts = probe::oom::run(ctx, &steps, &t, &cfg)?;
        report.steps = steps.into_vec();
        let a = faults::oom(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
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
        let mut ctx = Ctx::new(Default::default(), crate::context::EventSink::none());
        for p in [
            OomParams {
                fraction: Some(1.5),
                ..Default::default()
            },
            OomParams {
                granularity: "0".into(),
                ..Default::default()
            },
            OomParams {
                granularity: "2GiB".into(),
                ..Default::default()
            },
            OomParams {
                hold: Some("soon".into()),
                ..Default::default()
            },
        ] {
            let err = Oom::run(&p, &mut ctx).unwrap_err();
            assert_eq!(crate::error::exit_code_of(&err), 2, "{p:?}: {err}");
        }
    }
}
