//! The one memory check (`crate::facts::memory`), used by every scenario that checks device
//! memory came back: is it back to its baseline after cleanup, within [`TOLERANCE_BYTES`]?
//!
//! cuMemGetInfo and NVML's used memory count every process on the GPU. So when the watch saw
//! another process allocate or free device memory while the scenario ran, the figures are not
//! the scenario's alone: the check is inconclusive (`MEMORY_CHECK_INCONCLUSIVE`, warn, naming
//! the processes: pid, how much, when), never a fail blamed on gpu-doctor. [`during`] gives the
//! same facts for a part of the run (the OOM edge is judged against what was free during the
//! fill: `analyze::faults::oom`).

use crate::facts::memory::{MemoryChange, MemoryCheck, MemoryWatch, TOLERANCE_BYTES};
use crate::report::{Finding, Severity, codes};
use crate::units::format_bytes;

/// Whether the watch saw another process allocate or free device memory during the run: then
/// device-wide figures (free memory, the OOM edge, a pool's effect) are not the scenario's alone.
pub fn others_moved(m: &MemoryCheck) -> bool {
    m.watch.as_ref().is_some_and(|w| !w.changes.is_empty())
}

/// Findings of one memory check of GPU `device` (the check's own `device` when it names one).
pub fn check(m: &MemoryCheck, device: u32) -> Vec<Finding> {
    let device = m.device.unwrap_or(device);
    let tol = format_bytes(TOLERANCE_BYTES);
    let differences = differences(m);
    if let Some(w) = &m.watch
        && !w.changes.is_empty()
    {
        let figures = if differences.is_empty() {
            format!("The figures are within the tolerance ({tol}), but not gpu-doctor's alone.")
        } else {
            format!(
                "Before → after cleanup: {} (tolerance {tol}).",
                differences.join("; ")
            )
        };
        return vec![
            Finding::new(
                Severity::Warn,
                codes::MEMORY_CHECK_INCONCLUSIVE,
                format!(
                    "memory back to its baseline cannot be judged: other processes allocated or freed device memory on this GPU during the run: {}. {figures}",
                    describe(&w.changes.iter().collect::<Vec<_>>(), w.changes_dropped)
                ),
            )
            .device(device)
            .hint(INCONCLUSIVE_HINT),
        ];
    }
    let mut out = Vec::new();
    let foreign = !m.foreign_processes.is_empty();
    if foreign {
        out.push(
            Finding::new(
                Severity::Info,
                codes::FOREIGN_PROCESSES,
                format!(
                    "other processes hold memory on this GPU; memory figures include their use. Other processes on the GPU: {}.",
                    processes(m)
                ),
            )
            .device(device),
        );
    }
    // A watch that saw every sample and no change of another process: a difference is ours.
    // Without one (reports of earlier versions, NVML not answering), processes on the GPU may
    // have allocated meanwhile, and a difference only warns.
    let watched = m
        .watch
        .as_ref()
        .is_some_and(|w| w.samples > 0 && w.failed_samples == 0);
    let (severity, hint) = if watched {
        (
            Severity::Fail,
            "No other process changed its device memory during the run (NVML watched it): the driver kept memory of a freed or destroyed context. Compare with a known-good driver (`gpu-doctor compare`).",
        )
    } else if foreign {
        (
            Severity::Warn,
            "Another process may have allocated meanwhile: re-run on an idle GPU to tell.",
        )
    } else {
        (
            Severity::Fail,
            "No other process uses the GPU: the driver kept memory of a freed or destroyed context. Compare with a known-good driver (`gpu-doctor compare`).",
        )
    };
    let others = if foreign {
        format!(" Other processes on the GPU: {}.", processes(m))
    } else {
        String::new()
    };
    for d in differences {
        out.push(
            Finding::new(
                severity,
                codes::MEMORY_NOT_RETURNED,
                format!("{d} (tolerance {tol}).{others}"),
            )
            .device(device)
            .hint(hint),
        );
    }
    out
}

const INCONCLUSIVE_HINT: &str = "gpu-doctor's own processes are not counted. Re-run on an idle GPU to check; `nvidia-smi` or `gpu-doctor info` shows what the processes named hold now.";

/// Each figure (cuMemGetInfo free, NVML used) that did not come back within the tolerance.
fn differences(m: &MemoryCheck) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(before), Some(after)) = (m.cuda_free_before, m.cuda_free_after)
        && before > after.saturating_add(TOLERANCE_BYTES)
    {
        out.push(format!(
            "cuMemGetInfo: {} less free after cleanup than at the baseline",
            format_bytes(before - after)
        ));
    }
    if let (Some(before), Some(after)) = (m.nvml_used_before, m.nvml_used_after)
        && after > before.saturating_add(TOLERANCE_BYTES)
    {
        out.push(format!(
            "NVML: {} more used after cleanup than at the baseline",
            format_bytes(after - before)
        ));
    }
    out
}

fn processes(m: &MemoryCheck) -> String {
    m.foreign_processes
        .iter()
        .map(|p| match p.used_bytes {
            Some(b) => format!("pid {} ({})", p.pid, format_bytes(b)),
            None => format!("pid {}", p.pid),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What other processes did between `from_ms` and `to_ms` of a watch.
#[derive(Debug, PartialEq)]
pub struct During<'a> {
    /// Their changes in the window (after `from_ms`, up to and including `to_ms`).
    pub changes: Vec<&'a MemoryChange>,
    /// The most they held beyond what they held at `from_ms`, at any sample in the window:
    /// memory the scenario could not have had then. Changes of unknown size count 0.
    pub peak_growth_bytes: u64,
}

/// Other processes' changes in a part of the run, and how much more memory they held then.
pub fn during(w: &MemoryWatch, from_ms: f64, to_ms: f64) -> During<'_> {
    let at_start: u64 = w.others_at_start.iter().filter_map(|p| p.used_bytes).sum();
    let mut held = at_start as i64;
    for c in w.changes.iter().filter(|c| c.at_ms <= from_ms) {
        held += c.bytes.unwrap_or(0);
    }
    let base = held;
    let mut peak = held;
    let mut changes = Vec::new();
    for c in w
        .changes
        .iter()
        .filter(|c| c.at_ms > from_ms && c.at_ms <= to_ms)
    {
        held += c.bytes.unwrap_or(0);
        peak = peak.max(held);
        changes.push(c);
    }
    During {
        changes,
        peak_growth_bytes: (peak - base).max(0) as u64,
    }
}

/// Names other processes' changes: per pid, what it allocated or freed and when
/// ("pid 4242 allocated 40.00 GiB at 812 ms, freed 40.00 GiB at 1031 ms").
pub fn describe(changes: &[&MemoryChange], dropped: u32) -> String {
    /// Changes named per process; the rest are summed up.
    const SHOWN: usize = 3;
    let mut pids: Vec<u32> = Vec::new();
    for c in changes {
        if !pids.contains(&c.pid) {
            pids.push(c.pid);
        }
    }
    let mut parts: Vec<String> = pids
        .iter()
        .map(|&pid| {
            let mine: Vec<&&MemoryChange> = changes.iter().filter(|c| c.pid == pid).collect();
            let mut what: Vec<String> = mine.iter().take(SHOWN).map(|c| one_change(c)).collect();
            if mine.len() > SHOWN {
                let rest = &mine[SHOWN..];
                let net: i64 = rest.iter().filter_map(|c| c.bytes).sum();
                what.push(format!(
                    "{} more change(s) until {:.0} ms ({} {} in all)",
                    rest.len(),
                    rest[rest.len() - 1].at_ms,
                    if net < 0 { "freed" } else { "allocated" },
                    format_bytes(net.unsigned_abs())
                ));
            }
            format!("pid {pid} {}", what.join(", "))
        })
        .collect();
    if dropped > 0 {
        parts.push(format!("and {dropped} change(s) not kept"));
    }
    parts.join("; ")
}

fn one_change(c: &MemoryChange) -> String {
    let at = format!("at {:.0} ms", c.at_ms);
    match (c.bytes, c.used_bytes) {
        (Some(b), _) if b >= 0 => format!("allocated {} {at}", format_bytes(b as u64)),
        (Some(b), _) => format!("freed {} {at}", format_bytes(b.unsigned_abs())),
        (None, Some(0)) => format!("left the GPU {at}"),
        (None, _) => format!("changed its use {at} (NVML does not say by how much)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::GpuProcess;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn change(pid: u32, bytes: i64, at_ms: f64) -> MemoryChange {
        MemoryChange {
            pid,
            bytes: Some(bytes),
            used_bytes: None,
            at_ms,
        }
    }

    fn watch(changes: Vec<MemoryChange>) -> MemoryWatch {
        MemoryWatch {
            device: 0,
            period_ms: 50.0,
            from_ms: 0.0,
            to_ms: 1000.0,
            samples: 20,
            changes,
            ..Default::default()
        }
    }

    /// Memory that did not come back by 100 MiB (cuMemGetInfo) and 10 MiB (NVML).
    fn leaky() -> MemoryCheck {
        MemoryCheck {
            tolerance_bytes: TOLERANCE_BYTES,
            cuda_free_before: Some(80 * GIB),
            cuda_free_after: Some(80 * GIB - 100 * MIB),
            nvml_used_before: Some(GIB),
            nvml_used_after: Some(GIB + 10 * MIB),
            ..Default::default()
        }
    }

    fn codes_of(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.code.as_str(), f.severity)).collect()
    }

    #[test]
    fn memory_not_returned_fails_alone_and_warns_with_foreign_processes_unwatched() {
        let mut m = leaky();
        let f = check(&m, 3);
        assert_eq!(
            codes_of(&f),
            vec![(codes::MEMORY_NOT_RETURNED, Severity::Fail)],
            "NVML within tolerance"
        );
        assert_eq!(f[0].device, Some(3));
        assert!(f[0].message.contains("100.00 MiB"), "{}", f[0].message);
        m.foreign_processes = vec![GpuProcess {
            pid: 4242,
            used_bytes: Some(GIB),
        }];
        m.nvml_used_after = Some(3 * GIB);
        let f = check(&m, 3);
        assert_eq!(
            codes_of(&f),
            vec![
                (codes::FOREIGN_PROCESSES, Severity::Info),
                (codes::MEMORY_NOT_RETURNED, Severity::Warn),
                (codes::MEMORY_NOT_RETURNED, Severity::Warn)
            ]
        );
        assert!(f[2].message.contains("pid 4242"));
        // Within tolerance: only the note about the other process.
        m.cuda_free_after = Some(80 * GIB - MIB);
        m.nvml_used_after = Some(GIB);
        assert_eq!(
            codes_of(&check(&m, 3)),
            vec![(codes::FOREIGN_PROCESSES, Severity::Info)]
        );
        m.foreign_processes.clear();
        assert!(check(&m, 3).is_empty());
    }

    #[test]
    fn the_tolerance_is_the_one_documented_constant() {
        let mut m = leaky();
        m.cuda_free_after = Some(80 * GIB - TOLERANCE_BYTES);
        m.nvml_used_after = Some(GIB + TOLERANCE_BYTES);
        // A recorded tolerance of another size does not change the verdict.
        m.tolerance_bytes = 16 * MIB;
        assert!(check(&m, 0).is_empty());
        m.cuda_free_after = Some(80 * GIB - TOLERANCE_BYTES - 1);
        assert_eq!(check(&m, 0).len(), 1);
        assert_eq!(
            TOLERANCE_BYTES,
            64 * MIB,
            "docs/report.md gives 64 MiB and why"
        );
    }

    #[test]
    fn a_process_that_held_still_beside_a_watched_run_does_not_excuse_a_leak() {
        let mut m = leaky();
        m.foreign_processes = vec![GpuProcess {
            pid: 17,
            used_bytes: Some(GIB),
        }];
        m.watch = Some(watch(vec![]));
        let f = check(&m, 0);
        assert_eq!(
            codes_of(&f),
            vec![
                (codes::FOREIGN_PROCESSES, Severity::Info),
                (codes::MEMORY_NOT_RETURNED, Severity::Fail)
            ]
        );
        assert!(f[1].hint.as_deref().unwrap().contains("NVML watched"));
        // A watch whose samples failed saw nothing: as without one.
        m.watch.as_mut().unwrap().failed_samples = 3;
        assert_eq!(check(&m, 0)[1].severity, Severity::Warn);
    }

    #[test]
    fn another_process_allocating_mid_run_makes_the_check_inconclusive_and_is_named() {
        // Another `inject oom` (its child, pid 4242) fills the GPU while this one runs and
        // still holds part of it when this one measures after cleanup.
        let mut m = leaky();
        m.watch = Some(watch(vec![
            change(4242, 40 * GIB as i64, 312.0),
            change(4242, -(40 * GIB as i64) + 200 * MIB as i64, 530.0),
        ]));
        let f = check(&m, 0);
        assert_eq!(
            codes_of(&f),
            vec![(codes::MEMORY_CHECK_INCONCLUSIVE, Severity::Warn)]
        );
        let msg = &f[0].message;
        assert!(
            msg.contains("pid 4242 allocated 40.00 GiB at 312 ms, freed 39.80 GiB at 530 ms"),
            "{msg}"
        );
        assert!(msg.contains("cuMemGetInfo: 100.00 MiB less free"), "{msg}");
        // Even within the tolerance the figures were not ours alone.
        m.cuda_free_after = m.cuda_free_before;
        m.nvml_used_after = m.nvml_used_before;
        let f = check(&m, 0);
        assert_eq!(f[0].code, codes::MEMORY_CHECK_INCONCLUSIVE);
        assert!(f[0].message.contains("within the tolerance (64.00 MiB)"));
    }

    #[test]
    fn a_process_vanishing_mid_run_is_named_too() {
        let mut m = leaky();
        m.foreign_processes = vec![GpuProcess {
            pid: 17,
            used_bytes: Some(GIB),
        }];
        m.watch = Some(MemoryWatch {
            others_at_start: m.foreign_processes.clone(),
            ..watch(vec![MemoryChange {
                pid: 17,
                bytes: Some(-(GIB as i64)),
                used_bytes: Some(0),
                at_ms: 700.0,
            }])
        });
        let f = check(&m, 0);
        assert_eq!(codes_of(&f)[0].0, codes::MEMORY_CHECK_INCONCLUSIVE);
        assert!(f[0].message.contains("pid 17 freed 1.00 GiB at 700 ms"));
    }

    #[test]
    fn during_gives_the_window_and_the_most_others_took_in_it() {
        let w = MemoryWatch {
            others_at_start: vec![GpuProcess {
                pid: 7,
                used_bytes: Some(GIB),
            }],
            ..watch(vec![
                change(9, 2 * GIB as i64, 10.0),
                change(4242, 30 * GIB as i64, 120.0),
                change(4242, 10 * GIB as i64, 150.0),
                change(7, -(GIB as i64), 160.0),
                change(4242, -(40 * GIB as i64), 400.0),
            ])
        };
        let d = during(&w, 100.0, 200.0);
        assert_eq!(d.changes.len(), 3);
        assert_eq!(d.peak_growth_bytes, 40 * GIB);
        // Before the window: nothing in it.
        let d = during(&w, 0.0, 5.0);
        assert!(d.changes.is_empty());
        assert_eq!(d.peak_growth_bytes, 0);
        // A window in which others only freed: they took nothing from us.
        let d = during(&w, 300.0, 500.0);
        assert_eq!((d.changes.len(), d.peak_growth_bytes), (1, 0));
    }

    #[test]
    fn describe_names_each_process_and_sums_up_a_busy_one() {
        let mut changes = vec![
            MemoryChange {
                pid: 9,
                bytes: None,
                used_bytes: None,
                at_ms: 5.0,
            },
            MemoryChange {
                pid: 9,
                bytes: None,
                used_bytes: Some(0),
                at_ms: 55.0,
            },
        ];
        for i in 0..6 {
            changes.push(change(
                5,
                if i % 2 == 0 { 3 } else { -1 } * MIB as i64,
                i as f64 * 100.0,
            ));
        }
        let refs: Vec<&MemoryChange> = changes.iter().collect();
        let s = describe(&refs, 2);
        assert_eq!(
            s,
            "pid 9 changed its use at 5 ms (NVML does not say by how much), left the GPU at 55 ms; \
             pid 5 allocated 3.00 MiB at 0 ms, freed 1.00 MiB at 100 ms, allocated 3.00 MiB at 200 ms, \
             3 more change(s) until 500 ms (allocated 1.00 MiB in all); and 2 change(s) not kept"
        );
    }
}
