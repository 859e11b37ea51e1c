//! Every metric of every recorded report has a kind without guessing: the table of
//! analyze::metric_kind names it (reports of earlier versions record none), and the table
//! agrees with the kind today's analyses record when they re-run on the same facts.

use std::path::Path;

use gpu_doctor::analyze::{bandwidth, faults, metric_kind};
use gpu_doctor::report::Report;

fn fixtures() -> Vec<(String, Report)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.contains(".nvml.") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let Ok(r) = gpu_doctor::output::parse_report(&text) else {
            continue; // not a report (an NVML snapshot, …)
        };
        out.push((name, r));
    }
    assert!(out.len() >= 30, "fixtures found: {}", out.len());
    out
}

/// A report and the scenario reports inside it.
fn flatten(r: &Report) -> Vec<&Report> {
    std::iter::once(r)
        .chain(r.reports.iter().flat_map(flatten))
        .collect()
}

#[test]
fn the_table_names_every_metric_of_every_fixture() {
    let mut seen = 0;
    for (file, r) in fixtures() {
        for unit in flatten(&r) {
            for name in unit.metrics.keys() {
                seen += 1;
                assert!(
                    metric_kind::from_table(&unit.scenario, name).is_some(),
                    "{file}: metric {name} of `{}` has no row in analyze::metric_kind::TABLE",
                    unit.scenario
                );
            }
        }
    }
    assert!(seen > 200, "{seen} metrics checked");
}

#[test]
fn the_table_agrees_with_the_kinds_analyses_record_on_the_same_facts() {
    let mut checked = 0;
    for (file, r) in fixtures() {
        for unit in flatten(&r) {
            let metrics = if unit.scenario == "bandwidth" {
                let facts: bandwidth::BandwidthFacts =
                    serde_json::from_value(unit.data["facts"].clone()).unwrap();
                bandwidth::analyze(&facts.samples, &facts.links, &Default::default()).metrics
            } else {
                match faults::analyze_report(unit) {
                    Some(Ok(a)) => a.metrics,
                    _ => continue,
                }
            };
            for (name, m) in &metrics {
                let recorded = m
                    .kind
                    .unwrap_or_else(|| panic!("{file}: {name} has no kind"));
                assert_eq!(
                    metric_kind::from_table(&unit.scenario, name),
                    Some(recorded),
                    "{file}: {name}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked} metrics re-analysed");
}
