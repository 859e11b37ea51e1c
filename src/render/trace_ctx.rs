//! `trace ctx`: the per-thread summary, the contexts, the calls that did not succeed, and each
//! sub-scenario's result.

use crate::analyze::trace_ctx::{TraceData, TraceView};
use crate::facts::trace::{CtxRef, PrimaryState, TraceEvent};
use crate::render::style::Style;
use comfy_table::Cell;

/// Most kinds of failed calls listed in the table; --verbose, the JSON and the Chrome trace
/// hold all of them.
const TRACE_FAILED_ROWS: usize = 24;

/// Threads, contexts, the failed calls and the per-sub-scenario summaries of `trace ctx`.
pub fn trace_ctx(out: &mut String, d: &TraceData, view: &TraceView, style: Style) {
    let opt = |v: Option<i32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());

    if !d.summary.is_empty() {
        let mut t = style.table();
        t.set_header(["thread", "calls", "failed: answers", "ctx", "stack max/end"]);
        for s in &d.summary {
            let failed = if s.failures == 0 {
                "-".to_string()
            } else {
                let unexpected = if s.unexpected > 0 {
                    format!(" ({} unexpected)", s.unexpected)
                } else {
                    String::new()
                };
                format!("{}{unexpected}: {}", s.failures, s.failure_codes.join(", "))
            };
            t.add_row([
                format!("{} {}", s.tid, s.name),
                s.calls.to_string(),
                failed,
                s.contexts_seen.join(" "),
                format!("{}/{}", s.max_stack_depth, s.final_stack_depth),
            ]);
        }
        style.section(
            out,
            "Threads (tid and role; stack depth modelled from the calls)",
            t,
        );
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
        for (v, tasks, failed) in &view.hops {
            let run = h.runs.iter().find(|r| &r.variant == v);
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
        style.section(
            out,
            &format!(
                "Thread hop ({} threads, {} in context {} created on tid {}; task k runs on worker k mod {}, pinned on worker 0)",
                h.threads, h.tasks, h.ctx, h.creator_tid, h.threads
            ),
            t,
        );
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
        style.section(out, &format!("Device mix-up ({})", m.mode), t);
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
        let counts: Vec<String> = view.retain_counts.iter().map(|n| n.to_string()).collect();
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
        style.section(out, "", t);
    }
    if !d.contexts.is_empty() {
        let mut t = style.table();
        t.set_header(["context", "handle", "kind", "device", "what"]);
        for (i, c) in d.contexts.iter().enumerate() {
            // The driver reuses a destroyed context's handle: say so rather than show one
            // handle under two ids unexplained.
            let earlier = d.contexts[..i].iter().rev().find(|e| e.ptr == c.ptr);
            let what = match (earlier, c.label.is_empty()) {
                (Some(e), true) => {
                    format!("{}'s handle, reused after {} was destroyed", e.id, e.id)
                }
                (Some(e), false) => {
                    format!("{} (handle reused after {} was destroyed)", c.label, e.id)
                }
                (None, _) => c.label.clone(),
            };
            t.add_row([
                c.id.clone(),
                c.ptr.clone(),
                c.kind.clone(),
                opt(c.device),
                what,
            ]);
        }
        style.section(out, "Contexts", t);
    }
    let failed: Vec<&TraceEvent> = d.timeline.iter().filter(|e| e.failed() || !e.ok).collect();
    if !failed.is_empty() {
        if style.verbose {
            failed_each(out, d, &failed, style);
        } else {
            failed_merged(out, d, &failed, style);
        }
    }
}

/// Where a call was made: the sub-scenario and its variant.
fn place_of(e: &TraceEvent) -> String {
    match &e.variant {
        Some(v) => format!("{} {v}", e.sub),
        None => e.sub.clone(),
    }
}

fn ctx_id(c: &Option<CtxRef>) -> String {
    c.as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_else(|| "none".into())
}

/// "thread-hop unbound: cuMemAlloc_v2 / current none → none / → CUDA_ERROR_INVALID_CONTEXT (201)".
fn call_cell(place: &str, e: &TraceEvent) -> String {
    format!(
        "{place}: {}\ncurrent {} → {}\n→ {}",
        e.op,
        ctx_id(&e.ctx_before),
        ctx_id(&e.ctx_after),
        e.result
    )
}

/// Calls that did not succeed, the same call in the same place with the same answer merged
/// into one row: how many, first and last time, on which threads.
fn failed_merged(out: &mut String, d: &TraceData, failed: &[&TraceEvent], style: Style) {
    struct Group<'a> {
        first: &'a TraceEvent,
        last_us: f64,
        count: usize,
        threads: Vec<u64>,
    }
    let key = |e: &TraceEvent| {
        (
            place_of(e),
            e.op.clone(),
            ctx_id(&e.ctx_before),
            ctx_id(&e.ctx_after),
            e.result.to_string(),
            e.ok,
        )
    };
    let mut groups: Vec<(_, Group)> = Vec::new();
    for e in failed {
        let k = key(e);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, g)) => {
                g.count += 1;
                g.last_us = g.last_us.max(e.t_us);
                if !g.threads.contains(&e.thread) {
                    g.threads.push(e.thread);
                }
            }
            None => groups.push((
                k,
                Group {
                    first: e,
                    last_us: e.t_us,
                    count: 1,
                    threads: vec![e.thread],
                },
            )),
        }
    }
    let mut t = style.table();
    t.set_header([
        "n",
        "at ms first –last",
        "tid",
        "where: call, current before → after, answer",
        "expected",
    ]);
    for (_, g) in groups.iter().take(TRACE_FAILED_ROWS) {
        let at = if g.count == 1 {
            format!("{:.3}", g.first.t_us / 1e3)
        } else {
            format!("{:.3}\n–{:.3}", g.first.t_us / 1e3, g.last_us / 1e3)
        };
        let threads: Vec<String> = g.threads.iter().map(|t| t.to_string()).collect();
        t.add_row(vec![
            Cell::new(g.count),
            Cell::new(at),
            Cell::new(threads.join(" ")),
            Cell::new(call_cell(&place_of(g.first), g.first)),
            style.ok_cell(g.first.ok),
        ]);
    }
    let more = groups.len().saturating_sub(TRACE_FAILED_ROWS);
    let title = format!(
        "Calls that did not succeed: {} of {} calls, {} kinds (\"ok\" = the documented answer; each call: --verbose){}",
        failed.len(),
        d.timeline.len(),
        groups.len(),
        if more > 0 {
            format!("; {more} more kinds in --json / --chrome-trace")
        } else {
            String::new()
        }
    );
    style.section(out, &title, t);
}

/// Every call that did not succeed (--verbose), one row each.
fn failed_each(out: &mut String, d: &TraceData, failed: &[&TraceEvent], style: Style) {
    let mut t = style.table();
    t.set_header([
        "#",
        "at ms",
        "tid",
        "where: call, current before → after, answer",
        "expected",
    ]);
    for e in failed {
        let place = match e.task {
            Some(k) => format!("{} task {k}", place_of(e)),
            None => place_of(e),
        };
        t.add_row(vec![
            Cell::new(e.seq),
            Cell::new(format!("{:.3}", e.t_us / 1e3)),
            Cell::new(e.thread),
            Cell::new(call_cell(&place, e)),
            style.ok_cell(e.ok),
        ]);
    }
    let title = format!(
        "Calls that did not succeed ({} of {} calls; \"ok\" = the documented answer)",
        failed.len(),
        d.timeline.len()
    );
    style.section(out, &title, t);
}
