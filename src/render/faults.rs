//! `inject …`: the key facts of a fault scenario as (fact, value) rows, and the memory check
//! every one of them ends with. Its steps, metrics and findings follow generically.

use crate::facts::faults::*;
use crate::render::style::Style;
use crate::units::format_bytes as b;

fn ob(v: Option<u64>) -> String {
    v.map(b).unwrap_or_else(|| "-".into())
}

/// `inject oom`: the fill, where it stopped, and the pool.
pub fn oom_rows(f: &OomFacts) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
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
    rows
}

/// `inject ctx-destroy`: each destroy variant, the primary-context reset, recovery.
pub fn ctx_destroy_rows(f: &CtxDestroyFacts) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
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
    rows
}

/// `inject stream-misuse`: the race counts, capture, default-stream waits.
pub fn stream_misuse_rows(f: &StreamMisuseFacts) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(r) = &f.race {
        rows.push((
            "stale reads without / with event".into(),
            format!(
                "{}/{} / {}/{}",
                r.stale_without_event, r.ran_without_event, r.stale_with_event, r.ran_with_event
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
    rows
}

/// `inject illegal-address`: each process run and the XIDs NVML reported.
pub fn illegal_address_rows(f: &IllegalAddressFacts) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
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
    rows
}

/// The memory check: free and used memory before and after, and other processes on the GPU.
pub fn memory_rows(m: &MemoryCheck) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
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
    rows
}

/// Rows as a two-column "fact | value" table.
pub fn facts_table(out: &mut String, rows: Vec<(String, String)>, style: Style) {
    let mut t = style.table();
    t.set_header(["fact", "value"]);
    for (k, v) in rows {
        t.add_row([k, v]);
    }
    style.section(out, "", t);
}

/// `inject fragmentation`: one row per allocator (and the trimmed pool).
pub fn fragmentation(out: &mut String, f: &FragmentationFacts, style: Style) {
    let pattern: Vec<String> = f
        .pattern_bytes
        .iter()
        .map(|s| crate::units::format_value(*s as f64 / (1u64 << 20) as f64))
        .collect();
    facts_table(
        out,
        vec![
            (
                "free before / total".into(),
                format!("{} / {}", b(f.free_before_bytes), b(f.total_bytes)),
            ),
            (
                "churn".into(),
                format!(
                    "{:.0}% of the free memory, sizes in turn",
                    f.fraction * 100.0
                ),
            ),
            ("pattern".into(), format!("{} MiB", pattern.join(", "))),
            (
                "freed".into(),
                "every other allocation (the large ones)".into(),
            ),
            ("granularity".into(), b(f.granularity_bytes)),
        ],
        style,
    );
    let mut t = style.table();
    t.set_header(["allocator", "freed", "available", "largest block", "share"]);
    let ratio = |l: u64, a: u64| {
        if a == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", l as f64 / a as f64 * 100.0)
        }
    };
    for a in &f.allocators {
        let name = match a.allocator.as_str() {
            "driver" => "cuMemAlloc",
            "pool" => "pool (keeps freed)",
            "vmm" => "VMM (one range)",
            other => other,
        };
        let approx = if a.exact { "" } else { "≥ " };
        t.add_row([
            name.to_string(),
            b(a.freed_bytes),
            b(a.available_bytes),
            format!("{approx}{}", b(a.largest_block_bytes)),
            ratio(a.largest_block_bytes, a.available_bytes),
        ]);
        if let Some(tr) = &a.after_trim {
            t.add_row([
                "pool, trimmed".to_string(),
                "-".to_string(),
                b(tr.available_bytes),
                b(tr.largest_block_bytes),
                ratio(tr.largest_block_bytes, tr.available_bytes),
            ]);
        }
    }
    style.section(out, "Largest block after the churn", t);
    out.push_str("  available: free memory (cuMemGetInfo), plus what the pool kept unused\n");
    facts_table(out, memory_rows(&f.memory), style);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragmentation_fits_80_columns() {
        const GIB: u64 = 1 << 30;
        let a = |name: &str, exact: bool| AllocatorFragmentation {
            allocator: name.into(),
            allocations: 2640,
            allocated_bytes: 120 * GIB,
            freed_bytes: 117 * GIB,
            available_bytes: 136 * GIB,
            largest_block_bytes: 135 * GIB,
            exact,
            ..Default::default()
        };
        let mut pool = a("pool", false);
        pool.after_trim = Some(TrimmedPool {
            free_bytes: 136 * GIB,
            pool_reserved_bytes: Some(0),
            available_bytes: 136 * GIB,
            largest_block_bytes: 136 * GIB,
        });
        let f = FragmentationFacts {
            total_bytes: 140 * GIB,
            free_before_bytes: 139 * GIB,
            fraction: 0.85,
            pattern_bytes: crate::probe::faults::fragmentation::PATTERN.to_vec(),
            granularity_bytes: 2 << 20,
            allocators: vec![a("driver", true), pool, a("vmm", true)],
            ..Default::default()
        };
        let mut out = String::new();
        fragmentation(&mut out, &f, Style::terminal(false));
        for l in out.lines() {
            assert!(
                l.chars().count() <= 80,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(out.contains("pool, trimmed"), "{out}");
        assert!(out.contains("≥ 135.00 GiB"), "{out}");
    }
}
