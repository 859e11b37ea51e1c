//! Verdicts of the fault-injection scenarios (`inject …`): facts + steps → findings and
//! metrics. Pure: `--from` re-runs them on a saved report (its `data.facts` and `steps`), which
//! is how the fixtures recorded on the GPU machine are tested.
//!
//! Step mismatches themselves become STEP_MISMATCH findings in `verdict::finalize`; here are
//! the findings that need more than one step, or facts (counts, timings, memory).

use crate::analyze::memory;
use crate::facts::faults::{
    CtxDestroyFacts, IllegalAddressFacts, OomFacts, StreamMisuseFacts, step_names,
};
use crate::facts::memory::TOLERANCE_BYTES;
use crate::report::{Analysis, Better, Finding, Metric, MetricKind, Severity, Step, codes};
use crate::units::format_bytes;

impl Analysis {
    fn metric(
        &mut self,
        name: &str,
        value: f64,
        unit: &str,
        better: Better,
        device: u32,
        kind: MetricKind,
    ) {
        self.metrics.insert(
            name.to_string(),
            Metric::new(value, unit, better).device(device).kind(kind),
        );
    }
    fn finding(&mut self, f: Finding) {
        self.findings.push(f);
    }
}

pub fn oom(f: &OomFacts, steps: &[Step]) -> Analysis {
    let mut a = Analysis::default();
    let d = f.device;
    a.metric(
        "allocatable_bytes",
        f.allocatable_bytes as f64,
        "bytes",
        Better::Higher,
        d,
        MetricKind::Exact,
    );
    a.metric(
        "free_before_bytes",
        f.free_before_bytes as f64,
        "bytes",
        Better::Higher,
        d,
        MetricKind::Exact,
    );
    if f.free_before_bytes > 0 {
        a.metric(
            "ratio",
            f.allocatable_bytes as f64 / f.free_before_bytes as f64,
            "ratio",
            Better::Higher,
            d,
            MetricKind::Exact,
        );
    }
    a.metric(
        "allocations",
        f.allocations as f64,
        "count",
        Better::Lower,
        d,
        MetricKind::Exact,
    );
    a.metric(
        "time_to_edge_ms",
        f.time_to_edge_ms,
        "ms",
        Better::Lower,
        d,
        MetricKind::SingleShot,
    );
    a.metric(
        "free_ms",
        f.free_ms,
        "ms",
        Better::Lower,
        d,
        MetricKind::SingleShot,
    );

    let failed: Vec<String> = steps
        .iter()
        .filter(|s| s.name.starts_with(step_names::AFTER_OOM) && !s.ok)
        .map(|s| format!("{} → {} ({})", s.call, s.observed.name, s.observed.code))
        .collect();
    if f.reached_oom && (!failed.is_empty() || f.proof_value_ok == Some(false)) {
        let what = if failed.is_empty() {
            "the kernel launched after OOM did not write its value".to_string()
        } else {
            failed.join(", ")
        };
        a.finding(
            Finding::new(
                Severity::Fail,
                codes::OOM_STICKY,
                format!("OOM is sticky on this driver: after OUT_OF_MEMORY (and freeing some memory) {what}"),
            )
            .device(d)
            .hint("CUDA documents OUT_OF_MEMORY as recoverable. Check the driver version against a known-good report; meanwhile a process that hits OOM must restart to be safe."),
        );
    }
    if f.fraction.is_none() && !f.reached_oom && f.stopped_by != "interrupted" {
        let why = match f.stopped_by.as_str() {
            "guard" => format!(
                "{} was allocated, within {} of the GPU's {} total, and the next allocation of the granularity would have gone past the total without OUT_OF_MEMORY having been answered",
                format_bytes(f.allocatable_bytes),
                format_bytes(f.granularity_bytes),
                format_bytes(f.total_bytes)
            ),
            "error" => {
                "an allocation failed with another error than OUT_OF_MEMORY (see the steps)".into()
            }
            other => format!("filling stopped ({other})"),
        };
        a.finding(
            Finding::new(
                Severity::Warn,
                codes::OOM_EDGE_NOT_REACHED,
                format!("the edge was not reached: {why}"),
            )
            .device(d)
            .hint(
                "Re-run; if it repeats, the allocator does not report OOM where CUDA documents it.",
            ),
        );
    }
    if f.fraction.is_none() && f.reached_oom && f.free_before_bytes > 0 {
        a.findings.extend(oom_edge(f));
    }
    if f.allocator == "async" && f.oom_surfaced_at.as_deref() == Some("sync") {
        a.finding(
            Finding::new(
                Severity::Info,
                codes::OOM_ASYNC_DEFERRED,
                "cuMemAllocAsync answered SUCCESS and OUT_OF_MEMORY surfaced at cuStreamSynchronize",
            )
            .device(d)
            .hint("Check the stream's errors after async allocations, not only the allocation call's result."),
        );
    }
    if let Some(p) = &f.pool {
        let tol = TOLERANCE_BYTES;
        // Free memory is every process's; what the pool reserves is ours alone.
        let others_moved = memory::others_moved(&f.memory);
        let not_returned = (!others_moved
            && p.free_after_trim_bytes
                .is_some_and(|after| after.saturating_add(tol) < f.free_before_bytes))
            || p.reserved_after_trim_bytes.is_some_and(|r| r > tol);
        if not_returned {
            a.finding(
                Finding::new(
                    Severity::Warn,
                    codes::POOL_TRIM_NO_EFFECT,
                    format!(
                        "after cuMemPoolTrimTo(0) the pool still reserves {} and {} is free (baseline {})",
                        p.reserved_after_trim_bytes.map(format_bytes).unwrap_or_else(|| "?".into()),
                        p.free_after_trim_bytes.map(format_bytes).unwrap_or_else(|| "?".into()),
                        format_bytes(f.free_before_bytes)
                    ),
                )
                .device(d)
                .hint("Memory freed with cuMemFreeAsync stays in the pool up to its release threshold; trim it (cudaMemPoolTrimTo) before handing the GPU to another program."),
            );
        }
    }
    a.findings.extend(memory::check(&f.memory, d));
    a
}

/// Fewer than this share of the free memory allocatable: OOM_ALLOCATABLE_LOW.
const MIN_ALLOCATABLE_RATIO: f64 = 0.90;

/// The OOM edge against the free memory: cuMemGetInfo's at the start of the fill or, when the
/// watch saw other processes change their memory during the fill, what was free during it
/// (the start's less the most they took meanwhile). Still low then: inconclusive, since a
/// neighbour may have taken more between two samples.
fn oom_edge(f: &OomFacts) -> Vec<Finding> {
    let d = f.device;
    let during = match (&f.memory.watch, f.fill_started_at_ms, f.fill_ended_at_ms) {
        (Some(w), Some(from), Some(to)) => Some(memory::during(w, from, to)),
        _ => None,
    };
    let ratio = |free: u64| f.allocatable_bytes as f64 / free.max(1) as f64;
    match during {
        Some(others) if !others.changes.is_empty() => {
            let free = f.free_before_bytes.saturating_sub(others.peak_growth_bytes);
            if ratio(free) >= MIN_ALLOCATABLE_RATIO {
                return vec![];
            }
            let dropped = f.memory.watch.as_ref().map_or(0, |w| w.changes_dropped);
            vec![
                Finding::new(
                    Severity::Warn,
                    codes::MEMORY_CHECK_INCONCLUSIVE,
                    format!(
                        "the OOM edge cannot be judged: {} could be allocated of the {} free at the start ({:.1}%), {} counting what other processes took during the fill, and other processes allocated or freed device memory during the fill: {}",
                        format_bytes(f.allocatable_bytes),
                        format_bytes(f.free_before_bytes),
                        ratio(f.free_before_bytes) * 100.0,
                        format_bytes(free),
                        memory::describe(&others.changes, dropped)
                    ),
                )
                .device(d)
                .hint("gpu-doctor's own processes are not counted. Re-run on an idle GPU to measure the edge."),
            ]
        }
        _ if ratio(f.free_before_bytes) < MIN_ALLOCATABLE_RATIO => vec![
            Finding::new(
                Severity::Warn,
                codes::OOM_ALLOCATABLE_LOW,
                format!(
                    "only {} of the {} cuMemGetInfo reported free could be allocated ({:.1}%)",
                    format_bytes(f.allocatable_bytes),
                    format_bytes(f.free_before_bytes),
                    ratio(f.free_before_bytes) * 100.0
                ),
            )
            .device(d)
            .hint("Another process may have allocated during the fill (see the processes), or memory is reserved or fragmented."),
        ],
        _ => vec![],
    }
}

pub fn ctx_destroy(f: &CtxDestroyFacts, steps: &[Step]) -> Analysis {
    let mut a = Analysis::default();
    let d = f.device;
    for v in &f.variants {
        a.metric(
            &format!("destroy_{}_ms", v.name.replace('-', "_")),
            v.destroy_ms,
            "ms",
            Better::Lower,
            d,
            MetricKind::SingleShot,
        );
        if !v.in_flight_at_destroy {
            a.finding(
                Finding::new(
                    Severity::Warn,
                    codes::KERNEL_NOT_IN_FLIGHT,
                    format!(
                        "{}: the {} ms kernel had finished before cuCtxDestroy, so destroying a context with work in flight was not exercised",
                        v.name, f.kernel_delay_ms
                    ),
                )
                .device(d)
                .hint("The GPU ran the kernel faster than its clock rate suggests; re-run, or report it."),
            );
        }
    }
    if let Some(p) = &f.primary {
        let refused = |c: &Option<crate::report::Code>| c.as_ref().is_some_and(|c| c.code != 0);
        if refused(&p.old_pointer_memcpy) || refused(&p.old_pointer_query) {
            let code = p
                .old_pointer_memcpy
                .as_ref()
                .or(p.old_pointer_query.as_ref())
                .map(|c| c.to_string())
                .unwrap_or_default();
            a.finding(
                Finding::new(
                    Severity::Info,
                    codes::PRIMARY_RESET_INVALIDATES,
                    format!(
                        "cuDevicePrimaryCtxReset freed the allocations of another holder of the primary context: its old pointer now answers {code}; its retained handle {}",
                        match &p.holder_alloc_after_reset {
                            Some(c) if c.code == 0 => "still allocates (the primary context is re-initialised on use)".to_string(),
                            Some(c) => format!("answers {c}"),
                            None => "was not tried".to_string(),
                        }
                    ),
                )
                .device(d)
                .hint("A library sharing the primary context must never call cudaDeviceReset / cuDevicePrimaryCtxReset: release its retain (cuDevicePrimaryCtxRelease) instead."),
            );
        }
    }
    if !f.recovery_ok {
        let failed: Vec<String> = steps
            .iter()
            .filter(|s| s.name.starts_with(step_names::RECOVERY) && !s.ok)
            .map(|s| format!("{} → {}", s.call, s.observed.name))
            .collect();
        a.finding(
            Finding::new(
                Severity::Fail,
                codes::RECOVERY_FAILED,
                format!(
                    "a fresh context did not work after the destroyed ones{}",
                    if failed.is_empty() {
                        ": the kernel's value did not read back".to_string()
                    } else {
                        format!(": {}", failed.join(", "))
                    }
                ),
            )
            .device(d)
            .hint("Destroying a context must not affect new ones; restart the process and check `gpu-doctor info` for GPU health."),
        );
    }
    a.findings.extend(memory::check(&f.memory, d));
    a
}

pub fn stream_misuse(f: &StreamMisuseFacts, _steps: &[Step]) -> Analysis {
    let mut a = Analysis::default();
    let d = f.device;
    if let Some(r) = &f.race {
        a.metric(
            "stale_reads",
            r.stale_without_event as f64,
            "count",
            Better::Lower,
            d,
            MetricKind::Exact,
        );
        a.metric(
            "stale_reads_with_event",
            r.stale_with_event as f64,
            "count",
            Better::Lower,
            d,
            MetricKind::Exact,
        );
        let fix = "Order the streams: cuEventRecord(ev, S1) after the kernel and cuStreamWaitEvent(S2, ev) before the copy (cudaEventRecord + cudaStreamWaitEvent; in PyTorch s2.wait_stream(s1) and tensor.record_stream(s2)).";
        if r.stale_without_event > 0 {
            a.finding(
                Finding::new(
                    Severity::Info,
                    codes::STALE_READS_WITHOUT_EVENT,
                    format!(
                        "unsafe pattern: a kernel writes a buffer on stream S1 and a copy on stream S2 reads it with no event between them: {} of {} copies read stale data{}",
                        r.stale_without_event,
                        r.ran_without_event,
                        r.example.as_deref().map(|e| format!(" (e.g. {e})")).unwrap_or_default()
                    ),
                )
                .device(d)
                .hint(fix),
            );
        }
        if r.stale_with_event > 0 {
            a.finding(
                Finding::new(
                    Severity::Fail,
                    codes::STALE_READS_WITH_EVENT,
                    format!(
                        "{} of {} copies read stale data although S2 waited on an event recorded on S1 after the kernel",
                        r.stale_with_event, r.ran_with_event
                    ),
                )
                .device(d)
                .hint("Event ordering between streams is broken on this driver or GPU: compare with a known-good report and check `gpu-doctor info`."),
            );
        }
    }
    if let Some(s) = &f.default_stream {
        a.metric(
            "legacy_wait_ms",
            s.legacy_wait_ms,
            "ms",
            Better::Lower,
            d,
            MetricKind::SingleShot,
        );
        a.metric(
            "per_thread_wait_ms",
            s.per_thread_wait_ms,
            "ms",
            Better::Lower,
            d,
            MetricKind::SingleShot,
        );
        let half = s.kernel_delay_ms / 2.0;
        if s.legacy_wait_ms < half {
            a.finding(
                Finding::new(
                    Severity::Warn,
                    codes::DEFAULT_STREAM_SEMANTICS,
                    format!(
                        "a blocking stream finished after {:.2} ms although a {} ms kernel ran on the legacy default stream: it did not wait",
                        s.legacy_wait_ms, s.kernel_delay_ms
                    ),
                )
                .device(d)
                .hint("Blocking streams implicitly wait on the legacy default stream; this driver did not. Check the driver version."),
            );
        }
        if s.per_thread_wait_ms >= half {
            a.finding(
                Finding::new(
                    Severity::Warn,
                    codes::DEFAULT_STREAM_SEMANTICS,
                    format!(
                        "a blocking stream waited {:.2} ms for a {} ms kernel on the per-thread default stream, which does not synchronise with other streams",
                        s.per_thread_wait_ms, s.kernel_delay_ms
                    ),
                )
                .device(d)
                .hint("Another process or a busy GPU may have delayed the tiny kernel; re-run on an idle GPU."),
            );
        }
    }
    a.findings.extend(memory::check(&f.memory, d));
    a
}

pub fn illegal_address(f: &IllegalAddressFacts, steps: &[Step]) -> Analysis {
    let mut a = Analysis::default();
    let d = f.device;
    let not_sticky: Vec<String> = steps
        .iter()
        .filter(|s| s.name.contains(step_names::STICKY_AFTER) && s.observed.code == 0)
        .map(|s| s.name.clone())
        .collect();
    if !not_sticky.is_empty() {
        a.finding(
            Finding::new(
                Severity::Fail,
                codes::ERROR_NOT_STICKY,
                format!(
                    "calls in a context that had hit a sticky error succeeded: {}",
                    not_sticky.join("; ")
                ),
            )
            .device(d)
            .hint("CUDA documents 700/719 as sticky: a process must not trust such a context. Check the driver version."),
        );
    }
    let recover = f.runs.iter().find(|r| r.variant == "recover");
    match recover {
        Some(r) if r.status == "pass" && r.facts.value_ok == Some(true) => {
            a.metric("recover_ms", r.duration_ms, "ms", Better::Lower, d, MetricKind::SingleShot);
        }
        Some(r) => a.finding(
            Finding::new(
                Severity::Fail,
                codes::RECOVERY_FAILED,
                format!(
                    "a fresh process could not use the GPU after the sticky errors (status {}, kernel value {})",
                    r.status,
                    match r.facts.value_ok {
                        Some(true) => "read back",
                        Some(false) => "wrong",
                        None => "not read",
                    }
                ),
            )
            .device(d)
            .hint("The fault outlived the process that caused it: check `gpu-doctor info` (recovery action, XIDs in `dmesg`); the GPU may need a reset."),
        ),
        None => {}
    }
    if !f.xid.events.is_empty() {
        let list: Vec<String> = f
            .xid
            .events
            .iter()
            .map(|e| match e.xid {
                Some(x) => format!("XID {x} during {}", e.during),
                None => format!("XID ? during {}", e.during),
            })
            .collect();
        a.finding(
            Finding::new(
                Severity::Info,
                codes::XID_REPORTED,
                format!("NVML reported {}", list.join(", ")),
            )
            .device(d)
            .hint("Expected for a provoked fault (XID 13/31/43 are application faults). XIDs without gpu-doctor running point at a real problem: see `dmesg`."),
        );
    }
    a.findings.extend(memory::check(&f.memory, d));
    a
}

/// Tag of steps that ran in a process of their own because they may crash it.
pub const OWN_PROCESS: &str = "[own process] ";

/// The steps of a sub-process, ready to merge into the parent's report: each name is prefixed
/// with `tag` and its time shifted to the parent's clock (the sub-process started at
/// `started_at_ms`).
pub fn merge_sub_steps(
    sub: Vec<Step>,
    tag: &str,
    started_at_ms: f64,
) -> impl Iterator<Item = Step> + '_ {
    sub.into_iter().map(move |mut s| {
        s.name = format!("{tag}{}", s.name);
        s.at_ms += started_at_ms;
        s
    })
}

/// The steps of a sub-process that made crash-prone calls (undefined behaviour per NVIDIA),
/// ready to merge: each is tagged [`OWN_PROCESS`] by [`merge_sub_steps`], and a death of the
/// process inside a call counts as an answer the driver gave — recorded, accepted, and
/// explained by a finding from [`crashed_calls`] — rather than as a broken scenario.
pub fn merge_crash_prone(sub: &[Step], started_at_ms: f64) -> Vec<Step> {
    merge_sub_steps(sub.to_vec(), OWN_PROCESS, started_at_ms)
        .map(|mut s| {
            if is_process_death(&s) {
                s.expected.push(s.observed.clone());
                s.ok = true;
            }
            s
        })
        .collect()
}

fn is_process_death(s: &Step) -> bool {
    s.observed.name.starts_with("PROCESS_DIED")
}

/// One info finding per driver call that killed its process: the answer a program gets on
/// this driver when it reuses a handle it should have dropped.
pub fn crashed_calls(steps: &[Step], driver: Option<&str>) -> Vec<Finding> {
    steps
        .iter()
        .filter(|s| is_process_death(s))
        .map(|s| {
            let how = s.observed.name.trim_start_matches("PROCESS_DIED: ");
            Finding::new(
                Severity::Info,
                codes::UNDEFINED_CALL_CRASHED,
                format!(
                    "{} ({}) {how} on driver {}: NVIDIA documents the call as undefined, and this driver does not refuse it",
                    s.name.trim_start_matches(OWN_PROCESS),
                    s.call,
                    driver.unwrap_or("?")
                ),
            )
            .hint("No error handling can catch this: drop every stream, event, module and pointer of a destroyed context (or stream) before anything can reuse it, e.g. tie their lifetimes to the context's owner object.")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::faults::*;
    use crate::report::Code;

    fn code(code: i64, name: &str) -> Code {
        Code {
            code,
            name: name.into(),
        }
    }

    fn step(name: &str, expected: Code, observed: Code) -> Step {
        Step {
            name: name.into(),
            call: "cuX".into(),
            ok: expected == observed,
            expected: vec![expected],
            observed,
            at_ms: 0.0,
            elapsed_ms: 0.0,
            thread: 1,
            note: None,
        }
    }

    fn success() -> Code {
        code(0, "CUDA_SUCCESS")
    }

    fn oom_facts() -> OomFacts {
        OomFacts {
            device: 0,
            allocator: "sync".into(),
            granularity_bytes: 2 << 20,
            chunk_bytes: 1 << 30,
            total_bytes: 85 << 30,
            free_before_bytes: 80 << 30,
            allocatable_bytes: (80 << 30) - (4 << 20),
            allocations: 90,
            oom_answers: 10,
            reached_oom: true,
            last_refused_bytes: Some(2 << 20),
            stopped_by: "oom".into(),
            time_to_edge_ms: 80.0,
            free_ms: 20.0,
            oom_surfaced_at: Some("call".into()),
            proof_value_ok: Some(true),
            memory: MemoryCheck {
                tolerance_bytes: 64 << 20,
                cuda_free_before: Some(80 << 30),
                cuda_free_after: Some(80 << 30),
                nvml_used_before: Some(1 << 30),
                nvml_used_after: Some(1 << 30),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn codes_of(a: &Analysis) -> Vec<&str> {
        a.findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn healthy_oom_has_metrics_and_no_findings() {
        let steps = vec![
            step("after OOM: alloc 4 KiB", success(), success()),
            step("after OOM: synchronize", success(), success()),
        ];
        let a = oom(&oom_facts(), &steps);
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        let ratio = a.metrics["ratio"].value;
        assert!((ratio - 0.99995).abs() < 1e-4, "{ratio}");
        assert_eq!(a.metrics["allocations"].value, 90.0);
        assert_eq!(a.metrics["time_to_edge_ms"].better, Better::Lower);
    }

    #[test]
    fn failing_proof_after_oom_is_sticky_oom() {
        let steps = vec![
            step(
                "after OOM: alloc 4 KiB",
                success(),
                code(2, "CUDA_ERROR_OUT_OF_MEMORY"),
            ),
            step("free every allocation", success(), success()),
        ];
        let a = oom(&oom_facts(), &steps);
        assert_eq!(codes_of(&a), vec![codes::OOM_STICKY]);
        assert!(a.findings[0].message.contains("CUDA_ERROR_OUT_OF_MEMORY"));
        // A wrong kernel value with every call succeeding is sticky too.
        let mut f = oom_facts();
        f.proof_value_ok = Some(false);
        assert_eq!(codes_of(&oom(&f, &[])), vec![codes::OOM_STICKY]);
    }

    #[test]
    fn oom_edge_ratio_pool_and_deferral() {
        let mut f = oom_facts();
        f.allocatable_bytes = 40 << 30;
        assert_eq!(codes_of(&oom(&f, &[])), vec![codes::OOM_ALLOCATABLE_LOW]);
        // With --fraction the ratio is the user's choice, not a finding.
        f.fraction = Some(0.5);
        assert!(oom(&f, &[]).findings.is_empty());

        let mut f = oom_facts();
        f.reached_oom = false;
        f.stopped_by = "guard".into();
        assert_eq!(codes_of(&oom(&f, &[])), vec![codes::OOM_EDGE_NOT_REACHED]);
        f.stopped_by = "interrupted".into();
        assert!(oom(&f, &[]).findings.is_empty());

        let mut f = oom_facts();
        f.allocator = "async".into();
        f.oom_surfaced_at = Some("sync".into());
        f.pool = Some(PoolFacts {
            reserved_after_trim_bytes: Some(10 << 30),
            free_after_trim_bytes: Some(70 << 30),
            ..Default::default()
        });
        let a = oom(&f, &[]);
        assert_eq!(
            codes_of(&a),
            vec![codes::OOM_ASYNC_DEFERRED, codes::POOL_TRIM_NO_EFFECT]
        );
        assert_eq!(a.findings[0].severity, Severity::Info);
    }

    /// `inject oom` on the H200 as recorded (tests/fixtures/h200-inject-oom.json), with what
    /// the run would have seen had another `inject oom` (its child, pid 4242) run beside it:
    /// the other one appears during the run with its context, takes half the GPU during this
    /// fill, and still holds it when this one measures after cleanup.
    fn h200_oom_beside_another() -> OomFacts {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-inject-oom.json"
        );
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut f: OomFacts = serde_json::from_value(saved["data"]["facts"].clone()).unwrap();
        assert!(f.memory.watch.is_none(), "recorded before the watch");
        let half = f.free_before_bytes / 2;
        f.allocatable_bytes = half - (40 << 20);
        f.fill_started_at_ms = Some(310.0);
        f.fill_ended_at_ms = Some(338.0);
        let before = f.memory.cuda_free_before.unwrap();
        f.memory.cuda_free_after = Some(before - half);
        f.memory.nvml_used_after = f.memory.nvml_used_before.map(|u| u + half);
        f.memory.watch = Some(crate::facts::memory::MemoryWatch {
            device: 0,
            period_ms: 50.0,
            from_ms: 120.0,
            to_ms: 520.0,
            samples: 9,
            own_pids: vec![f.memory.own_pids[0]],
            changes: vec![
                change(4242, 520 << 20, 250.0),
                change(4242, half as i64, 338.0),
                change(4242, -(half as i64) - (520 << 20), 470.0),
            ],
            ..Default::default()
        });
        f
    }

    fn change(pid: u32, bytes: i64, at_ms: f64) -> crate::facts::memory::MemoryChange {
        crate::facts::memory::MemoryChange {
            pid,
            bytes: Some(bytes),
            used_bytes: None,
            at_ms,
        }
    }

    #[test]
    fn two_fills_at_once_neither_blames_itself() {
        let f = h200_oom_beside_another();
        let a = oom(&f, &[]);
        assert_eq!(codes_of(&a), vec![codes::MEMORY_CHECK_INCONCLUSIVE]);
        let finding = &a.findings[0];
        assert_eq!(finding.severity, Severity::Warn);
        assert!(
            finding
                .message
                .contains("pid 4242 allocated 520.00 MiB at 250 ms"),
            "{}",
            finding.message
        );
        // The same facts without the watch: what the H200 reported (each run blamed itself).
        let mut blind = f.clone();
        blind.memory.watch = None;
        let a = oom(&blind, &[]);
        assert_eq!(
            codes_of(&a),
            vec![
                codes::OOM_ALLOCATABLE_LOW,
                codes::MEMORY_NOT_RETURNED,
                codes::MEMORY_NOT_RETURNED
            ]
        );
        assert_eq!(a.findings[1].severity, Severity::Fail);
    }

    #[test]
    fn the_edge_is_judged_against_what_was_free_during_the_fill() {
        // Still low once the other process's fill is counted: the edge cannot be judged.
        let mut f = h200_oom_beside_another();
        f.allocatable_bytes = f.free_before_bytes / 4;
        let a = oom(&f, &[]);
        assert_eq!(
            codes_of(&a),
            vec![
                codes::MEMORY_CHECK_INCONCLUSIVE,
                codes::MEMORY_CHECK_INCONCLUSIVE
            ]
        );
        assert!(
            a.findings[0]
                .message
                .starts_with("the OOM edge cannot be judged")
        );
        assert!(a.findings[0].message.contains("pid 4242 allocated"));
        // The other process changed nothing during the fill: the edge is ours to judge.
        let w = f.memory.watch.as_mut().unwrap();
        w.changes.remove(1);
        let a = oom(&f, &[]);
        assert_eq!(
            codes_of(&a),
            vec![codes::OOM_ALLOCATABLE_LOW, codes::MEMORY_CHECK_INCONCLUSIVE]
        );
    }

    #[test]
    fn pool_trim_judges_free_memory_only_when_no_one_else_moved_it() {
        let mut f = h200_oom_beside_another();
        f.allocator = "async".into();
        f.pool = Some(PoolFacts {
            reserved_after_trim_bytes: Some(0),
            free_after_trim_bytes: Some(f.free_before_bytes / 2),
            ..Default::default()
        });
        assert!(!codes_of(&oom(&f, &[])).contains(&codes::POOL_TRIM_NO_EFFECT));
        f.memory.watch = None;
        assert!(codes_of(&oom(&f, &[])).contains(&codes::POOL_TRIM_NO_EFFECT));
    }

    #[test]
    fn ctx_destroy_verdicts() {
        let mut f = CtxDestroyFacts {
            device: 0,
            kernel_delay_ms: 100.0,
            variants: vec![
                DestroyVariant {
                    name: "owner-thread".into(),
                    in_flight_at_destroy: true,
                    destroy_ms: 95.0,
                    ..Default::default()
                },
                DestroyVariant {
                    name: "other-thread".into(),
                    in_flight_at_destroy: false,
                    destroy_ms: 2.0,
                    ..Default::default()
                },
            ],
            primary: Some(PrimaryResetFacts {
                old_pointer_memcpy: Some(code(1, "CUDA_ERROR_INVALID_VALUE")),
                holder_alloc_after_reset: Some(success()),
                ..Default::default()
            }),
            recovery_ok: true,
            memory: MemoryCheck::default(),
        };
        let a = ctx_destroy(&f, &[]);
        assert_eq!(
            codes_of(&a),
            vec![
                codes::KERNEL_NOT_IN_FLIGHT,
                codes::PRIMARY_RESET_INVALIDATES
            ]
        );
        assert!(a.findings[0].message.starts_with("other-thread"));
        assert!(
            a.findings[1]
                .message
                .contains("CUDA_ERROR_INVALID_VALUE (1)")
        );
        assert_eq!(a.metrics["destroy_owner_thread_ms"].value, 95.0);

        f.recovery_ok = false;
        let steps = vec![step(
            "recovery: create a fresh context",
            success(),
            code(999, "CUDA_ERROR_UNKNOWN"),
        )];
        let a = ctx_destroy(&f, &steps);
        let rec = a
            .findings
            .iter()
            .find(|x| x.code == codes::RECOVERY_FAILED)
            .expect("recovery finding");
        assert_eq!(rec.severity, Severity::Fail);
        assert!(rec.message.contains("CUDA_ERROR_UNKNOWN"));
    }

    #[test]
    fn stream_misuse_race_and_default_stream() {
        let mut f = StreamMisuseFacts {
            device: 1,
            race: Some(RaceFacts {
                iterations: 50,
                ran_without_event: 50,
                ran_with_event: 50,
                stale_without_event: 48,
                stale_with_event: 0,
                ..Default::default()
            }),
            default_stream: Some(DefaultStreamFacts {
                kernel_delay_ms: 50.0,
                legacy_wait_ms: 51.0,
                per_thread_wait_ms: 0.1,
            }),
            ..Default::default()
        };
        let a = stream_misuse(&f, &[]);
        assert_eq!(codes_of(&a), vec![codes::STALE_READS_WITHOUT_EVENT]);
        assert_eq!(a.findings[0].severity, Severity::Info);
        assert!(a.findings[0].message.contains("48 of 50"));
        assert!(
            a.findings[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("cuStreamWaitEvent")
        );
        assert_eq!(a.metrics["stale_reads"].value, 48.0);

        let r = f.race.as_mut().unwrap();
        r.stale_without_event = 0;
        r.stale_with_event = 2;
        let ds = f.default_stream.as_mut().unwrap();
        ds.legacy_wait_ms = 0.2;
        ds.per_thread_wait_ms = 49.0;
        let a = stream_misuse(&f, &[]);
        assert_eq!(
            codes_of(&a),
            vec![
                codes::STALE_READS_WITH_EVENT,
                codes::DEFAULT_STREAM_SEMANTICS,
                codes::DEFAULT_STREAM_SEMANTICS
            ]
        );
        assert_eq!(a.findings[0].severity, Severity::Fail);
    }

    fn ia_facts(recover_status: &str, value_ok: Option<bool>) -> IllegalAddressFacts {
        IllegalAddressFacts {
            device: 0,
            runs: vec![SubRun {
                variant: "recover".into(),
                status: recover_status.into(),
                duration_ms: 300.0,
                facts: VariantFacts {
                    value_ok,
                    ..Default::default()
                },
                ..Default::default()
            }],
            xid: XidFacts {
                watched: true,
                error: None,
                events: vec![XidEvent {
                    xid: Some(31),
                    at_ms: 500.0,
                    during: "illegal-address".into(),
                }],
            },
            memory: MemoryCheck::default(),
        }
    }

    #[test]
    fn illegal_address_sticky_recovery_and_xid() {
        let ill = code(700, "CUDA_ERROR_ILLEGAL_ADDRESS");
        let steps = vec![
            step(
                "[illegal-address] after the fault: allocate",
                ill.clone(),
                ill.clone(),
            ),
            step(
                "[illegal-address] after the fault: launch",
                ill.clone(),
                ill.clone(),
            ),
        ];
        let a = illegal_address(&ia_facts("pass", Some(true)), &steps);
        assert_eq!(codes_of(&a), vec![codes::XID_REPORTED]);
        assert!(
            a.findings[0]
                .message
                .contains("XID 31 during illegal-address")
        );
        assert_eq!(a.metrics["recover_ms"].value, 300.0);

        let steps = vec![step("[trap] after the fault: launch", ill, success())];
        let a = illegal_address(&ia_facts("error", None), &steps);
        assert_eq!(
            codes_of(&a),
            vec![
                codes::ERROR_NOT_STICKY,
                codes::RECOVERY_FAILED,
                codes::XID_REPORTED
            ]
        );
        assert!(
            a.findings[0]
                .message
                .contains("[trap] after the fault: launch")
        );
    }

    #[test]
    fn sub_steps_are_tagged_and_shifted_but_keep_their_verdict() {
        let died = code(-1, "PROCESS_DIED: was killed by signal 11 (SIGSEGV)");
        let mut s = step("launch", success(), died);
        s.at_ms = 2.0;
        let all: Vec<Step> = merge_sub_steps(vec![s], "[trap] ", 10.0).collect();
        assert_eq!(all[0].name, "[trap] launch");
        assert_eq!(all[0].at_ms, 12.0);
        assert!(!all[0].ok, "only merge_crash_prone accepts a death");
    }

    #[test]
    fn a_crash_inside_an_undefined_call_is_an_answer_with_a_finding() {
        let step = |name: &str, observed: Code, ok: bool| Step {
            name: name.into(),
            call: "cuStreamQuery".into(),
            expected: vec![Code {
                code: 400,
                name: "CUDA_ERROR_INVALID_HANDLE".into(),
            }],
            observed,
            at_ms: 1.0,
            elapsed_ms: 0.0,
            thread: 7,
            ok,
            note: None,
        };
        let died = Code {
            code: -1,
            name: "PROCESS_DIED: was killed by signal 11 (SIGSEGV)".into(),
        };
        let refused = Code {
            code: 400,
            name: "CUDA_ERROR_INVALID_HANDLE".into(),
        };
        let sub = vec![
            step("destroyed-stream: sync", refused, true),
            step("destroyed-stream: query", died.clone(), false),
        ];
        let all = merge_crash_prone(&sub, 100.0);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|s| s.ok && s.name.starts_with(OWN_PROCESS)));
        assert_eq!(all[1].at_ms, 101.0);
        assert!(all[1].expected.contains(&died));
        let f = crashed_calls(&all, Some("580.159.04"));
        assert_eq!(f.len(), 1, "only the call that died");
        assert_eq!(f[0].code, codes::UNDEFINED_CALL_CRASHED);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.starts_with("destroyed-stream: query (cuStreamQuery) was killed by signal 11 (SIGSEGV) on driver 580.159.04"), "{}", f[0].message);
    }
}
