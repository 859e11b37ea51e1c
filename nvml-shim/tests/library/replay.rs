//! Replay: the library as libnvidia-ml, serving tests/nvml/synthetic-2gpu.nvml.json.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Machine, c_client, child, run, synthetic};
use crate::proto::event::{Event, Mode};
use crate::proto::snapshot::{Answer, Snapshot};

const LIMIT: Duration = Duration::from_secs(60);

fn facts(m: &Machine) -> Value {
    let out = run(&mut child(m, "child::nvml_wrapper_facts"), LIMIT);
    out.tagged("FACTS")
}

#[test]
fn nvml_wrapper_reads_the_replayed_machine() {
    let m = Machine::replay(&synthetic());
    let f = facts(&m);
    assert_eq!(f["driver"], "580.159.04");
    assert_eq!(f["cuda"], 13000);
    assert_eq!(f["count"], 2);
    let g0 = &f["gpus"][0];
    assert_eq!(g0["name"], "NVIDIA H200");
    assert_eq!(g0["bus"], "00000000:18:00.0");
    assert_eq!(g0["index_back"], 0);
    assert_eq!(
        (g0["width"].clone(), g0["gen"].clone()),
        (json!(16), json!(5))
    );
    assert_eq!(g0["reasons"], 1, "idle");
    assert_eq!(g0["memory_total"], 150754820096u64);
    assert_eq!(g0["remapped"], json!([0, 0, 0, 0]));
    assert_eq!(g0["processes"], 0);
    assert_eq!(g0["recovery"], "U32(0)");
    assert_eq!(g0["links"], json!(vec![true; 18]));
    assert_eq!(f["pair"]["ancestor"], "System");
    assert_eq!(f["pair"]["p2p_read"], "Ok");
    assert_eq!(f["by_uuid"], 1);
    assert_eq!(
        f["by_bus"], 1,
        "a 4-digit domain, lower case, finds the GPU"
    );
    let starts = m.starts();
    assert_eq!(starts, vec![(Mode::Replay, vec![])]);
}

#[test]
fn a_query_the_snapshot_lacks_answers_not_supported_and_is_reported() {
    let m = Machine::replay(&synthetic());
    let f = facts(&m);
    assert_eq!(f["gpus"][0]["decoder"], "error: NotSupported");
    let missing: Vec<(String, Option<u32>)> = m
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Missing { key, gpu, .. } => Some((key, gpu)),
            _ => None,
        })
        .collect();
    assert!(
        missing.contains(&("nvmlDeviceGetDecoderUtilization".into(), Some(0))),
        "{missing:?}"
    );
    assert_eq!(
        missing
            .iter()
            .filter(|(k, g)| k == "nvmlDeviceGetDecoderUtilization" && *g == Some(1))
            .count(),
        1,
        "once per key and GPU"
    );
}

#[test]
fn faults_change_what_nvml_wrapper_reads_and_are_reported() {
    let m = Machine::replay(&synthetic()).faults(
        "pcie-width=8@gpu0;pcie-gen=3@gpu0;nvlink-down=2,5@gpu1;throttle=thermal;temperature=95@gpu1;\
         ecc-uncorrectable=4;row-remap=failed@gpu1;recovery-action=drain-and-reset@gpu0;memory-used=70GiB@gpu0",
    );
    let f = facts(&m);
    let (g0, g1) = (&f["gpus"][0], &f["gpus"][1]);
    assert_eq!(
        (g0["width"].clone(), g0["gen"].clone()),
        (json!(8), json!(3))
    );
    assert_eq!(
        g0["max_width"], 16,
        "the maximum stays: the link is degraded"
    );
    assert_eq!(g1["width"], 16, "@gpu0 only");
    let mut links = vec![json!(true); 18];
    links[2] = json!(false);
    links[5] = json!(false);
    assert_eq!(g1["links"], json!(links));
    assert_eq!(g0["links"], json!(vec![true; 18]));
    assert_eq!(g0["reasons"], 0x61, "thermal bits added to idle");
    assert_eq!(g1["temperature"], 95);
    assert_eq!(g0["temperature"], 31);
    assert_eq!(g1["ecc_unc_volatile"], 4);
    assert_eq!(g1["ecc_unc_aggregate"], 4);
    assert_eq!(g1["remapped"], json!([0, 1, 0, 1]));
    assert_eq!(g0["recovery"], "U32(4)");
    assert_eq!(g0["memory_used"], 70u64 << 30);
    let delivered = m.delivered();
    for (spec, gpu, call) in [
        (
            "pcie-width=8@gpu0",
            Some(0),
            "nvmlDeviceGetCurrPcieLinkWidth",
        ),
        ("nvlink-down=2,5@gpu1", Some(1), "nvmlDeviceGetNvLinkState"),
        (
            "throttle=thermal",
            Some(1),
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ),
        (
            "row-remap=failed@gpu1",
            Some(1),
            "nvmlDeviceGetRemappedRows",
        ),
        (
            "recovery-action=drain-and-reset@gpu0",
            Some(0),
            "nvmlDeviceGetFieldValues",
        ),
        (
            "memory-used=70GiB@gpu0",
            Some(0),
            "nvmlDeviceGetMemoryInfo_v2",
        ),
    ] {
        assert!(
            delivered.contains(&(spec.into(), gpu, call.into())),
            "{spec} on {gpu:?} through {call}: {delivered:?}"
        );
    }
    let reads = m
        .events()
        .into_iter()
        .find_map(|e| match e.event {
            Event::Stats { reads, .. } => Some(reads),
            _ => None,
        })
        .expect("stats at exit");
    assert_eq!(reads.len(), 9);
    assert!(
        reads.iter().all(|n| *n > 0),
        "every fault was read: {reads:?}"
    );
}

#[test]
fn a_lost_gpu_answers_gpu_is_lost_to_every_call_and_lookup() {
    let m = Machine::replay(&synthetic()).faults("gpu-lost@gpu1");
    let f = facts(&m);
    assert_eq!(f["gpus"][1]["lookup"], "GpuLost");
    assert_eq!(f["gpus"][0]["name"], "NVIDIA H200", "the other GPU answers");
    assert_eq!(f["by_uuid"], "error: GpuLost");
    assert_eq!(f["count"], 2, "a lost GPU is still counted");
    let Some(client) = c_client() else { return };
    let out = run(m.command(client).arg("info"), LIMIT);
    let lines = out.json();
    assert_eq!(lines[1]["lookup_rc"], 15);
    assert_eq!(lines[2]["serial_lookup_rc"], 15, "by serial too");
}

#[test]
fn a_fault_after_n_calls_starts_on_call_n_plus_1() {
    let Some(client) = c_client() else { return };
    // The client's calls: nvmlInit_v2 (1), count (2), two handle lookups (3, 4), then per GPU
    // name, width, … (5, 6, …): the width of GPU 0 is call 6.
    let m = Machine::replay(&synthetic()).faults("pcie-width=4+5calls");
    let out = run(m.command(client).arg("info"), LIMIT);
    let lines = out.json();
    assert_eq!(lines[0]["width"], 4);
    let m = Machine::replay(&synthetic()).faults("pcie-width=4+6calls");
    let out = run(m.command(client).arg("info"), LIMIT);
    let lines = out.json();
    assert_eq!(lines[0]["width"], 16, "call 6 is still clean");
    assert_eq!(lines[1]["width"], 4);
    let active: Vec<String> = m
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Active { spec, call, .. } => Some(format!("{spec} {call}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        active,
        vec!["pcie-width=4+6calls nvmlDeviceGetCurrPcieLinkWidth"],
        "noticed by the first call it can change"
    );
}

#[test]
fn xid_events_arrive_at_their_time_through_event_sets() {
    let Some(client) = c_client() else { return };
    let m = Machine::replay(&synthetic()).faults("xid=79@gpu0+400ms;xid=48+4calls");
    let out = run(m.command(client).args(["wait-xid", "1200"]), LIMIT);
    let lines = out.json();
    let events: Vec<&Value> = lines.iter().filter(|l| l.get("xid").is_some()).collect();
    assert_eq!(events.len(), 3, "{}", out.stdout);
    assert_eq!(
        (events[0]["xid"].clone(), events[0]["gpu"].clone()),
        (json!(48), json!(0))
    );
    assert_eq!(
        (events[1]["xid"].clone(), events[1]["gpu"].clone()),
        (json!(48), json!(1))
    );
    assert!(events[1]["t"].as_f64().unwrap() < 0.3, "48 is due at once");
    assert_eq!(
        (events[2]["xid"].clone(), events[2]["gpu"].clone()),
        (json!(79), json!(0))
    );
    let t79 = events[2]["t"].as_f64().unwrap();
    assert!(
        (0.3..1.0).contains(&t79),
        "79 comes at 400 ms, came at {t79}"
    );
    assert!(
        events.iter().all(|e| e["event_type"] == 8),
        "XidCriticalError"
    );
    assert_eq!(lines.last().unwrap()["wait_rc"], 10, "then a timeout");
}

#[test]
fn a_snapshot_of_a_replay_records_the_same_answers() {
    let m = Machine::replay(&synthetic()).faults("pcie-width=8");
    let out_path = m.dir.path().join("again.nvml.json");
    let out = run(
        child(&m, "child::record_snapshot").env("NVML_SHIM_TEST_OUT", &out_path),
        LIMIT,
    );
    assert_eq!(out.tagged("SNAPSHOT")["rc"], 0, "{}", out.stderr);
    let again = Snapshot::read(&out_path).expect("the recorder writes a valid snapshot");
    let source = Snapshot::read(&synthetic()).unwrap();
    assert_eq!(again.format_version, 1);
    assert!(
        again.recorded.synthetic,
        "a replay of a synthetic snapshot stays synthetic"
    );
    assert_eq!(again.gpu_count(), 2);
    assert_eq!(again.pairs.len(), 2, "both orders");
    let not_supported = Answer::error(3);
    for (i, d) in again.devices.iter().enumerate() {
        for (k, a) in &d.answers {
            match source.device_answer(i as u32, k) {
                Some(want) => assert_eq!(a, want, "GPU {i} {k} (faults are not recorded)"),
                None => assert_eq!(a, &not_supported, "GPU {i} {k}: not in the source"),
            }
        }
        assert!(d.answers.len() > 400, "every query, every parameter");
    }
    for (k, a) in &source.pairs[0].answers {
        assert_eq!(again.pair_answers(1, 0).unwrap().get(k), Some(a), "{k}");
    }
    assert_eq!(again.system, source.system);
    assert!(
        !m.events()
            .iter()
            .any(|e| matches!(e.event, Event::Missing { .. } | Event::Fault { .. })),
        "recording reports nothing missing and applies no fault"
    );
}

#[test]
fn an_unreadable_snapshot_fails_nvml_init_with_one_line_on_stderr() {
    let Some(client) = c_client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2.nvml.json");
    std::fs::write(&v2, r#"{"format_version": 2, "devices": []}"#).unwrap();
    for (snapshot, says) in [
        (dir.path().join("absent.json"), "cannot read the snapshot"),
        (v2, "format_version 2 is not read here"),
    ] {
        let m = Machine::replay(&snapshot);
        let out = run(m.command(client).arg("info"), LIMIT);
        assert_eq!(out.json()[0]["init"], 12, "NVML_ERROR_LIBRARY_NOT_FOUND");
        assert_eq!(out.code, Some(1));
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.starts_with("gpu-doctor-nvml: "),
            "{}",
            out.stderr
        );
        let error = m.events().into_iter().find_map(|e| match e.event {
            Event::Start { config_error, .. } => config_error,
            _ => None,
        });
        assert!(error.unwrap_or_default().contains(says));
    }
}

#[test]
fn bad_faults_are_ignored_with_one_line_and_the_program_runs_on() {
    let Some(client) = c_client() else { return };
    let m = Machine::replay(&synthetic()).faults("pcie-width=7");
    let out = run(m.command(client).arg("info"), LIMIT);
    assert_eq!(out.code, Some(0));
    assert_eq!(out.json()[0]["width"], 16, "no fault applied");
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(out.stderr.contains("1|2|4|8|12|16|32"), "{}", out.stderr);
    let error = m.events().into_iter().find_map(|e| match e.event {
        Event::Start { config_error, .. } => config_error,
        _ => None,
    });
    assert!(error.unwrap().contains("GPU_DOCTOR_NVML_FAULTS"));
}

#[test]
fn without_a_snapshot_or_a_real_library_nvml_init_says_library_not_found() {
    let Some(client) = c_client() else { return };
    // A copy named libnvidia-ml.so.1 without a snapshot forwards to libnvidia-ml.so.1: itself.
    let m = Machine::replay(&synthetic());
    let out = run(
        m.command(client)
            .env_remove(crate::proto::ENV_REPLAY)
            .arg("info"),
        LIMIT,
    );
    assert_eq!(out.json()[0]["init"], 12, "NVML_ERROR_LIBRARY_NOT_FOUND");
    assert!(
        out.stderr.contains("is this library itself"),
        "{}",
        out.stderr
    );
    assert_eq!(m.starts(), vec![(Mode::Forward, vec![])]);
}
