//! `trace ctx` on the real report recorded on the device machine
//! (tests/fixtures/h100-trace-ctx.json): its analysis reproduces the recorded verdict, and
//! `--from` with `--chrome-trace` exports a valid Chrome trace of its timeline. The command
//! line and `--from` on altered copies are tested through the binary in tests/trace_ctx.rs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::analyze::trace_ctx::{self as a, TraceData};
use crate::context::RunOptions;
use crate::facts::trace::{BOUND, PINNED, UNBOUND};
use crate::render::chrome_trace;
use crate::report::{Report, Status};

fn fixture_path() -> PathBuf {
    super::fixtures::fixtures_dir().join("h100-trace-ctx.json")
}

/// The recorded report and its trace data.
fn fixture() -> (Report, TraceData) {
    let r = crate::output::read_report(&fixture_path()).expect("fixture parses");
    let d: TraceData = serde_json::from_value(r.data.clone()).expect("fixture holds trace data");
    (r, d)
}

#[test]
fn fixture_reanalysis_reproduces_the_recorded_verdict() {
    let (r, d) = fixture();
    assert_eq!(r.status, Status::Pass, "the recorded run passed");
    // the saved summary is what summarize computes from the saved timeline
    // (times compared to the nanosecond: the recording may carry float noise in the last bits)
    let ns = |mut v: Vec<a::ThreadSummary>| {
        for t in &mut v {
            t.first_us = (t.first_us * 1000.0).round() / 1000.0;
            t.last_us = (t.last_us * 1000.0).round() / 1000.0;
        }
        v
    };
    assert_eq!(
        ns(a::summarize(&d.timeline, &d.threads)),
        ns(d.summary.clone())
    );
    let mut recorded: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
    let again = a::findings(&d);
    let mut now: Vec<&str> = again.iter().map(|f| f.code.as_str()).collect();
    recorded.sort();
    now.sort();
    assert_eq!(now, recorded);
    // thread-hop: the unbound tasks off the creator failed, the fixed variants did not
    let h = d.thread_hop.as_ref().expect("thread-hop ran");
    let (tasks, failed, threads) = a::hop_outcome(&d.timeline, UNBOUND);
    assert_eq!(tasks, h.tasks);
    assert_eq!(
        failed,
        (0..h.tasks).filter(|k| k % h.threads != 0).count() as u32
    );
    assert_eq!(threads.len() as u32, h.threads - 1);
    assert!(!threads.contains(&h.creator_tid));
    assert_eq!(a::hop_outcome(&d.timeline, BOUND).1, 0);
    assert_eq!(a::hop_outcome(&d.timeline, PINNED).1, 0);
    // every thread's modelled context stack is empty at the end
    assert!(
        d.summary.iter().all(|s| s.final_stack_depth == 0),
        "{:#?}",
        d.summary
    );
}

#[test]
fn fixture_from_exports_a_valid_chrome_trace() {
    let (_, d) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let opts = RunOptions {
        devices: vec![],
        quiet: true,
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    // What `gpu-doctor trace ctx --from FIXTURE --chrome-trace t.json` runs.
    let r = crate::runner::execute_named(
        "trace ctx",
        serde_json::json!({ "chrome_trace": out }),
        Some(&fixture_path()),
        &opts,
    )
    .unwrap();
    assert_eq!(r.status, Status::Pass);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let st = chrome_trace::validate(&doc).unwrap();
    let tids: BTreeSet<u64> = d.timeline.iter().map(|e| e.thread).collect();
    assert_eq!(st.threads, tids);
    assert_eq!(
        st.instants,
        d.timeline.iter().filter(|e| e.failed()).count()
    );
    assert_eq!(doc, chrome_trace::export(&d));
}
