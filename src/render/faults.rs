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
