//! `gpu-doctor run SUITE`: every class of malformed suite → exit 2 with file:line:column; runs
//! of suites whose scenarios need no GPU (topo --from a saved report; GPU scenarios are
//! skipped on a machine without one) → combined report, thresholds, worst-result exit code.

mod common;

use std::path::{Path, PathBuf};

use common::{doctor, root};
use gpu_doctor::facts::{GpuTopo, PcieFacts, TopoFacts};
use gpu_doctor::report::{DeviceInfo, Report, Status};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `gpu-doctor run FILE` and returns (exit code, stdout, stderr).
fn run_suite(args: &[&str]) -> (i32, String, String) {
    let out = doctor().arg("run").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_input_error(text: &str, location: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", text);
    let (code, stdout, stderr) = run_suite(&[p.to_str().unwrap()]);
    assert_eq!(code, 2, "exit code for {text:?}: stderr {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let want = format!("{}:{location}: ", p.display());
    assert!(stderr.contains(&want), "want {want:?} in {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "want {n:?} in {stderr}");
    }
}

#[test]
fn malformed_suites_exit_2_with_location() {
    // TOML syntax
    expect_input_error("name = \"x\"\n[[scenario]\n", "2:12", &["TOML syntax"]);
    expect_input_error(
        "name = \"x\n[[scenario]]\nname = \"info\"\n",
        "1:10",
        &["TOML syntax: invalid basic string"],
    );
    // unknown scenario: what was found and what is allowed
    expect_input_error(
        "[[scenario]]\nname = \"inject oon\"\n",
        "2:8",
        &[
            "unknown scenario `inject oon`",
            "did you mean `inject oom`",
            "\"trace ctx\"",
        ],
    );
    // unknown param (`from` is the entry's, but still accepted under [scenario.params])
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\n[scenario.params]\nfrm = \"x.json\"\n",
        "4:1",
        &[
            "unknown param `frm` for `topo`",
            "did you mean `from`",
            "bandwidth (boolean)",
        ],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\nparams = { verbose = true }\n",
        "3:12",
        &[
            "unknown param `verbose`",
            "unknown param `verbose` for `info`",
        ],
    );
    // wrong type
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\n[scenario.params]\nfrom = 3\n",
        "4:8",
        &["`from` must be a string, found integer 3"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\nfrom = 3\n",
        "3:8",
        &["`from` must be a string, found integer 3"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\n[scenario.params]\nbandwidth = \"yes\"\n",
        "4:13",
        &["param `bandwidth` of `topo`", "string \"yes\""],
    );
    // durations are waits or limits: zero and negative ones are refused
    expect_input_error(
        "[[scenario]]\nname = \"inject oom\"\n[scenario.params]\nhold = \"0s\"\n",
        "4:8",
        &["param `hold` of `inject oom`", "longer than zero"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\nparams = \"from=x\"\n",
        "3:10",
        &["`params` must be a table"],
    );
    expect_input_error(
        "[[scenario]]\nname = 7\n",
        "2:8",
        &["`name` must be a string, found integer 7"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\nrequired = \"yes\"\n",
        "3:12",
        &["`required` must be true or false"],
    );
    // structure
    expect_input_error(
        "titel = \"x\"\n[[scenario]]\nname = \"info\"\n",
        "1:1",
        &[
            "unknown key `titel`",
            "allowed: name, description, scenario",
        ],
    );
    expect_input_error("[scenario]\nname = \"info\"\n", "1:1", &["double brackets"]);
    expect_input_error("name = \"x\"\n", "1:1", &["lists no scenarios"]);
    expect_input_error("scenario = []\n", "1:12", &["`scenario` is empty"]);
    expect_input_error("[[scenario]]\nparams = {}\n", "1:1", &["without `name`"]);
    expect_input_error(
        "[[scenario]]\nname = \"topo\"\nbandwidth = true\n",
        "3:1",
        &["unknown key `bandwidth`", "put it under [scenario.params]"],
    );
    // bad thresholds
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmax_status = \"fail\"\n",
        "4:14",
        &["`max_status` must be \"pass\" or \"warn\""],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmax_duration = 5\n",
        "4:1",
        &[
            "unknown threshold `max_duration`",
            "did you mean `max_duration_ms`",
        ],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmax_duration_ms = -1\n",
        "4:19",
        &["must be above 0"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmetrics.bw = { min = 5, max = 1 }\n",
        "4:14",
        &["min 5 is above max 1"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmetrics.bw = { minimum = 5 }\n",
        "4:16",
        &["unknown key `minimum`", "allowed: min, max"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmetrics.bw = 5\n",
        "4:14",
        &["must be a table like { min = 20.0 }"],
    );
    expect_input_error(
        "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nseverity = \"error\"\n",
        "4:12",
        &["`severity` must be \"warn\" or \"fail\""],
    );
}

#[test]
fn missing_and_binary_suite_files_exit_2() {
    let (code, _, stderr) = run_suite(&["/nonexistent/suite.toml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/suite.toml: cannot read suite file"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.toml");
    std::fs::write(&p, b"name = \"x\"\n\xff\xfe").unwrap();
    let (code, _, stderr) = run_suite(&[p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("{}:2:1: the suite file is not UTF-8", p.display())),
        "{stderr}"
    );
}

/// A saved topo report `topo --from` can re-analyse without a GPU.
fn topo_report(dir: &Path, name: &str, width: u32) -> PathBuf {
    let facts = TopoFacts {
        gpus: vec![GpuTopo {
            index: 0,
            uuid: "GPU-0a".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: "00000000:18:00.0".into(),
            cpu_affinity: Some("0-15".into()),
            numa_affinity: Some("0".into()),
            gpu_numa_id: None,
            pcie: PcieFacts {
                current_gen: Some(5),
                max_gen: Some(5),
                gpu_max_gen: Some(5),
                current_width: Some(width),
                max_width: Some(16),
                replay_counter: Some(0),
            },
            nvlinks: vec![],
            lost: None,
        }],
        pairs: vec![],
        host_numa_nodes: 1,
        host_cpus: 16,
    };
    let mut r = Report::begin("topo", serde_json::json!({}));
    // What the saved run took: `--from` keeps it, and suite thresholds judge it.
    r.duration_ms = 25.0;
    r.devices.push(DeviceInfo {
        index: 0,
        uuid: "GPU-0a".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: "00000000:18:00.0".into(),
        memory_total_bytes: 85_899_345_920,
        compute_capability: Some("9.0".into()),
        cuda_ordinal: None,
    });
    r.data = serde_json::json!({ "facts": facts });
    let p = dir.join(name);
    gpu_doctor::output::write_json_atomic(&p, &r).unwrap();
    p
}

/// A `topo` entry that re-analyses `from` (an entry key).
fn topo_entry(from: &Path, extra: &str) -> String {
    format!(
        "[[scenario]]\nname = \"topo\"\nfrom = {:?}\n{extra}\n",
        from.to_str().unwrap()
    )
}

/// The same with `from` under [scenario.params], as suites written before it was an entry
/// key have it.
fn topo_entry_params_from(from: &Path) -> String {
    format!(
        "[[scenario]]\nname = \"topo\"\n[scenario.params]\nfrom = {:?}\n",
        from.to_str().unwrap()
    )
}

fn read(p: &Path) -> Report {
    gpu_doctor::output::read_report(p).unwrap()
}

#[test]
fn suite_runs_in_order_and_writes_one_combined_report() {
    let dir = tempfile::tempdir().unwrap();
    let good = topo_report(dir.path(), "good.json", 16);
    let suite = format!(
        "name = \"t\"\n[[scenario]]\nname = \"inject oom\"\n{}",
        topo_entry(&good, "")
    );
    let s = write(dir.path(), "t.toml", &suite);
    let out = dir.path().join("out.json");
    let (code, stdout, stderr) = run_suite(&[s.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // progress on stderr (one line per scenario when not a terminal), summary on stdout
    assert!(stderr.contains("[2/2] topo: pass ("), "{stderr}");
    assert!(stdout.contains("Scenarios"), "{stdout}");
    let r = read(&out);
    assert_eq!(r.scenario, "suite");
    assert_eq!(r.params["suite"], "t");
    assert_eq!(r.data["suite"]["scenarios"][1]["name"], "topo");
    let names: Vec<&str> = r.reports.iter().map(|x| x.scenario.as_str()).collect();
    assert_eq!(names, ["inject oom", "topo"]);
    assert_eq!(r.reports[1].status, Status::Pass);
    assert_eq!(
        r.status,
        r.reports
            .iter()
            .map(|x| x.status)
            .filter(|s| *s != Status::Skipped)
            .max()
            .unwrap()
    );
    if r.reports[0].status == Status::Skipped {
        assert!(
            r.reports[0].data["skipped_reason"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        assert!(stdout.contains("SKIPPED"), "{stdout}");
    }
    // --quiet: no progress
    let (code, _, stderr) = run_suite(&["-q", s.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!stderr.contains("[1/2]"), "{stderr}");
}

#[test]
fn worst_result_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let good = topo_report(dir.path(), "good.json", 16);
    let bad = topo_report(dir.path(), "bad.json", 8); // PCIe x8 of x16: a fail finding
    let s = write(
        dir.path(),
        "worst.toml",
        &format!("{}{}", topo_entry(&good, ""), topo_entry_params_from(&bad)),
    );
    let (code, stdout, _) = run_suite(&["--json", s.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let r: Report = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.reports[0].status, Status::Pass);
    assert_eq!(r.reports[1].status, Status::Fail);
    assert!(
        r.reports[1]
            .findings
            .iter()
            .any(|f| f.code == "PCIE_WIDTH_DEGRADED")
    );
}

#[test]
fn thresholds_become_findings_in_the_scenario_report() {
    let dir = tempfile::tempdir().unwrap();
    let good = topo_report(dir.path(), "good.json", 16);
    // A duration limit below the saved run's 25 ms, and a metric topo does not have.
    let fail = write(
        dir.path(),
        "fail.toml",
        &topo_entry(
            &good,
            "[scenario.thresholds]\nmax_duration_ms = 10\nmetrics.h2d_pinned_gbps = { min = 40 }",
        ),
    );
    let (code, stdout, _) = run_suite(&["--json", fail.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let r: Report = serde_json::from_str(&stdout).unwrap();
    let topo = &r.reports[0];
    assert_eq!(topo.status, Status::Fail);
    let th: Vec<_> = topo
        .findings
        .iter()
        .filter(|f| f.code == "THRESHOLD")
        .collect();
    assert_eq!(th.len(), 2, "{th:?}");
    assert!(
        th[0]
            .message
            .contains("took 25 ms, above the suite's max_duration_ms"),
        "{}",
        th[0].message
    );
    assert!(th[0].hint.as_deref().unwrap().contains("fail.toml:1"));
    assert!(
        th[1].message.contains("no such metric"),
        "{}",
        th[1].message
    );

    // The same as warnings: exit 0, status warn.
    let warn = write(
        dir.path(),
        "warn.toml",
        &topo_entry(
            &good,
            "[scenario.thresholds]\nseverity = \"warn\"\nmax_duration_ms = 10",
        ),
    );
    let (code, stdout, _) = run_suite(&["--json", warn.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    let r: Report = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r.status, Status::Warn);

    // max_status = "pass" turns a degraded link's fail into a threshold miss too
    let bad = topo_report(dir.path(), "bad.json", 8);
    let strict = write(
        dir.path(),
        "strict.toml",
        &topo_entry(&bad, "[scenario.thresholds]\nmax_status = \"pass\""),
    );
    let (code, stdout, _) = run_suite(&["--json", strict.to_str().unwrap()]);
    assert_eq!(code, 1);
    let r: Report = serde_json::from_str(&stdout).unwrap();
    assert!(
        r.reports[0]
            .findings
            .iter()
            .any(|f| f.code == "THRESHOLD" && f.message.contains("max_status pass"))
    );
}

#[test]
fn a_required_scenario_that_is_skipped_fails_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "req.toml",
        "[[scenario]]\nname = \"inject oom\"\nrequired = true\n",
    );
    let (code, stdout, _) = run_suite(&["--json", s.to_str().unwrap()]);
    let r: Report = serde_json::from_str(&stdout).unwrap();
    // No driver is within reach of `doctor()`: the scenario is skipped, on any machine.
    assert!(
        r.reports[0]
            .findings
            .iter()
            .any(|f| f.message.starts_with("required scenario was skipped")),
        "{:?}",
        r.reports[0].findings
    );
    assert_eq!(code, 1);
    assert_eq!(r.status, Status::Fail);
    // Not required: skipped; with nothing else in the suite, nothing ran: exit 3.
    let s = write(
        dir.path(),
        "opt.toml",
        "[[scenario]]\nname = \"inject oom\"\n",
    );
    let (code, stdout, _) = run_suite(&["--json", s.to_str().unwrap()]);
    let r: Report = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r.reports[0].status, Status::Skipped);
    assert_eq!(code, 3);
    assert_eq!(r.status, Status::Skipped);
}

#[test]
fn an_input_error_while_running_names_the_suite_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "s.toml",
        &topo_entry(Path::new("/nonexistent/topo.json"), ""),
    );
    let (code, _, stderr) = run_suite(&[s.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:1: scenario `topo`", s.display())),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/topo.json"), "{stderr}");
}

#[test]
fn check_lists_the_shipped_suites_without_running_them() {
    for name in ["quick", "full", "ci"] {
        let p = root().join(format!("scenarios/{name}.toml"));
        let (code, stdout, stderr) = run_suite(&["--check", "--json", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let r: Report = serde_json::from_str(&stdout).unwrap();
        assert!(!r.reports.is_empty());
        assert!(r.reports.iter().all(|x| x.status == Status::Skipped));
        assert_eq!(r.data["suite"]["name"], name);
    }
}

/// Suites that `run` refuses, each for a value it validates: `run --check` refuses every one
/// with the same message, and `run` refuses it before the first scenario starts.
#[test]
fn check_refuses_whatever_run_refuses_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let topo = topo_report(dir.path(), "topo.json", 16);
    let first = topo_entry(&topo, "");
    let bad_entries = [
        (
            "bandwidth",
            "params = { size = \"1.5.5GiB\" }",
            "not a size",
        ),
        ("inject oom", "params = { fraction = 1.5 }", "out of range"),
        ("inject oom", "params = { fraction = 0.0 }", "out of range"),
        ("inject oom", "params = { hold = \"-1s\" }", "negative"),
        (
            "inject oom",
            "params = { hold = \"0s\" }",
            "longer than zero",
        ),
        (
            "trace ctx",
            "params = { threads = 100000000 }",
            "2 to 64 threads",
        ),
        ("bandwidth", "params = { copies = 4000000000 }", "give 1 to"),
        (
            "bandwidth",
            "params = { min_efficiency = 5.0 }",
            "out of range",
        ),
        (
            "bandwidth",
            "params = { min_h2d_gbps = -3.0 }",
            "out of range",
        ),
        (
            "bandwidth",
            "params = { min_d2h_gbps = nan }",
            "not a finite number",
        ),
        (
            "inject stream-misuse",
            "params = { iterations = 4000000000 }",
            "--iterations",
        ),
        (
            "topo",
            "from = \"/nonexistent/missing.json\"",
            "cannot read",
        ),
        (
            "bandwidth",
            &format!("from = \"{}\"", topo.display()),
            "not a 'bandwidth' report",
        ),
        ("inject error", "", "--call"),
    ];
    for (name, extra, needle) in bad_entries {
        let text = format!("{first}[[scenario]]\nname = \"{name}\"\n{extra}\n");
        let s = write(dir.path(), "s.toml", &text);
        let (code, stdout, check_err) = run_suite(&["--check", s.to_str().unwrap()]);
        assert_eq!(code, 2, "--check passed {name} {extra}: {stdout}");
        assert!(check_err.contains(needle), "{name} {extra}: {check_err}");
        let (code, stdout, run_err) = run_suite(&[s.to_str().unwrap()]);
        assert_eq!(code, 2, "{name} {extra}: {run_err}");
        assert_eq!(
            check_err, run_err,
            "--check and run disagree on {name} {extra}"
        );
        assert!(stdout.is_empty() && !run_err.contains("[1/2]"), "{run_err}");
    }
}

/// Locating every entry was quadratic (30 s for 100k scenarios): checking a large suite is
/// linear now. A bound a quadratic check cannot meet, with room for a slow machine.
#[test]
fn check_of_a_large_suite_takes_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[scenario]]\nname = \"info\"\n\n".repeat(50_000);
    let s = write(dir.path(), "big.toml", &text);
    let started = std::time::Instant::now();
    let (code, _, stderr) = run_suite(&["--check", "--json", "-q", s.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(60), "{took:?}");
}
