//! Timing one path: a spin kernel holds the stream while a batch of copies is enqueued and
//! CUDA events bracket the batch (`held_*`, `bidir_sample`); synchronous pageable copies are
//! timed with the host clock (`wall_path`).

use std::ptr;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::gpu::Gpu;
use super::{OK, Plan, hot};
use crate::facts::bandwidth::PathSamples;
use crate::probe::cuda::{CUresult, Steps, sys};

impl Gpu {
    /// Launches the spin kernel on `stream`: it holds the stream until the flag is set.
    fn spin(&self, rec: &Steps, stream: sys::CUstream, cycles: u64) -> Result<()> {
        self.set_flag(0);
        let rc = self.launch_spin(stream, cycles);
        if rc != OK {
            self.set_flag(1);
        }
        hot(rec, &self.tag("spin kernel"), "cuLaunchKernel", rc)
    }

    pub(super) fn elapsed(
        &self,
        rec: &Steps,
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
        rec: &Steps,
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
    pub(super) fn warm(
        &self,
        rec: &Steps,
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
}

#[allow(clippy::too_many_arguments)]
pub(super) fn samples_of(
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
pub(super) fn held_path(
    rec: &Steps,
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
pub(super) fn held_path_n(
    rec: &Steps,
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
pub(super) fn wall_path(
    rec: &Steps,
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
pub(super) fn bidir_sample(
    rec: &Steps,
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
        // SAFETY: `e0` and `sa` are live handles of `a`'s context (cuEventRecord is always
        // given a stream of the event's context).
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(e0, sa)
        })?;
        // SAFETY: `sb` and `e0` are live; cuStreamWaitEvent accepts an event of another context.
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
        // SAFETY: `eb` and `sb` are live handles of the same context (`b`'s, or `a`'s when
        // a == b).
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(eb, sb)
        })?;
        if !same {
            a.make_current(rec)?;
        }
        // SAFETY: `sa` and `eb` are live; waiting on another context's event is supported.
        hot(rec, what, "cuStreamWaitEvent", unsafe {
            sys::cuStreamWaitEvent(sa, eb, 0)
        })?;
        // SAFETY: `e1` and `sa` are live handles of `a`'s context.
        hot(rec, what, "cuEventRecord", unsafe {
            sys::cuEventRecord(e1, sa)
        })
    })();
    let held = t0.elapsed() < Duration::from_millis(100);
    a.set_flag(1);
    enqueue?;
    Ok((a.elapsed(rec, what, e0, e1)?, held))
}
