//! `gpu-doctor topo`: interconnect matrix, PCIe / NVLink state, P2P and GPU groups. NVML only:
//! no cuInit, so it stays quicker than `nvidia-smi topo -m`. With `--bandwidth` it also
//! measures copy bandwidth (CUDA) and attaches it as `data.bandwidth`.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::topology::{self, TopoView};
use crate::context::RunCtx;
use crate::facts::TopoFacts;
use crate::probe::nvml::NvmlProbe;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::bandwidth::{self as bw, BandwidthData};
use crate::scenarios::{Probed, Scenario};

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TopoParams {
    /// Also measure copy bandwidth of the selected GPUs (as `gpu-doctor bandwidth` does with
    /// its defaults: needs CUDA, takes seconds) and attach its metrics and findings.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bandwidth: bool,
}

/// What a topo report stores: the facts, the matrix and groups derived from them, and the
/// bandwidth measured with `--bandwidth`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopoData {
    pub facts: TopoFacts,
    #[serde(default)]
    pub view: TopoView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthData>,
}

pub struct Topo;

impl Scenario for Topo {
    type Params = TopoParams;
    type Data = TopoData;
    const NAME: &'static str = "topo";
    /// Its only metrics are `--bandwidth`'s, shown in the bandwidth table.
    const METRICS_IN_TABLES: bool = true;
    const ABOUT: &'static str =
        "Interconnect matrix (like `nvidia-smi topo -m`), PCIe and NVLink state, P2P, GPU groups.";
    const EXAMPLES: &'static str =
        "gpu-doctor topo\ngpu-doctor topo --json -o topo.json\ngpu-doctor topo --bandwidth";

    fn probe(params: &TopoParams, ctx: &RunCtx) -> Result<Probed<TopoData>> {
        let nvml = NvmlProbe::open()?;
        let selected = nvml.select(&ctx.opts.devices)?;
        let (mut devices, facts) = nvml.topology_and_devices(&selected)?;
        let bandwidth = if params.bandwidth {
            let defaults = bw::BandwidthParams::default();
            Some(bw::measure(ctx, &nvml, &mut devices, &facts, &defaults)?)
        } else {
            None
        };
        let data = TopoData {
            facts,
            view: TopoView::default(),
            bandwidth,
        };
        Ok(Probed::new(data, nvml.host(), devices))
    }

    /// Topology findings first, then the bandwidth ones (judged with the thresholds the
    /// measurement was made with).
    fn analyze(_params: &TopoParams, data: &mut TopoData, _run: &Report) -> Analysis {
        let mut a = Analysis {
            findings: topology::findings(&data.facts),
            ..Default::default()
        };
        data.view = topology::view(&data.facts);
        if let Some(b) = &mut data.bandwidth {
            let t = b.thresholds.clone();
            let more = bw::analyze_data(b, &t);
            a.findings.extend(more.findings);
            a.metrics.extend(more.metrics);
        }
        a
    }

    fn saved_data(params: &TopoParams, saved: &Report) -> Option<Result<TopoData, String>> {
        if saved.scenario != Self::NAME {
            return None;
        }
        Some(
            serde_json::from_value::<TopoData>(saved.data.clone())
                .map_err(|e| format!("data: {e}"))
                .and_then(|d| {
                    if params.bandwidth && d.bandwidth.is_none() {
                        Err(
                            "no bandwidth data (run `gpu-doctor bandwidth` or `topo --bandwidth`)"
                                .into(),
                        )
                    } else {
                        Ok(d)
                    }
                }),
        )
    }

    fn render(data: &TopoData, _report: &Report, out: &mut String, style: Style) {
        crate::render::topo::topo(out, &data.facts, &data.view, style);
        if let Some(b) = &data.bandwidth {
            bw::render(b, out, style);
        }
    }
}
