//! `trace ctx`: the raw driver sequences. Every call goes through [`Tracer::call`], which asks
//! cuCtxGetCurrent before and after, times the call, names contexts with stable short ids
//! (`ctx#1`), and appends a [`TraceEvent`] to the timeline; calls that matter are also report
//! steps (announced to the parent when isolated).
//!
//! Calls never overlap: the scenario thread hands one call sequence at a time to one worker
//! and waits for it, so the timeline — and the failure — is the same on every run.
//!
//! [`Tracer`] (tracer.rs) records the calls; one file per sub-scenario holds its sequence.
//! Context calls every sequence makes are here.
//!
//! [`TraceEvent`]: crate::facts::trace::TraceEvent

mod device_mixup;
mod pool;
mod primary_lifetime;
mod push_pop;
mod thread_hop;
mod tracer;

pub use device_mixup::device_mixup;
pub use pool::Pool;
pub use primary_lifetime::primary_lifetime;
pub use push_pop::push_pop;
pub use thread_hop::thread_hop;
pub use tracer::{RawCtx, Site, Spec, Tracer};

use crate::probe::cuda::{CUresult, sys};

use CUresult::CUDA_SUCCESS as SUCCESS;

/// cuCtxCreate_v2 on the calling thread (the new context becomes current: pushed).
fn create(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice, step: bool) -> Option<RawCtx> {
    let mut spec = Spec::new(what, "cuCtxCreate_v2", &[SUCCESS]);
    spec.step = step;
    let mut made = RawCtx::null();
    let rc = t.call_out(site, spec, |out| {
        // SAFETY: valid out-pointer, device from cuDeviceGet*.
        let rc = unsafe { sys::cuCtxCreate_v2(out, 0, dev) };
        made = RawCtx(*out);
        rc
    });
    (rc == SUCCESS && !made.is_null()).then_some(made)
}

fn set_current(t: &Tracer, site: Site, what: &str, c: RawCtx, step: bool) -> CUresult {
    let mut spec = Spec::new(what, "cuCtxSetCurrent", &[SUCCESS]);
    spec.step = step;
    if !c.is_null() {
        spec = spec.arg(c);
    }
    // SAFETY: a live context handle or null (unbind).
    t.call(site, spec, || unsafe { sys::cuCtxSetCurrent(c.0) })
}

fn destroy(t: &Tracer, site: Site, what: &str, c: RawCtx) -> CUresult {
    // SAFETY: a context this scenario created and no longer uses.
    let rc = t.call(
        site,
        Spec::new(what, "cuCtxDestroy_v2", &[SUCCESS]).arg(c),
        || unsafe { sys::cuCtxDestroy_v2(c.0) },
    );
    if rc == SUCCESS {
        t.retire(c);
    }
    rc
}

fn pop(t: &Tracer, site: Site, spec: Spec) -> CUresult {
    // SAFETY: valid out-pointer.
    t.call_out(site, spec, |out| unsafe { sys::cuCtxPopCurrent_v2(out) })
}
