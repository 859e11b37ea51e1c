//! `trace ctx`: the context timeline model, and pure analysis over it — per-thread summary,
//! modelled context-stack depth, primary retain counts, and one finding per failure pattern.
//!
//! Everything here works on what a report's `data` holds ([`TraceData`]), so a saved report
//! (`trace ctx --from REPORT.json`) is re-analysed with exactly the code that made it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::facts::trace::{
    BOUND, CtxInfo, HopFacts, INVALID_CONTEXT, MemoryCheck, MixupFacts, PINNED, PrimaryFacts,
    SUCCESS, THREAD_HOP, ThreadInfo, TraceEvent, UNBOUND,
};
use crate::report::{Code, Finding, Severity, codes};

/// Memory above the baseline that still counts as returned (NVML rounds, the driver keeps
/// small per-process structures for a moment).
pub const MEMORY_TOLERANCE_BYTES: u64 = 16 << 20;

/// Per-thread summary row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub tid: u64,
    pub name: String,
    pub calls: u32,
    /// Calls that did not answer CUDA_SUCCESS.
    pub failures: u32,
    /// Calls whose answer was not among the expected ones.
    pub unexpected: u32,
    /// "CUDA_ERROR_INVALID_CONTEXT (201) ×12"
    pub failure_codes: Vec<String>,
    /// Context ids current on this thread at some point, or handed to / by its calls.
    pub contexts_seen: Vec<String>,
    /// Context-stack depth as modelled from the calls (create/push +1, pop −1, …).
    pub max_stack_depth: u32,
    pub final_stack_depth: u32,
    pub first_us: f64,
    pub last_us: f64,
}

/// Everything `trace ctx` keeps in `report.data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceData {
    /// Sub-scenarios that ran.
    pub subs: Vec<String>,
    /// "13.0" (cuDriverGetVersion).
    #[serde(default)]
    pub cuda_driver: Option<String>,
    /// The process the calls ran in (the isolated child).
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub threads: Vec<ThreadInfo>,
    #[serde(default)]
    pub contexts: Vec<CtxInfo>,
    /// Every driver call, in order.
    #[serde(default)]
    pub timeline: Vec<TraceEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_hop: Option<HopFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mixup: Option<MixupFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<PrimaryFacts>,
    #[serde(default)]
    pub memory: Vec<MemoryCheck>,
    /// Computed by [`summarize`] (kept for renderers and readers of the JSON).
    #[serde(default)]
    pub summary: Vec<ThreadSummary>,
}

/// Per-thread summary: calls, failures, contexts seen, modelled stack depth.
pub fn summarize(timeline: &[TraceEvent], threads: &[ThreadInfo]) -> Vec<ThreadSummary> {
    let depths = stack_depths(timeline);
    let mut order: Vec<u64> = Vec::new();
    for e in timeline {
        if !order.contains(&e.thread) {
            order.push(e.thread);
        }
    }
    order
        .into_iter()
        .map(|tid| {
            let evs: Vec<&TraceEvent> = timeline.iter().filter(|e| e.thread == tid).collect();
            let mut codes_count: BTreeMap<String, u32> = BTreeMap::new();
            let mut seen: Vec<String> = Vec::new();
            for e in &evs {
                if e.failed() {
                    *codes_count.entry(e.result.to_string()).or_default() += 1;
                }
                for c in [&e.ctx_before, &e.ctx_after, &e.arg_ctx, &e.out_ctx]
                    .into_iter()
                    .flatten()
                {
                    if !seen.contains(&c.id) {
                        seen.push(c.id.clone());
                    }
                }
            }
            let (max_d, final_d) = depths.get(&tid).copied().unwrap_or((0, 0));
            ThreadSummary {
                tid,
                name: threads
                    .iter()
                    .find(|t| t.tid == tid)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| format!("tid {tid}")),
                calls: evs.len() as u32,
                failures: evs.iter().filter(|e| e.failed()).count() as u32,
                unexpected: evs.iter().filter(|e| !e.ok).count() as u32,
                failure_codes: codes_count
                    .into_iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect(),
                contexts_seen: seen,
                max_stack_depth: max_d,
                final_stack_depth: final_d,
                first_us: evs.first().map(|e| ns(e.t_us)).unwrap_or(0.0),
                last_us: evs.last().map(|e| ns(e.t_us + e.dur_us)).unwrap_or(0.0),
            }
        })
        .collect()
}

/// How an entry got onto a thread's context stack.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// cuCtxCreate / cuCtxPushCurrent.
    Pushed(String),
    /// cuCtxSetCurrent on an empty stack, or replacing the top.
    Bound(String),
}

/// A pop that did something other than undo the same thread's push.
#[derive(Debug, Clone, PartialEq)]
pub struct StackIssue {
    pub seq: u32,
    pub thread: u64,
    pub sub: String,
    /// "empty" (pop with nothing on the stack) or "bound" (popped a cuCtxSetCurrent binding).
    pub kind: &'static str,
    pub result: Code,
    pub ok: bool,
}

/// Replays the documented stack rules over each thread's successful calls: cuCtxCreate and
/// cuCtxPushCurrent push; cuCtxPopCurrent pops; cuCtxSetCurrent(ctx) replaces the top (pushes
/// on an empty stack), cuCtxSetCurrent(NULL) pops; cuCtxDestroy pops when the context is current
/// on the calling thread. Returns the (max, final) depth per thread and the pops that undid
/// no push of the same thread.
fn replay_stacks(timeline: &[TraceEvent]) -> (BTreeMap<u64, (u32, u32)>, Vec<StackIssue>) {
    let mut stacks: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
    let mut depth: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    let mut issues = Vec::new();
    for e in timeline {
        let st = stacks.entry(e.thread).or_default();
        let arg = e.arg_ctx.as_ref().map(|c| c.id.clone());
        let succeeded = !e.failed();
        match e.op.as_str() {
            "cuCtxCreate_v2" | "cuCtxCreate" if succeeded => {
                if let Some(c) = e.out_ctx.as_ref() {
                    st.push(Entry::Pushed(c.id.clone()));
                }
            }
            "cuCtxPushCurrent_v2" | "cuCtxPushCurrent" if succeeded => {
                if let Some(a) = arg {
                    st.push(Entry::Pushed(a));
                }
            }
            "cuCtxPopCurrent_v2" | "cuCtxPopCurrent" => {
                if succeeded {
                    if let Some(Entry::Bound(_)) = st.pop() {
                        issues.push(StackIssue {
                            seq: e.seq,
                            thread: e.thread,
                            sub: e.sub.clone(),
                            kind: "bound",
                            result: e.result.clone(),
                            ok: e.ok,
                        });
                    }
                } else if st.is_empty() || e.ctx_before.is_none() {
                    issues.push(StackIssue {
                        seq: e.seq,
                        thread: e.thread,
                        sub: e.sub.clone(),
                        kind: "empty",
                        result: e.result.clone(),
                        ok: e.ok,
                    });
                }
            }
            "cuCtxSetCurrent" if succeeded => match arg {
                Some(a) => {
                    st.pop();
                    st.push(Entry::Bound(a));
                }
                None => {
                    st.pop();
                }
            },
            "cuCtxDestroy_v2" | "cuCtxDestroy"
                if succeeded
                    && arg.is_some()
                    && e.ctx_before.as_ref().map(|c| &c.id) == arg.as_ref() =>
            {
                st.pop();
            }
            _ => {}
        }
        let d = st.len() as u32;
        let entry = depth.entry(e.thread).or_insert((0, 0));
        entry.0 = entry.0.max(d);
        entry.1 = d;
    }
    (depth, issues)
}

/// (max, final) modelled stack depth per thread.
pub fn stack_depths(timeline: &[TraceEvent]) -> BTreeMap<u64, (u32, u32)> {
    replay_stacks(timeline).0
}

/// Pops that were not balanced by the same thread's push.
pub fn stack_issues(timeline: &[TraceEvent]) -> Vec<StackIssue> {
    replay_stacks(timeline).1
}

/// Primary-context retain count after each successful retain/release, as (seq, count): one
/// count for the whole timeline (primary-lifetime works on one device). The driver does not
/// expose the count; this replays the calls.
pub fn primary_retain_counts(timeline: &[TraceEvent]) -> Vec<(u32, i64)> {
    let mut count = 0i64;
    let mut out = Vec::new();
    for e in timeline {
        if e.failed() {
            continue;
        }
        match e.op.as_str() {
            "cuDevicePrimaryCtxRetain" => count += 1,
            "cuDevicePrimaryCtxRelease_v2" | "cuDevicePrimaryCtxRelease" => count -= 1,
            _ => continue,
        }
        out.push((e.seq, count));
    }
    out
}

/// The middle value (the upper one of the two middle values of an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// Median duration of cuCtxSetCurrent in the bound thread-hop variant: what the fix costs.
pub fn bind_cost_us(timeline: &[TraceEvent]) -> Option<f64> {
    median(
        timeline
            .iter()
            .filter(|e| {
                e.sub == THREAD_HOP
                    && e.variant.as_deref() == Some(BOUND)
                    && e.op == "cuCtxSetCurrent"
                    && !e.failed()
            })
            .map(|e| e.dur_us)
            .collect(),
    )
}

/// Median duration of a successful cuCtxCreate_v2, in milliseconds.
pub fn ctx_create_ms(timeline: &[TraceEvent]) -> Option<f64> {
    median(
        timeline
            .iter()
            .filter(|e| e.op == "cuCtxCreate_v2" && !e.failed())
            .map(|e| e.dur_us / 1e3)
            .collect(),
    )
}

/// Per variant of thread-hop: (tasks, failed tasks, threads with failures) from the timeline.
pub fn hop_outcome(timeline: &[TraceEvent], variant: &str) -> (u32, u32, BTreeSet<u64>) {
    let mut tasks: BTreeMap<u32, bool> = BTreeMap::new();
    let mut threads = BTreeSet::new();
    for e in timeline
        .iter()
        .filter(|e| e.sub == THREAD_HOP && e.variant.as_deref() == Some(variant))
    {
        let Some(t) = e.task else { continue };
        let failed = tasks.entry(t).or_insert(false);
        if e.failed() {
            *failed = true;
            threads.insert(e.thread);
        }
    }
    let failed = tasks.values().filter(|f| **f).count() as u32;
    (tasks.len() as u32, failed, threads)
}

fn severity(all_expected: bool) -> Severity {
    if all_expected {
        Severity::Info
    } else {
        Severity::Warn
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One finding per failure pattern, with the fix as hint. Patterns the scenario provokes on
/// purpose and the driver answered as documented are `info`; the same pattern answered
/// otherwise is `warn`; any call whose answer was not among the documented ones (and that is
/// not already a report step) is a `fail` STEP_MISMATCH.
pub fn findings(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    let tl = &d.timeline;

    // Calls outside the steps that answered against the documentation.
    for e in tl.iter().filter(|e| !e.ok && !e.step) {
        let expected: Vec<String> = e.expected.iter().map(Code::to_string).collect();
        out.push(
            Finding::new(
                Severity::Fail,
                codes::STEP_MISMATCH,
                format!(
                    "timeline #{} ({}{}{}): {} on thread {} answered {}, expected {}",
                    e.seq,
                    e.sub,
                    e.variant
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    e.task.map(|t| format!(", task {t}")).unwrap_or_default(),
                    e.op,
                    e.thread,
                    e.result,
                    expected.join(" or ")
                ),
            )
            .hint(e.note.clone().unwrap_or_else(|| {
                "The driver answered differently from its documentation; compare with a known-good report (`gpu-doctor compare`).".into()
            })),
        );
    }

    // No context current: INVALID_CONTEXT on a thread where cuCtxGetCurrent said none.
    let no_ctx: Vec<&TraceEvent> = tl
        .iter()
        .filter(|e| {
            e.result.code == INVALID_CONTEXT
                && e.ctx_before.is_none()
                && !e.op.starts_with("cuCtxPopCurrent")
        })
        .collect();
    if !no_ctx.is_empty() {
        let threads: BTreeSet<u64> = no_ctx.iter().map(|e| e.thread).collect();
        let ops: BTreeSet<&str> = no_ctx.iter().map(|e| e.op.as_str()).collect();
        let mut per_sub: Vec<(&str, usize)> = Vec::new();
        for e in &no_ctx {
            match per_sub.iter_mut().find(|(s, _)| *s == e.sub) {
                Some((_, n)) => *n += 1,
                None => per_sub.push((&e.sub, 1)),
            }
        }
        let subs = if per_sub.len() > 1 {
            format!(
                " [{}]",
                per_sub
                    .iter()
                    .map(|(s, n)| format!("{s}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let mut msg = format!(
            "{} on {} answered CUDA_ERROR_INVALID_CONTEXT (201) because no context was current on the calling thread ({}){subs}",
            plural(no_ctx.len(), "call", "calls"),
            plural(threads.len(), "thread", "threads"),
            ops.into_iter().collect::<Vec<_>>().join(", ")
        );
        if let Some(h) = &d.thread_hop {
            let (tasks, failed, ft) = hop_outcome(tl, UNBOUND);
            if tasks > 0 {
                msg.push_str(&format!(
                    ". thread-hop: {failed} of {tasks} tasks failed when work hopped off the creator thread (tid {}) onto {} of a pool of {}",
                    h.creator_tid,
                    plural(ft.len(), "other thread", "other threads"),
                    h.threads
                ));
                if let Some(r) = h.runs.iter().find(|r| r.variant == UNBOUND) {
                    msg.push_str(&format!(
                        "; {} of their writes never reached the GPU",
                        r.unwritten.len()
                    ));
                }
                let fixed: Vec<String> = [BOUND, PINNED]
                    .iter()
                    .filter_map(|v| {
                        let (t, f, _) = hop_outcome(tl, v);
                        (t > 0).then(|| format!("{v}: {f} of {t} failed"))
                    })
                    .collect();
                if !fixed.is_empty() {
                    msg.push_str(&format!(". Fixed variants — {}", fixed.join(", ")));
                }
            }
        }
        let mut hint = "Bind the context at the start of every task (cuCtxSetCurrent(ctx); cudaSetDevice(n) in the runtime): a pool, a work-stealing executor or Go's scheduler can run the next step on any OS thread. Or pin the task to one OS thread (runtime.LockOSThread in Go, a dedicated thread per GPU).".to_string();
        if let Some(us) = bind_cost_us(tl) {
            hint.push_str(&format!(" Binding costs ~{us:.1} µs per task here."));
        }
        out.push(
            Finding::new(
                severity(no_ctx.iter().all(|e| e.ok)),
                codes::CONTEXT_NOT_CURRENT,
                msg,
            )
            .hint(hint),
        );
    }

    // Device mix-up: memory landed in a context other than the one the code meant.
    if let Some(m) = &d.device_mixup {
        for c in &m.cases {
            if c.landed_ctx.is_some() && c.landed_ctx != c.current_ctx {
                out.push(
                    Finding::new(
                        Severity::Fail,
                        codes::STEP_MISMATCH,
                        format!(
                            "device-mixup ({}): cuMemAlloc_v2 with {} current returned memory that cuPointerGetAttribute places in {}",
                            c.case,
                            c.current_ctx.as_deref().unwrap_or("no context"),
                            c.landed_ctx.as_deref().unwrap_or("-")
                        ),
                    )
                    .hint("The driver documents that memory is allocated in the current context; compare the driver version with a known-good report."),
                );
            }
            let mismatch = c.landed_ctx.as_deref().is_some_and(|l| l != c.intended_ctx)
                || c.landed_device.is_some_and(|l| l != c.intended_device);
            if mismatch {
                let where_ = if m.mode == "two-gpus" {
                    format!(
                        "on CUDA device {} instead of device {}",
                        c.landed_device.map(|x| x.to_string()).unwrap_or("?".into()),
                        c.intended_device
                    )
                } else {
                    format!(
                        "in another context on the same GPU (device {})",
                        c.intended_device
                    )
                };
                out.push(
                    Finding::new(
                        if c.deliberate { Severity::Info } else { Severity::Warn },
                        codes::DEVICE_MIXUP,
                        format!(
                            "device-mixup ({}): memory meant for {} (device {}) was allocated while {} was current: cuPointerGetAttribute says it lives in {} {where_}; the allocation itself answered CUDA_SUCCESS, so nothing told the caller",
                            c.case,
                            c.intended_ctx,
                            c.intended_device,
                            c.current_ctx.as_deref().unwrap_or("no context"),
                            c.landed_ctx.as_deref().unwrap_or("?"),
                        ),
                    )
                    .hint("Make the intended context current before each unit of work (cuCtxSetCurrent / cudaSetDevice), not once at start-up; at API boundaries assert where a pointer lives with cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL) or cudaPointerGetAttributes."),
                );
            } else if !c.deliberate && c.landed_ctx.is_none() {
                out.push(Finding::new(
                    Severity::Warn,
                    codes::DEVICE_MIXUP,
                    format!(
                        "device-mixup ({}): where the memory landed could not be read",
                        c.case
                    ),
                ));
            }
        }
    }

    // Context stack: pops with nothing to pop, or popping someone else's binding.
    let issues = stack_issues(tl);
    if !issues.is_empty() {
        let empty: Vec<&StackIssue> = issues.iter().filter(|i| i.kind == "empty").collect();
        let bound: Vec<&StackIssue> = issues.iter().filter(|i| i.kind == "bound").collect();
        let mut parts = Vec::new();
        if !empty.is_empty() {
            let answers: BTreeSet<String> = empty.iter().map(|i| i.result.to_string()).collect();
            let threads: BTreeSet<u64> = empty.iter().map(|i| i.thread).collect();
            parts.push(format!(
                "{} with an empty context stack on {} answered {}",
                plural(empty.len(), "cuCtxPopCurrent", "cuCtxPopCurrent calls"),
                plural(threads.len(), "thread", "threads"),
                answers.into_iter().collect::<Vec<_>>().join(" / ")
            ));
        }
        if !bound.is_empty() {
            parts.push(format!(
                "{} popped a context that was bound with cuCtxSetCurrent, not pushed — the driver answers CUDA_SUCCESS and the thread is left with no context",
                plural(bound.len(), "cuCtxPopCurrent", "cuCtxPopCurrent calls")
            ));
        }
        out.push(
            Finding::new(
                severity(issues.iter().all(|i| i.ok)),
                codes::CTX_STACK_UNBALANCED,
                format!("context stack unbalanced: {}", parts.join("; ")),
            )
            .hint("Pair every cuCtxPushCurrent with exactly one cuCtxPopCurrent on the same thread (a scope guard); never pop a context you did not push; use cuCtxSetCurrent when you only need to bind."),
        );
    }

    // Primary context: released to zero under another user, and the flags question.
    if let Some(p) = &d.primary {
        if let Some(used) = &p.use_after_release {
            let over = p
                .over_release
                .as_ref()
                .map(|c| format!("; its own release afterwards answered {}", c))
                .unwrap_or_default();
            let fixed = p
                .fixed_use
                .as_ref()
                .map(|c| {
                    format!(
                        ". With one retain for the whole process the same work answered {}",
                        c
                    )
                })
                .unwrap_or_default();
            out.push(
                Finding::new(
                    severity(used.code != SUCCESS),
                    codes::PRIMARY_CTX_RELEASED,
                    format!(
                        "primary context of CUDA device {}: one user released it to a retain count of zero while another still held memory in it; the driver reset the context ({}), and the other user's next {} on its old pointer answered {}{over}{fixed}",
                        p.device,
                        match &p.state_after_release_to_zero {
                            Some(s) => format!("cuDevicePrimaryCtxGetState: active={}", s.active as u8),
                            None => "state not read".into(),
                        },
                        p.use_after_release_call,
                        used,
                    ),
                )
                .device(p.nvml)
                .hint("Retain the primary context once per process (one owner, at start-up) and release it once at exit; a library must release only the retains it took itself — never to 'clean up' someone else's."),
            );
        }
        if let Some(rc) = &p.set_flags_while_active {
            let driver = format!(
                "CUDA {}.{}",
                p.driver_version / 1000,
                (p.driver_version % 1000) / 10
            );
            let state = p
                .state_after_set_flags
                .map(|s| {
                    format!(
                        "cuDevicePrimaryCtxGetState then reports flags 0x{:x}",
                        s.flags
                    )
                })
                .unwrap_or_else(|| "the state could not be read".into());
            let ctx_flags = p
                .ctx_flags_after_set
                .map(|f| format!(", cuCtxGetFlags in the running context 0x{f:x}"))
                .unwrap_or_default();
            let (sev, msg, hint) = if rc.code == SUCCESS {
                (
                    Severity::Info,
                    format!(
                        "cuDevicePrimaryCtxSetFlags_v2(0x{:x}, CU_CTX_SCHED_BLOCKING_SYNC) on an ACTIVE primary context answered CUDA_SUCCESS on this driver ({driver}); {state}{ctx_flags}. The often repeated rule that scheduling flags must be set before the primary context exists does not hold here",
                        p.requested_flags
                    ),
                    "Flags can be changed on an active primary context with this driver; still set them before first use if you must support old drivers, where the call answered CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE (708), and check cuCtxGetFlags for what the running context uses.",
                )
            } else {
                (
                    Severity::Info,
                    format!(
                        "cuDevicePrimaryCtxSetFlags_v2(0x{:x}) on an active primary context answered {} on this driver ({driver}); {state}{ctx_flags}",
                        p.requested_flags, rc
                    ),
                    "Set the primary context's flags before anything retains it (cuDevicePrimaryCtxSetFlags / cudaSetDeviceFlags first thing in the process).",
                )
            };
            out.push(
                Finding::new(sev, codes::PRIMARY_CTX_FLAGS, msg)
                    .device(p.nvml)
                    .hint(hint),
            );
        }
    }

    // Memory back to baseline.
    for m in &d.memory {
        if let (Some(b), Some(a)) = (m.before_bytes, m.after_bytes)
            && a > b + MEMORY_TOLERANCE_BYTES
        {
            let others = if m.other_pids.is_empty() {
                String::new()
            } else {
                format!(
                    " (other processes on this GPU: {:?}; their memory counts too)",
                    m.other_pids
                )
            };
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::MEMORY_NOT_RETURNED,
                    format!(
                        "GPU {}: {} MiB in use after the contexts were destroyed and released vs {} MiB before{others}",
                        m.nvml,
                        a >> 20,
                        b >> 20
                    ),
                )
                .device(m.nvml)
                .hint("Re-run; if it repeats with no other process on the GPU, a context or allocation was not given back."),
            );
        }
    }
    out
}

/// The trace ctx report itself, or the one a suite report holds.
pub fn report_of(report: &crate::report::Report) -> Result<&crate::report::Report, String> {
    if report.scenario == "trace ctx" {
        return Ok(report);
    }
    report
        .reports
        .iter()
        .find(|r| r.scenario == "trace ctx")
        .ok_or_else(|| format!("a '{}' report, not a trace ctx report", report.scenario))
}

/// The `trace ctx` data of a saved report (a trace ctx report, or a suite report holding one).
pub fn data_of(report: &crate::report::Report) -> Result<TraceData, String> {
    let report = report_of(report)?;
    if report.data.get("timeline").is_none() {
        return Err("a trace ctx report without data.timeline".into());
    }
    serde_json::from_value(report.data.clone()).map_err(|e| format!("data: {e}"))
}

/// Microseconds rounded to the nanosecond, so a summary (or a Chrome trace) computed from a
/// timeline read back from JSON equals the one computed live (float sums can differ in the
/// last bits).
pub(crate) fn ns(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::facts::trace::{
        CtxRef, DEVICE_MIXUP, HopRun, MixupCase, PRIMARY_LIFETIME, PUSH_POP, PrimaryState,
    };

    pub fn code(c: i64) -> Code {
        let name = match c {
            0 => "CUDA_SUCCESS",
            201 => "CUDA_ERROR_INVALID_CONTEXT",
            709 => "CUDA_ERROR_CONTEXT_IS_DESTROYED",
            708 => "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE",
            400 => "CUDA_ERROR_INVALID_HANDLE",
            _ => "CUDA_ERROR_UNKNOWN",
        };
        Code {
            code: c,
            name: name.into(),
        }
    }

    pub fn cref(id: &str) -> Option<CtxRef> {
        Some(CtxRef {
            id: id.into(),
            ptr: format!("0x{}", id.len()),
        })
    }

    /// A constructed timeline builder: events get seq/time in order.
    #[derive(Default)]
    pub struct Tl {
        pub events: Vec<TraceEvent>,
    }

    impl Tl {
        #[allow(clippy::too_many_arguments)]
        pub fn ev(
            &mut self,
            thread: u64,
            sub: &str,
            variant: Option<&str>,
            task: Option<u32>,
            op: &str,
            arg: Option<&str>,
            before: Option<&str>,
            after: Option<&str>,
            result: i64,
            expected: &[i64],
        ) -> &mut TraceEvent {
            let seq = self.events.len() as u32;
            self.events.push(TraceEvent {
                seq,
                t_us: 10.0 * seq as f64,
                dur_us: 2.5,
                thread,
                sub: sub.into(),
                variant: variant.map(Into::into),
                task,
                what: op.into(),
                op: op.into(),
                arg_ctx: arg.and_then(cref),
                out_ctx: None,
                ctx_before: before.and_then(cref),
                ctx_after: after.and_then(cref),
                result: code(result),
                expected: expected.iter().map(|c| code(*c)).collect(),
                ok: expected.contains(&result),
                step: false,
                note: None,
            });
            self.events.last_mut().unwrap()
        }
    }

    /// One call outside thread-hop: thread, op, argument context, context current before and
    /// after, result, expected results.
    pub type Row<'a> = (
        u64,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        i64,
        &'a [i64],
    );

    impl Tl {
        /// One event per row (no variant, no task).
        pub fn calls(&mut self, sub: &str, rows: &[Row]) {
            for &(thread, op, arg, before, after, result, expected) in rows {
                self.ev(
                    thread, sub, None, None, op, arg, before, after, result, expected,
                );
            }
        }
    }

    /// A thread-hop run as the probe records it: creator tid 100, workers 101.. .
    pub fn hop_timeline(threads: u32, tasks: u32, bound_fails: bool) -> TraceData {
        let mut tl = Tl::default();
        let c = Some("ctx#1");
        tl.ev(
            100,
            THREAD_HOP,
            None,
            None,
            "cuCtxCreate_v2",
            None,
            None,
            c,
            0,
            &[0],
        )
        .out_ctx = cref("ctx#1");
        for variant in [UNBOUND, BOUND, PINNED] {
            for k in 0..tasks {
                let w = if variant == PINNED { 0 } else { k % threads };
                let tid = 100 + w as u64;
                let has_ctx = w == 0 || variant != UNBOUND;
                if variant == BOUND {
                    let before = if w == 0 || k >= threads { c } else { None };
                    tl.ev(
                        tid,
                        THREAD_HOP,
                        Some(variant),
                        Some(k),
                        "cuCtxSetCurrent",
                        c,
                        before,
                        c,
                        0,
                        &[0],
                    );
                }
                let exp = if has_ctx { 0 } else { 201 };
                let broken = bound_fails && variant == BOUND && w == 1;
                let cur = if has_ctx && !broken { c } else { None };
                let res = if broken { 201 } else { exp };
                for op in ["cuMemsetD32_v2", "cuMemAlloc_v2"] {
                    tl.ev(
                        tid,
                        THREAD_HOP,
                        Some(variant),
                        Some(k),
                        op,
                        None,
                        cur,
                        cur,
                        res,
                        &[exp],
                    );
                }
                if res == 0 {
                    tl.ev(
                        tid,
                        THREAD_HOP,
                        Some(variant),
                        Some(k),
                        "cuMemFree_v2",
                        None,
                        cur,
                        cur,
                        0,
                        &[0],
                    );
                }
            }
        }
        let unwritten: Vec<u32> = (0..tasks).filter(|k| k % threads != 0).collect();
        TraceData {
            subs: vec![THREAD_HOP.into()],
            pid: 42,
            threads: (0..threads)
                .map(|w| ThreadInfo {
                    tid: 100 + w as u64,
                    name: format!("thread-hop worker {w}"),
                })
                .collect(),
            timeline: tl.events,
            thread_hop: Some(HopFacts {
                threads,
                tasks,
                ctx: "ctx#1".into(),
                creator_tid: 100,
                runs: vec![HopRun {
                    variant: UNBOUND.into(),
                    tasks,
                    threads_used: threads,
                    written: tasks - unwritten.len() as u32,
                    unwritten,
                }],
            }),
            ..Default::default()
        }
    }

    fn of_code<'a>(f: &'a [Finding], code: &str) -> Vec<&'a Finding> {
        f.iter().filter(|x| x.code == code).collect()
    }

    #[test]
    fn summary_counts_calls_failures_and_contexts_per_thread() {
        let d = hop_timeline(4, 16, false);
        let s = summarize(&d.timeline, &d.threads);
        assert_eq!(s.len(), 4);
        let w0 = &s[0];
        assert_eq!(w0.tid, 100);
        assert_eq!(w0.name, "thread-hop worker 0");
        // create + unbound 4×3 + bound 4×4 + pinned 16×3
        assert_eq!(w0.calls, 1 + 12 + 16 + 48);
        assert_eq!(w0.failures, 0);
        assert_eq!(w0.contexts_seen, vec!["ctx#1".to_string()]);
        let w1 = &s[1];
        // unbound: 4 tasks × 2 failing calls; bound: 4 × 4 ok
        assert_eq!(w1.calls, 8 + 16);
        assert_eq!(w1.failures, 8);
        assert_eq!(w1.unexpected, 0);
        assert_eq!(
            w1.failure_codes,
            vec!["CUDA_ERROR_INVALID_CONTEXT (201) ×8"]
        );
        assert_eq!(w1.max_stack_depth, 1);
        assert_eq!(w1.final_stack_depth, 1);
        assert!(w1.first_us < w1.last_us);
    }

    #[test]
    fn thread_hop_is_one_info_finding_with_the_fix() {
        let d = hop_timeline(4, 16, false);
        let f = findings(&d);
        let c = of_code(&f, codes::CONTEXT_NOT_CURRENT);
        assert_eq!(c.len(), 1, "{f:#?}");
        assert_eq!(c[0].severity, Severity::Info);
        assert!(
            c[0].message.contains("24 calls on 3 threads"),
            "{}",
            c[0].message
        );
        assert!(
            c[0].message.contains("12 of 16 tasks failed"),
            "{}",
            c[0].message
        );
        assert!(
            c[0].message.contains("bound: 0 of 16 failed"),
            "{}",
            c[0].message
        );
        assert!(c[0].hint.as_deref().unwrap().contains("cuCtxSetCurrent"));
        assert!(c[0].hint.as_deref().unwrap().contains("µs per task"));
        assert!(of_code(&f, codes::STEP_MISMATCH).is_empty());
    }

    #[test]
    fn a_failing_bound_variant_is_a_fail() {
        let d = hop_timeline(4, 8, true);
        let f = findings(&d);
        let m = of_code(&f, codes::STEP_MISMATCH);
        assert_eq!(m.len(), 4, "{f:#?}"); // tasks 1 and 5, two calls each
        assert!(m.iter().all(|x| x.severity == Severity::Fail));
        assert!(
            m[0].message.contains("thread-hop bound, task 1"),
            "{}",
            m[0].message
        );
        // the pattern itself is now unexpected too: warn, not info
        let c = of_code(&f, codes::CONTEXT_NOT_CURRENT);
        assert_eq!(c[0].severity, Severity::Warn);
        assert_eq!(hop_outcome(&d.timeline, BOUND).1, 2);
    }

    #[test]
    fn stack_model_and_unbalanced_pops() {
        let mut tl = Tl::default();
        let (c1, c2) = (Some("ctx#1"), Some("ctx#2"));
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // balanced then one too many
            (1, "cuCtxPushCurrent_v2", c1, None, c1, 0, &[0]),
            (1, "cuCtxPushCurrent_v2", c2, c1, c2, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, c2, c1, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, c1, None, 0, &[0]),
            (1, "cuCtxPopCurrent_v2", None, None, None, 201, &[201]),
            // never pushed
            (2, "cuCtxPopCurrent_v2", None, None, None, 201, &[201]),
            // bound with SetCurrent, then popped, then a call with nothing current
            (3, "cuCtxSetCurrent", c1, None, c1, 0, &[0]),
            (3, "cuCtxPopCurrent_v2", None, c1, None, 0, &[0]),
            (3, "cuMemAlloc_v2", None, None, None, 201, &[201]),
        ];
        tl.calls(PUSH_POP, rows);
        let depths = stack_depths(&tl.events);
        assert_eq!(depths[&1], (2, 0));
        assert_eq!(depths[&2], (0, 0));
        assert_eq!(depths[&3], (1, 0));
        let issues = stack_issues(&tl.events);
        let kinds: Vec<(u64, &str)> = issues.iter().map(|i| (i.thread, i.kind)).collect();
        assert_eq!(kinds, vec![(1, "empty"), (2, "empty"), (3, "bound")]);
        let d = TraceData {
            timeline: tl.events,
            ..Default::default()
        };
        let f = findings(&d);
        let s = of_code(&f, codes::CTX_STACK_UNBALANCED);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].severity, Severity::Info);
        assert!(s[0].message.contains("2 cuCtxPopCurrent calls with an empty context stack on 2 threads answered CUDA_ERROR_INVALID_CONTEXT (201)"), "{}", s[0].message);
        assert!(s[0].message.contains("bound with cuCtxSetCurrent"));
        // the alloc after the popped binding is a no-context failure too
        assert_eq!(of_code(&f, codes::CONTEXT_NOT_CURRENT).len(), 1);
    }

    #[test]
    fn an_unexpected_pop_answer_warns() {
        let mut tl = Tl::default();
        tl.calls(
            PUSH_POP,
            &[(2, "cuCtxPopCurrent_v2", None, None, None, 400, &[201])],
        );
        let d = TraceData {
            timeline: tl.events,
            ..Default::default()
        };
        let f = findings(&d);
        assert_eq!(
            of_code(&f, codes::CTX_STACK_UNBALANCED)[0].severity,
            Severity::Warn
        );
        assert_eq!(of_code(&f, codes::STEP_MISMATCH).len(), 1);
    }

    #[test]
    fn destroy_of_the_current_context_pops_it() {
        let mut tl = Tl::default();
        let c = Some("ctx#1");
        #[rustfmt::skip]
        let rows: &[Row] = &[
            (1, "cuCtxCreate_v2", None, None, c, 0, &[0]),
            (1, "cuCtxDestroy_v2", c, c, None, 0, &[0]),
        ];
        tl.calls(DEVICE_MIXUP, rows);
        tl.events[0].out_ctx = cref("ctx#1");
        assert_eq!(stack_depths(&tl.events)[&1], (1, 0));
    }

    fn mixup(mode: &str, landed: &str, landed_dev: i32) -> TraceData {
        TraceData {
            device_mixup: Some(MixupFacts {
                mode: mode.into(),
                nvml: vec![0, 1],
                cases: vec![
                    MixupCase {
                        case: "B left current".into(),
                        deliberate: true,
                        intended_ctx: "ctx#2".into(),
                        intended_device: 0,
                        current_ctx: Some("ctx#3".into()),
                        current_device: Some(1),
                        landed_ctx: Some(landed.into()),
                        landed_device: Some(landed_dev),
                        pointer: "0x7f0000000000".into(),
                    },
                    MixupCase {
                        case: "A bound first".into(),
                        deliberate: false,
                        intended_ctx: "ctx#2".into(),
                        intended_device: 0,
                        current_ctx: Some("ctx#2".into()),
                        current_device: Some(0),
                        landed_ctx: Some("ctx#2".into()),
                        landed_device: Some(0),
                        pointer: "0x7f0000200000".into(),
                    },
                ],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn device_mixup_reports_meant_versus_landed() {
        let f = findings(&mixup("two-gpus", "ctx#3", 1));
        let m = of_code(&f, codes::DEVICE_MIXUP);
        assert_eq!(m.len(), 1, "{f:#?}");
        assert_eq!(m[0].severity, Severity::Info);
        assert!(
            m[0].message.contains("meant for ctx#2 (device 0)"),
            "{}",
            m[0].message
        );
        assert!(
            m[0].message
                .contains("on CUDA device 1 instead of device 0"),
            "{}",
            m[0].message
        );
        assert!(of_code(&f, codes::STEP_MISMATCH).is_empty());
        let f = findings(&mixup("two-contexts", "ctx#3", 0));
        assert!(
            of_code(&f, codes::DEVICE_MIXUP)[0]
                .message
                .contains("another context on the same GPU")
        );
        // memory outside the current context contradicts the driver's documentation
        let f = findings(&mixup("two-contexts", "ctx#2", 0));
        assert!(of_code(&f, codes::DEVICE_MIXUP).is_empty());
        assert_eq!(of_code(&f, codes::STEP_MISMATCH).len(), 1);
    }

    fn primary(set_flags: i64, used: i64) -> TraceData {
        TraceData {
            primary: Some(PrimaryFacts {
                device: 0,
                nvml: 0,
                driver_version: 13000,
                initial: Some(PrimaryState {
                    flags: 0,
                    active: false,
                }),
                after_retain: Some(PrimaryState {
                    flags: 0,
                    active: true,
                }),
                same_handle: Some(true),
                requested_flags: 4,
                set_flags_while_active: Some(code(set_flags)),
                state_after_set_flags: Some(PrimaryState {
                    flags: 4,
                    active: true,
                }),
                ctx_flags_after_set: Some(4),
                state_after_release_to_zero: Some(PrimaryState {
                    flags: 4,
                    active: false,
                }),
                use_after_release_call: "cuMemcpyDtoH_v2".into(),
                use_after_release: Some(code(used)),
                over_release: Some(code(201)),
                fixed_use: Some(code(0)),
                final_state: Some(PrimaryState {
                    flags: 0,
                    active: false,
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn primary_release_and_flags_findings_tell_the_truth() {
        let f = findings(&primary(0, 709));
        let r = of_code(&f, codes::PRIMARY_CTX_RELEASED);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].severity, Severity::Info);
        assert!(
            r[0].message
                .contains("answered CUDA_ERROR_CONTEXT_IS_DESTROYED (709)"),
            "{}",
            r[0].message
        );
        assert!(r[0].message.contains("active=0"));
        assert!(r[0].hint.as_deref().unwrap().contains("once per process"));
        let fl = of_code(&f, codes::PRIMARY_CTX_FLAGS);
        assert!(
            fl[0]
                .message
                .contains("ACTIVE primary context answered CUDA_SUCCESS")
        );
        assert!(fl[0].message.contains("CUDA 13.0"));
        assert!(fl[0].message.contains("does not hold"));
        let f = findings(&primary(708, 0));
        assert!(
            of_code(&f, codes::PRIMARY_CTX_FLAGS)[0]
                .message
                .contains("CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE (708)")
        );
        // a pointer that still works after the reset is not what the documentation says
        assert_eq!(
            of_code(&f, codes::PRIMARY_CTX_RELEASED)[0].severity,
            Severity::Warn
        );
    }

    #[test]
    fn retain_counts_replay_the_calls() {
        let mut tl = Tl::default();
        let (retain, release) = ("cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2");
        #[rustfmt::skip]
        let rows: &[Row] = &[
            (1, retain, None, None, None, 0, &[0]),
            (2, retain, None, None, None, 0, &[0]),
            (1, release, None, None, None, 0, &[0]),
            (1, release, None, None, None, 0, &[0]),
            (2, release, None, None, None, 201, &[201, 0]),
        ];
        tl.calls(PRIMARY_LIFETIME, rows);
        let counts: Vec<i64> = primary_retain_counts(&tl.events)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(counts, vec![1, 2, 1, 0]);
    }

    #[test]
    fn bind_and_create_costs_are_medians_of_the_successful_calls() {
        let d = hop_timeline(4, 16, false);
        assert_eq!(bind_cost_us(&d.timeline), Some(2.5));
        assert_eq!(ctx_create_ms(&d.timeline), Some(0.0025));
        assert_eq!(ctx_create_ms(&[]), None);
    }

    #[test]
    fn memory_not_returned_beyond_tolerance() {
        let mut d = TraceData::default();
        d.memory.push(MemoryCheck {
            nvml: 0,
            before_bytes: Some(1 << 30),
            after_bytes: Some((1 << 30) + (4 << 20)),
            other_pids: vec![],
        });
        assert!(findings(&d).is_empty());
        d.memory[0].after_bytes = Some((1 << 30) + (600 << 20));
        let f = findings(&d);
        assert_eq!(of_code(&f, codes::MEMORY_NOT_RETURNED).len(), 1);
    }

    #[test]
    fn data_round_trips_through_a_report() {
        let d = hop_timeline(2, 4, false);
        let mut r = crate::report::Report::begin("trace ctx", serde_json::json!({}));
        r.data = serde_json::to_value(&d).unwrap();
        assert_eq!(data_of(&r).unwrap(), d);
        let mut suite = crate::report::Report::begin("suite", serde_json::json!({}));
        suite.reports.push(r);
        assert_eq!(data_of(&suite).unwrap(), d);
        let other = crate::report::Report::begin("topo", serde_json::json!({}));
        assert!(
            data_of(&other)
                .unwrap_err()
                .contains("not a trace ctx report")
        );
    }
}
