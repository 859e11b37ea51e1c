//! `gpu-doctor inject fragmentation`: churn allocations of mixed sizes, free every other one,
//! and measure the largest block cuMemAlloc can still get against the free memory; then the
//! remedies on the same pattern — a stream-ordered pool before and after trimming, and the
//! virtual memory API — and memory back to its baseline (docs/memory.md).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::fragmentation;
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::faults::FragmentationFacts;
use crate::probe::faults::fragmentation::{Allocator, FragConfig};
use crate::probe::faults::{self as probe, Steps};
use crate::render::faults as render;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario};
use crate::units::check_range;

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FragmentationParams {
    /// Share of the free memory each churn allocates (0.1 to 0.95).
    #[arg(long, value_name = "F", default_value_t = Self::default().fraction)]
    pub fraction: f64,
    /// Measure one allocator only: driver (cuMemAlloc), pool (cuMemAllocFromPoolAsync, then
    /// trimmed), vmm (cuMemCreate + cuMemMap).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<Allocator>,
}

impl Default for FragmentationParams {
    fn default() -> Self {
        FragmentationParams {
            fraction: 0.85,
            only: None,
        }
    }
}

/// What an `inject fragmentation` report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FragmentationData {
    pub facts: FragmentationFacts,
}

pub struct Fragmentation;

impl Scenario for Fragmentation {
    type Params = FragmentationParams;
    type Data = FragmentationData;
    const NAME: &'static str = "inject fragmentation";
    const ABOUT: &'static str = "Churn mixed-size allocations, free every other one: the largest block against the free memory, and the remedies (pool trim, virtual memory API).";
    const EXAMPLES: &'static str = "gpu-doctor inject fragmentation\ngpu-doctor inject fragmentation --fraction 0.5 --only pool";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn validate(p: &FragmentationParams) -> Result<()> {
        check_range("--fraction", p.fraction, 0.1, 0.95).map_err(input)?;
        Ok(())
    }

    fn probe(p: &FragmentationParams, ctx: &RunCtx) -> Result<Probed<FragmentationData>> {
        Self::validate(p)?;
        let cfg = FragConfig {
            fraction: p.fraction,
            allocators: match p.only {
                Some(a) => vec![a],
                None => Allocator::ALL.to_vec(),
            },
        };
        let t = probe::target(ctx)?;
        let steps = Steps::new(ctx);
        let facts = probe::fragmentation::run(ctx, &steps, &t, &cfg)?;
        Ok(Probed::new(
            FragmentationData { facts },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(_p: &FragmentationParams, data: &mut FragmentationData, _run: &Report) -> Analysis {
        fragmentation::fragmentation(&data.facts)
    }

    fn render(data: &FragmentationData, _report: &Report, out: &mut String, style: Style) {
        render::fragmentation(out, &data.facts, style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::find;

    #[test]
    fn params_default_and_validate() {
        let s = find(Fragmentation::NAME).unwrap();
        let p = s.normalize_params(serde_json::Value::Null).unwrap();
        assert_eq!(p["fraction"], 0.85);
        let p = s
            .normalize_params(serde_json::json!({"only": "vmm"}))
            .unwrap();
        assert_eq!(p["only"], "vmm");
        for f in [0.0, 0.99, f64::NAN] {
            let err = Fragmentation::validate(&FragmentationParams {
                fraction: f,
                only: None,
            })
            .unwrap_err();
            assert_eq!(crate::error::exit_code_of(&err), 2, "{f}");
        }
    }
}
