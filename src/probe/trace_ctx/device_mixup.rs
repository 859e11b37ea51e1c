//! device-mixup: code meant for context A allocates while context B is current.

use std::ffi::c_void;

use anyhow::Result;

use super::{RawCtx, Site, Spec, Tracer, create, destroy, pop, set_current};
use crate::facts::trace::{DEVICE_MIXUP, MixupCase, MixupFacts};
use crate::probe::cuda::{CUresult, current_context, sys};

use CUresult::CUDA_SUCCESS as SUCCESS;

fn device_of_current(t: &Tracer, site: Site, what: &str) -> Option<i32> {
    let mut d: sys::CUdevice = -1;
    // SAFETY: valid out-pointer.
    let rc = t.call(
        site,
        Spec::new(what, "cuCtxGetDevice", &[SUCCESS]),
        || unsafe { sys::cuCtxGetDevice(&mut d) },
    );
    (rc == SUCCESS).then_some(d)
}

/// One device-mixup step: cuPointerGetAttribute(`attr`) on the device pointer `p` into `out`
/// (the attribute's name is the step's note). Whether it succeeded.
///
/// # Safety
/// `out` must point to a value of the type the driver writes for `attr`.
unsafe fn pointer_attribute(
    t: &Tracer,
    what: String,
    attr: sys::CUpointer_attribute,
    out: *mut c_void,
    p: sys::CUdeviceptr,
) -> bool {
    let spec = Spec::new(what, "cuPointerGetAttribute", &[SUCCESS])
        .step()
        .note(format!("{attr:?}"));
    // SAFETY: `out` fits `attr` (the caller's promise); p is a device pointer.
    t.call(Site::sub(DEVICE_MIXUP), spec, || unsafe {
        sys::cuPointerGetAttribute(out, attr, p)
    }) == SUCCESS
}

/// Allocates with whatever context is current and asks the driver where the memory landed.
fn alloc_and_locate(
    t: &Tracer,
    case: &str,
    intended: (RawCtx, i32),
    deliberate: bool,
) -> (MixupCase, Option<sys::CUdeviceptr>) {
    let site = Site::sub(DEVICE_MIXUP);
    let current = RawCtx(current_context());
    let current_device = device_of_current(
        t,
        site,
        &format!("device-mixup ({case}): which device is current"),
    );
    let mut p: sys::CUdeviceptr = 0;
    let rc = t.call(
        site,
        Spec::new(
            format!("device-mixup ({case}): allocate memory meant for context A"),
            "cuMemAlloc_v2",
            &[SUCCESS],
        )
        .step()
        .note(if deliberate {
            "succeeds: the driver allocates in whatever context is current, and nothing tells the caller"
        } else {
            "the intended context is current"
        }),
        // SAFETY: valid out-pointer.
        || unsafe { sys::cuMemAlloc_v2(&mut p, 1 << 20) },
    );
    let mut case_facts = MixupCase {
        case: case.into(),
        deliberate,
        intended_ctx: t.id(intended.0).unwrap_or_default(),
        intended_device: intended.1,
        current_ctx: t.id(current),
        current_device,
        landed_ctx: None,
        landed_device: None,
        pointer: format!("{p:#x}"),
    };
    if rc != SUCCESS {
        return (case_facts, None);
    }
    let mut owner: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: CONTEXT writes one CUcontext.
    if unsafe {
        pointer_attribute(
            t,
            format!("device-mixup ({case}): which context owns the pointer"),
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
            (&mut owner as *mut sys::CUcontext).cast(),
            p,
        )
    } {
        case_facts.landed_ctx = t.id(RawCtx(owner));
    }
    let mut ordinal: i32 = -1;
    // SAFETY: DEVICE_ORDINAL writes one int.
    if unsafe {
        pointer_attribute(
            t,
            format!("device-mixup ({case}): which device holds the pointer"),
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            (&mut ordinal as *mut i32).cast(),
            p,
        )
    } {
        case_facts.landed_device = Some(ordinal);
    }
    (case_facts, Some(p))
}

/// device-mixup on the calling thread: A and B are two GPUs (`two-gpus`) or two contexts on one
/// GPU (`two-contexts`). B is initialised last and stays current; code meant for A allocates.
pub fn device_mixup(
    t: &Tracer,
    a: (u32, sys::CUdevice),
    b: (u32, sys::CUdevice),
) -> Result<Option<MixupFacts>> {
    let site = Site::sub(DEVICE_MIXUP);
    t.name_thread("main (scenario thread)");
    let mode = if a.1 != b.1 {
        "two-gpus"
    } else {
        "two-contexts"
    };
    let Some(ca) = create(t, site, "device-mixup: create context A", a.1, true) else {
        return Ok(None);
    };
    t.describe(ca, "created", a.1, format!("device-mixup A (GPU {})", a.0));
    pop(
        t,
        site,
        Spec::new(
            "device-mixup: pop A (A stays alive, floating)",
            "cuCtxPopCurrent_v2",
            &[SUCCESS],
        ),
    );
    let Some(cb) = create(
        t,
        site,
        "device-mixup: create context B, which stays current",
        b.1,
        true,
    ) else {
        destroy(t, site, "device-mixup: destroy A", ca);
        return Ok(None);
    };
    t.describe(cb, "created", b.1, format!("device-mixup B (GPU {})", b.0));

    let (wrong, p_wrong) = alloc_and_locate(t, "B left current", (ca, a.1), true);
    set_current(
        t,
        site,
        "device-mixup (A bound first): make A current before A's work",
        ca,
        true,
    );
    let (right, p_right) = alloc_and_locate(t, "A bound first", (ca, a.1), false);

    // Free each allocation with its own context current, then destroy both.
    for (p, owner, name) in [(p_wrong, cb, "B"), (p_right, ca, "A")] {
        if let Some(p) = p {
            set_current(
                t,
                site,
                &format!("device-mixup: bind {name} to free"),
                owner,
                false,
            );
            t.call(
                site,
                Spec::new(
                    format!("device-mixup: free the allocation that landed in {name}"),
                    "cuMemFree_v2",
                    &[SUCCESS],
                ),
                // SAFETY: p belongs to the now-current context.
                || unsafe { sys::cuMemFree_v2(p) },
            );
        }
    }
    set_current(t, site, "device-mixup: unbind", RawCtx::null(), false);
    destroy(t, site, "device-mixup: destroy B", cb);
    destroy(t, site, "device-mixup: destroy A", ca);
    Ok(Some(MixupFacts {
        mode: mode.into(),
        nvml: vec![a.0, b.0],
        cases: vec![wrong, right],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_attribute_notes_name_the_attribute() {
        for (attr, note) in [
            (
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_CONTEXT,
                "CU_POINTER_ATTRIBUTE_CONTEXT",
            ),
            (
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                "CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL",
            ),
        ] {
            assert_eq!(format!("{attr:?}"), note);
        }
    }
}
