//! A pynvml monitor (tests/nvml/pynvml_monitor.py) on the replayed machine, directly and under
//! the interposer: each fault shows at its time. Skipped with a note where python3 cannot
//! `import pynvml` (CI installs it: `pip install nvidia-ml-py`).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Machine, repo, run, synthetic};

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

fn check(lines: &[Value]) {
    let t = |l: &Value| l["t"].as_f64().unwrap();
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
    // Delays count from the library's load: at interpreter start when preloaded, at
    // nvmlInit when loaded as libnvidia-ml; the monitor's clock starts after its imports.
    assert!(
        (0.5..1.8).contains(&t(xids[0])),
        "XID 79 at 1 s, came at {}",
        t(xids[0])
    );
    let lost: Vec<f64> = gpu(1)
        .filter(|l| l["lookup"] == "error 15")
        .map(t)
        .collect();
    let fine: Vec<f64> = gpu(1).filter(|l| l.get("width").is_some()).map(t).collect();
    assert!(!lost.is_empty(), "GPU 1 is lost after 2 s");
    assert!(lost.iter().all(|x| *x >= 1.5), "not before 2 s: {lost:?}");
    assert!(
        fine.iter().all(|x| *x < 2.05),
        "answers until 2 s: {fine:?}"
    );
    let replays: Vec<(f64, u64)> = gpu(0)
        .map(|l| (t(l), l["replays"].as_u64().unwrap()))
        .collect();
    let (t_last, last) = *replays.last().unwrap();
    assert!(
        last as f64 >= (t_last - 0.3) * 10.0,
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
    check(&monitor(&m));
}

#[test]
fn a_pynvml_monitor_sees_each_fault_at_its_time_under_the_interposer() {
    if !have_pynvml() {
        return;
    }
    let m = Machine::replay(&synthetic()).faults(FAULTS).interposed();
    check(&monitor(&m));
}
