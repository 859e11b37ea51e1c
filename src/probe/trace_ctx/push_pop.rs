//! push-pop: the per-thread context stack, pushed and popped out of balance.

use anyhow::{Result, anyhow};

use super::{Site, Spec, Tracer, create, destroy, pop, set_current};
use crate::facts::trace::PUSH_POP;
use crate::probe::cuda::{CUresult, sys};

use CUresult::{CUDA_ERROR_INVALID_CONTEXT as INVALID_CONTEXT, CUDA_SUCCESS as SUCCESS};

/// push-pop: stack depth on one thread, a pop too many, a pop on a thread that never pushed,
/// and a pop on a thread that bound its context with cuCtxSetCurrent.
pub fn push_pop(t: &Tracer, dev: sys::CUdevice) -> Result<bool> {
    let site = Site::sub(PUSH_POP);
    t.name_thread("main (scenario thread)");
    let mut made = Vec::new();
    for name in ["C1", "C2"] {
        let Some(c) = create(t, site, &format!("push-pop: create {name}"), dev, false) else {
            break;
        };
        t.describe(c, "created", dev, format!("push-pop {name}"));
        pop(
            t,
            site,
            Spec::new(
                format!("push-pop: pop {name} off the main thread (floating)"),
                "cuCtxPopCurrent_v2",
                &[SUCCESS],
            ),
        );
        made.push(c);
    }
    if made.len() < 2 {
        for c in made {
            destroy(t, site, "push-pop: destroy", c);
        }
        return Ok(false);
    }
    let (c1, c2) = (made[0], made[1]);
    let empty_note =
        "pop with an empty context stack: the documented answer is CUDA_ERROR_INVALID_CONTEXT";
    std::thread::scope(|s| {
        s.spawn(move || {
            t.name_thread("push-pop: pusher (push 2, pop 3)");
            for (c, n) in [(c1, 1), (c2, 2)] {
                t.call(
                    site,
                    Spec::new(
                        format!("push-pop: push C{n} (depth {n})"),
                        "cuCtxPushCurrent_v2",
                        &[SUCCESS],
                    )
                    .arg(c)
                    .step(),
                    // SAFETY: a live context.
                    || unsafe { sys::cuCtxPushCurrent_v2(c.0) },
                );
            }
            for n in [1, 0] {
                pop(
                    t,
                    site,
                    Spec::new(
                        format!("push-pop: pop (depth {n})"),
                        "cuCtxPopCurrent_v2",
                        &[SUCCESS],
                    )
                    .step(),
                );
            }
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: one pop too many",
                    "cuCtxPopCurrent_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note(empty_note),
            );
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))?;
        s.spawn(move || {
            t.name_thread("push-pop: never pushed");
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: pop on a thread that never pushed",
                    "cuCtxPopCurrent_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note(empty_note),
            );
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))?;
        s.spawn(move || {
            t.name_thread("push-pop: bound with cuCtxSetCurrent");
            set_current(t, site, "push-pop: bind C1 with cuCtxSetCurrent", c1, true);
            pop(
                t,
                site,
                Spec::new(
                    "push-pop: pop a context that was bound, not pushed",
                    "cuCtxPopCurrent_v2",
                    &[SUCCESS],
                )
                .step()
                .note("cuCtxSetCurrent on an empty stack pushes: the pop takes the binding away"),
            );
            let mut p: sys::CUdeviceptr = 0;
            t.call(
                site,
                Spec::new(
                    "push-pop: allocate after the binding was popped",
                    "cuMemAlloc_v2",
                    &[INVALID_CONTEXT],
                )
                .step()
                .note("the pop left the thread with no context"),
                // SAFETY: valid out-pointer.
                || unsafe { sys::cuMemAlloc_v2(&mut p, 4096) },
            );
            if p != 0 {
                // Only reached if the driver contradicted its documentation above.
                // SAFETY: p was just allocated in whatever context was current.
                unsafe { sys::cuMemFree_v2(p) };
            }
        })
        .join()
        .map_err(|_| anyhow!("push-pop thread panicked"))
    })?;
    destroy(t, site, "push-pop: destroy C1", c1);
    destroy(t, site, "push-pop: destroy C2", c2);
    Ok(true)
}
