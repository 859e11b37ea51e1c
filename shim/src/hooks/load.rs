//! Load and unload: the state is set up when the shim is loaded, and the stats and final peaks
//! are written at exit.

use std::sync::atomic::Ordering;

use shim_proto::cuda::names::VARIANTS;

use shim_proto::cuda::ledger::word;

use super::ledger::ledger;
use super::slots::FP_CALLS;
use super::state::{STATE, event, state};

#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_load() {
    state();
}

/// At exit: calls per variant, peaks, and dropped events (the ledger's figures, also written
/// as lines for a process that ends through its exit handlers).
#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_unload() {
    let Some(s) = STATE.get() else { return };
    let led = ledger();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    if led.owner() != 0 && led.owner() != pid {
        // Forked without exec: its calls are in its parent's ledger, reported there.
        return;
    }
    led.mark_exited();
    let mut l = event("stats");
    l.begin_object("calls");
    for (i, v) in VARIANTS.iter().enumerate() {
        let n = led.calls(i);
        if n > 0 {
            l.u64(v.name, n);
        }
    }
    l.end_object();
    l.u64("dropped", led.get(word::DROPPED))
        .u64("injected_total", led.get(word::INJECTED))
        .u64("ctx_noops", led.get(word::CTX_NOOPS))
        .u64("failpoint_calls", FP_CALLS.load(Ordering::Relaxed));
    s.sink.write(l.finish());
    // try_lock: a thread stopped inside an allocation at exit must not hang the exit.
    if let Some(acct) = &s.acct
        && let Ok(a) = acct.try_lock()
    {
        for (dev, u) in a.devices() {
            let mut l = event("peak");
            l.i64("dev", *dev as i64)
                .u64("bytes", u.peak)
                .u64("used", u.used)
                .bool("final", true);
            s.sink.write(l.finish());
        }
    }
}

shim_rt::on_load_and_exit!(on_load, on_unload);
