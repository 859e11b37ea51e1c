//! Context operations (`trace ctx --`): the current context before and after each one.

use std::sync::atomic::Ordering;

use shim_proto::cuda::names::VARIANTS;

use super::call::passthrough;
use super::ledger::ledger;
use super::libcuda::current_ctx;
use super::slots::CTX_EVENTS;
use super::state::{emit, event, state};
use super::{CUresult, Ptr, id};
use shim_proto::cuda::ledger::word;

/// Context-operation events per process before they are only counted.
const MAX_CTX_EVENTS: u64 = 100_000;

const SET_CURRENT: usize = id("cuCtxSetCurrent");
const PUSH: usize = id("cuCtxPushCurrent_v2");
const POP: usize = id("cuCtxPopCurrent_v2");

/// Recorded with `leaks=1` (without `trace=1`): creation and teardown, which decide what a
/// context's allocations become; not the switches.
fn lifecycle(id: usize) -> bool {
    id != SET_CURRENT && id != PUSH && id != POP
}
pub(super) fn ctx_op(
    id: usize,
    call: impl FnOnce() -> CUresult,
    subject: impl FnOnce(CUresult) -> (u64, i64),
) -> CUresult {
    let s = state();
    let recorded = s.config.trace || (s.config.leaks && lifecycle(id));
    if !recorded {
        return passthrough(id, call);
    }
    let before_ctx = current_ctx();
    let rc = call();
    let after_ctx = current_ctx();
    let (ctx, dev) = subject(rc);
    // Re-binding the context already current (some frameworks do it around every call)
    // changes nothing: counted, not written.
    if rc == 0 && id == SET_CURRENT && before_ctx == ctx && after_ctx == ctx {
        ledger().add(word::CTX_NOOPS, 1);
        return rc;
    }
    if CTX_EVENTS.fetch_add(1, Ordering::Relaxed) >= MAX_CTX_EVENTS {
        ledger().add(word::DROPPED, 1);
        return rc;
    }
    let mut l = event("ctx");
    l.str("call", VARIANTS[id].name)
        .u64("code", rc as u64)
        .hex("ctx_before", before_ctx)
        .hex("ctx_after", after_ctx)
        .hex("ctx", ctx);
    if dev >= 0 {
        l.i64("dev", dev);
    }
    emit(l);
    rc
}

pub(super) fn read_ptr(p: *mut Ptr, rc: CUresult) -> u64 {
    if rc == 0 && !p.is_null() {
        // SAFETY: the driver wrote the out-parameter on success.
        unsafe { *p as u64 }
    } else {
        0
    }
}
