//! The per-thread summary of a timeline: calls, failures, contexts seen, modelled stack depth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ns;
use super::push_pop::stack_depths;
use crate::facts::trace::{ThreadInfo, TraceEvent};

/// Per-thread summary row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub tid: u64,
    pub name: String,
    pub calls: u32,
    /// Calls that did not answer CUDA_SUCCESS.
    pub failures: u32,
    /// Calls whose answer was not among the expected ones.
    pub unexpected: u32,
    /// "CUDA_ERROR_INVALID_CONTEXT (201) ×12"
    pub failure_codes: Vec<String>,
    /// Context ids current on this thread at some point, or handed to / by its calls.
    pub contexts_seen: Vec<String>,
    /// Context-stack depth as modelled from the calls (create/push +1, pop −1, …).
    pub max_stack_depth: u32,
    pub final_stack_depth: u32,
    pub first_us: f64,
    pub last_us: f64,
}

/// Per-thread summary: calls, failures, contexts seen, modelled stack depth.
pub fn summarize(timeline: &[TraceEvent], threads: &[ThreadInfo]) -> Vec<ThreadSummary> {
    let depths = stack_depths(timeline);
    let mut order: Vec<u64> = Vec::new();
    for e in timeline {
        if !order.contains(&e.thread) {
            order.push(e.thread);
        }
    }
    order
        .into_iter()
        .map(|tid| {
            let evs: Vec<&TraceEvent> = timeline.iter().filter(|e| e.thread == tid).collect();
            let mut codes_count: BTreeMap<String, u32> = BTreeMap::new();
            let mut seen: Vec<String> = Vec::new();
            for e in &evs {
                if e.failed() {
                    *codes_count.entry(e.result.to_string()).or_default() += 1;
                }
                for c in [&e.ctx_before, &e.ctx_after, &e.arg_ctx, &e.out_ctx]
                    .into_iter()
                    .flatten()
                {
                    if !seen.contains(&c.id) {
                        seen.push(c.id.clone());
                    }
                }
            }
            let (max_d, final_d) = depths.get(&tid).copied().unwrap_or((0, 0));
            ThreadSummary {
                tid,
                name: threads
                    .iter()
                    .find(|t| t.tid == tid)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| format!("tid {tid}")),
                calls: evs.len() as u32,
                failures: evs.iter().filter(|e| e.failed()).count() as u32,
                unexpected: evs.iter().filter(|e| !e.ok).count() as u32,
                failure_codes: codes_count
                    .into_iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect(),
                contexts_seen: seen,
                max_stack_depth: max_d,
                final_stack_depth: final_d,
                first_us: evs.first().map(|e| ns(e.t_us)).unwrap_or(0.0),
                last_us: evs.last().map(|e| ns(e.t_us + e.dur_us)).unwrap_or(0.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::test_support::hop_timeline;

    #[test]
    fn summary_counts_calls_failures_and_contexts_per_thread() {
        let d = hop_timeline(4, 16, false);
        let s = summarize(&d.timeline, &d.threads);
        assert_eq!(s.len(), 4);
        let w0 = &s[0];
        assert_eq!(w0.tid, 100);
        assert_eq!(w0.name, "thread-hop worker 0");
        // create + unbound 4×3 + bound 4×4 + pinned 16×3
        assert_eq!(w0.calls, 1 + 12 + 16 + 48);
        assert_eq!(w0.failures, 0);
        assert_eq!(w0.contexts_seen, vec!["ctx#1".to_string()]);
        let w1 = &s[1];
        // unbound: 4 tasks × 2 failing calls; bound: 4 × 4 ok
        assert_eq!(w1.calls, 8 + 16);
        assert_eq!(w1.failures, 8);
        assert_eq!(w1.unexpected, 0);
        assert_eq!(
            w1.failure_codes,
            vec!["CUDA_ERROR_INVALID_CONTEXT (201) ×8"]
        );
        assert_eq!(w1.max_stack_depth, 1);
        assert_eq!(w1.final_stack_depth, 1);
        assert!(w1.first_us < w1.last_us);
    }
}
