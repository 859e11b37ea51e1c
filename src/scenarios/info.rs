//! `gpu-doctor info`: versions and per-GPU health from NVML (no CUDA context).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::health;
use crate::context::RunCtx;
use crate::facts::GpuHealth;
use crate::probe::nvml::NvmlProbe;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario};

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InfoParams {}

/// What an info report stores: the health of every selected GPU.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InfoData {
    pub gpus: Vec<GpuHealth>,
}

pub struct Info;

impl Scenario for Info {
    type Params = InfoParams;
    type Data = InfoData;
    const NAME: &'static str = "info";
    const ABOUT: &'static str = "Driver, CUDA and NVML versions and per-GPU health: memory, clocks, throttling, ECC, row remapping.";
    const EXAMPLES: &'static str = "gpu-doctor info\ngpu-doctor info --device 0 --json";

    fn probe(_params: &InfoParams, ctx: &RunCtx) -> Result<Probed<InfoData>> {
        let nvml = NvmlProbe::open()?;
        let mut devices = Vec::new();
        let mut gpus = Vec::new();
        for i in nvml.select(&ctx.opts.devices)? {
            let (device, health) = nvml.health(i)?;
            devices.push(device);
            gpus.push(health);
        }
        Ok(Probed::new(InfoData { gpus }, nvml.host(), devices))
    }

    fn analyze(_params: &InfoParams, data: &mut InfoData, _run: &Report) -> Analysis {
        Analysis {
            findings: health::findings(&data.gpus),
            ..Default::default()
        }
    }

    fn render(data: &InfoData, _report: &Report, out: &mut String, style: Style) {
        crate::render::health::info(out, &data.gpus, style);
    }
}
