//! `inject fragmentation` (pure): for each allocator, the largest block it gave after the
//! churn against what it had available; the verdict (which allocator fragments under the
//! pattern) and what fixes it; the memory check.

use crate::analyze::memory;
use crate::facts::faults::{AllocatorFragmentation, FragmentationFacts};
use crate::report::{Analysis, Better, Finding, Metric, MetricKind, Severity, codes};
use crate::units::format_bytes;

/// Below this share of the available memory as one block, an allocator fragments.
pub const LOW_RATIO: f64 = 0.90;
/// A remedy (the trimmed pool, the virtual memory API) must reach this share.
pub const REMEDY_RATIO: f64 = 0.95;

/// One measured line: what, largest, available.
struct Measure<'a> {
    name: &'static str,
    label: &'static str,
    remedy: bool,
    a: &'a AllocatorFragmentation,
    largest: u64,
    available: u64,
}

impl Measure<'_> {
    fn ratio(&self) -> Option<f64> {
        (self.available > 0).then(|| self.largest as f64 / self.available as f64)
    }

    fn figures(&self) -> String {
        format!(
            "{} of {} ({})",
            format_bytes(self.largest),
            format_bytes(self.available),
            self.ratio()
                .map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
        )
    }
}

fn measures(f: &FragmentationFacts) -> Vec<Measure<'_>> {
    let mut out = Vec::new();
    for a in &f.allocators {
        let (name, label, remedy) = match a.allocator.as_str() {
            "driver" => ("driver", "cuMemAlloc", false),
            "pool" => ("pool", "the pool keeping freed memory", false),
            "vmm" => ("vmm", "the virtual memory API (one reserved range)", true),
            _ => continue,
        };
        out.push(Measure {
            name,
            label,
            remedy,
            a,
            largest: a.largest_block_bytes,
            available: a.available_bytes,
        });
        if let Some(t) = a.after_trim.as_ref().filter(|_| name == "pool") {
            out.push(Measure {
                name: "pool_trimmed",
                label: "the pool after cuMemPoolTrimTo(0)",
                remedy: true,
                a,
                largest: t.largest_block_bytes,
                available: t.available_bytes,
            });
        }
    }
    out
}

pub fn fragmentation(f: &FragmentationFacts) -> Analysis {
    let d = f.device;
    let mut a = Analysis::default();
    let ms = measures(f);
    for m in &ms {
        a.metrics.insert(
            format!("{}_largest_block_bytes", m.name),
            Metric::new(m.largest as f64, "bytes", Better::Higher)
                .device(d)
                .kind(MetricKind::SingleShot),
        );
        if let Some(r) = m.ratio() {
            a.metrics.insert(
                format!("{}_largest_block_ratio", m.name),
                Metric::new(r, "ratio", Better::Higher)
                    .device(d)
                    .kind(MetricKind::Volatile),
            );
        }
    }
    if ms.is_empty() {
        a.findings.extend(memory::check(&f.memory, d));
        return a;
    }
    // Other processes' memory moving during the run moves the figures: no warning on them.
    let others_moved = memory::others_moved(&f.memory);
    let warn = if others_moved {
        Severity::Info
    } else {
        Severity::Warn
    };
    let freed = ms
        .first()
        .map(|m| {
            format!(
                "{} freed of {} allocated in {} allocation(s)",
                format_bytes(m.a.freed_bytes),
                format_bytes(m.a.allocated_bytes),
                m.a.allocations
            )
        })
        .unwrap_or_default();
    let figures: Vec<String> = ms
        .iter()
        .map(|m| format!("{}: {}", m.label, m.figures()))
        .collect();
    let low: Vec<&Measure> = ms
        .iter()
        .filter(|m| !m.remedy && m.ratio().is_some_and(|r| r < LOW_RATIO))
        .collect();
    let short: Vec<&Measure> = ms
        .iter()
        .filter(|m| m.remedy && m.ratio().is_some_and(|r| r < REMEDY_RATIO))
        .collect();
    let verdict = if low.is_empty() {
        "no allocator fragmented under this pattern".to_string()
    } else {
        format!(
            "{} fragmented (the largest block is well below the free memory)",
            low.iter()
                .map(|m| m.label)
                .collect::<Vec<_>>()
                .join(" and ")
        )
    };
    let stopped: Vec<String> = f
        .allocators
        .iter()
        .filter_map(|x| {
            x.stopped_by
                .as_ref()
                .map(|s| format!("{}'s churn stopped early ({s})", x.allocator))
        })
        .collect();
    let stopped = if stopped.is_empty() {
        String::new()
    } else {
        format!(" Note: {}.", stopped.join("; "))
    };
    a.findings.push(
        Finding::new(
            Severity::Info,
            codes::FRAGMENTATION,
            format!(
                "After freeing every other allocation of the pattern ({freed}), the largest single block against the memory available: {}. Verdict: {verdict}.{stopped}",
                figures.join("; ")
            ),
        )
        .device(d)
        .hint(HINT),
    );
    for m in &low {
        let (severity, what) = if m.name == "pool" {
            (
                Severity::Info,
                "a pool that keeps what is freed holds it in pieces between blocks still in use: by design, and what trimming is for",
            )
        } else {
            (
                warn,
                "a program allocating this way can get CUDA_ERROR_OUT_OF_MEMORY with that much memory free",
            )
        };
        a.findings.push(
            Finding::new(
                severity,
                codes::FRAGMENTATION_LARGEST_BLOCK_LOW,
                format!(
                    "{}: the largest block after the churn is {}: {what}.",
                    m.label,
                    m.figures()
                ),
            )
            .device(d)
            .hint(HINT),
        );
    }
    for m in &short {
        // Measured on an H200 (driver 580): trimming after the churn left the pool at 72% —
        // cuMemPoolTrimTo releases only chunks with nothing live in them, and the small
        // allocations still held pin the rest. That is the pool's design, not a fault.
        let (severity, what, hint) = if m.name == "pool_trimmed" {
            (
                Severity::Info,
                format!(
                    "trimming releases only the pool's chunks with nothing live in them, and {} is still allocated among them",
                    format_bytes(m.a.allocated_bytes.saturating_sub(m.a.freed_bytes))
                ),
                HINT,
            )
        } else {
            (
                warn,
                format!(
                    "short of the memory available (at least {:.0}% expected)",
                    REMEDY_RATIO * 100.0
                ),
                "Re-run on an idle GPU; if it repeats, compare the driver with a known-good report (`gpu-doctor compare`).",
            )
        };
        a.findings.push(
            Finding::new(
                severity,
                codes::FRAGMENTATION_REMEDY_SHORT,
                format!("{}: the largest block is {}: {what}.", m.label, m.figures()),
            )
            .device(d)
            .hint(hint),
        );
    }
    a.findings.extend(memory::check(&f.memory, d));
    a
}

const HINT: &str = "Fragmentation lives in allocators that keep freed memory (stream-ordered pools, framework caches): trim them before a large allocation (cuMemPoolTrimTo / cudaMemPoolTrimTo, torch.cuda.empty_cache), lower the pool's release threshold, or build large buffers with the virtual memory API (cuMemAddressReserve + cuMemCreate/cuMemMap; PyTorch: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True), whose largest block is the free memory.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::faults::TrimmedPool;

    const GIB: u64 = 1 << 30;

    fn alloc(name: &str, largest: u64, available: u64) -> AllocatorFragmentation {
        AllocatorFragmentation {
            allocator: name.into(),
            allocations: 2640,
            allocated_bytes: 120 * GIB,
            freed_allocations: 1320,
            freed_bytes: 117 * GIB,
            free_after_pattern_bytes: available,
            available_bytes: available,
            largest_block_bytes: largest,
            exact: true,
            ..Default::default()
        }
    }

    fn facts(allocators: Vec<AllocatorFragmentation>) -> FragmentationFacts {
        FragmentationFacts {
            device: 0,
            total_bytes: 140 * GIB,
            free_before_bytes: 139 * GIB,
            fraction: 0.85,
            granularity_bytes: 2 << 20,
            allocators,
            ..Default::default()
        }
    }

    fn codes_of(a: &Analysis) -> Vec<(&str, Severity)> {
        a.findings
            .iter()
            .map(|f| (f.code.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn pool_fragments_and_its_remedies_reach_the_free_memory() {
        let mut pool = alloc("pool", 192 << 20, 136 * GIB);
        pool.after_trim = Some(TrimmedPool {
            free_bytes: 136 * GIB,
            pool_reserved_bytes: Some(3 * GIB),
            available_bytes: 136 * GIB,
            largest_block_bytes: 135 * GIB,
        });
        let f = facts(vec![
            alloc("driver", 136 * GIB, 136 * GIB),
            pool,
            alloc("vmm", 136 * GIB, 136 * GIB),
        ]);
        let a = fragmentation(&f);
        assert_eq!(
            codes_of(&a),
            vec![
                (codes::FRAGMENTATION, Severity::Info),
                (codes::FRAGMENTATION_LARGEST_BLOCK_LOW, Severity::Info)
            ]
        );
        let summary = &a.findings[0].message;
        assert!(
            summary.contains("the pool keeping freed memory fragmented"),
            "{summary}"
        );
        assert!(
            summary.contains("cuMemAlloc: 136.00 GiB of 136.00 GiB (100.0%)"),
            "{summary}"
        );
        assert_eq!(a.metrics["driver_largest_block_ratio"].value, 1.0);
        assert!(a.metrics["pool_largest_block_ratio"].value < 0.01);
        assert!(a.metrics["pool_trimmed_largest_block_ratio"].value > 0.99);
        assert!(a.metrics.contains_key("vmm_largest_block_bytes"));
    }

    #[test]
    fn a_fragmenting_driver_warns_and_a_short_remedy_too() {
        let f = facts(vec![
            alloc("driver", 10 * GIB, 100 * GIB),
            alloc("vmm", 50 * GIB, 100 * GIB),
        ]);
        let a = fragmentation(&f);
        let c = codes_of(&a);
        assert!(
            c.contains(&(codes::FRAGMENTATION_LARGEST_BLOCK_LOW, Severity::Warn)),
            "{c:?}"
        );
        assert!(
            c.contains(&(codes::FRAGMENTATION_REMEDY_SHORT, Severity::Warn)),
            "{c:?}"
        );
        assert!(
            a.findings[0]
                .message
                .contains("Verdict: cuMemAlloc fragmented")
        );
    }

    #[test]
    fn a_trimmed_pool_short_of_free_memory_is_the_pools_design() {
        // The H200's figures: trimming leaves chunks that still hold live allocations.
        let mut pool = alloc("pool", 94 * GIB, 136 * GIB);
        pool.after_trim = Some(crate::facts::faults::TrimmedPool {
            largest_block_bytes: 98 * GIB,
            available_bytes: 136 * GIB,
            ..Default::default()
        });
        let f = facts(vec![
            alloc("driver", 136 * GIB, 136 * GIB),
            pool,
            alloc("vmm", 135 * GIB, 135 * GIB),
        ]);
        let a = fragmentation(&f);
        let c = codes_of(&a);
        assert!(
            c.contains(&(codes::FRAGMENTATION_REMEDY_SHORT, Severity::Info)),
            "{c:?}"
        );
        assert!(c.iter().all(|(_, s)| *s == Severity::Info), "{c:?}");
        let short = a
            .findings
            .iter()
            .find(|f| f.code == codes::FRAGMENTATION_REMEDY_SHORT)
            .unwrap();
        assert!(
            short.message.contains("still allocated"),
            "{}",
            short.message
        );
    }

    #[test]
    fn nothing_fragmented_is_said() {
        let f = facts(vec![alloc("driver", 99 * GIB, 100 * GIB)]);
        let a = fragmentation(&f);
        assert_eq!(codes_of(&a), vec![(codes::FRAGMENTATION, Severity::Info)]);
        assert!(
            a.findings[0]
                .message
                .contains("no allocator fragmented under this pattern")
        );
    }
}
