//! `inject stream-misuse`: a destroyed stream used; a stream of context A used while B is
//! current; an event recorded on another context's stream; a copy that reads a kernel's output
//! from another stream without an event (and with one); capture misuse; and the implicit
//! synchronisation of the legacy default stream versus the per-thread one.

use std::ffi::c_void;
use std::time::Instant;

use anyhow::Result;
use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    BLOCKING, NON_BLOCKING, STREAM_LEGACY, STREAM_PER_THREAD, Steps, Target, new_stream, rc,
};
use crate::context::RunCtx;
use crate::facts::faults::{CaptureFacts, DefaultStreamFacts, RaceFacts, StreamMisuseFacts};
use crate::probe::cuda::{CUresult, check, sys};
use crate::probe::kernels::{self, Module, name};
use crate::probe::memory;

/// The parts of the scenario (`--only` runs one, e.g. under compute-sanitizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    DestroyedStream,
    CrossContext,
    MissingEvent,
    Capture,
    DefaultStream,
}

impl Part {
    /// In the order they run: the destroyed-stream part last, because a driver that crashes
    /// on a stale stream handle would take the parts after it with it.
    pub const ALL: [Part; 5] = [
        Part::CrossContext,
        Part::MissingEvent,
        Part::Capture,
        Part::DefaultStream,
        Part::DestroyedStream,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Part::DestroyedStream => "destroyed-stream",
            Part::CrossContext => "cross-context",
            Part::MissingEvent => "missing-event",
            Part::Capture => "capture",
            Part::DefaultStream => "default-stream",
        }
    }
}

/// Step-name prefixes (stable).
pub mod step {
    pub const WITHOUT_EVENT: &str = "missing-event: without event";
    pub const WITH_EVENT: &str = "missing-event: with event";
}

/// Elements the race buffer holds (4 MiB): the copy takes about as long as the kernel's delay.
const RACE_ELEMS: u64 = 1 << 20;
/// How long delayed_fill_u32 spins before writing in the race.
const RACE_DELAY_US: u64 = 200;
/// How long the kernel on a default stream runs in the default-stream part.
const DEFAULT_STREAM_DELAY_MS: u64 = 50;

struct Kernels {
    empty: sys::CUfunction,
    delayed: sys::CUfunction,
}

pub fn run(
    ctx: &RunCtx,
    steps: &Steps,
    t: &Target,
    parts: &[Part],
    iterations: u32,
) -> Result<StreamMisuseFacts> {
    let (memory, watch) = memory::begin(ctx, &t.nvml, t.index);
    let mut facts = StreamMisuseFacts {
        device: t.index,
        memory,
        ..Default::default()
    };
    let mut a: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        "create context A",
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        // SAFETY: `a` is a live CUcontext out-pointer; `t.dev` came from cuDeviceGetByPCIBusId.
        || unsafe { sys::cuCtxCreate_v2(&mut a, 0, t.dev) },
    );
    check(r, "cuCtxCreate_v2")?;
    let module = Module::load()?;
    let k = Kernels {
        empty: module.function(name::EMPTY)?,
        delayed: module.function(name::DELAYED_FILL_U32)?,
    };
    facts.memory.cuda_free_before = super::cuda_free();
    let khz = super::clock_khz(t.dev);

    for &part in parts {
        if ctx.interrupted() {
            break;
        }
        facts.parts.push(part.as_str().into());
        match part {
            Part::DestroyedStream => destroyed_stream(steps, &k),
            Part::CrossContext => cross_context(steps, t.dev, a)?,
            Part::MissingEvent => {
                facts.race = Some(race(ctx, steps, &k, khz, iterations)?);
            }
            Part::Capture => facts.capture = Some(capture(steps, &k)),
            Part::DefaultStream => facts.default_stream = Some(default_stream(steps, &k, khz)?),
        }
    }

    // SAFETY: context A was created above and is destroyed only below; the parts may leave
    // another context current, so A is made current again for the measurement and cleanup.
    unsafe { sys::cuCtxSetCurrent(a) };
    // SAFETY: no arguments; waits for context A's work before its free memory is read.
    unsafe { sys::cuCtxSynchronize() };
    facts.memory.cuda_free_after = super::cuda_free();
    module.unload();
    steps.call(
        "destroy context A",
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: A is ours and destroyed once, here; each part destroyed its own streams,
        // events and buffers, the module was unloaded above, and nothing uses `a` afterwards.
        || unsafe { sys::cuCtxDestroy_v2(a) },
    );
    memory::end(&mut facts.memory, watch, &t.nvml, t.index);
    Ok(facts)
}

fn destroyed_stream(steps: &Steps, k: &Kernels) {
    let p = "destroyed-stream";
    let mut s: sys::CUstream = std::ptr::null_mut();
    if steps.call(
        &format!("{p}: create a stream"),
        "cuStreamCreate",
        &[rc::SUCCESS],
        // SAFETY: `s` is a live out-pointer; context A is current.
        || unsafe { sys::cuStreamCreate(&mut s, NON_BLOCKING) },
    ) != rc::SUCCESS
    {
        return;
    }
    steps.call(
        &format!("{p}: destroy it"),
        "cuStreamDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `s` was created just above (only reached when that succeeded) and is
        // destroyed once, here; no work was ever queued on it.
        || unsafe { sys::cuStreamDestroy_v2(s) },
    );
    let note = Some(
        "a destroyed stream's handle is invalid: INVALID_HANDLE (or INVALID_CONTEXT) is the correct refusal",
    );
    let stale: &[CUresult] = &[rc::INVALID_HANDLE, rc::INVALID_CONTEXT];
    steps.call_noted(
        &format!("{p}: query the destroyed stream"),
        "cuStreamQuery",
        stale,
        note,
        // SAFETY: deliberately passes the stream destroyed above (use of a destroyed handle is
        // undefined per NVIDIA); no memory of ours is reachable through a stream handle, and
        // this part runs in a process of its own (DestroyedStream, see
        // scenarios/stream_misuse.rs), so a crash is recorded as the driver's answer.
        || unsafe { sys::cuStreamQuery(s) },
    );
    steps.call_noted(
        &format!("{p}: launch on the destroyed stream"),
        "cuLaunchKernel",
        stale,
        note,
        // SAFETY: `k.empty` is the live `empty` kernel of context A (no arguments, so no
        // argument pointer is read); only the stream is stale, deliberately, as above: its own
        // process records a crash as the driver's answer.
        || unsafe { kernels::launch_empty(k.empty, s) },
    );
    steps.call_noted(
        &format!("{p}: synchronize the destroyed stream"),
        "cuStreamSynchronize",
        stale,
        note,
        // SAFETY: the destroyed stream again, deliberately (undefined per NVIDIA); nothing of
        // ours is behind the handle and a crash is recorded by the parent process.
        || unsafe { sys::cuStreamSynchronize(s) },
    );
    steps.call_noted(
        &format!("{p}: the context still works"),
        "cuCtxSynchronize",
        &[rc::SUCCESS],
        Some("a refused handle is not a sticky error"),
        // SAFETY: no arguments; context A is current and alive.
        || unsafe { sys::cuCtxSynchronize() },
    );
}

fn cross_context(steps: &Steps, dev: sys::CUdevice, a: sys::CUcontext) -> Result<()> {
    let p = "cross-context";
    // SAFETY: context A is alive (created in `run`, destroyed only at its end).
    unsafe { sys::cuCtxSetCurrent(a) };
    let s_a = new_stream(NON_BLOCKING)?;
    let mut b: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        &format!("{p}: create context B (now current)"),
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        // SAFETY: `b` is a live out-pointer and `dev` the target device; B becomes current.
        || unsafe { sys::cuCtxCreate_v2(&mut b, 0, dev) },
    );
    check(r, "cuCtxCreate_v2 (B)")?;
    let module_b = Module::load()?;
    let empty_b = module_b.function(name::EMPTY)?;
    let s_b = new_stream(NON_BLOCKING)?;
    let mut e_b: sys::CUevent = std::ptr::null_mut();
    check(
        // SAFETY: `e_b` is a live out-pointer; B is current, so the event is B's.
        unsafe { sys::cuEventCreate(&mut e_b, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32) },
        "cuEventCreate",
    )?;

    steps.call_noted(
        &format!("{p}: launch B's kernel on A's stream (B current)"),
        "cuLaunchKernel",
        &[rc::INVALID_HANDLE, rc::INVALID_CONTEXT],
        Some(
            "a kernel launch fails when the stream belongs to another context than the current one",
        ),
        // SAFETY: `empty_b` (B's `empty`, no arguments) and `s_a` are both live; that they
        // belong to different contexts is the misuse under test, which the driver checks.
        || unsafe { kernels::launch_empty(empty_b, s_a) },
    );
    steps.call_noted(
        &format!("{p}: query A's stream (B current)"),
        "cuStreamQuery",
        &[rc::SUCCESS],
        Some("streams carry their context: querying one of another context succeeds"),
        // SAFETY: `s_a` is a live stream of context A (destroyed at the end of this function).
        || unsafe { sys::cuStreamQuery(s_a) },
    );
    steps.call_noted(
        &format!("{p}: record B's event on A's stream"),
        "cuEventRecord",
        &[rc::INVALID_HANDLE],
        Some("cuEventRecord needs the event and the stream in the same context"),
        // SAFETY: `e_b` (B) and `s_a` (A) are live handles; the context mismatch is the misuse
        // under test, which cuEventRecord checks.
        || unsafe { sys::cuEventRecord(e_b, s_a) },
    );
    steps.call(
        &format!("{p}: record B's event on B's stream"),
        "cuEventRecord",
        &[rc::SUCCESS],
        // SAFETY: `e_b` and `s_b` are live handles of context B, which is current.
        || unsafe { sys::cuEventRecord(e_b, s_b) },
    );
    steps.call_noted(
        &format!("{p}: A's stream waits on B's event"),
        "cuStreamWaitEvent",
        &[rc::SUCCESS],
        Some("cuStreamWaitEvent accepts an event of another context: that is the supported way to order across contexts"),
        // SAFETY: `s_a` and `e_b` are live (A's stream, B's event); flags must be 0.
        || unsafe { sys::cuStreamWaitEvent(s_a, e_b, 0) },
    );
    steps.call(
        &format!("{p}: synchronize A's stream (B current)"),
        "cuStreamSynchronize",
        &[rc::SUCCESS],
        // SAFETY: `s_a` is a live stream of context A; its only work is the wait on `e_b`.
        || unsafe { sys::cuStreamSynchronize(s_a) },
    );
    // SAFETY: `e_b` and `s_b` are B's, created above, destroyed once here while B is still
    // alive and current; `s_a`, which waited on `e_b`, was synchronised above.
    unsafe {
        sys::cuEventDestroy_v2(e_b);
        sys::cuStreamDestroy_v2(s_b);
    }
    module_b.unload();
    steps.call(
        &format!("{p}: destroy context B"),
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: B is ours and destroyed once, here; its event, stream and module are gone
        // and nothing uses `b` or `empty_b` afterwards.
        || unsafe { sys::cuCtxDestroy_v2(b) },
    );
    // SAFETY: A is alive (destroyed only at the end of `run`); `s_a` is A's stream, idle
    // since its synchronisation above, destroyed once here with A current.
    unsafe {
        sys::cuCtxSetCurrent(a);
        sys::cuStreamDestroy_v2(s_a);
    }
    Ok(())
}

/// Host-pinned buffer of u32, freed on drop.
struct Pinned {
    ptr: *mut u32,
    len: usize,
}

impl Pinned {
    fn new(len: usize) -> Result<Pinned> {
        let mut p: *mut c_void = std::ptr::null_mut();
        check(
            // SAFETY: `p` is a live out-pointer; the caller (race) has context A current.
            unsafe { sys::cuMemAllocHost_v2(&mut p, len * 4) },
            "cuMemAllocHost_v2",
        )?;
        Ok(Pinned {
            ptr: p as *mut u32,
            len,
        })
    }
    fn slice(&mut self) -> &mut [u32] {
        // SAFETY: `ptr` is our pinned allocation of `len` u32 (len * 4 bytes), alive until
        // drop; race calls this only after synchronising S2, whose copy writes it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAllocHost_v2 and is freed once, here; race synchronises
        // the context before dropping it, so no copy still writes it.
        unsafe { sys::cuMemFreeHost(self.ptr as *mut c_void) };
    }
}

fn race(ctx: &RunCtx, steps: &Steps, k: &Kernels, khz: u64, iterations: u32) -> Result<RaceFacts> {
    let n = RACE_ELEMS;
    let delay = khz * RACE_DELAY_US / 1000;
    let s1 = new_stream(NON_BLOCKING)?;
    let s2 = new_stream(NON_BLOCKING)?;
    let mut d: sys::CUdeviceptr = 0;
    check(
        // SAFETY: `d` is a live out-pointer; context A is current.
        unsafe { sys::cuMemAlloc_v2(&mut d, (n * 4) as usize) },
        "cuMemAlloc_v2",
    )?;
    let mut host = Pinned::new(n as usize)?;
    let mut ev: sys::CUevent = std::ptr::null_mut();
    check(
        // SAFETY: `ev` is a live out-pointer; context A is current.
        unsafe { sys::cuEventCreate(&mut ev, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32) },
        "cuEventCreate",
    )?;
    let mut facts = RaceFacts {
        iterations,
        elements: n,
        kernel_delay_us: RACE_DELAY_US as f64,
        ..Default::default()
    };
    for with_event in [false, true] {
        let prefix = if with_event {
            step::WITH_EVENT
        } else {
            step::WITHOUT_EVENT
        };
        for i in 0..iterations {
            if ctx.interrupted() {
                break;
            }
            let value = if with_event { 0x1_0000 + i } else { i + 1 };
            host.slice().fill(u32::MAX);
            // Iteration 0 records every call; later ones only a call that fails.
            let call = |what: &str, call: &str, f: &mut dyn FnMut() -> CUresult| -> bool {
                if i == 0 {
                    steps.call(&format!("{prefix}: {what}"), call, &[rc::SUCCESS], f) == rc::SUCCESS
                } else {
                    let at = ctx.now_ms();
                    let t0 = Instant::now();
                    let r = f();
                    if r != rc::SUCCESS {
                        let el = t0.elapsed().as_secs_f64() * 1e3;
                        steps.made(
                            &format!("{prefix}: {what} (iteration {i})"),
                            call,
                            &[rc::SUCCESS],
                            r,
                            at,
                            el,
                            None,
                        );
                    }
                    r == rc::SUCCESS
                }
            };
            let mut ok = call(
                "clear the buffer on S1",
                "cuMemsetD32Async",
                // SAFETY: `d` is our device allocation of n u32 and `s1` our live stream.
                &mut || unsafe { sys::cuMemsetD32Async(d, 0, n as usize, s1) },
            );
            ok = ok
                && call(
                    "kernel writes the buffer on S1",
                    "cuLaunchKernel",
                    // SAFETY: `k.delayed` is delayed_fill_u32 of context A's module and `d`
                    // holds n u32; `s1` is our live stream.
                    &mut || unsafe {
                        kernels::launch_delayed_fill(k.delayed, s1, d, value, n, delay)
                    },
                );
            if with_event {
                ok =
                    ok && call(
                        "record an event on S1",
                        "cuEventRecord",
                        // SAFETY: `ev` and `s1` are live handles of context A.
                        &mut || unsafe { sys::cuEventRecord(ev, s1) },
                    ) && call(
                        "S2 waits on the event",
                        "cuStreamWaitEvent",
                        // SAFETY: `s2` and `ev` are live handles of context A; flags must be 0.
                        &mut || unsafe { sys::cuStreamWaitEvent(s2, ev, 0) },
                    );
            }
            ok =
                ok && call(
                    "copy the buffer to the host on S2",
                    "cuMemcpyDtoHAsync_v2",
                    // SAFETY: `host` is our pinned buffer of n u32 and `d` our device buffer of
                    // n u32, n * 4 bytes each, the size copied; the host reads it only after
                    // S2 is synchronised below.
                    &mut || unsafe {
                        sys::cuMemcpyDtoHAsync_v2(host.ptr as *mut c_void, d, (n * 4) as usize, s2)
                    },
                ) && call(
                    "synchronize S2",
                    "cuStreamSynchronize",
                    // SAFETY: `s2` is our live stream.
                    &mut || unsafe { sys::cuStreamSynchronize(s2) },
                ) && call(
                    "synchronize S1",
                    "cuStreamSynchronize",
                    // SAFETY: `s1` is our live stream.
                    &mut || unsafe { sys::cuStreamSynchronize(s1) },
                );
            if !ok {
                break;
            }
            let stale = host.slice().iter().filter(|&&x| x != value).count();
            if with_event {
                facts.ran_with_event += 1;
            } else {
                facts.ran_without_event += 1;
            }
            if stale > 0 {
                if with_event {
                    facts.stale_with_event += 1;
                } else {
                    facts.stale_without_event += 1;
                }
                if facts.example.is_none() || with_event {
                    let first = host
                        .slice()
                        .iter()
                        .copied()
                        .find(|&x| x != value)
                        .unwrap_or(0);
                    facts.example = Some(format!(
                        "{prefix}, iteration {i}: {stale} of {n} elements stale (first read {first:#x}, expected {value:#x})"
                    ));
                }
            }
        }
    }
    // SAFETY: context A is current; the synchronize comes first, so no kernel or copy still
    // uses `ev`, `d`, `s1` or `s2`, which were created above and are each destroyed once here.
    unsafe {
        sys::cuCtxSynchronize();
        sys::cuEventDestroy_v2(ev);
        sys::cuMemFree_v2(d);
        sys::cuStreamDestroy_v2(s1);
        sys::cuStreamDestroy_v2(s2);
    }
    drop(host);
    Ok(facts)
}

fn capture_status(s: sys::CUstream) -> Option<String> {
    let mut st = sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    // SAFETY: `s` is a live stream of the current context; `st` is a live out-pointer of the
    // C enum, of which the driver writes one of the three values the binding declares.
    let r = unsafe { sys::cuStreamIsCapturing(s, &mut st) };
    (r == rc::SUCCESS).then(|| {
        match st {
            sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE => "none",
            sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_ACTIVE => "active",
            sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_INVALIDATED => "invalidated",
        }
        .to_string()
    })
}

fn end_capture(steps: &Steps, name: &str, s: sys::CUstream, expected: &[CUresult]) -> bool {
    let mut graph: sys::CUgraph = std::ptr::null_mut();
    steps.call_noted(
        name,
        "cuStreamEndCapture",
        expected,
        Some("an invalidated capture ends with STREAM_CAPTURE_INVALIDATED and no graph"),
        // SAFETY: `s` is a live stream of the caller's or CU_STREAM_LEGACY; `graph` is a live
        // out-pointer, left null when the driver returns no graph.
        || unsafe { sys::cuStreamEndCapture(s, &mut graph) },
    );
    if !graph.is_null() {
        // SAFETY: the graph the driver just handed us.
        unsafe { sys::cuGraphDestroy(graph) };
        true
    } else {
        false
    }
}

fn capture(steps: &Steps, k: &Kernels) -> CaptureFacts {
    let p = "capture";
    let global = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_GLOBAL;
    let mut facts = CaptureFacts::default();
    let Ok(sc) = new_stream(NON_BLOCKING) else {
        return facts;
    };
    if steps.call(
        &format!("{p}: begin capture (global mode)"),
        "cuStreamBeginCapture_v2",
        &[rc::SUCCESS],
        // SAFETY: `sc` is the live non-blocking stream created just above.
        || unsafe { sys::cuStreamBeginCapture_v2(sc, global) },
    ) == rc::SUCCESS
    {
        steps.call(
            &format!("{p}: launch into the capture"),
            "cuLaunchKernel",
            &[rc::SUCCESS],
            // SAFETY: `k.empty` is context A's `empty` (no arguments); `sc` is live and capturing.
            || unsafe { kernels::launch_empty(k.empty, sc) },
        );
        steps.call_noted(
            &format!("{p}: synchronize the capturing stream"),
            "cuStreamSynchronize",
            &[rc::CAPTURE_UNSUPPORTED],
            Some("synchronising a capturing stream is not allowed and invalidates the capture"),
            // SAFETY: `sc` is live; synchronising it while it captures is the misuse under
            // test, which the driver checks and refuses with an error code.
            || unsafe { sys::cuStreamSynchronize(sc) },
        );
        facts.status_after_sync = capture_status(sc);
        facts.graph_returned = end_capture(
            steps,
            &format!("{p}: end the invalidated capture"),
            sc,
            &[rc::CAPTURE_INVALIDATED],
        );
    }
    steps.call(
        &format!("{p}: the stream works after the capture"),
        "cuStreamSynchronize",
        &[rc::SUCCESS],
        // SAFETY: `sc` is still live (destroyed just below) and no longer capturing.
        || unsafe { sys::cuStreamSynchronize(sc) },
    );
    // SAFETY: `sc` was created above and is destroyed once, here; its capture has ended.
    unsafe { sys::cuStreamDestroy_v2(sc) };

    let r = steps.call_noted(
        &format!("{p}: begin capture on the legacy default stream"),
        "cuStreamBeginCapture_v2",
        &[rc::CAPTURE_IMPLICIT, rc::CAPTURE_UNSUPPORTED],
        Some("the legacy default stream cannot be captured (NVIDIA does not fix the code: 906 or 900)"),
        // SAFETY: CU_STREAM_LEGACY is a stream handle cuda.h defines for every context; the
        // driver refuses to capture it with an error code.
        || unsafe { sys::cuStreamBeginCapture_v2(STREAM_LEGACY, global) },
    );
    if r == rc::SUCCESS {
        end_capture(
            steps,
            &format!("{p}: end the legacy capture"),
            STREAM_LEGACY,
            &[rc::SUCCESS],
        );
    }

    if let Ok(sb) = new_stream(BLOCKING) {
        if steps.call(
            &format!("{p}: begin capture on a blocking stream"),
            "cuStreamBeginCapture_v2",
            &[rc::SUCCESS],
            // SAFETY: `sb` is the live blocking stream created just above.
            || unsafe { sys::cuStreamBeginCapture_v2(sb, global) },
        ) == rc::SUCCESS
        {
            steps.call(
                &format!("{p}: launch into the blocking stream's capture"),
                "cuLaunchKernel",
                &[rc::SUCCESS],
                // SAFETY: `k.empty` is context A's `empty` (no arguments); `sb` is live and
                // capturing.
                || unsafe { kernels::launch_empty(k.empty, sb) },
            );
            let mut st = sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
            steps.call_noted(
                &format!("{p}: query the legacy stream while a blocking stream captures"),
                "cuStreamIsCapturing",
                &[rc::CAPTURE_IMPLICIT],
                Some("documented: the legacy stream would implicitly depend on the capturing blocking stream (the capture is not invalidated)"),
                // SAFETY: CU_STREAM_LEGACY is defined by cuda.h; `st` is a live out-pointer of
                // the C enum (the driver writes one of its three declared values).
                || unsafe { sys::cuStreamIsCapturing(STREAM_LEGACY, &mut st) },
            );
            steps.call_noted(
                &format!("{p}: launch on the legacy stream while a blocking stream captures"),
                "cuLaunchKernel",
                &[rc::CAPTURE_IMPLICIT],
                Some("the legacy stream is unusable while a blocking stream captures"),
                // SAFETY: `k.empty` is context A's `empty` (no arguments) and CU_STREAM_LEGACY
                // a defined handle; the driver refuses it while `sb` captures.
                || unsafe { kernels::launch_empty(k.empty, STREAM_LEGACY) },
            );
            facts.blocking_capture_graph = Some(end_capture(
                steps,
                &format!("{p}: end the blocking stream's capture"),
                sb,
                &[rc::SUCCESS, rc::CAPTURE_INVALIDATED],
            ));
        }
        // SAFETY: `sb` was created above and is destroyed once, here; any capture on it has
        // been ended by end_capture.
        unsafe { sys::cuStreamDestroy_v2(sb) };
    }
    steps.call_noted(
        &format!("{p}: the context still works"),
        "cuCtxSynchronize",
        &[rc::SUCCESS],
        Some("capture errors are not sticky"),
        // SAFETY: no arguments; context A is current and alive.
        || unsafe { sys::cuCtxSynchronize() },
    );
    facts
}

fn default_stream(steps: &Steps, k: &Kernels, khz: u64) -> Result<DefaultStreamFacts> {
    let p = "default-stream";
    let delay = khz * DEFAULT_STREAM_DELAY_MS;
    let sb = new_stream(BLOCKING)?;
    let mut d: sys::CUdeviceptr = 0;
    check(
        // SAFETY: `d` is a live out-pointer; context A is current.
        unsafe { sys::cuMemAlloc_v2(&mut d, 1024) },
        "cuMemAlloc_v2",
    )?;
    let mut facts = DefaultStreamFacts {
        kernel_delay_ms: DEFAULT_STREAM_DELAY_MS as f64,
        ..Default::default()
    };
    for (label, s) in [("legacy", STREAM_LEGACY), ("per-thread", STREAM_PER_THREAD)] {
        steps.call(
            &format!("{p}: {DEFAULT_STREAM_DELAY_MS} ms kernel on the {label} default stream"),
            "cuLaunchKernel",
            &[rc::SUCCESS],
            // SAFETY: `k.delayed` is delayed_fill_u32 of context A's module and `d` holds 1024
            // bytes = 256 u32, the count given; `s` is a default-stream handle cuda.h defines.
            || unsafe { kernels::launch_delayed_fill(k.delayed, s, d, 1, 256, delay) },
        );
        let t0 = Instant::now();
        steps.call(
            &format!("{p}: tiny kernel on a blocking stream ({label})"),
            "cuLaunchKernel",
            &[rc::SUCCESS],
            // SAFETY: `k.empty` is context A's `empty` (no arguments); `sb` is our live stream.
            || unsafe { kernels::launch_empty(k.empty, sb) },
        );
        steps.call(
            &format!("{p}: wait for the blocking stream ({label})"),
            "cuStreamSynchronize",
            &[rc::SUCCESS],
            // SAFETY: `sb` is our live blocking stream.
            || unsafe { sys::cuStreamSynchronize(sb) },
        );
        let waited = t0.elapsed().as_secs_f64() * 1e3;
        if label == "legacy" {
            facts.legacy_wait_ms = waited;
        } else {
            facts.per_thread_wait_ms = waited;
        }
        steps.call(
            &format!("{p}: synchronize the context ({label})"),
            "cuCtxSynchronize",
            &[rc::SUCCESS],
            // SAFETY: no arguments; waits for context A, current and alive.
            || unsafe { sys::cuCtxSynchronize() },
        );
    }
    // SAFETY: `d` and `sb` were created above and are freed once, here; the context was
    // synchronised at the end of the loop, so no kernel still uses them.
    unsafe {
        sys::cuMemFree_v2(d);
        sys::cuStreamDestroy_v2(sb);
    }
    Ok(facts)
}
