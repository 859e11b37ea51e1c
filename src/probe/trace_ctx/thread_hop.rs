//! thread-hop: tasks of a thread pool run on threads where the pool's context is not current.

use std::ffi::c_void;

use anyhow::Result;

use super::{Pool, RawCtx, Site, Spec, Tracer, create, destroy, set_current};
use crate::facts::trace::{BOUND, HopFacts, HopRun, PINNED, THREAD_HOP, UNBOUND};
use crate::probe::cuda::{CUresult, sys};

use CUresult::{CUDA_ERROR_INVALID_CONTEXT as INVALID_CONTEXT, CUDA_SUCCESS as SUCCESS};

/// Bytes per thread-hop result slot (64 u32 words).
const SLOT_BYTES: usize = 256;
/// Scratch allocation each task makes.
const SCRATCH_BYTES: usize = 64 << 10;

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
