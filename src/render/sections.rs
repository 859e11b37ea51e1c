//! Scenario-specific tables, read from a report's `data`. One function per scenario; the
//! dispatch below is the only place that knows which.

use crate::analyze::bandwidth::{PathResult, path as bw_path};
use crate::analyze::topology::{LEGEND, TopoView};
use crate::facts::{GpuHealth, TopoFacts};
use crate::render::table::Style;
use crate::report::Report;
use crate::scenarios::bandwidth::BandwidthData;

pub fn render_scenario(out: &mut String, report: &Report, style: Style) {
    match report.scenario.as_str() {
        "topo" => topo(out, report, style),
        "info" => info(out, report, style),
        "inject oom" | "inject ctx-destroy" | "inject stream-misuse" | "inject illegal-address" => {
            inject(out, report, style)
        }
        "trace ctx" => trace_ctx(out, report, style),
        "bandwidth" => bandwidth(out, &report.data, style),
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
    if let Some(b) = report.data.get("bandwidth") {
        bandwidth(out, b, style);
    }
}

/// Measured bandwidth per path against the link's theoretical rate, then the peer matrices.
fn bandwidth(out: &mut String, data: &serde_json::Value, style: Style) {
    let Ok(data) = serde_json::from_value::<BandwidthData>(data.clone()) else {
        return;
    };
    let m = &data.method;
    let per_device: Vec<&PathResult> = data.results.iter().filter(|r| r.peer.is_none()).collect();
    if !per_device.is_empty() {
        let mut t = style.table();
        t.set_header([
            "GPU",
            "path",
            "GB/s (median)",
            "min – max",
            "theoretical",
            "efficiency",
            "verified",
            "timing",
        ]);
        for r in per_device {
            let path = match r.read_write_gbps {
                Some(rw) => format!("{} (read+write {rw:.0})", r.path),
                None => r.path.clone(),
            };
            t.add_row([
                r.device.to_string(),
                path,
                format!("{:.1}", r.median),
                format!("{:.1} – {:.1}", r.min, r.max),
                theoretical(r),
                r.efficiency
                    .map(|e| format!("{:.0}%", e * 100.0))
                    .unwrap_or_else(|| "-".into()),
                verified(r.verified),
                r.timing.clone(),
            ]);
        }
        out.push_str(&format!(
            "\nBandwidth ({} MiB buffers, {} samples; GB/s = 10^9 B/s, bytes counted once)\n{t}\n",
            m.size_bytes >> 20,
            m.samples
        ));
    }
    for (p, title, unit) in [
        (bw_path::P2P, "Peer-to-peer, peer access on", "GB/s"),
        (
            bw_path::P2P_STAGED,
            "Peer-to-peer staged through the host",
            "GB/s",
        ),
        (
            bw_path::P2P_BIDIR,
            "Peer-to-peer bidirectional (both directions summed)",
            "GB/s",
        ),
        (bw_path::P2P_LATENCY, "Peer-to-peer latency", "µs per copy"),
    ] {
        let rows: Vec<&PathResult> = data.results.iter().filter(|r| r.path == p).collect();
        if rows.is_empty() {
            continue;
        }
        let mut gpus: Vec<u32> = rows
            .iter()
            .flat_map(|r| [r.device, r.peer.unwrap_or(r.device)])
            .collect();
        gpus.sort_unstable();
        gpus.dedup();
        let mut t = style.table();
        let mut header = vec!["src \\ dst".to_string()];
        header.extend(gpus.iter().map(|g| format!("GPU{g}")));
        t.set_header(header);
        for &a in &gpus {
            let mut row = vec![format!("GPU{a}")];
            for &b in &gpus {
                let cell = rows
                    .iter()
                    .find(|r| r.device == a && r.peer == Some(b))
                    .map(|r| {
                        let eff = r
                            .efficiency
                            .map(|e| format!(" ({:.0}%)", e * 100.0))
                            .unwrap_or_default();
                        let bad = if r.verified == Some(false) {
                            " MISMATCH"
                        } else {
                            ""
                        };
                        format!("{:.1}{eff}{bad}", r.median)
                    })
                    .unwrap_or_else(|| if a == b { "X".into() } else { "-".into() });
                row.push(cell);
            }
            t.add_row(row);
        }
        out.push_str(&format!("\n{title} ({unit})\n{t}\n"));
    }
    let notes: Vec<String> = data
        .devices
        .iter()
        .map(|d| {
            let p = &d.placement;
            let node = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "?".into());
            let mut s = format!(
                "GPU{}: NUMA node {}, pinned buffer on node {}, pageable on node {}; thread pinned to GPU CPUs: {}",
                d.index,
                node(p.numa_node),
                node(p.pinned_buffer_node),
                node(p.pageable_buffer_node),
                if p.affinity_set { "yes" } else { "no" }
            );
            if let (Some(g), Some(w)) = (d.pcie_gen_under_load, d.pcie_width_under_load) {
                s += &format!("; PCIe under load Gen{g} x{w}");
            }
            if let Some(e) = &d.error {
                s += &format!("; stopped early: {e}");
            }
            s
        })
        .collect();
    if !notes.is_empty() {
        out.push_str(&format!("{}\n", notes.join("\n")));
    }
}

fn theoretical(r: &PathResult) -> String {
    match (r.theoretical_gbps, &r.theoretical_basis) {
        (Some(g), Some(b)) => format!("{g:.1} ({b})"),
        _ => "-".into(),
    }
}

fn verified(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "MISMATCH".into(),
        None => "-".into(),
    }
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

/// Most failed calls listed in the table; the JSON and the Chrome trace hold all of them.
const TRACE_FAILED_ROWS: usize = 24;

fn trace_ctx(out: &mut String, report: &Report, style: Style) {
    use crate::analyze::trace_ctx as a;
    use crate::facts::trace::{BOUND, CtxRef, PINNED, PrimaryState, TraceEvent, UNBOUND};
    let Ok(d) = a::data_of(report) else {
        return;
    };
    let ctx = |c: &Option<CtxRef>| {
        c.as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_else(|| "none".into())
    };
    let opt = |v: Option<i32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());

    if !d.summary.is_empty() {
        let mut t = style.table();
        t.set_header([
            "tid",
            "thread",
            "calls",
            "failed",
            "unexpected",
            "answers other than success",
            "contexts seen",
            "stack max/end",
        ]);
        for s in &d.summary {
            t.add_row([
                s.tid.to_string(),
                s.name.clone(),
                s.calls.to_string(),
                s.failures.to_string(),
                s.unexpected.to_string(),
                s.failure_codes.join(", "),
                s.contexts_seen.join(", "),
                format!("{}/{}", s.max_stack_depth, s.final_stack_depth),
            ]);
        }
        out.push_str(&format!(
            "\nThreads (stack depth modelled from the calls)\n{t}\n"
        ));
    }
    if let Some(h) = &d.thread_hop {
        let mut t = style.table();
        t.set_header([
            "variant",
            "tasks",
            "threads",
            "failed tasks",
            "writes that reached the GPU",
        ]);
        for v in [UNBOUND, BOUND, PINNED] {
            let (tasks, failed, _) = a::hop_outcome(&d.timeline, v);
            if tasks == 0 {
                continue;
            }
            let run = h.runs.iter().find(|r| r.variant == v);
            t.add_row([
                v.to_string(),
                tasks.to_string(),
                run.map(|r| r.threads_used.to_string())
                    .unwrap_or_else(|| "-".into()),
                failed.to_string(),
                run.map(|r| format!("{}/{}", r.written, r.tasks))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&format!(
            "\nThread hop ({} threads, {} in context {} created on tid {}; task k runs on worker k mod {}, pinned on worker 0)\n{t}\n",
            h.threads, h.tasks, h.ctx, h.creator_tid, h.threads
        ));
    }
    if let Some(m) = &d.device_mixup {
        let mut t = style.table();
        t.set_header([
            "case",
            "meant for",
            "current",
            "landed in (cuPointerGetAttribute)",
            "match",
        ]);
        for c in &m.cases {
            let landed_ok = c.landed_ctx.as_deref() == Some(c.intended_ctx.as_str())
                && c.landed_device == Some(c.intended_device);
            t.add_row(vec![
                comfy_table::Cell::new(&c.case),
                comfy_table::Cell::new(format!(
                    "{} / device {}",
                    c.intended_ctx, c.intended_device
                )),
                comfy_table::Cell::new(format!(
                    "{} / device {}",
                    c.current_ctx.as_deref().unwrap_or("none"),
                    opt(c.current_device)
                )),
                comfy_table::Cell::new(format!(
                    "{} / device {}",
                    c.landed_ctx.as_deref().unwrap_or("?"),
                    opt(c.landed_device)
                )),
                comfy_table::Cell::new(if landed_ok { "yes" } else { "MIX-UP" }),
            ]);
        }
        out.push_str(&format!("\nDevice mix-up ({})\n{t}\n", m.mode));
    }
    if let Some(p) = &d.primary {
        let st = |s: Option<PrimaryState>| {
            s.map(|s| format!("flags 0x{:x}, active {}", s.flags, s.active as u8))
                .unwrap_or_else(|| "-".into())
        };
        let code = |c: &Option<crate::report::Code>| {
            c.as_ref()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        };
        let counts: Vec<String> = a::primary_retain_counts(&d.timeline)
            .into_iter()
            .map(|(_, n)| n.to_string())
            .collect();
        let mut t = style.table();
        t.set_header([
            "primary context".to_string(),
            format!("CUDA device {}", p.device),
        ]);
        for (k, v) in [
            ("state before", st(p.initial)),
            ("after first retain", st(p.after_retain)),
            (
                "both retains got one handle",
                p.same_handle
                    .map(|b| if b { "yes" } else { "NO" }.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("retain count (replayed)", counts.join(" → ")),
            (
                &*format!("SetFlags(0x{:x}) while active", p.requested_flags),
                code(&p.set_flags_while_active),
            ),
            ("state after SetFlags", st(p.state_after_set_flags)),
            (
                "cuCtxGetFlags after SetFlags",
                p.ctx_flags_after_set
                    .map(|f| format!("0x{f:x}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "state after release to zero",
                st(p.state_after_release_to_zero),
            ),
            (
                &*format!("{} on old pointer", p.use_after_release_call),
                code(&p.use_after_release),
            ),
            ("release after zero", code(&p.over_release)),
            ("one retain per process: same work", code(&p.fixed_use)),
            ("final state", st(p.final_state)),
        ] {
            t.add_row([k.to_string(), v]);
        }
        out.push_str(&format!("\n{t}\n"));
    }
    if !d.contexts.is_empty() {
        let mut t = style.table();
        t.set_header(["context", "handle", "kind", "device", "what"]);
        for c in &d.contexts {
            t.add_row([
                c.id.clone(),
                c.ptr.clone(),
                c.kind.clone(),
                opt(c.device),
                c.label.clone(),
            ]);
        }
        out.push_str(&format!("\nContexts\n{t}\n"));
    }
    let failed: Vec<&TraceEvent> = d.timeline.iter().filter(|e| e.failed() || !e.ok).collect();
    if !failed.is_empty() {
        let mut t = style.table();
        t.set_header([
            "#",
            "at ms",
            "tid",
            "where",
            "call",
            "current before → after",
            "answer",
            "",
        ]);
        for e in failed.iter().take(TRACE_FAILED_ROWS) {
            let place = match (&e.variant, e.task) {
                (Some(v), Some(k)) => format!("{} {v} task {k}", e.sub),
                (Some(v), None) => format!("{} {v}", e.sub),
                _ => e.sub.clone(),
            };
            t.add_row(vec![
                comfy_table::Cell::new(e.seq),
                comfy_table::Cell::new(format!("{:.3}", e.t_us / 1e3)),
                comfy_table::Cell::new(e.thread),
                comfy_table::Cell::new(place),
                comfy_table::Cell::new(&e.op),
                comfy_table::Cell::new(format!("{} → {}", ctx(&e.ctx_before), ctx(&e.ctx_after))),
                comfy_table::Cell::new(e.result.to_string()),
                style.ok_cell(e.ok),
            ]);
        }
        let more = failed.len().saturating_sub(TRACE_FAILED_ROWS);
        out.push_str(&format!(
            "\nCalls that did not succeed ({} of {} calls; \"ok\" = the documented answer){}\n{t}\n",
            failed.len(),
            d.timeline.len(),
            if more > 0 {
                format!(" — {more} more in --json / --chrome-trace")
            } else {
                String::new()
            }
        ));
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
                        .map(|c| c.to_string())
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
                let fault = r.facts.fault.as_ref().map(|c| format!(", fault {c}"));
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
