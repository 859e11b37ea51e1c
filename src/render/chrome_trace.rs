//! The `trace ctx` timeline as Chrome trace-event JSON (opens in Perfetto and chrome://tracing).
//!
//! A pure function of the report's data, so a saved report exports the same trace
//! (`gpu-doctor trace ctx --from REPORT.json --chrome-trace FILE`). Layout:
//! - one track per OS thread (`thread_name` metadata, "worker 1 · tid 4242"), in first-call order;
//! - one complete slice ("X") per driver call: name = entry point, ts/dur in µs, args = the
//!   context current before and after, the context argument, the result; coloured by result;
//! - thread-hop tasks as enclosing slices ("task 3 (unbound)"), with a flow arrow wherever the
//!   next task runs on another thread, so the hop is visible at a glance;
//! - every failed call again as a thread-scoped instant event ("i", s = "t").

use std::collections::BTreeMap;
#[cfg(test)]
use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::analyze::trace_ctx::{TraceData, ns};
use crate::facts::trace::{CtxRef, THREAD_HOP, TraceEvent};

/// Reserved colour names of the trace viewer.
pub const COLOR_OK: &str = "good";
pub const COLOR_FAILED: &str = "terrible";
/// A success where the documentation expected an error.
pub const COLOR_UNEXPECTED_SUCCESS: &str = "bad";

fn ctx_arg(c: &Option<CtxRef>) -> Value {
    match c {
        Some(c) => json!(format!("{} ({})", c.id, c.ptr)),
        None => json!("none"),
    }
}

fn color(e: &TraceEvent) -> &'static str {
    if e.failed() {
        COLOR_FAILED
    } else if !e.ok {
        COLOR_UNEXPECTED_SUCCESS
    } else {
        COLOR_OK
    }
}

/// Threads in the order of their first call, with the names the probe gave them.
fn thread_order(d: &TraceData) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    let name = |tid: u64| {
        d.threads
            .iter()
            .find(|t| t.tid == tid)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| "thread".into())
    };
    for e in &d.timeline {
        if !out.iter().any(|(t, _)| *t == e.thread) {
            out.push((e.thread, name(e.thread)));
        }
    }
    out
}

/// The trace-event document for a `trace ctx` timeline. Times go through [`ns`], so the export
/// is the same whether it is made from the live timeline or from a report read back.
pub fn export(d: &TraceData) -> Value {
    let pid = d.pid;
    let mut ev: Vec<Value> = Vec::new();
    ev.push(json!({
        "name": "process_name", "ph": "M", "pid": pid,
        "args": { "name": format!("gpu-doctor trace ctx (pid {pid})") }
    }));
    for (i, (tid, name)) in thread_order(d).into_iter().enumerate() {
        ev.push(json!({
            "name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
            "args": { "name": format!("{name} · tid {tid}") }
        }));
        ev.push(json!({
            "name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
            "args": { "sort_index": i }
        }));
    }

    // thread-hop tasks: an enclosing slice each, and a flow arrow to the next task.
    // Variants in the order they ran, each with its tasks' calls by task number.
    let mut passes: Vec<(&str, BTreeMap<u32, Vec<&TraceEvent>>)> = Vec::new();
    for e in d.timeline.iter().filter(|e| e.sub == THREAD_HOP) {
        if let (Some(v), Some(t)) = (e.variant.as_deref(), e.task) {
            let i = match passes.iter().position(|(pv, _)| *pv == v) {
                Some(i) => i,
                None => {
                    passes.push((v, BTreeMap::new()));
                    passes.len() - 1
                }
            };
            passes[i].1.entry(t).or_default().push(e);
        }
    }
    let mut flow_id = 0u64;
    for (v, tasks) in &passes {
        let mut prev: Option<(u64, f64)> = None;
        for (t, evs) in tasks {
            let first = evs[0];
            let last = evs[evs.len() - 1];
            let start = first.t_us;
            let end = (last.t_us + last.dur_us).max(start);
            let failed = evs.iter().filter(|e| e.failed()).count();
            ev.push(json!({
                "name": format!("task {t} ({v})"), "cat": "task", "ph": "X",
                "ts": ns(start), "dur": ns(end - start), "pid": pid, "tid": first.thread,
                "cname": if failed > 0 { COLOR_FAILED } else { COLOR_OK },
                "args": { "variant": v, "task": t, "calls": evs.len(), "failed_calls": failed }
            }));
            if let Some((ptid, pts)) = prev
                && ptid != first.thread
            {
                flow_id += 1;
                ev.push(json!({
                    "name": "next task", "cat": "hop", "ph": "s", "id": flow_id,
                    "ts": ns(pts), "pid": pid, "tid": ptid
                }));
                ev.push(json!({
                    "name": "next task", "cat": "hop", "ph": "f", "bp": "e", "id": flow_id,
                    "ts": ns(start), "pid": pid, "tid": first.thread
                }));
            }
            prev = Some((first.thread, start));
        }
    }

    for e in &d.timeline {
        let mut args = json!({
            "what": e.what,
            "seq": e.seq,
            "result": e.result.to_string(),
            "expected": e.expected.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "ctx_before": ctx_arg(&e.ctx_before),
            "ctx_after": ctx_arg(&e.ctx_after),
        });
        let a = args.as_object_mut().expect("object");
        if e.arg_ctx.is_some() {
            a.insert("ctx_arg".into(), ctx_arg(&e.arg_ctx));
        }
        if e.out_ctx.is_some() {
            a.insert("ctx_returned".into(), ctx_arg(&e.out_ctx));
        }
        if let Some(v) = &e.variant {
            a.insert("variant".into(), json!(v));
        }
        if let Some(t) = e.task {
            a.insert("task".into(), json!(t));
        }
        if let Some(n) = &e.note {
            a.insert("note".into(), json!(n));
        }
        ev.push(json!({
            "name": e.op, "cat": e.sub, "ph": "X",
            "ts": ns(e.t_us), "dur": ns(e.dur_us.max(0.0)), "pid": pid, "tid": e.thread,
            "cname": color(e), "args": args
        }));
        if e.failed() {
            ev.push(json!({
                "name": format!("{} in {}", e.result.name, e.op), "cat": e.sub, "ph": "i", "s": "t",
                "ts": ns(e.t_us + e.dur_us.max(0.0)), "pid": pid, "tid": e.thread,
                "cname": COLOR_FAILED,
                "args": { "result": e.result.to_string(), "ctx_before": ctx_arg(&e.ctx_before), "what": e.what }
            }));
        }
    }
    json!({
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "otherData": {
            "tool": "gpu-doctor",
            "scenario": "trace ctx",
            "cuda_driver": d.cuda_driver,
            "subs": d.subs,
        }
    })
}

/// What [`validate`] counted.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceStats {
    pub complete: usize,
    pub instants: usize,
    pub flows: usize,
    pub named_threads: BTreeSet<u64>,
    /// Threads that carry slices or instants.
    pub threads: BTreeSet<u64>,
}

/// Checks a document against the trace-event format as this exporter uses it: a
/// `traceEvents` array; known phases; integer pid/tid; µs timestamps as non-negative
/// numbers; every "X" with dur ≥ 0; every "i" with a scope; flows with ids; and every
/// thread that carries events named by a `thread_name` metadata event. Tests check every
/// trace the exporter writes with it.
#[cfg(test)]
pub fn validate(doc: &Value) -> Result<TraceStats, String> {
    let evs = doc
        .get("traceEvents")
        .and_then(Value::as_array)
        .ok_or("no traceEvents array")?;
    let mut st = TraceStats::default();
    for (i, e) in evs.iter().enumerate() {
        let at = |m: &str| format!("traceEvents[{i}]: {m}");
        let ph = e
            .get("ph")
            .and_then(Value::as_str)
            .ok_or_else(|| at("no ph"))?;
        e.get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| at("no name"))?;
        e.get("pid")
            .and_then(Value::as_u64)
            .ok_or_else(|| at("pid is not a non-negative integer"))?;
        let tid = e
            .get("tid")
            .map(|t| t.as_u64().ok_or_else(|| at("tid is not an integer")));
        let ts = || -> Result<f64, String> {
            let ts = e
                .get("ts")
                .and_then(Value::as_f64)
                .ok_or_else(|| at("no numeric ts"))?;
            if !(ts.is_finite() && ts >= 0.0) {
                return Err(at(&format!("ts {ts} is not a non-negative µs timestamp")));
            }
            Ok(ts)
        };
        match ph {
            "M" => {
                let args = e
                    .get("args")
                    .and_then(Value::as_object)
                    .ok_or_else(|| at("metadata without args"))?;
                match e["name"].as_str().unwrap_or("") {
                    "thread_name" => {
                        args.get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| at("thread_name without args.name"))?;
                        st.named_threads
                            .insert(tid.ok_or_else(|| at("thread_name without tid"))??);
                    }
                    "process_name" => {
                        args.get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| at("process_name without args.name"))?;
                    }
                    "thread_sort_index" | "process_sort_index" => {
                        args.get("sort_index")
                            .and_then(Value::as_i64)
                            .ok_or_else(|| at("sort index without args.sort_index"))?;
                    }
                    other => return Err(at(&format!("unknown metadata event {other}"))),
                }
            }
            "X" => {
                ts()?;
                let dur = e
                    .get("dur")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| at("X without numeric dur"))?;
                if !(dur.is_finite() && dur >= 0.0) {
                    return Err(at(&format!("X with dur {dur}")));
                }
                st.threads.insert(tid.ok_or_else(|| at("X without tid"))??);
                st.complete += 1;
            }
            "i" | "I" => {
                ts()?;
                let s = e.get("s").and_then(Value::as_str).unwrap_or("t");
                if !matches!(s, "t" | "p" | "g") {
                    return Err(at(&format!("instant scope {s}")));
                }
                st.threads
                    .insert(tid.ok_or_else(|| at("instant without tid"))??);
                st.instants += 1;
            }
            "s" | "t" | "f" => {
                ts()?;
                e.get("id").ok_or_else(|| at("flow without id"))?;
                st.threads
                    .insert(tid.ok_or_else(|| at("flow without tid"))??);
                st.flows += 1;
            }
            other => return Err(at(&format!("phase {other} is not used by this exporter"))),
        }
    }
    if let Some(t) = st.threads.difference(&st.named_threads).next() {
        return Err(format!("tid {t} carries events but has no thread_name"));
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::test_support::hop_timeline;

    #[test]
    fn export_is_valid_and_matches_the_timeline() {
        let d = hop_timeline(4, 8, false);
        let doc = export(&d);
        let st = validate(&doc).expect("valid trace");
        let timeline_threads: BTreeSet<u64> = d.timeline.iter().map(|e| e.thread).collect();
        assert_eq!(st.threads, timeline_threads);
        assert_eq!(st.named_threads, timeline_threads);
        let tasks = 3 * 8;
        assert_eq!(st.complete, d.timeline.len() + tasks);
        assert_eq!(
            st.instants,
            d.timeline.iter().filter(|e| e.failed()).count()
        );
        // a flow (s + f) wherever the next task runs on another thread: every step of the
        // unbound and bound passes, none of the pinned one
        assert_eq!(st.flows, 2 * 2 * 7);
        // survives a round trip through text, as the file is written
        let text = serde_json::to_string(&doc).unwrap();
        validate(&serde_json::from_str(&text).unwrap()).unwrap();
    }

    #[test]
    fn slices_carry_contexts_results_and_colours() {
        let d = hop_timeline(2, 2, false);
        let doc = export(&d);
        let evs = doc["traceEvents"].as_array().unwrap();
        let calls: Vec<&Value> = evs
            .iter()
            .filter(|e| e["ph"] == "X" && e["cat"] != "task")
            .collect();
        // unbound task 1 runs on worker 1 (tid 101) with no context current
        let failed = calls
            .iter()
            .find(|e| e["tid"] == 101 && e["args"]["variant"] == "unbound")
            .unwrap();
        assert_eq!(failed["args"]["ctx_before"], "none");
        assert_eq!(failed["args"]["result"], "CUDA_ERROR_INVALID_CONTEXT (201)");
        assert_eq!(failed["cname"], COLOR_FAILED);
        let ok = calls
            .iter()
            .find(|e| e["tid"] == 100 && e["name"] == "cuMemsetD32_v2")
            .unwrap();
        assert_eq!(ok["cname"], COLOR_OK);
        assert!(
            ok["args"]["ctx_before"]
                .as_str()
                .unwrap()
                .starts_with("ctx#1 (")
        );
        let names: Vec<&str> = evs
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "thread-hop worker 0 · tid 100",
                "thread-hop worker 1 · tid 101"
            ]
        );
        let instant = evs.iter().find(|e| e["ph"] == "i").unwrap();
        assert_eq!(instant["s"], "t");
        assert_eq!(instant["tid"], 101);
    }

    #[test]
    fn validator_rejects_what_viewers_reject() {
        let good = export(&hop_timeline(2, 2, false));
        let mut bad = good.clone();
        let x = bad["traceEvents"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["ph"] == "X")
            .unwrap();
        x["dur"] = json!(-1.0);
        assert!(validate(&bad).unwrap_err().contains("dur"));
        let mut bad = good.clone();
        bad["traceEvents"]
            .as_array_mut()
            .unwrap()
            .retain(|e| !(e["name"] == "thread_name" && e["tid"] == 101));
        assert!(validate(&bad).unwrap_err().contains("tid 101"));
        let mut bad = good.clone();
        bad["traceEvents"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "x", "ph": "Q", "pid": 1}));
        assert!(validate(&bad).unwrap_err().contains("phase Q"));
        let mut bad = good;
        bad["traceEvents"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "x", "ph": "X", "pid": 1, "tid": 100, "ts": "soon", "dur": 1}));
        assert!(validate(&bad).unwrap_err().contains("ts"));
        assert!(validate(&json!({"events": []})).is_err());
    }
}
