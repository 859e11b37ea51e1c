//! The paths between GPUs: staged through the host (peer access off), then with peer access
//! on (one direction, both directions), and the latency of small peer copies.

use std::ffi::c_void;

use anyhow::{Result, anyhow};

use super::gpu::Gpu;
use super::host::{check, fill};
use super::sampler::{bidir_sample, held_path_n, samples_of};
use super::{Hooks, OK, Plan, check_interrupt, device_need, hot, poison};
use crate::facts::bandwidth::{PeerPair, PeerRun, path};
use crate::probe::cuda::{self, CUresult, Steps, sys};

#[allow(clippy::too_many_arguments)]
pub(super) fn peer_paths(
    rec: &Steps,
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
        hot(
            rec,
            &g.tag("upload peer source"),
            "cuMemcpyHtoD_v2",
            // SAFETY: `host` is the portable pinned staging buffer of n bytes; synchronous copy
            // into this GPU's source buffer (n bytes), its context made current just above.
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
    let verify = |rec: &Steps, gpus: &[Gpu], i: usize, j: usize| -> Result<bool> {
        gpus[j].make_current(rec)?;
        hot(
            rec,
            &gpus[j].tag("verify: read back"),
            "cuMemcpyDtoH_v2",
            // SAFETY: `host` is the staging buffer of n bytes, not otherwise in use; a
            // synchronous copy from GPU j's destination (n bytes), its context current.
            unsafe { sys::cuMemcpyDtoH_v2(host as *mut c_void, bufs[j].1, n) },
        )?;
        Ok(check(host, words, 100 + gpus[i].index as u64, true))
    };
    let poison_dst = |rec: &Steps, gpus: &[Gpu], j: usize| -> Result<()> {
        gpus[j].make_current(rec)?;
        poison(rec, bufs[j].1, n)
    };
    let pair_name = |p: &str, i: usize, j: usize, gpus: &[Gpu]| {
        format!("GPU{}→GPU{} {p}", gpus[i].index, gpus[j].index)
    };

    // 1. Staged through the host: peer access not enabled yet, the driver bounces the copy.
    for i in 0..count {
        for j in (0..count).filter(|&j| j != i && plan.measures(i, j)) {
            check_interrupt(rec)?;
            poison_dst(rec, gpus, j)?;
            let g = &gpus[i];
            g.make_current(rec)?;
            let what = pair_name(path::P2P_STAGED, i, j, gpus);
            let (dst, dctx, src, sctx) = (bufs[j].1, gpus[j].ctx, bufs[i].0, g.ctx);
            // SAFETY: `dst` (GPU j's destination) and `src` (GPU i's source) are n-byte buffers
            // of the retained contexts `dctx` and `sctx`; `s` is a stream of GPU i, current.
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
                // SAFETY: as above (`e1` is GPU i's too).
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
        for j in (0..count).filter(|&j| j != i && plan.measures(i, j)) {
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
            // SAFETY: as in the staged copies: n-byte buffers of the retained contexts `dctx`
            // and `sctx`; held_path_n passes stream 0 of GPU i, current.
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
        for j in (0..count).filter(|&j| {
            gpus[j].index > gpus[i].index && (plan.measures(i, j) || plan.measures(j, i))
        }) {
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
            // SAFETY: GPU i's source `si` → GPU j's destination `dj`, n-byte buffers of the
            // retained contexts `ci`/`cj`; callers pass a stream of `a` with `a` current.
            let mut ab = |s| unsafe { sys::cuMemcpyPeerAsync(dj, cj, si, ci, n, s) };
            // SAFETY: GPU j's source `sj` → GPU i's destination `di`, n bytes each; callers pass
            // a stream of `b` with `b` current.
            let mut ba = |s| unsafe { sys::cuMemcpyPeerAsync(di, ci, sj, cj, n, s) };
            for _ in 0..plan.warmup {
                a.make_current(rec)?;
                hot(rec, &what, "cuMemcpyPeerAsync", ab(a.streams[0]))?;
                b.make_current(rec)?;
                hot(rec, &what, "cuMemcpyPeerAsync", ba(b.streams[0]))?;
            }
            for g in [a, b] {
                g.make_current(rec)?;
                // SAFETY: stream 0 of `g`, whose context was made current just above.
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
        for j in (0..count).filter(|&j| j != i && plan.measures(i, j)) {
            let what = pair_name(path::P2P_LATENCY, i, j, gpus);
            if !on(i, j) {
                progress(&what);
                continue;
            }
            check_interrupt(rec)?;
            let g = &gpus[i];
            g.make_current(rec)?;
            let (dst, dctx, src, sctx) = (bufs[j].1, gpus[j].ctx, bufs[i].0, g.ctx);
            // SAFETY: LATENCY_BYTES (4) of n-byte buffers of the retained contexts `dctx` and
            // `sctx`; held_path_n passes stream 0 of GPU i, current.
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
