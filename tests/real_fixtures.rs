//! Analysis and rendering on reports recorded on the test H100 (tests/fixtures/h100-*.json,
//! unedited) and on copies derived from them by tests/fixtures/derive.py to simulate faults.

mod common;

use assert_cmd::prelude::*;
use common::{doctor, fixture, printed_report, root, stdout_of};
use gpu_doctor::output::read_report;
use gpu_doctor::report::{Report, Severity, Status, codes};

/// The recorded report tests/fixtures/`name`.
fn recorded(name: &str) -> Report {
    read_report(std::path::Path::new(&fixture(name))).unwrap()
}

fn codes_of(findings: &[gpu_doctor::report::Finding]) -> Vec<String> {
    let mut v: Vec<String> = findings.iter().map(|f| f.code.clone()).collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn oom_on_the_h100_reached_the_edge_and_survived() {
    let r = recorded("h100-inject-oom.json");
    let ratio = r.metrics["ratio"].value;
    assert!(ratio > 0.99 && ratio <= 1.0, "allocatable / free = {ratio}");
    let after: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.name.starts_with("after OOM: "))
        .collect();
    assert!(
        after.len() >= 4 && after.iter().all(|s| s.observed.code == 0),
        "OOM is not sticky"
    );
    // The same run with the proofs failing (derived): OOM_STICKY and step mismatches.
    let a = printed_report(
        doctor().args([
            "inject",
            "oom",
            "--from",
            &fixture("h100-inject-oom-derived-sticky.json"),
            "--json",
        ]),
        1,
    );
    assert!(
        a.findings
            .iter()
            .any(|f| f.code == codes::OOM_STICKY && f.severity == Severity::Fail)
    );
    assert!(a.findings.iter().any(|f| f.code == codes::STEP_MISMATCH));
}

#[test]
fn sticky_errors_and_recovery_on_the_h100() {
    let r = recorded("h100-inject-illegal-address.json");
    let answer = |prefix: &str| -> Vec<i64> {
        r.steps
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(|s| s.observed.code)
            .collect()
    };
    assert!(
        answer("[illegal-address] after the fault")
            .iter()
            .all(|&c| c == 700)
    );
    assert!(answer("[trap] after the fault").iter().all(|&c| c == 719));
    assert!(answer("[recover]").iter().all(|&c| c == 0));
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == codes::XID_REPORTED && f.message.contains("XID 31"))
    );
}

#[test]
fn undefined_calls_that_crashed_are_answers_not_failures() {
    for name in [
        "h100-inject-ctx-destroy.json",
        "h100-inject-stream-misuse.json",
    ] {
        let r = recorded(name);
        let crashed: Vec<_> = r
            .steps
            .iter()
            .filter(|s| s.observed.name.starts_with("PROCESS_DIED"))
            .collect();
        assert!(
            !crashed.is_empty(),
            "{name}: the H100's driver crashed on a stale handle"
        );
        assert!(
            crashed
                .iter()
                .all(|s| s.ok && s.name.starts_with("[own process] "))
        );
        let f: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.code == codes::UNDEFINED_CALL_CRASHED)
            .collect();
        assert_eq!(f.len(), crashed.len(), "one note per call that crashed");
        assert!(f.iter().all(|f| f.severity == Severity::Info));
    }
}

#[test]
fn missing_event_reads_stale_data_and_the_event_fixes_it() {
    let r = recorded("h100-inject-stream-misuse.json");
    assert!(r.metrics["stale_reads"].value > 0.0);
    assert_eq!(r.metrics["stale_reads_with_event"].value, 0.0);
    let f = r
        .findings
        .iter()
        .find(|f| f.code == codes::STALE_READS_WITHOUT_EVENT)
        .unwrap();
    assert!(f.hint.as_deref().unwrap().contains("cuStreamWaitEvent"));
}

#[test]
fn bandwidth_reanalysis_of_the_h100_passes_and_gen4_rates_fail() {
    let r: serde_json::Value = serde_json::from_str(&stdout_of(
        doctor().args([
            "bandwidth",
            "--from",
            &fixture("h100-bandwidth.json"),
            "--json",
        ]),
        0,
    ))
    .unwrap();
    let h2d = r["metrics"]["h2d_pinned_gbps"]["value"].as_f64().unwrap();
    assert!(
        h2d > 48.0,
        "Gen5 x16 pinned H2D {h2d} GB/s (Azure's H100 floor is 48)"
    );
    let r: serde_json::Value = serde_json::from_str(&stdout_of(
        doctor().args([
            "bandwidth",
            "--from",
            &fixture("h100-bandwidth-derived-gen4-rates.json"),
            "--json",
        ]),
        1,
    ))
    .unwrap();
    let low: Vec<&serde_json::Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "BANDWIDTH_LOW" && f["severity"] == "fail")
        .collect();
    assert_eq!(
        low.len(),
        2,
        "H2D and D2H pinned below 0.75 of the Gen5 x16 rate"
    );
    assert!(
        low[0]["message"]
            .as_str()
            .unwrap()
            .contains("PCIe Gen5 x16")
    );
    // An absolute floor from the command line fails the real report too.
    doctor()
        .args([
            "bandwidth",
            "--from",
            &fixture("h100-bandwidth.json"),
            "--min-h2d-gbps",
            "60",
        ])
        .assert()
        .code(1);
}

#[test]
fn compare_of_real_suite_reports() {
    // A report never regresses against itself.
    doctor()
        .args([
            "compare",
            &fixture("h100-suite-ci.json"),
            &fixture("h100-suite-ci.json"),
        ])
        .assert()
        .code(0);
    // The derived regression: metric -20%, a new failing finding, pass -> fail.
    let text = stdout_of(
        doctor().args([
            "compare",
            &fixture("h100-suite-ci.json"),
            &fixture("h100-suite-ci-derived-regressed.json"),
            "--json",
        ]),
        1,
    );
    for needle in ["h2d_pinned_gbps", "PCIE_WIDTH_DEGRADED", "OOM_STICKY"] {
        assert!(text.contains(needle), "{needle} in the comparison");
    }
    // A looser tolerance for that metric hides only the metric regression.
    let md = stdout_of(
        doctor().args([
            "compare",
            &fixture("h100-suite-ci.json"),
            &fixture("h100-suite-ci-derived-regressed.json"),
            "--tol",
            "h2d_pinned_gbps=25%",
            "--format",
            "markdown",
        ]),
        1,
    );
    assert!(md.contains("OOM_STICKY") && !md.contains("REGRESSED | h2d_pinned_gbps"));
    // JUnit output is well-formed enough to hold one testsuite with failures.
    let xml = stdout_of(
        doctor().args([
            "compare",
            &fixture("h100-suite-ci.json"),
            &fixture("h100-suite-ci-derived-regressed.json"),
            "--format",
            "junit",
        ]),
        1,
    );
    assert!(xml.starts_with("<?xml") && xml.contains("<testsuite") && xml.contains("<failure"));
}

#[test]
fn recorded_suites_ran_every_scenario_in_order() {
    let r = recorded("h100-suite-quick.json");
    let names: Vec<&str> = r.reports.iter().map(|x| x.scenario.as_str()).collect();
    assert_eq!(
        names,
        [
            "info",
            "topo",
            "inject oom",
            "inject ctx-destroy",
            "inject stream-misuse",
            "inject illegal-address"
        ]
    );
    assert!(r.reports.iter().all(|x| x.status == Status::Pass));
    assert!(
        r.duration_ms < 30_000.0,
        "quick suite under 30 s: {} ms",
        r.duration_ms
    );
    let all = recorded("h100-inject-all.json");
    assert!(all.duration_ms < 30_000.0 && all.status == Status::Pass);
}

#[test]
fn recorded_program_mode_reports() {
    let oom = recorded("h100-shim-torch-oom.json");
    assert_eq!(oom.status, Status::Pass);
    let found = codes_of(&oom.findings);
    assert!(
        found.contains(&codes::FAULT_INJECTED.to_string())
            && found.contains(&codes::PROGRAM_SURVIVED.to_string())
    );
    let trace = recorded("h100-shim-trace-ctx-hop.json");
    let unbound = trace
        .findings
        .iter()
        .find(|f| f.code == codes::CTX_UNBOUND_CALL)
        .expect("the unbound thread");
    assert!(
        unbound.message.contains("201") || unbound.message.contains("INVALID_CONTEXT"),
        "{}",
        unbound.message
    );
}

#[test]
fn two_gpu_h200_peer_bandwidth_and_device_mixup() {
    let r: serde_json::Value = serde_json::from_str(&stdout_of(
        doctor().args([
            "bandwidth",
            "--from",
            &fixture("h200x2-bandwidth.json"),
            "--json",
        ]),
        0,
    ))
    .unwrap();
    let m = &r["metrics"];
    let p2p = m["p2p_0_1_gbps"]["value"].as_f64().unwrap();
    let staged = m["p2p_staged_0_1_gbps"]["value"].as_f64().unwrap();
    assert!(
        p2p > 5.0 * staged,
        "NVLink peer copy {p2p} GB/s vs staged through the host {staged}"
    );
    assert!(m["p2p_bidir_0_1_gbps"]["value"].as_f64().unwrap() > 1.5 * p2p);
    assert!(
        m["h2d_pinned_gbps.gpu1"]["value"].as_f64().unwrap() > 48.0,
        "per-GPU metrics carry .gpu<N>"
    );
    let t = recorded("h200x2-trace-ctx-device-mixup.json");
    let mix = t
        .findings
        .iter()
        .find(|f| f.code == codes::DEVICE_MIXUP)
        .expect("mix-up detected");
    assert!(
        mix.message.contains("device 1") && mix.message.contains("device 0"),
        "{}",
        mix.message
    );
}

#[test]
fn ctrl_c_during_a_hold_freed_the_memory_and_marked_the_report() {
    // Recorded by tests/gpu/interrupt.sh: inject oom --fraction 0.9 --hold 60s, SIGINT after 3 s.
    let r = recorded("h100-inject-oom-interrupted.json");
    assert!(r.interrupted);
    assert!(r.findings.iter().any(|f| f.code == codes::INTERRUPTED));
    let m = &r.data["facts"]["memory"];
    assert_eq!(
        m["nvml_used_after"], m["nvml_used_before"],
        "memory back to baseline after Ctrl-C"
    );
    let held = r.data["facts"]["held_ms"].as_f64().unwrap();
    assert!(held < 60_000.0, "the 60 s hold ended at Ctrl-C ({held} ms)");
}

#[test]
fn oom_on_the_h200_reaches_the_edge_past_the_total_memory_guard() {
    // 140 GiB: the last 1 GiB chunks would cross the GPU's total; the fill narrows them.
    let r = recorded("h200-inject-oom.json");
    assert_eq!(r.status, Status::Pass);
    assert_eq!(r.data["facts"]["stopped_by"], "oom");
    assert!(
        r.metrics["ratio"].value > 0.999,
        "{}",
        r.metrics["ratio"].value
    );
    let q = recorded("h200-suite-quick.json");
    assert!(q.reports.iter().all(|x| x.status == Status::Pass));
}

#[test]
fn the_full_suite_ran_every_scenario_on_the_h200x2() {
    let r = recorded("h200x2-suite-full.json");
    assert_eq!(r.status, Status::Pass);
    let ran: Vec<&str> = r.reports.iter().map(|x| x.scenario.as_str()).collect();
    // What scenarios/full.toml lists today (it names every scenario but program modes).
    let plan = printed_report(
        doctor()
            .args(["run", "--check", "scenarios/full.toml", "--json"])
            .current_dir(root()),
        0,
    );
    for s in &plan.reports {
        assert!(
            ran.contains(&s.scenario.as_str()),
            "{} ran in full.toml",
            s.scenario
        );
    }
}
