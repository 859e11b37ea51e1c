//! `topo`: the interconnect matrix (as `nvidia-smi topo -m`), PCIe and NVLink state, P2P and
//! the GPU groups. Walls of identical rows are summarised (one NVLink row per GPU, P2P pairs
//! that read the same in one row); `--verbose` lists every link and every pair.

use crate::analyze::topology::{LEGEND, TopoView};
use crate::facts::{GpuTopo, NvLinkFacts, TopoFacts};
use crate::render::style::Style;

/// What NVML reports as the remote bus id of a link into an NVSwitch that has none of its own.
const NO_BUS_ID: &str = "FFFFFFFF:FF:FF.0";

/// The interconnect matrix with its legend, PCIe and NVLink state, P2P, and GPU groups.
pub fn topo(out: &mut String, facts: &TopoFacts, view: &TopoView, style: Style) {
    matrix(out, facts, view, style);
    pcie(out, facts, style);
    if facts.gpus.iter().any(|g| !g.nvlinks.is_empty()) {
        if style.verbose {
            nvlinks_each(out, facts, style);
        } else {
            nvlinks_per_gpu(out, facts, style);
        }
    }
    if !facts.pairs.is_empty() {
        peers(out, facts, view, style);
    }
    let groups: Vec<String> = view
        .groups
        .iter()
        .map(|g| match g.gpus.as_slice() {
            [one] => format!("GPU {one} alone"),
            many => format!("{} over {}", gpus_label(many), g.link),
        })
        .collect();
    out.push('\n');
    style.para(
        out,
        &format!("GPU groups (fastest links first): {}", groups.join("; ")),
        2,
    );
}

fn or_na(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "N/A".into())
}

/// The matrix, its NUMA column, the legend of the labels it uses, and each GPU's CPU affinity
/// below it (grouped: an affinity is often a long list shared by several GPUs).
fn matrix(out: &mut String, facts: &TopoFacts, view: &TopoView, style: Style) {
    let mut t = style.table();
    let mut header: Vec<String> = vec!["GPU".into()];
    header.extend(view.gpus.iter().map(|g| g.to_string()));
    header.push("NUMA".into());
    t.set_header(header);
    for (row, g) in view.matrix.iter().zip(&facts.gpus) {
        let mut cells = vec![g.index.to_string()];
        cells.extend(row.iter().cloned());
        cells.push(or_na(&g.numa_affinity));
        t.add_row(cells);
    }
    style.section(out, "Interconnect (as nvidia-smi topo -m)", t);
    let used: Vec<&str> = view.matrix.iter().flatten().map(String::as_str).collect();
    out.push_str("Legend:\n");
    for (k, v) in LEGEND.iter().filter(|(k, _)| {
        used.iter()
            .any(|u| u == k || (*k == "NV#" && u.starts_with("NV")))
    }) {
        style.para(out, &format!("  {k:<5} {v}"), 8);
    }
    let mut affinities: Vec<(String, Vec<u32>)> = Vec::new();
    for g in &facts.gpus {
        let a = or_na(&g.cpu_affinity);
        match affinities.iter_mut().find(|(x, _)| *x == a) {
            Some((_, gpus)) => gpus.push(g.index),
            None => affinities.push((a, vec![g.index])),
        }
    }
    let list: Vec<String> = affinities
        .iter()
        .map(|(a, gpus)| format!("{}: CPUs {a}", gpus_label(gpus)))
        .collect();
    style.para(out, &format!("CPU affinity: {}", list.join("; ")), 2);
    let numa_ids: Vec<String> = facts
        .gpus
        .iter()
        .filter_map(|g| g.gpu_numa_id.map(|n| format!("GPU {}: {n}", g.index)))
        .collect();
    if !numa_ids.is_empty() {
        style.para(out, &format!("GPU NUMA ID: {}", numa_ids.join(", ")), 2);
    }
}

/// "GPU 0", "GPUs 0, 2", "GPUs 0–3": consecutive indices as a range.
pub fn gpus_label(gpus: &[u32]) -> String {
    match gpus {
        [one] => format!("GPU {one}"),
        many => format!("GPUs {}", index_list(many)),
    }
}

/// "0, 2, 4–7": indices in order, runs of three or more as a range.
fn index_list(v: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}–{}", v[i], v[j]));
        } else {
            parts.extend(v[i..=j].iter().map(|x| x.to_string()));
        }
        i = j + 1;
    }
    parts.join(", ")
}

fn pcie(out: &mut String, facts: &TopoFacts, style: Style) {
    let mut t = style.table();
    t.set_header([
        "GPU",
        "PCI bus id",
        "gen now/max /GPU max",
        "width now/max",
        "replays",
    ]);
    let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for g in &facts.gpus {
        let p = &g.pcie;
        t.add_row([
            g.index.to_string(),
            g.pci_bus_id.clone(),
            format!(
                "{}/{}/{}",
                opt(p.current_gen),
                opt(p.max_gen),
                opt(p.gpu_max_gen)
            ),
            format!("x{}/x{}", opt(p.current_width), opt(p.max_width)),
            p.replay_counter
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    style.section(out, "PCIe", t);
}

/// Where a link goes, in words: "NVSwitch", "GPU 1", or the remote bus id.
fn remote_of(l: &NvLinkFacts, gpus: &[GpuTopo]) -> String {
    let bus = l.remote_pci_bus_id.as_deref().unwrap_or("");
    match l.remote_type.as_deref() {
        Some("switch") if bus.is_empty() || bus.eq_ignore_ascii_case(NO_BUS_ID) => {
            "NVSwitch".into()
        }
        Some("switch") => format!("NVSwitch {bus}"),
        Some("gpu") => match gpus.iter().find(|g| g.pci_bus_id.eq_ignore_ascii_case(bus)) {
            Some(g) => format!("GPU {}", g.index),
            None => format!("GPU {bus}"),
        },
        Some(other) if !bus.is_empty() => format!("{other} {bus}"),
        Some(other) => other.to_string(),
        None => bus.to_string(),
    }
}

/// One row per GPU: how many links are active, their version, where they go, and the links
/// that are not active, named.
fn nvlinks_per_gpu(out: &mut String, facts: &TopoFacts, style: Style) {
    let mut t = style.table();
    t.set_header(["GPU", "NVLinks", "version", "to", "not active"]);
    for g in facts.gpus.iter().filter(|g| !g.nvlinks.is_empty()) {
        let active: Vec<&NvLinkFacts> = g.nvlinks.iter().filter(|l| l.active).collect();
        let mut versions: Vec<u32> = active.iter().filter_map(|l| l.version).collect();
        versions.sort_unstable();
        versions.dedup();
        let mut remotes: Vec<(String, usize)> = Vec::new();
        for l in &active {
            let r = remote_of(l, &facts.gpus);
            match remotes.iter_mut().find(|(x, _)| *x == r) {
                Some((_, n)) => *n += 1,
                None => remotes.push((r, 1)),
            }
        }
        let to = match remotes.as_slice() {
            [] => "-".to_string(),
            [(one, _)] => one.clone(),
            many => many
                .iter()
                .map(|(r, n)| format!("{r} ×{n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let inactive: Vec<String> = g
            .nvlinks
            .iter()
            .filter(|l| !l.active)
            .map(|l| l.link.to_string())
            .collect();
        t.add_row([
            g.index.to_string(),
            format!("{}/{} active", active.len(), g.nvlinks.len()),
            if versions.is_empty() {
                "-".into()
            } else {
                versions
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            to,
            match inactive.len() {
                0 => "-".into(),
                1 => format!("link {}", inactive[0]),
                _ => format!("links {}", inactive.join(", ")),
            },
        ]);
    }
    style.section(out, "NVLink (every link: --verbose)", t);
}

/// Every link of every GPU (--verbose).
fn nvlinks_each(out: &mut String, facts: &TopoFacts, style: Style) {
    let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let mut t = style.table();
    t.set_header(["GPU", "link", "state", "version", "to"]);
    for g in &facts.gpus {
        for l in &g.nvlinks {
            t.add_row([
                g.index.to_string(),
                l.link.to_string(),
                if l.active {
                    "active".into()
                } else {
                    "INACTIVE".into()
                },
                opt(l.version),
                if l.active {
                    remote_of(l, &facts.gpus)
                } else {
                    "-".into()
                },
            ]);
        }
    }
    style.section(out, "NVLinks", t);
}

/// P2P per pair; pairs that read the same share a row (unless --verbose).
fn peers(out: &mut String, facts: &TopoFacts, view: &TopoView, style: Style) {
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows: Vec<(Vec<String>, [String; 5])> = Vec::new();
    for p in &facts.pairs {
        let i = view.gpus.iter().position(|&g| g == p.a);
        let j = view.gpus.iter().position(|&g| g == p.b);
        let label = match (i, j) {
            (Some(i), Some(j)) => view.matrix[i][j].clone(),
            _ => "?".into(),
        };
        let cells = [
            label,
            s(&p.p2p.read),
            s(&p.p2p.write),
            s(&p.p2p.atomics),
            s(&p.p2p.nvlink),
        ];
        let pair = format!("{}-{}", p.a, p.b);
        match rows.iter_mut().find(|(_, c)| !style.verbose && *c == cells) {
            Some((pairs, _)) => pairs.push(pair),
            None => rows.push((vec![pair], cells)),
        }
    }
    let mut t = style.table();
    t.set_header(["pairs", "link", "read", "write", "atomics", "nvlink"]);
    let all = facts.pairs.len();
    for (pairs, cells) in rows {
        let label = if pairs.len() == all && all > 2 {
            format!("all {all} pairs")
        } else {
            pairs.join(" ")
        };
        let mut row = vec![label];
        row.extend(cells);
        t.add_row(row);
    }
    style.section(out, "Peer-to-peer (NVML P2P status)", t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_lists_read_as_ranges() {
        assert_eq!(gpus_label(&[3]), "GPU 3");
        assert_eq!(gpus_label(&[0, 1]), "GPUs 0, 1");
        assert_eq!(gpus_label(&[0, 1, 2, 3, 5, 7, 8, 9]), "GPUs 0–3, 5, 7–9");
    }
}
