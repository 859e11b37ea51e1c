//! `inject oom`: fill device memory to CUDA_ERROR_OUT_OF_MEMORY in a non-primary context,
//! prove the context still works, free, and check memory returns.
//!
//! The fill loop is tight: no step per allocation and no event per allocation (progress is
//! throttled to one event per 100 ms). Only the calls that matter become steps: the first
//! OUT_OF_MEMORY, the one at the edge, the proofs after it, and a summary of the frees.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    ATTR_RESERVED, ATTR_THRESHOLD, NON_BLOCKING, Steps, Target, new_stream, pool_attr, rc,
};
use crate::context::RunCtx;
use crate::facts::faults::{OomFacts, PoolFacts};
use crate::probe::cuda::{CUresult, check, sys};
use crate::probe::kernels::{self, Module, name};
use crate::probe::memory;
use crate::units::format_bytes;

/// Step names (stable: analyze::faults reads them).
pub mod step {
    pub const CREATE: &str = "create a non-primary context";
    pub const FIRST_OOM: &str = "first OUT_OF_MEMORY while filling";
    pub const EDGE_OOM: &str = "OUT_OF_MEMORY at the granularity (edge found)";
    pub const FILL_ERROR: &str = "fill allocation";
    pub const ASYNC_SYNC: &str = "stream sync after the async fill";
    /// Prefix of the steps that prove OOM is not sticky.
    pub const AFTER_OOM: &str = crate::facts::faults::step_names::AFTER_OOM;
    pub const FREE_ALL: &str = "free every allocation";
    pub const TRIM: &str = "trim the pool to 0 bytes";
    pub const DESTROY: &str = "destroy the context";
}

pub struct OomConfig {
    pub async_alloc: bool,
    pub granularity: u64,
    /// First chunk size (rounded to the granularity).
    pub chunk: u64,
    pub fraction: Option<f64>,
    pub hold: Option<Duration>,
}

/// Bytes freed before the proofs, so the small allocation and the launch have room: after
/// OOM the GPU is full by construction, and a 4 KiB allocation needs a fresh 2 MiB page.
const PROOF_HEADROOM: u64 = 64 << 20;
const PROOF_VALUE: u32 = 0x00C0_FFEE;
const PROOF_ELEMS: usize = 1024;

pub fn run(ctx: &RunCtx, steps: &Steps, t: &Target, cfg: &OomConfig) -> Result<OomFacts> {
    let (memory, watch) = memory::begin(ctx, &t.nvml, t.index);
    let mut facts = OomFacts {
        device: t.index,
        allocator: if cfg.async_alloc { "async" } else { "sync" }.into(),
        granularity_bytes: cfg.granularity,
        fraction: cfg.fraction,
        memory,
        ..Default::default()
    };
    let g = cfg.granularity.max(1);
    let round = |b: u64| (b / g) * g;
    facts.chunk_bytes = round(cfg.chunk).max(g);

    let mut cu_ctx: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: `cu_ctx` is a live out-pointer; `t.dev` came from cuDeviceGetByPCIBusId.
    let r = steps.call(step::CREATE, "cuCtxCreate_v2", &[rc::SUCCESS], || unsafe {
        sys::cuCtxCreate_v2(&mut cu_ctx, 0, t.dev)
    });
    check(r, "cuCtxCreate_v2")?;
    let module = Module::load()?;
    let fill = module.function(name::FILL_U32)?;
    let stream = new_stream(NON_BLOCKING)?;

    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut pool_facts = PoolFacts::default();
    if cfg.async_alloc {
        check(
            // SAFETY: `pool` is a live out-pointer; `t.dev` is the target device.
            unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, t.dev) },
            "cuDeviceGetDefaultMemPool",
        )?;
        pool_facts.release_threshold_before = pool_attr(pool, ATTR_THRESHOLD);
        // Keep freed memory in the pool, so trimming it is what returns it (shown below).
        let mut keep = u64::MAX;
        steps.call(
            "keep freed memory in the default pool (release threshold = max)",
            "cuMemPoolSetAttribute",
            &[rc::SUCCESS],
            // SAFETY: `pool` is the device's default pool (just obtained); RELEASE_THRESHOLD
            // reads one cuuint64_t and `keep` is a live u64.
            || unsafe { sys::cuMemPoolSetAttribute(pool, ATTR_THRESHOLD, kernels::arg(&mut keep)) },
        );
    }

    // The fill's window starts here: other processes' changes from now on move the edge.
    facts.fill_started_at_ms = Some(watch.mark());
    let (free_before, total) = crate::probe::cuda::mem_get_info()?;
    facts.free_before_bytes = free_before;
    facts.total_bytes = total;
    facts.memory.cuda_free_before = Some(free_before);
    facts.target_bytes = cfg
        .fraction
        .map(|f| round((free_before as f64 * f.clamp(0.0, 1.0)) as u64));

    // --- fill ---
    let mut ptrs: Vec<(sys::CUdeviceptr, u64)> = Vec::with_capacity(256);
    let mut allocated = 0u64;
    let mut chunk = facts.chunk_bytes;
    let mut progress = ctx.progress_sink(
        facts.target_bytes.unwrap_or(free_before),
        "filling device memory",
    );
    let alloc_call = if cfg.async_alloc {
        "cuMemAllocAsync"
    } else {
        "cuMemAlloc_v2"
    };
    let t0 = Instant::now();
    let stopped = loop {
        if ctx.interrupted() {
            break "interrupted";
        }
        let mut size = chunk;
        if let Some(target) = facts.target_bytes {
            if allocated >= target {
                break "fraction";
            }
            size = size.min(target - allocated).max(g);
        }
        if allocated.saturating_add(size) > total {
            // Never ask for more than the GPU has (an allocator that oversubscribes would
            // otherwise never answer OOM): narrow the chunk first, stop at the granularity.
            if chunk > g {
                chunk = (chunk / 2).max(g);
                continue;
            }
            break "guard";
        }
        let at_ms = ctx.now_ms();
        let c0 = Instant::now();
        let mut p: sys::CUdeviceptr = 0;
        // SAFETY: valid out-pointer; our context is current; the stream is ours.
        let r = unsafe {
            if cfg.async_alloc {
                sys::cuMemAllocAsync(&mut p, size as usize, stream)
            } else {
                sys::cuMemAlloc_v2(&mut p, size as usize)
            }
        };
        match r {
            CUresult::CUDA_SUCCESS => {
                ptrs.push((p, size));
                allocated += size;
                progress.set(ctx, allocated);
            }
            CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                let elapsed = c0.elapsed().as_secs_f64() * 1e3;
                facts.oom_answers += 1;
                facts.reached_oom = true;
                facts.last_refused_bytes = Some(size);
                let note = format!(
                    "{} requested with {} allocated in {} allocation(s)",
                    format_bytes(size),
                    format_bytes(allocated),
                    ptrs.len()
                );
                if facts.oom_answers == 1 {
                    steps.made(
                        step::FIRST_OOM,
                        alloc_call,
                        &[rc::OOM],
                        r,
                        at_ms,
                        elapsed,
                        Some(note.clone()),
                    );
                }
                if size <= g {
                    if facts.oom_answers > 1 {
                        steps.made(
                            step::EDGE_OOM,
                            alloc_call,
                            &[rc::OOM],
                            r,
                            at_ms,
                            elapsed,
                            Some(note),
                        );
                    }
                    break "oom";
                }
                chunk = round(size / 2).max(g);
            }
            other => {
                let elapsed = c0.elapsed().as_secs_f64() * 1e3;
                steps.made(
                    step::FILL_ERROR,
                    alloc_call,
                    &[rc::SUCCESS, rc::OOM],
                    other,
                    at_ms,
                    elapsed,
                    Some(format!(
                        "{} requested with {} allocated",
                        format_bytes(size),
                        format_bytes(allocated)
                    )),
                );
                break "error";
            }
        }
    };
    if cfg.async_alloc {
        let r = steps.call_noted(
            step::ASYNC_SYNC,
            "cuStreamSynchronize",
            &[rc::SUCCESS, rc::OOM],
            Some("an async allocation may report OUT_OF_MEMORY here instead of at the call"),
            // SAFETY: `stream` is ours, created above and destroyed only at the end.
            || unsafe { sys::cuStreamSynchronize(stream) },
        );
        facts.oom_surfaced_at = if facts.reached_oom {
            Some("call".into())
        } else if r == rc::OOM {
            facts.reached_oom = true;
            Some("sync".into())
        } else {
            None
        };
    } else if facts.reached_oom {
        facts.oom_surfaced_at = Some("call".into());
    }
    facts.time_to_edge_ms = t0.elapsed().as_secs_f64() * 1e3;
    facts.fill_ended_at_ms = Some(watch.mark());
    facts.allocations = ptrs.len() as u64;
    facts.allocatable_bytes = allocated;
    facts.stopped_by = stopped.to_string();

    // --- hold ---
    if let Some(hold) = cfg.hold
        && !ctx.interrupted()
    {
        progress.set_message(
            ctx,
            &format!("holding {} (Ctrl-C frees it)", format_bytes(allocated)),
            allocated,
        );
        let h0 = Instant::now();
        while h0.elapsed() < hold && !ctx.interrupted() {
            std::thread::sleep(Duration::from_millis(50).min(hold.saturating_sub(h0.elapsed())));
        }
        facts.held_ms = h0.elapsed().as_secs_f64() * 1e3;
    }
    progress.finish();

    // --- the context still works (OOM is not sticky) ---
    if !ctx.interrupted() && facts.stopped_by != "error" {
        let mut headroom = 0u64;
        while headroom < PROOF_HEADROOM {
            let Some((p, size)) = ptrs.pop() else { break };
            free(cfg.async_alloc, stream, p);
            headroom += size;
        }
        if cfg.async_alloc {
            // SAFETY: our stream.
            unsafe { sys::cuStreamSynchronize(stream) };
        }
        facts.proof_value_ok = Some(prove(steps, cfg.async_alloc, stream, fill, headroom));
    }

    // --- free everything ---
    let at_ms = ctx.now_ms();
    let f0 = Instant::now();
    let n = ptrs.len();
    let mut first_bad = rc::SUCCESS;
    let mut bad = 0usize;
    for (p, _) in ptrs.drain(..) {
        let r = free(cfg.async_alloc, stream, p);
        if r != rc::SUCCESS {
            bad += 1;
            if first_bad == rc::SUCCESS {
                first_bad = r;
            }
        }
    }
    let sync_rc = if cfg.async_alloc {
        // SAFETY: our stream.
        unsafe { sys::cuStreamSynchronize(stream) }
    } else {
        rc::SUCCESS
    };
    facts.free_ms = f0.elapsed().as_secs_f64() * 1e3;
    if first_bad == rc::SUCCESS {
        first_bad = sync_rc;
    }
    steps.made(
        step::FREE_ALL,
        if cfg.async_alloc {
            "cuMemFreeAsync + cuStreamSynchronize"
        } else {
            "cuMemFree_v2"
        },
        &[rc::SUCCESS],
        first_bad,
        at_ms,
        facts.free_ms,
        Some(format!(
            "{n} call(s), {bad} failed; the first failure is the observed answer"
        )),
    );

    if cfg.async_alloc {
        pool_facts.free_after_free_bytes = super::cuda_free();
        pool_facts.reserved_after_free_bytes = pool_attr(pool, ATTR_RESERVED);
        steps.call_noted(
            step::TRIM,
            "cuMemPoolTrimTo",
            &[rc::SUCCESS],
            Some("trimming returns the pool's unused memory to the system"),
            // SAFETY: `pool` is the device's default pool, which lives as long as the device;
            // every allocation from it was freed and synchronised above.
            || unsafe { sys::cuMemPoolTrimTo(pool, 0) },
        );
        pool_facts.free_after_trim_bytes = super::cuda_free();
        pool_facts.reserved_after_trim_bytes = pool_attr(pool, ATTR_RESERVED);
        if let Some(mut v) = pool_facts.release_threshold_before {
            // SAFETY: valid pool and value pointer.
            unsafe { sys::cuMemPoolSetAttribute(pool, ATTR_THRESHOLD, kernels::arg(&mut v)) };
        }
        facts.pool = Some(pool_facts);
    }
    facts.memory.cuda_free_after = super::cuda_free();

    // SAFETY: our stream and module, in our live context.
    unsafe { sys::cuStreamDestroy_v2(stream) };
    module.unload();
    steps.call(
        step::DESTROY,
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `cu_ctx` was created above and is destroyed once, here; its allocations were
        // freed, its stream destroyed and its module unloaded just before.
        || unsafe { sys::cuCtxDestroy_v2(cu_ctx) },
    );
    memory::end(&mut facts.memory, watch, &t.nvml, t.index);
    Ok(facts)
}

/// Small allocation, memset, kernel launch, sync and read-back after OOM: all must succeed.
fn prove(
    steps: &Steps,
    async_alloc: bool,
    stream: sys::CUstream,
    fill: sys::CUfunction,
    headroom: u64,
) -> bool {
    let bytes = PROOF_ELEMS * 4;
    let p = |s: &str| format!("{}{s}", step::AFTER_OOM);
    let note = format!(
        "OOM must not be sticky: after freeing {} the context works as if the failed call never happened",
        format_bytes(headroom)
    );
    let note = Some(note.as_str());
    let mut dptr: sys::CUdeviceptr = 0;
    let (alloc_call, memset_call) = if async_alloc {
        ("cuMemAllocAsync", "cuMemsetD32Async")
    } else {
        ("cuMemAlloc_v2", "cuMemsetD32_v2")
    };
    let r = steps.call_noted(
        &p("alloc 4 KiB"),
        alloc_call,
        &[rc::SUCCESS],
        note,
        // SAFETY: `dptr` is a live out-pointer; our context is current and `stream` is ours.
        || unsafe {
            if async_alloc {
                sys::cuMemAllocAsync(&mut dptr, bytes, stream)
            } else {
                sys::cuMemAlloc_v2(&mut dptr, bytes)
            }
        },
    );
    if r != rc::SUCCESS {
        return false;
    }
    // SAFETY: `dptr` is the allocation of `bytes` = PROOF_ELEMS u32 just made, the count set;
    // `stream` is ours (the async allocation was ordered on it).
    let r = steps.call_noted(&p("memset"), memset_call, &[rc::SUCCESS], note, || unsafe {
        if async_alloc {
            sys::cuMemsetD32Async(dptr, 0, PROOF_ELEMS, stream)
        } else {
            sys::cuMemsetD32_v2(dptr, 0, PROOF_ELEMS)
        }
    });
    if r != rc::SUCCESS {
        return false;
    }
    // Ordered after the memset: the async path uses our stream for both; cuMemsetD32_v2 runs
    // on the legacy stream, so the kernel goes there too (our stream is non-blocking).
    let launch_stream = if async_alloc {
        stream
    } else {
        std::ptr::null_mut()
    };
    steps.call_noted(
        &p("launch fill_u32"),
        "cuLaunchKernel",
        &[rc::SUCCESS],
        note,
        // SAFETY: `fill` is fill_u32 of the module in our context and `dptr` holds PROOF_ELEMS
        // u32; `launch_stream` is our stream or the legacy stream.
        || unsafe {
            kernels::launch_fill(fill, launch_stream, dptr, PROOF_VALUE, PROOF_ELEMS as u64)
        },
    );
    steps.call_noted(
        &p("synchronize"),
        "cuCtxSynchronize",
        &[rc::SUCCESS],
        note,
        // SAFETY: no arguments; waits for our context, current and alive.
        || unsafe { sys::cuCtxSynchronize() },
    );
    let mut ok = false;
    steps.call_noted(
        &p("read back the kernel's value"),
        "cuMemcpyDtoH_v2",
        &[rc::SUCCESS],
        note,
        || {
            let (r, equal) = super::read_back_equals(dptr, PROOF_ELEMS, PROOF_VALUE);
            ok = equal;
            r
        },
    );
    free(async_alloc, stream, dptr);
    if async_alloc {
        // SAFETY: our stream.
        unsafe { sys::cuStreamSynchronize(stream) };
    }
    ok
}

/// Frees one of our allocations (each freed once): cuMemFreeAsync on our stream for the
/// async allocator, cuMemFree_v2 otherwise.
fn free(async_alloc: bool, stream: sys::CUstream, p: sys::CUdeviceptr) -> CUresult {
    // SAFETY: `p` is our allocation, not freed before; the stream is ours.
    unsafe {
        if async_alloc {
            sys::cuMemFreeAsync(p, stream)
        } else {
            sys::cuMemFree_v2(p)
        }
    }
}
