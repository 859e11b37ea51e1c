//! The committed schema (schema/report.schema.json) is the one the types generate, and reports
//! — constructed here and every recorded one in tests/fixtures/ — validate against it.

mod common;

use common::{doctor, root};
use gpu_doctor::report::{
    Better, Code, DeviceInfo, Finding, Metric, Report, Severity, Status, Step, json_schema,
};

const REGENERATE: &str = "regenerate it: cargo run -q -- schema > schema/report.schema.json";

fn committed_schema() -> serde_json::Value {
    let path = root().join("schema/report.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()))
}

#[test]
fn committed_schema_matches_the_types() {
    assert!(
        committed_schema() == json_schema(),
        "schema/report.schema.json is out of date with src/report; {REGENERATE}"
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = doctor().arg("schema").output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, committed_schema());
}

/// A report using every field, with a nested scenario report.
fn full_report() -> Report {
    let mut r = Report::begin("bandwidth", serde_json::json!({ "size": "256MiB" }));
    r.host.hostname = "h".into();
    r.host.driver_version = Some("580.159.04".into());
    r.duration_ms = 12.5;
    r.devices.push(DeviceInfo {
        index: 0,
        uuid: "GPU-1".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: "00000000:18:00.0".into(),
        memory_total_bytes: 85_899_345_920,
        compute_capability: Some("9.0".into()),
        cuda_ordinal: Some(0),
    });
    r.findings.push(
        Finding::new(Severity::Warn, "THRESHOLD", "below")
            .device(0)
            .hint("h"),
    );
    r.metrics.insert(
        "h2d_pinned_gbps".into(),
        Metric::new(51.2, "GB/s", Better::Higher).device(0),
    );
    r.steps.push(Step {
        name: "alloc".into(),
        call: "cuMemAlloc_v2".into(),
        expected: vec![Code {
            code: 0,
            name: "CUDA_SUCCESS".into(),
        }],
        observed: Code {
            code: 2,
            name: "CUDA_ERROR_OUT_OF_MEMORY".into(),
        },
        at_ms: 1.0,
        elapsed_ms: 0.1,
        thread: 42,
        ok: false,
        note: Some("n".into()),
    });
    r.data = serde_json::json!({ "anything": [1, 2] });
    r.interrupted = true;
    let mut suite = Report::begin("suite", serde_json::json!({ "suite": "quick" }));
    suite.status = Status::Warn;
    suite.reports.push(r);
    suite
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&committed_schema()).expect("the schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &serde_json::Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn constructed_reports_validate_and_broken_ones_do_not() {
    let v = validator();
    let good = serde_json::to_value(full_report()).unwrap();
    assert_eq!(errors(&v, &good), Vec::<String>::new());

    let mut bad = good.clone();
    bad["reports"][0]["status"] = "great".into();
    assert!(!v.is_valid(&bad), "an unknown status must not validate");
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("tool");
    assert!(!v.is_valid(&bad), "a report without tool must not validate");
    let mut bad = good;
    bad["reports"][0]["metrics"]["h2d_pinned_gbps"]["better"] = "sideways".into();
    assert!(!v.is_valid(&bad));
}

#[test]
fn every_fixture_validates_and_parses() {
    let dir = root().join("tests/fixtures");
    let entries = std::fs::read_dir(&dir).expect("tests/fixtures holds the recorded reports");
    let v = validator();
    let mut failures = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: not JSON: {e}", path.display()));
                continue;
            }
        };
        // Only gpu-doctor reports (fixtures may hold other JSON, e.g. Chrome traces).
        if value.get("schema_version").is_none() {
            continue;
        }
        for e in errors(&v, &value) {
            failures.push(format!("{}: {e}", path.display()));
        }
        if let Err(e) = gpu_doctor::output::parse_report(&text) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
