//! `topo`: the interconnect matrix (as `nvidia-smi topo -m`), PCIe and NVLink state, P2P and
//! the GPU groups.

use crate::analyze::topology::{LEGEND, TopoView};
use crate::facts::TopoFacts;
use crate::render::style::Style;

/// The interconnect matrix with its legend, PCIe and NVLink state, P2P, and GPU groups.
pub fn topo(out: &mut String, facts: &TopoFacts, view: &TopoView, style: Style) {
    let mut t = style.table();
    let mut header: Vec<String> = vec![String::new()];
    header.extend(view.gpus.iter().map(|g| format!("GPU{g}")));
    header.extend([
        "CPU Affinity".into(),
        "NUMA Affinity".into(),
        "GPU NUMA ID".into(),
    ]);
    t.set_header(header);
    for (row, g) in view.matrix.iter().zip(&facts.gpus) {
        let mut cells = vec![format!("GPU{}", g.index)];
        cells.extend(row.iter().cloned());
        cells.push(g.cpu_affinity.clone().unwrap_or_else(|| "N/A".into()));
        cells.push(g.numa_affinity.clone().unwrap_or_else(|| "N/A".into()));
        cells.push(
            g.gpu_numa_id
                .map(|n| n.to_string())
                .unwrap_or_else(|| "N/A".into()),
        );
        t.add_row(cells);
    }
    style.section(out, "Interconnect", t);
    let used: Vec<&str> = view.matrix.iter().flatten().map(String::as_str).collect();
    let legend: Vec<String> = LEGEND
        .iter()
        .filter(|(k, _)| {
            used.iter()
                .any(|u| u == k || (*k == "NV#" && u.starts_with("NV")))
        })
        .map(|(k, v)| format!("  {k:<5} {v}"))
        .collect();
    out.push_str(&format!("Legend:\n{}\n", legend.join("\n")));

    let mut t = style.table();
    t.set_header([
        "GPU",
        "PCI bus id",
        "PCIe gen (cur/max/GPU max)",
        "width (cur/max)",
        "replays",
        "NVLinks active",
    ]);
    let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for g in &facts.gpus {
        let p = &g.pcie;
        let active = g.nvlinks.iter().filter(|l| l.active).count();
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
            if g.nvlinks.is_empty() {
                "none".into()
            } else {
                format!("{active}/{}", g.nvlinks.len())
            },
        ]);
    }
    style.section(out, "PCIe and NVLink", t);

    let links: Vec<_> = facts
        .gpus
        .iter()
        .flat_map(|g| g.nvlinks.iter().map(move |l| (g.index, l)))
        .collect();
    if !links.is_empty() {
        let mut t = style.table();
        t.set_header(["GPU", "link", "state", "version", "remote", "remote bus id"]);
        for (g, l) in links {
            t.add_row([
                g.to_string(),
                l.link.to_string(),
                if l.active {
                    "active".into()
                } else {
                    "INACTIVE".into()
                },
                opt(l.version),
                l.remote_type.clone().unwrap_or_default(),
                l.remote_pci_bus_id.clone().unwrap_or_default(),
            ]);
        }
        style.section(out, "NVLinks", t);
    }
    if !facts.pairs.is_empty() {
        let mut t = style.table();
        t.set_header(["pair", "link", "P2P read", "write", "atomics", "nvlink"]);
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        for p in &facts.pairs {
            let i = view.gpus.iter().position(|&g| g == p.a);
            let j = view.gpus.iter().position(|&g| g == p.b);
            let label = match (i, j) {
                (Some(i), Some(j)) => view.matrix[i][j].clone(),
                _ => "?".into(),
            };
            t.add_row([
                format!("{}-{}", p.a, p.b),
                label,
                s(&p.p2p.read),
                s(&p.p2p.write),
                s(&p.p2p.atomics),
                s(&p.p2p.nvlink),
            ]);
        }
        style.section(out, "Peer-to-peer", t);
    }
    let groups: Vec<String> = view
        .groups
        .iter()
        .map(|g| {
            format!(
                "[{}] via {}",
                g.gpus
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                g.link
            )
        })
        .collect();
    out.push_str(&format!(
        "\nGPU groups (fastest links first): {}\n",
        groups.join("  ")
    ));
}
