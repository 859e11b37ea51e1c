//! `gpu-doctor fleet` on fleets made from the real CI suite report by tests/fixtures/fleet.py
//! (hostnames, and every metric spread as far as real reruns of the same box moved it): 64
//! nodes with three planted outliers give exactly those three, for the right reasons; 1,000
//! healthy nodes give none.

mod common;

use std::path::Path;
use std::process::Command;

use common::{doctor, repo_arg};
use serde_json::Value;

/// Writes a fleet into `dir` and returns the planted outliers (node, reason) it printed.
fn make_fleet(dir: &Path, nodes: usize, outliers: bool) -> Vec<(String, String)> {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_arg("tests/fixtures/fleet.py"))
        .arg(dir)
        .args(["--nodes", &nodes.to_string()]);
    if outliers {
        cmd.arg("--outliers");
    }
    let out = cmd.output().expect("python3 runs tests/fixtures/fleet.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, r) = l.split_once('\t').unwrap();
            (n.to_string(), r.to_string())
        })
        .collect()
}

fn fleet(args: &[&str]) -> (i32, String) {
    let out = doctor().arg("fleet").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn three_planted_outliers_among_64_nodes_are_exactly_the_three_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let planted = make_fleet(dir.path(), 64, true);
    assert_eq!(planted.len(), 3);
    let (code, out) = fleet(&[dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "a node is flagged: exit 1\n{out}");
    let f: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(f["nodes"], 64);
    assert_eq!(
        f["groups"].as_array().unwrap().len(),
        1,
        "one model, count, driver, topology"
    );
    let flagged = f["flagged"].as_array().unwrap();
    let names: Vec<&str> = flagged
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["node-033", "node-050", "node-017"],
        "exactly the planted ones, worst first"
    );
    for n in flagged {
        assert_eq!(
            n["flags"].as_array().unwrap().len(),
            1,
            "one reason each: {n}"
        );
    }
    let reason = |i: usize| &flagged[i]["flags"][0];
    assert_eq!(reason(0)["kind"], "finding");
    assert_eq!(
        (reason(0)["code"].as_str(), reason(0)["device"].as_u64()),
        (Some("PCIE_WIDTH_DEGRADED"), Some(0))
    );
    assert_eq!(reason(1)["kind"], "missing_scenario");
    assert_eq!(
        (
            reason(1)["scenario"].as_str(),
            reason(1)["peers_ran"].as_u64()
        ),
        (Some("bandwidth"), Some(63))
    );
    let o = reason(2);
    assert_eq!(
        (o["kind"].as_str(), o["metric"].as_str()),
        (Some("outlier"), Some("bandwidth/h2d_pinned_gbps"))
    );
    let (value, median) = (o["value"].as_f64().unwrap(), o["median"].as_f64().unwrap());
    assert!(
        (40.0..43.0).contains(&value) && (54.0..56.0).contains(&median),
        "41 where the peers do 55: {o}"
    );
    assert!((0.22..0.28).contains(&o["gap"].as_f64().unwrap()), "{o}");

    // The table says the same, worst first, what and by how much.
    let (code, table) = fleet(&[dir.path().to_str().unwrap(), "--no-color"]);
    assert_eq!(code, 1);
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("node-")).collect();
    assert!(
        rows[0].contains("node-033") && rows[0].contains("PCIE_WIDTH_DEGRADED gpu0"),
        "{table}"
    );
    assert!(
        rows[1].contains("missing bandwidth")
            && rows[2].contains("h2d_pinned_gbps")
            && rows[2].contains("vs median 5"),
        "{table}"
    );
    let (_, md) = fleet(&[dir.path().to_str().unwrap(), "--format", "markdown"]);
    assert!(
        md.contains("| node-017 |") && md.starts_with("### 64 node(s)"),
        "{md}"
    );
}

#[test]
fn a_thousand_healthy_nodes_flag_none() {
    let dir = tempfile::tempdir().unwrap();
    make_fleet(dir.path(), 1000, false);
    let (code, out) = fleet(&[dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{}", &out[..out.len().min(3000)]);
    let f: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(f["nodes"], 1000);
    assert!(f["flagged"].as_array().unwrap().is_empty());
    assert!(
        f["groups"][0]["medians"]["bandwidth/h2d_pinned_gbps"]
            .as_f64()
            .unwrap()
            > 50.0
    );
}

#[test]
fn bad_inputs_say_which_file() {
    let dir = tempfile::tempdir().unwrap();
    make_fleet(dir.path(), 6, false);
    std::fs::write(
        dir.path().join("node-broken.json"),
        "{\"schema_version\": 1, \"tool\":",
    )
    .unwrap();
    let (code, out) = fleet(&[dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "an unreadable report is flagged: {out}");
    let f: Value = serde_json::from_str(&out).unwrap();
    let n = &f["flagged"][0];
    assert_eq!(
        (n["node"].as_str(), n["flags"][0]["kind"].as_str()),
        (Some("node-broken"), Some("unreadable"))
    );
    assert!(
        n["flags"][0]["error"]
            .as_str()
            .unwrap()
            .contains("node-broken.json"),
        "{n}"
    );
    let (code, out) = fleet(&["/nonexistent/reports"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("/nonexistent/reports"), "{out}");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(fleet(&[empty.path().to_str().unwrap()]).0, 2);
}

#[test]
fn the_output_never_overwrites_a_report_and_a_rerun_skips_its_own() {
    let dir = tempfile::tempdir().unwrap();
    make_fleet(dir.path(), 6, false);
    let first = dir.path().join("node-001.json");
    let before = std::fs::read(&first).unwrap();
    let (code, out) = fleet(&[first.to_str().unwrap(), "-o", first.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is an input"), "{out}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "the report is intact"
    );
    // The fleet report written into the folder is not read as a node on the next run.
    let own = dir.path().join("fleet.json");
    for _ in 0..2 {
        let (code, out) = fleet(&[dir.path().to_str().unwrap(), "-o", own.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("unreadable"), "{out}");
    }
}
