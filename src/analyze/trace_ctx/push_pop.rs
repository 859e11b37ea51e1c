//! push-pop: each thread's context stack replayed from the calls, and the pops that undid no
//! push of the same thread (CTX_STACK_UNBALANCED).

use std::collections::{BTreeMap, BTreeSet};

use super::{TraceData, plural, severity};
use crate::facts::trace::TraceEvent;
use crate::report::{Code, Finding, codes};

/// How an entry got onto a thread's context stack.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// cuCtxCreate / cuCtxPushCurrent.
    Pushed(String),
    /// cuCtxSetCurrent on an empty stack, or replacing the top.
    Bound(String),
}

/// A pop that did something other than undo the same thread's push.
#[derive(Debug, Clone, PartialEq)]
pub struct StackIssue {
    pub seq: u32,
    pub thread: u64,
    pub sub: String,
    /// "empty" (pop with nothing on the stack) or "bound" (popped a cuCtxSetCurrent binding).
    pub kind: &'static str,
    pub result: Code,
    pub ok: bool,
}

/// Replays the documented stack rules over each thread's successful calls: cuCtxCreate and
/// cuCtxPushCurrent push; cuCtxPopCurrent pops; cuCtxSetCurrent(ctx) replaces the top (pushes
/// on an empty stack), cuCtxSetCurrent(NULL) pops; cuCtxDestroy pops when the context is current
/// on the calling thread. Returns the (max, final) depth per thread and the pops that undid
/// no push of the same thread.
fn replay_stacks(timeline: &[TraceEvent]) -> (BTreeMap<u64, (u32, u32)>, Vec<StackIssue>) {
    let mut stacks: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    let mut depth: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    let mut issues = Vec::new();
    for e in timeline {
        let st = stacks.entry(e.thread).or_default();
        let arg = e.arg_ctx.as_ref().map(|c| c.id.clone());
        let succeeded = !e.failed();
        match e.op.as_str() {
            "cuCtxCreate_v2" | "cuCtxCreate" if succeeded => {
                if let Some(c) = e.out_ctx.as_ref() {
                    st.push(Entry::Pushed(c.id.clone()));
                }
            }
            "cuCtxPushCurrent_v2" | "cuCtxPushCurrent" if succeeded => {
                if let Some(a) = arg {
                    st.push(Entry::Pushed(a));
                }
            }
            "cuCtxPopCurrent_v2" | "cuCtxPopCurrent" => {
                if succeeded {
                    if let Some(Entry::Bound(_)) = st.pop() {
                        issues.push(StackIssue {
                            seq: e.seq,
                            thread: e.thread,
                            sub: e.sub.clone(),
                            kind: "bound",
                            result: e.result.clone(),
                            ok: e.ok,
                        });
                    }
                } else if st.is_empty() || e.ctx_before.is_none() {
                    issues.push(StackIssue {
                        seq: e.seq,
                        thread: e.thread,
                        sub: e.sub.clone(),
                        kind: "empty",
                        result: e.result.clone(),
                        ok: e.ok,
                    });
                }
            }
            "cuCtxSetCurrent" if succeeded => match arg {
                Some(a) => {
                    st.pop();
                    st.push(Entry::Bound(a));
                }
                None => {
                    st.pop();
                }
            },
            "cuCtxDestroy_v2" | "cuCtxDestroy"
                if succeeded
                    && arg.is_some()
                    && e.ctx_before.as_ref().map(|c| &c.id) == arg.as_ref() =>
            {
                st.pop();
            }
            _ => {}
        }
        let d = st.len() as u32;
        let entry = depth.entry(e.thread).or_insert((0, 0));
        entry.0 = entry.0.max(d);
        entry.1 = d;
    }
    (depth, issues)
}

/// (max, final) modelled stack depth per thread.
pub fn stack_depths(timeline: &[TraceEvent]) -> BTreeMap<u64, (u32, u32)> {
    replay_stacks(timeline).0
}

/// Pops that were not balanced by the same thread's push.
pub fn stack_issues(timeline: &[TraceEvent]) -> Vec<StackIssue> {
    replay_stacks(timeline).1
}

/// Context stack: pops with nothing to pop, or popping someone else's binding.
pub fn unbalanced_stack(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    let tl = &d.timeline;
    let issues = stack_issues(tl);
    if !issues.is_empty() {
        let empty: Vec<&StackIssue> = issues.iter().filter(|i| i.kind == "empty").collect();
        let bound: Vec<&StackIssue> = issues.iter().filter(|i| i.kind == "bound").collect();
        let mut parts = Vec::new();
        if !empty.is_empty() {
            let answers: BTreeSet<String> = empty.iter().map(|i| i.result.to_string()).collect();
            let threads: BTreeSet<u64> = empty.iter().map(|i| i.thread).collect();
            parts.push(format!(
                "{} with an empty context stack on {} answered {}",
                plural(empty.len(), "cuCtxPopCurrent", "cuCtxPopCurrent calls"),
                plural(threads.len(), "thread", "threads"),
                answers.into_iter().collect::<Vec<_>>().join(" / ")
            ));
        }
        if !bound.is_empty() {
            parts.push(format!(
                "{} popped a context that was bound with cuCtxSetCurrent, not pushed — the driver answers CUDA_SUCCESS and the thread is left with no context",
                plural(bound.len(), "cuCtxPopCurrent", "cuCtxPopCurrent calls")
            ));
        }
        out.push(
            Finding::new(
                severity(issues.iter().all(|i| i.ok)),
                codes::CTX_STACK_UNBALANCED,
                format!("context stack unbalanced: {}", parts.join("; ")),
            )
            .hint("Pair every cuCtxPushCurrent with exactly one cuCtxPopCurrent on the same thread (a scope guard); never pop a context you did not push; use cuCtxSetCurrent when you only need to bind."),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::{Row, Tl, cref, of_code};
    use crate::facts::trace::{DEVICE_MIXUP, PUSH_POP};
    use crate::report::Severity;

    #[test]
    fn stack_model_and_unbalanced_pops() {
        let mut tl = Tl::default();
        let (c1, c2) = (Some("ctx#1"), Some("ctx#2"));
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // balanced then one too many
            (1, "cuCtxPushCurrent_v2", c1, None, c1, 0, &[0]),
            (1, "cuCtxPushCurrent_v2", c2, c1, c2, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, c2, c1, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, c1, None, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, None, None, 201, &[201]),
            // never pushed
            (2, "cuCtxPopCurrent_v2", None, None, None, 201, &[201]),
            // bound with SetCurrent, then popped, then a call with nothing current
            (3, "cuCtxSetCurrent", c1, None, c1, 0, &[0]),
            (3, "cuCtxPopCurrent_v2", None, c1, None, 0, &[0]),
            (3, "cuMemAlloc_v2", None, None, None, 201, &[201]),
        ];
        tl.calls(PUSH_POP, rows);
        let depths = stack_depths(&tl.events);
        assert_eq!(depths[&1], (2, 0));
        assert_eq!(depths[&2], (0, 0));
        assert_eq!(depths[&3], (1, 0));
        let issues = stack_issues(&tl.events);
        let kinds: Vec<(u64, &str)> = issues.iter().map(|i| (i.thread, i.kind)).collect();
        assert_eq!(kinds, vec![(1, "empty"), (2, "empty"), (3, "bound")]);
        let d = TraceData {
            timeline: tl.events,
            ..Default::default()
        };
        let f = findings(&d);
        let s = of_code(&f, codes::CTX_STACK_UNBALANCED);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].severity, Severity::Info);
        assert!(s[0].message.contains("2 cuCtxPopCurrent calls with an empty context stack on 2 threads answered CUDA_ERROR_INVALID_CONTEXT (201)"), "{}", s[0].message);
        assert!(s[0].message.contains("bound with cuCtxSetCurrent"));
        // the alloc after the popped binding is a no-context failure too
        assert_eq!(of_code(&f, codes::CONTEXT_NOT_CURRENT).len(), 1);
    }

    #[test]
    fn an_unexpected_pop_answer_warns() {
        let mut tl = Tl::default();
        tl.calls(
            PUSH_POP,
            &[(2, "cuCtxPopCurrent_v2", None, None, None, 400, &[201])],
        );
        let d = TraceData {
            timeline: tl.events,
            ..Default::default()
        };
        let f = findings(&d);
        assert_eq!(
            of_code(&f, codes::CTX_STACK_UNBALANCED)[0].severity,
            Severity::Warn
        );
        assert_eq!(of_code(&f, codes::STEP_MISMATCH).len(), 1);
    }

    #[test]
    fn destroy_of_the_current_context_pops_it() {
        let mut tl = Tl::default();
        let c = Some("ctx#1");
        #[rustfmt::skip]
        let rows: &[Row] = &[
            (1, "cuCtxCreate_v2", None, None, c, 0, &[0]),
            (1, "cuCtxDestroy_v2", c, c, None, 0, &[0]),
        ];
        tl.calls(DEVICE_MIXUP, rows);
        tl.events[0].out_ctx = cref("ctx#1");
        assert_eq!(stack_depths(&tl.events)[&1], (1, 0));
    }
}
