//! A pynvml monitor (tests/nvml/pynvml_monitor.py) on the replayed machine, directly and under
//! the interposer: each fault shows at its time. Skipped with a note where python3 cannot
//! `import pynvml` (CI installs it: `pip install nvidia-ml-py`).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Machine, repo, run, synthetic};
use crate::proto::event::Event;

fn have_pynvml() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pynvml"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: python3 cannot import pynvml (pip install nvidia-ml-py)");
    }
    ok
}

const FAULTS: &str =
    "pcie-width=8@gpu0;xid=79@gpu0+1s;gpu-lost@gpu1+2s;throttle=power@gpu1;pcie-replays=10/s@gpu0";

fn monitor(m: &Machine) -> Vec<Value> {
    let mut cmd = m.command("python3");
    cmd.arg(repo().join("tests/nvml/pynvml_monitor.py"))
        .arg("3");
    let out = run(&mut cmd, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    out.json()
}

/// When the copy that applies the faults loaded into the monitor's process (CLOCK_MONOTONIC,
/// seconds): delays count from there. python3 may be a launcher script that execs the
/// interpreter: the same pid, a start event per program image, the interpreter's last.
fn loaded(m: &Machine, lines: &[Value]) -> f64 {
    let pid = lines[0]["pid"].as_u64().expect("the monitor says its pid");
    let t_us = m
        .events()
        .into_iter()
        .rev()
        .find_map(|e| match e.event {
            Event::Start {
                faults, loaded_us, ..
            } if !faults.is_empty() && e.pid as u64 == pid => Some(loaded_us),
            _ => None,
        })
        .expect("a start event with the faults in the monitor's process");
    t_us as f64 / 1e6
}

fn check(lines: &[Value], t0: f64) {
    // Seconds since the library loaded, taken before each reading (after each event).
    let t = |l: &Value| l["mono"].as_f64().unwrap() - t0;
    let gpu = |g: u64| {
        lines
            .iter()
            .filter(move |l| l["gpu"] == g && l.get("xid").is_none())
    };
    assert_eq!(lines[0]["count"], 2);
    assert!(gpu(0).all(|l| l["width"] == 8), "gpu0 x8 from the start");
    assert!(
        gpu(1)
            .filter(|l| l.get("width").is_some())
            .all(|l| l["width"] == 16)
    );
    assert!(
        gpu(1)
            .filter(|l| l.get("reasons").is_some())
            .all(|l| l["reasons"].as_u64().unwrap() & 0x84 == 0x84)
    );
    let xids: Vec<&Value> = lines.iter().filter(|l| l.get("xid").is_some()).collect();
    assert_eq!(xids.len(), 1, "{xids:?}");
    assert_eq!(
        (xids[0]["xid"].as_u64(), xids[0]["gpu"].as_u64()),
        (Some(79), Some(0))
    );
    assert_eq!(xids[0]["event_type"], 8);
    assert!(
        (1.0..1.8).contains(&t(xids[0])),
        "XID 79 at 1 s, came at {}",
        t(xids[0])
    );
    let lost: Vec<f64> = gpu(1)
        .filter(|l| l["lookup"] == "error 15")
        .map(t)
        .collect();
    let fine: Vec<f64> = gpu(1).filter(|l| l.get("width").is_some()).map(t).collect();
    assert!(!lost.is_empty(), "GPU 1 is lost after 2 s");
    assert!(lost.iter().all(|x| *x >= 1.99), "not before 2 s: {lost:?}");
    assert!(fine.iter().all(|x| *x < 2.0), "answers until 2 s: {fine:?}");
    let replays: Vec<(f64, u64)> = gpu(0)
        .map(|l| (t(l), l["replays"].as_u64().unwrap()))
        .collect();
    let (t_last, last) = *replays.last().unwrap();
    assert!(
        last as f64 >= (t_last - 0.2) * 10.0,
        "10 replays/s: {last} at {t_last}"
    );
    assert!(
        replays.windows(2).all(|w| w[0].1 <= w[1].1),
        "a counter only grows"
    );
}

#[test]
fn a_pynvml_monitor_sees_each_fault_at_its_time_on_a_replay() {
    if !have_pynvml() {
        return;
    }
    let m = Machine::replay(&synthetic()).faults(FAULTS);
    let lines = monitor(&m);
    check(&lines, loaded(&m, &lines));
}

#[test]
fn a_pynvml_monitor_sees_each_fault_at_its_time_under_the_interposer() {
    if !have_pynvml() {
        return;
    }
    let m = Machine::replay(&synthetic()).faults(FAULTS).interposed();
    let lines = monitor(&m);
    check(&lines, loaded(&m, &lines));
}
