//! Copy-bandwidth measurement with NVIDIA's method (nvbandwidth, cuda-samples): a spin kernel
//! holds the stream while a batch of copies is enqueued, CUDA events bracket the batch, then
//! the host releases the spin flag; warm-up copies first, several samples. Returns raw samples
//! (bytes, seconds per sample, verified); rates and verdicts are for `analyze::bandwidth`.
//!
//! Set-up and tear-down calls are recorded as steps; the copies themselves are not (hundreds of
//! them), except one that fails, which is recorded as a failed step and ends that phase.
//! Everything allocated is freed (device and host memory, streams, events, module, the primary
//! context reference), also after an error or Ctrl-C.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use indicatif::ProgressBar;

use crate::error::{self, exit};
use crate::facts::bandwidth::{DeviceRun, HostPlacement, PathSamples, PeerPair, PeerRun, path};
use crate::probe::cuda::{self, CUresult, Recorder, sys};
use crate::probe::kernels::{self, Module};

const OK: CUresult = CUresult::CUDA_SUCCESS;

/// How much to copy and how often.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Buffer size in bytes (a multiple of 16).
    pub size: usize,
    /// Copies per sample (pinned, device-local and peer paths).
    pub copies: u32,
    pub samples: u32,
    /// Untimed copies before the first sample.
    pub warmup: u32,
    /// Measure pageable host memory too.
    pub pageable: bool,
    /// Copies per sample for the slow paths (pageable, peer staged through host).
    pub slow_copies: u32,
    /// Measure peer paths when two or more devices are given.
    pub p2p: bool,
    /// Upper bound of the spin kernel, in GPU clock cycles (it normally ends on the flag).
    pub spin_cycles: u64,
}

impl Plan {
    pub const LATENCY_BYTES: usize = 4;
    pub const LATENCY_COPIES: u32 = 100;
}

/// One GPU to measure.
#[derive(Debug, Clone)]
pub struct Target {
    /// NVML index (what the report names devices by).
    pub index: u32,
    pub cuda: sys::CUdevice,
    /// CPUs close to the GPU (cpulist) and its NUMA node, from the topology facts.
    pub cpus: Option<String>,
    pub numa_node: Option<u32>,
}

/// Callbacks into the caller: progress, and a read of the PCIe link while copies run.
pub struct Hooks<'a> {
    pub progress: &'a ProgressBar,
    /// Returns (generation, width) of the device's PCIe link now; called while H2D copies run.
    pub link_now: &'a (dyn Fn(u32) -> (Option<u32>, Option<u32>) + Sync),
}

/// Marker error: Ctrl-C was pressed.
#[derive(Debug)]
struct Interrupted;
impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}
impl std::error::Error for Interrupted {}

/// Free device memory a GPU needs: two buffers of `plan.size` and 64 MiB of headroom.
fn device_need(plan: &Plan) -> u64 {
    2 * plan.size as u64 + (64 << 20)
}

/// Progress units of a device run with this plan.
pub fn device_units(plan: &Plan) -> u64 {
    if plan.pageable { 7 } else { 5 }
}

/// Progress units of the peer phase for `n` devices.
pub fn peer_units(n: usize) -> u64 {
    let ordered = (n * n.saturating_sub(1)) as u64;
    // staged + peer + latency per ordered pair, bidirectional per unordered pair.
    3 * ordered + ordered / 2
}

/// A hot call (a copy, an event record): not a step unless it fails.
fn hot(rec: &mut Recorder, name: &str, call: &str, rc: CUresult) -> Result<()> {
    if rc == OK {
        return Ok(());
    }
    let note = "a copy-path call failed; the rest of this phase was skipped";
    rec.call_noted(name, call, &[OK], Some(note.into()), || rc);
    Err(anyhow!("{name}: {call} answered {rc:?}"))
}

/// Ends the current phase when Ctrl-C was pressed.
fn check_interrupt(rec: &Recorder) -> Result<()> {
    if rec.ctx.interrupted() {
        Err(anyhow::Error::new(Interrupted))
    } else {
        Ok(())
    }
}

/// Zeroes a destination buffer of the current context, then waits: the memset runs on the
/// legacy stream, which the non-blocking streams of the copies would not wait for.
fn poison(rec: &mut Recorder, p: sys::CUdeviceptr, bytes: usize) -> Result<()> {
    // SAFETY: `bytes` of device memory of the current context.
    hot(rec, "poison destination", "cuMemsetD8_v2", unsafe {
        sys::cuMemsetD8_v2(p, 0, bytes)
    })?;
    // SAFETY: plain synchronisation of the current context.
    hot(rec, "poison destination", "cuCtxSynchronize", unsafe {
        sys::cuCtxSynchronize()
    })
}

/// A recorded set-up call that must succeed for the run to go on.
fn step(rec: &mut Recorder, name: &str, call: &str, f: impl FnOnce() -> CUresult) -> Result<()> {
    let rc = rec.call(name, call, &[OK], f);
    if rc == OK {
        Ok(())
    } else {
        Err(anyhow!("{name}: {call} answered {rc:?}"))
    }
}

/// One device's context and the handles this probe created in it.
struct Gpu {
    index: u32,
    dev: sys::CUdevice,
    /// The retained primary context; null when not retained (before `open`, after `release`).
    ctx: sys::CUcontext,
    module: Option<Module>,
    spin: sys::CUfunction,
    copy: sys::CUfunction,
    streams: Vec<sys::CUstream>,
    events: Vec<sys::CUevent>,
    dev_bufs: Vec<sys::CUdeviceptr>,
    host_bufs: Vec<*mut c_void>,
    flag_host: *mut u32,
    flag_dev: sys::CUdeviceptr,
    sm_count: u32,
}

impl Gpu {
    fn new(index: u32, dev: sys::CUdevice) -> Gpu {
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

    fn tag(&self, what: &str) -> String {
        format!("GPU{}: {what}", self.index)
    }

    /// Retains the primary context and creates what every path needs: module, two
    /// non-blocking streams, three events, the spin flag in mapped pinned memory.
    fn open(&mut self, rec: &mut Recorder) -> Result<()> {
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
        self.sm_count = attribute(
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
        let (mut f, mut max) = (self.flag_dev, 1_000_000_000u64);
        let mut args = [
            &mut f as *mut _ as *mut c_void,
            &mut max as *mut _ as *mut c_void,
        ];
        let (spin, s) = (self.spin, self.streams[0]);
        step(
            rec,
            &self.tag("spin kernel warm-up"),
            "cuLaunchKernel",
            // SAFETY: spin_wait(u32* flag, u64 max_cycles); live function and stream.
            || unsafe { kernels::launch(spin, 1, 1, s, &mut args) },
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

    fn make_current(&self, rec: &mut Recorder) -> Result<()> {
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

    fn alloc_dev(
        &mut self,
        rec: &mut Recorder,
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

    fn alloc_host(
        &mut self,
        rec: &mut Recorder,
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

    fn set_flag(&self, v: u32) {
        if !self.flag_host.is_null() {
            // SAFETY: the mapped pinned flag this Gpu allocated; the kernel only reads it.
            unsafe { ptr::write_volatile(self.flag_host, v) };
            fence(Ordering::SeqCst);
        }
    }

    /// Launches the spin kernel on `stream`: it holds the stream until the flag is set.
    fn spin(&self, rec: &mut Recorder, stream: sys::CUstream, cycles: u64) -> Result<()> {
        self.set_flag(0);
        let mut flag = self.flag_dev;
        let mut max = cycles;
        let mut args = [
            &mut flag as *mut _ as *mut c_void,
            &mut max as *mut _ as *mut c_void,
        ];
        // SAFETY: spin_wait(u32* flag, u64 max_cycles); live function and stream.
        let rc = unsafe { kernels::launch(self.spin, 1, 1, stream, &mut args) };
        if rc != OK {
            self.set_flag(1);
        }
        hot(rec, &self.tag("spin kernel"), "cuLaunchKernel", rc)
    }

    fn elapsed(
        &self,
        rec: &mut Recorder,
        what: &str,
        start: sys::CUevent,
        end: sys::CUevent,
    ) -> Result<f64> {
        // SAFETY: events of this context.
        hot(rec, what, "cuEventSynchronize", unsafe {
            sys::cuEventSynchronize(end)
        })?;
        let mut ms = 0f32;
        // SAFETY: both events recorded and complete.
        hot(rec, what, "cuEventElapsedTime", unsafe {
            sys::cuEventElapsedTime(&mut ms, start, end)
        })?;
        Ok(ms as f64 / 1e3)
    }

    /// One sample: spin, start event, `copies` × op, end event, release, wait.
    /// Returns (seconds, held): held is false when enqueueing took so long that the spin
    /// kernel may have timed out first (launch overhead then counts in the sample).
    #[allow(clippy::too_many_arguments)]
    fn held_sample(
        &self,
        rec: &mut Recorder,
        what: &str,
        call: &str,
        copies: u32,
        cycles: u64,
        op: &mut dyn FnMut(sys::CUstream) -> CUresult,
        during: &mut dyn FnMut(),
    ) -> Result<(f64, bool)> {
        let (s, e0, e1) = (self.streams[0], self.events[0], self.events[1]);
        let t0 = Instant::now();
        self.spin(rec, s, cycles)?;
        let enqueue = (|| -> Result<()> {
            // SAFETY: event and stream of this context.
            hot(rec, what, "cuEventRecord", unsafe {
                sys::cuEventRecord(e0, s)
            })?;
            for _ in 0..copies {
                hot(rec, what, call, op(s))?;
            }
            // SAFETY: as above.
            hot(rec, what, "cuEventRecord", unsafe {
                sys::cuEventRecord(e1, s)
            })
        })();
        let held = t0.elapsed() < Duration::from_millis(100);
        self.set_flag(1);
        enqueue?;
        during();
        Ok((self.elapsed(rec, what, e0, e1)?, held))
    }

    /// Untimed copies, then wait for them.
    fn warm(
        &self,
        rec: &mut Recorder,
        what: &str,
        call: &str,
        n: u32,
        op: &mut dyn FnMut(sys::CUstream) -> CUresult,
    ) -> Result<()> {
        let s = self.streams[0];
        for _ in 0..n {
            hot(rec, what, call, op(s))?;
        }
        // SAFETY: a stream of this context.
        hot(rec, what, "cuStreamSynchronize", unsafe {
            sys::cuStreamSynchronize(s)
        })
    }

    /// Frees everything, in reverse order, and releases the primary context. Returns the free
    /// device memory measured after freeing (before the context reference is dropped).
    fn release(&mut self, rec: &mut Recorder) -> Option<u64> {
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
        // SAFETY (all four): handles this probe created in this context, each freed once.
        free_each(
            rec,
            &self.tag("destroy event"),
            "cuEventDestroy_v2",
            &mut self.events,
            |e| unsafe { sys::cuEventDestroy_v2(e) },
        );
        free_each(
            rec,
            &self.tag("destroy stream"),
            "cuStreamDestroy_v2",
            &mut self.streams,
            |s| unsafe { sys::cuStreamDestroy_v2(s) },
        );
        free_each(
            rec,
            &self.tag("free device buffer"),
            "cuMemFree_v2",
            &mut self.dev_bufs,
            |p| unsafe { sys::cuMemFree_v2(p) },
        );
        self.flag_host = ptr::null_mut();
        free_each(
            rec,
            &self.tag("free pinned host buffer"),
            "cuMemFreeHost",
            &mut self.host_bufs,
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
    rec: &mut Recorder,
    name: &str,
    call: &str,
    items: &mut Vec<T>,
    free: impl Fn(T) -> CUresult,
) {
    for h in items.drain(..).rev() {
        rec.call(name, call, &[OK], || free(h));
    }
}

fn attribute(dev: sys::CUdevice, a: sys::CUdevice_attribute) -> Option<u32> {
    let mut v = 0;
    // SAFETY: valid out-pointer and device.
    let rc = unsafe { sys::cuDeviceGetAttribute(&mut v, a, dev) };
    (rc == OK && v > 0).then_some(v as u32)
}

// ---- host buffers: pattern fill and check ----------------------------------------------------

/// The value of word `i` of a buffer filled with `seed` (never 0, so a zeroed buffer fails).
#[inline]
pub fn pattern(seed: u64, i: usize) -> u64 {
    (i as u64)
        .wrapping_add(seed << 40)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1
}

/// Runs `f` over `words` u64 at `ptr`, split over a few threads (which inherit the calling
/// thread's CPU affinity and memory policy, so first touch stays on the chosen node).
fn par(ptr: *mut u64, words: usize, f: &(dyn Fn(&mut [u64], usize) -> bool + Sync)) -> bool {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = words.div_ceil(threads).max(1);
    let base = ptr as usize;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let start = (t * chunk).min(words);
                    let end = (start + chunk).min(words);
                    if start == end {
                        return true;
                    }
                    // SAFETY: disjoint ranges of a live buffer of `words` u64.
                    let part = unsafe {
                        std::slice::from_raw_parts_mut((base as *mut u64).add(start), end - start)
                    };
                    f(part, start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect::<Vec<bool>>() // join every thread before judging
            .into_iter()
            .all(|ok| ok)
    })
}

fn fill(ptr: *mut u64, words: usize, seed: u64) {
    par(ptr, words, &|part, off| {
        for (i, w) in part.iter_mut().enumerate() {
            *w = pattern(seed, off + i);
        }
        true
    });
}

fn zero(ptr: *mut u64, words: usize) {
    par(ptr, words, &|part, _| {
        part.fill(0);
        true
    });
}

/// Every word (sparse = false) or one word per 4 KiB plus the first and last 32 KiB.
fn check(ptr: *mut u64, words: usize, seed: u64, sparse: bool) -> bool {
    if sparse {
        // SAFETY: a live buffer of `words` u64, read only.
        let s = unsafe { std::slice::from_raw_parts(ptr as *const u64, words) };
        let edge = 4096.min(words);
        return (0..edge)
            .chain(words - edge..words)
            .chain((0..words).step_by(512))
            .all(|i| s[i] == pattern(seed, i));
    }
    par(ptr, words, &|part, off| {
        part.iter()
            .enumerate()
            .all(|(i, w)| *w == pattern(seed, off + i))
    })
}

// ---- NUMA placement ------------------------------------------------------------------------

/// Parses a Linux cpulist ("0-15,32-47").
pub fn parse_cpulist(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(c) = part.parse() {
                    out.push(c);
                }
            }
        }
    }
    out
}

const MPOL_PREFERRED: i32 = 1;
const MPOL_F_NODE: u64 = 1;
const MPOL_F_ADDR: u64 = 2;

/// Pins the calling thread to the GPU's CPUs and prefers its NUMA node for new pages, so the
/// host buffers this thread (and its helpers) touch first land next to the GPU.
pub fn place_thread(cpus: Option<&str>, node: Option<u32>, host_nodes: u32) -> HostPlacement {
    let mut p = HostPlacement {
        numa_node: node,
        cpus: cpus.map(str::to_string),
        ..Default::default()
    };
    if let Some(list) = cpus {
        let want = parse_cpulist(list);
        // SAFETY: cpu_set_t is plain data; sched_{get,set}affinity on the calling thread.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut allowed) == 0 {
                let mut n = 0;
                for c in want.into_iter().filter(|c| *c < libc::CPU_SETSIZE as usize) {
                    if libc::CPU_ISSET(c, &allowed) {
                        libc::CPU_SET(c, &mut set);
                        n += 1;
                    }
                }
                if n == 0 {
                    p.notes
                        .push("none of the GPU's CPUs is allowed to this process".into());
                } else if libc::sched_setaffinity(0, size, &set) == 0 {
                    p.affinity_set = true;
                } else {
                    p.notes.push(format!(
                        "sched_setaffinity: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
    }
    if let Some(n) = node.filter(|_| host_nodes > 1) {
        let mut mask = [0u64; 16];
        if (n as usize) < 16 * 64 {
            mask[n as usize / 64] |= 1 << (n % 64);
            // SAFETY: set_mempolicy(mode, nodemask, maxnode) on the calling thread; the mask
            // holds 1024 bits and the kernel reads maxnode - 1 of them.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    MPOL_PREFERRED,
                    mask.as_ptr(),
                    (16 * 64 + 1) as libc::c_ulong,
                )
            };
            if rc == 0 {
                p.mempolicy_set = true;
            } else {
                p.notes.push(format!(
                    "set_mempolicy: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    p
}

/// NUMA node of the page at `addr` (which must have been touched).
fn node_of(addr: *const c_void) -> Option<u32> {
    let mut node: i32 = -1;
    // SAFETY: get_mempolicy(int *mode, nodemask = NULL, maxnode = 0, addr, flags).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut node as *mut i32,
            ptr::null_mut::<u64>(),
            0u64,
            addr,
            MPOL_F_NODE | MPOL_F_ADDR,
        )
    };
    (rc == 0 && node >= 0).then_some(node as u32)
}

// ---- one device ----------------------------------------------------------------------------

/// Measures every host↔device and device-local path of one GPU on the calling thread.
/// A CUDA failure ends the run early (recorded as a failed step and in `error`); a `--size`
/// that does not fit the free memory is an input error. Everything is freed either way.
pub fn measure_device(
    rec: &mut Recorder,
    t: &Target,
    plan: &Plan,
    host_nodes: u32,
    hooks: &Hooks,
) -> Result<DeviceRun> {
    let mut run = DeviceRun {
        index: t.index,
        cuda_ordinal: t.cuda,
        cuda_memory_bus_width_bits: attribute(
            t.cuda,
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
        ),
        cuda_memory_clock_khz: attribute(
            t.cuda,
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
        ),
        placement: place_thread(t.cpus.as_deref(), t.numa_node, host_nodes),
        ..Default::default()
    };
    let mut gpu = Gpu::new(t.index, t.cuda);
    let mut pageable: (Vec<u64>, Vec<u64>) = (vec![], vec![]);
    let r = device_paths(rec, &mut gpu, plan, hooks, &mut run, &mut pageable);
    run.memory_free_after = gpu.release(rec);
    drop(pageable);
    match r {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => run.interrupted = true,
        Err(e) if error::exit_code_of(&e) == exit::USAGE => return Err(e),
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    Ok(run)
}

fn device_paths(
    rec: &mut Recorder,
    g: &mut Gpu,
    plan: &Plan,
    hooks: &Hooks,
    run: &mut DeviceRun,
    pageable: &mut (Vec<u64>, Vec<u64>),
) -> Result<()> {
    g.open(rec)?;
    run.sm_count = Some(g.sm_count);
    let (free, _) = cuda::mem_get_info()?;
    run.memory_free_before = Some(free);
    let n = plan.size;
    let need = device_need(plan);
    if free < need {
        return Err(error::input(format!(
            "--size {} MiB needs {} MiB of device memory on GPU{}, {} MiB are free: choose a smaller --size",
            n >> 20,
            need >> 20,
            g.index,
            free >> 20
        )));
    }
    let words = n / 8;
    let da = g.alloc_dev(rec, n, "buffer A")?;
    let db = g.alloc_dev(rec, n, "buffer B")?;
    let ha = g.alloc_host(rec, n, 0, "buffer A")?;
    let hb = g.alloc_host(rec, n, 0, "buffer B")?;
    let (ha64, hb64) = (ha as *mut u64, hb as *mut u64);
    // Seeds: 1 = host A, 2 = pageable A. Destinations start different from their source.
    fill(ha64, words, 1);
    zero(hb64, words);
    run.placement.pinned_buffer_node = node_of(ha);
    if plan.pageable {
        pageable.0 = vec![0u64; words];
        pageable.1 = vec![0u64; words];
        fill(pageable.0.as_mut_ptr(), words, 2);
        zero(pageable.1.as_mut_ptr(), words);
        run.placement.pageable_buffer_node = node_of(pageable.0.as_ptr() as *const c_void);
    }
    let (pa, pb) = (pageable.0.as_ptr(), pageable.1.as_mut_ptr());

    let idx = g.index;
    let size = n;
    let step_done = |p: &str| {
        hooks.progress.inc(1);
        hooks
            .progress
            .set_message(format!("bandwidth GPU{idx} {p}"));
    };
    let read_back = |rec: &mut Recorder, host: *mut u64, p: sys::CUdeviceptr| -> Result<()> {
        // SAFETY: `host` holds `size` bytes; synchronous copy.
        hot(rec, "verify: read back", "cuMemcpyDtoH_v2", unsafe {
            sys::cuMemcpyDtoH_v2(host as *mut c_void, p, size)
        })
    };

    // H2D pinned: A(host, seed 1) → A(device).
    check_interrupt(rec)?;
    let mut op = |s| unsafe { sys::cuMemcpyHtoDAsync_v2(da, ha, size, s) };
    let link_now = hooks.link_now;
    let mut first = true;
    let mut under = (None, None);
    let mut s = held_path(
        rec,
        g,
        plan,
        path::H2D_PINNED,
        "cuMemcpyHtoDAsync_v2",
        &mut op,
        &mut || {
            if first {
                under = link_now(idx);
                first = false;
            }
        },
    )?;
    (run.pcie_gen_under_load, run.pcie_width_under_load) = under;
    read_back(rec, hb64, da)?;
    s.verified = Some(check(hb64, words, 1, false));
    run.samples.push(s);
    step_done(path::H2D_PINNED);

    // D2H pinned: A(device, seed 1) → B(host, zeroed).
    check_interrupt(rec)?;
    zero(hb64, words);
    let mut op = |s| unsafe { sys::cuMemcpyDtoHAsync_v2(hb, da, size, s) };
    let mut s = held_path(
        rec,
        g,
        plan,
        path::D2H_PINNED,
        "cuMemcpyDtoHAsync_v2",
        &mut op,
        &mut || {},
    )?;
    s.verified = Some(check(hb64, words, 1, false));
    run.samples.push(s);
    step_done(path::D2H_PINNED);

    // Pageable: synchronous copies timed with the host clock.
    let mut a_seed = 1;
    if plan.pageable {
        check_interrupt(rec)?;
        poison(rec, da, size)?;
        let mut op = || unsafe { sys::cuMemcpyHtoD_v2(da, pa as *const c_void, size) };
        let mut s = wall_path(rec, g, plan, path::H2D_PAGEABLE, "cuMemcpyHtoD_v2", &mut op)?;
        read_back(rec, hb64, da)?;
        s.verified = Some(check(hb64, words, 2, false));
        run.samples.push(s);
        a_seed = 2;
        step_done(path::H2D_PAGEABLE);

        check_interrupt(rec)?;
        let mut op = || unsafe { sys::cuMemcpyDtoH_v2(pb as *mut c_void, da, size) };
        let mut s = wall_path(rec, g, plan, path::D2H_PAGEABLE, "cuMemcpyDtoH_v2", &mut op)?;
        s.verified = Some(check(pb, words, 2, false));
        run.samples.push(s);
        step_done(path::D2H_PAGEABLE);
    }

    // Bidirectional: A(host, seed 1) → B(device) on stream 0, A(device) → B(host) on stream 1.
    check_interrupt(rec)?;
    poison(rec, db, size)?;
    zero(hb64, words);
    let mut samples = Vec::new();
    let mut h2d = |s| unsafe { sys::cuMemcpyHtoDAsync_v2(db, ha, size, s) };
    let mut d2h = |s| unsafe { sys::cuMemcpyDtoHAsync_v2(hb, da, size, s) };
    for _ in 0..plan.warmup {
        hot(
            rec,
            path::BIDIR_PINNED,
            "cuMemcpyHtoDAsync_v2",
            h2d(g.streams[0]),
        )?;
        hot(
            rec,
            path::BIDIR_PINNED,
            "cuMemcpyDtoHAsync_v2",
            d2h(g.streams[1]),
        )?;
    }
    // SAFETY: plain synchronisation of the current context.
    hot(rec, path::BIDIR_PINNED, "cuCtxSynchronize", unsafe {
        sys::cuCtxSynchronize()
    })?;
    let mut held_all = true;
    for _ in 0..plan.samples {
        let (sec, held) = bidir_sample(rec, g, g, path::BIDIR_PINNED, plan, &mut h2d, &mut d2h)?;
        held_all &= held;
        samples.push(sec);
    }
    let mut s = samples_of(
        path::BIDIR_PINNED,
        idx,
        None,
        2 * size as u64 * plan.copies as u64,
        plan.copies,
        samples,
        "cuda_events",
        held_all,
    );
    // Check the D2H half (host B) before host B serves to read back the H2D half (device B).
    let d2h_ok = check(hb64, words, a_seed, false);
    read_back(rec, hb64, db)?;
    s.verified = Some(d2h_ok && check(hb64, words, 1, false));
    run.samples.push(s);
    step_done(path::BIDIR_PINNED);

    // Device-local, copy engine: B(device, seed 1) → A(device).
    check_interrupt(rec)?;
    poison(rec, da, size)?;
    let mut op = |s| unsafe { sys::cuMemcpyDtoDAsync_v2(da, db, size, s) };
    let mut s = held_path(
        rec,
        g,
        plan,
        path::D2D_CE,
        "cuMemcpyDtoDAsync_v2",
        &mut op,
        &mut || {},
    )?;
    read_back(rec, hb64, da)?;
    s.verified = Some(check(hb64, words, 1, false));
    run.samples.push(s);
    step_done(path::D2D_CE);

    // Device-local, SM kernel: A(device, seed 1) → B(device), 16-byte elements, grid-stride.
    check_interrupt(rec)?;
    poison(rec, db, size)?;
    let (func, grid) = (g.copy, g.sm_count * 4);
    let elems = (size / 16) as u64;
    let mut op = |s| {
        let (mut src, mut dst, mut n) = (da, db, elems);
        let mut args = [
            &mut src as *mut _ as *mut c_void,
            &mut dst as *mut _ as *mut c_void,
            &mut n as *mut _ as *mut c_void,
        ];
        // SAFETY: copy_v4(uint4* src, uint4* dst, u64 n) over two live buffers of `size` bytes.
        unsafe { kernels::launch(func, grid, 512, s, &mut args) }
    };
    let mut s = held_path(
        rec,
        g,
        plan,
        path::D2D_SM,
        "cuLaunchKernel",
        &mut op,
        &mut || {},
    )?;
    read_back(rec, hb64, db)?;
    s.verified = Some(check(hb64, words, 1, false));
    s.note = Some(format!("copy_v4 kernel, grid {grid} × 512 threads"));
    run.samples.push(s);
    step_done(path::D2D_SM);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn samples_of(
    p: &str,
    device: u32,
    peer: Option<u32>,
    bytes: u64,
    copies: u32,
    seconds: Vec<f64>,
    timing: &str,
    held: bool,
) -> PathSamples {
    PathSamples {
        path: p.to_string(),
        device,
        peer,
        bytes,
        copies,
        seconds,
        timing: timing.to_string(),
        verified: None,
        note: (!held).then(|| {
            "enqueueing took over 100 ms: the spin kernel may have timed out first, so launch overhead may be included (normal under compute-sanitizer)".to_string()
        }),
    }
}

/// Warm-up, then `samples` held samples of `copies` copies on stream 0 of `g`.
#[allow(clippy::too_many_arguments)]
fn held_path(
    rec: &mut Recorder,
    g: &Gpu,
    plan: &Plan,
    p: &str,
    call: &str,
    op: &mut dyn FnMut(sys::CUstream) -> CUresult,
    during: &mut dyn FnMut(),
) -> Result<PathSamples> {
    held_path_n(
        rec,
        g,
        plan,
        p,
        None,
        call,
        plan.size,
        plan.copies,
        plan.warmup,
        op,
        during,
    )
}

#[allow(clippy::too_many_arguments)]
fn held_path_n(
    rec: &mut Recorder,
    g: &Gpu,
    plan: &Plan,
    p: &str,
    peer: Option<u32>,
    call: &str,
    bytes_per_copy: usize,
    copies: u32,
    warmup: u32,
    op: &mut dyn FnMut(sys::CUstream) -> CUresult,
    during: &mut dyn FnMut(),
) -> Result<PathSamples> {
    let what = g.tag(p);
    g.warm(rec, &what, call, warmup, op)?;
    let mut secs = Vec::new();
    let mut held_all = true;
    for _ in 0..plan.samples {
        let (s, held) = g.held_sample(rec, &what, call, copies, plan.spin_cycles, op, during)?;
        held_all &= held;
        secs.push(s);
    }
    Ok(samples_of(
        p,
        g.index,
        peer,
        bytes_per_copy as u64 * copies as u64,
        copies,
        secs,
        "cuda_events",
        held_all,
    ))
}

/// Synchronous copies timed with the host clock: pageable copies block the host (the driver
/// stages them through its own pinned buffers), so a spin kernel cannot hold them.
fn wall_path(
    rec: &mut Recorder,
    g: &Gpu,
    plan: &Plan,
    p: &str,
    call: &str,
    op: &mut dyn FnMut() -> CUresult,
) -> Result<PathSamples> {
    let what = g.tag(p);
    hot(rec, &what, call, op())?;
    // SAFETY: plain synchronisation of the current context.
    hot(rec, &what, "cuCtxSynchronize", unsafe {
        sys::cuCtxSynchronize()
    })?;
    let mut secs = Vec::new();
    for _ in 0..plan.samples {
        let t0 = Instant::now();
        for _ in 0..plan.slow_copies {
            hot(rec, &what, call, op())?;
        }
        // SAFETY: as above.
        hot(rec, &what, "cuCtxSynchronize", unsafe {
            sys::cuCtxSynchronize()
        })?;
        secs.push(t0.elapsed().as_secs_f64());
    }
    Ok(samples_of(
        p,
        g.index,
        None,
        plan.size as u64 * plan.slow_copies as u64,
        plan.slow_copies,
        secs,
        "wall_clock",
        true,
    ))
}

/// Both directions at once: `a` spins and starts, `b`'s stream 0 (or `a`'s stream 1 when
/// a == b) waits for the start, both enqueue, `a` waits for `b`'s end. One interval on `a`'s
/// events covers both directions (cuda-samples p2pBandwidthLatencyTest's method).
fn bidir_sample(
    rec: &mut Recorder,
    a: &Gpu,
    b: &Gpu,
    what: &str,
    plan: &Plan,
    op_a: &mut dyn FnMut(sys::CUstream) -> CUresult,
    op_b: &mut dyn FnMut(sys::CUstream) -> CUresult,
) -> Result<(f64, bool)> {
    let same = ptr::eq(a, b);
    let sa = a.streams[0];
    let (sb, eb) = if same {
        (a.streams[1], a.events[2])
    } else {
        (b.streams[0], b.events[2])
    };
    let (e0, e1) = (a.events[0], a.events[1]);
    let t0 = Instant::now();
    if !same {
        a.make_current(rec)?;
    }
    a.spin(rec, sa, plan.spin_cycles)?;
    let enqueue = (|| -> Result<()> {
        // SAFETY: events and streams of live contexts; cuStreamWaitEvent accepts an event of
        // another context, cuEventRecord is always given a stream of the event's context.
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(e0, sa)
        })?;
        hot(rec, what, "cuStreamWaitEvent", unsafe {
            sys::cuStreamWaitEvent(sb, e0, 0)
        })?;
        for _ in 0..plan.copies {
            if !same {
                a.make_current(rec)?;
            }
            hot(rec, what, "copy a→b", op_a(sa))?;
            if !same {
                b.make_current(rec)?;
            }
            hot(rec, what, "copy b→a", op_b(sb))?;
        }
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(eb, sb)
        })?;
        if !same {
            a.make_current(rec)?;
        }
        hot(rec, what, "cuStreamWaitEvent", unsafe {
            sys::cuStreamWaitEvent(sa, eb, 0)
        })?;
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(e1, sa)
        })
    })();
    let held = t0.elapsed() < Duration::from_millis(100);
    a.set_flag(1);
    enqueue?;
    Ok((a.elapsed(rec, what, e0, e1)?, held))
}

// ---- peers ---------------------------------------------------------------------------------

/// Measures every ordered pair of `targets`: staged through the host (peer access off), then
/// with peer access on (uni- and bidirectional), and latency of small peer copies.
pub fn measure_peers(
    rec: &mut Recorder,
    targets: &[Target],
    plan: &Plan,
    hooks: &Hooks,
) -> PeerRun {
    let mut run = PeerRun::default();
    let mut gpus: Vec<Gpu> = targets.iter().map(|t| Gpu::new(t.index, t.cuda)).collect();
    let mut bufs: Vec<(sys::CUdeviceptr, sys::CUdeviceptr)> = vec![];
    let mut enabled: Vec<(usize, usize)> = vec![];
    let r = peer_paths(
        rec,
        &mut gpus,
        &mut bufs,
        &mut enabled,
        plan,
        hooks,
        &mut run,
    );
    for &(i, j) in enabled.iter().rev() {
        let peer = gpus[j].ctx;
        if gpus[i].make_current(rec).is_ok() {
            let name = format!(
                "GPU{}: disable peer access to GPU{}",
                gpus[i].index, gpus[j].index
            );
            // SAFETY: a peer context this probe enabled.
            rec.call(&name, "cuCtxDisablePeerAccess", &[OK], || unsafe {
                sys::cuCtxDisablePeerAccess(peer)
            });
        }
    }
    for g in gpus.iter_mut().rev() {
        g.release(rec);
    }
    match r {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => run.interrupted = true,
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    run
}

#[allow(clippy::too_many_arguments)]
fn peer_paths(
    rec: &mut Recorder,
    gpus: &mut [Gpu],
    bufs: &mut Vec<(sys::CUdeviceptr, sys::CUdeviceptr)>,
    enabled: &mut Vec<(usize, usize)>,
    plan: &Plan,
    hooks: &Hooks,
    run: &mut PeerRun,
) -> Result<()> {
    let n = plan.size;
    let words = n / 8;
    for g in gpus.iter_mut() {
        g.open(rec)?;
        let (free, _) = cuda::mem_get_info()?;
        if free < device_need(plan) {
            return Err(anyhow!(
                "GPU{}: {} MiB free, the peer paths need {} MiB",
                g.index,
                free >> 20,
                device_need(plan) >> 20
            ));
        }
        let src = g.alloc_dev(rec, n, "peer source")?;
        let dst = g.alloc_dev(rec, n, "peer destination")?;
        bufs.push((src, dst));
    }
    // One pinned, portable host buffer: uploads each source and reads destinations back.
    gpus[0].make_current(rec)?;
    let host =
        gpus[0].alloc_host(rec, n, sys::CU_MEMHOSTALLOC_PORTABLE, "peer staging")? as *mut u64;
    for (i, g) in gpus.iter().enumerate() {
        fill(host, words, 100 + g.index as u64);
        g.make_current(rec)?;
        // SAFETY: `host` holds n bytes; synchronous copy into this context's buffer.
        hot(
            rec,
            &g.tag("upload peer source"),
            "cuMemcpyHtoD_v2",
            unsafe { sys::cuMemcpyHtoD_v2(bufs[i].0, host as *const c_void, n) },
        )?;
    }
    let count = gpus.len();
    let mut can = vec![vec![false; count]; count];
    for i in 0..count {
        for j in 0..count {
            if i != j {
                let mut v = 0;
                // SAFETY: valid out-pointer and device ordinals.
                let rc = unsafe { sys::cuDeviceCanAccessPeer(&mut v, gpus[i].dev, gpus[j].dev) };
                can[i][j] = rc == OK && v != 0;
            }
        }
    }
    let progress = |what: &str| {
        hooks.progress.inc(1);
        hooks.progress.set_message(format!("bandwidth {what}"));
    };
    // Verifies that GPU j's destination holds GPU i's source (sparse check).
    let verify = |rec: &mut Recorder, gpus: &[Gpu], i: usize, j: usize| -> Result<bool> {
        gpus[j].make_current(rec)?;
        // SAFETY: `host` holds n bytes; synchronous copy.
        hot(
            rec,
            &gpus[j].tag("verify: read back"),
            "cuMemcpyDtoH_v2",
            unsafe { sys::cuMemcpyDtoH_v2(host as *mut c_void, bufs[j].1, n) },
        )?;
        Ok(check(host, words, 100 + gpus[i].index as u64, true))
    };
    let poison_dst = |rec: &mut Recorder, gpus: &[Gpu], j: usize| -> Result<()> {
        gpus[j].make_current(rec)?;
        poison(rec, bufs[j].1, n)
    };
    let pair_name = |p: &str, i: usize, j: usize, gpus: &[Gpu]| {
        format!("GPU{}→GPU{} {p}", gpus[i].index, gpus[j].index)
    };

    // 1. Staged through the host: peer access not enabled yet, the driver bounces the copy.
    for i in 0..count {
        for j in (0..count).filter(|&j| j != i) {
            check_interrupt(rec)?;
            poison_dst(rec, gpus, j)?;
            let g = &gpus[i];
            g.make_current(rec)?;
            let what = pair_name(path::P2P_STAGED, i, j, gpus);
            let (dst, dctx, src, sctx) = (bufs[j].1, gpus[j].ctx, bufs[i].0, g.ctx);
            let mut op = |s| unsafe { sys::cuMemcpyPeerAsync(dst, dctx, src, sctx, n, s) };
            g.warm(rec, &what, "cuMemcpyPeerAsync", 1, &mut op)?;
            let mut secs = vec![];
            for _ in 0..plan.samples {
                let (s, e0, e1) = (g.streams[0], g.events[0], g.events[1]);
                // SAFETY: events and stream of this context.
                hot(rec, &what, "cuEventRecord", unsafe {
                    sys::cuEventRecord(e0, s)
                })?;
                for _ in 0..plan.slow_copies {
                    hot(rec, &what, "cuMemcpyPeerAsync", op(s))?;
                }
                hot(rec, &what, "cuEventRecord", unsafe {
                    sys::cuEventRecord(e1, s)
                })?;
                secs.push(g.elapsed(rec, &what, e0, e1)?);
            }
            let mut s = samples_of(
                path::P2P_STAGED,
                g.index,
                Some(gpus[j].index),
                n as u64 * plan.slow_copies as u64,
                plan.slow_copies,
                secs,
                "cuda_events_unheld",
                true,
            );
            s.verified = Some(verify(rec, gpus, i, j)?);
            run.samples.push(s);
            progress(&what);
        }
    }

    // 2. Enable peer access where both directions can have it.
    let mut peer_on = vec![vec![false; count]; count];
    for i in 0..count {
        for j in (0..count).filter(|&j| j != i) {
            let both = can[i][j] && can[j][i];
            let mut on = false;
            if both {
                gpus[i].make_current(rec)?;
                let peer = gpus[j].ctx;
                let name = format!(
                    "GPU{}: enable peer access to GPU{}",
                    gpus[i].index, gpus[j].index
                );
                let rc = rec.call(
                    &name,
                    "cuCtxEnablePeerAccess",
                    &[OK, CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED],
                    // SAFETY: a live peer context; flags must be 0.
                    || unsafe { sys::cuCtxEnablePeerAccess(peer, 0) },
                );
                if rc == OK {
                    enabled.push((i, j));
                }
                on = rc == OK || rc == CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
            }
            peer_on[i][j] = on;
            run.pairs.push(PeerPair {
                a: gpus[i].index,
                b: gpus[j].index,
                can_access: can[i][j],
                enabled: on,
            });
        }
    }
    let on = |i: usize, j: usize| peer_on[i][j] && peer_on[j][i];

    // 3. Peer copies, one direction at a time.
    for i in 0..count {
        for j in (0..count).filter(|&j| j != i) {
            let what = pair_name(path::P2P, i, j, gpus);
            if !on(i, j) {
                progress(&what);
                continue;
            }
            check_interrupt(rec)?;
            poison_dst(rec, gpus, j)?;
            let g = &gpus[i];
            g.make_current(rec)?;
            let (dst, dctx, src, sctx) = (bufs[j].1, gpus[j].ctx, bufs[i].0, g.ctx);
            let mut op = |s| unsafe { sys::cuMemcpyPeerAsync(dst, dctx, src, sctx, n, s) };
            let mut s = held_path_n(
                rec,
                g,
                plan,
                path::P2P,
                Some(gpus[j].index),
                "cuMemcpyPeerAsync",
                n,
                plan.copies,
                plan.warmup,
                &mut op,
                &mut || {},
            )?;
            s.verified = Some(verify(rec, gpus, i, j)?);
            run.samples.push(s);
            progress(&what);
        }
    }

    // 4. Both directions at once.
    for i in 0..count {
        // Each unordered pair once, lower NVML index first (metric p2p_bidir_<low>_<high>).
        for j in (0..count).filter(|&j| gpus[j].index > gpus[i].index) {
            let what = pair_name(path::P2P_BIDIR, i, j, gpus);
            if !on(i, j) {
                progress(&what);
                continue;
            }
            check_interrupt(rec)?;
            poison_dst(rec, gpus, i)?;
            poison_dst(rec, gpus, j)?;
            let (a, b) = (&gpus[i], &gpus[j]);
            let (dj, cj, si, ci) = (bufs[j].1, b.ctx, bufs[i].0, a.ctx);
            let (di, sj) = (bufs[i].1, bufs[j].0);
            let mut ab = |s| unsafe { sys::cuMemcpyPeerAsync(dj, cj, si, ci, n, s) };
            let mut ba = |s| unsafe { sys::cuMemcpyPeerAsync(di, ci, sj, cj, n, s) };
            for _ in 0..plan.warmup {
                a.make_current(rec)?;
                hot(rec, &what, "cuMemcpyPeerAsync", ab(a.streams[0]))?;
                b.make_current(rec)?;
                hot(rec, &what, "cuMemcpyPeerAsync", ba(b.streams[0]))?;
            }
            for g in [a, b] {
                g.make_current(rec)?;
                hot(rec, &what, "cuStreamSynchronize", unsafe {
                    sys::cuStreamSynchronize(g.streams[0])
                })?;
            }
            let mut secs = vec![];
            let mut held_all = true;
            for _ in 0..plan.samples {
                let (s, held) = bidir_sample(rec, a, b, &what, plan, &mut ab, &mut ba)?;
                held_all &= held;
                secs.push(s);
            }
            let mut s = samples_of(
                path::P2P_BIDIR,
                a.index,
                Some(b.index),
                2 * n as u64 * plan.copies as u64,
                plan.copies,
                secs,
                "cuda_events",
                held_all,
            );
            s.verified = Some(verify(rec, gpus, i, j)? && verify(rec, gpus, j, i)?);
            run.samples.push(s);
            progress(&what);
        }
    }

    // 5. Latency: small peer copies with peer access on.
    for i in 0..count {
        for j in (0..count).filter(|&j| j != i) {
            let what = pair_name(path::P2P_LATENCY, i, j, gpus);
            if !on(i, j) {
                progress(&what);
                continue;
            }
            check_interrupt(rec)?;
            let g = &gpus[i];
            g.make_current(rec)?;
            let (dst, dctx, src, sctx) = (bufs[j].1, gpus[j].ctx, bufs[i].0, g.ctx);
            let mut op =
                |s| unsafe { sys::cuMemcpyPeerAsync(dst, dctx, src, sctx, Plan::LATENCY_BYTES, s) };
            let s = held_path_n(
                rec,
                g,
                plan,
                path::P2P_LATENCY,
                Some(gpus[j].index),
                "cuMemcpyPeerAsync",
                Plan::LATENCY_BYTES,
                Plan::LATENCY_COPIES,
                10,
                &mut op,
                &mut || {},
            )?;
            run.samples.push(s);
            progress(&what);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulist_parses_ranges_singles_and_junk() {
        assert_eq!(parse_cpulist("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist(""), Vec::<usize>::new());
        assert_eq!(parse_cpulist("x,5"), vec![5]);
    }

    #[test]
    fn pattern_fill_and_check_catch_a_single_bad_word() {
        let words = 1 << 16;
        let mut v = vec![0u64; words];
        assert!(!check(v.as_mut_ptr(), words, 7, false));
        fill(v.as_mut_ptr(), words, 7);
        assert!(check(v.as_mut_ptr(), words, 7, false));
        assert!(check(v.as_mut_ptr(), words, 7, true));
        assert!(!check(v.as_mut_ptr(), words, 8, false));
        v[words / 2 + 3] ^= 1;
        assert!(!check(v.as_mut_ptr(), words, 7, false));
        // Sparse checks see the edges and one word per 4 KiB.
        v[words / 2 + 3] ^= 1;
        v[words - 1] = 0;
        assert!(!check(v.as_mut_ptr(), words, 7, true));
        zero(v.as_mut_ptr(), words);
        assert!(v.iter().all(|w| *w == 0));
        assert!((0..1000).all(|i| pattern(1, i) != 0 && pattern(1, i) != pattern(2, i)));
    }

    #[test]
    fn progress_units() {
        let plan = Plan {
            size: 1 << 20,
            copies: 1,
            samples: 1,
            warmup: 0,
            pageable: false,
            slow_copies: 1,
            p2p: true,
            spin_cycles: 1,
        };
        assert_eq!(device_units(&plan), 5);
        assert_eq!(peer_units(1), 0);
        // 2 GPUs: 2 ordered pairs × 3 + 1 bidirectional.
        assert_eq!(peer_units(2), 7);
        assert_eq!(peer_units(4), 3 * 12 + 6);
    }

    #[test]
    fn placement_without_facts_changes_nothing() {
        let p = place_thread(None, None, 1);
        assert!(!p.affinity_set && !p.mempolicy_set && p.notes.is_empty());
    }
}
