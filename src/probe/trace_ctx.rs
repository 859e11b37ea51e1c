//! `trace ctx`: the raw driver sequences. Every call goes through [`Tracer::call`], which asks
//! cuCtxGetCurrent before and after, times the call, names contexts with stable short ids
//! (`ctx#1`), and appends a [`TraceEvent`] to the timeline; calls that matter are also report
//! steps (announced to the parent when isolated).
//!
//! Calls never overlap: the scenario thread hands one call sequence at a time to one worker
//! and waits for it, so the timeline — and the failure — is the same on every run.

use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Result, anyhow};

use crate::context::{Ctx, thread_id};
use crate::facts::trace::{
    BOUND, CtxInfo, CtxRef, DEVICE_MIXUP, HopFacts, HopRun, MixupCase, MixupFacts, PINNED,
    PRIMARY_LIFETIME, PUSH_POP, PrimaryFacts, PrimaryState, THREAD_HOP, ThreadInfo, TraceEvent,
    UNBOUND,
};
use crate::isolate::Event;
use crate::probe::cuda::{CUresult, code, codes, current_context, sys};
use crate::probe::faults::Steps;
use crate::report::Step;

use CUresult::{
    CUDA_ERROR_CONTEXT_IS_DESTROYED as DESTROYED, CUDA_ERROR_INVALID_CONTEXT as INVALID_CONTEXT,
    CUDA_ERROR_INVALID_HANDLE as INVALID_HANDLE, CUDA_ERROR_INVALID_VALUE as INVALID_VALUE,
    CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE as PRIMARY_ACTIVE, CUDA_SUCCESS as SUCCESS,
};

/// Bytes per thread-hop result slot (64 u32 words).
const SLOT_BYTES: usize = 256;
/// Scratch allocation each task makes.
const SCRATCH_BYTES: usize = 64 << 10;

/// A CUcontext that may cross threads (the handle is process-wide; the driver makes it
/// current per thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCtx(pub sys::CUcontext);
// SAFETY: a CUcontext is an opaque process-wide handle; using it from any thread is what the
// driver API allows (and what this scenario studies).
unsafe impl Send for RawCtx {}
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
    /// The calls that are also report steps (each announced to the parent as it completes).
    steps: Steps<'a>,
    inner: Mutex<Inner>,
}

impl<'a> Tracer<'a> {
    pub fn new(ctx: &'a Ctx) -> Self {
        Tracer {
            steps: Steps::new(ctx),
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
        let at_ms = self.steps.ctx.now_ms();
        let tid = thread_id();
        if spec.step {
            self.steps.ctx.events.emit(&Event::Call {
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
            self.steps.push(Step {
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

    /// Steps recorded so far (already announced to the parent), events, contexts, threads.
    pub fn finish(self) -> (Vec<Step>, Vec<TraceEvent>, Vec<CtxInfo>, Vec<ThreadInfo>) {
        let g = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        (
            self.steps.into_vec(),
            g.events,
            g.contexts.into_iter().map(|k| k.info).collect(),
            g.threads,
        )
    }

    pub fn interrupted(&self) -> bool {
        self.steps.ctx.interrupted()
    }
}

type Job<'env> = Box<dyn FnOnce() + Send + 'env>;

/// A fixed pool of OS threads; [`Pool::run`] runs one closure on one chosen worker and waits.
pub struct Pool<'env> {
    senders: Vec<mpsc::Sender<Job<'env>>>,
    pub tids: Vec<u64>,
}

impl<'env> Pool<'env> {
    pub fn spawn<'scope>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        tracer: &'env Tracer<'env>,
        names: Vec<String>,
    ) -> Pool<'env> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let mut senders = Vec::new();
        let n = names.len();
        for (w, name) in names.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Job<'env>>();
            let tid_tx = tid_tx.clone();
            s.spawn(move || {
                tracer.name_thread(name);
                let _ = tid_tx.send((w, thread_id()));
                for job in rx {
                    job();
                }
            });
            senders.push(tx);
        }
        let mut tids = vec![0; n];
        for _ in 0..n {
            if let Ok((w, tid)) = tid_rx.recv() {
                tids[w] = tid;
            }
        }
        Pool { senders, tids }
    }

    pub fn run<R: Send + 'env>(&self, w: usize, f: impl FnOnce() -> R + Send + 'env) -> Result<R> {
        let (tx, rx) = mpsc::channel();
        self.senders[w]
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| anyhow!("worker {w} is gone"))?;
        rx.recv()
            .map_err(|_| anyhow!("worker {w} died while running a task"))
    }
}

/// cuCtxCreate_v2 on the calling thread (the new context becomes current: pushed).
fn create(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice, step: bool) -> Option<RawCtx> {
    let mut spec = Spec::new(what, "cuCtxCreate_v2", &[SUCCESS]);
    spec.step = step;
    let mut made = RawCtx::null();
    let rc = t.call_out(site, spec, |out| {
        // SAFETY: valid out-pointer, device from cuDeviceGet*.
        let rc = unsafe { sys::cuCtxCreate_v2(out, 0, dev) };
        made = RawCtx(*out);
        rc
    });
    (rc == SUCCESS && !made.is_null()).then_some(made)
}

fn set_current(t: &Tracer, site: Site, what: &str, c: RawCtx, step: bool) -> CUresult {
    let mut spec = Spec::new(what, "cuCtxSetCurrent", &[SUCCESS]);
    spec.step = step;
    if !c.is_null() {
        spec = spec.arg(c);
    }
    // SAFETY: a live context handle or null (unbind).
    t.call(site, spec, || unsafe { sys::cuCtxSetCurrent(c.0) })
}

fn destroy(t: &Tracer, site: Site, what: &str, c: RawCtx) -> CUresult {
    // SAFETY: a context this scenario created and no longer uses.
    let rc = t.call(
        site,
        Spec::new(what, "cuCtxDestroy_v2", &[SUCCESS]).arg(c),
        || unsafe { sys::cuCtxDestroy_v2(c.0) },
    );
    if rc == SUCCESS {
        t.retire(c);
    }
    rc
}

fn pop(t: &Tracer, site: Site, spec: Spec) -> CUresult {
    // SAFETY: valid out-pointer.
    t.call_out(site, spec, |out| unsafe { sys::cuCtxPopCurrent_v2(out) })
}

fn expect_for(bound_here: bool) -> &'static [CUresult] {
    if bound_here {
        &[SUCCESS]
    } else {
        &[INVALID_CONTEXT]
    }
}

/// One thread-hop work item on the calling worker: bind (bound variant), write its result
/// slot, make and free a scratch allocation. Returns whether every call succeeded.
#[allow(clippy::too_many_arguments)]
fn hop_task(
    t: &Tracer,
    variant: &'static str,
    k: u32,
    worker: usize,
    c: RawCtx,
    buf: sys::CUdeviceptr,
    bound_here: bool,
    step: bool,
) -> bool {
    let site = Site {
        sub: THREAD_HOP,
        variant: Some(variant),
        task: Some(k),
    };
    let mut all_ok = true;
    if variant == BOUND {
        all_ok &= set_current(
            t,
            site,
            &format!("thread-hop {variant}: task {k} binds the context on worker {worker}"),
            c,
            false,
        ) == SUCCESS;
    }
    let expected = expect_for(bound_here);
    let why = if bound_here {
        "the context is current on this thread: the call must succeed"
    } else {
        "no context is current on this thread (only its creator, worker 0, has it): the documented answer is CUDA_ERROR_INVALID_CONTEXT"
    };
    let mut spec = Spec::new(
        format!("thread-hop {variant}: task {k} on worker {worker} writes its result"),
        "cuMemsetD32_v2",
        expected,
    )
    .note(why);
    spec.step = step;
    let dst = buf + (k as u64) * SLOT_BYTES as u64;
    // SAFETY: dst lies inside the buffer allocated in context c.
    let rc = t.call(site, spec, || unsafe {
        sys::cuMemsetD32_v2(dst, k + 1, SLOT_BYTES / 4)
    });
    all_ok &= rc == SUCCESS;
    let mut p: sys::CUdeviceptr = 0;
    let rc = t.call(
        site,
        Spec::new(
            format!("thread-hop {variant}: task {k} scratch allocation"),
            "cuMemAlloc_v2",
            expected,
        )
        .note(why),
        // SAFETY: valid out-pointer.
        || unsafe { sys::cuMemAlloc_v2(&mut p, SCRATCH_BYTES) },
    );
    all_ok &= rc == SUCCESS;
    if rc == SUCCESS {
        t.call(
            site,
            Spec::new(
                format!("thread-hop {variant}: task {k} frees its scratch"),
                "cuMemFree_v2",
                &[SUCCESS],
            ),
            // SAFETY: p was allocated just above in the current context.
            || unsafe { sys::cuMemFree_v2(p) },
        );
    }
    all_ok
}

/// thread-hop: a pool of `threads` OS threads; worker 0 creates the context (current only
/// there). Task k runs on worker k % threads (unbound, bound) or on worker 0 (pinned).
pub fn thread_hop(
    t: &Tracer,
    dev: sys::CUdevice,
    threads: u32,
    tasks: u32,
) -> Result<Option<HopFacts>> {
    let site = Site::sub(THREAD_HOP);
    let names: Vec<String> = (0..threads)
        .map(|w| {
            if w == 0 {
                "thread-hop worker 0 (creator)".to_string()
            } else {
                format!("thread-hop worker {w}")
            }
        })
        .collect();
    std::thread::scope(|s| -> Result<Option<HopFacts>> {
        let pool = Pool::spawn(s, t, names);
        let Some(c) = pool.run(0, move || {
            create(
                t,
                site,
                "thread-hop: worker 0 creates the pool's context",
                dev,
                true,
            )
        })?
        else {
            return Ok(None);
        };
        t.describe(c, "created", dev, "thread-hop pool context (worker 0)");
        let bytes = tasks as usize * SLOT_BYTES;
        let buf = pool.run(0, move || {
            let mut b: sys::CUdeviceptr = 0;
            let rc = t.call(
                site,
                Spec::new(
                    "thread-hop: worker 0 allocates the tasks' result buffer",
                    "cuMemAlloc_v2",
                    &[SUCCESS],
                )
                .step(),
                // SAFETY: valid out-pointer.
                || unsafe { sys::cuMemAlloc_v2(&mut b, bytes) },
            );
            (rc == SUCCESS).then_some(b)
        })?;
        let mut runs = Vec::new();
        if let Some(buf) = buf {
            for variant in [UNBOUND, BOUND, PINNED] {
                if t.interrupted() {
                    break;
                }
                pool.run(0, move || {
                    t.call(
                        Site {
                            sub: THREAD_HOP,
                            variant: Some(variant),
                            task: None,
                        },
                        Spec::new(
                            format!("thread-hop {variant}: worker 0 clears the result buffer"),
                            "cuMemsetD32_v2",
                            &[SUCCESS],
                        ),
                        // SAFETY: the buffer is `bytes` long, in the current context.
                        || unsafe { sys::cuMemsetD32_v2(buf, 0, bytes / 4) },
                    )
                })?;
                let mut used = std::collections::BTreeSet::new();
                for k in 0..tasks {
                    if t.interrupted() {
                        break;
                    }
                    let w = if variant == PINNED {
                        0
                    } else {
                        (k % threads) as usize
                    };
                    used.insert(w);
                    let bound_here = variant != UNBOUND || w == 0;
                    // A step for each worker's first task of the pass; the rest are on the timeline.
                    let step = if variant == PINNED {
                        k == 0
                    } else {
                        k < threads
                    };
                    pool.run(w, move || {
                        hop_task(t, variant, k, w, c, buf, bound_here, step)
                    })?;
                }
                // Read back on the creator: which tasks' writes reached the GPU?
                let host = pool.run(0, move || {
                    let mut host = vec![0u32; bytes / 4];
                    let ptr = host.as_mut_ptr() as *mut c_void;
                    let rc = t.call(
                        Site {
                            sub: THREAD_HOP,
                            variant: Some(variant),
                            task: None,
                        },
                        Spec::new(
                            format!("thread-hop {variant}: worker 0 reads the results back"),
                            "cuMemcpyDtoH_v2",
                            &[SUCCESS],
                        ),
                        // SAFETY: host holds `bytes` bytes; buf is `bytes` long.
                        || unsafe { sys::cuMemcpyDtoH_v2(ptr, buf, bytes) },
                    );
                    (rc == SUCCESS).then_some(host)
                })?;
                if let Some(host) = host {
                    let words = SLOT_BYTES / 4;
                    let unwritten: Vec<u32> = (0..tasks)
                        .filter(|&k| {
                            let slot = &host[k as usize * words..(k as usize + 1) * words];
                            !slot.iter().all(|&v| v == k + 1)
                        })
                        .collect();
                    runs.push(HopRun {
                        variant: variant.into(),
                        tasks,
                        threads_used: used.len() as u32,
                        written: tasks - unwritten.len() as u32,
                        unwritten,
                    });
                }
            }
            pool.run(0, move || {
                t.call(
                    site,
                    Spec::new(
                        "thread-hop: worker 0 frees the result buffer",
                        "cuMemFree_v2",
                        &[SUCCESS],
                    ),
                    // SAFETY: allocated above in this context.
                    || unsafe { sys::cuMemFree_v2(buf) },
                )
            })?;
        }
        // Unbind on the other workers before the context goes away (no dangling binding).
        for w in 1..threads as usize {
            pool.run(w, move || {
                set_current(
                    t,
                    site,
                    &format!("thread-hop: worker {w} unbinds before the context is destroyed"),
                    RawCtx::null(),
                    false,
                )
            })?;
        }
        pool.run(0, move || {
            destroy(
                t,
                site,
                "thread-hop: worker 0 destroys the pool's context",
                c,
            )
        })?;
        Ok(Some(HopFacts {
            threads,
            tasks,
            ctx: t.id(c).unwrap_or_default(),
            creator_tid: pool.tids[0],
            runs,
        }))
    })
}

fn device_of_current(t: &Tracer, site: Site, what: &str) -> Option<i32> {
    let mut d: sys::CUdevice = -1;
    // SAFETY: valid out-pointer.
    let rc = t.call(
        site,
        Spec::new(what, "cuCtxGetDevice", &[SUCCESS]),
        || unsafe { sys::cuCtxGetDevice(&mut d) },
    );
    (rc == SUCCESS).then_some(d)
}

/// One device-mixup step: cuPointerGetAttribute(`attr`) on the device pointer `p` into `out`
/// (the attribute's name is the step's note). Whether it succeeded.
///
/// # Safety
/// `out` must point to a value of the type the driver writes for `attr`.
unsafe fn pointer_attribute(
    t: &Tracer,
    what: String,
    attr: sys::CUpointer_attribute,
    out: *mut c_void,
    p: sys::CUdeviceptr,
) -> bool {
    let spec = Spec::new(what, "cuPointerGetAttribute", &[SUCCESS])
        .step()
        .note(format!("{attr:?}"));
    // SAFETY: `out` fits `attr` (the caller's promise); p is a device pointer.
    t.call(Site::sub(DEVICE_MIXUP), spec, || unsafe {
        sys::cuPointerGetAttribute(out, attr, p)
    }) == SUCCESS
}

/// Allocates with whatever context is current and asks the driver where the memory landed.
fn alloc_and_locate(
    t: &Tracer,
    case: &str,
    intended: (RawCtx, i32),
    deliberate: bool,
) -> (MixupCase, Option<sys::CUdeviceptr>) {
    let site = Site::sub(DEVICE_MIXUP);
    let current = RawCtx(current_context());
    let current_device = device_of_current(
        t,
        site,
        &format!("device-mixup ({case}): which device is current"),
    );
    let mut p: sys::CUdeviceptr = 0;
    let rc = t.call(
        site,
        Spec::new(
            format!("device-mixup ({case}): allocate memory meant for context A"),
            "cuMemAlloc_v2",
            &[SUCCESS],
        )
        .step()
        .note(if deliberate {
            "succeeds: the driver allocates in whatever context is current, and nothing tells the caller"
        } else {
            "the intended context is current"
        }),
        // SAFETY: valid out-pointer.
        || unsafe { sys::cuMemAlloc_v2(&mut p, 1 << 20) },
    );
    let mut case_facts = MixupCase {
        case: case.into(),
        deliberate,
        intended_ctx: t.id(intended.0).unwrap_or_default(),
        intended_device: intended.1,
        current_ctx: t.id(current),
        current_device,
        landed_ctx: None,
        landed_device: None,
        pointer: format!("{p:#x}"),
    };
    if rc != SUCCESS {
        return (case_facts, None);
    }
    let mut owner: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: CONTEXT writes one CUcontext.
    if unsafe {
        pointer_attribute(
            t,
            format!("device-mixup ({case}): which context owns the pointer"),
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
            (&mut owner as *mut sys::CUcontext).cast(),
            p,
        )
    } {
        case_facts.landed_ctx = t.id(RawCtx(owner));
    }
    let mut ordinal: i32 = -1;
    // SAFETY: DEVICE_ORDINAL writes one int.
    if unsafe {
        pointer_attribute(
            t,
            format!("device-mixup ({case}): which device holds the pointer"),
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            (&mut ordinal as *mut i32).cast(),
            p,
        )
    } {
        case_facts.landed_device = Some(ordinal);
    }
    (case_facts, Some(p))
}

/// device-mixup on the calling thread: A and B are two GPUs (`two-gpus`) or two contexts on one
/// GPU (`two-contexts`). B is initialised last and stays current; code meant for A allocates.
pub fn device_mixup(
    t: &Tracer,
    a: (u32, sys::CUdevice),
    b: (u32, sys::CUdevice),
) -> Result<Option<MixupFacts>> {
    let site = Site::sub(DEVICE_MIXUP);
    t.name_thread("main (scenario thread)");
    let mode = if a.1 != b.1 {
        "two-gpus"
    } else {
        "two-contexts"
    };
    let Some(ca) = create(t, site, "device-mixup: create context A", a.1, true) else {
        return Ok(None);
    };
    t.describe(ca, "created", a.1, format!("device-mixup A (GPU {})", a.0));
    pop(
        t,
        site,
        Spec::new(
            "device-mixup: pop A (A stays alive, floating)",
            "cuCtxPopCurrent_v2",
            &[SUCCESS],
        ),
    );
    let Some(cb) = create(
        t,
        site,
        "device-mixup: create context B, which stays current",
        b.1,
        true,
    ) else {
        destroy(t, site, "device-mixup: destroy A", ca);
        return Ok(None);
    };
    t.describe(cb, "created", b.1, format!("device-mixup B (GPU {})", b.0));

    let (wrong, p_wrong) = alloc_and_locate(t, "B left current", (ca, a.1), true);
    set_current(
        t,
        site,
        "device-mixup (A bound first): make A current before A's work",
        ca,
        true,
    );
    let (right, p_right) = alloc_and_locate(t, "A bound first", (ca, a.1), false);

    // Free each allocation with its own context current, then destroy both.
    for (p, owner, name) in [(p_wrong, cb, "B"), (p_right, ca, "A")] {
        if let Some(p) = p {
            set_current(
                t,
                site,
                &format!("device-mixup: bind {name} to free"),
                owner,
                false,
            );
            t.call(
                site,
                Spec::new(
                    format!("device-mixup: free the allocation that landed in {name}"),
                    "cuMemFree_v2",
                    &[SUCCESS],
                ),
                // SAFETY: p belongs to the now-current context.
                || unsafe { sys::cuMemFree_v2(p) },
            );
        }
    }
    set_current(t, site, "device-mixup: unbind", RawCtx::null(), false);
    destroy(t, site, "device-mixup: destroy B", cb);
    destroy(t, site, "device-mixup: destroy A", ca);
    Ok(Some(MixupFacts {
        mode: mode.into(),
        nvml: vec![a.0, b.0],
        cases: vec![wrong, right],
    }))
}

/// push-pop: stack depth on one thread, a pop too many, a pop on a thread that never pushed,
/// and a pop on a thread that bound its context with cuCtxSetCurrent.
pub fn push_pop(t: &Tracer, dev: sys::CUdevice) -> Result<bool> {
    let site = Site::sub(PUSH_POP);
    t.name_thread("main (scenario thread)");
    let mut made = Vec::new();
    for name in ["C1", "C2"] {
        let Some(c) = create(t, site, &format!("push-pop: create {name}"), dev, false) else {
            break;
        };
        t.describe(c, "created", dev, format!("push-pop {name}"));
        pop(
            t,
            site,
            Spec::new(
                format!("push-pop: pop {name} off the main thread (floating)"),
                "cuCtxPopCurrent_v2",
                &[SUCCESS],
            ),
        );
        made.push(c);
    }
    if made.len() < 2 {
        for c in made {
            destroy(t, site, "push-pop: destroy", c);
        }
        return Ok(false);
    }
    let (c1, c2) = (made[0], made[1]);
    let empty_note =
        "pop with an empty context stack: the documented answer is CUDA_ERROR_INVALID_CONTEXT";
    std::thread::scope(|s| {
        s.spawn(move || {
            t.name_thread("push-pop: pusher (push 2, pop 3)");
            for (c, n) in [(c1, 1), (c2, 2)] {
                t.call(
                    site,
                    Spec::new(
                        format!("push-pop: push C{n} (depth {n})"),
                        "cuCtxPushCurrent_v2",
                        &[SUCCESS],
                    )
                    .arg(c)
                    .step(),
                    // SAFETY: a live context.
                    || unsafe { sys::cuCtxPushCurrent_v2(c.0) },
                );
            }
            for n in [1, 0] {
                pop(
                    t,
                    site,
                    Spec::new(
                        format!("push-pop: pop (depth {n})"),
                        "cuCtxPopCurrent_v2",
                        &[SUCCESS],
                    )
                    .step(),
                );
            }
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: one pop too many",
                    "cuCtxPopCurrent_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note(empty_note),
            );
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))?;
        s.spawn(move || {
            t.name_thread("push-pop: never pushed");
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: pop on a thread that never pushed",
                    "cuCtxPopCurrent_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note(empty_note),
            );
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))?;
        s.spawn(move || {
            t.name_thread("push-pop: bound with cuCtxSetCurrent");
            set_current(t, site, "push-pop: bind C1 with cuCtxSetCurrent", c1, true);
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: pop a context that was bound, not pushed",
                    "cuCtxPopCurrent_v2",
                    &[SUCCESS],
                )
                .step()
                .note("cuCtxSetCurrent on an empty stack pushes: the pop takes the binding away"),
            );
            let mut p: sys::CUdeviceptr = 0;
            t.call(
                site,
                Spec::new(
                    "push-pop: allocate after the binding was popped",
                    "cuMemAlloc_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note("the pop left the thread with no context"),
                // SAFETY: valid out-pointer.
                || unsafe { sys::cuMemAlloc_v2(&mut p, 4096) },
            );
            if p != 0 {
                // Only reached if the driver contradicted its documentation above.
                // SAFETY: p was just allocated in whatever context was current.
                unsafe { sys::cuMemFree_v2(p) };
            }
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))
    })?;
    destroy(t, site, "push-pop: destroy C1", c1);
    destroy(t, site, "push-pop: destroy C2", c2);
    Ok(true)
}

fn get_state(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice) -> Option<PrimaryState> {
    let (mut flags, mut active) = (0u32, 0i32);
    // SAFETY: valid out-pointers.
    let rc = t.call(
        site,
        Spec::new(what, "cuDevicePrimaryCtxGetState", &[SUCCESS]).step(),
        || unsafe { sys::cuDevicePrimaryCtxGetState(dev, &mut flags, &mut active) },
    );
    (rc == SUCCESS).then_some(PrimaryState {
        flags,
        active: active != 0,
    })
}

fn retain(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice) -> Option<RawCtx> {
    let mut got = RawCtx::null();
    let rc = t.call_out(
        site,
        Spec::new(what, "cuDevicePrimaryCtxRetain", &[SUCCESS]).step(),
        |out| {
            // SAFETY: valid out-pointer.
            let rc = unsafe { sys::cuDevicePrimaryCtxRetain(out, dev) };
            got = RawCtx(*out);
            rc
        },
    );
    (rc == SUCCESS && !got.is_null()).then_some(got)
}

fn release(t: &Tracer, site: Site, spec: Spec, dev: sys::CUdevice) -> CUresult {
    // SAFETY: plain call on a valid device.
    t.call(site, spec, || unsafe {
        sys::cuDevicePrimaryCtxRelease_v2(dev)
    })
}

/// primary-lifetime: two users ("library A", "library B") of one device's primary context.
pub fn primary_lifetime(
    t: &Tracer,
    dev: sys::CUdevice,
    nvml: u32,
    driver_version: i32,
) -> Result<PrimaryFacts> {
    let site = Site::sub(PRIMARY_LIFETIME);
    let requested = sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC as u32;
    let mut f = PrimaryFacts {
        device: dev,
        nvml,
        driver_version,
        initial: None,
        after_retain: None,
        same_handle: None,
        requested_flags: requested,
        set_flags_while_active: None,
        state_after_set_flags: None,
        ctx_flags_after_set: None,
        state_after_release_to_zero: None,
        use_after_release_call: "cuMemcpyDtoH_v2".into(),
        use_after_release: None,
        over_release: None,
        fixed_use: None,
        final_state: None,
    };
    let names = vec![
        "primary: library A".to_string(),
        "primary: library B".to_string(),
    ];
    std::thread::scope(|s| -> Result<()> {
        let pool = Pool::spawn(s, t, names);
        let (initial, pa) = pool.run(0, move || {
            let initial = get_state(t, site, "primary: state before anyone retains it", dev);
            let pa = retain(t, site, "primary: library A retains (count 1)", dev);
            (initial, pa)
        })?;
        f.initial = initial;
        let Some(pa) = pa else { return Ok(()) };
        t.describe(
            pa,
            "primary",
            dev,
            format!("primary context of device {dev}"),
        );
        let (after, pb, buf) = pool.run(1, move || {
            let after = get_state(t, site, "primary: state after A's retain", dev);
            let pb = retain(t, site, "primary: library B retains (count 2)", dev);
            let mut buf: sys::CUdeviceptr = 0;
            if let Some(pb) = pb {
                set_current(t, site, "primary: B binds the primary context", pb, true);
                let rc = t.call(
                    site,
                    Spec::new(
                        "primary: B allocates and keeps the pointer",
                        "cuMemAlloc_v2",
                        &[SUCCESS],
                    )
                    .step(),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuMemAlloc_v2(&mut buf, 1 << 20) },
                );
                if rc == SUCCESS {
                    t.call(
                        site,
                        Spec::new("primary: B writes its buffer", "cuMemsetD32_v2", &[SUCCESS]),
                        // SAFETY: buf is 1 MiB in the current context.
                        || unsafe { sys::cuMemsetD32_v2(buf, 7, (1 << 20) / 4) },
                    );
                } else {
                    buf = 0;
                }
            }
            (after, pb, buf)
        })?;
        f.after_retain = after;
        f.same_handle = pb.map(|pb| pb == pa);
        // SetFlags while active (A's thread), then what the state and the running context say.
        let (rc, st) = pool.run(0, move || {
            let rc = t.call(
                site,
                Spec::new(
                    "primary: A sets CU_CTX_SCHED_BLOCKING_SYNC while the context is active",
                    "cuDevicePrimaryCtxSetFlags_v2",
                    &[SUCCESS, PRIMARY_ACTIVE],
                )
                .step()
                .note("a widely repeated claim says flags must be set before the primary context exists; the answer recorded is this driver's"),
                // SAFETY: plain call on a valid device.
                || unsafe { sys::cuDevicePrimaryCtxSetFlags_v2(dev, requested) },
            );
            (rc, get_state(t, site, "primary: state after SetFlags", dev))
        })?;
        f.set_flags_while_active = Some(code(rc));
        f.state_after_set_flags = st;
        if pb.is_some() {
            f.ctx_flags_after_set = pool.run(1, move || {
                let mut flags = 0u32;
                let rc = t.call(
                    site,
                    Spec::new(
                        "primary: B reads the running context's flags",
                        "cuCtxGetFlags",
                        &[SUCCESS],
                    )
                    .step(),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuCtxGetFlags(&mut flags) },
                );
                (rc == SUCCESS).then_some(flags)
            })?;
        }
        // A releases its retain, then once more by mistake: the count reaches zero under B.
        let zero = pool.run(0, move || {
            release(
                t,
                site,
                Spec::new(
                    "primary: A releases its retain (count 1)",
                    "cuDevicePrimaryCtxRelease_v2",
                    &[SUCCESS],
                )
                .step(),
                dev,
            );
            release(
                t,
                site,
                Spec::new(
                    "primary: A releases again by mistake (count 0: the context is reset)",
                    "cuDevicePrimaryCtxRelease_v2",
                    &[SUCCESS],
                )
                .step()
                .note("the count was 2 (A and B): the second release by A takes it to zero"),
                dev,
            );
            get_state(t, site, "primary: state after the count reached zero", dev)
        })?;
        f.state_after_release_to_zero = zero;
        if pb.is_some() {
            let (used, over) = pool.run(1, move || {
                let mut used = None;
                if buf != 0 {
                    let mut host = vec![0u32; 1024];
                    let hp = host.as_mut_ptr() as *mut c_void;
                    let rc = t.call(
                        site,
                        Spec::new(
                            "primary: B reads its old pointer after the release to zero",
                            "cuMemcpyDtoH_v2",
                            &[INVALID_CONTEXT, DESTROYED, INVALID_HANDLE, INVALID_VALUE],
                        )
                        .step()
                        .note("the context was reset with B's memory in it: documented outcomes are an invalid/destroyed context or an invalid pointer"),
                        // SAFETY: host holds 4 KiB; the driver validates buf (that is the point).
                        || unsafe { sys::cuMemcpyDtoH_v2(hp, buf, 4096) },
                    );
                    used = Some(rc);
                }
                let over = release(
                    t,
                    site,
                    Spec::new(
                        "primary: B releases its own retain, after the count already reached zero",
                        "cuDevicePrimaryCtxRelease_v2",
                        &[INVALID_CONTEXT, SUCCESS],
                    )
                    .step()
                    .note("releasing a primary context that is not retained"),
                    dev,
                );
                set_current(t, site, "primary: B unbinds the reset context", RawCtx::null(), false);
                (used, over)
            })?;
            f.use_after_release = used.map(code);
            f.over_release = Some(code(over));
        }
        // The fix: one retain for the whole process, held until every user is done.
        let held = pool.run(0, move || {
            retain(
                t,
                site,
                "primary (fixed): the process retains once, at start-up",
                dev,
            )
        })?;
        if let Some(held) = held {
            f.fixed_use = Some(code(pool.run(1, move || {
                set_current(
                    t,
                    site,
                    "primary (fixed): B binds the primary context",
                    held,
                    false,
                );
                let mut p: sys::CUdeviceptr = 0;
                let mut rc = t.call(
                    site,
                    Spec::new("primary (fixed): B allocates", "cuMemAlloc_v2", &[SUCCESS]),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuMemAlloc_v2(&mut p, 1 << 20) },
                );
                if rc == SUCCESS {
                    let mut host = vec![0u32; 1024];
                    let hp = host.as_mut_ptr() as *mut c_void;
                    rc = t.call(
                        site,
                        Spec::new(
                            "primary (fixed): B reads its pointer",
                            "cuMemcpyDtoH_v2",
                            &[SUCCESS],
                        )
                        .step(),
                        // SAFETY: host holds 4 KiB, p 1 MiB.
                        || unsafe { sys::cuMemcpyDtoH_v2(hp, p, 4096) },
                    );
                    t.call(
                        site,
                        Spec::new("primary (fixed): B frees", "cuMemFree_v2", &[SUCCESS]),
                        // SAFETY: allocated above in the current context.
                        || unsafe { sys::cuMemFree_v2(p) },
                    );
                }
                set_current(t, site, "primary (fixed): B unbinds", RawCtx::null(), false);
                rc
            })?));
            pool.run(0, move || {
                release(
                    t,
                    site,
                    Spec::new(
                        "primary (fixed): the process releases once, at exit",
                        "cuDevicePrimaryCtxRelease_v2",
                        &[SUCCESS],
                    )
                    .step(),
                    dev,
                );
            })?;
        }
        // Leave the flags as found (inactive context: always allowed).
        let initial_flags = f.initial.map(|s| s.flags).unwrap_or(0);
        f.final_state = pool.run(0, move || {
            t.call(
                site,
                Spec::new(
                    "primary: restore the original flags",
                    "cuDevicePrimaryCtxSetFlags_v2",
                    &[SUCCESS],
                ),
                // SAFETY: plain call on a valid device.
                || unsafe { sys::cuDevicePrimaryCtxSetFlags_v2(dev, initial_flags) },
            );
            get_state(t, site, "primary: final state", dev)
        })?;
        Ok(())
    })?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_attribute_notes_name_the_attribute() {
        for (attr, note) in [
            (
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
                "CU_POINTER_ATTRIBUTE_CONTEXT",
            ),
            (
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                "CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL",
            ),
        ] {
            assert_eq!(format!("{attr:?}"), note);
        }
    }
}
