//! `gpu-doctor watch` on a replayed machine with injected faults, as users run it: JSON lines
//! whose event log and final report hold the XID and the findings, lines without a terminal,
//! Ctrl-C as the normal end, a GPU lost while the other keeps being read, `--from`.

mod common;
mod live_support;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use gpu_doctor::output::parse_report;
use gpu_doctor::report::{Report, Severity, Status};
use live_support::*;
use serde_json::Value;

/// Runs `watch` with `faults` and `args` (JSON lines), returns its exit code, the lines and the
/// report it wrote with -o.
fn watch_json(faults: &[&str], args: &[&str]) -> (i32, Vec<Value>, Report) {
    let mut cmd = doctor();
    cmd.args(["--replay", &snapshot()]);
    for f in faults {
        cmd.args(["--fault", f]);
    }
    cmd.arg("watch").args(args).arg("--json");
    let ran = with_report(cmd, &[]);
    let lines: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    (ran.code, lines, ran.report().clone())
}

fn finding<'a>(r: &'a Report, code: &str) -> &'a gpu_doctor::report::Finding {
    r.findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:?}", r.findings))
}

#[test]
fn the_event_log_and_the_report_hold_the_injected_xid_and_findings() {
    let (code, lines, report) = watch_json(
        &["xid=79@gpu1+1s", "nvlink-down=3@gpu0"],
        &["--for", "3s", "--interval", "500ms"],
    );
    assert_eq!(code, 1, "a failing finding: exit 1");
    assert_eq!(lines[0]["ev"], "start");
    assert_eq!(lines[0]["gpus"], serde_json::json!([0, 1]));

    let xid: Vec<&Value> = lines
        .iter()
        .filter(|l| l["ev"] == "event" && l["kind"] == "xid")
        .collect();
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert_eq!(
        (xid[0]["gpu"].as_u64(), xid[0]["xid"].as_u64()),
        (Some(1), Some(79))
    );
    assert_eq!(xid[0]["action"], "reboot_node");
    assert!(xid[0]["what_to_do"].as_str().unwrap().contains("reboot"));
    let at = xid[0]["at_ms"].as_f64().unwrap();
    assert!((900.0..2500.0).contains(&at), "the XID arrived at {at} ms");

    let started: Vec<&Value> = lines
        .iter()
        .filter(|l| l["ev"] == "condition" && l["state"] == "start")
        .collect();
    assert!(
        started
            .iter()
            .any(|c| c["code"] == "NVLINK_INACTIVE" && c["gpu"] == 0 && c["severity"] == "fail"),
        "{started:?}"
    );
    let intervals: Vec<&Value> = lines.iter().filter(|l| l["ev"] == "interval").collect();
    assert!(intervals.len() >= 5, "{} intervals", intervals.len());
    assert_eq!(
        intervals[0]["gpus"][0]["nvlinks_down"],
        serde_json::json!([3])
    );
    assert_eq!(intervals[0]["gpus"].as_array().unwrap().len(), 2);

    // The last line is the report, the same as -o wrote.
    let last: Report = serde_json::from_value(lines.last().unwrap().clone()).unwrap();
    assert_eq!(last, report);
    assert_eq!(report.scenario, "watch");
    assert_eq!(report.status, Status::Fail);
    assert!(!report.interrupted);
    let x = finding(&report, "XID_NEEDS_REBOOT");
    assert_eq!((x.severity, x.device), (Severity::Fail, Some(1)));
    assert!(x.message.contains("XID 79"), "{}", x.message);
    let n = finding(&report, "NVLINK_INACTIVE");
    assert_eq!((n.severity, n.device), (Severity::Fail, Some(0)));
    let events = report.data["facts"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["xid"], 79);
    assert_eq!(report.data["facts"]["ended_by"], "for");
    assert!(
        report.data["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "NVLINK_INACTIVE"),
        "the conditions are in the data"
    );
    assert_eq!(report.devices.len(), 2);
}

#[test]
fn without_a_terminal_it_writes_lines_then_the_report() {
    let out = doctor()
        .args([
            "--replay",
            &snapshot(),
            "--fault",
            "xid=48@gpu0+500ms",
            "--fault",
            "pcie-width=8@gpu1",
        ])
        .args(["watch", "--for", "2s", "--interval", "500ms", "--no-color"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no cursor movement without a terminal"
    );
    let header = text.lines().nth(1).unwrap();
    assert!(
        header.contains("GPU UTIL") && header.contains("STATE"),
        "{header}"
    );
    let xid = text
        .lines()
        .find(|l| l.contains("XID 48"))
        .expect("the XID's log line");
    assert!(xid.contains("GPU 0") && xid.contains("reset_gpu"), "{xid}");
    assert!(
        text.lines().any(|l| l.contains("+PCIE_WIDTH_DEGRADED")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("GPU 1: PCIe x8 of x16")),
        "{text}"
    );
    // The report follows: its own tables and the findings.
    assert!(
        text.contains("Conditions") && text.contains("Events") && text.contains("XID_NEEDS_RESET")
    );
}

#[test]
fn ctrl_c_ends_a_watch_with_a_whole_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.json");
    let mut cmd = doctor();
    cmd.args([
        "--replay",
        &snapshot(),
        "watch",
        "--interval",
        "200ms",
        "-q",
        "-o",
    ])
    .arg(&path)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut w = Running::spawn(cmd, "gpu-doctor watch");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGINT to the child this test started and still holds.
    assert_eq!(unsafe { libc::kill(w.pid(), libc::SIGINT) }, 0);
    let code = w.wait_for_exit(Duration::from_secs(20));
    let report = parse_report(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(!report.interrupted, "Ctrl-C is how a watch ends");
    assert!(report.findings.iter().all(|f| f.code != "INTERRUPTED"));
    assert_eq!(report.data["facts"]["ended_by"], "interrupt");
    assert!(report.data["facts"]["intervals"].as_u64().unwrap() >= 3);
    assert_eq!(code, if report.status.is_failure() { 1 } else { 0 });
}

#[test]
fn a_gpu_lost_during_the_watch_is_reported_and_the_other_keeps_being_read() {
    let (_, lines, report) = watch_json(
        &["gpu-lost@gpu1+1s"],
        &["--for", "2500ms", "--interval", "500ms"],
    );
    let intervals: Vec<&Value> = lines.iter().filter(|l| l["ev"] == "interval").collect();
    let last = intervals.last().unwrap();
    assert!(last["gpus"][1]["lost"].is_string(), "{last}");
    assert!(
        last["gpus"][0]["temperature_c"].is_u64(),
        "GPU 0 still read: {last}"
    );
    let lost = finding(&report, "GPU_LOST");
    assert_eq!(lost.device, Some(1));
    assert!(lost.message.contains("to the end"), "{}", lost.message);
}

#[test]
fn from_judges_a_saved_watch_again() {
    let (_, _, report) = watch_json(
        &["xid=31@gpu0+500ms", "throttle=thermal@gpu1"],
        &["--for", "2s", "--interval", "500ms", "--persist", "1s"],
    );
    let codes = |r: &Report| {
        let mut c: Vec<String> = r
            .findings
            .iter()
            .filter(|f| !f.code.starts_with("FAULT_") && f.code != "REPLAY_QUERY_MISSING")
            .map(|f| f.code.clone())
            .collect();
        c.sort();
        c
    };
    assert!(codes(&report).contains(&"THERMAL_THROTTLE".to_string()));
    assert!(codes(&report).contains(&"XID_APP_ERROR".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("w.json");
    std::fs::write(&saved, serde_json::to_string(&report).unwrap()).unwrap();
    let again = |extra: &[&str]| {
        let out = doctor()
            .args(["watch", "--from"])
            .arg(&saved)
            .args(extra)
            .arg("--json")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        parse_report(text.lines().last().unwrap()).unwrap()
    };
    assert_eq!(codes(&again(&["--persist", "1s"])), codes(&report));
    // Judged with a longer --persist, the 2-second throttle is no longer a condition.
    assert!(!codes(&again(&["--persist", "30s"])).contains(&"THERMAL_THROTTLE".to_string()));
}
