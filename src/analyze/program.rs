//! Program mode analysis (pure): the shim's events and the program's exit → verdict,
//! findings, metrics and `report.data`. See docs/shim.md for the fields.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::facts::cuda_codes::name_of;
use crate::facts::program::{Ended, Outcome, ShimEvent};
use crate::report::{Better, Finding, Metric, MetricKind, Severity, codes};

/// What the user expects of the program under the fault (`--expect`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// It handles the fault: exits 0 (or is still running at --survive-after).
    #[default]
    Survive,
    /// It fails: exits non-zero or dies of a signal (not a hang).
    Fail,
}

/// What was injected.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Oom {
        limit: u64,
    },
    Error {
        call: String,
        code: u32,
        delay_us: u64,
    },
    Trace,
    /// `leak-check`: nothing injected; its own analysis is analyze::leaks.
    Leak,
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Oom { .. } => "oom",
            Mode::Error { .. } => "error",
            Mode::Trace => "trace",
            Mode::Leak => "leak",
        }
    }
}

/// How the program fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exited 0.
    Survived,
    /// Still running at --survive-after (then stopped).
    KeptRunning,
    /// Exited non-zero or died of a signal.
    Crashed,
    /// Still running at --timeout (then killed).
    Hung,
    /// Stopped by Ctrl-C.
    Interrupted,
}

pub fn verdict(o: &Outcome) -> Verdict {
    match o.ended {
        Ended::TimedOut => Verdict::Hung,
        Ended::Stopped => Verdict::KeptRunning,
        Ended::Interrupted => Verdict::Interrupted,
        Ended::Exited if o.code == Some(0) => Verdict::Survived,
        Ended::Exited => Verdict::Crashed,
    }
}

pub struct Analysis {
    pub findings: Vec<Finding>,
    pub metrics: BTreeMap<String, Metric>,
    pub data: Value,
}

/// At most this many non-injected failures are listed in data.failures.
const MAX_FAILURES_LISTED: usize = 1000;

fn signal_name(sig: i32) -> String {
    match crate::units::signal_name(sig) {
        "signal" => format!("signal {sig}"),
        n => n.into(),
    }
}

fn describe_exit(o: &Outcome) -> String {
    match (o.signal, o.code) {
        (Some(s), _) => format!("was killed by {}", signal_name(s)),
        (None, Some(c)) => format!("exited with status {c}"),
        _ => "ended".into(),
    }
}

fn ctx_is_null(c: &Option<String>) -> bool {
    matches!(c.as_deref(), None | Some("0x0"))
}

/// Relative time of an event in ms since the program started.
fn t_ms(e: &ShimEvent, start_us: u64) -> f64 {
    e.t_us.saturating_sub(start_us) as f64 / 1e3
}

/// Whether the program did what `expect` says, and the finding that says how it ended (none
/// when Ctrl-C stopped it). `errors` names what was injected ("CUDA errors", "NVML faults").
pub fn judge(o: &Outcome, expect: Expect, errors: &str) -> (bool, Option<Finding>) {
    let v = verdict(o);
    let mut out = None;
    let expectation_met = match expect {
        Expect::Survive => matches!(v, Verdict::Survived | Verdict::KeptRunning),
        Expect::Fail => v == Verdict::Crashed,
    };
    let exit_text = describe_exit(o);
    match v {
        Verdict::Survived | Verdict::KeptRunning => {
            let how = if v == Verdict::Survived {
                "exited 0".to_string()
            } else {
                format!("was still running after {:.1} s (stopped)", o.duration_ms / 1e3)
            };
            let mut f = Finding::new(
                if expect == Expect::Fail { Severity::Fail } else { Severity::Info },
                codes::PROGRAM_SURVIVED,
                format!("The program {how}."),
            );
            if expect == Expect::Fail {
                f = f.hint(format!("--expect fail: the program was expected to fail under the fault but carried on; it may be swallowing {errors}."));
            }
            out = Some(f);
        }
        Verdict::Crashed => {
            let mut f = Finding::new(
                if expect == Expect::Fail { Severity::Info } else { Severity::Fail },
                codes::PROGRAM_CRASHED,
                format!("The program {exit_text}."),
            );
            if expect == Expect::Survive {
                f = f.hint(format!("Its own stderr above says why. Handle the {errors} (free caches and retry, smaller batch, clean exit) or run with --expect fail if failing is the intended behaviour."));
            }
            out = Some(f);
        }
        Verdict::Hung => out = Some(
            Finding::new(
                Severity::Fail,
                codes::PROGRAM_HUNG,
                format!(
                    "The program did not exit within the {:.0} s timeout and was killed.",
                    o.duration_ms / 1e3
                ),
            )
            .hint(format!("A program that waits forever after one of the {errors} hangs its job. Raise --timeout if it is only slow; use --survive-after for long-running services.")),
        ),
        Verdict::Interrupted => {}
    }
    (expectation_met, out)
}

pub fn analyze(mode: &Mode, expect: Expect, command: &[String], o: &Outcome) -> Analysis {
    let v = verdict(o);
    let mut findings = Vec::new();
    let mut metrics = BTreeMap::new();
    let ev = &o.events;
    let start_us = o.start_us;

    let starts: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "start").collect();
    let hooks: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "hook").collect();
    let nomatch: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "nomatch").collect();
    let fails: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "fail").collect();
    let injected: Vec<&ShimEvent> = fails
        .iter()
        .copied()
        .filter(|e| e.injected == Some(true))
        .collect();
    let real_fails: Vec<&ShimEvent> = fails
        .iter()
        .copied()
        .filter(|e| e.injected != Some(true))
        .collect();
    let delays: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "delay").collect();
    let ctx_ops: Vec<&ShimEvent> = ev.iter().filter(|e| e.ev == "ctx").collect();
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    for s in ev.iter().filter(|e| e.ev == "stats") {
        for (k, n) in s.calls.iter().flatten() {
            *calls.entry(k.clone()).or_default() += n;
        }
    }
    let dropped: u64 = ev.iter().filter_map(|e| e.dropped).sum();
    // Injections counted by the shim (events stop at a cap; a killed process writes no stats).
    let injected_count =
        (injected.len() as u64).max(ev.iter().filter_map(|e| e.injected_total).sum());
    // Peak per device: the highest any event reported (per process; the limit is per process).
    // Held at the end: what the processes' final figures (exit, or their ledgers) still held.
    let mut peak: BTreeMap<i64, u64> = BTreeMap::new();
    let mut held: BTreeMap<i64, u64> = BTreeMap::new();
    for e in ev.iter().filter(|e| e.ev == "peak") {
        if let (Some(d), Some(b)) = (e.dev, e.bytes) {
            let p = peak.entry(d).or_default();
            *p = (*p).max(b);
            if e.r#final == Some(true) {
                *held.entry(d).or_default() += e.used.unwrap_or(0);
            }
        }
    }
    let recovered: BTreeSet<u64> = ev
        .iter()
        .filter(|e| e.ev == "stats" && e.recovered == Some(true))
        .map(|e| e.pid)
        .collect();
    let config_errors: BTreeSet<String> = starts
        .iter()
        .filter_map(|e| e.config_error.clone())
        .collect();

    // --- the shim itself
    if starts.is_empty() {
        findings.push(
            Finding::new(
                Severity::Warn,
                codes::SHIM_NOT_LOADED,
                format!(
                    "The shim never loaded into {}: nothing was intercepted.",
                    command.first().map(String::as_str).unwrap_or("the program")
                ),
            )
            .hint("LD_PRELOAD is ignored by statically linked and setuid programs, and by programs that clear their environment before starting the CUDA process; see docs/shim.md (known limits)."),
        );
    } else if hooks.is_empty() && calls.is_empty() && ctx_ops.is_empty() && fails.is_empty() {
        findings.push(
            Finding::new(
                if *mode == Mode::Trace { Severity::Info } else { Severity::Warn },
                codes::CUDA_NOT_INTERCEPTED,
                "The program never reached the CUDA driver through an intercepted entry point (no CUDA, or not used).",
            )
            .hint("Check that COMMAND really uses the GPU; a libcuda linked statically or opened with RTLD_DEEPBIND is not seen (docs/shim.md)."),
        );
    }
    for e in &config_errors {
        findings.push(Finding::new(
            Severity::Fail,
            codes::SHIM_CONFIG_ERROR,
            format!("The shim rejected its configuration: {e}"),
        ));
    }
    if !nomatch.is_empty() {
        let names: BTreeSet<String> = nomatch.iter().filter_map(|e| e.call.clone()).collect();
        findings.push(
            Finding::new(
                Severity::Info,
                codes::SHIM_ENTRY_POINT_UNWRAPPED,
                format!(
                    "cuGetProcAddress answered entry points the shim could not match to a known ABI; they ran unwrapped (no injection, no trace): {}",
                    names.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
            .hint("Calls through them are passed on untouched. Please report the driver and CUDA versions."),
        );
    }

    // --- the fault
    match mode {
        Mode::Oom { .. } | Mode::Error { .. } => {
            let fired = injected_count > 0 || !delays.is_empty();
            if fired {
                let first = injected.first().or(delays.first()).copied();
                let first = first
                    .map(|f| {
                        format!(
                            "; first: {} at {:.1} ms on thread {}",
                            f.call.as_deref().unwrap_or("?"),
                            t_ms(f, start_us),
                            f.tid
                        )
                    })
                    .unwrap_or_default();
                let what = match mode {
                    Mode::Oom { limit } => format!(
                        "{} allocation(s) refused with CUDA_ERROR_OUT_OF_MEMORY at the {} limit",
                        injected_count,
                        crate::units::format_bytes(*limit)
                    ),
                    Mode::Error { code, .. } if *code != 0 => format!(
                        "{} call(s) failed with {} ({code})",
                        injected_count,
                        name_of(u64::from(*code))
                    ),
                    _ => format!("{} call(s) delayed", delays.len()),
                };
                findings.push(Finding::new(
                    Severity::Info,
                    codes::FAULT_INJECTED,
                    format!("{what}{first}."),
                ));
            } else {
                let why = match mode {
                    Mode::Oom { limit } => format!(
                        "no allocation crossed the {} limit (peak {})",
                        crate::units::format_bytes(*limit),
                        crate::units::format_bytes(peak.values().copied().max().unwrap_or(0))
                    ),
                    Mode::Error { call, .. } => {
                        let n: u64 = calls
                            .iter()
                            .filter(|(k, _)| {
                                shim_proto::cuda::names::base_of(k) == Some(call.as_str())
                            })
                            .map(|(_, n)| n)
                            .sum();
                        format!("{call} was called {n} time(s), never at a scheduled index")
                    }
                    Mode::Trace | Mode::Leak => unreachable!(),
                };
                findings.push(
                    Finding::new(
                        Severity::Warn,
                        codes::FAULT_NOT_INJECTED,
                        format!("No fault was injected: {why}. The verdict says nothing about fault handling."),
                    )
                    .hint("Lower --limit or --nth, or check that the program makes the call (data.calls counts every intercepted call)."),
                );
            }
        }
        Mode::Trace | Mode::Leak => {}
    }

    // --- context trace
    let mut timeline = Vec::new();
    if *mode == Mode::Trace {
        for e in ev.iter().filter(|e| e.ev == "ctx" || e.ev == "fail") {
            let ctx_before = e.ctx_before.clone().or_else(|| e.ctx.clone());
            let ctx_after = e.ctx_after.clone().or_else(|| e.ctx.clone());
            let code = e.code.unwrap_or(0);
            timeline.push(json!({
                "t_us": e.t_us.saturating_sub(start_us),
                "thread": e.tid,
                "pid": e.pid,
                "kind": if e.ev == "ctx" { "ctx" } else { "failed_call" },
                "op": e.call,
                "ctx": e.ctx,
                "ctx_before": ctx_before,
                "ctx_after": ctx_after,
                "dev": e.dev,
                "result": {"code": code, "name": name_of(code)},
                "injected": e.injected.unwrap_or(false),
            }));
        }
        let unbound: Vec<&ShimEvent> = fails
            .iter()
            .copied()
            .filter(|e| e.code == Some(201) && ctx_is_null(&e.ctx))
            .collect();
        if let Some(first) = unbound.first() {
            let threads: BTreeSet<u64> = unbound.iter().map(|e| e.tid).collect();
            findings.push(
                Finding::new(
                    Severity::Warn,
                    codes::CTX_UNBOUND_CALL,
                    format!(
                        "{} driver call(s) failed with CUDA_ERROR_INVALID_CONTEXT (201) on thread(s) with no current context: {}; first {} at {:.1} ms on thread {}.",
                        unbound.len(),
                        threads.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                        first.call.as_deref().unwrap_or("?"),
                        t_ms(first, start_us),
                        first.tid
                    ),
                )
                .hint("A context is current per OS thread: the thread that makes driver calls must cuCtxSetCurrent (or use the runtime, which binds the primary context). Goroutines and thread pools hop threads."),
            );
        }
        let destroyed: Vec<&ShimEvent> = fails
            .iter()
            .copied()
            .chain(ctx_ops.iter().copied())
            .filter(|e| e.code == Some(709))
            .collect();
        if let Some(first) = destroyed.first() {
            findings.push(
                Finding::new(
                    Severity::Warn,
                    codes::CTX_DESTROYED_IN_USE,
                    format!(
                        "{} driver call(s) failed with CUDA_ERROR_CONTEXT_IS_DESTROYED (709); first {} at {:.1} ms on thread {}.",
                        destroyed.len(),
                        first.call.as_deref().unwrap_or("?"),
                        t_ms(first, start_us),
                        first.tid
                    ),
                )
                .hint("A thread still had a context current that another thread destroyed: destroy a context only after every thread is done with it."),
            );
        }
    }

    // --- failures the driver itself returned
    if !real_fails.is_empty() {
        let mut by: BTreeMap<(String, u64), usize> = BTreeMap::new();
        for e in &real_fails {
            *by.entry((e.call.clone().unwrap_or_default(), e.code.unwrap_or(0)))
                .or_default() += 1;
        }
        let list: Vec<String> = by
            .iter()
            .map(|((c, code), n)| format!("{c} → {} ×{n}", name_of(*code)))
            .collect();
        findings.push(Finding::new(
            Severity::Info,
            codes::DRIVER_CALLS_FAILED,
            format!(
                "{} intercepted call(s) failed in the driver itself: {}.",
                real_fails.len() as u64 + dropped,
                list.join(", ")
            ),
        ));
    }

    // --- the verdict
    let (expectation_met, verdict_finding) = judge(o, expect, "CUDA errors");
    findings.extend(verdict_finding);

    // --- metrics
    let multi = peak.len() > 1;
    for (dev, bytes) in &peak {
        let name = if multi {
            format!("peak_device_memory_bytes.cuda{dev}")
        } else {
            "peak_device_memory_bytes".to_string()
        };
        metrics.insert(
            name,
            Metric::new(*bytes as f64, "bytes", Better::Lower).kind(MetricKind::Exact),
        );
    }
    if matches!(mode, Mode::Oom { .. } | Mode::Error { .. }) {
        metrics.insert(
            "injected_failures".into(),
            Metric::new(injected_count as f64, "count", Better::Lower).kind(MetricKind::Exact),
        );
    }
    metrics.insert(
        "program_duration_ms".into(),
        Metric::new(o.duration_ms, "ms", Better::Lower).kind(MetricKind::SingleShot),
    );

    // --- data
    let fail_json = |e: &ShimEvent| {
        let code = e.code.unwrap_or(0);
        json!({
            "call": e.call,
            "code": code,
            "name": name_of(code),
            "size": e.size,
            "dev": e.dev,
            "used": e.used,
            "index": e.index,
            "ctx": e.ctx,
            "t_ms": t_ms(e, start_us),
            "thread": e.tid,
            "pid": e.pid,
        })
    };
    let mut data = json!({
        "mode": mode.name(),
        "command": command,
        "expect": expect,
        "verdict": v,
        "expectation_met": expectation_met,
        "exit": {
            "pid": o.pid,
            "code": o.code,
            "signal": o.signal,
            "signal_name": o.signal.map(signal_name),
            "ended": o.ended,
        },
        "duration_ms": o.duration_ms,
        "shim": {
            "source": o.shim_source,
            "processes": starts.iter().map(|e| json!({"pid": e.pid, "ppid": e.ppid, "exe": e.exe})).collect::<Vec<_>>(),
            "hooks": hooks.iter().map(|e| json!({"call": e.call, "via": e.via, "match": e.how, "pid": e.pid})).collect::<Vec<_>>(),
            "unwrapped": nomatch.iter().map(|e| json!({"call": e.call, "version": e.version, "flags": e.flags})).collect::<Vec<_>>(),
            "bad_event_lines": o.bad_lines,
            "dropped_events": dropped,
            "ctx_noops": ev.iter().filter_map(|e| e.ctx_noops).sum::<u64>(),
            "recovered": recovered,
        },
        "calls": calls,
        "injected": injected.iter().map(|e| fail_json(e)).collect::<Vec<_>>(),
        "injected_count": injected_count,
        "delays": delays.iter().map(|e| json!({"call": e.call, "delay_us": e.delay_us, "index": e.index, "t_ms": t_ms(e, start_us), "thread": e.tid, "pid": e.pid})).collect::<Vec<_>>(),
        "failures": real_fails.iter().take(MAX_FAILURES_LISTED).map(|e| fail_json(e)).collect::<Vec<_>>(),
        "peak": peak.iter().map(|(d, b)| json!({"dev": d, "bytes": b, "held_at_end_bytes": held.get(d)})).collect::<Vec<_>>(),
    });
    match mode {
        Mode::Oom { limit } => data["limit_bytes"] = json!(limit),
        Mode::Error {
            call,
            code,
            delay_us,
        } => {
            data["failpoint"] = json!({
                "call": call,
                "code": code,
                "name": if *code == 0 { Value::Null } else { json!(name_of(u64::from(*code))) },
                "delay_us": delay_us,
            })
        }
        Mode::Trace => {
            data["threads"] = json!(thread_summary(&timeline));
            data["timeline"] = json!(timeline);
        }
        Mode::Leak => {}
    }
    Analysis {
        findings,
        metrics,
        data,
    }
}

/// Per (pid, thread): operations, failed calls, contexts touched, first failure.
fn thread_summary(timeline: &[Value]) -> Vec<Value> {
    let mut by: BTreeMap<(u64, u64), Vec<&Value>> = BTreeMap::new();
    for e in timeline {
        let key = (
            e["pid"].as_u64().unwrap_or(0),
            e["thread"].as_u64().unwrap_or(0),
        );
        by.entry(key).or_default().push(e);
    }
    by.into_iter()
        .map(|((pid, thread), evs)| {
            let ctxs: BTreeSet<String> = evs
                .iter()
                .flat_map(|e| [&e["ctx"], &e["ctx_before"], &e["ctx_after"]])
                .filter_map(|c| c.as_str())
                .filter(|c| *c != "0x0")
                .map(String::from)
                .collect();
            let failed: Vec<&&Value> = evs
                .iter()
                .filter(|e| e["result"]["code"].as_u64().unwrap_or(0) != 0)
                .collect();
            json!({
                "pid": pid,
                "thread": thread,
                "ops": evs.iter().filter(|e| e["kind"] == "ctx").count(),
                "failed_calls": failed.len(),
                "contexts": ctxs,
                "first_failure": failed.first().map(|e| json!({"op": e["op"], "result": e["result"], "t_us": e["t_us"], "ctx": e["ctx_before"]})),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_of(a: &Analysis) -> Verdict {
        serde_json::from_value(a.data["verdict"].clone()).expect("a verdict")
    }

    fn met(a: &Analysis) -> bool {
        a.data["expectation_met"]
            .as_bool()
            .expect("expectation_met")
    }

    fn ev(kind: &str, tid: u64, t_us: u64) -> ShimEvent {
        ShimEvent {
            ev: kind.into(),
            pid: 100,
            tid,
            t_us,
            ..Default::default()
        }
    }

    fn start() -> ShimEvent {
        ShimEvent {
            exe: Some("/usr/bin/python3".into()),
            ppid: Some(1),
            ..ev("start", 100, 1_000)
        }
    }

    fn outcome(
        code: Option<i32>,
        signal: Option<i32>,
        ended: Ended,
        events: Vec<ShimEvent>,
    ) -> Outcome {
        Outcome {
            pid: 100,
            code,
            signal,
            ended,
            start_us: 1_000,
            duration_ms: 50.0,
            events,
            maps: vec![],
            nvml_events: vec![],
            bad_lines: 0,
            shim_source: "embedded".into(),
        }
    }

    fn oom_fail(size: u64) -> ShimEvent {
        ShimEvent {
            call: Some("cuMemAlloc_v2".into()),
            code: Some(2),
            injected: Some(true),
            size: Some(size),
            dev: Some(0),
            ctx: Some("0x5".into()),
            ..ev("fail", 101, 21_000)
        }
    }

    fn codes_of(a: &Analysis) -> Vec<(&str, Severity)> {
        a.findings
            .iter()
            .map(|f| (f.code.as_str(), f.severity))
            .collect()
    }

    const OOM: Mode = Mode::Oom { limit: 1 << 30 };

    fn launch_failed() -> Mode {
        Mode::Error {
            call: "cuLaunchKernel".into(),
            code: 719,
            delay_us: 0,
        }
    }

    fn finding<'a>(a: &'a Analysis, code: &str) -> &'a Finding {
        a.findings
            .iter()
            .find(|f| f.code == code)
            .unwrap_or_else(|| panic!("no {code} finding"))
    }

    #[test]
    fn oom_handled_and_exit_0_survives() {
        let peak = ShimEvent {
            dev: Some(0),
            bytes: Some(900 << 20),
            ..ev("peak", 101, 20_000)
        };
        let o = outcome(
            Some(0),
            None,
            Ended::Exited,
            vec![start(), peak, oom_fail(512 << 20)],
        );
        let a = analyze(&OOM, Expect::Survive, &["python".into()], &o);
        assert_eq!(verdict_of(&a), Verdict::Survived);
        assert!(met(&a));
        assert_eq!(
            codes_of(&a),
            vec![
                (codes::FAULT_INJECTED, Severity::Info),
                (codes::PROGRAM_SURVIVED, Severity::Info)
            ]
        );
        assert_eq!(a.data["injected"][0]["size"], 512 << 20);
        assert_eq!(a.data["injected"][0]["t_ms"], 20.0);
        assert_eq!(a.data["injected"][0]["name"], "CUDA_ERROR_OUT_OF_MEMORY");
        assert_eq!(a.data["limit_bytes"], 1u64 << 30);
        assert_eq!(
            a.metrics["peak_device_memory_bytes"].value,
            (900u64 << 20) as f64
        );
        assert_eq!(a.metrics["injected_failures"].value, 1.0);
    }

    #[test]
    fn injections_past_the_event_cap_still_count() {
        let mut stats = ev("stats", 100, 9_000);
        stats.injected_total = Some(25_000);
        stats.dropped = Some(15_000);
        let o = outcome(Some(0), None, Ended::Exited, vec![start(), stats]);
        let a = analyze(&launch_failed(), Expect::Survive, &[], &o);
        let f = finding(&a, codes::FAULT_INJECTED);
        assert!(
            f.message.starts_with("25000 call(s) failed"),
            "{}",
            f.message
        );
        assert_eq!(a.metrics["injected_failures"].value, 25_000.0);
        assert_eq!(a.data["injected_count"], 25_000);
        assert_eq!(a.data["shim"]["dropped_events"], 15_000);
    }

    #[test]
    fn figures_recovered_from_a_ledger_count_like_exit_stats() {
        // What program::side_files makes of the ledger of a process killed by SIGKILL.
        let mut stats = ev("stats", 100, 9_000);
        stats.calls = Some(BTreeMap::from([("cuMemAlloc_v2".to_string(), 3u64)]));
        stats.recovered = Some(true);
        let fin = ShimEvent {
            dev: Some(0),
            bytes: Some(3 << 20),
            used: Some(3 << 20),
            r#final: Some(true),
            recovered: Some(true),
            ..ev("peak", 100, 9_000)
        };
        let o = outcome(
            None,
            Some(libc::SIGKILL),
            Ended::Exited,
            vec![start(), stats, fin],
        );
        let a = analyze(&OOM, Expect::Survive, &[], &o);
        assert_eq!(a.data["calls"]["cuMemAlloc_v2"], 3);
        assert_eq!(a.data["peak"][0]["bytes"], 3 << 20);
        assert_eq!(a.data["peak"][0]["held_at_end_bytes"], 3 << 20);
        assert_eq!(a.data["shim"]["recovered"][0], 100);
        assert_eq!(
            a.metrics["peak_device_memory_bytes"].value,
            (3u64 << 20) as f64
        );
    }

    #[test]
    fn crash_fails_unless_expected() {
        let o = outcome(
            None,
            Some(libc::SIGABRT),
            Ended::Exited,
            vec![start(), oom_fail(1)],
        );
        let a = analyze(&OOM, Expect::Survive, &[], &o);
        assert_eq!(verdict_of(&a), Verdict::Crashed);
        assert!(!met(&a));
        let f = finding(&a, codes::PROGRAM_CRASHED);
        assert_eq!(f.severity, Severity::Fail);
        assert!(f.message.contains("SIGABRT"), "{}", f.message);
        let a = analyze(&OOM, Expect::Fail, &[], &o);
        assert!(met(&a));
        assert!(a.findings.iter().all(|f| f.severity != Severity::Fail));
        let o = outcome(Some(1), None, Ended::Exited, vec![start(), oom_fail(1)]);
        assert_eq!(
            verdict_of(&analyze(&OOM, Expect::Survive, &[], &o)),
            Verdict::Crashed
        );
    }

    #[test]
    fn survival_fails_when_failure_was_expected() {
        let o = outcome(Some(0), None, Ended::Exited, vec![start(), oom_fail(1)]);
        let a = analyze(&OOM, Expect::Fail, &[], &o);
        assert!(!met(&a));
        assert!(
            a.findings
                .iter()
                .any(|f| f.code == codes::PROGRAM_SURVIVED && f.severity == Severity::Fail)
        );
    }

    #[test]
    fn hang_always_fails_and_kept_running_survives() {
        let o = outcome(None, Some(libc::SIGKILL), Ended::TimedOut, vec![start()]);
        let a = analyze(&OOM, Expect::Fail, &[], &o);
        assert_eq!(verdict_of(&a), Verdict::Hung);
        assert!(!met(&a));
        assert!(
            a.findings
                .iter()
                .any(|f| f.code == codes::PROGRAM_HUNG && f.severity == Severity::Fail)
        );
        let o = outcome(
            None,
            Some(libc::SIGTERM),
            Ended::Stopped,
            vec![start(), oom_fail(1)],
        );
        let a = analyze(&OOM, Expect::Survive, &[], &o);
        assert_eq!(verdict_of(&a), Verdict::KeptRunning);
        assert!(met(&a));
    }

    #[test]
    fn no_shim_and_no_fault_are_warned() {
        let o = outcome(Some(0), None, Ended::Exited, vec![]);
        let a = analyze(&OOM, Expect::Survive, &[], &o);
        let c = codes_of(&a);
        assert!(
            c.contains(&(codes::SHIM_NOT_LOADED, Severity::Warn)),
            "{c:?}"
        );
        assert!(
            c.contains(&(codes::FAULT_NOT_INJECTED, Severity::Warn)),
            "{c:?}"
        );
        let o = outcome(Some(0), None, Ended::Exited, vec![start()]);
        let a = analyze(&OOM, Expect::Survive, &[], &o);
        assert!(codes_of(&a).contains(&(codes::CUDA_NOT_INTERCEPTED, Severity::Warn)));
    }

    #[test]
    fn error_mode_reports_call_counts_when_nothing_fired() {
        let mut stats = ev("stats", 100, 9_000);
        stats.calls = Some(BTreeMap::from([
            ("cuLaunchKernel".to_string(), 40u64),
            ("cuLaunchKernel_ptsz".to_string(), 2u64),
            ("cuMemAlloc_v2".to_string(), 3u64),
        ]));
        let o = outcome(Some(0), None, Ended::Exited, vec![start(), stats]);
        let a = analyze(&launch_failed(), Expect::Survive, &[], &o);
        let f = finding(&a, codes::FAULT_NOT_INJECTED);
        assert!(f.message.contains("called 42 time(s)"), "{}", f.message);
        assert_eq!(a.data["calls"]["cuMemAlloc_v2"], 3);
        assert_eq!(a.data["failpoint"]["name"], "CUDA_ERROR_LAUNCH_FAILED");
    }

    #[test]
    fn trace_finds_the_unbound_thread() {
        let set = ShimEvent {
            call: Some("cuCtxSetCurrent".into()),
            code: Some(0),
            ctx: Some("0xaa".into()),
            ctx_before: Some("0x0".into()),
            ctx_after: Some("0xaa".into()),
            ..ev("ctx", 101, 2_000)
        };
        let unbound = ShimEvent {
            call: Some("cuLaunchKernel".into()),
            code: Some(201),
            injected: Some(false),
            ctx: Some("0x0".into()),
            ..ev("fail", 102, 3_000)
        };
        let o = outcome(Some(1), None, Ended::Exited, vec![start(), set, unbound]);
        let a = analyze(&Mode::Trace, Expect::Survive, &[], &o);
        let f = finding(&a, codes::CTX_UNBOUND_CALL);
        assert!(f.message.contains("thread 102"), "{}", f.message);
        let tl = a.data["timeline"].as_array().unwrap();
        assert_eq!(tl.len(), 2);
        assert_eq!(tl[0]["op"], "cuCtxSetCurrent");
        assert_eq!(tl[0]["t_us"], 1_000);
        assert_eq!(tl[1]["result"]["name"], "CUDA_ERROR_INVALID_CONTEXT");
        assert_eq!(tl[1]["ctx_before"], "0x0");
        let threads = a.data["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[0]["thread"], 101);
        assert_eq!(threads[0]["contexts"][0], "0xaa");
        assert_eq!(threads[1]["failed_calls"], 1);
        assert!(
            a.findings
                .iter()
                .any(|f| f.code == codes::DRIVER_CALLS_FAILED)
        );
        assert!(
            !a.findings
                .iter()
                .any(|f| f.code == codes::FAULT_NOT_INJECTED)
        );
    }

    #[test]
    fn destroyed_context_use_is_flagged() {
        let e = ShimEvent {
            call: Some("cuMemAlloc_v2".into()),
            code: Some(709),
            injected: Some(false),
            ctx: Some("0xbb".into()),
            ..ev("fail", 103, 5_000)
        };
        let o = outcome(Some(0), None, Ended::Exited, vec![start(), e]);
        let a = analyze(&Mode::Trace, Expect::Survive, &[], &o);
        assert!(
            a.findings
                .iter()
                .any(|f| f.code == codes::CTX_DESTROYED_IN_USE)
        );
    }
}
