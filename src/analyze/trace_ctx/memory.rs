//! Device memory back to its baseline once every context is gone: the one memory check
//! (`analyze::memory`), per GPU used.

use super::TraceData;
use crate::analyze::memory;
use crate::report::Finding;

/// Memory back to baseline on every GPU used.
pub fn not_returned(d: &TraceData) -> Vec<Finding> {
    d.memory
        .iter()
        .flat_map(|m| memory::check(m, m.device.unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::of_code;
    use crate::facts::memory::MemoryCheck;
    use crate::report::codes;

    #[test]
    fn memory_not_returned_beyond_tolerance_names_its_gpu() {
        let mut d = TraceData::default();
        d.memory.push(MemoryCheck {
            device: Some(1),
            nvml_used_before: Some(1 << 30),
            nvml_used_after: Some((1 << 30) + (4 << 20)),
            ..Default::default()
        });
        assert!(findings(&d).is_empty());
        d.memory[0].nvml_used_after = Some((1 << 30) + (600 << 20));
        let f = findings(&d);
        let f = of_code(&f, codes::MEMORY_NOT_RETURNED);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].device, Some(1));
    }

    #[test]
    fn stored_under_the_v1_names_and_read_back() {
        let saved = serde_json::json!({
            "subs": [],
            "memory": [{"nvml": 1, "before_bytes": 3407872, "after_bytes": 3407872, "other_pids": [77]}]
        });
        let d: TraceData = serde_json::from_value(saved.clone()).unwrap();
        let m = &d.memory[0];
        assert_eq!(m.device, Some(1));
        assert_eq!(m.nvml_used_after, Some(3407872));
        assert_eq!(m.foreign_processes[0].pid, 77);
        let again = serde_json::to_value(&d).unwrap();
        assert_eq!(again["memory"], saved["memory"]);
    }
}
