//! What gpu-doctor's NVML library saw (its event lines, shim_proto::nvml::event), judged:
//! - in a user's program (`inject nvml`, `replay`): how the program ended, which faults reached
//!   it and when, which it never read, and the queries a snapshot could not answer;
//! - in gpu-doctor's own run (`--replay`, `--fault`): the same facts, for the report's `nvml`.
//!
//! Pure: the events in, findings and a digest (the report's `data`) out. docs/nvml.md.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shim_proto::nvml::event::{Event, EventLine, Mode};

use crate::analyze::program::{Expect, judge, verdict};
use crate::facts::program::Outcome;
use crate::report::{Finding, NvmlOrigin, Severity, codes};

/// How the faults fared: per fault (as the library numbered them), the first time each GPU
/// and call got it, and how many faulted answers were read.
#[derive(Debug, Default)]
struct Faults {
    specs: Vec<String>,
    delivered: Vec<Vec<Value>>,
    reads: Vec<u64>,
}

impl Faults {
    /// These faults, numbered in this order, none delivered or read yet.
    fn numbered(specs: &[String]) -> Faults {
        Faults {
            specs: specs.to_vec(),
            delivered: vec![Vec::new(); specs.len()],
            reads: vec![0; specs.len()],
        }
    }
}

/// What the library wrote, grouped.
#[derive(Debug, Default)]
struct Seen {
    /// The processes it loaded into (pid, exe, mode).
    processes: Vec<Value>,
    config_errors: Vec<String>,
    warnings: Vec<String>,
    /// Processes that initialised NVML through it.
    inits: usize,
    faults: Faults,
    missing: Vec<Value>,
    calls: BTreeMap<String, u64>,
    /// Processes that wrote their exit statistics (others were killed or exited without them).
    stats: usize,
}

fn group(events: &[EventLine], start_us: u64) -> Seen {
    let t_ms = |e: &EventLine| e.t_us.saturating_sub(start_us) as f64 / 1e3;
    let mut s = Seen::default();
    for e in events {
        match &e.event {
            Event::Start {
                exe,
                mode,
                faults,
                config_error,
                warnings,
                ..
            } => {
                s.processes
                    .push(json!({"pid": e.pid, "exe": exe, "mode": mode}));
                if let Some(c) = config_error {
                    s.config_errors.push(c.clone());
                }
                s.warnings.extend(warnings.iter().cloned());
                // The copy that applies faults lists them (a forwarding copy under an
                // interposer lists none): that list numbers them.
                if !faults.is_empty() && s.faults.specs.is_empty() {
                    s.faults = Faults::numbered(faults);
                }
            }
            Event::Init { .. } => s.inits += 1,
            Event::Active { .. } => {}
            Event::Fault {
                fault,
                gpu,
                call,
                value,
                ..
            } => {
                if let Some(list) = s.faults.delivered.get_mut(*fault as usize) {
                    list.push(json!({"gpu": gpu, "call": call, "value": value, "t_ms": t_ms(e), "pid": e.pid}));
                }
            }
            Event::Missing {
                call,
                key,
                gpu,
                peer,
                ..
            } => s
                .missing
                .push(json!({"call": call, "key": key, "gpu": gpu, "peer": peer})),
            Event::Stats { calls, reads, .. } => {
                s.stats += 1;
                for (k, n) in calls {
                    *s.calls.entry(k.clone()).or_default() += n;
                }
                for (i, n) in reads.iter().enumerate() {
                    if let Some(r) = s.faults.reads.get_mut(i) {
                        *r += n;
                    }
                }
            }
        }
    }
    // A process killed before its exit statistics still shows the faults it got.
    for (i, d) in s.faults.delivered.iter().enumerate() {
        if s.faults.reads[i] == 0 && !d.is_empty() {
            s.faults.reads[i] = d.len() as u64;
        }
    }
    s
}

fn delivery_text(d: &Value) -> String {
    let gpu = d["gpu"]
        .as_u64()
        .map(|g| format!(" on GPU {g}"))
        .unwrap_or_default();
    format!(
        "{} answered {}{gpu} at {:.0} ms",
        d["call"].as_str().unwrap_or("?"),
        d["value"].as_str().unwrap_or("?"),
        d["t_ms"].as_f64().unwrap_or(0.0)
    )
}

/// Findings about the faults: each one that reached `who` (the program, gpu-doctor), each one
/// it never read.
fn fault_findings(s: &Seen, loaded: bool, who: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, spec) in s.faults.specs.iter().enumerate() {
        let delivered = &s.faults.delivered[i];
        if let Some(first) = delivered.first() {
            out.push(Finding::new(
                Severity::Info,
                codes::FAULT_INJECTED,
                format!(
                    "{spec} reached {who}: {} ({} answer(s) in all).",
                    delivery_text(first),
                    s.faults.reads[i].max(delivered.len() as u64)
                ),
            ));
        } else {
            let why = if !loaded {
                format!("{who} never loaded NVML through gpu-doctor's library")
            } else {
                let calls = shim_proto::nvml::fault::parse_faults(&[spec])
                    .ok()
                    .and_then(|f| f.first().map(|f| f.kind.calls().join(", ")))
                    .unwrap_or_default();
                format!("{who} made none of the calls it changes ({calls})")
            };
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::FAULT_NOT_INJECTED,
                    format!("{spec} never reached {who}: {why}."),
                )
                .hint("The verdict says nothing about how the program handles this fault. Check that it reads this value (or waits for XID events), or give the fault a shorter +DELAY."),
            );
        }
    }
    out
}

/// One finding per configuration the library refused.
fn config_findings(s: &Seen) -> impl Iterator<Item = Finding> + '_ {
    s.config_errors.iter().map(|e| {
        Finding::new(
            Severity::Fail,
            codes::SHIM_CONFIG_ERROR,
            format!("The NVML library refused its configuration: {e}"),
        )
    })
}

/// The snapshot keys the queries with no answer asked for, sorted, each once.
fn missing_keys(missing: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = missing
        .iter()
        .map(|m| m["key"].as_str().unwrap_or("?").to_string())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn missing_finding(missing: &[Value]) -> Option<Finding> {
    if missing.is_empty() {
        return None;
    }
    let keys = missing_keys(missing);
    let shown: Vec<&str> = keys.iter().take(8).map(String::as_str).collect();
    let more = keys.len().saturating_sub(shown.len());
    Some(
        Finding::new(
            Severity::Info,
            codes::REPLAY_QUERY_MISSING,
            format!(
                "{} quer{} the snapshot has no answer for were answered NVML_ERROR_NOT_SUPPORTED: {}{}",
                keys.len(),
                if keys.len() == 1 { "y" } else { "ies" },
                shown.join(", "),
                if more > 0 { format!(" (+{more} more in data.missing)") } else { String::new() }
            ),
        )
        .hint("A real driver answers these; record the snapshot again with this gpu-doctor (`gpu-doctor snapshot -o FILE`) if the program relies on them."),
    )
}

/// The verdict on a program run under the NVML library with `faults` (canonical syntax):
/// findings and the report's data.
pub fn analyze_program(
    expect: Expect,
    command: &[String],
    snapshot: Option<&str>,
    faults: &[String],
    o: &Outcome,
) -> (Vec<Finding>, Value) {
    let mut s = group(&o.nvml_events, o.start_us);
    if s.faults.specs.is_empty() {
        // The library never said which faults it applies (it never loaded): they are these.
        s.faults = Faults::numbered(faults);
    }
    let mut findings = Vec::new();
    let program_pid = o.pid;
    let loaded = !s.processes.is_empty();
    if !loaded && snapshot.is_some() {
        findings.push(
            Finding::new(
                Severity::Warn,
                codes::NVML_NOT_USED,
                "The program never loaded libnvidia-ml (gpu-doctor's library was first on its library path).",
            )
            .hint("Check that the program reads NVML at all, and loads it by name (libnvidia-ml.so.1), not by an absolute path."),
        );
    } else if !loaded {
        findings.push(
            Finding::new(
                Severity::Warn,
                codes::SHIM_NOT_LOADED,
                "gpu-doctor's NVML library never loaded into the program (a static or setuid binary, or a cleared environment).",
            )
            .hint("Run the program directly (not through a wrapper that resets LD_PRELOAD / LD_LIBRARY_PATH), or check `ldd` that it loads libnvidia-ml dynamically."),
        );
    } else if s.inits == 0 {
        findings.push(
            Finding::new(
                Severity::Warn,
                codes::NVML_NOT_USED,
                "The program never initialised NVML (nvmlInit) through gpu-doctor's library.",
            )
            .hint("The program may load NVML later than it ran here, by an absolute path, or through its own table (docs/nvml.md, Known limits)."),
        );
    }
    findings.extend(config_findings(&s));
    findings.extend(fault_findings(&s, loaded && s.inits > 0, "the program"));
    findings.extend(missing_finding(&s.missing));
    let (expectation_met, verdict_finding) = judge(o, expect, "NVML faults");
    findings.extend(verdict_finding);
    let exit = json!({
        "pid": program_pid,
        "code": o.code,
        "signal": o.signal,
        "signal_name": o.signal.map(crate::units::signal_name),
        "ended": o.ended,
    });
    let faults: Vec<Value> = s
        .faults
        .specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            json!({"spec": spec, "reads": s.faults.reads[i], "delivered": s.faults.delivered[i]})
        })
        .collect();
    let data = json!({
        "command": command,
        "pid": program_pid,
        "verdict": verdict(o),
        "expect": expect,
        "expectation_met": expectation_met,
        "exit": exit,
        "duration_ms": o.duration_ms,
        "snapshot": snapshot,
        "library": {"source": o.shim_source, "bad_lines": o.bad_lines, "warnings": s.warnings},
        "processes": s.processes,
        "nvml_initialised": s.inits,
        "faults": faults,
        "missing": s.missing,
        "calls": s.calls,
        "exit_stats_from": s.stats,
    });
    (findings, data)
}

/// What the library served gpu-doctor's own run (the report's `nvml`), and the findings that
/// go with it: faults never read, queries missing from the snapshot.
pub fn origin(
    snapshot: Option<&str>,
    recorded: Option<String>,
    events: &[EventLine],
) -> (NvmlOrigin, Vec<Finding>) {
    let s = group(events, events.first().map(|e| e.t_us).unwrap_or(0));
    let used = events
        .iter()
        .any(|e| matches!(&e.event, Event::Start { mode, .. } if *mode != Mode::Interpose));
    let mut findings = fault_findings(&s, used, "gpu-doctor");
    findings.extend(missing_finding(&s.missing));
    findings.extend(config_findings(&s));
    let origin = NvmlOrigin {
        snapshot: snapshot.map(str::to_string),
        recorded,
        faults: s.faults.specs.clone(),
        delivered: s
            .faults
            .specs
            .iter()
            .zip(&s.faults.delivered)
            .filter_map(|(spec, d)| d.first().map(|d| format!("{spec}: {}", delivery_text(d))))
            .collect(),
        missing_queries: missing_keys(&s.missing),
    };
    (origin, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::program::Ended;

    fn line(pid: u32, t_us: u64, event: Event) -> EventLine {
        EventLine {
            pid,
            tid: pid as u64,
            t_us,
            event,
        }
    }

    fn start(pid: u32, faults: &[&str]) -> EventLine {
        line(
            pid,
            1_000,
            Event::Start {
                loaded_us: 1_000,
                ppid: 1,
                exe: "/usr/bin/python3".into(),
                mode: Mode::Interpose,
                faults: faults.iter().map(|f| f.to_string()).collect(),
                config_error: None,
                warnings: vec![],
                snapshot: None,
                gpus: None,
            },
        )
    }

    fn outcome(code: i32, nvml_events: Vec<EventLine>) -> Outcome {
        Outcome {
            pid: 42,
            code: Some(code),
            signal: None,
            ended: Ended::Exited,
            start_us: 0,
            duration_ms: 300.0,
            events: vec![],
            maps: vec![],
            nvml_events,
            bad_lines: 0,
            shim_source: "embedded".into(),
        }
    }

    fn codes_of(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn a_fault_the_program_read_is_injected_and_one_it_never_read_is_said() {
        let events = vec![
            start(42, &["pcie-width=8@gpu0", "xid=79@gpu1+1s"]),
            line(
                42,
                2_000,
                Event::Init {
                    call: "nvmlInit_v2".into(),
                    rc: 0,
                },
            ),
            line(
                42,
                121_000,
                Event::Fault {
                    fault: 0,
                    spec: "pcie-width=8@gpu0".into(),
                    gpu: Some(0),
                    call: "nvmlDeviceGetCurrPcieLinkWidth".into(),
                    value: "8".into(),
                },
            ),
            line(
                42,
                290_000,
                Event::Stats {
                    calls: [("nvmlDeviceGetCurrPcieLinkWidth".to_string(), 3)].into(),
                    reads: vec![3, 0],
                    missing: 0,
                },
            ),
        ];
        let (f, data) = analyze_program(
            Expect::Survive,
            &["mon".into()],
            None,
            &[],
            &outcome(0, events),
        );
        assert_eq!(
            codes_of(&f),
            [
                codes::FAULT_INJECTED,
                codes::FAULT_NOT_INJECTED,
                codes::PROGRAM_SURVIVED
            ]
        );
        assert!(
            f[0].message
                .contains("nvmlDeviceGetCurrPcieLinkWidth answered 8 on GPU 0 at 121 ms"),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains("nvmlEventSetWait"),
            "{}",
            f[1].message
        );
        assert_eq!(data["faults"][0]["reads"], 3);
        assert_eq!(data["verdict"], "survived");
    }

    #[test]
    fn no_library_no_init_and_a_crash_are_said_apart() {
        let (f, _) = analyze_program(Expect::Survive, &[], None, &[], &outcome(0, vec![]));
        assert_eq!(
            codes_of(&f),
            [codes::SHIM_NOT_LOADED, codes::PROGRAM_SURVIVED]
        );
        let (f, _) = analyze_program(
            Expect::Survive,
            &[],
            None,
            &["gpu-lost@gpu0".into()],
            &outcome(1, vec![start(42, &["gpu-lost@gpu0"])]),
        );
        assert_eq!(
            codes_of(&f),
            [
                codes::NVML_NOT_USED,
                codes::FAULT_NOT_INJECTED,
                codes::PROGRAM_CRASHED
            ]
        );
        assert!(
            f[1].message.contains("never loaded NVML"),
            "{}",
            f[1].message
        );
        assert_eq!(f[2].severity, Severity::Fail);
    }

    #[test]
    fn missing_queries_are_listed_once() {
        let m = |key: &str| {
            line(
                42,
                5_000,
                Event::Missing {
                    call: "nvmlDeviceGetFanSpeed".into(),
                    key: key.into(),
                    gpu: Some(0),
                    peer: None,
                },
            )
        };
        let events = vec![
            start(42, &[]),
            m("fan_speed"),
            m("fan_speed"),
            m("power_usage"),
        ];
        let (origin, f) = origin(Some("box.nvml.json"), None, &events);
        assert_eq!(origin.missing_queries, ["fan_speed", "power_usage"]);
        assert_eq!(codes_of(&f), [codes::REPLAY_QUERY_MISSING]);
        assert!(f[0].message.starts_with("2 queries"), "{}", f[0].message);
    }
}
