//! Topology: the `nvidia-smi topo -m` matrix, GPU groups and link findings from [`TopoFacts`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::{GpuTopo, PairFacts, TopoFacts};
use crate::report::{Finding, Severity, codes};

/// What `topo` derives from the facts (stored in the report next to them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TopoView {
    /// NVML indices, in matrix order.
    pub gpus: Vec<u32>,
    /// `matrix[i][j]`: X, NV#, PIX, PXB, PHB, NODE or SYS — the legend of `nvidia-smi topo -m`.
    pub matrix: Vec<Vec<String>>,
    /// GPUs that share the fastest links, best-connected first: the groups a topology-aware
    /// scheduler would place one job on.
    pub groups: Vec<GpuGroup>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuGroup {
    pub gpus: Vec<u32>,
    /// The slowest link inside the group (its legend label).
    pub link: String,
}

pub const LEGEND: &[(&str, &str)] = &[
    ("X", "Self"),
    (
        "SYS",
        "Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)",
    ),
    (
        "NODE",
        "Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node",
    ),
    (
        "PHB",
        "Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)",
    ),
    (
        "PXB",
        "Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)",
    ),
    ("PIX", "Connection traversing at most a single PCIe bridge"),
    ("NV#", "Connection traversing a bonded set of # NVLinks"),
];

/// Label of the PCIe path for an NVML common-ancestor level.
pub fn pcie_label(level: &str) -> &'static str {
    match level {
        "INTERNAL" | "SINGLE" => "PIX",
        "MULTIPLE" => "PXB",
        "HOSTBRIDGE" => "PHB",
        "NODE" => "NODE",
        "SYSTEM" => "SYS",
        _ => "?",
    }
}

/// Active NVLinks between two GPUs: links of `a` whose remote end is `b`; on NVSwitch hosts
/// (every remote end a switch) the links both GPUs have into the switch fabric.
pub fn nvlink_count(a: &GpuTopo, b: &GpuTopo) -> u32 {
    let direct = a
        .nvlinks
        .iter()
        .filter(|l| {
            l.active
                && l.remote_pci_bus_id
                    .as_deref()
                    .is_some_and(|r| same_bus(r, &b.pci_bus_id))
        })
        .count() as u32;
    if direct > 0 {
        return direct;
    }
    let to_switch = |g: &GpuTopo| {
        g.nvlinks
            .iter()
            .filter(|l| l.active && l.remote_type.as_deref() == Some("switch"))
            .count() as u32
    };
    to_switch(a).min(to_switch(b))
}

fn same_bus(x: &str, y: &str) -> bool {
    normalize_bus_id(x) == normalize_bus_id(y)
}

/// "00000000:18:00.0" and "0000:18:00.0" name the same function: compare the domain as a
/// number and the rest case-insensitively.
pub fn normalize_bus_id(id: &str) -> (u32, String) {
    let id = id.trim().to_ascii_lowercase();
    match id.split_once(':') {
        Some((dom, rest)) if rest.contains(':') => {
            (u32::from_str_radix(dom, 16).unwrap_or(0), rest.to_string())
        }
        _ => (0, id),
    }
}

fn pair(facts: &TopoFacts, a: u32, b: u32) -> Option<&PairFacts> {
    facts
        .pairs
        .iter()
        .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
}

/// Legend label of the link between GPUs `a` and `b` (NVML indices).
pub fn link_label(facts: &TopoFacts, a: u32, b: u32) -> String {
    if a == b {
        return "X".into();
    }
    let ga = facts.gpus.iter().find(|g| g.index == a);
    let gb = facts.gpus.iter().find(|g| g.index == b);
    if let (Some(ga), Some(gb)) = (ga, gb) {
        let n = nvlink_count(ga, gb).max(nvlink_count(gb, ga));
        if n > 0 {
            return format!("NV{n}");
        }
    }
    pair(facts, a, b)
        .and_then(|p| p.common_ancestor.as_deref())
        .map(|l| pcie_label(l).to_string())
        .unwrap_or_else(|| "?".into())
}

/// Higher is faster. NV# ranks above every PCIe path, more links above fewer.
pub fn link_rank(label: &str) -> u32 {
    if let Some(n) = label.strip_prefix("NV") {
        return 100 + n.parse::<u32>().unwrap_or(0);
    }
    match label {
        "PIX" => 50,
        "PXB" => 40,
        "PHB" => 30,
        "NODE" => 20,
        "SYS" => 10,
        _ => 0,
    }
}

/// Whether every GPU reaches the others through NVSwitches (all its active NVLinks end at a
/// switch): then every pair of GPUs crosses the same fabric.
pub fn switched(facts: &TopoFacts) -> bool {
    facts.gpus.len() > 1
        && facts.gpus.iter().all(|g| {
            let active: Vec<_> = g.nvlinks.iter().filter(|l| l.active).collect();
            !active.is_empty()
                && active
                    .iter()
                    .all(|l| l.remote_type.as_deref() == Some("switch"))
        })
}

pub fn view(facts: &TopoFacts) -> TopoView {
    let gpus: Vec<u32> = facts.gpus.iter().map(|g| g.index).collect();
    let matrix = gpus
        .iter()
        .map(|&a| gpus.iter().map(|&b| link_label(facts, a, b)).collect())
        .collect();
    TopoView {
        groups: groups(facts, &gpus),
        gpus,
        matrix,
    }
}

/// Greedy grouping: join the GPUs linked at the best rank present, then the next, … Each
/// group is a connected component at its rank, so every pair inside is at least that fast
/// through some path; the group's `link` is its slowest direct pair.
fn groups(facts: &TopoFacts, gpus: &[u32]) -> Vec<GpuGroup> {
    if gpus.len() < 2 {
        return gpus
            .iter()
            .map(|&g| GpuGroup {
                gpus: vec![g],
                link: "X".into(),
            })
            .collect();
    }
    let mut ranks: Vec<u32> = Vec::new();
    for (i, &a) in gpus.iter().enumerate() {
        for &b in &gpus[i + 1..] {
            ranks.push(link_rank(&link_label(facts, a, b)));
        }
    }
    ranks.sort_unstable();
    ranks.dedup();
    let mut assigned: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    for &rank in ranks.iter().rev() {
        // Components among unassigned GPUs using only links of at least `rank`.
        let free: Vec<u32> = gpus
            .iter()
            .copied()
            .filter(|g| !assigned.contains(g))
            .collect();
        let mut seen: Vec<u32> = Vec::new();
        for &start in &free {
            if seen.contains(&start) {
                continue;
            }
            let mut comp = vec![start];
            let mut i = 0;
            while i < comp.len() {
                let cur = comp[i];
                for &other in &free {
                    if !comp.contains(&other) && link_rank(&link_label(facts, cur, other)) >= rank {
                        comp.push(other);
                    }
                }
                i += 1;
            }
            seen.extend(&comp);
            if comp.len() > 1 {
                comp.sort_unstable();
                let slowest = comp
                    .iter()
                    .flat_map(|&a| comp.iter().filter(move |&&b| b > a).map(move |&b| (a, b)))
                    .map(|(a, b)| link_label(facts, a, b))
                    .min_by_key(|l| link_rank(l))
                    .unwrap_or_default();
                assigned.extend(&comp);
                out.push(GpuGroup {
                    gpus: comp,
                    link: slowest,
                });
            }
        }
    }
    for &g in gpus {
        if !assigned.contains(&g) {
            out.push(GpuGroup {
                gpus: vec![g],
                link: "X".into(),
            });
        }
    }
    out
}

/// Link findings: degraded PCIe width, generation below max, replays, inactive NVLinks,
/// unsupported P2P between close GPUs, missing NUMA affinity.
pub fn findings(facts: &TopoFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in &facts.gpus {
        if let Some(why) = &g.lost {
            out.push(crate::analyze::health::lost_finding(g.index, why));
            continue;
        }
        let p = &g.pcie;
        if let (Some(cur), Some(max)) = (p.current_width, p.max_width)
            && cur < max
        {
            out.push(
                    Finding::new(
                        Severity::Fail,
                        codes::PCIE_WIDTH_DEGRADED,
                        format!("GPU {} ({}) PCIe link is x{cur}, the link supports x{max}", g.index, g.pci_bus_id),
                    )
                    .device(g.index)
                    .hint("Width does not downshift to save power: reseat the GPU or riser, check the slot and cable; host-to-device bandwidth is cut accordingly."),
                );
        }
        if let (Some(cur), Some(max)) = (p.current_gen, p.max_gen)
            && cur < max
        {
            out.push(
                    Finding::new(
                        Severity::Info,
                        codes::PCIE_GEN_BELOW_MAX,
                        format!("GPU {} PCIe link runs at Gen{cur}, max Gen{max}", g.index),
                    )
                    .device(g.index)
                    .hint("Normal at idle: links drop generation to save power and return under load. Re-check while a copy runs (`gpu-doctor bandwidth`) — if it stays low under load, check BIOS PCIe settings and the riser."),
                );
        }
        if let Some(n) = p.replay_counter.filter(|&n| n > 0) {
            out.push(
                Finding::new(
                    Severity::Info,
                    codes::PCIE_REPLAYS,
                    format!("GPU {} PCIe replay counter is {n} (since driver load)", g.index),
                )
                .device(g.index)
                .hint("A few replays are harmless; a counter that keeps rising (DCGM allows about 31 per minute on Gen5 x16) means a marginal link: reseat or replace the riser."),
            );
        }
        let active = g.nvlinks.iter().filter(|l| l.active).count();
        let inactive: Vec<u32> = g
            .nvlinks
            .iter()
            .filter(|l| !l.active)
            .map(|l| l.link)
            .collect();
        if active > 0 && !inactive.is_empty() {
            out.push(
                Finding::new(
                    Severity::Fail,
                    codes::NVLINK_INACTIVE,
                    format!(
                        "GPU {}: {} ({active} of its {} links are active)",
                        g.index,
                        match inactive.as_slice() {
                            [one] => format!("NVLink {one} is inactive"),
                            many => format!(
                                "NVLinks {} are inactive",
                                many.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
                            ),
                        },
                        g.nvlinks.len()
                    ),
                )
                .device(g.index)
                .hint("GPU-to-GPU bandwidth is reduced. Check `nvidia-smi nvlink -s` and the fabric manager log; an inactive link usually needs a node reboot or hardware service."),
            );
        }
        if facts.host_numa_nodes > 1 && g.numa_affinity.is_none() {
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::NUMA_AFFINITY_MISSING,
                    format!("GPU {} reports no NUMA node on a host with {} NUMA nodes", g.index, facts.host_numa_nodes),
                )
                .device(g.index)
                .hint("Host buffers may land on the far socket. Check the BIOS ACPI SRAT/NUMA settings; pin work with `numactl` meanwhile."),
            );
        }
    }
    for p in &facts.pairs {
        let label = link_label(facts, p.a, p.b);
        let close = label.starts_with("NV") || matches!(label.as_str(), "PIX" | "PXB");
        let read_ok = p.p2p.read.as_deref() == Some("ok");
        if close && p.p2p.read.is_some() && !read_ok {
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::P2P_UNSUPPORTED,
                    format!(
                        "GPUs {} and {} are linked by {label} but P2P read is {}",
                        p.a,
                        p.b,
                        p.p2p.read.as_deref().unwrap_or("unknown")
                    ),
                )
                .device(p.a)
                .hint("Copies between them go through host memory. Check that IOMMU/ACS is not blocking P2P (ACS on the switch ports) and that the driver has P2P enabled."),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{NvLinkFacts, P2pFacts};

    fn gpu(index: u32, bus: &str) -> GpuTopo {
        GpuTopo {
            index,
            pci_bus_id: bus.into(),
            ..Default::default()
        }
    }

    fn links(to: Option<&str>, ty: &str, n: u32, inactive: u32) -> Vec<NvLinkFacts> {
        (0..n + inactive)
            .map(|i| NvLinkFacts {
                link: i,
                active: i < n,
                version: Some(4),
                remote_pci_bus_id: to.map(String::from),
                remote_type: Some(ty.into()),
            })
            .collect()
    }

    fn facts4(ancestor: &str) -> TopoFacts {
        let gpus: Vec<GpuTopo> = (0..4)
            .map(|i| gpu(i, &format!("00000000:{:02X}:00.0", 0x18 + i)))
            .collect();
        let mut pairs = vec![];
        for a in 0..4 {
            for b in a + 1..4 {
                pairs.push(PairFacts {
                    a,
                    b,
                    common_ancestor: Some(ancestor.into()),
                    p2p: P2pFacts {
                        read: Some("ok".into()),
                        ..Default::default()
                    },
                });
            }
        }
        TopoFacts {
            gpus,
            pairs,
            host_numa_nodes: 1,
            host_cpus: 16,
        }
    }

    #[test]
    fn pcie_levels_map_to_nvidia_smi_labels() {
        for (lvl, label) in [
            ("SINGLE", "PIX"),
            ("MULTIPLE", "PXB"),
            ("HOSTBRIDGE", "PHB"),
            ("NODE", "NODE"),
            ("SYSTEM", "SYS"),
        ] {
            let f = facts4(lvl);
            assert_eq!(link_label(&f, 0, 1), label);
            assert_eq!(link_label(&f, 2, 2), "X");
        }
    }

    #[test]
    fn nvswitch_links_count_per_pair_and_direct_links_win() {
        let mut f = facts4("SYSTEM");
        for g in &mut f.gpus {
            g.nvlinks = links(Some("00000000:AA:00.0"), "switch", 18, 0);
        }
        assert_eq!(link_label(&f, 0, 3), "NV18");
        f.gpus[0].nvlinks = links(Some("0000:19:00.0"), "gpu", 4, 0);
        assert_eq!(
            link_label(&f, 0, 1),
            "NV4",
            "direct links to the peer, domain width ignored"
        );
    }

    #[test]
    fn switched_only_when_every_gpu_reaches_a_switch() {
        let mut f = facts4("SYSTEM");
        assert!(!switched(&f), "PCIe only");
        for g in &mut f.gpus {
            g.nvlinks = links(Some("00000000:AA:00.0"), "switch", 18, 0);
        }
        assert!(switched(&f));
        f.gpus[2].nvlinks = links(Some("00000000:19:00.0"), "gpu", 4, 0);
        assert!(!switched(&f), "one GPU linked directly");
        f.gpus[2].nvlinks = links(Some("00000000:AA:00.0"), "switch", 0, 18);
        assert!(!switched(&f), "a GPU whose links are all down");
    }

    #[test]
    fn groups_follow_the_fastest_links() {
        // GPUs 0,1 under one switch (PIX), 2,3 under another, the two pairs across sockets.
        let mut f = facts4("SYSTEM");
        for p in &mut f.pairs {
            if (p.a, p.b) == (0, 1) || (p.a, p.b) == (2, 3) {
                p.common_ancestor = Some("SINGLE".into());
            }
        }
        let v = view(&f);
        assert_eq!(v.groups[0].gpus, vec![0, 1]);
        assert_eq!(v.groups[0].link, "PIX");
        assert_eq!(v.groups[1].gpus, vec![2, 3]);
        assert_eq!(v.groups.len(), 2);
    }

    #[test]
    fn x8_link_fails_and_gen_downshift_is_info() {
        let mut f = facts4("SYSTEM");
        f.gpus[2].pcie.current_width = Some(8);
        f.gpus[2].pcie.max_width = Some(16);
        f.gpus[1].pcie.current_gen = Some(1);
        f.gpus[1].pcie.max_gen = Some(5);
        let fs = findings(&f);
        let w: Vec<_> = fs
            .iter()
            .filter(|x| x.code == codes::PCIE_WIDTH_DEGRADED)
            .collect();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].device, Some(2));
        assert_eq!(w[0].severity, Severity::Fail);
        let g: Vec<_> = fs
            .iter()
            .filter(|x| x.code == codes::PCIE_GEN_BELOW_MAX)
            .collect();
        assert_eq!(g[0].severity, Severity::Info);
    }

    #[test]
    fn inactive_nvlink_among_active_ones_fails() {
        let mut f = facts4("SYSTEM");
        f.gpus[3].nvlinks = links(Some("x"), "switch", 17, 1);
        let fs = findings(&f);
        assert!(fs.iter().any(|x| x.code == codes::NVLINK_INACTIVE
            && x.device == Some(3)
            && x.message.contains("17")));
        // All links inactive (no NVLink fabric at all) is not a finding.
        f.gpus[3].nvlinks = links(None, "switch", 0, 18);
        assert!(
            !findings(&f)
                .iter()
                .any(|x| x.code == codes::NVLINK_INACTIVE)
        );
    }

    #[test]
    fn p2p_unsupported_under_one_switch_warns() {
        let mut f = facts4("SINGLE");
        f.pairs[0].p2p.read = Some("not_supported".into());
        let fs = findings(&f);
        assert!(fs.iter().any(|x| x.code == codes::P2P_UNSUPPORTED));
        let mut far = facts4("SYSTEM");
        far.pairs[0].p2p.read = Some("not_supported".into());
        assert!(
            !findings(&far)
                .iter()
                .any(|x| x.code == codes::P2P_UNSUPPORTED)
        );
    }
}
