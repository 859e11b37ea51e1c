//! The CI recipe (deploy/github/gpu-doctor.yml, embedded in README): parsed by a real YAML
//! parser (python3 with PyYAML: Debian python3-yaml), its structure checked, and its shell
//! steps run here against real reports: no baseline yet, a rerun, a regression, and the
//! baseline set kept to the last KEEP reports.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, root, yaml_documents};
use serde_json::Value;

const WORKFLOW: &str = "deploy/github/gpu-doctor.yml";

/// The workflow as JSON, parsed by PyYAML (YAML 1.1 reads the key `on` as true: put back).
fn workflow() -> Value {
    let mut w = yaml_documents(WORKFLOW).swap_remove(0);
    let map = w.as_object_mut().expect("a mapping");
    if let Some(on) = map.remove("true") {
        map.insert("on".into(), on);
    }
    w
}

fn job(w: &Value) -> &Value {
    let jobs = w["jobs"].as_object().expect("jobs");
    assert_eq!(jobs.len(), 1, "one job");
    jobs.values().next().unwrap()
}

fn steps(w: &Value) -> &Vec<Value> {
    job(w)["steps"].as_array().expect("steps")
}

fn step<'a>(w: &'a Value, name: &str) -> &'a Value {
    steps(w)
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("step {name:?}"))
}

fn run_of<'a>(w: &'a Value, name: &str) -> &'a str {
    step(w, name)["run"].as_str().expect("a run step")
}

#[test]
fn the_job_runs_on_a_self_hosted_gpu_runner_and_reports_to_the_summary_and_junit() {
    let w = workflow();
    assert!(w["on"].is_object(), "triggers: {}", w["on"]);
    let labels: Vec<&str> = job(&w)["runs-on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"self-hosted") && labels.contains(&"gpu"),
        "{labels:?}"
    );
    let suite = step(&w, "Run the CI suite");
    assert!(
        suite["run"]
            .as_str()
            .unwrap()
            .contains("gpu-doctor run scenarios/ci.toml -o current.json")
    );
    assert_eq!(suite["continue-on-error"], true);
    // compare against the folder of baselines, markdown appended to the job summary
    let cmp = run_of(&w, "Compare with the baselines");
    assert!(
        cmp.lines().any(
            |l| l.contains("gpu-doctor compare \"$BASELINES\" current.json")
                && l.contains("--format markdown")
                && l.trim_end().ends_with(">> \"$GITHUB_STEP_SUMMARY\"")
        ),
        "{cmp}"
    );
    assert!(cmp.contains("--format junit > compare.xml"), "{cmp}");
    assert_eq!(step(&w, "Compare with the baselines")["if"], "always()");
    // the JUnit file is uploaded, whatever happened before
    let up = steps(&w)
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("an upload-artifact step");
    assert_eq!(up["if"], "always()");
    let paths: Vec<&str> = up["with"]["path"].as_str().unwrap().lines().collect();
    for p in ["current.json", "compare.json", "compare.xml"] {
        assert!(paths.contains(&p), "{paths:?}");
    }
    // a good run on main becomes a baseline; the set keeps the last KEEP reports
    let keep = step(&w, "Keep the report as a baseline");
    let cond = keep["if"].as_str().unwrap();
    assert!(
        cond.contains("refs/heads/main") && cond.contains("steps.compare.outcome == 'success'"),
        "{cond}"
    );
    assert!(
        job(&w)["env"]["KEEP"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 2
    );
    // the job fails last, on a failing suite
    assert_eq!(
        steps(&w).last().unwrap()["if"],
        "steps.suite.outcome != 'success'"
    );
}

#[test]
fn readme_embeds_the_workflow_file() {
    let file = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let recipe = readme
        .split("## CI recipe")
        .nth(1)
        .expect("README has a CI recipe");
    let block = recipe
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block");
    assert_eq!(block, file, "README's CI recipe differs from {WORKFLOW}");
}

/// Runs a step's script as GitHub runs `run:` (bash -e -o pipefail) in `dir`, with the
/// runner's variables and the built gpu-doctor first on PATH.
fn run_step(script: &str, dir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_steps_compare_with_the_baseline_set_and_keep_the_last_reports() {
    let w = workflow();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let summary = d.join("summary.md");
    let github_env = d.join("github_env");
    let tool_cache = d.join("tool-cache");
    let keep = job(&w)["env"]["KEEP"].as_str().unwrap().to_string();
    let base_env = [
        ("RUNNER_TOOL_CACHE", tool_cache.to_str().unwrap()),
        ("GITHUB_ENV", github_env.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ("RUNNER_NAME", "gpu-box-1"),
        ("GITHUB_RUN_ID", "4242"),
        ("KEEP", keep.as_str()),
    ];

    // Locate: a folder under the tool cache, exported for later steps.
    let (code, out) = run_step(run_of(&w, "Locate the baselines"), d, &base_env);
    assert_eq!(code, 0, "{out}");
    let exported = std::fs::read_to_string(&github_env).unwrap();
    let baselines = exported
        .trim()
        .strip_prefix("BASELINES=")
        .unwrap_or_else(|| panic!("{exported}"))
        .to_string();
    assert!(Path::new(&baselines).is_dir());
    let mut env = base_env.to_vec();
    env.push(("BASELINES", baselines.as_str()));
    let compare = run_of(&w, "Compare with the baselines");
    // The compare step on the fixture `name` as current.json: (exit code, output, summary).
    let compare_current = |name: &str| {
        std::fs::copy(fixture(name), d.join("current.json")).unwrap();
        std::fs::write(&summary, "").unwrap();
        let (code, out) = run_step(compare, d, &env);
        (code, out, std::fs::read_to_string(&summary).unwrap())
    };

    // First run: no baseline yet.
    let (code, out, md) = compare_current("h100-suite-ci.json");
    assert_eq!(code, 0, "{out}");
    assert!(md.contains("no baseline yet"));

    // Keep it; a rerun of the same box compares clean.
    let keep_script = run_of(&w, "Keep the report as a baseline");
    assert_eq!(run_step(keep_script, d, &env).0, 0);
    let (code, out, md) = compare_current("h100-suite-ci-derived-rerun.json");
    assert_eq!(code, 0, "{out}");
    assert!(
        md.starts_with("### ✅ gpu-doctor compare: no regression"),
        "{md}"
    );
    let xml = std::fs::read_to_string(d.join("compare.xml")).unwrap();
    assert!(
        xml.starts_with("<?xml") && !xml.contains("<failure"),
        "{xml}"
    );
    assert!(d.join("compare.json").is_file());

    // A real drop fails the step, with the regression in the summary and the JUnit file.
    let (code, out, md) = compare_current("h100-suite-ci-derived-h2d-pinned-10pct-lower.json");
    assert_eq!(code, 1, "{out}");
    assert!(
        md.starts_with("### ❌ gpu-doctor compare: REGRESSION"),
        "{md}"
    );
    assert!(md.contains("`h2d_pinned_gbps`"), "{md}");
    let xml = std::fs::read_to_string(d.join("compare.xml")).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("metric h2d_pinned_gbps"),
        "{xml}"
    );

    // The set keeps the last KEEP reports, the new one among them.
    for i in 0..6 {
        std::fs::copy(
            fixture("h100-suite-ci.json"),
            Path::new(&baselines).join(format!("20200101T00000{i}Z-{i}.json")),
        )
        .unwrap();
    }
    assert_eq!(run_step(keep_script, d, &env).0, 0);
    let mut kept: Vec<String> = std::fs::read_dir(&baselines)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), keep.parse::<usize>().unwrap(), "{kept:?}");
    assert!(kept.last().unwrap().ends_with("-4242.json"), "{kept:?}");
    assert!(!kept.contains(&"20200101T000000Z-0.json".to_string()));
}
