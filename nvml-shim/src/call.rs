//! The common path of an exported call: count it; over the real library with no fault on this
//! function, forward at once (no lock, no allocation); else find the GPU, answer
//! NVML_ERROR_GPU_IS_LOST for a lost one, get the answer (real library or snapshot), and let
//! each active fault of this function rewrite it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::{Device, ERROR_GPU_IS_LOST, ERROR_INVALID_ARGUMENT, ERROR_UNINITIALIZED, Ret};
use crate::exports::{Fid, N_FN, NAMES};
use crate::out::Out;
use crate::proto::fault::FaultKind;
use crate::replay::{Found, Replay};
use crate::rewrite::Ctx;
use crate::state::{Backend, State, state};

std::thread_local! {
    /// True while this thread runs the real library: a library that calls its own exported
    /// functions through the PLT would otherwise reach ours again (counted and faulted twice).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Calls per exported function (the stats at exit).
pub static COUNTS: [AtomicU64; N_FN] = [const { AtomicU64::new(0) }; N_FN];

/// Runs the real function with the re-entrancy guard held.
#[inline(always)]
pub fn forward<R>(real: impl FnOnce() -> R) -> R {
    INSIDE.with(|c| {
        let was = c.replace(true);
        let rc = real();
        c.set(was);
        rc
    })
}

/// Starts a call: None when this thread is inside the real library (the call then goes
/// straight to it); else the state and the process's call number.
#[inline(always)]
pub fn enter(f: Fid) -> Option<(&'static State, u64)> {
    if INSIDE.with(|c| c.get()) {
        return None;
    }
    COUNTS[f as usize].fetch_add(1, Ordering::Relaxed);
    let s = state();
    Some((s, s.faults.tick()))
}

/// The faults that may change this call (none while a snapshot is being recorded).
#[inline(always)]
pub fn mask(s: &State, f: Fid) -> u64 {
    let m = s.faults.mask(f);
    if m != 0 && crate::record::recording() {
        0
    } else {
        m
    }
}

/// A rewrite that changes nothing (calls only gpu-lost reaches).
pub fn none<O>(_: &FaultKind, _: &Ctx, _: &mut Ret, _: O) -> Option<String> {
    None
}

/// The recorded answer, written into the caller's buffers.
///
/// # Safety
/// `out` holds the caller's pointers.
pub unsafe fn answer<O: Out>(
    s: &State,
    r: &Replay,
    f: Fid,
    found: Found,
    out: O,
    (q, params, gpu, peer): (usize, &[u32], Option<u32>, Option<u32>),
) -> Ret {
    match found {
        // SAFETY: the caller's pointers.
        Found::Value(v) => unsafe { out.fill(v) },
        Found::Error(rc) => rc,
        Found::Missing => r.missing(NAMES[f as usize], q, params, gpu, peer, &s.sink),
    }
}

/// How a call about one GPU goes on once started ([`start_device`]).
pub enum Start {
    /// To the real function, with the re-entrancy guard: over the real library with no fault
    /// on this function, or from inside the real library.
    Forward,
    /// Answered already: no snapshot, not ready, not a replay handle, or a lost GPU.
    Answer(Ret),
    /// Answered here.
    Serve(Serving),
}

pub struct Serving {
    pub s: &'static State,
    /// The process's call number.
    pub call: u64,
    /// The faults that may change this call ([`mask`]).
    pub mask: u64,
    pub gpu: Option<u32>,
}

/// The start every call about one GPU (`dev`) shares: count it, find the GPU, answer
/// NVML_ERROR_GPU_IS_LOST for a lost one.
#[inline(always)]
pub fn start_device(f: Fid, dev: Device) -> Start {
    let Some((s, call)) = enter(f) else {
        return Start::Forward;
    };
    let mask = mask(s, f);
    let gpu = match &s.backend {
        Backend::Real if mask == 0 => return Start::Forward,
        Backend::Real => s.gpu_of(dev),
        Backend::Replay(r) => match r.ready().and_then(|_| s.replay_gpu(dev)) {
            Ok(g) => Some(g),
            Err(rc) => return Start::Answer(rc),
        },
        Backend::Broken => return Start::Answer(ERROR_UNINITIALIZED),
    };
    if mask != 0 && s.faults.lost_for(gpu, call, f, &s.sink) {
        return Start::Answer(ERROR_GPU_IS_LOST);
    }
    Start::Serve(Serving { s, call, mask, gpu })
}

/// A query about one GPU: `q` is its index in proto::query::QUERIES, `params` its
/// non-handle inputs; `rewrite` is how the faults of this function change the answer.
///
/// # Safety
/// `dev` and `out` are the caller's arguments; `real` calls the real function with them.
#[inline(always)]
pub unsafe fn device<O: Out>(
    f: Fid,
    dev: Device,
    q: usize,
    params: &[u32],
    out: O,
    real: impl FnOnce() -> Ret,
    rewrite: impl Fn(&FaultKind, &Ctx, &mut Ret, O) -> Option<String>,
) -> Ret {
    let Serving { s, call, mask, gpu } = match start_device(f, dev) {
        Start::Forward => return forward(real),
        Start::Answer(rc) => return rc,
        Start::Serve(go) => go,
    };
    let faults = mask != 0;
    let mut rc = match &s.backend {
        Backend::Replay(r) => {
            let found = r.device(gpu.unwrap_or(u32::MAX), q, params);
            // SAFETY: the caller's pointers.
            unsafe { answer(s, r, f, found, out, (q, params, gpu, None)) }
        }
        _ => forward(real),
    };
    if faults {
        s.faults
            .rewrite(f, gpu, call, &s.sink, |kind, since_active| {
                let ctx = Ctx {
                    params,
                    since_active,
                };
                rewrite(kind, &ctx, &mut rc, out)
            });
    }
    rc
}

/// A query about an ordered pair of GPUs (no fault rewrites these; gpu-lost answers for
/// either GPU).
///
/// # Safety
/// As [`device`].
pub unsafe fn pair<O: Out>(
    f: Fid,
    (a, b): (Device, Device),
    q: usize,
    params: &[u32],
    out: O,
    real: impl FnOnce() -> Ret,
) -> Ret {
    let Some((s, call)) = enter(f) else {
        return real();
    };
    let faults = mask(s, f) != 0;
    let lost = |ga, gb| {
        faults
            && (s.faults.lost_for(ga, call, f, &s.sink) || s.faults.lost_for(gb, call, f, &s.sink))
    };
    match &s.backend {
        Backend::Real => {
            if lost(s.gpu_of(a), s.gpu_of(b)) {
                return ERROR_GPU_IS_LOST;
            }
            forward(real)
        }
        Backend::Replay(r) => {
            if let Err(rc) = r.ready() {
                return rc;
            }
            let (Ok(ga), Ok(gb)) = (s.replay_gpu(a), s.replay_gpu(b)) else {
                return ERROR_INVALID_ARGUMENT;
            };
            if lost(Some(ga), Some(gb)) {
                return ERROR_GPU_IS_LOST;
            }
            let found = r.pair(ga, gb, q, params);
            // SAFETY: the caller's pointers.
            unsafe { answer(s, r, f, found, out, (q, params, Some(ga), Some(gb))) }
        }
        Backend::Broken => ERROR_UNINITIALIZED,
    }
}

/// A call no fault changes: forwarded over the real library; in a replay, answered by
/// `serve` once the program has initialised NVML.
pub fn forward_or_replay(
    f: Fid,
    real: impl FnOnce() -> Ret,
    serve: impl FnOnce(&State, &Replay) -> Ret,
) -> Ret {
    let Some((s, _)) = enter(f) else {
        return real();
    };
    match &s.backend {
        Backend::Real => forward(real),
        Backend::Replay(r) => match r.ready() {
            Ok(()) => serve(s, r),
            Err(rc) => rc,
        },
        Backend::Broken => ERROR_UNINITIALIZED,
    }
}

/// A query about the machine (no fault changes these).
///
/// # Safety
/// As [`device`].
pub unsafe fn system<O: Out>(f: Fid, q: usize, out: O, real: impl FnOnce() -> Ret) -> Ret {
    forward_or_replay(f, real, |s, r| {
        let found = r.system(q, &[]);
        // SAFETY: the caller's pointers.
        unsafe { answer(s, r, f, found, out, (q, &[], None, None)) }
    })
}
