//! What the calls cost: medians of driver-call durations on the timeline (reported as metrics).

use crate::facts::trace::{BOUND, THREAD_HOP, TraceEvent};

/// The middle value (the upper one of the two middle values of an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// Median duration of cuCtxSetCurrent in the bound thread-hop variant: what the fix costs.
pub fn bind_cost_us(timeline: &[TraceEvent]) -> Option<f64> {
    median(
        timeline
            .iter()
            .filter(|e| {
                e.sub == THREAD_HOP
                    && e.variant.as_deref() == Some(BOUND)
                    && e.op == "cuCtxSetCurrent"
                    && !e.failed()
            })
            .map(|e| e.dur_us)
            .collect(),
    )
}

/// Median duration of a successful cuCtxCreate_v2, in milliseconds.
pub fn ctx_create_ms(timeline: &[TraceEvent]) -> Option<f64> {
    median(
        timeline
            .iter()
            .filter(|e| e.op == "cuCtxCreate_v2" && !e.failed())
            .map(|e| e.dur_us / 1e3)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::test_support::hop_timeline;

    #[test]
    fn bind_and_create_costs_are_medians_of_the_successful_calls() {
        let d = hop_timeline(4, 16, false);
        assert_eq!(bind_cost_us(&d.timeline), Some(2.5));
        assert_eq!(ctx_create_ms(&d.timeline), Some(0.0025));
        assert_eq!(ctx_create_ms(&[]), None);
    }
}
