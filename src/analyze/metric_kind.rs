//! The kind of a metric (how far it can be trusted between runs) when its report does not
//! record one: reports written before metrics carried `kind` still compare by the same rule.
//!
//! One table, by scenario and metric name (per-device suffixes `.gpu<N>` / `.cuda<N>`
//! stripped); a metric no row names falls back to its unit. The tests check that every
//! metric of every recorded fixture is named by a row, and that the rows agree with the kinds
//! the analyses record today when they re-run on the same facts.

use serde::Serialize;

use crate::report::{Metric, MetricKind};

/// Where a metric's kind came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KindSource {
    /// The report records it (`metric.kind`).
    Recorded,
    /// A row of [`TABLE`] names the metric.
    Inferred,
    /// No row names it: guessed from its unit.
    Unit,
}

use MetricKind::{Exact, SingleShot, Throughput, Volatile};

/// (scenario, metric base name, kind). `*` in a scenario matches any; in a name, any run of
/// characters. The first matching row wins: specific rows come before general ones.
pub const TABLE: &[(&str, &str, MetricKind)] = &[
    // bandwidth: median of repeated samples (analyze::bandwidth::path_kind).
    ("bandwidth", "h2d_pinned_gbps", Throughput),
    ("bandwidth", "d2h_pinned_gbps", Throughput),
    ("bandwidth", "d2d_ce_gbps", Throughput),
    ("bandwidth", "d2d_sm_gbps", Throughput),
    ("bandwidth", "bidir_pinned_gbps", Volatile),
    ("bandwidth", "h2d_pageable_gbps", Volatile),
    ("bandwidth", "d2h_pageable_gbps", Volatile),
    ("bandwidth", "p2p_bidir_*_gbps", Volatile),
    ("bandwidth", "p2p_staged_*_gbps", Volatile),
    ("bandwidth", "p2p_*_latency_us", Volatile),
    ("bandwidth", "p2p_*_gbps", Throughput),
    // inject oom: what the fill reached is reproducible; its timings are one event each.
    ("inject oom", "allocatable_bytes", Exact),
    ("inject oom", "free_before_bytes", Exact),
    ("inject oom", "ratio", Exact),
    ("inject oom", "allocations", Exact),
    ("inject oom", "time_to_edge_ms", SingleShot),
    ("inject oom", "free_ms", SingleShot),
    ("inject ctx-destroy", "destroy_*_ms", SingleShot),
    ("inject stream-misuse", "stale_reads", Exact),
    ("inject stream-misuse", "stale_reads_with_event", Exact),
    ("inject stream-misuse", "legacy_wait_ms", SingleShot),
    ("inject stream-misuse", "per_thread_wait_ms", SingleShot),
    ("inject illegal-address", "recover_ms", SingleShot),
    ("trace ctx", "bind_ctx_us", SingleShot),
    ("trace ctx", "ctx_create_ms", SingleShot),
    // health: the quick check is one event per GPU; --thorough adds inject oom's figures
    // (prefixed oom_) and bandwidth's under their own names (the bandwidth rows: [`from_table`]).
    ("health", "gpu_check_ms", SingleShot),
    ("health", "oom_time_to_edge_ms", SingleShot),
    ("health", "oom_free_ms", SingleShot),
    ("health", "oom_*", Exact),
    // inject fragmentation: one churn; the ratios move with what else holds memory.
    ("inject fragmentation", "*_largest_block_bytes", SingleShot),
    ("inject fragmentation", "*_largest_block_ratio", Volatile),
    // leak-check: what was left is reproducible; the growth rate is one fit of one run.
    ("leak-check", "left_allocated_bytes", Exact),
    ("leak-check", "left_allocations", Exact),
    ("leak-check", "live_peak_bytes", Exact),
    ("leak-check", "growth_bytes_per_s", SingleShot),
    // A user's program under the shim (`inject oom -- CMD`, `inject error`, `trace ctx -- CMD`).
    ("*", "program_duration_ms", SingleShot),
    ("*", "injected_failures", Exact),
    ("*", "peak_device_memory_bytes", Exact),
];

/// The base of a name `BASE<sep><N>` (`sep` is `.gpu` or `.cuda`, N a number); None for any
/// other name.
pub fn numbered_base<'a>(name: &'a str, sep: &str) -> Option<&'a str> {
    let (base, n) = name.rsplit_once(sep)?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// The name without a per-device suffix: `h2d_pinned_gbps.gpu1` → `h2d_pinned_gbps`,
/// `peak_device_memory_bytes.cuda0` → `peak_device_memory_bytes`.
pub fn base_name(name: &str) -> &str {
    [".gpu", ".cuda"]
        .into_iter()
        .find_map(|sep| numbered_base(name, sep))
        .unwrap_or(name)
}

/// Matches `text` against a pattern with at most one `*`.
fn matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len() && text.starts_with(head) && text.ends_with(tail)
        }
    }
}

/// Scenarios that report another's metrics under that one's names: `health --thorough` runs
/// bandwidth.
const BORROWS: &[(&str, &str)] = &[("health", "bandwidth")];

/// The kind a row of [`TABLE`] gives a metric of a scenario (or of the scenario whose metrics
/// it reports, [`BORROWS`]), if a row names it.
pub fn from_table(scenario: &str, name: &str) -> Option<MetricKind> {
    let base = base_name(name);
    let row = |scenario: &str| {
        TABLE
            .iter()
            .find(|(s, n, _)| matches(s, scenario) && matches(n, base))
            .map(|&(_, _, k)| k)
    };
    row(scenario).or_else(|| {
        BORROWS
            .iter()
            .find(|(s, _)| *s == scenario)
            .and_then(|(_, other)| row(other))
    })
}

/// The kind of a metric no row names, by its unit: a rate is a throughput, a time one event,
/// a count, size or ratio exact, anything else volatile.
pub fn from_unit(unit: &str) -> MetricKind {
    match unit {
        "GB/s" | "MB/s" | "GiB/s" | "MiB/s" => Throughput,
        "ms" | "us" | "µs" | "ns" | "s" => SingleShot,
        "count" | "bytes" | "ratio" => Exact,
        _ => Volatile,
    }
}

/// The kind of a metric and where it came from: the first that records one of `sides` (the
/// current report's, then the baselines'), else the table, else the unit.
pub fn kind_of(scenario: &str, name: &str, sides: &[&Metric]) -> (MetricKind, KindSource) {
    if let Some(k) = sides.iter().find_map(|m| m.kind) {
        return (k, KindSource::Recorded);
    }
    match from_table(scenario, name) {
        Some(k) => (k, KindSource::Inferred),
        None => (
            from_unit(sides.first().map_or("", |m| m.unit.as_str())),
            KindSource::Unit,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::bandwidth::{metric_name, path_kind};
    use crate::facts::bandwidth::{PathSamples, path};
    use crate::report::{Better, Report};

    #[test]
    fn names_are_matched_by_scenario_and_base_name() {
        assert_eq!(
            from_table("bandwidth", "h2d_pinned_gbps.gpu3"),
            Some(Throughput)
        );
        assert_eq!(from_table("bandwidth", "p2p_0_1_gbps"), Some(Throughput));
        assert_eq!(
            from_table("bandwidth", "p2p_bidir_0_1_gbps"),
            Some(Volatile)
        );
        assert_eq!(
            from_table("bandwidth", "p2p_staged_1_0_gbps"),
            Some(Volatile)
        );
        assert_eq!(
            from_table("bandwidth", "p2p_1_0_latency_us"),
            Some(Volatile)
        );
        assert_eq!(from_table("inject oom", "ratio"), Some(Exact));
        assert_eq!(from_table("topo", "ratio"), None, "rows are per scenario");
        assert_eq!(
            from_table("inject ctx-destroy", "destroy_owner_thread_ms"),
            Some(SingleShot)
        );
        assert_eq!(
            from_table("inject oom --", "peak_device_memory_bytes.cuda1"),
            Some(Exact)
        );
        assert_eq!(base_name("x.gpu"), "x.gpu");
        assert_eq!(base_name("x.gpu1a"), "x.gpu1a");
        assert!(!matches("p2p_*_gbps", "p2p_gbps"));
    }

    #[test]
    fn recorded_kind_wins_then_table_then_unit() {
        let m = Metric::new(1.0, "ms", Better::Lower);
        assert_eq!(
            kind_of("inject oom", "time_to_edge_ms", &[&m]),
            (SingleShot, KindSource::Inferred)
        );
        let rate = Metric::new(1.0, "GB/s", Better::Higher);
        assert_eq!(
            kind_of("new scenario", "new_gbps", &[&rate]),
            (Throughput, KindSource::Unit)
        );
        assert_eq!(kind_of("x", "y", &[&m]), (SingleShot, KindSource::Unit));
        // An old current report against a new baseline: the baseline's record counts.
        let recorded = m.clone().kind(Exact);
        assert_eq!(
            kind_of("inject oom", "time_to_edge_ms", &[&m, &recorded]),
            (Exact, KindSource::Recorded)
        );
        assert_eq!(from_unit("furlongs"), Volatile);
    }

    #[test]
    fn the_table_agrees_with_the_bandwidth_analysis_for_every_path() {
        for p in [
            path::H2D_PINNED,
            path::D2H_PINNED,
            path::BIDIR_PINNED,
            path::H2D_PAGEABLE,
            path::D2H_PAGEABLE,
            path::D2D_CE,
            path::D2D_SM,
            path::P2P,
            path::P2P_STAGED,
            path::P2P_BIDIR,
            path::P2P_LATENCY,
        ] {
            let peer = p.starts_with("p2p").then_some(1);
            let s = PathSamples {
                path: p.into(),
                peer,
                ..Default::default()
            };
            for multi in [false, true] {
                let name = metric_name(&s, multi);
                assert_eq!(from_table("bandwidth", &name), Some(path_kind(p)), "{name}");
            }
        }
    }

    /// Every report in tests/fixtures, with the scenario reports inside it.
    fn fixture_units() -> Vec<(String, Report)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            if !file.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let Ok(r) = crate::output::parse_report(&text) else {
                continue; // an NVML snapshot, not a report
            };
            let mut stack = vec![r];
            while let Some(mut r) = stack.pop() {
                stack.append(&mut r.reports);
                out.push((file.clone(), r));
            }
        }
        assert!(out.len() >= 60, "reports found: {}", out.len());
        out
    }

    #[test]
    fn the_table_names_every_metric_of_every_fixture() {
        let mut seen = 0;
        for (file, unit) in fixture_units() {
            for name in unit.metrics.keys() {
                seen += 1;
                assert!(
                    from_table(&unit.scenario, name).is_some(),
                    "{file}: metric {name} of `{}` has no row in TABLE",
                    unit.scenario
                );
            }
        }
        assert!(seen > 200, "{seen} metrics checked");
    }

    #[test]
    fn the_table_agrees_with_the_kinds_analyses_record_on_the_same_facts() {
        let mut checked = 0;
        for (file, unit) in fixture_units() {
            let Some(again) = crate::tests::fixtures::reanalysed(&unit) else {
                continue;
            };
            let metrics = again.metrics;
            for (name, m) in &metrics {
                let recorded = m
                    .kind
                    .unwrap_or_else(|| panic!("{file}: {name} has no kind"));
                assert_eq!(
                    from_table(&unit.scenario, name),
                    Some(recorded),
                    "{file}: {name}"
                );
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked} metrics re-analysed");
    }
}
