//! `inject ctx-destroy`: destroy a context that has memory, a stream and a kernel in flight —
//! from its owning thread, and from another thread while the owner still has it current —
//! then record what calls with the stale handles answer. Then cuDevicePrimaryCtxReset under a
//! component that still holds the primary context and pointers (what `cudaDeviceReset` does to
//! a library sharing it), and recovery in a fresh context.

use std::ffi::c_void;
use std::sync::mpsc;

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Steps, Target, rc};
use crate::context::{RunCtx, thread_id};
use crate::facts::faults::{CtxDestroyFacts, DestroyVariant, PrimaryResetFacts};
use crate::probe::cuda::{self, CUresult, check, sys};
use crate::probe::kernels::{self, Module, name};
use crate::probe::memory::{self, Watch};

/// Step-name prefixes (stable: analyze::faults reads them).
pub mod step {
    pub const OWNER: &str = "owner-thread";
    pub const OTHER: &str = "other-thread";
    /// The launch with a destroyed context's handles, in a process of its own.
    pub const STALE_LAUNCH: &str = "stale-launch";
    pub const PRIMARY: &str = "primary";
    pub const RECOVERY: &str = crate::facts::faults::step_names::RECOVERY;
    /// Suffix of the step that shows the kernel was still running at destroy.
    pub const IN_FLIGHT: &str = "the kernel is still running";
    /// Infix of steps that use a handle of the destroyed context.
    pub const STALE: &str = ": stale ";
}

/// How long delayed_fill_u32 spins before writing: long enough to be in flight at destroy.
pub const KERNEL_DELAY_MS: u64 = 100;
const ELEMS: u64 = 1 << 20;

/// Handles of the context that gets destroyed. Raw on purpose (used after destroy).
#[derive(Clone, Copy)]
struct Victim {
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    buf: sys::CUdeviceptr,
    empty: sys::CUfunction,
}
// SAFETY: plain driver handles; the driver API is thread-safe and every use is a recorded call.
unsafe impl Send for Victim {}

/// The parts of ctx-destroy that use a destroyed context's handles. Each runs in a process of
/// its own: the driver may refuse those calls or crash on them (driver 580 does both, even for
/// the same call from run to run), and a crash must not cost the other parts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DestroyPart {
    /// Destroyed by the thread that owns it, then its stream and memory used.
    OwnerThread,
    /// Destroyed by another thread while the owner still has it current.
    OtherThread,
    /// A kernel launched with the destroyed context's function and stream.
    StaleLaunch,
}

impl DestroyPart {
    pub const ALL: [DestroyPart; 3] = [
        DestroyPart::OwnerThread,
        DestroyPart::OtherThread,
        DestroyPart::StaleLaunch,
    ];
}

/// Baseline before anything is destroyed: device memory as NVML and a fresh context see it;
/// the memory watch runs until [`finish`].
pub fn begin(ctx: &RunCtx, t: &Target) -> Result<(CtxDestroyFacts, Watch)> {
    let (memory, watch) = memory::begin(ctx, &t.nvml, t.index);
    let mut facts = CtxDestroyFacts {
        device: t.index,
        kernel_delay_ms: KERNEL_DELAY_MS as f64,
        memory,
        ..Default::default()
    };
    facts.memory.cuda_free_before = Some(fresh_context_free(t.dev)?);
    Ok((facts, watch))
}

/// One crash-prone part, in this (sub)process.
pub fn run_part(
    ctx: &RunCtx,
    steps: &Steps,
    t: &Target,
    part: DestroyPart,
) -> Result<Option<DestroyVariant>> {
    let delay = super::clock_khz(t.dev) * KERNEL_DELAY_MS;
    match part {
        DestroyPart::OwnerThread => owner_thread(ctx, steps, t, delay).map(Some),
        DestroyPart::OtherThread => other_thread(ctx, steps, t, delay).map(Some),
        DestroyPart::StaleLaunch => stale_launch(ctx, steps, t).map(|_| None),
    }
}

/// After the crash-prone parts: the primary-context reset under a holder, then recovery (a
/// fresh context works) and the memory check.
pub fn finish(steps: &Steps, t: &Target, facts: &mut CtxDestroyFacts, watch: Watch) {
    facts.primary = Some(primary_reset(steps, t.dev));
    let (ok, free_after) = recovery(steps, t.dev);
    facts.recovery_ok = ok;
    facts.memory.cuda_free_after = free_after;
    memory::end(&mut facts.memory, watch, &t.nvml, t.index);
}

/// (a) destroyed by the thread that owns it.
fn owner_thread(ctx: &RunCtx, steps: &Steps, t: &Target, delay: u64) -> Result<DestroyVariant> {
    let (victim, in_flight) = setup(steps, step::OWNER, t.dev, delay)?;
    let destroy_at = ctx.now_ms();
    steps.call(
        &format!("{}: destroy the context (kernel in flight)", step::OWNER),
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `victim.ctx` was created by setup on this thread and is destroyed once, here;
        // the kernel still running in it only touches its own device buffer, and the later
        // uses of its handles are the deliberate stale calls of this part's own process.
        || unsafe { sys::cuCtxDestroy_v2(victim.ctx) },
    );
    let destroy_ms = ctx.now_ms() - destroy_at;
    let current = owner_current(steps, step::OWNER, victim.ctx, &[rc::SUCCESS]);
    stale_calls(steps, step::OWNER, victim);
    Ok(DestroyVariant {
        name: step::OWNER.into(),
        in_flight_at_destroy: in_flight,
        destroy_ms,
        owner_thread: thread_id(),
        destroy_thread: thread_id(),
        owner_current_after: current,
    })
}

/// (b) destroyed by another thread while the owner still has it current.
fn other_thread(ctx: &RunCtx, steps: &Steps, t: &Target, delay: u64) -> Result<DestroyVariant> {
    let main_thread = thread_id();
    std::thread::scope(|s| -> Result<DestroyVariant> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(Victim, bool), String>>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let owner = s.spawn(move || -> (u64, String) {
            let me = thread_id();
            match setup(steps, step::OTHER, t.dev, delay) {
                Ok(v) => {
                    let victim = v.0;
                    let _ = ready_tx.send(Ok(v));
                    let _ = go_rx.recv();
                    let current = owner_current(
                        steps,
                        step::OTHER,
                        victim.ctx,
                        &[rc::SUCCESS, rc::CONTEXT_IS_DESTROYED],
                    );
                    stale_calls(steps, step::OTHER, victim);
                    owner_thread_calls(steps, step::OTHER);
                    (me, current)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    (me, String::new())
                }
            }
        });
        let (victim, in_flight) = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("owner thread ended early"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        let destroy_at = ctx.now_ms();
        steps.call_noted(
            &format!(
                "{}: destroy the context while the owner thread has it current",
                step::OTHER
            ),
            "cuCtxDestroy_v2",
            &[rc::SUCCESS],
            Some("cuCtxDestroy destroys a context whatever threads have it current"),
            // SAFETY: `victim.ctx` was created by the owner thread's setup and is destroyed
            // once, here; the owner has it current (documented: its later calls answer
            // CONTEXT_IS_DESTROYED) and waits on `go` before using any of its handles.
            || unsafe { sys::cuCtxDestroy_v2(victim.ctx) },
        );
        let destroy_ms = ctx.now_ms() - destroy_at;
        let _ = go_tx.send(());
        let (owner_thread, current) = owner.join().expect("owner thread does not panic");
        Ok(DestroyVariant {
            name: step::OTHER.into(),
            in_flight_at_destroy: in_flight,
            destroy_ms,
            owner_thread,
            destroy_thread: main_thread,
            owner_current_after: current,
        })
    })
}

/// cuMemGetInfo free bytes in a fresh context with our kernels loaded (the same situation
/// as the recovery measurement).
fn fresh_context_free(dev: sys::CUdevice) -> Result<u64> {
    let mut c: sys::CUcontext = std::ptr::null_mut();
    check(
        // SAFETY: `c` is a live out-pointer and `dev` the target device.
        unsafe { sys::cuCtxCreate_v2(&mut c, 0, dev) },
        "cuCtxCreate_v2",
    )?;
    let m = Module::load()?;
    let free = cuda::mem_get_info().map(|(f, _)| f);
    m.unload();
    // SAFETY: `c` was created above and is destroyed once, here; its module was unloaded.
    unsafe { sys::cuCtxDestroy_v2(c) };
    free
}

/// A context with our module, an allocation, a stream and delayed_fill_u32 running on it.
/// Returns the handles and whether the kernel was still running after launch.
fn setup(steps: &Steps, prefix: &str, dev: sys::CUdevice, delay: u64) -> Result<(Victim, bool)> {
    let mut c: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        &format!("{prefix}: create a context"),
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        // SAFETY: `c` is a live out-pointer and `dev` the target device; `c` becomes current.
        || unsafe { sys::cuCtxCreate_v2(&mut c, 0, dev) },
    );
    check(r, "cuCtxCreate_v2")?;
    let module = Module::load()?;
    let delayed = module.function(name::DELAYED_FILL_U32)?;
    let empty = module.function(name::EMPTY)?;
    // The module is deliberately not unloaded (Module has no Drop): the destroy takes it.
    let _ = module;
    let mut buf: sys::CUdeviceptr = 0;
    let r = steps.call(
        &format!("{prefix}: allocate 4 MiB"),
        "cuMemAlloc_v2",
        &[rc::SUCCESS],
        // SAFETY: `buf` is a live out-pointer; the context just created is current.
        || unsafe { sys::cuMemAlloc_v2(&mut buf, (ELEMS * 4) as usize) },
    );
    check(r, "cuMemAlloc_v2")?;
    let mut stream: sys::CUstream = std::ptr::null_mut();
    let r = steps.call(
        &format!("{prefix}: create a stream"),
        "cuStreamCreate",
        &[rc::SUCCESS],
        // SAFETY: `stream` is a live out-pointer; the context just created is current.
        || unsafe {
            sys::cuStreamCreate(
                &mut stream,
                sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
            )
        },
    );
    check(r, "cuStreamCreate")?;
    let r = steps.call(
        &format!("{prefix}: launch delayed_fill_u32 ({KERNEL_DELAY_MS} ms)"),
        "cuLaunchKernel",
        &[rc::SUCCESS],
        // SAFETY: `delayed` is delayed_fill_u32 of the module loaded in this context, `buf`
        // its allocation of ELEMS u32 (4 MiB) and `stream` its live stream.
        || unsafe { kernels::launch_delayed_fill(delayed, stream, buf, 7, ELEMS, delay) },
    );
    check(r, "cuLaunchKernel")?;
    let q = steps.call_noted(
        &format!("{prefix}: {}", step::IN_FLIGHT),
        "cuStreamQuery",
        &[rc::NOT_READY, rc::SUCCESS],
        Some("NOT_READY means the kernel is still running when the context is destroyed"),
        // SAFETY: `stream` is the live stream created above.
        || unsafe { sys::cuStreamQuery(stream) },
    );
    Ok((
        Victim {
            ctx: c,
            stream,
            buf,
            empty,
        },
        q == rc::NOT_READY,
    ))
}

/// What cuCtxGetCurrent says on the owner thread after the destroy.
fn owner_current(
    steps: &Steps,
    prefix: &str,
    destroyed: sys::CUcontext,
    expected: &[CUresult],
) -> String {
    let mut cur: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call_noted(
        &format!("{prefix}: current context on the owner thread"),
        "cuCtxGetCurrent",
        expected,
        Some("the destroying thread has the context popped; other threads keep it bound and get CONTEXT_IS_DESTROYED from their calls"),
        // SAFETY: `cur` is a live out-pointer; no handle is passed (the result is only
        // compared with the destroyed handle, never used).
        || unsafe { sys::cuCtxGetCurrent(&mut cur) },
    );
    if r != rc::SUCCESS {
        format!("{r:?}")
    } else if cur.is_null() {
        "null".into()
    } else if cur == destroyed {
        "destroyed handle".into()
    } else {
        "other context".into()
    }
}

/// Calls with the destroyed context's stream and memory (undefined behaviour per NVIDIA: the
/// accepted answers are the refusals; the step records which one came back). The launch with
/// the destroyed context's function and stream is not here: on driver 580 it kills the
/// process (SIGSEGV), so it runs in a process of its own ([`stale_launch`]).
fn stale_calls(steps: &Steps, prefix: &str, v: Victim) {
    let note = Some(
        "NVIDIA documents use of a destroyed context's handles as undefined; a refusal (201, 709, 400, or 1 for pointers) is the correct outcome",
    );
    let s = step::STALE;
    steps.call_noted(
        &format!("{prefix}{s}stream synchronize"),
        "cuStreamSynchronize",
        rc::STALE,
        note,
        // SAFETY: deliberately calls with the stream of the context destroyed above (documented
        // as undefined); no memory of ours is touched through it, and the part runs in a
        // process of its own (DestroyPart), so a crash is recorded as the driver's answer.
        || unsafe { sys::cuStreamSynchronize(v.stream) },
    );
    let mut host = [0u32; 4];
    steps.call_noted(
        &format!("{prefix}{s}memcpy from the freed allocation"),
        "cuMemcpyDtoH_v2",
        rc::STALE_PTR,
        note,
        // SAFETY: `host` is a live 16-byte buffer, the size asked, so the driver can write no
        // further; `v.buf` deliberately belongs to the destroyed context (undefined per
        // NVIDIA), in this part's own process, where a crash is recorded as the answer.
        || unsafe { sys::cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, v.buf, 16) },
    );
    steps.call_noted(
        &format!("{prefix}{s}free of the allocation"),
        "cuMemFree_v2",
        rc::STALE_PTR,
        note,
        // SAFETY: deliberately frees an allocation the context's destruction already took
        // (undefined per NVIDIA); only the driver's bookkeeping is involved, in this part's
        // own process, where a crash is recorded as the answer.
        || unsafe { sys::cuMemFree_v2(v.buf) },
    );
}

/// A context with work in flight is destroyed, then a kernel is launched with its (stale)
/// function and stream. Run in a process of its own: the driver may answer with a refusal or
/// crash the process, and both are recorded.
pub fn stale_launch(ctx: &RunCtx, steps: &Steps, t: &Target) -> Result<()> {
    let p = step::STALE_LAUNCH;
    let delay = super::clock_khz(t.dev) * KERNEL_DELAY_MS;
    let (victim, _) = setup(steps, p, t.dev, delay)?;
    steps.call(
        &format!("{p}: destroy the context (kernel in flight)"),
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `victim.ctx` was created by setup on this thread and is destroyed once, here.
        || unsafe { sys::cuCtxDestroy_v2(victim.ctx) },
    );
    let _ = ctx;
    steps.call_noted(
        &format!("{p}{}kernel launch on the stream", step::STALE),
        "cuLaunchKernel",
        rc::STALE,
        Some("undefined per NVIDIA: a refusal is the friendly answer; a driver may also crash the process, which no error handling can catch"),
        // SAFETY: deliberately launches the destroyed context's function on its destroyed
        // stream (documented as undefined; driver 580 segfaults). `empty` takes no arguments,
        // so no argument pointer is read, and this part runs in a process of its own
        // (DestroyPart::StaleLaunch), so a crash is recorded as the driver's answer.
        || unsafe { kernels::launch_empty(victim.empty, victim.stream) },
    );
    Ok(())
}

/// Calls that need the current context, on the owner thread whose context another thread
/// destroyed; then the owner unbinds it.
fn owner_thread_calls(steps: &Steps, prefix: &str) {
    let note =
        Some("a thread whose current context was destroyed elsewhere gets CONTEXT_IS_DESTROYED");
    let mut p: sys::CUdeviceptr = 0;
    steps.call_noted(
        &format!("{prefix}: allocate on the owner thread"),
        "cuMemAlloc_v2",
        &[rc::CONTEXT_IS_DESTROYED, rc::INVALID_CONTEXT],
        note,
        // SAFETY: `p` is a live out-pointer. This thread's current context was destroyed by
        // the other thread: documented to answer CONTEXT_IS_DESTROYED; own process as above.
        || unsafe { sys::cuMemAlloc_v2(&mut p, 4096) },
    );
    steps.call_noted(
        &format!("{prefix}: synchronize on the owner thread"),
        "cuCtxSynchronize",
        &[rc::CONTEXT_IS_DESTROYED, rc::INVALID_CONTEXT],
        note,
        // SAFETY: no arguments; the current context destroyed elsewhere is documented to
        // answer CONTEXT_IS_DESTROYED.
        || unsafe { sys::cuCtxSynchronize() },
    );
    steps.call_noted(
        &format!("{prefix}: owner unbinds the destroyed context"),
        "cuCtxSetCurrent",
        &[rc::SUCCESS, rc::CONTEXT_IS_DESTROYED],
        Some("unbinding (NULL) should succeed; some drivers report the destroyed context instead"),
        // SAFETY: null unbinds whatever is current on this thread; no handle is passed.
        || unsafe { sys::cuCtxSetCurrent(std::ptr::null_mut()) },
    );
}

const PRIMARY_VALUE: u32 = 0x5EED;

fn primary_state(dev: sys::CUdevice) -> Option<bool> {
    let (mut flags, mut active) = (0u32, 0i32);
    // SAFETY: `flags` (u32) and `active` (i32) are live out-pointers; `dev` is the target device.
    let r = unsafe { sys::cuDevicePrimaryCtxGetState(dev, &mut flags, &mut active) };
    (r == rc::SUCCESS).then_some(active != 0)
}

/// A holder retains the primary context and allocates; another component resets it.
fn primary_reset(steps: &Steps, dev: sys::CUdevice) -> PrimaryResetFacts {
    let p = step::PRIMARY;
    let mut f = PrimaryResetFacts::default();
    let mut pctx: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        &format!("{p}: holder retains the primary context"),
        "cuDevicePrimaryCtxRetain",
        &[rc::SUCCESS],
        // SAFETY: `pctx` is a live out-pointer; `dev` is the target device.
        || unsafe { sys::cuDevicePrimaryCtxRetain(&mut pctx, dev) },
    );
    if r != rc::SUCCESS {
        return f;
    }
    steps.call(
        &format!("{p}: holder makes it current"),
        "cuCtxSetCurrent",
        &[rc::SUCCESS],
        // SAFETY: `pctx` is the primary context this holder retained just above.
        || unsafe { sys::cuCtxSetCurrent(pctx) },
    );
    f.active_before = primary_state(dev);
    let mut ptr: sys::CUdeviceptr = 0;
    let r = steps.call(
        &format!("{p}: holder allocates (pointers it keeps)"),
        "cuMemAlloc_v2",
        &[rc::SUCCESS],
        // SAFETY: `ptr` is a live out-pointer; the retained primary context is current.
        || unsafe { sys::cuMemAlloc_v2(&mut ptr, 1 << 20) },
    );
    if r == rc::SUCCESS {
        // SAFETY: `ptr` is the 1 MiB just allocated: (1 << 20) / 4 u32 fill it exactly.
        unsafe { sys::cuMemsetD32_v2(ptr, PRIMARY_VALUE, (1 << 20) / 4) };
    }
    steps.call_noted(
        &format!("{p}: another component resets the primary context (cudaDeviceReset)"),
        "cuDevicePrimaryCtxReset_v2",
        &[rc::SUCCESS],
        Some("the reset destroys every allocation of the primary context, whoever made it"),
        // SAFETY: `dev` is the target device; the reset frees the holder's `ptr` on purpose,
        // which below is only passed to calls that look it up, never dereferenced by us.
        || unsafe { sys::cuDevicePrimaryCtxReset_v2(dev) },
    );
    f.active_after_reset = primary_state(dev);
    let note =
        Some("after the reset the holder's pointers are gone: a refusal is the correct outcome");
    let mut attr_ctx: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call_noted(
        &format!("{p}: holder queries its old pointer"),
        "cuPointerGetAttribute",
        rc::STALE_PTR,
        note,
        // SAFETY: CU_POINTER_ATTRIBUTE_CONTEXT writes one CUcontext, the type of `attr_ctx`;
        // `ptr` is the holder's pointer freed by the reset, passed on purpose: the driver
        // looks it up and answers for an unknown pointer.
        || unsafe {
            sys::cuPointerGetAttribute(
                kernels::arg(&mut attr_ctx),
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
                ptr,
            )
        },
    );
    f.old_pointer_query = Some(cuda::code(r));
    let mut host = [0u32; 4];
    let r = steps.call_noted(
        &format!("{p}: holder reads its old pointer"),
        "cuMemcpyDtoH_v2",
        rc::STALE_PTR,
        note,
        // SAFETY: `host` is a live 16-byte buffer, the size asked; `ptr` was freed by the reset
        // on purpose (a stale pointer is undefined per NVIDIA). This runs in the isolated child
        // of inject ctx-destroy, whose parent records a crash as the driver's answer.
        || unsafe { sys::cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, ptr, 16) },
    );
    f.old_pointer_memcpy = Some(cuda::code(r));
    let mut again: sys::CUdeviceptr = 0;
    let r = steps.call_noted(
        &format!("{p}: holder allocates again with its retained handle"),
        "cuMemAlloc_v2",
        &[rc::SUCCESS, rc::INVALID_CONTEXT, rc::CONTEXT_IS_DESTROYED],
        Some("the retained handle stays usable after a reset (the primary context is re-initialised on use); record which"),
        // SAFETY: `again` is a live out-pointer; the current context is the retained primary
        // handle, which a reset leaves valid (its retain count is unchanged).
        || unsafe { sys::cuMemAlloc_v2(&mut again, 4096) },
    );
    f.holder_alloc_after_reset = Some(cuda::code(r));
    if r == rc::SUCCESS {
        // SAFETY: `again` is the allocation just made, freed once, here.
        unsafe { sys::cuMemFree_v2(again) };
    }
    let r = steps.call_noted(
        &format!("{p}: holder releases its retain (the reset kept the count)"),
        "cuDevicePrimaryCtxRelease_v2",
        &[rc::SUCCESS],
        Some("a reset does not release: the holder's release must still succeed"),
        // SAFETY: releases the one retain this holder made above (a reset keeps the count).
        || unsafe { sys::cuDevicePrimaryCtxRelease_v2(dev) },
    );
    f.release_after_reset = Some(cuda::code(r));
    // SAFETY: null unbinds whatever is current on this thread; no handle is passed.
    unsafe { sys::cuCtxSetCurrent(std::ptr::null_mut()) };
    f
}

const RECOVERY_VALUE: u32 = 0xC1EA;

/// A fresh context allocates, runs fill_u32 and reads it back. Returns (worked, free bytes
/// measured in it once its own allocation is freed).
fn recovery(steps: &Steps, dev: sys::CUdevice) -> (bool, Option<u64>) {
    let p = step::RECOVERY;
    let mut c: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        &format!("{p}: create a fresh context"),
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        // SAFETY: `c` is a live out-pointer and `dev` the target device; `c` becomes current.
        || unsafe { sys::cuCtxCreate_v2(&mut c, 0, dev) },
    );
    if r != rc::SUCCESS {
        return (false, None);
    }
    let Ok(module) = Module::load() else {
        // SAFETY: `c` was created just above and is destroyed once, here; nothing is in it.
        unsafe { sys::cuCtxDestroy_v2(c) };
        return (false, None);
    };
    let fill = module.function(name::FILL_U32).ok();
    let mut buf: sys::CUdeviceptr = 0;
    let mut ok = steps.call(
        &format!("{p}: allocate"),
        "cuMemAlloc_v2",
        &[rc::SUCCESS],
        // SAFETY: `buf` is a live out-pointer; the fresh context is current.
        || unsafe { sys::cuMemAlloc_v2(&mut buf, (ELEMS * 4) as usize) },
    ) == rc::SUCCESS;
    if ok && let Some(fill) = fill {
        let (calls_ok, equal) =
            super::fill_and_read_back(steps, &format!("{p}: "), fill, buf, RECOVERY_VALUE, ELEMS);
        ok = calls_ok && equal;
    } else {
        ok = false;
    }
    if buf != 0 {
        // SAFETY: `buf` is non-zero only when the allocation above succeeded; freed once, after
        // fill_and_read_back synchronised the kernel that writes it (or none was launched).
        unsafe { sys::cuMemFree_v2(buf) };
    }
    let free = super::cuda_free();
    module.unload();
    ok &= steps.call(
        &format!("{p}: destroy the fresh context"),
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `c` was created above and is destroyed once, here; its buffer was freed and
        // its module unloaded.
        || unsafe { sys::cuCtxDestroy_v2(c) },
    ) == rc::SUCCESS;
    (ok, free)
}
