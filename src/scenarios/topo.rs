//! `gpu-doctor topo`: interconnect matrix, PCIe / NVLink state, P2P and GPU groups. NVML only:
//! no cuInit, so it stays quicker than `nvidia-smi topo -m`. With `--bandwidth` it also
//! measures copy bandwidth (CUDA) and attaches it as `data.bandwidth`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::topology;
use crate::context::Ctx;
use crate::error::input;
use crate::facts::TopoFacts;
use crate::probe::nvml::NvmlProbe;
use crate::report::Report;
use crate::scenarios::Scenario;
use crate::scenarios::bandwidth as bw;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TopoParams {
    /// Re-analyse and re-render a saved topo report instead of probing (no GPU needed).
    #[arg(long, value_name = "REPORT.json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// Also measure copy bandwidth of the selected GPUs (as `gpu-doctor bandwidth` does with
    /// its defaults: needs CUDA, takes seconds) and attach its metrics and findings.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bandwidth: bool,
}

pub struct Topo;

impl Scenario for Topo {
    type Params = TopoParams;
    const NAME: &'static str = "topo";
    const ABOUT: &'static str = "interconnect matrix, PCIe and NVLink state, P2P (NVML)";

    fn run(params: &TopoParams, ctx: &mut Ctx) -> Result<Report> {
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        let mut bandwidth = None;
        let facts = match &params.from {
            Some(path) => {
                let saved = crate::output::read_report(path)?;
                let facts =
                    facts_of(&saved).map_err(|e| input(format!("{}: {e}", path.display())))?;
                report.host = saved.host.clone();
                report.devices = saved.devices.clone();
                report.started_at = saved.started_at.clone();
                if params.bandwidth {
                    // Re-analyse the saved measurement with its own thresholds (no GPU
                    // needed); none saved is an error.
                    let data = bw::data_of(&saved)
                        .map_err(|e| input(format!("{}: {e}", path.display())))?;
                    let t = data.thresholds.clone();
                    bandwidth = Some(bw::reanalyze(&mut report, data, &t));
                }
                facts
            }
            None => {
                let nvml = NvmlProbe::open()?;
                report.host = nvml.host();
                let selected = nvml.select(&ctx.opts.devices)?;
                let (devices, facts) = nvml.topology_and_devices(&selected)?;
                report.devices = devices;
                if params.bandwidth {
                    let defaults = bw::BandwidthParams::default();
                    let plan = defaults.plan()?;
                    let data = bw::measure(
                        &mut report,
                        ctx,
                        &nvml,
                        &facts,
                        &plan,
                        &defaults.thresholds(),
                    )?;
                    bandwidth = Some(data);
                }
                facts
            }
        };
        let mut findings = topology::findings(&facts);
        // Bandwidth findings (added by the measurement) come after the topology ones.
        findings.append(&mut report.findings);
        report.findings = findings;
        let view = topology::view(&facts);
        report.data = serde_json::json!({ "facts": facts, "view": view });
        if let Some(data) = bandwidth {
            report.data["bandwidth"] = serde_json::to_value(data)?;
        }
        Ok(report)
    }
}

/// The topology facts a saved report holds (a topo report, or a suite report containing one).
pub fn facts_of(report: &Report) -> Result<TopoFacts, String> {
    if report.scenario == "topo" {
        let facts = report
            .data
            .get("facts")
            .ok_or("a topo report without data.facts")?;
        return serde_json::from_value(facts.clone()).map_err(|e| format!("data.facts: {e}"));
    }
    report
        .reports
        .iter()
        .find(|r| r.scenario == "topo")
        .ok_or_else(|| format!("a '{}' report, not a topo report", report.scenario))
        .and_then(facts_of)
}
