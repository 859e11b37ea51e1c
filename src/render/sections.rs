//! Scenario-specific tables, read from a report's `data`. One function per scenario; the
//! dispatch below is the only place that knows which.

use crate::analyze::topology::{LEGEND, TopoView};
use crate::facts::{GpuHealth, TopoFacts};
use crate::render::table::Style;
use crate::report::Report;

pub fn render_scenario(out: &mut String, report: &Report, style: Style) {
    match report.scenario.as_str() {
        "topo" => topo(out, report, style),
        "info" => info(out, report, style),
        "inject oom --" | "inject error" | "trace ctx --" => {
            super::program::render(out, report, style)
        }
        _ => {}
    }
}

fn topo(out: &mut String, report: &Report, style: Style) {
    let (Some(facts), Some(view)) = (
        report
            .data
            .get("facts")
            .and_then(|v| serde_json::from_value::<TopoFacts>(v.clone()).ok()),
        report
            .data
            .get("view")
            .and_then(|v| serde_json::from_value::<TopoView>(v.clone()).ok()),
    ) else {
        return;
    };
    let mut t = style.table();
    let mut header: Vec<String> = vec![String::new()];
    header.extend(view.gpus.iter().map(|g| format!("GPU{g}")));
    header.extend(["CPU Affinity".into(), "NUMA Affinity".into()]);
    t.set_header(header);
    for (row, g) in view.matrix.iter().zip(&facts.gpus) {
        let mut cells = vec![format!("GPU{}", g.index)];
        cells.extend(row.iter().cloned());
        cells.push(g.cpu_affinity.clone().unwrap_or_else(|| "N/A".into()));
        cells.push(
            g.numa_node
                .map(|n| n.to_string())
                .unwrap_or_else(|| "N/A".into()),
        );
        t.add_row(cells);
    }
    out.push_str(&format!("\nInterconnect\n{t}\n"));
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
    out.push_str(&format!("\nPCIe and NVLink\n{t}\n"));

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
        out.push_str(&format!("\nNVLinks\n{t}\n"));
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
        out.push_str(&format!("\nPeer-to-peer\n{t}\n"));
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

fn info(out: &mut String, report: &Report, style: Style) {
    let Some(gpus) = report
        .data
        .get("gpus")
        .and_then(|v| serde_json::from_value::<Vec<GpuHealth>>(v.clone()).ok())
    else {
        return;
    };
    let b = |v: Option<bool>| match v {
        Some(true) => "on".to_string(),
        Some(false) => "off".to_string(),
        None => "-".to_string(),
    };
    let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let n32 = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for g in &gpus {
        let mut t = style.table();
        t.set_header(["GPU ".to_string() + &g.index.to_string(), g.name.clone()]);
        let mib = |v: Option<u64>| {
            v.map(|x| format!("{} MiB", x >> 20))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "memory used / total",
                format!(
                    "{} / {}",
                    mib(g.memory_used_bytes),
                    mib(g.memory_total_bytes)
                ),
            ),
            (
                "compute capability",
                g.compute_capability.clone().unwrap_or_default(),
            ),
            (
                "persistence / ECC / MIG",
                format!(
                    "{} / {} / {}",
                    b(g.persistence_mode),
                    b(g.ecc_mode_current),
                    b(g.mig_mode_current)
                ),
            ),
            (
                "compute mode",
                g.compute_mode.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "temperature",
                g.temperature_c
                    .map(|t| format!("{t} °C"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "power draw / limit",
                format!(
                    "{} / {}",
                    g.power_draw_w
                        .map(|w| format!("{w:.0} W"))
                        .unwrap_or_else(|| "-".into()),
                    g.power_limit_w
                        .map(|w| format!("{w:.0} W"))
                        .unwrap_or_else(|| "-".into())
                ),
            ),
            ("P-state", g.pstate.clone().unwrap_or_else(|| "-".into())),
            (
                "SM / memory clock",
                format!(
                    "{} / {} MHz (SM max {})",
                    n32(g.sm_clock_mhz),
                    n32(g.memory_clock_mhz),
                    n32(g.sm_clock_max_mhz)
                ),
            ),
            (
                "clock event reasons",
                if g.clock_event_reasons.is_empty() {
                    "none".into()
                } else {
                    g.clock_event_reasons.join(", ")
                },
            ),
            (
                "retired pages sbe / dbe / pending",
                format!(
                    "{} / {} / {}",
                    n32(g.retired_pages_sbe),
                    n32(g.retired_pages_dbe),
                    b(g.retired_pages_pending)
                ),
            ),
            (
                "remapped rows corr / uncorr",
                format!(
                    "{} / {}",
                    n32(g.remapped_rows_correctable),
                    n32(g.remapped_rows_uncorrectable)
                ),
            ),
            (
                "row remap pending / failed",
                format!("{} / {}", b(g.remap_pending), b(g.remap_failed)),
            ),
            (
                "ECC volatile corr / uncorr",
                format!(
                    "{} / {}",
                    n(g.ecc_volatile_corrected),
                    n(g.ecc_volatile_uncorrected)
                ),
            ),
            (
                "ECC aggregate corr / uncorr",
                format!(
                    "{} / {}",
                    n(g.ecc_aggregate_corrected),
                    n(g.ecc_aggregate_uncorrected)
                ),
            ),
            (
                "recovery action",
                g.recovery_action
                    .clone()
                    .unwrap_or_else(|| "- (not reported by this driver)".into()),
            ),
            ("VBIOS", g.vbios_version.clone().unwrap_or_default()),
            (
                "processes",
                if g.processes.is_empty() {
                    "none".into()
                } else {
                    g.processes
                        .iter()
                        .map(|p| format!("{} ({} MiB)", p.pid, p.used_bytes.unwrap_or(0) >> 20))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ];
        for (k, v) in rows {
            t.add_row([k.to_string(), v]);
        }
        if !g.unsupported.is_empty() {
            t.add_row(["not reported".to_string(), g.unsupported.join(", ")]);
        }
        out.push_str(&format!("\n{t}\n"));
    }
}
