//! Raw CUDA driver calls recorded as steps. Scenarios call the driver through [`Steps::call`]
//! so every call that matters is announced (to the parent, when isolated), timed, tagged with
//! its OS thread and compared with what the scenario expects.
//!
//! We use cudarc's `sys` layer, not its safe API: the safe API binds a context before every
//! call and frees through drops, which would hide exactly the faults we provoke.

use std::time::Instant;

use anyhow::Result;
pub use cudarc::driver::sys;
pub use cudarc::driver::sys::CUresult;

use crate::context::{RunCtx, thread_id};
use crate::error::unavailable;
use crate::isolate::protocol::Event;
use crate::probe::loader;
use crate::report::{Code, Step};

/// A CUresult as the report writes it: number and name.
pub fn code(rc: CUresult) -> Code {
    Code {
        code: rc as i64,
        name: format!("{rc:?}"),
    }
}

pub fn codes(rcs: &[CUresult]) -> Vec<Code> {
    rcs.iter().copied().map(code).collect()
}

/// Turns a CUresult into an error for set-up calls that are not steps (a scenario cannot go on).
pub fn check(rc: CUresult, what: &str) -> Result<()> {
    if rc == CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{what} failed: {rc:?} ({})", rc as i64))
    }
}

/// Records a scenario's driver calls as steps of its run, from several threads. Each step is
/// sent to the parent as soon as it completes (isolated child), so a crash keeps every step
/// before it.
pub struct Steps<'a> {
    pub ctx: &'a RunCtx,
}

impl<'a> Steps<'a> {
    pub fn new(ctx: &'a RunCtx) -> Self {
        Steps { ctx }
    }

    /// Makes a driver call as a step; `expected` lists every answer that counts as correct.
    pub fn call(
        &self,
        name: &str,
        call: &str,
        expected: &[CUresult],
        f: impl FnOnce() -> CUresult,
    ) -> CUresult {
        self.call_noted(name, call, expected, None, f)
    }

    /// Like [`Steps::call`], with a note (shown as the hint when the answer is unexpected).
    pub fn call_noted(
        &self,
        name: &str,
        call: &str,
        expected: &[CUresult],
        note: Option<&str>,
        f: impl FnOnce() -> CUresult,
    ) -> CUresult {
        let at_ms = self.ctx.now_ms();
        self.ctx.announce(&Event::Call {
            name: name.to_string(),
            call: call.to_string(),
            expected: codes(expected),
            at_ms,
            thread: thread_id(),
        });
        let t0 = Instant::now();
        let rc = f();
        let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
        self.made(
            name,
            call,
            expected,
            rc,
            at_ms,
            elapsed_ms,
            note.map(str::to_string),
        );
        rc
    }

    /// Records a call made outside [`Steps::call`] (a tight loop that only reports the calls
    /// that matter): `at_ms` is when it was made, `elapsed_ms` how long it took.
    #[allow(clippy::too_many_arguments)]
    pub fn made(
        &self,
        name: &str,
        call: &str,
        expected: &[CUresult],
        rc: CUresult,
        at_ms: f64,
        elapsed_ms: f64,
        note: Option<String>,
    ) {
        let expected = codes(expected);
        let observed = code(rc);
        let ok = expected.contains(&observed);
        self.ctx.record(Step {
            name: name.to_string(),
            call: call.to_string(),
            expected,
            observed,
            at_ms,
            elapsed_ms,
            thread: thread_id(),
            ok,
            note,
        });
    }
}

/// The CUDA device whose PCI bus id matches NVML's (CUDA orders devices differently).
pub fn device_for_bus_id(bus_id: &str) -> Result<sys::CUdevice> {
    loader::load_cuda()?;
    // CUDA accepts "0000:18:00.0"; NVML writes an 8-digit domain "00000000:18:00.0".
    let short = if bus_id.len() > 12 {
        &bus_id[bus_id.len() - 12..]
    } else {
        bus_id
    };
    let c = std::ffi::CString::new(short).expect("bus id has no NUL");
    let mut dev = 0;
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { sys::cuDeviceGetByPCIBusId(&mut dev, c.as_ptr()) };
    if rc != CUresult::CUDA_SUCCESS {
        return Err(unavailable(format!(
            "GPU {bus_id} is visible to NVML but not to CUDA ({rc:?}): check CUDA_VISIBLE_DEVICES"
        )));
    }
    Ok(dev)
}

/// A device attribute, where the driver answers one above 0.
pub fn attribute(dev: sys::CUdevice, a: sys::CUdevice_attribute) -> Option<u32> {
    let mut v = 0;
    // SAFETY: `v` is a live i32 out-pointer; a device the driver does not know is answered
    // with an error code.
    let rc = unsafe { sys::cuDeviceGetAttribute(&mut v, a, dev) };
    (rc == CUresult::CUDA_SUCCESS && v > 0).then_some(v as u32)
}

/// (free, total) bytes of device memory as the current context sees it.
pub fn mem_get_info() -> Result<(u64, u64)> {
    let (mut free, mut total) = (0usize, 0usize);
    check(
        // SAFETY: `free` and `total` are live usize (size_t) out-pointers; without a current
        // context the driver answers an error code and writes nothing.
        unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) },
        "cuMemGetInfo",
    )?;
    Ok((free as u64, total as u64))
}

/// Context current on this thread (null when none).
pub fn current_context() -> sys::CUcontext {
    let mut c = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { sys::cuCtxGetCurrent(&mut c) };
    c
}
