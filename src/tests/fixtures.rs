//! Every report recorded on a real machine (tests/fixtures/*.json), analysed again with this
//! build through the scenario's own `--from` path, gives the verdict it recorded: the same
//! findings, metrics, status and data. A difference is either a regression or an intentional
//! change, and intentional changes are listed in CHANGELOG.md.

use std::path::{Path, PathBuf};

use crate::output::read_report;
use crate::report::Report;
use crate::scenarios;

pub(crate) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture file, sorted.
pub(crate) fn fixture_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        // Reports, not NVML snapshots (`*.nvml.json`).
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".nvml.json"))
        .collect();
    v.sort();
    v
}

/// `saved` analysed again by this build, as `--from` does (None for reports of no scenario
/// whose data can be analysed again: suites, program modes, skipped runs).
pub(crate) fn reanalysed(saved: &Report) -> Option<Report> {
    let s = scenarios::find(&saved.scenario).filter(|s| s.reanalysable())?;
    if saved.data.get("skipped_reason").is_some() || saved.data.is_null() {
        return None;
    }
    let mut params = saved.params.clone();
    if let Some(o) = params.as_object_mut() {
        // Where it was read from and where side files went are not the verdict's.
        o.remove("from");
        o.remove("chrome_trace");
    }
    let params = s.normalize_params(params).unwrap();
    let mut again = s
        .reanalyse(&params, saved)
        .expect("the scenario's own report")
        .unwrap_or_else(|e| panic!("{}: {e:#}", saved.scenario));
    crate::analyze::verdict::finalize(&mut again);
    Some(again)
}

/// The recorded report's verdict and data, as JSON (what re-analysis must reproduce).
fn verdict(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "status": r.status,
        "findings": r.findings,
        "metrics": r.metrics,
        "data": r.data,
    })
}

/// Reports a file holds: itself, or a suite's scenario reports.
fn units(r: &Report) -> Vec<&Report> {
    if r.reports.is_empty() {
        vec![r]
    } else {
        r.reports.iter().collect()
    }
}

#[test]
fn every_recorded_report_reanalyses_to_what_it_recorded() {
    let mut checked = 0;
    let mut differences = Vec::new();
    for path in fixture_paths() {
        // Derived fixtures change recorded facts to simulate a fault and keep the recorded
        // verdict; what their analysis must say is tested where they are used.
        if path.to_string_lossy().contains("derived") {
            continue;
        }
        let file = read_report(&path).unwrap();
        for saved in units(&file) {
            let Some(again) = reanalysed(saved) else {
                continue;
            };
            // Suite thresholds are the suite's verdict, applied on top of the scenario's.
            let mut recorded = saved.clone();
            recorded
                .findings
                .retain(|f| f.code != crate::report::codes::THRESHOLD);
            // So are the findings of gpu-doctor's NVML session under --replay / --fault (what
            // reached it, what it never read): the report's `nvml` says what it ran under.
            if saved.nvml.is_some() {
                use crate::report::codes::*;
                recorded.findings.retain(|f| {
                    ![
                        FAULT_INJECTED,
                        NVML_NOT_USED,
                        REPLAY_QUERY_MISSING,
                        SHIM_CONFIG_ERROR,
                    ]
                    .contains(&f.code.as_str())
                });
            }
            recorded.status = crate::analyze::verdict::status_from_findings(&recorded.findings)
                .max(if recorded.status == crate::report::Status::Error {
                    recorded.status
                } else {
                    crate::report::Status::Pass
                });
            let mut again = again;
            // Reports written before metrics carried their kind and spread lack them.
            for (name, m) in &mut again.metrics {
                if recorded.metrics.get(name).is_some_and(|r| r.kind.is_none()) {
                    m.kind = None;
                    m.spread = None;
                }
            }
            let (a, b) = (verdict(&recorded), verdict(&again));
            if !same(&a, &b) {
                differences.push(format!(
                    "{} [{}]:\n  recorded {}\n  now      {}",
                    path.file_name().unwrap().to_string_lossy(),
                    saved.scenario,
                    diff_hint(&a, &b).0,
                    diff_hint(&a, &b).1
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} reports checked");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Equal JSON, numbers within a relative 1e-12 (a sum taken in another order differs in the
/// last bit).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
        }
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w)),
        _ => a == b,
    }
}

/// The first differing top-level field of two verdicts, shortened.
fn diff_hint(a: &serde_json::Value, b: &serde_json::Value) -> (String, String) {
    for k in ["status", "findings", "metrics", "data"] {
        if a[k] != b[k] {
            let (x, y) = first_difference(&a[k], &b[k], k.to_string());
            return (x, y);
        }
    }
    (String::new(), String::new())
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: String) -> (String, String) {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (p, q) = (x.get(k).unwrap_or(&Null), y.get(k).unwrap_or(&Null));
                if !same(p, q) {
                    return first_difference(p, q, format!("{at}.{k}"));
                }
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if !same(p, q) {
                    return first_difference(p, q, format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
    let cut = |v: &serde_json::Value| {
        let s = v.to_string();
        s.chars().take(300).collect::<std::string::String>()
    };
    (format!("{at} = {}", cut(a)), format!("{at} = {}", cut(b)))
}
