//! `trace ctx`: pure analysis over the context timeline (`crate::facts::trace`) — per-thread
//! summary, modelled context-stack depth, primary retain counts, and one finding per failure
//! pattern, each pattern in its own module.
//!
//! Everything here works on what a report's `data` holds ([`TraceData`]), so a saved report
//! (`trace ctx --from REPORT.json`) is re-analysed with exactly the code that made it.

use serde::{Deserialize, Serialize};

use crate::facts::memory::MemoryCheck;
use crate::facts::trace::{CtxInfo, HopFacts, MixupFacts, PrimaryFacts, ThreadInfo, TraceEvent};
use crate::report::{Finding, Severity};

mod device_mixup;
mod memory;
mod mismatch;
mod primary;
mod push_pop;
mod summary;
#[cfg(test)]
pub mod test_support;
mod thread_hop;
mod timing;

pub use primary::primary_retain_counts;
pub use summary::{ThreadSummary, summarize};
pub use thread_hop::hop_outcome;
pub use timing::{bind_cost_us, ctx_create_ms};

/// Everything `trace ctx` keeps in `report.data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceData {
    /// Sub-scenarios that ran.
    pub subs: Vec<String>,
    /// "13.0" (cuDriverGetVersion).
    #[serde(default)]
    pub cuda_driver: Option<String>,
    /// The process the calls ran in (the isolated child).
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub threads: Vec<ThreadInfo>,
    #[serde(default)]
    pub contexts: Vec<CtxInfo>,
    /// Every driver call, in order.
    #[serde(default)]
    pub timeline: Vec<TraceEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_hop: Option<HopFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mixup: Option<MixupFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<PrimaryFacts>,
    /// One memory check per GPU used (stored under its v1 names: `facts::memory::per_gpu`).
    #[serde(default, with = "crate::facts::memory::per_gpu")]
    pub memory: Vec<MemoryCheck>,
    /// Computed by [`summarize`] (kept for renderers and readers of the JSON).
    #[serde(default)]
    pub summary: Vec<ThreadSummary>,
}

fn severity(all_expected: bool) -> Severity {
    if all_expected {
        Severity::Info
    } else {
        Severity::Warn
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One finding per failure pattern, with the fix as hint. Patterns the scenario provokes on
/// purpose and the driver answered as documented are `info`; the same pattern answered
/// otherwise is `warn`; any call whose answer was not among the documented ones (and that is
/// not already a report step) is a `fail` STEP_MISMATCH.
pub fn findings(d: &TraceData) -> Vec<Finding> {
    // In the order the findings appear in a report.
    let patterns: [fn(&TraceData) -> Vec<Finding>; 6] = [
        mismatch::unexpected_answers,
        thread_hop::context_not_current,
        device_mixup::memory_elsewhere,
        push_pop::unbalanced_stack,
        primary::lifetime_and_flags,
        memory::not_returned,
    ];
    patterns.iter().flat_map(|pattern| pattern(d)).collect()
}

/// Microseconds rounded to the nanosecond, so a summary (or a Chrome trace) computed from a
/// timeline read back from JSON equals the one computed live (float sums can differ in the
/// last bits).
pub(crate) fn ns(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

/// What the tables show beyond the data: the outcome of each thread-hop variant (variant,
/// tasks, failed tasks) and the primary context's retain count after each retain/release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceView {
    pub hops: Vec<(String, u32, u32)>,
    pub retain_counts: Vec<i64>,
}

/// The [`TraceView`] of `d`.
pub fn view(d: &TraceData) -> TraceView {
    use crate::facts::trace::{BOUND, PINNED, UNBOUND};
    TraceView {
        hops: [UNBOUND, BOUND, PINNED]
            .into_iter()
            .map(|v| {
                let (tasks, failed, _) = hop_outcome(&d.timeline, v);
                (v.to_string(), tasks, failed)
            })
            .filter(|(_, tasks, _)| *tasks > 0)
            .collect(),
        retain_counts: primary_retain_counts(&d.timeline)
            .into_iter()
            .map(|(_, n)| n)
            .collect(),
    }
}
