//! `gpu-doctor bandwidth --from`: re-analysis of saved measurements without a GPU. The report
//! is constructed here (a Gen5 x16 link measuring Gen4 rates); real recorded reports live in
//! tests/fixtures/ (added from GPU runs).

mod common;

use common::doctor;
use gpu_doctor::facts::PcieFacts;
use gpu_doctor::facts::bandwidth::Method;
use gpu_doctor::facts::bandwidth::{BandwidthFacts, DeviceLinks, Links, PathSamples, path};
use gpu_doctor::report::Report;

fn saved(h2d_gbps: f64) -> Report {
    let sample = |p: &str, gbps: f64| PathSamples {
        path: p.into(),
        device: 0,
        bytes: 16 * (512 << 20),
        copies: 16,
        seconds: vec![16.0 * (512 << 20) as f64 / (gbps * 1e9); 3],
        timing: "cuda_events".into(),
        verified: Some(true),
        ..Default::default()
    };
    let facts = BandwidthFacts {
        samples: vec![
            sample(path::H2D_PINNED, h2d_gbps),
            sample(path::D2H_PINNED, 54.8),
        ],
        links: Links {
            devices: vec![DeviceLinks {
                index: 0,
                pcie: PcieFacts {
                    max_gen: Some(5),
                    max_width: Some(16),
                    ..Default::default()
                },
                ..Default::default()
            }],
            pairs: vec![],
        },
    };
    let mut r = Report::begin("bandwidth", serde_json::json!({}));
    // A `bandwidth` report's data: the raw facts `--from` re-analyses, and the method and
    // thresholds the saved run recorded (the defaults); its results are computed again.
    r.data = serde_json::json!({
        "method": Method::default(),
        "facts": facts,
        "thresholds": {
            "min_efficiency": 0.75,
            "min_h2d_gbps": null,
            "min_d2h_gbps": null,
            "min_memory_efficiency": 0.5,
            "min_p2p_efficiency": 0.6,
            "min_symmetry": 0.8,
            "min_pageable_ratio": 0.2,
        },
        "results": [],
    });
    r
}

fn run(report: &Report, args: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bw.json");
    std::fs::write(&file, serde_json::to_string(report).unwrap()).unwrap();
    let out = doctor()
        .args(["bandwidth", "--json", "--from"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn gen4_rates_on_a_gen5_link_fail_and_thresholds_apply() {
    let (code, v) = run(&saved(26.0), &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "fail");
    assert!(codes(&v).contains(&"BANDWIDTH_LOW".to_string()), "{v}");
    assert!((v["metrics"]["h2d_pinned_gbps"]["value"].as_f64().unwrap() - 26.0).abs() < 1e-6);
    assert_eq!(v["metrics"]["h2d_pinned_gbps"]["better"], "higher");

    let (code, v) = run(&saved(54.3), &[]);
    assert_eq!(code, 0, "{v}");
    assert!(codes(&v).is_empty(), "{v}");
    // An absolute floor above the measured rate fails the same healthy data.
    let (code, v) = run(&saved(54.3), &["--min-h2d-gbps", "60"]);
    assert_eq!(code, 1);
    assert_eq!(codes(&v), vec!["BANDWIDTH_LOW".to_string()]);
}

#[test]
fn bad_size_and_bad_report_are_input_errors() {
    let out = doctor()
        .args(["bandwidth", "--size", "100B"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let info = Report::begin("info", serde_json::json!({}));
    let (code, _) = run(&info, &[]);
    assert_eq!(code, 2);
}
