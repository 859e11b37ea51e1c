//! `trace ctx` without a GPU, through the binary: the command line, and `--from` on the real
//! report recorded on the device machine (tests/fixtures/h100-trace-ctx.json), on altered
//! copies of it and on a suite report holding it. The analysis and the Chrome-trace export of
//! the fixture are checked in the crate (src/tests/trace_ctx.rs).

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;
use common::{doctor, printed_report, root};
use gpu_doctor::report::{Code, Report, Severity, Status, codes};
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/h100-trace-ctx.json";

/// The recorded report.
fn fixture() -> Report {
    gpu_doctor::output::read_report(&root().join(FIXTURE)).expect("fixture parses")
}

fn write(dir: &Path, name: &str, r: &Report) -> PathBuf {
    let p = dir.join(name);
    gpu_doctor::output::write_json_atomic(&p, r).unwrap();
    p
}

/// `gpu-doctor trace ctx --json --from PATH`: the report, once the exit code is `code`.
fn from(path: &Path, code: i32) -> Report {
    printed_report(
        doctor()
            .args(["trace", "ctx", "--json", "--from"])
            .arg(path),
        code,
    )
}

#[test]
fn bad_parameters_are_usage_errors_before_any_driver() {
    doctor()
        .args(["trace", "ctx", "--threads", "1"])
        .assert()
        .code(2);
    doctor()
        .args(["trace", "ctx", "--tasks", "0"])
        .assert()
        .code(2);
    doctor()
        .args(["trace", "ctx", "no-such-sub"])
        .assert()
        .code(2);
    doctor()
        .args(["trace", "ctx", "--chrome-trace", "/nonexistent/dir/t.json"])
        .assert()
        .code(2);
}

#[test]
fn live_run_without_a_driver_cannot_run_here() {
    doctor()
        .args(["trace", "ctx", "thread-hop"])
        .assert()
        .code(3);
}

#[test]
fn from_a_report_of_another_scenario_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "topo.json",
        &Report::begin("topo", serde_json::json!({})),
    );
    doctor()
        .args(["trace", "ctx", "--from"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a 'trace ctx' report"));
}

#[test]
fn fixture_from_reproduces_the_recorded_verdict_and_writes_a_chrome_trace() {
    let r = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let rep = printed_report(
        doctor()
            .args([
                "trace",
                "ctx",
                "--json",
                "--from",
                FIXTURE,
                "--chrome-trace",
            ])
            .arg(&out)
            .current_dir(root()),
        0,
    );
    assert_eq!(rep.status, Status::Pass);
    let codes = |r: &Report| {
        let mut c: Vec<String> = r.findings.iter().map(|f| f.code.clone()).collect();
        c.sort();
        c
    };
    assert_eq!(codes(&rep), codes(&r));
    assert_eq!(rep.data["timeline"], r.data["timeline"]);
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().expect("a traceEvents array");
    // One slice or instant per driver call, plus thread names and flows.
    assert!(events.len() >= r.data["timeline"].as_array().unwrap().len());
}

#[test]
fn altered_fixture_a_failing_bound_task_fails_the_report() {
    let r = fixture();
    let mut altered = r.clone();
    let e = altered.data["timeline"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["variant"] == "bound" && e["op"] == "cuMemAlloc_v2")
        .expect("a bound allocation");
    e["result"] = serde_json::to_value(Code {
        code: 201,
        name: "CUDA_ERROR_INVALID_CONTEXT".into(),
    })
    .unwrap();
    e["ok"] = false.into();
    e["step"] = false.into();
    e.as_object_mut().unwrap().remove("ctx_before");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "altered.json", &altered);
    let rep = from(&p, 1);
    assert_eq!(rep.status, Status::Fail);
    assert!(rep.findings.iter().any(|f| f.code == codes::STEP_MISMATCH));
    let c = rep
        .findings
        .iter()
        .find(|f| f.code == codes::CONTEXT_NOT_CURRENT)
        .unwrap();
    assert_eq!(c.severity, Severity::Warn);
}

#[test]
fn from_a_suite_report_reanalyses_the_trace_ctx_report_it_holds() {
    let r = fixture();
    let timeline = r.data["timeline"].clone();
    let mut suite = Report::begin("suite", serde_json::json!({}));
    suite.reports.push(r);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "suite.json", &suite);
    let rep = from(&p, 0);
    assert_eq!(rep.scenario, "trace ctx");
    assert_eq!(rep.data["timeline"], timeline);
}
