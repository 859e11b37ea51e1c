//! Memory accounting around allocation and free calls (`--limit`, `leak-check`): bytes held
//! per device and their peak, published in the ledger; with `leaks=1`, each allocation and free
//! as an event too (hooks/leaks.rs).

use shim_proto::cuda::ledger::word;
use shim_proto::cuda::names::VARIANTS;

use super::CUresult;
use super::call::{after, event_budget, passthrough};
use super::leaks;
use super::ledger::ledger;
use super::libcuda::{current_ctx, current_device};
use super::state::{emit, event, lock, state};
use crate::accounting::{Accounting, Key};

const OUT_OF_MEMORY: CUresult = 2;

/// Publishes what the process holds on `dev` in the ledger (under the accounting lock).
fn publish(a: &Accounting, dev: i32) {
    let u = a.usage(dev);
    ledger().device(dev, u.used, u.peak);
}

/// An allocation: reserve, call, commit or cancel.
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
        ledger().add(word::INJECTED, 1);
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
                let peak = {
                    let mut a = lock(acct);
                    let peak = a.commit(key, dev, size, actual, s.peak_step);
                    publish(&a, dev);
                    peak
                };
                if let Some(bytes) = peak {
                    let mut l = event("peak");
                    l.i64("dev", dev as i64).u64("bytes", bytes);
                    emit(l);
                }
                if s.config.leaks {
                    leaks::allocated(id, key, actual, dev);
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

/// A free: forget first (so a racing allocation reusing the address is not forgotten after
/// it), restore if the driver refuses.
pub(super) fn free(id: usize, key: Key, call: impl FnOnce() -> CUresult) -> CUresult {
    let s = state();
    let Some(acct) = &s.acct else {
        return passthrough(id, call);
    };
    let removed = {
        let mut a = lock(acct);
        let removed = a.remove(key);
        if let Some((dev, _)) = removed {
            publish(&a, dev);
        }
        removed
    };
    let rc = call();
    if rc != 0 {
        if let Some((dev, size)) = removed {
            let mut a = lock(acct);
            a.restore(key, dev, size);
            publish(&a, dev);
        }
        after(id, rc);
    } else if s.config.leaks {
        leaks::freed(id, key, removed);
    }
    rc
}

/// The device an allocation lands on, when the shim accounts allocations (None: it does not).
pub(super) fn limited_dev() -> Option<i32> {
    if state().acct.is_some() {
        Some(current_device())
    } else {
        None
    }
}
