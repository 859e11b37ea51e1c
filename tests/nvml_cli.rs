//! NVML replay and faults through the command line, on the synthetic 2-GPU snapshot
//! (tests/nvml/synthetic-2gpu.nvml.json, written by hand for these tests): gpu-doctor's own
//! commands with `--replay`/`--fault`, a real Python NVML client (pynvml, installed by .ci/run)
//! under `gpu-doctor replay`, and the input errors.

mod common;

use std::process::Command;

use assert_cmd::prelude::*;
use common::{SYNTHETIC_SNAPSHOT, repo_arg, with_report};
use gpu_doctor::report::{Report, Severity, Status};

fn snapshot() -> String {
    repo_arg(SYNTHETIC_SNAPSHOT)
}

fn doctor() -> Command {
    let mut c = common::doctor();
    c.arg("--quiet");
    c
}

/// Runs gpu-doctor with `args`, expects exit `code`, returns the report it wrote with `-o` (a
/// program's own output shares stdout).
fn report(args: &[&str], code: i32) -> Report {
    let ran = with_report(doctor(), args);
    assert_eq!(ran.code, code, "stderr: {}", ran.stderr);
    ran.report().clone()
}

fn codes(r: &Report) -> Vec<(&str, Severity, Option<u32>)> {
    r.findings
        .iter()
        .map(|f| (f.code.as_str(), f.severity, f.device))
        .collect()
}

#[test]
fn topo_and_info_run_on_a_replayed_machine() {
    let s = snapshot();
    let r = report(&["--replay", &s, "topo"], 0);
    assert_eq!(r.devices.len(), 2);
    assert_eq!(r.data["view"]["matrix"][0][1], "NV18");
    let n = r.nvml.as_ref().expect("the report says NVML was replayed");
    assert_eq!(n.snapshot.as_deref(), Some(s.as_str()));
    assert!(n.recorded.as_deref().unwrap().contains("synthetic"));
    let r = report(&["--replay", &s, "info"], 0);
    assert_eq!(r.data["gpus"].as_array().unwrap().len(), 2);
}

#[test]
fn faults_on_a_replay_become_the_findings_an_operator_acts_on() {
    let s = snapshot();
    let r = report(
        &[
            "--replay",
            &s,
            "--fault",
            "pcie-width=8@gpu1",
            "--fault",
            "nvlink-down=3@gpu0",
            "topo",
        ],
        1,
    );
    let c = codes(&r);
    assert!(
        c.contains(&("PCIE_WIDTH_DEGRADED", Severity::Fail, Some(1))),
        "{c:?}"
    );
    assert!(
        c.contains(&("NVLINK_INACTIVE", Severity::Fail, Some(0))),
        "{c:?}"
    );
    assert_eq!(r.data["view"]["matrix"][0][1], "NV17");
    assert_eq!(r.nvml.as_ref().unwrap().delivered.len(), 2);

    let r = report(
        &[
            "--replay",
            &s,
            "--fault",
            "gpu-lost@gpu1",
            "--fault",
            "row-remap=pending@gpu0",
            "info",
        ],
        1,
    );
    let c = codes(&r);
    assert!(c.contains(&("GPU_LOST", Severity::Fail, Some(1))), "{c:?}");
    assert!(
        c.contains(&("ROW_REMAP_PENDING", Severity::Fail, Some(0))),
        "{c:?}"
    );
    assert_eq!(
        r.status,
        Status::Fail,
        "a lost GPU is a verdict, not a crash"
    );

    // topo never reads remapped rows: the fault is said not to have reached it.
    let r = report(
        &["--replay", &s, "--fault", "row-remap=failed@gpu0", "topo"],
        0,
    );
    assert!(codes(&r).contains(&("FAULT_NOT_INJECTED", Severity::Warn, None)));
    assert_eq!(r.status, Status::Warn);
}

#[test]
fn a_replayed_machine_has_no_cuda_driver() {
    let out = doctor()
        .args(["--replay", &snapshot(), "inject", "oom"])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("replayed machine"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_faults_and_snapshots_are_input_errors_that_say_what_is_allowed() {
    let s = snapshot();
    let dir = tempfile::tempdir().unwrap();
    let stderr = |args: &[&str]| {
        let out = doctor()
            .args(args)
            .arg("topo")
            .assert()
            .code(2)
            .get_output()
            .clone();
        String::from_utf8(out.stderr).unwrap()
    };
    let e = stderr(&["--replay", &s, "--fault", "xid-storm=9"]);
    assert!(
        e.contains("gpu-lost") && e.contains("pcie-width"),
        "lists the kinds: {e}"
    );
    let e = stderr(&["--replay", &s, "--fault", "xid=79@gpu7"]);
    assert!(e.contains("gpu7") || e.contains("2 GPU"), "{e}");
    let e = stderr(&[
        "--replay",
        &dir.path().join("none.json").display().to_string(),
    ]);
    assert!(e.contains("none.json"), "{e}");
    let future = dir.path().join("future.nvml.json");
    let mut snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap();
    snap["format_version"] = 99.into();
    std::fs::write(&future, snap.to_string()).unwrap();
    let e = stderr(&["--replay", &future.display().to_string()]);
    assert!(
        e.contains("99") && e.contains('1'),
        "names the versions read: {e}"
    );
    doctor()
        .args(["--replay", &s, "compare", "a.json", "b.json"])
        .assert()
        .code(2);
}

fn has_pynvml() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import pynvml"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_pynvml_monitor_sees_the_faults_of_a_replayed_machine() {
    assert!(
        has_pynvml(),
        "pynvml is needed (`python3 -m pip install nvidia-ml-py`, as .ci/run does)"
    );
    let monitor = repo_arg("tests/nvml/pynvml_monitor.py");
    let r = report(
        &[
            "replay",
            &snapshot(),
            "--fault",
            "pcie-width=8@gpu1",
            "--fault",
            "xid=79@gpu0+300ms",
            "--",
            "python3",
            &monitor,
            "1.5",
        ],
        0,
    );
    assert_eq!(r.scenario, "replay");
    let c = codes(&r);
    assert_eq!(
        c.iter()
            .filter(|(code, ..)| *code == "FAULT_INJECTED")
            .count(),
        2,
        "both faults reached pynvml: {:?}",
        r.findings
    );
    assert!(
        c.contains(&("PROGRAM_SURVIVED", Severity::Info, None)),
        "{c:?}"
    );
    let xid = r.data["faults"][1]["delivered"][0].clone();
    assert_eq!(xid["call"], "nvmlEventSetWait_v2", "{xid}");
    let t = xid["t_ms"].as_f64().unwrap();
    assert!(
        (250.0..1500.0).contains(&t),
        "XID after its 300 ms delay: {t} ms"
    );

    // A program that never loads NVML: the faults say nothing.
    let r = report(
        &["replay", &snapshot(), "--fault", "gpu-lost", "--", "true"],
        0,
    );
    let c = codes(&r);
    assert!(
        c.contains(&("NVML_NOT_USED", Severity::Warn, None)),
        "{c:?}"
    );
    assert!(
        c.contains(&("FAULT_NOT_INJECTED", Severity::Warn, None)),
        "{c:?}"
    );
}

#[test]
fn a_suite_entry_runs_on_a_replayed_machine_with_its_own_faults() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("lost.toml");
    let s = snapshot();
    std::fs::write(
        &suite,
        format!(
            "name = \"lost\"\n\
             [[scenario]]\nname = \"info\"\nreplay = \"{s}\"\nfaults = [\"gpu-lost@gpu1\"]\n\
             [[scenario]]\nname = \"topo\"\nreplay = \"{s}\"\n\
             [[scenario]]\nname = \"inject oom\"\nreplay = \"{s}\"\n"
        ),
    )
    .unwrap();
    let r = report(&["run", &suite.display().to_string()], 1);
    let status: Vec<(&str, Status)> = r
        .reports
        .iter()
        .map(|x| (x.scenario.as_str(), x.status))
        .collect();
    assert_eq!(
        status,
        [
            ("info", Status::Fail),
            ("topo", Status::Pass),
            ("inject oom", Status::Skipped)
        ]
    );
    assert!(r.reports[0].findings.iter().any(|f| f.code == "GPU_LOST"));
    assert_eq!(
        r.reports[0].nvml.as_ref().unwrap().faults,
        ["gpu-lost@gpu1"]
    );
    assert!(r.reports[1].nvml.as_ref().unwrap().faults.is_empty());
    assert_eq!(r.devices.len(), 2, "the lost GPU is GPU 1, not a third one");

    // A bad fault is found before anything runs, where it is written.
    std::fs::write(
        &suite,
        "[[scenario]]\nname = \"info\"\nfaults = [\"gpu-lots\"]\n",
    )
    .unwrap();
    let out = doctor()
        .args(["run", "--check", &suite.display().to_string()])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("lost.toml:3:") && err.contains("gpu-lots"),
        "{err}"
    );
}
