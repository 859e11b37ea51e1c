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
        "inject oom" | "inject ctx-destroy" | "inject stream-misuse" | "inject illegal-address" => {
            inject(out, report, style)
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

/// Key facts of an `inject …` report (its steps, metrics and findings follow generically).
fn inject(out: &mut String, report: &Report, style: Style) {
    use crate::facts::faults::*;
    use crate::units::format_bytes as b;
    let Some(facts) = report.data.get("facts") else {
        return;
    };
    let ob = |v: Option<u64>| v.map(b).unwrap_or_else(|| "-".into());
    let mut rows: Vec<(String, String)> = Vec::new();
    let memory: MemoryCheck = match report.scenario.as_str() {
        "inject oom" => {
            let Ok(f) = serde_json::from_value::<OomFacts>(facts.clone()) else {
                return;
            };
            rows.push(("allocator".into(), f.allocator.clone()));
            rows.push((
                "free before / total".into(),
                format!("{} / {}", b(f.free_before_bytes), b(f.total_bytes)),
            ));
            rows.push((
                "allocated".into(),
                format!(
                    "{} in {} allocation(s), {} OOM answer(s)",
                    b(f.allocatable_bytes),
                    f.allocations,
                    f.oom_answers
                ),
            ));
            rows.push((
                "stopped by".into(),
                format!(
                    "{} (last refused {}, granularity {})",
                    f.stopped_by,
                    ob(f.last_refused_bytes),
                    b(f.granularity_bytes)
                ),
            ));
            rows.push((
                "OOM surfaced at".into(),
                f.oom_surfaced_at.clone().unwrap_or_else(|| "-".into()),
            ));
            rows.push((
                "time to edge / free".into(),
                format!("{:.1} ms / {:.1} ms", f.time_to_edge_ms, f.free_ms),
            ));
            if f.held_ms > 0.0 {
                rows.push(("held".into(), format!("{:.1} s", f.held_ms / 1e3)));
            }
            if let Some(p) = &f.pool {
                rows.push((
                    "pool reserved after free / after trim".into(),
                    format!(
                        "{} / {}",
                        ob(p.reserved_after_free_bytes),
                        ob(p.reserved_after_trim_bytes)
                    ),
                ));
            }
            f.memory
        }
        "inject ctx-destroy" => {
            let Ok(f) = serde_json::from_value::<CtxDestroyFacts>(facts.clone()) else {
                return;
            };
            for v in &f.variants {
                rows.push((
                    v.name.clone(),
                    format!(
                        "kernel in flight: {}, destroy took {:.1} ms, owner's current context after: {}",
                        v.in_flight_at_destroy, v.destroy_ms, v.owner_current_after
                    ),
                ));
            }
            if let Some(p) = &f.primary {
                let c = |c: &Option<crate::report::Code>| {
                    c.as_ref()
                        .map(|c| format!("{} ({})", c.name, c.code))
                        .unwrap_or_else(|| "-".into())
                };
                rows.push((
                    "primary: old pointer memcpy".into(),
                    c(&p.old_pointer_memcpy),
                ));
                rows.push((
                    "primary: holder allocates after reset".into(),
                    c(&p.holder_alloc_after_reset),
                ));
                rows.push((
                    "primary: holder release after reset".into(),
                    c(&p.release_after_reset),
                ));
            }
            rows.push(("fresh context works".into(), f.recovery_ok.to_string()));
            f.memory
        }
        "inject stream-misuse" => {
            let Ok(f) = serde_json::from_value::<StreamMisuseFacts>(facts.clone()) else {
                return;
            };
            if let Some(r) = &f.race {
                rows.push((
                    "stale reads without / with event".into(),
                    format!(
                        "{}/{} / {}/{}",
                        r.stale_without_event,
                        r.ran_without_event,
                        r.stale_with_event,
                        r.ran_with_event
                    ),
                ));
            }
            if let Some(c) = &f.capture {
                rows.push((
                    "capture after illegal sync".into(),
                    c.status_after_sync.clone().unwrap_or_else(|| "-".into()),
                ));
            }
            if let Some(d) = &f.default_stream {
                rows.push((
                    "blocking stream wait: legacy / per-thread".into(),
                    format!(
                        "{:.2} ms / {:.2} ms (kernel {} ms)",
                        d.legacy_wait_ms, d.per_thread_wait_ms, d.kernel_delay_ms
                    ),
                ));
            }
            f.memory
        }
        _ => {
            let Ok(f) = serde_json::from_value::<IllegalAddressFacts>(facts.clone()) else {
                return;
            };
            for r in &f.runs {
                let fault = r
                    .facts
                    .fault
                    .as_ref()
                    .map(|c| format!(", fault {} ({})", c.name, c.code));
                rows.push((
                    format!("process: {}", r.variant),
                    format!(
                        "{} in {:.0} ms (pid {}){}",
                        r.status,
                        r.duration_ms,
                        r.facts.pid,
                        fault.unwrap_or_default()
                    ),
                ));
            }
            rows.push((
                "XID events".into(),
                if !f.xid.watched {
                    format!("not watched: {}", f.xid.error.clone().unwrap_or_default())
                } else if f.xid.events.is_empty() {
                    "none seen".into()
                } else {
                    f.xid
                        .events
                        .iter()
                        .map(|e| {
                            format!(
                                "{} ({})",
                                e.xid.map(|x| x.to_string()).unwrap_or("?".into()),
                                e.during
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ));
            f.memory
        }
    };
    {
        let m = memory;
        rows.push((
            "memory free (CUDA) before / after".into(),
            format!("{} / {}", ob(m.cuda_free_before), ob(m.cuda_free_after)),
        ));
        rows.push((
            "memory used (NVML) before / after".into(),
            format!(
                "{} / {} (tolerance {})",
                ob(m.nvml_used_before),
                ob(m.nvml_used_after),
                b(m.tolerance_bytes)
            ),
        ));
        if !m.foreign_processes.is_empty() {
            rows.push((
                "other processes on the GPU".into(),
                m.foreign_processes
                    .iter()
                    .map(|p| format!("{} ({})", p.pid, ob(p.used_bytes)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    }
    let mut t = style.table();
    t.set_header(["fact", "value"]);
    for (k, v) in rows {
        t.add_row([k, v]);
    }
    out.push_str(&format!("\n{t}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::faults::{MemoryCheck, OomFacts};

    #[test]
    fn inject_oom_facts_render_as_a_table() {
        let mut r = Report::begin("inject oom", serde_json::json!({}));
        let facts = OomFacts {
            allocator: "sync".into(),
            granularity_bytes: 2 << 20,
            allocatable_bytes: 3 << 30,
            allocations: 3,
            oom_answers: 9,
            stopped_by: "oom".into(),
            last_refused_bytes: Some(2 << 20),
            memory: MemoryCheck {
                tolerance_bytes: 64 << 20,
                foreign_processes: vec![crate::facts::GpuProcess {
                    pid: 77,
                    used_bytes: Some(1 << 20),
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        r.data = serde_json::json!({ "facts": facts });
        let mut out = String::new();
        render_scenario(&mut out, &r, Style { color: false });
        assert!(
            out.contains("3.00 GiB in 3 allocation(s), 9 OOM answer(s)"),
            "{out}"
        );
        assert!(
            out.contains("oom (last refused 2.00 MiB, granularity 2.00 MiB)"),
            "{out}"
        );
        assert!(out.contains("77 (1.00 MiB)"), "{out}");
        // Data that is not what the scenario writes renders nothing rather than panicking.
        r.data = serde_json::json!({ "facts": { "allocator": 5 } });
        let mut out = String::new();
        render_scenario(&mut out, &r, Style { color: false });
        assert!(out.is_empty());
    }
}
