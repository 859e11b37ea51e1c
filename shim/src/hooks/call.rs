//! Around every call: the re-entrancy guard, the failpoint before the real call, and the
//! failure record after it.

use std::sync::atomic::Ordering;

use shim_proto::cuda::names::VARIANTS;

use super::CUresult;
use super::ledger::ledger;
use super::libcuda::current_ctx;
use super::slots::{FAIL_EVENTS, FP_CALLS, FP_FIRED};
use super::state::{State, emit, event, state};
use shim_proto::cuda::ledger::word;

/// cuStreamQuery/cuEventQuery's "still running": not a failure.
const NOT_READY: CUresult = 600;
/// Failed-call events per process before they are only counted.
const MAX_FAIL_EVENTS: u64 = 10_000;

std::thread_local! {
    /// True while this thread is inside a wrapper: a driver whose entry points call its own
    /// exported functions through the PLT would otherwise reach our exports again and count,
    /// account and fail every call twice. Nested calls go straight to the real function.
    static INSIDE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

pub(super) struct Inside;

impl Inside {
    /// None when this thread is already inside a wrapper.
    #[inline(always)]
    pub(super) fn enter() -> Option<Inside> {
        INSIDE.with(|c| {
            if c.get() {
                None
            } else {
                c.set(true);
                Some(Inside)
            }
        })
    }
}

impl Drop for Inside {
    #[inline(always)]
    fn drop(&mut self) {
        INSIDE.with(|c| c.set(false));
    }
}

/// Before the real call: count it, and fire the failpoint when scheduled.
#[inline(always)]
pub(super) fn before(id: usize) -> Option<CUresult> {
    ledger().count(id);
    let s = state();
    if !s.armed[id] {
        return None;
    }
    fire(s, id)
}

#[cold]
fn fire(s: &State, id: usize) -> Option<CUresult> {
    let fp = s.config.fail.as_ref()?;
    let n = FP_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    if !fp.schedule.fires(n) {
        return None;
    }
    let fired = FP_FIRED.fetch_add(1, Ordering::Relaxed);
    if fp.schedule.times > 0 && fired >= fp.schedule.times {
        return None;
    }
    if fp.delay_us > 0 {
        let mut l = event("delay");
        l.str("call", VARIANTS[id].name)
            .u64("index", n)
            .u64("delay_us", fp.delay_us);
        emit(l);
        std::thread::sleep(std::time::Duration::from_micros(fp.delay_us));
    }
    if fp.code == 0 {
        return None;
    }
    ledger().add(word::INJECTED, 1);
    if event_budget() {
        let mut l = event("fail");
        l.str("call", VARIANTS[id].name)
            .u64("code", fp.code as u64)
            .bool("injected", true)
            .u64("index", n)
            .hex("ctx", current_ctx());
        emit(l);
    }
    Some(fp.code)
}

/// Whether another failure event may be written (else it is only counted as dropped).
pub(super) fn event_budget() -> bool {
    if FAIL_EVENTS.fetch_add(1, Ordering::Relaxed) >= MAX_FAIL_EVENTS {
        ledger().add(word::DROPPED, 1);
        false
    } else {
        true
    }
}

/// The real call with nothing configured around it: its failure recorded.
#[inline(always)]
pub(super) fn passthrough(id: usize, call: impl FnOnce() -> CUresult) -> CUresult {
    let rc = call();
    after(id, rc);
    rc
}

/// After the real call: record a failure.
#[inline(always)]
pub(super) fn after(id: usize, rc: CUresult) {
    if rc != 0 && rc != NOT_READY {
        failed(id, rc);
    }
}

#[cold]
fn failed(id: usize, rc: CUresult) {
    if !event_budget() {
        return;
    }
    let mut l = event("fail");
    l.str("call", VARIANTS[id].name)
        .u64("code", rc as u64)
        .bool("injected", false)
        .hex("ctx", current_ctx());
    emit(l);
}
