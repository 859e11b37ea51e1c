//! CLI behaviour that needs no GPU: exit codes, the missing-driver path, re-analysis of real
//! reports recorded on the device machine (tests/fixtures) and of fixtures derived from them.

mod common;

use std::process::Command;

use assert_cmd::prelude::*;
use common::{RECORDED_SNAPSHOT, doctor, fixture, repo_arg, stdout_of};
use predicates::prelude::*;

fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).expect("stdout is JSON")
}

/// Runs `cmd`, expects exit `code`, and parses the report it printed (`--json`).
fn json_report(cmd: &mut Command, code: i32) -> serde_json::Value {
    json_of(stdout_of(cmd, code).as_bytes())
}

#[test]
fn missing_nvml_is_one_clear_line_and_exit_3() {
    for cmd in [&["info"][..], &["topo"], &["topo", "--json"]] {
        let out = doctor().args(cmd).assert().code(3).get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no NVIDIA driver") && err.contains("/nonexistent/libnvidia-ml.so.1"),
            "{err}"
        );
        assert!(
            err.contains("gpu-doctor topo --example"),
            "points a newcomer at the built-in example report: {err}"
        );
        assert!(!err.contains("panicked"));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn usage_errors_exit_2() {
    doctor().arg("frobnicate").assert().code(2);
    doctor()
        .args(["--device", "first", "topo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("neither a GPU index"));
    doctor()
        .args(["--timeout", "soon", "info"])
        .assert()
        .code(2);
    // Durations are waits or limits: zero is refused.
    doctor()
        .args(["--timeout", "0s", "info"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("longer than zero"));
    doctor().args(["topo", "--bogus"]).assert().code(2);
}

#[test]
fn help_documents_exit_codes_and_examples() {
    doctor().arg("--help").assert().success().stdout(
        predicate::str::contains("Exit codes:").and(predicate::str::contains("3  cannot run here")),
    );
    for sub in ["info", "topo"] {
        doctor().args([sub, "--help"]).assert().success().stdout(
            predicate::str::contains("gpu-doctor ").and(predicate::str::contains("Example")),
        );
    }
}

#[test]
fn topo_from_real_h100_report_reproduces_the_matrix() {
    let r = json_report(
        doctor().args(["topo", "--from", &fixture("h100-topo.json"), "--json"]),
        0,
    );
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["status"], "pass");
    assert_eq!(r["data"]["view"]["matrix"], serde_json::json!([["X"]]));
    assert_eq!(r["devices"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(r["findings"].as_array().unwrap().len(), 0);
    // The table shows the same matrix, the CPU affinity below it.
    doctor()
        .args(["topo", "--from", &fixture("h100-topo.json"), "--no-color"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("as nvidia-smi topo -m")
                .and(predicate::str::contains("CPU affinity: GPU 0: CPUs 0-15"))
                .and(predicate::str::contains("x16/x16")),
        );
}

/// The recorded 2×H200 machine (its NVML snapshot) with `fault`: what a real link trained
/// down, a link down or a pending remap look like, without hand-editing a report.
fn replayed_with(fault: &str, command: &str) -> Vec<String> {
    vec![
        "--replay".into(),
        repo_arg(RECORDED_SNAPSHOT),
        "--fault".into(),
        fault.into(),
        command.into(),
    ]
}

#[test]
fn a_link_trained_down_to_x8_fails_with_a_hint() {
    let r = json_report(
        doctor()
            .args(replayed_with("pcie-width=8@gpu0", "topo"))
            .arg("--json"),
        1,
    );
    assert_eq!(r["status"], "fail");
    let f = &r["findings"][0];
    assert_eq!(f["code"], "PCIE_WIDTH_DEGRADED");
    assert_eq!(f["severity"], "fail");
    assert_eq!(f["device"], 0);
    assert!(f["message"].as_str().unwrap().contains("x8"));
    assert!(f["hint"].as_str().unwrap().contains("reseat"));
}

#[test]
fn a_gen4_link_at_idle_is_info_only() {
    let r = json_report(
        doctor()
            .args(replayed_with("pcie-gen=4@gpu0", "topo"))
            .arg("--json"),
        0,
    );
    assert_eq!(r["status"], "pass");
    assert_eq!(r["findings"][0]["code"], "PCIE_GEN_BELOW_MAX");
    assert_eq!(r["findings"][0]["severity"], "info");
}

#[test]
fn info_from_real_h100_report_is_clean_and_derived_faults_fail() {
    let r = json_report(
        doctor().args(["info", "--from", &fixture("h100-info.json"), "--json"]),
        0,
    );
    assert_eq!(r["status"], "pass");
    let g = &r["data"]["gpus"][0];
    assert_eq!(g["persistence_mode"], true);
    assert_eq!(g["recovery_action"], "none");

    let r = json_report(
        doctor().args([
            "--replay",
            &repo_arg(RECORDED_SNAPSHOT),
            "--fault",
            "row-remap=pending@gpu0",
            "--fault",
            "ecc-uncorrectable=2@gpu0",
            "--fault",
            "recovery-action=gpu-reset@gpu0",
            "--fault",
            "throttle=thermal@gpu0",
            "info",
            "--json",
        ]),
        1,
    );
    let codes: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for c in [
        "ROW_REMAP_PENDING",
        "ECC_UNCORRECTABLE",
        "RECOVERY_ACTION",
        "THERMAL_THROTTLE",
    ] {
        assert!(codes.contains(&c), "{c} in {codes:?}");
    }
}

#[test]
fn from_with_bad_input_exits_2_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"schema_version\": 1,\n  oops\n}").unwrap();
    doctor()
        .args(["topo", "--from", bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("line 3"));
    doctor()
        .args(["topo", "--from", "/nonexistent.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read"));
    std::fs::write(&bad, "{\"schema_version\": 2}").unwrap();
    doctor()
        .args(["topo", "--from", bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("reads schema_version 1"));
    doctor()
        .args(["topo", "--from", &fixture("h100-info.json")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a 'topo' report"));
    // A suite report without the scenario says which scenarios it holds.
    doctor()
        .args(["bandwidth", "--from", &fixture("h100-suite-quick.json")])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("include no 'bandwidth' report")
                .and(predicate::str::contains("inject oom")),
        );
    // A saved report is analysed with the devices it recorded: --device cannot apply.
    doctor()
        .args([
            "--device",
            "0",
            "topo",
            "--from",
            &fixture("h100-topo.json"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--device does not apply to `topo --from`",
        ));
}

#[test]
fn every_scenario_takes_from_also_a_suite_report() {
    // The suite's own topo and inject oom reports are picked out and analysed again.
    for (cmd, scenario) in [
        (&["topo"][..], "topo"),
        (&["inject", "oom"], "inject oom"),
        (&["info"], "info"),
    ] {
        let r = json_report(
            doctor()
                .args(cmd)
                .args(["--from", &fixture("h100-suite-quick.json"), "--json"]),
            0,
        );
        assert_eq!(r["scenario"], scenario);
        assert_eq!(r["status"], "pass");
        assert_eq!(r["devices"][0]["name"], "NVIDIA H100 80GB HBM3");
        assert!(
            r["params"]["from"]
                .as_str()
                .unwrap()
                .ends_with("h100-suite-quick.json")
        );
    }
}

#[test]
fn output_file_is_written_and_matches_stdout_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let out = stdout_of(
        doctor()
            .args(replayed_with("pcie-width=8@gpu0", "topo"))
            .args(["--json", "-o", path.to_str().unwrap()]),
        1,
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file, json_of(out.as_bytes()));
    // No temp file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // An unwritable destination is an input error, not a panic.
    doctor()
        .args([
            "topo",
            "--from",
            &fixture("h100-topo.json"),
            "-o",
            "/nonexistent-dir/r.json",
        ])
        .assert()
        .code(2);
}

#[test]
fn no_color_and_pipes_give_plain_text() {
    let out = stdout_of(
        doctor()
            .args(replayed_with("pcie-width=8@gpu0", "topo"))
            .env("NO_COLOR", "1"),
        1,
    );
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn every_fixture_is_a_readable_report() {
    for entry in
        std::fs::read_dir(format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let path = entry.unwrap().path();
        // Reports; `*.nvml.json` are NVML snapshots (tests/nvml_cli.rs replays them).
        if path.extension().and_then(|e| e.to_str()) != Some("json")
            || path.to_string_lossy().ends_with(".nvml.json")
        {
            continue;
        }
        gpu_doctor::output::read_report(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn derived_fixtures_are_what_the_script_makes() {
    // The derived fixtures must stay reproducible from the real ones.
    // python3 is part of what CI installs: without it this test fails rather than passes.
    let status = std::process::Command::new("python3")
        .arg(format!(
            "{}/tests/fixtures/derive.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("--check")
        .status()
        .expect("python3 runs tests/fixtures/derive.py --check (install python3)");
    assert!(
        status.success(),
        "a derived fixture is not what derive.py makes"
    );
}

#[test]
fn every_finding_code_is_documented() {
    let docs: String = std::fs::read_dir(format!("{}/docs", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for (code, _) in gpu_doctor::report::codes::ALL {
        assert!(
            docs.contains(&format!("`{code}`")),
            "{code} is not documented in docs/"
        );
    }
}

#[test]
fn topo_from_real_h200x2_report_shows_nvswitch_links() {
    let r = json_report(
        doctor().args(["topo", "--from", &fixture("h200x2-topo.json"), "--json"]),
        0,
    );
    // As `nvidia-smi topo -m` printed on the same machine (tests/gpu/compare_smi.py checked it).
    assert_eq!(
        r["data"]["view"]["matrix"],
        serde_json::json!([["X", "NV18"], ["NV18", "X"]])
    );
    assert_eq!(
        r["data"]["view"]["groups"],
        serde_json::json!([{"gpus": [0, 1], "link": "NV18"}])
    );
    assert_eq!(r["data"]["facts"]["pairs"][0]["p2p"]["read"], "ok");
    assert_eq!(r["status"], "pass");
}

#[test]
fn an_nvlink_down_fails_naming_gpu_and_link() {
    let r = json_report(
        doctor()
            .args(replayed_with("nvlink-down=17@gpu1", "topo"))
            .arg("--json"),
        1,
    );
    let f: Vec<&serde_json::Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "NVLINK_INACTIVE")
        .collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["device"], 1);
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("GPU 1: NVLink 17 is inactive (17 of its 18 links are active)")
    );
    assert_eq!(r["data"]["view"]["matrix"][0][1], "NV17");
}

#[test]
fn derived_8gpu_host_renders_all_pairs_and_numa() {
    let r = json_report(
        doctor().args([
            "topo",
            "--from",
            &fixture("h200x2-topo-derived-8gpu.json"),
            "--json",
        ]),
        0,
    );
    let m = r["data"]["view"]["matrix"].as_array().unwrap();
    assert_eq!(m.len(), 8);
    assert!(m.iter().enumerate().all(|(i, row)| {
        row.as_array()
            .unwrap()
            .iter()
            .enumerate()
            .all(|(j, c)| if i == j { c == "X" } else { c == "NV18" })
    }));
    assert_eq!(r["data"]["facts"]["gpus"][7]["numa_affinity"], "1");
    assert_eq!(r["data"]["facts"]["pairs"].as_array().unwrap().len(), 28);
}

#[test]
fn cuda_scenarios_without_a_driver_exit_3_in_one_line() {
    for cmd in [
        &["inject", "oom"][..],
        &["inject", "ctx-destroy"],
        &["inject", "stream-misuse"],
        &["inject", "illegal-address"],
        &["inject", "all"],
        &["trace", "ctx"],
        &["bandwidth"],
    ] {
        let out = doctor().args(cmd).assert().code(3).get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains("no CUDA driver") || err.contains("no NVIDIA driver"),
            "{cmd:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{cmd:?}: {err}");
    }
}

#[test]
fn bad_scenario_params_exit_2_before_any_driver_is_needed() {
    for (cmd, needle) in [
        (&["inject", "oom", "--fraction", "2"][..], "--fraction"),
        (&["inject", "oom", "--granularity", "0"], "granularity"),
        (
            &["inject", "stream-misuse", "--iterations", "0"],
            "--iterations",
        ),
        (&["trace", "ctx", "--threads", "1"], "--threads"),
        (&["inject", "oom", "--hold", "forever"], "hold"),
        (&["inject", "oom", "--hold", "0s"], "longer than zero"),
        (&["inject", "oom", "--hold=-5s"], "cannot be negative"),
    ] {
        doctor()
            .args(cmd)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle));
    }
}

#[test]
fn an_empty_library_override_means_unset() {
    // On a machine without a driver: the loader path is named, not an empty file name (which
    // dlopen reads as the program itself: "undefined symbol: nvmlInit_v2").
    let out = doctor()
        .env("GPU_DOCTOR_LIBNVML", "")
        .env("GPU_DOCTOR_LIBCUDA", "")
        .args(["info"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("undefined symbol"), "{err}");
    if out.status.code() == Some(3) {
        assert!(err.contains("the loader path"), "{err}");
        assert!(!err.contains("GPU_DOCTOR_LIBNVML="), "{err}");
    }
}

#[test]
fn the_example_report_is_built_in_and_works_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["topo"][..],
        &["info"],
        &["bandwidth"],
        &["trace", "ctx"],
        &["inject", "oom"],
    ] {
        let r = json_report(
            doctor()
                .current_dir(dir.path())
                .args(cmd)
                .args(["--example", "--json"]),
            0,
        );
        assert_eq!(r["scenario"], cmd.join(" "));
        assert!(
            r["params"]["from"].as_str().unwrap().starts_with("example"),
            "{}",
            r["params"]
        );
    }
    doctor()
        .args(["topo", "--example", "--from", "x.json"])
        .assert()
        .code(2);
}

#[test]
fn completions_man_page_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(doctor().args(["completions", shell]), 0);
        for word in ["inject", "trace", "from", "example", "compare"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    let page = stdout_of(doctor().args(["man"]), 0);
    assert!(
        page.starts_with(".ie") && page.contains(".SH NAME"),
        "{page}"
    );
    let page = stdout_of(doctor().args(["man", "inject", "oom"]), 0);
    assert!(page.contains("gpu\\-doctor\\-inject\\-oom") && page.contains("fraction"));
    doctor()
        .args(["man", "inject", "bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a command"));
    let v = stdout_of(doctor().arg("--version"), 0);
    assert!(
        v.starts_with(&format!(
            "gpu-doctor {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
    assert!(v.contains("CUDA shim"), "{v}");
}

#[test]
fn help_keeps_global_options_apart_and_describes_every_option() {
    let help = stdout_of(doctor().args(["inject", "oom", "--help"]), 0);
    let (own, global) = help
        .split_once("Global options:")
        .expect("a Global options heading");
    assert!(
        own.contains("--fraction") && !own.contains("--timeout"),
        "{help}"
    );
    assert!(
        global.contains("--timeout") && global.contains("--device"),
        "{help}"
    );
    for group in ["inject", "trace"] {
        doctor()
            .args([group, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn walls_of_rows_are_summarised_and_verbose_lists_them() {
    let nvlinks = |args: &[&str]| {
        stdout_of(
            doctor()
                .args(replayed_with("nvlink-down=17@gpu1", "topo"))
                .args(args),
            1,
        )
    };
    let summary = nvlinks(&[]);
    assert!(
        summary.contains("18/18 active") && summary.contains("17/18 active"),
        "{summary}"
    );
    assert!(
        summary.contains("link 17") && summary.contains("NVSwitch"),
        "{summary}"
    );
    assert!(
        !summary.contains("FFFFFFFF:FF:FF.0"),
        "the sentinel is named: {summary}"
    );
    let every = nvlinks(&["--verbose"]);
    let rows = every
        .lines()
        .filter(|l| l.contains("active") || l.contains("INACTIVE"));
    assert!(rows.count() >= 36, "{every}");
}

#[test]
fn piped_output_follows_columns() {
    let lines = |columns: &str| {
        let text = stdout_of(
            doctor()
                .env("COLUMNS", columns)
                .args(["trace", "ctx", "--example"]),
            0,
        );
        text.lines().map(|l| l.chars().count()).max().unwrap()
    };
    assert!(lines("80") <= 80);
    assert!(lines("120") > 80, "a wider terminal gets wider tables");
}

#[test]
fn text_from_a_report_is_shown_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("h100-suite-ci.json")).unwrap())
            .unwrap();
    let hostile = "\u{1b}]0;owned\u{7}\u{202e}evil\u{9b}2J";
    r["host"]["hostname"] = hostile.into();
    r["reports"][1]["devices"][0]["name"] = hostile.into();
    let path = dir.path().join("hostile.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let p = path.to_str().unwrap();
    let raw = |s: &str| {
        s.chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
    };
    for args in [
        &["topo", "--from", p][..],
        &["topo", "--from", p, "--json"],
        &["topo", "--from", p, "--markdown"],
        &["compare", &fixture("h100-suite-ci.json"), p],
        &[
            "compare",
            &fixture("h100-suite-ci.json"),
            p,
            "--format",
            "markdown",
        ],
        &["compare", &fixture("h100-suite-ci.json"), p, "--json"],
    ] {
        let out = doctor().args(args).output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!raw(&stdout) && !raw(&stderr), "{args:?}: {stdout:?}");
        assert!(stdout.contains("evil"), "{args:?}: {stdout}");
    }
    // An error message quoting a file's text.
    let suite = dir.path().join("s.toml");
    // A TOML escape: the parsed name holds an ESC.
    std::fs::write(&suite, "[[scenario]]\nname = \"in\\u001b[2Jfo\"\n").unwrap();
    let out = doctor()
        .args(["run", suite.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !raw(stderr.trim_end()) && stderr.contains("\\u{1b}"),
        "{stderr:?}"
    );
}

/// A saved program-mode report re-renders without what a run needs (COMMAND, inject error's
/// call, replay's snapshot); without `--from` those stay required.
#[test]
fn program_mode_reports_render_from_a_file_without_a_command() {
    for (args, fixture) in [
        (vec!["leak-check"], "h200x2-leak-check.json"),
        (
            vec!["inject", "error"],
            "h100-shim-error-driver-launch.json",
        ),
        (vec!["inject", "nvml"], "h200x2-inject-nvml.json"),
        (vec!["replay"], "h200x2-replay.json"),
    ] {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        doctor()
            .args(&args)
            .args(["--from", &path])
            .assert()
            .success()
            .stdout(predicate::str::contains("status:"));
        doctor()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("COMMAND"));
    }
}
