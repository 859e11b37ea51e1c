//! The recorder of every `trace ctx` call: contexts (stable short ids), threads (names) and
//! the timeline, from any thread; the calls that matter are also report steps.

use std::sync::Mutex;
use std::time::Instant;

use crate::context::{RunCtx, thread_id};
use crate::facts::trace::{CtxInfo, CtxRef, ThreadInfo, TraceEvent};
use crate::isolate::protocol::Event;
use crate::probe::cuda::{CUresult, code, codes, current_context, sys};
use crate::report::Step;

use CUresult::CUDA_SUCCESS as SUCCESS;

/// A CUcontext that may cross threads (the handle is process-wide; the driver makes it
/// current per thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCtx(pub sys::CUcontext);
// SAFETY: a CUcontext is an opaque process-wide handle; using it from any thread is what the
// driver API allows (and what this scenario studies).
unsafe impl Send for RawCtx {}
// SAFETY: RawCtx has no interior mutability: a shared reference only lets a thread copy the
// handle value, never change it.
unsafe impl Sync for RawCtx {}

impl RawCtx {
    pub fn null() -> Self {
        RawCtx(std::ptr::null_mut())
    }
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

/// Where a call belongs on the timeline.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    pub sub: &'a str,
    pub variant: Option<&'a str>,
    pub task: Option<u32>,
}

impl<'a> Site<'a> {
    pub fn sub(sub: &'a str) -> Self {
        Site {
            sub,
            variant: None,
            task: None,
        }
    }
}

/// How a call is described and checked.
pub struct Spec<'a> {
    pub what: String,
    pub op: &'a str,
    pub arg: Option<RawCtx>,
    pub expected: &'a [CUresult],
    /// Also a report step.
    pub step: bool,
    pub note: Option<String>,
}

impl<'a> Spec<'a> {
    pub fn new(what: impl Into<String>, op: &'a str, expected: &'a [CUresult]) -> Self {
        Spec {
            what: what.into(),
            op,
            arg: None,
            expected,
            step: false,
            note: None,
        }
    }
    pub fn arg(mut self, c: RawCtx) -> Self {
        self.arg = Some(c);
        self
    }
    pub fn step(mut self) -> Self {
        self.step = true;
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = Some(n.into());
        self
    }
}

struct Known {
    info: CtxInfo,
    raw: usize,
    live: bool,
}

#[derive(Default)]
struct Inner {
    events: Vec<TraceEvent>,
    contexts: Vec<Known>,
    threads: Vec<ThreadInfo>,
}

/// Records every call of the scenario, from any thread.
pub struct Tracer<'a> {
    /// The run: the calls that are also report steps are recorded there (each announced to
    /// the parent as it completes).
    ctx: &'a RunCtx,
    inner: Mutex<Inner>,
}

impl<'a> Tracer<'a> {
    pub fn new(ctx: &'a RunCtx) -> Self {
        Tracer {
            ctx,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking worker cannot leave the data half-written in a way that matters here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names the calling thread on the timeline.
    pub fn name_thread(&self, name: impl Into<String>) {
        let tid = thread_id();
        let mut g = self.lock();
        let name = name.into();
        match g.threads.iter_mut().find(|t| t.tid == tid) {
            Some(t) => t.name = name,
            None => g.threads.push(ThreadInfo { tid, name }),
        }
    }

    fn ctx_ref_locked(g: &mut Inner, c: RawCtx) -> Option<CtxRef> {
        if c.is_null() {
            return None;
        }
        let raw = c.0 as usize;
        if let Some(k) = g.contexts.iter().find(|k| k.raw == raw && k.live) {
            return Some(CtxRef {
                id: k.info.id.clone(),
                ptr: k.info.ptr.clone(),
            });
        }
        let id = format!("ctx#{}", g.contexts.len() + 1);
        let ptr = format!("{raw:#x}");
        g.contexts.push(Known {
            info: CtxInfo {
                id: id.clone(),
                ptr: ptr.clone(),
                kind: "seen".into(),
                device: None,
                label: String::new(),
            },
            raw,
            live: true,
        });
        Some(CtxRef { id, ptr })
    }

    /// The short id of a context (registering it when new).
    pub fn id(&self, c: RawCtx) -> Option<String> {
        Self::ctx_ref_locked(&mut self.lock(), c).map(|r| r.id)
    }

    /// Describes a context: how it was made, its device, what it is for.
    pub fn describe(&self, c: RawCtx, kind: &str, device: i32, label: impl Into<String>) {
        let mut g = self.lock();
        Self::ctx_ref_locked(&mut g, c);
        let raw = c.0 as usize;
        if let Some(k) = g.contexts.iter_mut().find(|k| k.raw == raw && k.live) {
            k.info.kind = kind.into();
            k.info.device = Some(device);
            k.info.label = label.into();
        }
    }

    /// A destroyed context's handle may be reused by the driver: the next one gets a new id.
    pub fn retire(&self, c: RawCtx) {
        let raw = c.0 as usize;
        if let Some(k) = self
            .lock()
            .contexts
            .iter_mut()
            .find(|k| k.raw == raw && k.live)
        {
            k.live = false;
        }
    }

    /// Makes one driver call on the calling thread and records it.
    pub fn call(&self, site: Site<'_>, spec: Spec<'_>, f: impl FnOnce() -> CUresult) -> CUresult {
        self.call_out(site, spec, |_| f())
    }

    /// Like [`call`](Self::call) for calls that hand back a context through `out`.
    pub fn call_out(
        &self,
        site: Site<'_>,
        spec: Spec<'_>,
        f: impl FnOnce(&mut sys::CUcontext) -> CUresult,
    ) -> CUresult {
        let before = RawCtx(current_context());
        let expected = codes(spec.expected);
        let at_ms = self.ctx.now_ms();
        let tid = thread_id();
        if spec.step {
            self.ctx.announce(&Event::Call {
                name: spec.what.clone(),
                call: spec.op.to_string(),
                expected: expected.clone(),
                at_ms,
                thread: tid,
            });
        }
        let mut out: sys::CUcontext = std::ptr::null_mut();
        let t0 = Instant::now();
        let rc = f(&mut out);
        let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
        let after = RawCtx(current_context());
        let observed = code(rc);
        let ok = expected.contains(&observed);
        let mut g = self.lock();
        let seq = g.events.len() as u32;
        let event = TraceEvent {
            seq,
            t_us: at_ms * 1e3,
            dur_us: elapsed_ms * 1e3,
            thread: tid,
            sub: site.sub.to_string(),
            variant: site.variant.map(str::to_string),
            task: site.task,
            what: spec.what.clone(),
            op: spec.op.to_string(),
            arg_ctx: spec.arg.and_then(|c| Self::ctx_ref_locked(&mut g, c)),
            out_ctx: if rc == SUCCESS {
                Self::ctx_ref_locked(&mut g, RawCtx(out))
            } else {
                None
            },
            ctx_before: Self::ctx_ref_locked(&mut g, before),
            ctx_after: Self::ctx_ref_locked(&mut g, after),
            result: observed.clone(),
            expected: expected.clone(),
            ok,
            step: spec.step,
            note: spec.note.clone(),
        };
        g.events.push(event);
        if spec.step {
            // Pushed while the timeline is locked: steps keep the timeline's order.
            self.ctx.record(Step {
                name: spec.what,
                call: spec.op.to_string(),
                expected,
                observed,
                at_ms,
                elapsed_ms,
                thread: tid,
                ok,
                note: spec.note,
            });
        }
        rc
    }

    /// The timeline, contexts and threads (its steps are already recorded in the run).
    pub fn finish(self) -> (Vec<TraceEvent>, Vec<CtxInfo>, Vec<ThreadInfo>) {
        let g = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        (
            g.events,
            g.contexts.into_iter().map(|k| k.info).collect(),
            g.threads,
        )
    }

    pub fn interrupted(&self) -> bool {
        self.ctx.interrupted()
    }
}
