//! primary-lifetime: two users of one device's primary context, one of which releases it too
//! often.

use std::ffi::c_void;

use anyhow::Result;

use super::{Pool, RawCtx, Site, Spec, Tracer, set_current};
use crate::facts::trace::{PRIMARY_LIFETIME, PrimaryFacts, PrimaryState};
use crate::probe::cuda::{CUresult, code, sys};

use CUresult::{
    CUDA_ERROR_CONTEXT_IS_DESTROYED as DESTROYED, CUDA_ERROR_INVALID_CONTEXT as INVALID_CONTEXT,
    CUDA_ERROR_INVALID_HANDLE as INVALID_HANDLE, CUDA_ERROR_INVALID_VALUE as INVALID_VALUE,
    CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE as PRIMARY_ACTIVE, CUDA_SUCCESS as SUCCESS,
};

fn get_state(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice) -> Option<PrimaryState> {
    let (mut flags, mut active) = (0u32, 0i32);
    // SAFETY: valid out-pointers.
    let rc = t.call(
        site,
        Spec::new(what, "cuDevicePrimaryCtxGetState", &[SUCCESS]).step(),
        || unsafe { sys::cuDevicePrimaryCtxGetState(dev, &mut flags, &mut active) },
    );
    (rc == SUCCESS).then_some(PrimaryState {
        flags,
        active: active != 0,
    })
}

fn retain(t: &Tracer, site: Site, what: &str, dev: sys::CUdevice) -> Option<RawCtx> {
    let mut got = RawCtx::null();
    let rc = t.call_out(
        site,
        Spec::new(what, "cuDevicePrimaryCtxRetain", &[SUCCESS]).step(),
        |out| {
            // SAFETY: valid out-pointer.
            let rc = unsafe { sys::cuDevicePrimaryCtxRetain(out, dev) };
            got = RawCtx(*out);
            rc
        },
    );
    (rc == SUCCESS && !got.is_null()).then_some(got)
}

fn release(t: &Tracer, site: Site, spec: Spec, dev: sys::CUdevice) -> CUresult {
    // SAFETY: plain call on a valid device.
    t.call(site, spec, || unsafe {
        sys::cuDevicePrimaryCtxRelease_v2(dev)
    })
}

/// primary-lifetime: two users ("library A", "library B") of one device's primary context.
pub fn primary_lifetime(
    t: &Tracer,
    dev: sys::CUdevice,
    nvml: u32,
    driver_version: i32,
) -> Result<PrimaryFacts> {
    let site = Site::sub(PRIMARY_LIFETIME);
    let requested = sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC as u32;
    let mut f = PrimaryFacts {
        device: dev,
        nvml,
        driver_version,
        initial: None,
        after_retain: None,
        same_handle: None,
        requested_flags: requested,
        set_flags_while_active: None,
        state_after_set_flags: None,
        ctx_flags_after_set: None,
        state_after_release_to_zero: None,
        use_after_release_call: "cuMemcpyDtoH_v2".into(),
        use_after_release: None,
        over_release: None,
        fixed_use: None,
        final_state: None,
    };
    let names = vec![
        "primary: library A".to_string(),
        "primary: library B".to_string(),
    ];
    std::thread::scope(|s| -> Result<()> {
        let pool = Pool::spawn(s, t, names);
        let (initial, pa) = pool.run(0, move || {
            let initial = get_state(t, site, "primary: state before anyone retains it", dev);
            let pa = retain(t, site, "primary: library A retains (count 1)", dev);
            (initial, pa)
        })?;
        f.initial = initial;
        let Some(pa) = pa else { return Ok(()) };
        t.describe(
            pa,
            "primary",
            dev,
            format!("primary context of device {dev}"),
        );
        let (after, pb, buf) = pool.run(1, move || {
            let after = get_state(t, site, "primary: state after A's retain", dev);
            let pb = retain(t, site, "primary: library B retains (count 2)", dev);
            let mut buf: sys::CUdeviceptr = 0;
            if let Some(pb) = pb {
                set_current(t, site, "primary: B binds the primary context", pb, true);
                let rc = t.call(
                    site,
                    Spec::new(
                        "primary: B allocates and keeps the pointer",
                        "cuMemAlloc_v2",
                        &[SUCCESS],
                    )
                    .step(),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuMemAlloc_v2(&mut buf, 1 << 20) },
                );
                if rc == SUCCESS {
                    t.call(
                        site,
                        Spec::new("primary: B writes its buffer", "cuMemsetD32_v2", &[SUCCESS]),
                        // SAFETY: buf is 1 MiB in the current context.
                        || unsafe { sys::cuMemsetD32_v2(buf, 7, (1 << 20) / 4) },
                    );
                } else {
                    buf = 0;
                }
            }
            (after, pb, buf)
        })?;
        f.after_retain = after;
        f.same_handle = pb.map(|pb| pb == pa);
        // SetFlags while active (A's thread), then what the state and the running context say.
        let (rc, st) = pool.run(0, move || {
            let rc = t.call(
                site,
                Spec::new(
                    "primary: A sets CU_CTX_SCHED_BLOCKING_SYNC while the context is active",
                    "cuDevicePrimaryCtxSetFlags_v2",
                    &[SUCCESS, PRIMARY_ACTIVE],
                )
                .step()
                .note("a widely repeated claim says flags must be set before the primary context exists; the answer recorded is this driver's"),
                // SAFETY: plain call on a valid device.
                || unsafe { sys::cuDevicePrimaryCtxSetFlags_v2(dev, requested) },
            );
            (rc, get_state(t, site, "primary: state after SetFlags", dev))
        })?;
        f.set_flags_while_active = Some(code(rc));
        f.state_after_set_flags = st;
        if pb.is_some() {
            f.ctx_flags_after_set = pool.run(1, move || {
                let mut flags = 0u32;
                let rc = t.call(
                    site,
                    Spec::new(
                        "primary: B reads the running context's flags",
                        "cuCtxGetFlags",
                        &[SUCCESS],
                    )
                    .step(),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuCtxGetFlags(&mut flags) },
                );
                (rc == SUCCESS).then_some(flags)
            })?;
        }
        // A releases its retain, then once more by mistake: the count reaches zero under B.
        let zero = pool.run(0, move || {
            release(
                t,
                site,
                Spec::new(
                    "primary: A releases its retain (count 1)",
                    "cuDevicePrimaryCtxRelease_v2",
                    &[SUCCESS],
                )
                .step(),
                dev,
            );
            release(
                t,
                site,
                Spec::new(
                    "primary: A releases again by mistake (count 0: the context is reset)",
                    "cuDevicePrimaryCtxRelease_v2",
                    &[SUCCESS],
                )
                .step()
                .note("the count was 2 (A and B): the second release by A takes it to zero"),
                dev,
            );
            get_state(t, site, "primary: state after the count reached zero", dev)
        })?;
        f.state_after_release_to_zero = zero;
        if pb.is_some() {
            let (used, over) = pool.run(1, move || {
                let mut used = None;
                if buf != 0 {
                    let mut host = vec![0u32; 1024];
                    let hp = host.as_mut_ptr() as *mut c_void;
                    let rc = t.call(
                        site,
                        Spec::new(
                            "primary: B reads its old pointer after the release to zero",
                            "cuMemcpyDtoH_v2",
                            &[INVALID_CONTEXT, DESTROYED, INVALID_HANDLE, INVALID_VALUE],
                        )
                        .step()
                        .note("the context was reset with B's memory in it: documented outcomes are an invalid/destroyed context or an invalid pointer"),
                        // SAFETY: host holds 4 KiB; the driver validates buf (that is the point).
                        || unsafe { sys::cuMemcpyDtoH_v2(hp, buf, 4096) },
                    );
                    used = Some(rc);
                }
                let over = release(
                    t,
                    site,
                    Spec::new(
                        "primary: B releases its own retain, after the count already reached zero",
                        "cuDevicePrimaryCtxRelease_v2",
                        &[INVALID_CONTEXT, SUCCESS],
                    )
                    .step()
                    .note("releasing a primary context that is not retained"),
                    dev,
                );
                set_current(t, site, "primary: B unbinds the reset context", RawCtx::null(), false);
                (used, over)
            })?;
            f.use_after_release = used.map(code);
            f.over_release = Some(code(over));
        }
        // The fix: one retain for the whole process, held until every user is done.
        let held = pool.run(0, move || {
            retain(
                t,
                site,
                "primary (fixed): the process retains once, at start-up",
                dev,
            )
        })?;
        if let Some(held) = held {
            f.fixed_use = Some(code(pool.run(1, move || {
                set_current(
                    t,
                    site,
                    "primary (fixed): B binds the primary context",
                    held,
                    false,
                );
                let mut p: sys::CUdeviceptr = 0;
                let mut rc = t.call(
                    site,
                    Spec::new("primary (fixed): B allocates", "cuMemAlloc_v2", &[SUCCESS]),
                    // SAFETY: valid out-pointer.
                    || unsafe { sys::cuMemAlloc_v2(&mut p, 1 << 20) },
                );
                if rc == SUCCESS {
                    let mut host = vec![0u32; 1024];
                    let hp = host.as_mut_ptr() as *mut c_void;
                    rc = t.call(
                        site,
                        Spec::new(
                            "primary (fixed): B reads its pointer",
                            "cuMemcpyDtoH_v2",
                            &[SUCCESS],
                        )
                        .step(),
                        // SAFETY: host holds 4 KiB, p 1 MiB.
                        || unsafe { sys::cuMemcpyDtoH_v2(hp, p, 4096) },
                    );
                    t.call(
                        site,
                        Spec::new("primary (fixed): B frees", "cuMemFree_v2", &[SUCCESS]),
                        // SAFETY: allocated above in the current context.
                        || unsafe { sys::cuMemFree_v2(p) },
                    );
                }
                set_current(t, site, "primary (fixed): B unbinds", RawCtx::null(), false);
                rc
            })?));
            pool.run(0, move || {
                release(
                    t,
                    site,
                    Spec::new(
                        "primary (fixed): the process releases once, at exit",
                        "cuDevicePrimaryCtxRelease_v2",
                        &[SUCCESS],
                    )
                    .step(),
                    dev,
                );
            })?;
        }
        // Leave the flags as found (inactive context: always allowed).
        let initial_flags = f.initial.map(|s| s.flags).unwrap_or(0);
        f.final_state = pool.run(0, move || {
            t.call(
                site,
                Spec::new(
                    "primary: restore the original flags",
                    "cuDevicePrimaryCtxSetFlags_v2",
                    &[SUCCESS],
                ),
                // SAFETY: plain call on a valid device.
                || unsafe { sys::cuDevicePrimaryCtxSetFlags_v2(dev, initial_flags) },
            );
            get_state(t, site, "primary: final state", dev)
        })?;
        Ok(())
    })?;
    Ok(f)
}
