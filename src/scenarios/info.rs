//! `gpu-doctor info`: versions and per-GPU health from NVML (no CUDA context).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::health;
use crate::context::Ctx;
use crate::probe::nvml::NvmlProbe;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InfoParams {}

pub struct Info;

impl Scenario for Info {
    type Params = InfoParams;
    const NAME: &'static str = "info";
    const ABOUT: &'static str = "driver versions and per-GPU health (NVML)";

    fn run(params: &InfoParams, ctx: &mut Ctx) -> Result<Report> {
        let nvml = NvmlProbe::open()?;
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        report.host = nvml.host();
        let mut gpus = Vec::new();
        for i in nvml.select(&ctx.opts.devices)? {
            report.devices.push(nvml.device_info(i)?);
            gpus.push(nvml.health(i)?);
        }
        report.findings = health::findings(&gpus);
        report.data = serde_json::json!({ "gpus": gpus });
        Ok(report)
    }
}
