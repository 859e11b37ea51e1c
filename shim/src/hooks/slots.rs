//! Per-variant state: real pointers (slot 0: link/dlsym path, slot 1: cuGetProcAddress path),
//! first-use flags; and the process-wide counters that stay in the process (the ones reported
//! are in the ledger, hooks/ledger.rs).

use core::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use shim_proto::cuda::names::VARIANTS;

use super::N;
use super::state::{emit, event};

pub(super) static SLOTS: [[AtomicPtr<c_void>; N]; 2] = [
    [const { AtomicPtr::new(core::ptr::null_mut()) }; N],
    [const { AtomicPtr::new(core::ptr::null_mut()) }; N],
];
/// Bit 0: hooked via dlsym, 1: via proc, 2: via link, 3: nomatch reported.
pub(super) static SEEN: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
pub(super) static FP_CALLS: AtomicU64 = AtomicU64::new(0);
pub(super) static FP_FIRED: AtomicU64 = AtomicU64::new(0);
pub(super) static CTX_EVENTS: AtomicU64 = AtomicU64::new(0);
pub(super) static FAIL_EVENTS: AtomicU64 = AtomicU64::new(0);

pub(super) fn mark(id: usize, bit: u64) -> bool {
    SEEN[id].fetch_or(1 << bit, Ordering::Relaxed) & (1 << bit) == 0
}

pub(super) fn hooked(id: usize, via: &str, how: &str) {
    let mut l = event("hook");
    l.str("call", VARIANTS[id].name)
        .str("via", via)
        .str("match", how);
    emit(l);
}
