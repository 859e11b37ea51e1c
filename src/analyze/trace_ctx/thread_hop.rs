//! thread-hop: calls made on a thread where no context was current (CONTEXT_NOT_CURRENT), and
//! how each thread-hop variant fared.

use std::collections::{BTreeMap, BTreeSet};

use super::timing::bind_cost_us;
use super::{TraceData, plural, severity};
use crate::facts::trace::{BOUND, INVALID_CONTEXT, PINNED, THREAD_HOP, TraceEvent, UNBOUND};
use crate::report::{Finding, codes};

/// Per variant of thread-hop: (tasks, failed tasks, threads with failures) from the timeline.
pub fn hop_outcome(timeline: &[TraceEvent], variant: &str) -> (u32, u32, BTreeSet<u64>) {
    let mut tasks: BTreeMap<u32, bool> = BTreeMap::new();
    let mut threads = BTreeSet::new();
    for e in timeline
        .iter()
        .filter(|e| e.sub == THREAD_HOP && e.variant.as_deref() == Some(variant))
    {
        let Some(t) = e.task else { continue };
        let failed = tasks.entry(t).or_insert(false);
        if e.failed() {
            *failed = true;
            threads.insert(e.thread);
        }
    }
    let failed = tasks.values().filter(|f| **f).count() as u32;
    (tasks.len() as u32, failed, threads)
}

/// No context current: INVALID_CONTEXT on a thread where cuCtxGetCurrent said none.
pub fn context_not_current(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    let tl = &d.timeline;
    let no_ctx: Vec<&TraceEvent> = tl
        .iter()
        .filter(|e| {
            e.result.code == INVALID_CONTEXT
                && e.ctx_before.is_none()
                && !e.op.starts_with("cuCtxPopCurrent")
        })
        .collect();
    if !no_ctx.is_empty() {
        let threads: BTreeSet<u64> = no_ctx.iter().map(|e| e.thread).collect();
        let ops: BTreeSet<&str> = no_ctx.iter().map(|e| e.op.as_str()).collect();
        let mut per_sub: Vec<(&str, usize)> = Vec::new();
        for e in &no_ctx {
            match per_sub.iter_mut().find(|(s, _)| *s == e.sub) {
                Some((_, n)) => *n += 1,
                None => per_sub.push((&e.sub, 1)),
            }
        }
        let subs = if per_sub.len() > 1 {
            format!(
                " [{}]",
                per_sub
                    .iter()
                    .map(|(s, n)| format!("{s}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let mut msg = format!(
            "{} on {} answered CUDA_ERROR_INVALID_CONTEXT (201) because no context was current on the calling thread ({}){subs}",
            plural(no_ctx.len(), "call", "calls"),
            plural(threads.len(), "thread", "threads"),
            ops.into_iter().collect::<Vec<_>>().join(", ")
        );
        if let Some(h) = &d.thread_hop {
            let (tasks, failed, ft) = hop_outcome(tl, UNBOUND);
            if tasks > 0 {
                msg.push_str(&format!(
                    ". thread-hop: {failed} of {tasks} tasks failed when work hopped off the creator thread (tid {}) onto {} of a pool of {}",
                    h.creator_tid,
                    plural(ft.len(), "other thread", "other threads"),
                    h.threads
                ));
                if let Some(r) = h.runs.iter().find(|r| r.variant == UNBOUND) {
                    msg.push_str(&format!(
                        "; {} of their writes never reached the GPU",
                        r.unwritten.len()
                    ));
                }
                let fixed: Vec<String> = [BOUND, PINNED]
                    .iter()
                    .filter_map(|v| {
                        let (t, f, _) = hop_outcome(tl, v);
                        (t > 0).then(|| format!("{v}: {f} of {t} failed"))
                    })
                    .collect();
                if !fixed.is_empty() {
                    msg.push_str(&format!(". Fixed variants — {}", fixed.join(", ")));
                }
            }
        }
        let mut hint = "Bind the context at the start of every task (cuCtxSetCurrent(ctx); cudaSetDevice(n) in the runtime): a pool, a work-stealing executor or Go's scheduler can run the next step on any OS thread. Or pin the task to one OS thread (runtime.LockOSThread in Go, a dedicated thread per GPU).".to_string();
        if let Some(us) = bind_cost_us(tl) {
            hint.push_str(&format!(" Binding costs ~{us:.1} µs per task here."));
        }
        out.push(
            Finding::new(
                severity(no_ctx.iter().all(|e| e.ok)),
                codes::CONTEXT_NOT_CURRENT,
                msg,
            )
            .hint(hint),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::{hop_timeline, of_code};
    use crate::report::Severity;

    #[test]
    fn thread_hop_is_one_info_finding_with_the_fix() {
        let d = hop_timeline(4, 16, false);
        let f = findings(&d);
        let c = of_code(&f, codes::CONTEXT_NOT_CURRENT);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(c[0].severity, Severity::Info);
        assert!(
            c[0].message.contains("24 calls on 3 threads"),
            "{}",
            c[0].message
        );
        assert!(
            c[0].message.contains("12 of 16 tasks failed"),
            "{}",
            c[0].message
        );
        assert!(
            c[0].message.contains("bound: 0 of 16 failed"),
            "{}",
            c[0].message
        );
        assert!(c[0].hint.as_deref().unwrap().contains("cuCtxSetCurrent"));
        assert!(c[0].hint.as_deref().unwrap().contains("µs per task"));
        assert!(of_code(&f, codes::STEP_MISMATCH).is_empty());
    }

    #[test]
    fn a_failing_bound_variant_is_a_fail() {
        let d = hop_timeline(4, 8, true);
        let f = findings(&d);
        let m = of_code(&f, codes::STEP_MISMATCH);
        assert_eq!(m.len(), 4, "{f:#?}"); // tasks 1 and 5, two calls each
        assert!(m.iter().all(|x| x.severity == Severity::Fail));
        assert!(
            m[0].message.contains("thread-hop bound, task 1"),
            "{}",
            m[0].message
        );
        // the pattern itself is now unexpected too: warn, not info
        let c = of_code(&f, codes::CONTEXT_NOT_CURRENT);
        assert_eq!(c[0].severity, Severity::Warn);
        assert_eq!(hop_outcome(&d.timeline, BOUND).1, 2);
    }
}
