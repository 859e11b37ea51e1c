//! `gpu-doctor health` as the engines run it, on replayed machines (healthy, an NVLink down, a
//! GPU lost) and on one without a driver: node-problem-detector's custom-plugin protocol (exit
//! 0 OK / 1 problem / 2 unknown, one line of at most `max_output_length`) with the rule of the
//! shipped config, the shipped config checked as NPD itself checks it, the Kubernetes
//! manifests parsed by a real YAML parser (PyYAML), the Slurm scripts by the shell and
//! ShellCheck, and the NHC line run. The live Slurm cluster is tests/slurm.rs.

mod common;

use std::process::Command;

use common::{doctor, repo_arg, root, yaml_documents};
use serde_json::Value;

/// The replayed machine every case starts from (one constant, to switch to a recorded one).
const SNAPSHOT: &str = common::SYNTHETIC_SNAPSHOT;

fn snapshot() -> String {
    repo_arg(SNAPSHOT)
}

/// NPD's config as the plugin monitor reads it.
fn npd_config() -> Value {
    let text =
        std::fs::read_to_string(root().join("deploy/kubernetes/npd-gpu-doctor.json")).unwrap();
    serde_json::from_str(&text).expect("the NPD config is JSON")
}

/// Go's time.ParseDuration for the forms a config uses ("30s", "1m30s", "500ms").
fn go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// What one run of the rule's command answers: (exit code, stdout).
fn run_rule(prefix: &[&str]) -> (i32, String) {
    let c = npd_config();
    let rule = &c["rules"][0];
    let args: Vec<String> = rule["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let out = doctor().args(prefix).args(&args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn the_npd_config_is_what_node_problem_detector_accepts() {
    let c = npd_config();
    // NPD's CustomPluginConfig: ApplyConfiguration then Validate.
    assert_eq!(c["plugin"], "custom");
    let g = &c["pluginConfig"];
    let global_timeout = go_duration(g["timeout"].as_str().unwrap()).expect("a Go duration");
    let interval = go_duration(g["invoke_interval"].as_str().unwrap()).expect("a Go duration");
    assert!(
        global_timeout > 0.0 && interval >= global_timeout,
        "runs end before the next starts"
    );
    assert_eq!(g["max_output_length"], 80, "the one line fits");
    assert!(g["concurrency"].as_u64().unwrap() >= 1);
    let conditions: Vec<&str> = c["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    for x in c["conditions"].as_array().unwrap() {
        for k in ["type", "reason", "message"] {
            assert!(
                x[k].as_str().is_some_and(|s| !s.is_empty()),
                "condition {k}"
            );
        }
    }
    let rules = c["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for r in rules {
        assert!(matches!(
            r["type"].as_str(),
            Some("temporary" | "permanent")
        ));
        if r["type"] == "permanent" {
            assert!(
                conditions.contains(&r["condition"].as_str().unwrap()),
                "a permanent rule sets a declared condition"
            );
        }
        let t = go_duration(r["timeout"].as_str().unwrap()).unwrap();
        assert!(
            t <= global_timeout,
            "NPD refuses a rule timeout above the global one"
        );
        let path = r["path"].as_str().unwrap();
        assert!(
            path.starts_with('/') && path.ends_with("/gpu-doctor"),
            "{path}"
        );
        let args: Vec<&str> = r["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.windows(2).any(|w| w == ["--format", "npd"]),
            "{args:?}"
        );
        // Slurm kills its health check at 60 s; NPD at the rule timeout: the quick check's
        // per-GPU deadline (10 s) and NVML fit well inside.
        assert!(t >= 15.0);
    }
}

#[test]
fn the_npd_protocol_on_healthy_degraded_lost_and_driverless_machines() {
    let s = snapshot();
    let max = npd_config()["pluginConfig"]["max_output_length"]
        .as_u64()
        .unwrap() as usize;
    let cases: [(&[&str], i32, &str); 3] = [
        (&["--replay", &s], 0, "OK: 2 GPUs"),
        (
            &["--replay", &s, "--fault", "nvlink-down=3@gpu0"],
            1,
            "NVLINK_INACTIVE gpu0: ",
        ),
        (
            &["--replay", &s, "--fault", "gpu-lost@gpu1"],
            1,
            "GPU_LOST gpu1: fallen off the bus",
        ),
    ];
    for (prefix, code, start) in cases {
        let (got, out) = run_rule(prefix);
        assert_eq!(got, code, "{prefix:?}: {out}");
        assert_eq!(out.lines().count(), 1, "one line: {out:?}");
        let line = out.trim_end_matches('\n');
        assert!(line.starts_with(start), "{prefix:?}: {line}");
        assert!(
            line.len() <= max && line.is_ascii(),
            "{} > {max}: {line}",
            line.len()
        );
    }
    // No NVIDIA driver at all: NPD's "unknown".
    let (got, out) = run_rule(&[]);
    assert_eq!(got, 2, "{out}");
    assert!(
        out.starts_with("UNKNOWN: no NVIDIA driver") && out.trim_end().len() <= max,
        "{out}"
    );
}

#[test]
fn on_error_makes_cannot_run_a_choice_and_expect_gpus_makes_it_a_failure() {
    let run = |args: &[&str]| {
        let o = doctor().arg("--quiet").args(args).output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8(o.stdout).unwrap().trim_end().to_string(),
        )
    };
    assert_eq!(run(&["health"]).0, 3, "cannot run here, no policy");
    let (c, line) = run(&["health", "--format", "npd", "--on-error", "drain"]);
    assert_eq!(
        (c, line.split(':').next().unwrap()),
        (1, "HEALTH_CANNOT_RUN"),
        "{line}"
    );
    let (c, line) = run(&["health", "--format", "npd", "--on-error", "pass"]);
    assert_eq!(c, 0, "{line}");
    assert!(
        line.starts_with("OK: no GPU checked, 1 warning(s): HEALTH_CANNOT_RUN"),
        "{line}"
    );
    assert_eq!(run(&["health", "--on-error", "drain"]).0, 1);
    let (c, line) = run(&["health", "--format", "npd", "--expect-gpus", "8"]);
    assert_eq!(
        (c, line.split(':').next().unwrap()),
        (1, "DRIVER_NOT_LOADED"),
        "a GPU node without its driver is a problem: {line}"
    );

    // The count a node must have, on a replayed 2-GPU machine; the report is written too.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("h.json");
    let s = snapshot();
    let o = doctor()
        .args([
            "--quiet",
            "--replay",
            &s,
            "health",
            "--expect-gpus",
            "8",
            "--format",
            "npd",
            "-o",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let line = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{line}");
    assert_eq!(
        line.trim_end(),
        "GPU_COUNT_MISMATCH: NVML sees 2 GPU(s), this node should have 8"
    );
    let r = gpu_doctor::output::read_report(&report).unwrap();
    assert_eq!(r.scenario, "health");
    assert!(r.nvml.is_some(), "the report says the machine was replayed");
}

#[test]
fn the_daemonset_runs_npd_with_the_shipped_config_and_gpu_doctor_where_the_rule_says() {
    let docs = yaml_documents("deploy/kubernetes/npd-gpu-doctor.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("a {k}"))
    };
    let cm = kind("ConfigMap");
    let embedded: Value =
        serde_json::from_str(cm["data"]["npd-gpu-doctor.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        embedded,
        npd_config(),
        "the ConfigMap holds deploy/kubernetes/npd-gpu-doctor.json"
    );
    let ds = kind("DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        ds["spec"]["template"]["metadata"]["labels"]
    );
    let c = &spec["containers"][0];
    let command: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let config_arg = command
        .iter()
        .find_map(|a| a.strip_prefix("--config.custom-plugin-monitor="))
        .expect("the plugin monitor flag");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |name: &str| {
        mounts.iter().find(|m| m["name"] == name).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let volume = |name: &str| {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        config_arg,
        format!("{}/npd-gpu-doctor.json", mount_of("config"))
    );
    assert_eq!(
        volume("config")["configMap"]["name"],
        cm["metadata"]["name"]
    );
    assert_eq!(
        mount_of("gpu-doctor"),
        npd_config()["rules"][0]["path"].as_str().unwrap(),
        "the binary is where the rule runs it"
    );
    assert_eq!(volume("gpu-doctor")["hostPath"]["type"], "File");

    let job = &yaml_documents("deploy/kubernetes/fleet-indexed-job.yaml")[0];
    assert_eq!(
        (job["kind"].as_str(), job["spec"]["completionMode"].as_str()),
        (Some("Job"), Some("Indexed"))
    );
    assert_eq!(job["spec"]["completions"], job["spec"]["parallelism"]);
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    assert!(args.contains("-o \"/reports/${NODE_NAME}.json\""), "{args}");
}

#[test]
fn the_slurm_scripts_parse_and_the_nhc_line_runs_gpu_doctor() {
    for script in [
        "gpu-doctor-healthcheck.sh",
        "gpu-doctor-prolog.sh",
        "gpu-doctor-epilog.sh",
    ] {
        let path = root().join("deploy/slurm").join(script);
        let ok = Command::new("sh").arg("-n").arg(&path).status().unwrap();
        assert!(ok.success(), "{script}: sh -n");
        let out = Command::new("shellcheck")
            .current_dir(root().join("deploy/slurm"))
            .args(["-x", "-s", "sh", script])
            .output()
            .expect("shellcheck runs (.ci/run installs it)");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let conf = std::fs::read_to_string(root().join("deploy/slurm/nhc.conf")).unwrap();
    let line = conf
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    // nhc.conf: TARGET || check_cmd_status [-t TIMEOUT] [-r RETVAL] COMMAND…
    let (target, check) = line.split_once(" || ").expect("TARGET || CHECK");
    assert_eq!(target.trim(), "*");
    let words: Vec<&str> = check.split_whitespace().collect();
    assert_eq!(words[0], "check_cmd_status");
    assert_eq!((words[1], words[3]), ("-t", "-r"));
    let timeout: u32 = words[2].parse().unwrap();
    assert!((5..=60).contains(&timeout));
    let expect_rc: i32 = words[4].parse().unwrap();
    let command = &words[5..];
    assert!(command[0].ends_with("/gpu-doctor"), "{command:?}");
    let health = command.iter().position(|w| *w == "health").unwrap();
    // The command NHC runs, on replayed machines: a degraded one fails the check.
    let s = snapshot();
    let run = |faults: &[&str], policy: &str| {
        let mut args: Vec<String> = command[1..health].iter().map(|w| w.to_string()).collect();
        args.extend(["--replay".to_string(), s.clone()]);
        for f in faults {
            args.extend(["--fault".to_string(), f.to_string()]);
        }
        args.extend(command[health..].iter().map(|w| w.replace("drain", policy)));
        let args: Vec<String> = args
            .into_iter()
            .map(|a| if a == "8" { "2".into() } else { a })
            .collect();
        doctor()
            .args(&args)
            .output()
            .unwrap()
            .status
            .code()
            .unwrap()
    };
    assert_eq!(
        run(&[], "pass"),
        expect_rc,
        "healthy (the replay has no CUDA: --on-error pass)"
    );
    assert_ne!(
        run(&["gpu-lost@gpu1"], "pass"),
        expect_rc,
        "a lost GPU fails NHC's check"
    );
    assert_ne!(
        run(&[], "drain"),
        expect_rc,
        "as shipped (drain), a node where the GPU check cannot run fails"
    );
}
