//! `gpu-doctor info`: versions and per-GPU health from NVML (no CUDA context).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::health;
use crate::context::Ctx;
use crate::error::input;
use crate::facts::GpuHealth;
use crate::probe::nvml::NvmlProbe;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InfoParams {
    /// Re-analyse and re-render a saved info report instead of probing (no GPU needed).
    #[arg(long, value_name = "REPORT.json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<std::path::PathBuf>,
}

pub struct Info;

impl Scenario for Info {
    type Params = InfoParams;
    const NAME: &'static str = "info";
    const ABOUT: &'static str = "driver versions and per-GPU health (NVML)";

    fn run(params: &InfoParams, ctx: &mut Ctx) -> Result<Report> {
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let gpus: Vec<GpuHealth> = match &params.from {
            Some(path) => {
                let saved = crate::output::read_report(path)?;
                let gpus = saved
                    .data
                    .get("gpus")
                    .filter(|_| saved.scenario == Self::NAME)
                    .ok_or_else(|| input(format!("{}: not an info report", path.display())))
                    .and_then(|g| {
                        serde_json::from_value(g.clone())
                            .map_err(|e| input(format!("{}: data.gpus: {e}", path.display())))
                    })?;
                report.host = saved.host;
                report.devices = saved.devices;
                report.started_at = saved.started_at;
                gpus
            }
            None => {
                let nvml = NvmlProbe::open()?;
                report.host = nvml.host();
                let mut gpus = Vec::new();
                for i in nvml.select(&ctx.opts.devices)? {
                    let (device, health) = nvml.health(i)?;
                    report.devices.push(device);
                    gpus.push(health);
                }
                gpus
            }
        };
        report.findings = health::findings(&gpus);
        report.data = serde_json::json!({ "gpus": gpus });
        Ok(report)
    }
}
