//! One device's primary context and the handles the probe creates in it: kernels, streams,
//! events, device and pinned host buffers, the spin flag. `release` frees them all.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{Ordering, fence};

use anyhow::Result;

use super::{OK, hot, step};
use crate::probe::cuda::{self, CUresult, Steps, sys};
use crate::probe::kernels::{self, Module};

/// One device's context and the handles this probe created in it.
pub(super) struct Gpu {
    pub(super) index: u32,
    pub(super) dev: sys::CUdevice,
    /// The retained primary context; null when not retained (before `open`, after `release`).
    pub(super) ctx: sys::CUcontext,
    pub(super) module: Option<Module>,
    pub(super) spin: sys::CUfunction,
    pub(super) copy: sys::CUfunction,
    pub(super) streams: Vec<sys::CUstream>,
    pub(super) events: Vec<sys::CUevent>,
    pub(super) dev_bufs: Vec<sys::CUdeviceptr>,
    pub(super) host_bufs: Vec<*mut c_void>,
    pub(super) flag_host: *mut u32,
    pub(super) flag_dev: sys::CUdeviceptr,
    pub(super) sm_count: u32,
}

impl Gpu {
    pub(super) fn new(index: u32, dev: sys::CUdevice) -> Gpu {
        Gpu {
            index,
            dev,
            ctx: ptr::null_mut(),
            module: None,
            spin: ptr::null_mut(),
            copy: ptr::null_mut(),
            streams: vec![],
            events: vec![],
            dev_bufs: vec![],
            host_bufs: vec![],
            flag_host: ptr::null_mut(),
            flag_dev: 0,
            sm_count: 0,
        }
    }

    pub(super) fn tag(&self, what: &str) -> String {
        format!("GPU{}: {what}", self.index)
    }

    /// Retains the primary context and creates what every path needs: module, two
    /// non-blocking streams, three events, the spin flag in mapped pinned memory.
    pub(super) fn open(&mut self, rec: &Steps) -> Result<()> {
        let dev = self.dev;
        let mut ctx = ptr::null_mut();
        step(
            rec,
            &self.tag("retain primary context"),
            "cuDevicePrimaryCtxRetain",
            // SAFETY: valid out-pointer and device ordinal.
            || unsafe { sys::cuDevicePrimaryCtxRetain(&mut ctx, dev) },
        )?;
        self.ctx = ctx;
        self.make_current(rec)?;
        let mut module = None;
        step(rec, &self.tag("load kernels"), "cuModuleLoadData", || {
            let (rc, m) = Module::try_load();
            module = m;
            rc
        })?;
        let module = self.module.insert(module.expect("loaded"));
        self.spin = module.function(kernels::name::SPIN_WAIT)?;
        self.copy = module.function(kernels::name::COPY_V4)?;
        self.sm_count = cuda::attribute(
            dev,
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )
        .unwrap_or(1)
        .max(1);
        for i in 0..2 {
            let mut s = ptr::null_mut();
            step(
                rec,
                &self.tag(&format!("create stream {i}")),
                "cuStreamCreate",
                // SAFETY: valid out-pointer; context current.
                || unsafe {
                    sys::cuStreamCreate(&mut s, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
                },
            )?;
            self.streams.push(s);
        }
        for i in 0..3 {
            let mut e = ptr::null_mut();
            step(
                rec,
                &self.tag(&format!("create event {i}")),
                "cuEventCreate",
                // SAFETY: valid out-pointer; flags 0 = timing enabled.
                || unsafe { sys::cuEventCreate(&mut e, 0) },
            )?;
            self.events.push(e);
        }
        let flag = self.alloc_host(
            rec,
            4096,
            sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE,
            "spin flag",
        )?;
        self.flag_host = flag as *mut u32;
        // SAFETY: 4096 bytes of host memory just allocated.
        unsafe { ptr::write_volatile(self.flag_host, 1) };
        let mut dptr = 0;
        step(
            rec,
            &self.tag("device address of the spin flag"),
            "cuMemHostGetDevicePointer_v2",
            // SAFETY: pointer returned by cuMemHostAlloc with DEVICEMAP.
            || unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dptr, flag, 0) },
        )?;
        self.flag_dev = dptr;
        // One launch with the flag already set: loads the kernel (lazy loading) outside any
        // timed sample, and proves the spin kernel sees host writes (it returns at once).
        let s = self.streams[0];
        step(
            rec,
            &self.tag("spin kernel warm-up"),
            "cuLaunchKernel",
            || self.launch_spin(s, 1_000_000_000),
        )?;
        step(
            rec,
            &self.tag("spin kernel warm-up done"),
            "cuStreamSynchronize",
            // SAFETY: a stream of this context.
            || unsafe { sys::cuStreamSynchronize(s) },
        )?;
        Ok(())
    }

    /// Launches spin_wait on `stream`: it runs until the flag is set, or `cycles` pass.
    pub(super) fn launch_spin(&self, stream: sys::CUstream, cycles: u64) -> CUresult {
        let (mut flag, mut max) = (self.flag_dev, cycles);
        let mut args = [kernels::arg(&mut flag), kernels::arg(&mut max)];
        // SAFETY: spin_wait(u32* flag, u64 max_cycles) with the device address of this Gpu's
        // mapped flag; `self.spin` and `stream` are live handles of this context (`open`).
        unsafe { kernels::launch(self.spin, 1, 1, stream, &mut args) }
    }

    pub(super) fn make_current(&self, rec: &Steps) -> Result<()> {
        let ctx = self.ctx;
        // Not a step: called often in the peer phase; a failure is recorded by `hot`.
        // SAFETY: a context this probe retained.
        hot(
            rec,
            &self.tag("make context current"),
            "cuCtxSetCurrent",
            unsafe { sys::cuCtxSetCurrent(ctx) },
        )
    }

    pub(super) fn alloc_dev(
        &mut self,
        rec: &Steps,
        bytes: usize,
        what: &str,
    ) -> Result<sys::CUdeviceptr> {
        let mut p = 0;
        step(
            rec,
            &self.tag(&format!("allocate {what} ({} MiB)", bytes >> 20)),
            "cuMemAlloc_v2",
            // SAFETY: valid out-pointer; context current.
            || unsafe { sys::cuMemAlloc_v2(&mut p, bytes) },
        )?;
        self.dev_bufs.push(p);
        Ok(p)
    }

    pub(super) fn alloc_host(
        &mut self,
        rec: &Steps,
        bytes: usize,
        flags: u32,
        what: &str,
    ) -> Result<*mut c_void> {
        let mut p = ptr::null_mut();
        step(
            rec,
            &self.tag(&format!("allocate pinned {what} ({} MiB)", bytes >> 20)),
            "cuMemHostAlloc",
            // SAFETY: valid out-pointer; context current.
            || unsafe { sys::cuMemHostAlloc(&mut p, bytes, flags) },
        )?;
        self.host_bufs.push(p);
        Ok(p)
    }

    pub(super) fn set_flag(&self, v: u32) {
        if !self.flag_host.is_null() {
            // SAFETY: the mapped pinned flag this Gpu allocated; the kernel only reads it.
            unsafe { ptr::write_volatile(self.flag_host, v) };
            fence(Ordering::SeqCst);
        }
    }
}

impl Gpu {
    /// Frees everything, in reverse order, and releases the primary context. Returns the free
    /// device memory measured after freeing (before the context reference is dropped).
    pub(super) fn release(&mut self, rec: &Steps) -> Option<u64> {
        if self.ctx.is_null() {
            return None;
        }
        self.set_flag(1);
        let ctx = self.ctx;
        // SAFETY: the context this probe retained.
        rec.call(
            &self.tag("make context current for cleanup"),
            "cuCtxSetCurrent",
            &[OK],
            || unsafe { sys::cuCtxSetCurrent(ctx) },
        );
        // SAFETY: plain synchronisation of the current context.
        rec.call(
            &self.tag("wait for outstanding work"),
            "cuCtxSynchronize",
            &[OK],
            || unsafe { sys::cuCtxSynchronize() },
        );
        // The four lists hold only handles a successful create/alloc call of this Gpu
        // returned; free_each drains them, so each is freed once, after the synchronize above.
        free_each(
            rec,
            &self.tag("destroy event"),
            "cuEventDestroy_v2",
            &mut self.events,
            // SAFETY: `e` is an event `open` created in this context, no longer recorded on.
            |e| unsafe { sys::cuEventDestroy_v2(e) },
        );
        free_each(
            rec,
            &self.tag("destroy stream"),
            "cuStreamDestroy_v2",
            &mut self.streams,
            // SAFETY: `s` is a stream `open` created in this context, idle after the synchronize.
            |s| unsafe { sys::cuStreamDestroy_v2(s) },
        );
        free_each(
            rec,
            &self.tag("free device buffer"),
            "cuMemFree_v2",
            &mut self.dev_bufs,
            // SAFETY: `p` came from alloc_dev in this context; no copy uses it any more.
            |p| unsafe { sys::cuMemFree_v2(p) },
        );
        self.flag_host = ptr::null_mut();
        free_each(
            rec,
            &self.tag("free pinned host buffer"),
            "cuMemFreeHost",
            &mut self.host_bufs,
            // SAFETY: `p` came from alloc_host; no copy or spin kernel uses it any more and
            // `flag_host` (one of them) was cleared above, so set_flag no longer writes it.
            |p| unsafe { sys::cuMemFreeHost(p) },
        );
        if let Some(m) = self.module.take() {
            rec.call(&self.tag("unload kernels"), "cuModuleUnload", &[OK], || {
                m.unload()
            });
        }
        let free_after = cuda::mem_get_info().ok().map(|(f, _)| f);
        // SAFETY: unbinding the context from this thread.
        rec.call(
            &self.tag("unbind context"),
            "cuCtxSetCurrent",
            &[OK],
            || unsafe { sys::cuCtxSetCurrent(ptr::null_mut()) },
        );
        let dev = self.dev;
        // SAFETY: releases the reference this probe retained.
        rec.call(
            &self.tag("release primary context"),
            "cuDevicePrimaryCtxRelease_v2",
            &[OK],
            || unsafe { sys::cuDevicePrimaryCtxRelease_v2(dev) },
        );
        self.ctx = ptr::null_mut();
        free_after
    }
}

/// Frees every handle of `items`, newest first, each as a step; empties `items`.
fn free_each<T>(
    rec: &Steps,
    name: &str,
    call: &str,
    items: &mut Vec<T>,
    free: impl Fn(T) -> CUresult,
) {
    for h in items.drain(..).rev() {
        rec.call(name, call, &[OK], || free(h));
    }
}
