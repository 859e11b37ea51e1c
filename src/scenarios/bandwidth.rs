//! `gpu-doctor bandwidth`: host↔device (pinned, pageable, bidirectional), device-local (copy
//! engine, SM kernel) and peer-to-peer copy bandwidth with NVIDIA's method, each against its
//! link's theoretical rate. `topo --bandwidth` runs the same measurement via [`measure`].

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::analyze::bandwidth::{self as analysis, Thresholds};
use crate::analyze::{memory, topology};
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::TopoFacts;
use crate::facts::bandwidth::{
    BandwidthFacts, DeviceLinks, DeviceProcesses, DeviceRun, Links, Method, PairLink, PeerRun,
    SkippedPairs,
};
use crate::probe::bandwidth::{self as probe, Hooks, Plan, Target};
use crate::probe::cuda::{self, Steps};
use crate::probe::loader;
use crate::probe::memory::Watch;
use crate::probe::nvml::NvmlProbe;
use crate::render::style::Style;
use crate::report::{Analysis, DeviceInfo, Report};
use crate::scenarios::{Probed, Scenario};
use crate::units::{Span, check_above, check_range};

pub const DEFAULT_SIZE: u64 = 512 << 20;
/// Most copies per sample (and warm-up copies): 10k copies of the smallest buffer already take
/// seconds on the slowest path.
const MAX_COPIES: u32 = 10_000;
/// Most samples per path.
const MAX_SAMPLES: u32 = 1_000;
/// Highest rate floor a threshold takes, in GB/s (above any link gpu-doctor measures).
const MAX_GBPS: f64 = 100_000.0;

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthParams {
    /// Buffer size of each copy: bytes or with a unit (512MiB, 64MiB, 1GiB; KB/MB/GB are 10^3/10^6/10^9).
    #[arg(long, default_value = "512MiB", value_parser = parse_size, value_name = "SIZE")]
    #[serde(deserialize_with = "size_from_number_or_text")]
    pub size: u64,
    /// Copies per sample on the pinned, device-local and peer paths.
    #[arg(long, default_value_t = Self::default().copies)]
    pub copies: u32,
    /// Samples per path (the report gives their median, min and max).
    #[arg(long, default_value_t = Self::default().samples)]
    pub samples: u32,
    /// Untimed copies before the first sample.
    #[arg(long, default_value_t = Self::default().warmup)]
    pub warmup: u32,
    /// Copies per sample on the slow paths (pageable, peer staged through the host).
    #[arg(long, default_value_t = Self::default().slow_copies)]
    pub slow_copies: u32,
    /// Skip the pageable host-memory paths.
    #[arg(long)]
    pub no_pageable: bool,
    /// Skip the peer-to-peer paths (measured when two or more GPUs are selected).
    #[arg(long)]
    pub no_p2p: bool,
    /// Time for the peer paths: when every ordered pair does not fit, rings through every GPU
    /// are measured and the pairs left out are named (8 GPUs have 56 pairs).
    #[arg(long, default_value_t = Self::default().p2p_budget, value_name = "DURATION")]
    pub p2p_budget: Span,
    /// Pinned H2D / D2H below this fraction of the PCIe link rate fail (BANDWIDTH_LOW).
    #[arg(long, default_value_t = Self::default().min_efficiency, value_name = "FRACTION")]
    pub min_efficiency: f64,
    /// Pinned H2D below this many GB/s fails, whatever the link (e.g. 48 for H100 Gen5 x16).
    #[arg(long, value_name = "GB/S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_h2d_gbps: Option<f64>,
    /// Pinned D2H below this many GB/s fails.
    #[arg(long, value_name = "GB/S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_d2h_gbps: Option<f64>,
    /// Device-local copies (read + write) below this fraction of the memory rate warn.
    #[arg(long, default_value_t = Self::default().min_memory_efficiency, value_name = "FRACTION")]
    pub min_memory_efficiency: f64,
    /// Peer copies below this fraction of the NVLink / PCIe rate warn.
    #[arg(long, default_value_t = Self::default().min_p2p_efficiency, value_name = "FRACTION")]
    pub min_p2p_efficiency: f64,
    /// Slower / faster direction of a link below this warns (BANDWIDTH_ASYMMETRIC).
    #[arg(long, default_value_t = Self::default().min_symmetry, value_name = "FRACTION")]
    pub min_symmetry: f64,
    /// Pageable / pinned below this is noted (PAGEABLE_SLOW, info).
    #[arg(long, default_value_t = Self::default().min_pageable_ratio, value_name = "FRACTION")]
    pub min_pageable_ratio: f64,
}

impl Default for BandwidthParams {
    fn default() -> Self {
        let t = Thresholds::default();
        BandwidthParams {
            size: DEFAULT_SIZE,
            copies: 16,
            samples: 3,
            warmup: 4,
            slow_copies: 4,
            no_pageable: false,
            no_p2p: false,
            p2p_budget: "10s".parse().expect("a duration"),
            min_efficiency: t.min_efficiency,
            min_h2d_gbps: t.min_h2d_gbps,
            min_d2h_gbps: t.min_d2h_gbps,
            min_memory_efficiency: t.min_memory_efficiency,
            min_p2p_efficiency: t.min_p2p_efficiency,
            min_symmetry: t.min_symmetry,
            min_pageable_ratio: t.min_pageable_ratio,
        }
    }
}

impl BandwidthParams {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            min_efficiency: self.min_efficiency,
            min_h2d_gbps: self.min_h2d_gbps,
            min_d2h_gbps: self.min_d2h_gbps,
            min_memory_efficiency: self.min_memory_efficiency,
            min_p2p_efficiency: self.min_p2p_efficiency,
            min_symmetry: self.min_symmetry,
            min_pageable_ratio: self.min_pageable_ratio,
        }
    }

    /// The thresholds are numbers in range: fractions from 0 to 1, rates above 0 (NaN and
    /// infinities are refused: a NaN floor would silently disable its check).
    fn check_thresholds(&self) -> Result<()> {
        for (name, v) in [
            ("--min-efficiency", self.min_efficiency),
            ("--min-memory-efficiency", self.min_memory_efficiency),
            ("--min-p2p-efficiency", self.min_p2p_efficiency),
            ("--min-symmetry", self.min_symmetry),
            ("--min-pageable-ratio", self.min_pageable_ratio),
        ] {
            check_range(name, v, 0.0, 1.0).map_err(input)?;
        }
        for (name, v) in [
            ("--min-h2d-gbps", self.min_h2d_gbps),
            ("--min-d2h-gbps", self.min_d2h_gbps),
        ] {
            if let Some(v) = v {
                check_above(name, v, 0.0, MAX_GBPS).map_err(input)?;
            }
        }
        Ok(())
    }

    /// The measurement plan; bad combinations are input errors (exit 2).
    pub fn plan(&self) -> Result<Plan> {
        check_size(self.size).map_err(input)?;
        self.check_thresholds()?;
        for (name, v, max) in [
            ("--copies", self.copies, MAX_COPIES),
            ("--samples", self.samples, MAX_SAMPLES),
            ("--slow-copies", self.slow_copies, MAX_COPIES),
        ] {
            if v == 0 || v > max {
                return Err(input(format!("{name} {v}: give 1 to {max}")));
            }
        }
        if self.warmup > MAX_COPIES {
            return Err(input(format!(
                "--warmup {}: give 0 to {MAX_COPIES}",
                self.warmup
            )));
        }
        Ok(Plan {
            size: self.size as usize,
            copies: self.copies,
            samples: self.samples,
            warmup: self.warmup,
            pageable: !self.no_pageable,
            slow_copies: self.slow_copies,
            p2p: !self.no_p2p,
            pairs: None,
            // ~0.5 s at 2 GHz: far longer than enqueueing a batch takes, short enough that a
            // run under a tool that serialises launches still ends.
            spin_cycles: 1_000_000_000,
        })
    }
}

/// A buffer size (crate::units rule: "512MiB", "64M", "1GB" = 10^9) within the limits of
/// the measurement.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = crate::units::parse_size(s)?;
    check_size(bytes)?;
    Ok(bytes)
}

fn check_size(bytes: u64) -> Result<(), String> {
    if bytes < 64 << 10 {
        return Err(format!("size {bytes} B is below the minimum of 64 KiB"));
    }
    if !bytes.is_multiple_of(16) {
        return Err(format!(
            "size {bytes} B is not a multiple of 16 (the SM copy moves 16-byte elements)"
        ));
    }
    if bytes > 64 << 30 {
        return Err(format!("size {bytes} B is above the maximum of 64 GiB"));
    }
    Ok(())
}

fn size_from_number_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(b) => check_size(b).map(|_| b),
        Size::Text(t) => parse_size(&t),
    }
    .map_err(serde::de::Error::custom)
}

/// What the report's `data` holds (for `bandwidth`; `topo --bandwidth` puts it in
/// `data.bandwidth`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct BandwidthData {
    pub method: Method,
    /// Raw samples and link facts: `--from` re-analyses these.
    pub facts: BandwidthFacts,
    pub thresholds: Thresholds,
    pub results: Vec<analysis::PathResult>,
    #[serde(default)]
    pub devices: Vec<DeviceRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeerRun>,
    /// Other processes holding memory on the measured GPUs (their copies compete for links).
    #[serde(default)]
    pub processes: Vec<DeviceProcesses>,
}

// Built here, not in facts: the plan is the probe's, and facts sit below the probe.
impl Method {
    fn of(plan: &Plan) -> Method {
        Method {
            size_bytes: plan.size as u64,
            copies: plan.copies,
            samples: plan.samples,
            warmup: plan.warmup,
            slow_copies: plan.slow_copies,
            spin_cycles: plan.spin_cycles,
            units: "GB/s = 10^9 bytes per second; latency in microseconds per copy".into(),
            timing: "pinned, device-local and peer paths: CUDA events around a batch of copies that a spin kernel holds back until the batch is enqueued (nvbandwidth's method), after warm-up copies; pageable paths: host wall clock around synchronous cuMemcpyHtoD/DtoH (the driver stages them through its own pinned buffers, so they block the host); peer staged: CUDA events without the spin kernel".into(),
            counting: "every byte is counted once: d2d_*_gbps is the copy rate, its memory traffic (read + write) is 2× (results[].read_write_gbps, compared with the memory rate); bidirectional paths sum both directions over one interval".into(),
            host_memory: "pinned buffers: cuMemHostAlloc; pageable: ordinary heap memory; the measuring thread is pinned to the GPU's CPUs and prefers its NUMA node (data.devices[].placement)".into(),
        }
    }
}

pub struct Bandwidth;

impl Scenario for Bandwidth {
    type Params = BandwidthParams;
    type Data = BandwidthData;
    const NAME: &'static str = "bandwidth";
    const METRICS_IN_TABLES: bool = true;
    const ABOUT: &'static str =
        "Measure host<->device, device-local and peer-to-peer copy bandwidth against link rates.";
    const EXAMPLES: &'static str = "gpu-doctor bandwidth\ngpu-doctor bandwidth --size 256MiB --json -o bw.json\ngpu-doctor bandwidth --from bw.json --min-h2d-gbps 48   # new thresholds on a saved run";
    const NEEDS_CUDA: bool = true;

    fn validate(params: &BandwidthParams) -> Result<()> {
        params.plan().map(|_| ())
    }

    fn probe(params: &BandwidthParams, ctx: &RunCtx) -> Result<Probed<BandwidthData>> {
        let nvml = NvmlProbe::open()?;
        let selected = nvml.select(&ctx.opts.devices)?;
        let mut devices = Vec::new();
        for &i in &selected {
            devices.push(nvml.device_info(i)?);
        }
        let topo = nvml.topology(&selected)?;
        let data = measure(ctx, &nvml, &mut devices, &topo, params)?;
        Ok(Probed::new(data, nvml.host(), devices))
    }

    fn analyze(params: &BandwidthParams, data: &mut BandwidthData, _run: &Report) -> Analysis {
        analyze_data(data, &params.thresholds())
    }

    /// A bandwidth report, or a topo report measured with `--bandwidth`.
    fn saved_data(
        _params: &BandwidthParams,
        saved: &Report,
    ) -> Option<Result<BandwidthData, String>> {
        let found = match saved.scenario.as_str() {
            "bandwidth" => Some(&saved.data),
            "topo" => saved.data.get("bandwidth"),
            _ => None,
        }?;
        Some(serde_json::from_value(found.clone()).map_err(|e| format!("bandwidth data: {e}")))
    }

    fn render(data: &BandwidthData, _report: &Report, out: &mut String, style: Style) {
        render(data, out, style);
    }
}

/// The bandwidth tables of `data` (also under `topo --bandwidth`).
pub fn render(data: &BandwidthData, out: &mut String, style: Style) {
    let skipped = data.peers.as_ref().and_then(|p| p.skipped.as_ref());
    crate::render::bandwidth::bandwidth(
        out,
        &data.method,
        &data.results,
        &data.devices,
        skipped,
        style,
    );
}

/// The verdicts on measured (or saved) data with thresholds `t`: memory returned, then every
/// path against its link. Fills `data.results` and records `t` in it.
pub fn analyze_data(data: &mut BandwidthData, t: &Thresholds) -> Analysis {
    let mut findings: Vec<_> = data
        .devices
        .iter()
        .flat_map(|run| memory::check(&run.memory_check(), run.index))
        .collect();
    let a = analysis::analyze(&data.facts.samples, &data.facts.links, t);
    findings.extend(a.findings);
    data.results = a.results;
    data.thresholds = t.clone();
    Analysis {
        findings,
        metrics: a.metrics,
    }
}

/// Measures the GPUs in `devices` (their topology in `topo`; their CUDA ordinals are filled
/// in) as `params` plan it and returns the data to store, results not yet analysed. Its driver
/// calls are steps of `ctx`. Used by `bandwidth`, `topo --bandwidth` and `health --thorough`.
pub fn measure(
    ctx: &RunCtx,
    nvml: &NvmlProbe,
    devices: &mut [DeviceInfo],
    topo: &TopoFacts,
    params: &BandwidthParams,
) -> Result<BandwidthData> {
    let mut plan = params.plan()?;
    loader::load_cuda()?;
    let (pairs, skipped_reason) = analysis::plan_peer_pairs(
        devices.len(),
        topology::switched(topo),
        analysis::peer_pair_seconds(
            plan.size as u64,
            plan.samples,
            plan.copies,
            plan.warmup,
            plan.slow_copies,
        ),
        params.p2p_budget.duration().as_secs_f64(),
    );
    plan.pairs = pairs;
    let plan = &plan;
    let mut targets = Vec::new();
    for d in devices.iter_mut() {
        let dev = cuda::device_for_bus_id(&d.pci_bus_id)?;
        d.cuda_ordinal = Some(dev as u32);
        let g = topo.gpus.iter().find(|g| g.index == d.index);
        targets.push(Target {
            index: d.index,
            cuda: dev,
            cpus: g.and_then(|g| g.cpu_affinity.clone()),
            numa_node: g.and_then(|g| g.numa_node()),
        });
    }
    let peers = plan.p2p && targets.len() > 1;
    let units = targets.len() as u64 * probe::device_units(plan)
        + if peers {
            probe::planned_peer_units(plan, targets.len())
        } else {
            0
        };
    let bar = ctx.progress(units, "bandwidth");
    let link_now = |i: u32| nvml.pcie_link_now(i);
    let hooks = Hooks {
        progress: &bar,
        link_now: &link_now,
    };
    let mut data = BandwidthData {
        method: Method::of(plan),
        thresholds: params.thresholds(),
        ..Default::default()
    };
    let mut samples = Vec::new();
    for t in &targets {
        // A fresh thread per GPU: pinned to the GPU's CPUs, preferring its NUMA node, so the
        // host buffers it touches first are local to the GPU.
        let watch = Watch::start(ctx, &[t.index]);
        let mut run = on_own_thread(|| {
            let rec = Steps::new(ctx);
            probe::measure_device(&rec, t, plan, topo.host_numa_nodes, &hooks)
        })?;
        run.memory_watch = watch.finish().pop();
        samples.append(&mut run.samples);
        data.devices.push(run);
        if ctx.interrupted() {
            break;
        }
    }
    if peers && !ctx.interrupted() {
        let mut run = on_own_thread(|| {
            let rec = Steps::new(ctx);
            probe::measure_peers(&rec, &targets, plan, &hooks)
        });
        samples.append(&mut run.samples);
        if let (Some(pairs), Some(reason)) = (&plan.pairs, skipped_reason) {
            let skipped = (0..targets.len())
                .flat_map(|i| (0..targets.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| i != j && !pairs.contains(&(i, j)))
                .map(|(i, j)| (targets[i].index, targets[j].index))
                .collect();
            run.skipped = Some(SkippedPairs {
                pairs: skipped,
                reason,
            });
        }
        data.peers = Some(run);
    }
    bar.finish_and_clear();

    data.facts = BandwidthFacts {
        samples,
        links: links_of(devices, topo, nvml, &data.devices),
    };
    for d in devices.iter() {
        let processes = nvml.processes(d.index);
        if !processes.is_empty() {
            data.processes.push(DeviceProcesses {
                device: d.index,
                processes,
            });
        }
    }
    Ok(data)
}

/// Runs `f` on a fresh thread (its CPU affinity and memory policy stay its own), re-raising
/// its panic here.
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Link facts for the analysis: topology (PCIe, NVLink, NUMA) + memory bus + what the run saw.
fn links_of(
    devices: &[DeviceInfo],
    topo: &TopoFacts,
    nvml: &NvmlProbe,
    runs: &[DeviceRun],
) -> Links {
    let mut links = Links::default();
    for g in &topo.gpus {
        let run = runs.iter().find(|r| r.index == g.index);
        let (bus, clock) = nvml.memory_bus(g.index);
        links.devices.push(DeviceLinks {
            index: g.index,
            pci_bus_id: g.pci_bus_id.clone(),
            compute_capability: devices
                .iter()
                .find(|d| d.index == g.index)
                .and_then(|d| d.compute_capability.clone()),
            pcie: g.pcie.clone(),
            pcie_gen_under_load: run.and_then(|r| r.pcie_gen_under_load),
            pcie_width_under_load: run.and_then(|r| r.pcie_width_under_load),
            memory_bus_width_bits: bus.or(run.and_then(|r| r.cuda_memory_bus_width_bits)),
            memory_clock_max_mhz: clock
                .or(run.and_then(|r| r.cuda_memory_clock_khz.map(|k| k / 1000))),
            nvlinks: g.nvlinks.clone(),
            numa_node: g.numa_node(),
            host_buffer_node: run.and_then(|r| r.placement.pinned_buffer_node),
        });
    }
    for p in &topo.pairs {
        let (Some(a), Some(b)) = (
            topo.gpus.iter().find(|g| g.index == p.a),
            topo.gpus.iter().find(|g| g.index == p.b),
        ) else {
            continue;
        };
        links.pairs.push(PairLink {
            a: p.a,
            b: p.b,
            nvlinks: topology::nvlink_count(a, b).max(topology::nvlink_count(b, a)),
        });
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::bandwidth::{PathSamples, path};
    use crate::report::codes;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        p: BandwidthParams,
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("0.5GiB"), Ok(512 << 20));
        assert!(parse_size("1KiB").unwrap_err().contains("minimum"));
        assert!(
            parse_size("1000017")
                .unwrap_err()
                .contains("multiple of 16")
        );
        assert!(
            parse_size("12parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("128GiB").unwrap_err().contains("maximum"));
    }

    #[test]
    fn cli_defaults_equal_serde_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(
            serde_json::to_value(&cli.p).unwrap(),
            serde_json::to_value(BandwidthParams::default()).unwrap()
        );
        let cli = Cli::try_parse_from(["x", "--size", "64MiB", "--min-efficiency", "0.9"]).unwrap();
        assert_eq!(cli.p.size, 64 << 20);
        assert_eq!(cli.p.thresholds().min_efficiency, 0.9);
    }

    #[test]
    fn suite_params_accept_text_or_bytes_and_reject_unknown_fields() {
        let p: BandwidthParams =
            serde_json::from_value(serde_json::json!({"size": "64MiB"})).unwrap();
        assert_eq!(p.size, 64 << 20);
        assert_eq!(p.copies, 16);
        let p: BandwidthParams =
            serde_json::from_value(serde_json::json!({"size": 1048576})).unwrap();
        assert_eq!(p.size, 1 << 20);
        assert!(
            serde_json::from_value::<BandwidthParams>(serde_json::json!({"size": 17})).is_err()
        );
        assert!(serde_json::from_value::<BandwidthParams>(serde_json::json!({"sise": 1})).is_err());
    }

    #[test]
    fn plan_rejects_zero_counts() {
        let p = BandwidthParams {
            samples: 0,
            ..Default::default()
        };
        let e = p.plan().unwrap_err();
        assert_eq!(crate::error::exit_code_of(&e), crate::error::exit::USAGE);
        let plan = BandwidthParams::default().plan().unwrap();
        assert_eq!(plan.size, 512 << 20);
        assert!(plan.pageable && plan.p2p);
    }

    fn saved_report() -> Report {
        let mut r = Report::begin("bandwidth", serde_json::json!({}));
        let links = Links {
            devices: vec![DeviceLinks {
                index: 0,
                pcie: crate::facts::PcieFacts {
                    max_gen: Some(5),
                    max_width: Some(16),
                    ..Default::default()
                },
                ..Default::default()
            }],
            pairs: vec![],
        };
        let s = |p: &str, gbps: f64| PathSamples {
            path: p.into(),
            device: 0,
            bytes: 1_000_000_000,
            copies: 1,
            seconds: vec![1.0 / gbps],
            timing: "cuda_events".into(),
            verified: Some(true),
            ..Default::default()
        };
        let data = BandwidthData {
            facts: BandwidthFacts {
                samples: vec![s(path::H2D_PINNED, 26.0), s(path::D2H_PINNED, 26.0)],
                links,
            },
            ..Default::default()
        };
        r.data = serde_json::to_value(data).unwrap();
        r
    }

    #[test]
    fn saved_data_is_found_and_reanalysed_with_new_thresholds() {
        let saved = saved_report();
        let p = BandwidthParams::default();
        let mut data = Bandwidth::saved_data(&p, &saved).unwrap().unwrap();
        let a = analyze_data(&mut data.clone(), &Thresholds::default());
        assert_eq!(
            a.findings
                .iter()
                .filter(|f| f.code == codes::BANDWIDTH_LOW)
                .count(),
            2
        );
        assert!((a.metrics["h2d_pinned_gbps"].value - 26.0).abs() < 1e-9);
        let lenient = Thresholds {
            min_efficiency: 0.4,
            ..Default::default()
        };
        let a = analyze_data(&mut data, &lenient);
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        assert_eq!(data.results.len(), 2);
        assert_eq!(data.thresholds, lenient, "the thresholds used are recorded");

        // Inside a topo report measured with --bandwidth; not in an info report.
        let mut topo = Report::begin("topo", serde_json::json!({}));
        topo.data = serde_json::json!({ "bandwidth": saved.data.clone() });
        assert!(Bandwidth::saved_data(&p, &topo).unwrap().is_ok());
        let info = Report::begin("info", serde_json::json!({}));
        assert!(Bandwidth::saved_data(&p, &info).is_none());
    }
}
