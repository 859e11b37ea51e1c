//! `gpu-doctor compare`: regressions on reports constructed here (metric down 20 %, finding
//! added, pass→fail, device swapped), every output format, and every unreadable-input class
//! → exit 2 with what and where.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{doctor, fixture};
use gpu_doctor::report::{Better, DeviceInfo, Finding, Metric, Report, Severity, Status};

fn device(index: u32, uuid: &str) -> DeviceInfo {
    DeviceInfo {
        index,
        uuid: uuid.into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + index * 0x20),
        memory_total_bytes: 85_899_345_920,
        compute_capability: Some("9.0".into()),
        cuda_ordinal: Some(index),
    }
}

/// A suite report like `run scenarios/ci.toml` writes: info, topo and bandwidth.
fn baseline() -> Report {
    let devices = vec![device(0, "GPU-aaaa"), device(1, "GPU-bbbb")];
    let mut info = Report::begin("info", serde_json::json!({}));
    info.devices = devices.clone();
    info.host.driver_version = Some("580.159.04".into());
    info.findings
        .push(Finding::new(Severity::Info, "PERSISTENCE_OFF", "persistence mode is off").device(0));
    let mut topo = Report::begin("topo", serde_json::json!({}));
    topo.devices = devices.clone();
    let mut bw = Report::begin("bandwidth", serde_json::json!({}));
    bw.devices = devices.clone();
    for (gpu, h2d) in [(0u32, 52.1), (1, 51.7)] {
        bw.metrics.insert(
            format!("h2d_pinned_gbps.gpu{gpu}"),
            Metric::new(h2d, "GB/s", Better::Higher).device(gpu),
        );
        bw.metrics.insert(
            format!("launch_latency_us.gpu{gpu}"),
            Metric::new(4.0, "us", Better::Lower).device(gpu),
        );
    }
    let mut suite = Report::begin("suite", serde_json::json!({ "suite": "ci" }));
    suite.host.driver_version = Some("580.159.04".into());
    suite.devices = devices;
    suite.reports = vec![info, topo, bw];
    suite.status = Status::Pass;
    suite
}

fn save(dir: &Path, name: &str, r: &Report) -> PathBuf {
    let p = dir.join(name);
    gpu_doctor::output::write_json_atomic(&p, r).unwrap();
    p
}

/// `compare BASE CUR EXTRA…`: (exit code, stdout, stderr).
fn compare(
    base: impl AsRef<OsStr>,
    cur: impl AsRef<OsStr>,
    extra: &[&str],
) -> (i32, String, String) {
    compare_all(&[&base, &cur], extra)
}

/// `compare` with any number of reports (the last one is the current).
fn compare_all(reports: &[&dyn AsRef<OsStr>], extra: &[&str]) -> (i32, String, String) {
    // Wide enough that the headline is one line.
    let out = doctor()
        .env("COLUMNS", "400")
        .arg("compare")
        .args(reports)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn identical_reports_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let (code, stdout, stderr) = compare(&b, &b, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.trim_end().ends_with("no regression"), "{stdout}");
}

#[test]
fn metric_down_20_percent_is_a_regression_unless_its_tolerance_allows() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let mut cur = baseline();
    let m = cur.reports[2]
        .metrics
        .get_mut("h2d_pinned_gbps.gpu1")
        .unwrap();
    m.value *= 0.8;
    let c = save(dir.path(), "c.json", &cur);
    let (code, stdout, _) = compare(&b, &c, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("h2d_pinned_gbps.gpu1"), "{stdout}");
    assert!(stdout.contains("-20.0%"), "{stdout}");
    let (code, stdout, _) = compare(&b, &c, &["--json"]);
    assert_eq!(code, 1);
    let j = json_of(&stdout);
    assert_eq!(j["regression"], true);
    assert_eq!(j["regressions"], 1);
    let bw = j["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "bandwidth")
        .unwrap();
    let m = bw["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "h2d_pinned_gbps.gpu1")
        .unwrap();
    assert_eq!(m["verdict"], "regressed");
    // per-metric tolerance by base name, and a global one
    assert_eq!(compare(&b, &c, &["--tol", "h2d_pinned_gbps=25%"]).0, 0);
    assert_eq!(compare(&b, &c, &["--tolerance", "21"]).0, 0);
    assert_eq!(compare(&b, &c, &["--tol", "h2d_pinned_gbps.gpu0=25%"]).0, 1);
    // a move in the good direction is an improvement
    let mut faster = baseline();
    faster.reports[2]
        .metrics
        .get_mut("h2d_pinned_gbps.gpu0")
        .unwrap()
        .value = 60.0;
    let f = save(dir.path(), "f.json", &faster);
    let (code, stdout, _) = compare(&b, &f, &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("improved"), "{stdout}");
}

#[test]
fn an_added_finding_is_a_regression_and_a_resolved_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let mut cur = baseline();
    cur.reports[1].findings.push(
        Finding::new(
            Severity::Warn,
            "PCIE_REPLAYS",
            "GPU 1 PCIe replay counter is 12",
        )
        .device(1),
    );
    let c = save(dir.path(), "c.json", &cur);
    let (code, stdout, _) = compare(&b, &c, &["--json"]);
    assert_eq!(code, 1);
    let j = json_of(&stdout);
    let topo = &j["scenarios"][1];
    assert_eq!(topo["new_findings"][0]["code"], "PCIE_REPLAYS");
    assert_eq!(topo["new_findings"][0]["device"], "GPU-bbbb");
    // the other way round it is resolved: no regression
    let (code, stdout, _) = compare(&c, &b, &["--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        json_of(&stdout)["scenarios"][1]["resolved_findings"][0]["code"],
        "PCIE_REPLAYS"
    );
}

#[test]
fn pass_to_fail_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let mut cur = baseline();
    cur.reports[0].status = Status::Fail;
    cur.status = Status::Fail;
    let c = save(dir.path(), "c.json", &cur);
    let (code, stdout, _) = compare(&b, &c, &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("pass → fail"), "{stdout}");
    assert!(stdout.contains("REGRESSED"), "{stdout}");
    // a single scenario report against the same scenario's report
    let bi = save(dir.path(), "bi.json", &baseline().reports[0]);
    let ci = save(dir.path(), "ci.json", &cur.reports[0]);
    assert_eq!(compare(&bi, &ci, &[]).0, 1);
    assert_eq!(compare(&ci, &bi, &[]).0, 0);
}

#[test]
fn a_swapped_device_is_information_and_findings_follow_it_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let mut cur = baseline();
    let swap = |ds: &mut Vec<DeviceInfo>| ds[0].uuid = "GPU-cccc".into();
    swap(&mut cur.devices);
    for r in &mut cur.reports {
        swap(&mut r.devices);
    }
    cur.host.driver_version = Some("580.170.01".into());
    let c = save(dir.path(), "c.json", &cur);
    let (code, stdout, _) = compare(&b, &c, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("replaced: GPU-aaaa → GPU-cccc"), "{stdout}");
    assert!(
        stdout.contains("driver_version changed from 580.159.04 to 580.170.01"),
        "{stdout}"
    );
    // PERSISTENCE_OFF on GPU 0 is the same finding on the replacement GPU 0
    let j = json_of(&compare(&b, &c, &["--json"]).1);
    assert_eq!(
        j["scenarios"][0]["new_findings"].as_array().unwrap().len(),
        0
    );
}

#[test]
fn markdown_and_junit_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let b = save(dir.path(), "b.json", &baseline());
    let mut cur = baseline();
    cur.reports[2]
        .metrics
        .get_mut("h2d_pinned_gbps.gpu0")
        .unwrap()
        .value = 30.0;
    cur.reports[0].findings.push(Finding::new(
        Severity::Fail,
        "ECC_UNCORRECTABLE",
        "3 <uncorrectable> errors & \"more\" | ']]>",
    ));
    cur.reports[0].status = Status::Fail;
    let c = save(dir.path(), "c.json", &cur);

    let (code, md, _) = compare(&b, &c, &["--format", "markdown"]);
    assert_eq!(code, 1);
    assert!(
        md.starts_with("### ❌ gpu-doctor compare: REGRESSION"),
        "{md}"
    );
    assert!(
        md.contains("| info | pass → fail | **REGRESSED** |"),
        "{md}"
    );
    assert!(
        md.contains("&lt;uncorrectable&gt; errors &amp; \"more\" \\|"),
        "{md}"
    );

    let (code, xml, _) = compare(&b, &c, &["--format", "junit"]);
    assert_eq!(code, 1);
    well_formed(&xml);
    // info: 1 case; topo: 1; bandwidth: 1 + 4 metrics; the suite's own row: 1
    assert!(xml.contains("tests=\"8\" failures=\"2\""), "{xml}");
    assert!(
        xml.contains("&lt;uncorrectable&gt; errors &amp; &quot;more&quot; | &apos;]]&gt;"),
        "{xml}"
    );

    // -o writes the JSON comparison whatever the format
    let out = dir.path().join("cmp.json");
    let (code, _, _) = compare(
        &b,
        &c,
        &["--format", "markdown", "-o", out.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // two scenarios regressed: info (status and a finding), bandwidth (a metric)
    assert_eq!(j["regressions"], 2);
    assert_eq!(
        j["regressed"],
        serde_json::json!({ "statuses": 1, "findings": 1, "metrics": 1 })
    );
}

/// A small XML well-formedness check: one root, balanced tags, quoted attributes, no raw
/// `<` or `&` in text or attribute values.
fn well_formed(xml: &str) {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').expect("unterminated tag");
            let tag = &after[..end];
            rest = &after[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "tag name {name:?}"
            );
            let mut a = attrs.trim();
            while !a.is_empty() {
                let (key, v) = a
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("attribute syntax in <{tag}>"));
                assert!(
                    key.trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{key:?}"
                );
                let close = v.find('"').expect("unterminated attribute");
                check_text(&v[..close]);
                a = v[close + 1..].trim_start();
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name.to_string());
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            if stack.is_empty() {
                assert!(text.trim().is_empty(), "text outside the root: {text:?}");
            }
            check_text(text);
            rest = &rest[end..];
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert_eq!(roots, 1);
}

fn check_text(t: &str) {
    assert!(!t.contains('<') && !t.contains('"'), "raw markup in {t:?}");
    let mut s = t;
    while let Some(i) = s.find('&') {
        let ent = &s[i..];
        let end = ent.find(';').expect("unterminated entity");
        let name = &ent[1..end];
        assert!(
            ["amp", "lt", "gt", "quot", "apos"].contains(&name)
                || name
                    .strip_prefix('#')
                    .is_some_and(|n| n.parse::<u32>().is_ok()),
            "bad entity &{name};"
        );
        s = &ent[end..];
    }
}

fn expect_unreadable(text: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let good = save(dir.path(), "good.json", &baseline());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, text).unwrap();
    for (b, c) in [(&good, &bad), (&bad, &good)] {
        let (code, stdout, stderr) = compare(b, c, &[]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(&format!("{}: ", bad.display())), "{stderr}");
        for n in needles {
            assert!(stderr.contains(n), "want {n:?} in {stderr}");
        }
    }
}

#[test]
fn unreadable_inputs_exit_2_and_say_why() {
    expect_unreadable(
        b"{\n  \"schema_version\": 1,\n  \"tool\": {,\n}",
        &["not valid JSON at line 3, column 12"],
    );
    expect_unreadable(b"", &["not valid JSON at line 1, column 0"]);
    expect_unreadable(b"\xff\xfe", &["cannot read"]);
    expect_unreadable(
        b"[1, 2]",
        &["not a gpu-doctor report: the JSON is an array"],
    );
    expect_unreadable(
        b"{\"traceEvents\": []}",
        &["not a gpu-doctor report: no schema_version"],
    );
    expect_unreadable(
        b"{\"schema_version\": 2, \"tool\": {}}",
        &[
            "schema_version 2 is not supported",
            "reads schema_version 1",
        ],
    );
    let mut r = serde_json::to_value(baseline()).unwrap();
    r["reports"][1]["status"] = "great".into();
    let text = serde_json::to_string_pretty(&r).unwrap();
    let line = text.lines().position(|l| l.contains("\"great\"")).unwrap() + 1;
    expect_unreadable(
        text.as_bytes(),
        &[
            "not a gpu-doctor report (schema_version 1): unknown variant `great`",
            &format!("at line {line}, column"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = save(dir.path(), "good.json", &baseline());
    let (code, _, stderr) = compare(&good, Path::new("/nonexistent.json"), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent.json: cannot read"),
        "{stderr}"
    );
}

#[test]
fn bad_tolerances_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = save(dir.path(), "good.json", &baseline());
    for args in [
        ["--tolerance", "five"],
        ["--tol", "h2d"],
        ["--tol", "h2d=-3%"],
    ] {
        let (code, _, stderr) = compare(&good, &good, &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}

// --- Real reports (tests/fixtures): reruns, history, what a CI job must not miss.

fn read(name: &str) -> Report {
    gpu_doctor::output::read_report(Path::new(&fixture(name))).unwrap()
}

/// (scenario key, metric name) of every metric row with the given verdict.
fn metrics_with(j: &serde_json::Value, verdict: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in j["scenarios"].as_array().unwrap() {
        for m in s["metrics"].as_array().unwrap() {
            if m["verdict"] == verdict {
                out.push((
                    s["key"].as_str().unwrap().to_string(),
                    m["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

const RERUN: &str = "h100-suite-ci-derived-rerun.json";
const PINNED_DOWN: &str = "h100-suite-ci-derived-h2d-pinned-10pct-lower.json";

#[test]
fn a_rerun_of_the_same_box_is_within_and_a_10_percent_pinned_drop_regresses() {
    let base = fixture("h100-suite-ci.json");
    // One-off timings +45 %, pageable copies ±25 %, pinned ±1 %: no regression either way.
    for (b, c) in [(&base, &fixture(RERUN)), (&fixture(RERUN), &base)] {
        let (code, stdout, stderr) = compare(b, c, &["--json"]);
        assert_eq!(code, 0, "{stderr}");
        let j = json_of(&stdout);
        assert!(metrics_with(&j, "regressed").is_empty(), "{stdout}");
        assert!(metrics_with(&j, "worse").is_empty(), "{stdout}");
    }
    // H2D pinned 10 % lower (inside the same noise): that metric, and only it, regressed.
    let (code, stdout, _) = compare(&base, fixture(PINNED_DOWN), &["--json"]);
    assert_eq!(code, 1, "{stdout}");
    let j = json_of(&stdout);
    assert_eq!(
        metrics_with(&j, "regressed"),
        vec![("bandwidth".to_string(), "h2d_pinned_gbps".to_string())]
    );
    let m = j["scenarios"][6]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "h2d_pinned_gbps")
        .unwrap();
    // The baseline was written before metrics had a kind: inferred from the table.
    assert_eq!(m["kind"], "throughput");
    assert_eq!(m["kind_source"], "inferred");
    assert_eq!(m["gate"], true);
    assert_eq!(j["regressions"], 1);
    let (_, text, _) = compare(&base, fixture(PINNED_DOWN), &[]);
    assert!(
        text.contains("REGRESSION in 1 of 7 scenarios: bandwidth (h2d_pinned_gbps -10.0%)"),
        "{text}"
    );
}

#[test]
fn single_shot_timings_gate_only_when_tol_names_them() {
    let base = fixture("h100-suite-ci.json");
    let rerun = fixture(RERUN);
    // --tolerance sets every band, but one-off timings stay information.
    assert_eq!(compare(&base, &rerun, &["--tolerance", "5%"]).0, 0);
    let (code, stdout, _) = compare(&base, &rerun, &["--tol", "time_to_edge_ms=10%", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(
        metrics_with(&json_of(&stdout), "regressed"),
        vec![("inject oom".to_string(), "time_to_edge_ms".to_string())]
    );
    // named with a band wide enough for a rerun
    assert_eq!(
        compare(&base, &rerun, &["--tol", "time_to_edge_ms=50%"]).0,
        0
    );
}

#[test]
fn several_baselines_as_files_or_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("baselines");
    std::fs::create_dir(&hist).unwrap();
    for (i, name) in ["h100-suite-ci.json", RERUN].iter().enumerate() {
        std::fs::copy(fixture(name), hist.join(format!("run{i}.json"))).unwrap();
    }
    let (code, stdout, stderr) = compare_all(&[&hist, &fixture(PINNED_DOWN)], &["--json"]);
    assert_eq!(code, 1, "{stderr}");
    let j = json_of(&stdout);
    assert_eq!(j["baseline_reports"], 2);
    let regressed = metrics_with(&j, "regressed");
    assert_eq!(regressed.len(), 1, "{regressed:?}");
    assert_eq!(regressed[0].1, "h2d_pinned_gbps");
    // the same as files; and a current report inside the folder is not its own baseline
    let files = [
        fixture("h100-suite-ci.json"),
        fixture(RERUN),
        fixture("h100-suite-ci.json"),
    ];
    let (code, stdout, _) = compare_all(
        &[&files[0], &files[1], &files[2]],
        &["--format", "markdown"],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("2 baselines"), "{stdout}");
    let (code, stdout, _) = compare_all(&[&hist, &hist.join("run1.json")], &["--json"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&stdout)["baseline_reports"], 1);
    // an empty folder is an input error
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = compare_all(&[&empty, &fixture(RERUN)], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no baseline report (*.json)"), "{stderr}");
}

#[test]
fn reports_of_different_scenarios_are_an_input_error() {
    let (code, stdout, stderr) = compare(
        fixture("h100-inject-oom.json"),
        fixture("h100-topo.json"),
        &[],
    );
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot compare") && stderr.contains("`inject oom`"),
        "{stderr}"
    );
    // a suite and a scenario it does not hold
    let (code, _, _) = compare(
        fixture("h100-suite-ci.json"),
        fixture("h100-trace-ctx.json"),
        &[],
    );
    assert_eq!(code, 2);
}

#[test]
fn scenarios_missing_from_the_current_report_regress() {
    let dir = tempfile::tempdir().unwrap();
    let suite = read("h100-suite-ci.json");
    let topo = save(dir.path(), "topo.json", &suite.reports[1]);
    let (code, stdout, _) = compare(fixture("h100-suite-ci.json"), &topo, &["--json"]);
    assert_eq!(code, 1, "{stdout}");
    let j = json_of(&stdout);
    let missing: Vec<&str> = j["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "removed")
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(missing.len(), 6, "{missing:?}");
    assert_eq!(j["regressions"], 6);
    // a scenario added to the current report is information
    assert_eq!(compare(&topo, fixture("h100-suite-ci.json"), &[]).0, 0);
}

#[test]
fn a_suite_status_edited_to_fail_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let mut edited = read("h100-suite-ci.json");
    edited.status = Status::Fail;
    let c = save(dir.path(), "edited.json", &edited);
    let (code, stdout, _) = compare(fixture("h100-suite-ci.json"), &c, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("REGRESSION in the suite's own status or findings (status pass → fail)"),
        "{stdout}"
    );
    // The derived regression: three scenarios, counted once each.
    let (code, stdout, _) = compare(
        fixture("h100-suite-ci.json"),
        fixture("h100-suite-ci-derived-regressed.json"),
        &["--json"],
    );
    assert_eq!(code, 1);
    let j = json_of(&stdout);
    assert_eq!(j["regressions"], 3);
    assert_eq!(
        j["regressed"],
        serde_json::json!({ "statuses": 2, "findings": 2, "metrics": 1 })
    );
}
