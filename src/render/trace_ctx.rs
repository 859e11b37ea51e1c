//! `trace ctx`: the per-thread summary, the contexts, the calls that did not succeed, and each
//! sub-scenario's result.

use crate::analyze::trace_ctx::{TraceData, TraceView};
use crate::facts::trace::{CtxRef, PrimaryState, TraceEvent};
use crate::render::style::Style;

/// Most failed calls listed in the table; the JSON and the Chrome trace hold all of them.
const TRACE_FAILED_ROWS: usize = 24;

/// Threads, contexts, the failed calls and the per-sub-scenario summaries of `trace ctx`.
pub fn trace_ctx(out: &mut String, d: &TraceData, view: &TraceView, style: Style) {
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
        style.section(out, "Threads (stack depth modelled from the calls)", t);
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
        for c in &d.contexts {
            t.add_row([
                c.id.clone(),
                c.ptr.clone(),
                c.kind.clone(),
                opt(c.device),
                c.label.clone(),
            ]);
        }
        style.section(out, "Contexts", t);
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
        let title = format!(
            "Calls that did not succeed ({} of {} calls; \"ok\" = the documented answer){}",
            failed.len(),
            d.timeline.len(),
            if more > 0 {
                format!(" — {more} more in --json / --chrome-trace")
            } else {
                String::new()
            }
        );
        style.section(out, &title, t);
    }
}
