//! Calls outside the report's steps whose answer the documentation does not allow: a `fail`
//! STEP_MISMATCH each.

use super::TraceData;
use crate::report::{Code, Finding, Severity, codes};

/// Calls outside the steps that answered against the documentation.
pub fn unexpected_answers(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    let tl = &d.timeline;
    for e in tl.iter().filter(|e| !e.ok && !e.step) {
        let expected: Vec<String> = e.expected.iter().map(Code::to_string).collect();
        out.push(
            Finding::new(
                Severity::Fail,
                codes::STEP_MISMATCH,
                format!(
                    "timeline #{} ({}{}{}): {} on thread {} answered {}, expected {}",
                    e.seq,
                    e.sub,
                    e.variant
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    e.task.map(|t| format!(", task {t}")).unwrap_or_default(),
                    e.op,
                    e.thread,
                    e.result,
                    expected.join(" or ")
                ),
            )
            .hint(e.note.clone().unwrap_or_else(|| {
                "The driver answered differently from its documentation; compare with a known-good report (`gpu-doctor compare`).".into()
            })),
        );
    }
    out
}
