//! Device memory back to its baseline once every context is gone (MEMORY_NOT_RETURNED).

use super::{MEMORY_TOLERANCE_BYTES, TraceData};
use crate::report::{Finding, Severity, codes};

/// Memory back to baseline.
pub fn not_returned(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in &d.memory {
        if let (Some(b), Some(a)) = (m.before_bytes, m.after_bytes)
            && a > b + MEMORY_TOLERANCE_BYTES
        {
            let others = if m.other_pids.is_empty() {
                String::new()
            } else {
                format!(
                    " (other processes on this GPU: {:?}; their memory counts too)",
                    m.other_pids
                )
            };
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::MEMORY_NOT_RETURNED,
                    format!(
                        "GPU {}: {} MiB in use after the contexts were destroyed and released vs {} MiB before{others}",
                        m.nvml,
                        a >> 20,
                        b >> 20
                    ),
                )
                .device(m.nvml)
                .hint("Re-run; if it repeats with no other process on the GPU, a context or allocation was not given back."),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::of_code;
    use crate::facts::trace::MemoryCheck;

    #[test]
    fn memory_not_returned_beyond_tolerance() {
        let mut d = TraceData::default();
        d.memory.push(MemoryCheck {
            nvml: 0,
            before_bytes: Some(1 << 30),
            after_bytes: Some((1 << 30) + (4 << 20)),
            other_pids: vec![],
        });
        assert!(findings(&d).is_empty());
        d.memory[0].after_bytes = Some((1 << 30) + (600 << 20));
        let f = findings(&d);
        assert_eq!(of_code(&f, codes::MEMORY_NOT_RETURNED).len(), 1);
    }
}
