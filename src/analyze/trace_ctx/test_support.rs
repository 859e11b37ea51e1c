//! Constructed timelines for tests: result codes, context refs, a timeline builder, and a
//! thread-hop run as the probe records it. Used by the analyses' tests and by render and
//! scenario tests.

use super::TraceData;
use crate::facts::trace::{
    BOUND, CtxRef, HopFacts, HopRun, PINNED, THREAD_HOP, ThreadInfo, TraceEvent, UNBOUND,
};
use crate::report::{Code, Finding};

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

pub fn of_code<'a>(f: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.code == code).collect()
}
