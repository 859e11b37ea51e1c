//! The paths of one GPU: host↔device (pinned, pageable, bidirectional) and device-local
//! (copy engine, SM kernel), each verified after it ran.

use std::ffi::c_void;

use anyhow::Result;

use super::gpu::Gpu;
use super::host::{check, fill, node_of, zero};
use super::sampler::{bidir_sample, held_path, samples_of, wall_path};
use super::{Hooks, Plan, check_interrupt, device_need, hot, poison};
use crate::error;
use crate::facts::bandwidth::{DeviceRun, path};
use crate::probe::cuda::{self, Steps, sys};
use crate::probe::kernels;

pub(super) fn device_paths(
    rec: &Steps,
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
    let read_back = |rec: &Steps, host: *mut u64, p: sys::CUdeviceptr| -> Result<()> {
        // SAFETY: `host` holds `size` bytes; synchronous copy.
        hot(rec, "verify: read back", "cuMemcpyDtoH_v2", unsafe {
            sys::cuMemcpyDtoH_v2(host as *mut c_void, p, size)
        })
    };

    // H2D pinned: A(host, seed 1) → A(device).
    check_interrupt(rec)?;
    // SAFETY: `ha` (pinned host A) and `da` (device A) are live buffers of `size` bytes, freed
    // only by `release`, which synchronises first; `s` is a stream of this context.
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
    // SAFETY: `hb` (pinned host B) and `da` are live buffers of `size` bytes; the host reads
    // host B only after held_path waited for the end event; `s` is a stream of this context.
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
        // SAFETY: `pa` points to pageable A, `words` u64 = `size` bytes owned by the caller
        // for this whole function; a synchronous copy into device A (`size` bytes).
        let mut op = || unsafe { sys::cuMemcpyHtoD_v2(da, pa as *const c_void, size) };
        let mut s = wall_path(rec, g, plan, path::H2D_PAGEABLE, "cuMemcpyHtoD_v2", &mut op)?;
        read_back(rec, hb64, da)?;
        s.verified = Some(check(hb64, words, 2, false));
        run.samples.push(s);
        a_seed = 2;
        step_done(path::H2D_PAGEABLE);

        check_interrupt(rec)?;
        // SAFETY: `pb` points to pageable B, `size` bytes owned by the caller and not borrowed
        // elsewhere while the synchronous copy writes it; `da` holds `size` bytes.
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
    // SAFETY: `ha` (pinned host A) and `db` (device B) are live buffers of `size` bytes; `s`
    // is a stream of this context.
    let mut h2d = |s| unsafe { sys::cuMemcpyHtoDAsync_v2(db, ha, size, s) };
    // SAFETY: `da` and `hb` (pinned host B) are live buffers of `size` bytes; the host reads
    // host B only after the synchronize / end event below; `s` is a stream of this context.
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
    // SAFETY: `db` and `da` are this context's device buffers of `size` bytes; `s` is a
    // stream of this context.
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
            kernels::arg(&mut src),
            kernels::arg(&mut dst),
            kernels::arg(&mut n),
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
