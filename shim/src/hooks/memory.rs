//! Memory accounting around allocation and free calls (`--limit`).

use std::sync::atomic::Ordering;

use shim_proto::cuda::names::VARIANTS;

use super::CUresult;
use super::call::{after, event_budget, passthrough};
use super::libcuda::{current_ctx, current_device};
use super::slots::INJECTED;
use super::state::{emit, event, lock, state};
use crate::accounting::Key;

const OUT_OF_MEMORY: CUresult = 2;

/// An allocation under `--limit`: reserve, call, commit or cancel.
pub(super) fn alloc(
    id: usize,
    dev: Option<i32>,
    size: u64,
    call: impl FnOnce() -> CUresult,
    done: impl FnOnce() -> Option<(Key, u64)>,
) -> CUresult {
    let s = state();
    let (Some(acct), Some(dev)) = (&s.acct, dev) else {
        return passthrough(id, call);
    };
    let reserved = lock(acct).reserve(dev, size);
    if let Err(used) = reserved {
        INJECTED.fetch_add(1, Ordering::Relaxed);
        if !event_budget() {
            return OUT_OF_MEMORY;
        }
        let mut l = event("fail");
        l.str("call", VARIANTS[id].name)
            .u64("code", OUT_OF_MEMORY as u64)
            .bool("injected", true)
            .u64("size", size)
            .i64("dev", dev as i64)
            .u64("used", used)
            .u64("limit", s.config.limit.unwrap_or(0))
            .hex("ctx", current_ctx());
        emit(l);
        return OUT_OF_MEMORY;
    }
    let rc = call();
    if rc == 0 {
        match done() {
            Some((key, actual)) => {
                let peak = lock(acct).commit(key, dev, size, actual, s.peak_step);
                if let Some(bytes) = peak {
                    let mut l = event("peak");
                    l.i64("dev", dev as i64).u64("bytes", bytes);
                    emit(l);
                }
            }
            None => lock(acct).cancel(dev, size),
        }
    } else {
        lock(acct).cancel(dev, size);
        after(id, rc);
    }
    rc
}

/// A free under `--limit`: forget first (so a racing allocation reusing the address is not
/// forgotten after it), restore if the driver refuses.
pub(super) fn free(id: usize, key: Key, call: impl FnOnce() -> CUresult) -> CUresult {
    let s = state();
    let Some(acct) = &s.acct else {
        return passthrough(id, call);
    };
    let removed = lock(acct).remove(key);
    let rc = call();
    if rc != 0 {
        if let Some((dev, size)) = removed {
            lock(acct).restore(key, dev, size);
        }
        after(id, rc);
    }
    rc
}

pub(super) fn limited_dev() -> Option<i32> {
    if state().acct.is_some() {
        Some(current_device())
    } else {
        None
    }
}
