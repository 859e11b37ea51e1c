//! Bandwidth: raw copy timings + link facts → rates, theoretical link rates, efficiencies,
//! metrics and findings. Pure: `gpu-doctor bandwidth --from REPORT.json` re-runs it on the
//! facts a report stores (`data.facts`), with thresholds given on the command line.
//!
//! GB/s means 10^9 bytes per second everywhere.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::bandwidth::{DeviceLinks, Links, PathSamples, path};
use crate::report::{Better, Finding, Metric, MetricKind, Severity, Spread, codes};

/// Limits below which a finding is raised.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Thresholds {
    /// Pinned H2D / D2H below this fraction of the PCIe rate → BANDWIDTH_LOW (fail).
    pub min_efficiency: f64,
    /// Absolute floors for pinned H2D / D2H in GB/s (override the fraction when given).
    pub min_h2d_gbps: Option<f64>,
    pub min_d2h_gbps: Option<f64>,
    /// Device-local copies (read + write) below this fraction of the memory rate → warn.
    pub min_memory_efficiency: f64,
    /// Peer copies below this fraction of the link rate → warn.
    pub min_p2p_efficiency: f64,
    /// slower / faster direction below this → BANDWIDTH_ASYMMETRIC.
    pub min_symmetry: f64,
    /// pageable / pinned below this → PAGEABLE_SLOW (info).
    pub min_pageable_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            // Azure's H100 health check wants ≥ 48 GB/s on Gen5 x16: 48 / 63.0 = 0.76.
            min_efficiency: 0.75,
            min_h2d_gbps: None,
            min_d2h_gbps: None,
            min_memory_efficiency: 0.5,
            min_p2p_efficiency: 0.6,
            min_symmetry: 0.8,
            min_pageable_ratio: 0.2,
        }
    }
}

/// One analysed path: the rates, the theoretical rate and the efficiency.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PathResult {
    pub path: String,
    pub device: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<u32>,
    /// The metric this result is stored under.
    pub metric: String,
    /// GB/s (bytes counted once), or µs per copy for the latency path.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub unit: String,
    /// Device-local paths: the same copy counting read + write (2 × bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_write_gbps: Option<f64>,
    /// Rate of the link in the same counting as `efficiency` uses.
    pub theoretical_gbps: Option<f64>,
    /// What the theoretical rate is: "PCIe Gen5 x16", "18 × NVLink (25 GB/s)", "HBM 5120-bit @ 2619 MHz".
    pub theoretical_basis: Option<String>,
    /// median / theoretical (device-local: read + write / memory rate).
    pub efficiency: Option<f64>,
    pub timing: String,
    pub verified: Option<bool>,
}

/// What [`analyze`] returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Analysis {
    pub results: Vec<PathResult>,
    pub metrics: BTreeMap<String, Metric>,
    pub findings: Vec<Finding>,
}

/// Seconds the peer paths of one ordered pair take with these settings, roughly: the copies
/// staged through the host (~20 GB/s), the peer copies and half a bidirectional run over
/// NVLink or a switch (~300 GB/s), the read-backs that verify them, and set-up.
pub fn peer_pair_seconds(size: u64, samples: u32, copies: u32, warmup: u32, slow: u32) -> f64 {
    let gb = size as f64 / 1e9;
    let staged = f64::from(1 + samples * slow) * gb / 20.0;
    let peer = 1.5 * f64::from(warmup + samples * copies) * gb / 300.0;
    let verify = 3.0 * gb / 20.0;
    staged + peer + verify + 0.05
}

/// The ordered peer pairs (positions among `n` GPUs) to measure within `budget_s` seconds, at
/// `per_pair_s` each: every pair when they fit (None). Otherwise rings through every GPU —
/// `i → i+1`, then `i → i+2`, … — as many whole rings as fit (at least one), so every GPU is a
/// source and a destination; with the reason for the pairs left out. On an NVSwitch host
/// (`switched`) every pair crosses the same switches, so a ring represents them all.
pub fn plan_peer_pairs(
    n: usize,
    switched: bool,
    per_pair_s: f64,
    budget_s: f64,
) -> (Option<Vec<(usize, usize)>>, Option<String>) {
    let all = n * n.saturating_sub(1);
    if n < 2 || all as f64 * per_pair_s <= budget_s {
        return (None, None);
    }
    let rings = ((budget_s / (per_pair_s * n as f64)).floor() as usize).clamp(1, n - 1);
    let pairs: Vec<(usize, usize)> = (1..=rings)
        .flat_map(|k| (0..n).map(move |i| (i, (i + k) % n)))
        .collect();
    if pairs.len() == all {
        // Two GPUs: one ring is every pair.
        return (None, None);
    }
    let why = if switched {
        "every pair crosses the same NVSwitches: rings through every GPU represent them"
    } else {
        "pairs differ on this host: raise --p2p-budget to measure every one"
    };
    let reason = format!(
        "{} of {all} ordered pairs measured within --p2p-budget {budget_s:.0} s (about {per_pair_s:.1} s each); {why}",
        pairs.len()
    );
    (Some(pairs), Some(reason))
}

/// Transfer rate of one PCIe lane, one direction, after line encoding, in GB/s.
/// Gen1/2: 8b/10b; Gen3–5: 128b/130b; Gen6: FLIT mode (236 payload bytes of 256).
pub fn pcie_lane_gbps(generation: u32) -> Option<f64> {
    let (gts, efficiency) = match generation {
        1 => (2.5, 0.8),
        2 => (5.0, 0.8),
        3 => (8.0, 128.0 / 130.0),
        4 => (16.0, 128.0 / 130.0),
        5 => (32.0, 128.0 / 130.0),
        6 => (64.0, 236.0 / 256.0),
        _ => return None,
    };
    Some(gts * efficiency / 8.0)
}

/// PCIe link rate per direction in GB/s (Gen5 x16: 63.0).
pub fn pcie_gbps(generation: u32, width: u32) -> Option<f64> {
    if width == 0 {
        return None;
    }
    pcie_lane_gbps(generation).map(|l| l * width as f64)
}

/// One NVLink's rate per direction in GB/s. The GPU family decides it (P100 20, V100 / A100 /
/// H100 25, Blackwell 50); NVML's version field is used only when the compute capability is
/// unknown (its numbering differs between drivers: raw 4 or enum 6 both mean NVLink 4).
pub fn nvlink_link_gbps(compute_capability: Option<&str>, version: Option<u32>) -> Option<f64> {
    let major = compute_capability
        .and_then(|c| c.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(6) => Some(20.0),
        Some(7..=9) => Some(25.0),
        Some(m) if m >= 10 => Some(50.0),
        _ => match version? {
            1 => Some(20.0),
            2..=6 => Some(25.0),
            _ => Some(50.0),
        },
    }
}

/// Memory rate in GB/s: bus width × memory clock × 2 (double data rate). NVML reports HBM and
/// GDDR clocks so that ×2 gives the rated rate (H100 SXM: 5120 bit, 2619 MHz → 3352 GB/s).
pub fn memory_gbps(bus_width_bits: u32, clock_mhz: u32) -> Option<f64> {
    if bus_width_bits == 0 || clock_mhz == 0 {
        return None;
    }
    Some(bus_width_bits as f64 / 8.0 * clock_mhz as f64 * 1e6 * 2.0 / 1e9)
}

/// The PCIe rate a device should reach: max gen × max width (current values when max is unknown).
pub fn host_link(d: &DeviceLinks) -> Option<(f64, String)> {
    let g = d.pcie.max_gen.or(d.pcie.current_gen)?;
    let w = d.pcie.max_width.or(d.pcie.current_width)?;
    pcie_gbps(g, w).map(|r| (r, format!("PCIe Gen{g} x{w}")))
}

fn memory_link(d: &DeviceLinks) -> Option<(f64, String)> {
    let (w, c) = (d.memory_bus_width_bits?, d.memory_clock_max_mhz?);
    memory_gbps(w, c).map(|r| (r, format!("memory {w}-bit @ {c} MHz × 2")))
}

fn peer_link(links: &Links, a: u32, b: u32) -> Option<(f64, String)> {
    let da = links.devices.iter().find(|d| d.index == a)?;
    let db = links.devices.iter().find(|d| d.index == b)?;
    let n = links
        .pairs
        .iter()
        .find(|p| (p.a, p.b) == (a, b) || (p.a, p.b) == (b, a))
        .map(|p| p.nvlinks)
        .unwrap_or(0);
    if n > 0 {
        let version = da.nvlinks.iter().find_map(|l| l.version);
        let per = nvlink_link_gbps(da.compute_capability.as_deref(), version)?;
        return Some((per * n as f64, format!("{n} × NVLink ({per:.0} GB/s)")));
    }
    let (ra, la) = host_link(da)?;
    let (rb, lb) = host_link(db)?;
    Some(if ra <= rb { (ra, la) } else { (rb, lb) })
}

/// Metric name of a path. Device paths get `.gpu<N>` when several devices were measured.
pub fn metric_name(s: &PathSamples, multi_gpu: bool) -> String {
    match (s.path.as_str(), s.peer) {
        (path::P2P_LATENCY, Some(b)) => format!("p2p_{}_{}_latency_us", s.device, b),
        (p, Some(b)) => format!("{p}_{}_{b}_gbps", s.device),
        (p, None) if multi_gpu => format!("{p}_gbps.gpu{}", s.device),
        (p, None) => format!("{p}_gbps"),
    }
}

/// How far a path's rate holds from run to run: pinned, device-local and peer copies are
/// steady; copies the host stages or times, bidirectional sums and small-copy latency swing.
pub fn path_kind(p: &str) -> MetricKind {
    match p {
        path::H2D_PINNED | path::D2H_PINNED | path::D2D_CE | path::D2D_SM | path::P2P => {
            MetricKind::Throughput
        }
        _ => MetricKind::Volatile,
    }
}

fn label(path: &str) -> &'static str {
    match path {
        path::H2D_PINNED => "H2D pinned",
        path::D2H_PINNED => "D2H pinned",
        path::BIDIR_PINNED => "bidirectional pinned",
        path::H2D_PAGEABLE => "H2D pageable",
        path::D2H_PAGEABLE => "D2H pageable",
        path::D2D_CE => "device copy (copy engine)",
        path::D2D_SM => "device copy (SM kernel)",
        path::P2P => "P2P",
        path::P2P_STAGED => "P2P staged through host",
        path::P2P_BIDIR => "P2P bidirectional",
        path::P2P_LATENCY => "P2P latency",
        _ => "copy",
    }
}

fn who(r: &PathResult) -> String {
    match r.peer {
        Some(b) => format!("GPU{}→GPU{b}", r.device),
        None => format!("GPU{}", r.device),
    }
}

/// Rates, theoretical rates, metrics and findings from raw samples and link facts.
pub fn analyze(samples: &[PathSamples], links: &Links, t: &Thresholds) -> Analysis {
    let mut devices: Vec<u32> = samples
        .iter()
        .filter(|s| s.peer.is_none())
        .map(|s| s.device)
        .collect();
    devices.sort_unstable();
    devices.dedup();
    let multi_gpu = devices.len() > 1;
    let mut out = Analysis::default();

    for s in samples {
        let valid: Vec<f64> = s
            .seconds
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        if valid.is_empty() || s.bytes == 0 {
            continue;
        }
        let metric = metric_name(s, multi_gpu);
        let dev = links.devices.iter().find(|d| d.index == s.device);
        let mut r = PathResult {
            path: s.path.clone(),
            device: s.device,
            peer: s.peer,
            metric: metric.clone(),
            timing: s.timing.clone(),
            verified: s.verified,
            ..Default::default()
        };
        if s.path == path::P2P_LATENCY {
            let per_copy: Vec<f64> = valid
                .iter()
                .map(|x| x / s.copies.max(1) as f64 * 1e6)
                .collect();
            let Some(spread) = Spread::of(&per_copy) else {
                continue;
            };
            (r.median, r.min, r.max) = (spread.median, spread.min, spread.max);
            r.unit = "us".into();
            out.metrics.insert(
                metric,
                Metric::new(r.median, "us", Better::Lower)
                    .device(s.device)
                    .kind(path_kind(&s.path))
                    .spread(Some(spread)),
            );
            out.results.push(r);
            continue;
        }
        let rates: Vec<f64> = valid.iter().map(|x| s.bytes as f64 / x / 1e9).collect();
        let Some(spread) = Spread::of(&rates) else {
            continue;
        };
        (r.median, r.min, r.max) = (spread.median, spread.min, spread.max);
        r.unit = "GB/s".into();
        let link = match s.path.as_str() {
            path::H2D_PINNED | path::D2H_PINNED | path::H2D_PAGEABLE | path::D2H_PAGEABLE => {
                dev.and_then(host_link)
            }
            path::BIDIR_PINNED => dev
                .and_then(host_link)
                .map(|(r, l)| (2.0 * r, format!("2 × {l}"))),
            path::D2D_CE | path::D2D_SM => {
                r.read_write_gbps = Some(2.0 * r.median);
                dev.and_then(memory_link)
            }
            path::P2P | path::P2P_STAGED => s.peer.and_then(|b| peer_link(links, s.device, b)),
            path::P2P_BIDIR => s
                .peer
                .and_then(|b| peer_link(links, s.device, b))
                .map(|(r, l)| (2.0 * r, format!("2 × {l}"))),
            _ => None,
        };
        if let Some((rate, basis)) = link {
            let counted = r.read_write_gbps.unwrap_or(r.median);
            r.theoretical_gbps = Some(rate);
            r.theoretical_basis = Some(basis);
            r.efficiency = Some(counted / rate);
        }
        out.metrics.insert(
            metric,
            Metric::new(r.median, "GB/s", Better::Higher)
                .device(s.device)
                .kind(path_kind(&s.path))
                .spread(Some(spread)),
        );
        out.results.push(r);
    }
    out.findings = findings(&out.results, links, t);
    out
}

fn find<'a>(
    results: &'a [PathResult],
    p: &str,
    device: u32,
    peer: Option<u32>,
) -> Option<&'a PathResult> {
    results
        .iter()
        .find(|r| r.path == p && r.device == device && r.peer == peer)
}

fn findings(results: &[PathResult], links: &Links, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in results.iter().filter(|r| r.verified == Some(false)) {
        out.push(
            Finding::new(
                Severity::Fail,
                codes::COPY_MISMATCH,
                format!(
                    "{} {}: the copied data differs from the source",
                    who(r),
                    label(&r.path)
                ),
            )
            .device(r.device)
            .hint("Data corruption on this path: check `gpu-doctor info` for ECC / row-remap errors and `dmesg` for Xid messages; drain the node."),
        );
    }
    // Pinned host link: the health-check threshold.
    for (p, floor) in [
        (path::H2D_PINNED, t.min_h2d_gbps),
        (path::D2H_PINNED, t.min_d2h_gbps),
    ] {
        for r in results.iter().filter(|r| r.path == p) {
            let dev = links.devices.iter().find(|d| d.index == r.device);
            let below_floor = floor.is_some_and(|f| r.median < f);
            let below_eff = r.efficiency.is_some_and(|e| e < t.min_efficiency);
            if !below_floor && !below_eff {
                continue;
            }
            let mut msg = format!("{} {} {:.1} GB/s", who(r), label(p), r.median);
            if let (Some(e), Some(th), Some(b)) =
                (r.efficiency, r.theoretical_gbps, &r.theoretical_basis)
            {
                msg += &format!(" is {e:.2} of {b} ({th:.1} GB/s)");
            }
            if below_eff {
                msg += &format!(", below {:.2}", t.min_efficiency);
            }
            if let Some(f) = floor.filter(|_| below_floor) {
                msg += &format!(", below the floor of {f:.1} GB/s");
            }
            if let Some(d) = dev {
                if let (Some(g), Some(w)) = (d.pcie_gen_under_load, d.pcie_width_under_load) {
                    let (mg, mw) = (d.pcie.max_gen.unwrap_or(g), d.pcie.max_width.unwrap_or(w));
                    if g < mg || w < mw {
                        msg += &format!(
                            " — the link ran at Gen{g} x{w} under load (max Gen{mg} x{mw})"
                        );
                    }
                }
                if let (Some(n), Some(h)) = (d.numa_node, d.host_buffer_node)
                    && n != h
                {
                    msg += &format!(" — the host buffer was on NUMA node {h}, the GPU on node {n}");
                }
            }
            out.push(
                Finding::new(Severity::Fail, codes::BANDWIDTH_LOW, msg)
                    .device(r.device)
                    .hint("Check the link's trained speed (`gpu-doctor topo`, `lspci -vv` LnkSta), risers and retimers, IOMMU / ACS settings, and that nothing else copies at the same time; a link below Gen max under load points at the slot or the cable."),
            );
        }
    }
    // Device-local and peer copies: warnings.
    for r in results {
        let (th, what) = match r.path.as_str() {
            path::D2D_CE | path::D2D_SM => (t.min_memory_efficiency, "memory"),
            path::P2P | path::P2P_BIDIR => (t.min_p2p_efficiency, "link"),
            _ => continue,
        };
        if let (Some(e), Some(b)) = (r.efficiency, &r.theoretical_basis)
            && e < th
        {
            let rw = if r.read_write_gbps.is_some() {
                " counting read + write"
            } else {
                ""
            };
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::BANDWIDTH_LOW,
                    format!(
                        "{} {} {:.1} GB/s is {e:.2} of the {what} rate{rw} ({b}), below {th:.2}",
                        who(r),
                        label(&r.path),
                        r.median
                    ),
                )
                .device(r.device)
                .hint(if what == "memory" {
                    "Check clocks and throttling (`gpu-doctor info`: clock event reasons, power) and other processes on the GPU."
                } else {
                    "Check NVLink state (`gpu-doctor topo`: inactive links), the NVSwitch fabric manager, and other traffic on the link."
                }),
            );
        }
    }
    // Direction asymmetry: host link per device, peer links per pair.
    for h in results.iter().filter(|r| r.path == path::H2D_PINNED) {
        if let Some(d) = find(results, path::D2H_PINNED, h.device, None) {
            asymmetry(&mut out, h, d, t, "H2D", "D2H");
        }
    }
    for ab in results
        .iter()
        .filter(|r| r.path == path::P2P && r.peer.is_some_and(|b| b > r.device))
    {
        let b = ab.peer.unwrap_or_default();
        if let Some(ba) = find(results, path::P2P, b, Some(ab.device)) {
            let (x, y) = (
                format!("GPU{}→GPU{b}", ab.device),
                format!("GPU{b}→GPU{}", ab.device),
            );
            asymmetry(&mut out, ab, ba, t, &x, &y);
        }
    }
    // Pageable far below pinned.
    for (pg, pn) in [
        (path::H2D_PAGEABLE, path::H2D_PINNED),
        (path::D2H_PAGEABLE, path::D2H_PINNED),
    ] {
        for r in results.iter().filter(|r| r.path == pg) {
            if let Some(p) = find(results, pn, r.device, None)
                && p.median > 0.0
                && r.median / p.median < t.min_pageable_ratio
            {
                out.push(
                    Finding::new(
                        Severity::Info,
                        codes::PAGEABLE_SLOW,
                        format!(
                            "{} {} {:.1} GB/s is {:.2} of pinned ({:.1} GB/s)",
                            who(r),
                            label(pg),
                            r.median,
                            r.median / p.median,
                            p.median
                        ),
                    )
                    .device(r.device)
                    .hint("Pageable copies go through the driver's staging buffers and the CPU: pin host buffers (cudaHostAlloc / cudaHostRegister, PyTorch pin_memory=True) for full link speed."),
                );
            }
        }
    }
    // Peer access slower than staging through the host.
    for r in results.iter().filter(|r| r.path == path::P2P) {
        if let Some(s) = find(results, path::P2P_STAGED, r.device, r.peer)
            && r.median < s.median
        {
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::P2P_SLOWER_THAN_HOST,
                    format!(
                        "{} peer copy {:.1} GB/s is slower than staging through the host ({:.1} GB/s)",
                        who(r),
                        r.median,
                        s.median
                    ),
                )
                .device(r.device)
                .hint("P2P over this PCIe path is throttled (PCIe switch ACS redirecting through the root complex, IOMMU on, or a chipset that forwards P2P slowly): disable ACS on the switch ports or let NCCL avoid P2P (NCCL_P2P_LEVEL)."),
            );
        }
    }
    out
}

fn asymmetry(
    out: &mut Vec<Finding>,
    x: &PathResult,
    y: &PathResult,
    t: &Thresholds,
    xn: &str,
    yn: &str,
) {
    let (lo, hi) = if x.median <= y.median {
        (x.median, y.median)
    } else {
        (y.median, x.median)
    };
    if hi <= 0.0 || lo / hi >= t.min_symmetry {
        return;
    }
    out.push(
        Finding::new(
            Severity::Warn,
            codes::BANDWIDTH_ASYMMETRIC,
            format!(
                "GPU{}: {xn} {:.1} GB/s vs {yn} {:.1} GB/s (ratio {:.2}, below {:.2})",
                x.device,
                x.median,
                y.median,
                lo / hi,
                t.min_symmetry
            ),
        )
        .device(x.device)
        .hint("One direction of the link underperforms: check PCIe MaxPayload / MaxReadReq (`lspci -vv`), relaxed ordering, and the NUMA placement of the host buffer."),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PcieFacts;
    use crate::facts::bandwidth::{BandwidthFacts, PairLink};

    const GIB: u64 = 1 << 30;

    #[test]
    fn every_peer_pair_when_the_budget_allows() {
        assert_eq!(plan_peer_pairs(2, true, 1.0, 10.0), (None, None));
        assert_eq!(plan_peer_pairs(1, true, 100.0, 1.0), (None, None));
        assert_eq!(
            plan_peer_pairs(2, true, 100.0, 1.0),
            (None, None),
            "a ring of 2"
        );
    }

    #[test]
    fn rings_through_every_gpu_when_it_does_not() {
        // 8 GPUs, 56 pairs at 1 s: a 20 s budget fits two rings of 8.
        let (pairs, why) = plan_peer_pairs(8, true, 1.0, 20.0);
        let pairs = pairs.expect("a subset");
        assert_eq!(pairs.len(), 16);
        for g in 0..8 {
            assert!(pairs.iter().any(|&(a, _)| a == g), "GPU {g} a source");
            assert!(pairs.iter().any(|&(_, b)| b == g), "GPU {g} a destination");
        }
        assert!(pairs.contains(&(7, 0)) && pairs.contains(&(7, 1)));
        let why = why.expect("a reason");
        assert!(why.starts_with("16 of 56 ordered pairs"), "{why}");
        assert!(why.contains("NVSwitch"), "{why}");
        // A budget below one ring still measures one; a PCIe host says to raise the budget.
        let (pairs, why) = plan_peer_pairs(4, false, 5.0, 1.0);
        assert_eq!(pairs.map(|p| p.len()), Some(4));
        assert!(why.unwrap().contains("--p2p-budget"));
    }

    #[test]
    fn default_settings_fit_every_pair_of_two_gpus() {
        let p = crate::scenarios::bandwidth::BandwidthParams::default();
        let plan = p.plan().unwrap();
        let per_pair = peer_pair_seconds(
            plan.size as u64,
            plan.samples,
            plan.copies,
            plan.warmup,
            plan.slow_copies,
        );
        assert!(per_pair > 0.1 && per_pair < 5.0, "{per_pair}");
        let budget = p.p2p_budget.duration().as_secs_f64();
        assert_eq!(plan_peer_pairs(2, true, per_pair, budget).0, None);
        assert!(plan_peer_pairs(8, true, per_pair, budget).0.is_some());
    }

    fn h100_links() -> Links {
        Links {
            devices: vec![DeviceLinks {
                index: 0,
                pci_bus_id: "00000000:18:00.0".into(),
                compute_capability: Some("9.0".into()),
                pcie: PcieFacts {
                    current_gen: Some(5),
                    max_gen: Some(5),
                    gpu_max_gen: Some(5),
                    current_width: Some(16),
                    max_width: Some(16),
                    replay_counter: Some(0),
                },
                pcie_gen_under_load: Some(5),
                pcie_width_under_load: Some(16),
                memory_bus_width_bits: Some(5120),
                memory_clock_max_mhz: Some(2619),
                nvlinks: vec![],
                numa_node: Some(0),
                host_buffer_node: Some(0),
            }],
            pairs: vec![],
        }
    }

    /// Samples that move `bytes` per sample at `gbps` (with ±1 % spread).
    fn at(p: &str, device: u32, peer: Option<u32>, gbps: f64) -> PathSamples {
        let bytes = 8 * GIB;
        let s = bytes as f64 / (gbps * 1e9);
        PathSamples {
            path: p.into(),
            device,
            peer,
            bytes,
            copies: 16,
            seconds: vec![s * 1.01, s, s * 0.99],
            timing: "cuda_events".into(),
            verified: Some(true),
            note: None,
        }
    }

    fn healthy() -> Vec<PathSamples> {
        vec![
            at(path::H2D_PINNED, 0, None, 54.3),
            at(path::D2H_PINNED, 0, None, 54.8),
            at(path::H2D_PAGEABLE, 0, None, 16.9),
            at(path::D2H_PAGEABLE, 0, None, 11.8),
            at(path::BIDIR_PINNED, 0, None, 100.0),
            at(path::D2D_CE, 0, None, 1489.0),
            at(path::D2D_SM, 0, None, 1500.0),
        ]
    }

    fn codes_of(a: &Analysis) -> Vec<&str> {
        a.findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn pcie_rates_after_encoding() {
        let close = |a: f64, b: f64| (a - b).abs() < 0.01;
        assert!(close(pcie_gbps(1, 16).unwrap(), 4.0));
        assert!(close(pcie_gbps(2, 16).unwrap(), 8.0));
        assert!(close(pcie_gbps(3, 16).unwrap(), 15.754));
        assert!(close(pcie_gbps(4, 16).unwrap(), 31.508));
        assert!(close(pcie_gbps(5, 16).unwrap(), 63.015));
        assert!(close(pcie_gbps(5, 8).unwrap(), 31.508));
        assert!(pcie_gbps(7, 16).is_none() && pcie_gbps(5, 0).is_none());
        // Azure's 48 GB/s on Gen5 x16 is about the 0.75 default.
        assert!((48.0 / pcie_gbps(5, 16).unwrap() - 0.76).abs() < 0.01);
    }

    #[test]
    fn nvlink_and_memory_rates() {
        // H100: 18 links × 25 GB/s per direction = 450 GB/s, whatever NVML's version numbering.
        for v in [Some(4), Some(6), Some(7), None] {
            assert_eq!(nvlink_link_gbps(Some("9.0"), v), Some(25.0));
        }
        assert_eq!(nvlink_link_gbps(Some("8.0"), None), Some(25.0));
        assert_eq!(nvlink_link_gbps(Some("6.0"), None), Some(20.0));
        assert_eq!(nvlink_link_gbps(Some("10.0"), None), Some(50.0));
        assert_eq!(nvlink_link_gbps(None, Some(1)), Some(20.0));
        assert_eq!(nvlink_link_gbps(None, None), None);
        // H100 SXM: 5120-bit HBM3 at 2619 MHz DDR = 3352 GB/s.
        assert!((memory_gbps(5120, 2619).unwrap() - 3352.3).abs() < 0.1);
        assert!(memory_gbps(0, 2619).is_none());
    }

    #[test]
    fn healthy_h100_gives_metrics_and_no_finding() {
        let a = analyze(&healthy(), &h100_links(), &Thresholds::default());
        // 11.8 / 54.8 = 0.215 ≥ 0.2: no finding at all on the reference numbers.
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        let h2d = &a.metrics["h2d_pinned_gbps"];
        assert!((h2d.value - 54.3).abs() < 0.01);
        assert_eq!(h2d.better, Better::Higher);
        assert_eq!(h2d.unit, "GB/s");
        for m in [
            "d2h_pinned_gbps",
            "bidir_pinned_gbps",
            "h2d_pageable_gbps",
            "d2h_pageable_gbps",
            "d2d_ce_gbps",
            "d2d_sm_gbps",
        ] {
            assert!(a.metrics.contains_key(m), "{m}");
        }
        let r = a
            .results
            .iter()
            .find(|r| r.path == path::H2D_PINNED)
            .unwrap();
        assert_eq!(r.theoretical_basis.as_deref(), Some("PCIe Gen5 x16"));
        assert!((r.efficiency.unwrap() - 54.3 / 63.015).abs() < 0.001);
        assert!(r.min < r.median && r.median < r.max);
        // The metric says how far it holds: its kind, and the samples' spread.
        assert_eq!(h2d.kind, Some(MetricKind::Throughput));
        let sp = h2d.spread.as_ref().unwrap();
        assert_eq!(
            (sp.n, sp.min, sp.median, sp.max),
            (3, r.min, r.median, r.max)
        );
        assert!(sp.mad > 0.0 && sp.mad < 0.02 * sp.median, "{sp:?}");
        assert_eq!(
            a.metrics["h2d_pageable_gbps"].kind,
            Some(MetricKind::Volatile)
        );
        assert_eq!(
            a.metrics["bidir_pinned_gbps"].kind,
            Some(MetricKind::Volatile)
        );
        assert_eq!(a.metrics["d2d_ce_gbps"].kind, Some(MetricKind::Throughput));
        let bidir = a
            .results
            .iter()
            .find(|r| r.path == path::BIDIR_PINNED)
            .unwrap();
        assert!((bidir.theoretical_gbps.unwrap() - 126.03).abs() < 0.01);
        // Device copy: bytes once in the metric, read + write against the memory rate.
        let ce = a.results.iter().find(|r| r.path == path::D2D_CE).unwrap();
        assert!((ce.read_write_gbps.unwrap() - 2978.0).abs() < 0.5);
        assert!((ce.efficiency.unwrap() - 2978.0 / 3352.3).abs() < 0.001);
    }

    #[test]
    fn gen5_link_at_gen4_rates_is_low_and_names_the_trained_link() {
        let mut s = healthy();
        s[0] = at(path::H2D_PINNED, 0, None, 26.0);
        s[1] = at(path::D2H_PINNED, 0, None, 26.3);
        let mut links = h100_links();
        links.devices[0].pcie_gen_under_load = Some(4);
        let a = analyze(&s, &links, &Thresholds::default());
        let low: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.code == codes::BANDWIDTH_LOW)
            .collect();
        assert_eq!(low.len(), 2, "{:?}", a.findings);
        assert!(low.iter().all(|f| f.severity == Severity::Fail));
        assert!(
            low[0].message.contains("PCIe Gen5 x16"),
            "{}",
            low[0].message
        );
        assert!(
            low[0].message.contains("Gen4 x16 under load"),
            "{}",
            low[0].message
        );
        // Pageable is no longer far below pinned.
        assert!(!codes_of(&a).contains(&codes::PAGEABLE_SLOW));
    }

    #[test]
    fn thresholds_are_overridable() {
        let s = healthy();
        let strict = Thresholds {
            min_efficiency: 0.9,
            ..Default::default()
        };
        let a = analyze(&s, &h100_links(), &strict);
        assert_eq!(
            codes_of(&a)
                .iter()
                .filter(|c| **c == codes::BANDWIDTH_LOW)
                .count(),
            2
        );
        let floor = Thresholds {
            min_h2d_gbps: Some(55.0),
            ..Default::default()
        };
        let a = analyze(&s, &h100_links(), &floor);
        assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
        assert!(a.findings[0].message.contains("floor of 55.0"));
        // Without link facts the fraction cannot apply, the absolute floor still does.
        let a = analyze(&s, &Links::default(), &floor);
        assert_eq!(codes_of(&a), vec![codes::BANDWIDTH_LOW]);
        assert!(a.results.iter().all(|r| r.efficiency.is_none()));
    }

    #[test]
    fn asymmetric_directions_and_slow_pageable() {
        let mut s = healthy();
        s[1] = at(path::D2H_PINNED, 0, None, 40.0);
        s[3] = at(path::D2H_PAGEABLE, 0, None, 5.0);
        let a = analyze(&s, &h100_links(), &Thresholds::default());
        let c = codes_of(&a);
        assert!(c.contains(&codes::BANDWIDTH_ASYMMETRIC), "{c:?}");
        assert!(c.contains(&codes::PAGEABLE_SLOW), "{c:?}");
        let p = a
            .findings
            .iter()
            .find(|f| f.code == codes::PAGEABLE_SLOW)
            .unwrap();
        assert_eq!(p.severity, Severity::Info);
        assert!(p.hint.as_deref().unwrap().contains("pin"));
        // 40 / 63 = 0.63 is also below the efficiency threshold.
        assert!(c.contains(&codes::BANDWIDTH_LOW));
    }

    #[test]
    fn failed_verification_fails() {
        let mut s = healthy();
        s[5].verified = Some(false);
        let a = analyze(&s, &h100_links(), &Thresholds::default());
        let f = &a.findings[0];
        assert_eq!(
            (f.code.as_str(), f.severity),
            (codes::COPY_MISMATCH, Severity::Fail)
        );
        assert!(f.message.contains("copy engine"));
    }

    fn two_gpus(nvlinks: u32) -> Links {
        let mut l = h100_links();
        let mut b = l.devices[0].clone();
        b.index = 1;
        b.pci_bus_id = "00000000:2a:00.0".into();
        l.devices.push(b);
        l.pairs.push(PairLink {
            a: 0,
            b: 1,
            nvlinks,
        });
        l
    }

    #[test]
    fn peer_paths_names_rates_and_findings() {
        let mut s: Vec<PathSamples> = healthy();
        let mut s1 = healthy();
        for x in &mut s1 {
            x.device = 1;
        }
        s.extend(s1);
        s.push(at(path::P2P, 0, Some(1), 380.0));
        s.push(at(path::P2P, 1, Some(0), 370.0));
        s.push(at(path::P2P_STAGED, 0, Some(1), 20.0));
        s.push(at(path::P2P_BIDIR, 0, Some(1), 700.0));
        let mut lat = at(path::P2P_LATENCY, 0, Some(1), 1.0);
        lat.copies = 100;
        lat.seconds = vec![250e-6, 240e-6, 260e-6];
        s.push(lat);
        let a = analyze(&s, &two_gpus(18), &Thresholds::default());
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        assert!(a.metrics.contains_key("h2d_pinned_gbps.gpu0"));
        assert!(a.metrics.contains_key("d2d_sm_gbps.gpu1"));
        assert!(!a.metrics.contains_key("h2d_pinned_gbps"));
        let p = a
            .results
            .iter()
            .find(|r| r.metric == "p2p_0_1_gbps")
            .unwrap();
        assert_eq!(p.theoretical_gbps, Some(450.0));
        assert_eq!(
            p.theoretical_basis.as_deref(),
            Some("18 × NVLink (25 GB/s)")
        );
        assert!(a.metrics.contains_key("p2p_staged_0_1_gbps"));
        let bi = a
            .results
            .iter()
            .find(|r| r.path == path::P2P_BIDIR)
            .unwrap();
        assert_eq!(bi.theoretical_gbps, Some(900.0));
        let l = &a.metrics["p2p_0_1_latency_us"];
        assert_eq!((l.better, l.unit.as_str()), (Better::Lower, "us"));
        assert!((l.value - 2.5).abs() < 1e-9);

        // PCIe-only pair whose peer path is slower than the host and lopsided.
        let mut s2 = s.clone();
        s2.retain(|x| x.path != path::P2P && x.path != path::P2P_BIDIR);
        s2.push(at(path::P2P, 0, Some(1), 12.0));
        s2.push(at(path::P2P, 1, Some(0), 25.0));
        let a = analyze(&s2, &two_gpus(0), &Thresholds::default());
        let c = codes_of(&a);
        assert!(c.contains(&codes::P2P_SLOWER_THAN_HOST), "{c:?}");
        assert!(c.contains(&codes::BANDWIDTH_ASYMMETRIC), "{c:?}");
        let p = a
            .results
            .iter()
            .find(|r| r.metric == "p2p_0_1_gbps")
            .unwrap();
        assert_eq!(p.theoretical_basis.as_deref(), Some("PCIe Gen5 x16"));
        // 12 / 63 is below the P2P efficiency threshold too.
        assert!(c.contains(&codes::BANDWIDTH_LOW));
    }

    #[test]
    fn remote_host_buffer_is_named_and_bad_samples_are_skipped() {
        let mut s = healthy();
        s[0] = at(path::H2D_PINNED, 0, None, 30.0);
        s[6].seconds = vec![0.0, f64::NAN];
        let mut links = h100_links();
        links.devices[0].host_buffer_node = Some(1);
        let a = analyze(&s, &links, &Thresholds::default());
        let f = a
            .findings
            .iter()
            .find(|f| f.code == codes::BANDWIDTH_LOW)
            .unwrap();
        assert!(f.message.contains("NUMA node 1"), "{}", f.message);
        assert!(!a.metrics.contains_key("d2d_sm_gbps"));
    }

    #[test]
    fn facts_round_trip_through_json() {
        let f = BandwidthFacts {
            samples: healthy(),
            links: two_gpus(4),
        };
        let v = serde_json::to_value(&f).unwrap();
        let back: BandwidthFacts = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
