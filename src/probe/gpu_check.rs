//! `health`'s quick GPU check: on every GPU at once, one thread each, a primary context, the
//! kernels module, a 1 MiB allocation, a kernel that fills it, a synchronisation, the result
//! read back, the frees. The cost is cuInit plus the slowest GPU, not their sum.
//!
//! A GPU that hangs must not hang the health check (Slurm kills a HealthCheckProgram after 60 s
//! and then knows nothing): the caller waits until a deadline, and a GPU not done by then is
//! reported with the call it is stuck in. Its thread is left behind, detached.

use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::facts::gpu_check::{CheckCall, GpuCheck, GpuCheckRun};
use crate::probe::cuda::{self, CUresult, sys};
use crate::probe::kernels::{self, Module};
use crate::probe::loader;

/// Elements the kernel fills (1 MiB of u32): small enough to cost nothing, big enough to span
/// many blocks.
const ELEMENTS: usize = 1 << 18;

/// A GPU to check: its NVML index and PCI bus id (CUDA's device is found by the bus id).
#[derive(Debug, Clone)]
pub struct CheckTarget {
    pub index: u32,
    pub pci_bus_id: String,
}

/// Checks every target in parallel and waits at most `timeout` for each. When CUDA cannot run
/// here at all, says why in `unavailable` and checks nothing.
pub fn check_gpus(targets: &[CheckTarget], timeout: Duration) -> GpuCheckRun {
    let started = Instant::now();
    let mut run = GpuCheckRun {
        timeout_ms: timeout.as_secs_f64() * 1e3,
        ..Default::default()
    };
    if crate::probe::nvml_library::replaying() {
        run.unavailable =
            Some("NVML is a replayed machine (--replay): no CUDA driver behind it".into());
        return run;
    }
    if let Err(e) = loader::load_cuda() {
        run.unavailable = Some(e.to_string());
        run.wall_ms = started.elapsed().as_secs_f64() * 1e3;
        return run;
    }
    let (tx, rx) = mpsc::channel::<GpuCheck>();
    let in_flight: Arc<Mutex<Vec<Option<&'static str>>>> =
        Arc::new(Mutex::new(vec![None; targets.len()]));
    for (slot, t) in targets.iter().enumerate() {
        let (tx, t, in_flight) = (tx.clone(), t.clone(), in_flight.clone());
        // Detached on purpose: a thread stuck in the driver must not keep the check waiting.
        std::thread::spawn(move || {
            let note = |call: Option<&'static str>| {
                if let Ok(mut v) = in_flight.lock() {
                    v[slot] = call;
                }
            };
            let _ = tx.send(check_one(&t, &note));
        });
    }
    drop(tx);
    let deadline = started + timeout;
    let mut done: Vec<GpuCheck> = Vec::new();
    while done.len() < targets.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(c) => done.push(c),
            Err(_) => break,
        }
    }
    let stuck = in_flight.lock().map(|v| v.clone()).unwrap_or_default();
    for (slot, t) in targets.iter().enumerate() {
        if !done.iter().any(|c| c.index == t.index) {
            done.push(GpuCheck {
                index: t.index,
                pci_bus_id: t.pci_bus_id.clone(),
                timed_out: true,
                in_flight: stuck.get(slot).copied().flatten().map(str::to_string),
                elapsed_ms: timeout.as_secs_f64() * 1e3,
                ..Default::default()
            });
        }
    }
    done.sort_by_key(|c| c.index);
    run.gpus = done;
    run.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    run
}

/// The calls of one GPU's check, on the calling thread. `note` is told the call in flight.
fn check_one(t: &CheckTarget, note: &dyn Fn(Option<&'static str>)) -> GpuCheck {
    let started = Instant::now();
    let mut out = GpuCheck {
        index: t.index,
        pci_bus_id: t.pci_bus_id.clone(),
        ..Default::default()
    };
    let dev = match cuda::device_for_bus_id(&t.pci_bus_id) {
        Ok(d) => d,
        Err(e) => {
            out.unavailable = Some(e.to_string());
            return out;
        }
    };
    out.cuda_ordinal = Some(dev as u32);
    let mut calls = Calls {
        list: &mut out.calls,
        note,
    };
    let mut ctx: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: `ctx` is a live out-pointer; `dev` came from cuDeviceGetByPCIBusId.
    if !calls.make("cuDevicePrimaryCtxRetain", || unsafe {
        sys::cuDevicePrimaryCtxRetain(&mut ctx, dev)
    }) {
        out.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        return out;
    }
    // SAFETY: the context was just retained on this device.
    if calls.make("cuCtxSetCurrent", || unsafe { sys::cuCtxSetCurrent(ctx) }) {
        out.value_ok = run_kernel(&mut calls, t.index);
        // SAFETY: unbinds this thread's context (null is always accepted).
        unsafe { sys::cuCtxSetCurrent(std::ptr::null_mut()) };
    }
    // SAFETY: releases the retain made above, once.
    calls.make("cuDevicePrimaryCtxRelease", || unsafe {
        sys::cuDevicePrimaryCtxRelease_v2(dev)
    });
    out.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    out
}

/// Module, allocation, fill kernel, sync, read back, frees, in the context current on this
/// thread. Returns whether the values read back are right (None when they were not read).
fn run_kernel(calls: &mut Calls, index: u32) -> Option<bool> {
    let (rc, module) = {
        calls.note_call("cuModuleLoadData");
        let t0 = Instant::now();
        let (rc, m) = Module::try_load();
        calls.record("cuModuleLoadData", rc, t0);
        (rc, m)
    };
    let module = module.filter(|_| rc == CUresult::CUDA_SUCCESS)?;
    let mut value_ok = None;
    let mut buf: sys::CUdeviceptr = 0;
    // SAFETY: `buf` is a live out-pointer; a context is current on this thread.
    if calls.make("cuMemAlloc_v2", || unsafe {
        sys::cuMemAlloc_v2(&mut buf, ELEMENTS * 4)
    }) {
        let value = 0x600D_0000 | index;
        let name = std::ffi::CString::new(kernels::name::FILL_U32).expect("no NUL");
        let mut fill: sys::CUfunction = std::ptr::null_mut();
        // SAFETY: `fill` is a live out-pointer, `name` NUL-terminated, the module loaded above.
        let found = calls.make("cuModuleGetFunction", || unsafe {
            sys::cuModuleGetFunction(&mut fill, module.raw, name.as_ptr())
        });
        // SAFETY: fill_u32 of the module just loaded, `buf` holds ELEMENTS u32; null is the
        // legacy stream of the current context.
        let launched = found
            && calls.make("cuLaunchKernel", || unsafe {
                kernels::launch_fill(fill, std::ptr::null_mut(), buf, value, ELEMENTS as u64)
            });
        // SAFETY: no arguments; waits for the fill in the current context.
        if launched && calls.make("cuCtxSynchronize", || unsafe { sys::cuCtxSynchronize() }) {
            let mut host = vec![0u32; ELEMENTS];
            // SAFETY: `host` holds ELEMENTS u32 and `buf` is a live allocation of as many.
            let read = calls.make("cuMemcpyDtoH_v2", || unsafe {
                sys::cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, buf, ELEMENTS * 4)
            });
            if read {
                value_ok = Some(host.iter().all(|&x| x == value));
            }
        }
        // SAFETY: frees the allocation made above, once.
        calls.make("cuMemFree_v2", || unsafe { sys::cuMemFree_v2(buf) });
    }
    calls.make("cuModuleUnload", || module.unload());
    value_ok
}

/// The calls of one check, timed, with the one in flight announced.
struct Calls<'a> {
    list: &'a mut Vec<CheckCall>,
    note: &'a dyn Fn(Option<&'static str>),
}

impl Calls<'_> {
    fn note_call(&self, call: &'static str) {
        (self.note)(Some(call));
    }

    fn record(&mut self, call: &'static str, rc: CUresult, t0: Instant) {
        (self.note)(None);
        self.list.push(CheckCall {
            call: call.to_string(),
            observed: cuda::code(rc),
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
        });
    }

    /// Makes the call, records it, and says whether it succeeded.
    fn make(&mut self, call: &'static str, f: impl FnOnce() -> CUresult) -> bool {
        self.note_call(call);
        let t0 = Instant::now();
        let rc = f();
        self.record(call, rc, t0);
        rc == CUresult::CUDA_SUCCESS
    }
}
