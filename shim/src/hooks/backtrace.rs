//! The native call site of an allocation (`leak-check`): return addresses only, taken with the
//! unwinder the C++ runtime and Rust's panics use (`_Unwind_Backtrace` from libgcc_s, which
//! std links already). It reads unwind tables, so it works in code built without frame
//! pointers (the CUDA runtime, PyTorch, most distributions' libraries), allocates nothing, and
//! costs a few hundred nanoseconds for a handful of frames: paid only with `leaks=1`, on
//! allocation calls. Symbols are resolved afterwards by gpu-doctor, never here.

use core::ffi::{c_int, c_void};

/// Frames taken before the shim's own are left out: its wrappers are at most this deep.
const SHIM_FRAMES: usize = 8;
/// The most frames taken at all.
pub(super) const MAX: usize = SHIM_FRAMES + shim_proto::cuda::config::MAX_FRAMES as usize;

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

const URC_NO_REASON: c_int = 0;
const URC_END_OF_STACK: c_int = 5;

/// Return addresses, innermost first.
pub(super) struct Frames {
    pub(super) ips: [u64; MAX],
    pub(super) n: usize,
    limit: usize,
}

extern "C" fn collect(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the &mut Frames passed to _Unwind_Backtrace below, alive for its call.
    let f = unsafe { &mut *(arg as *mut Frames) };
    if f.n >= f.limit {
        return URC_END_OF_STACK;
    }
    // SAFETY: `ctx` is the unwinder's context for the frame being visited.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    f.ips[f.n] = ip;
    f.n += 1;
    URC_NO_REASON
}

/// Up to `want` frames past the shim's own (at most [`SHIM_FRAMES`] of which are taken and
/// dropped by the caller, which knows where the shim is mapped).
#[inline(never)]
pub(super) fn capture(want: usize) -> Frames {
    let mut f = Frames {
        ips: [0; MAX],
        n: 0,
        limit: (SHIM_FRAMES + want).min(MAX),
    };
    // SAFETY: `collect` only writes into `f` within its bounds; the unwinder walks this thread's
    // own stack.
    unsafe { _Unwind_Backtrace(collect, &mut f as *mut Frames as *mut c_void) };
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn two_deep() -> Frames {
        capture(6)
    }

    #[test]
    fn captures_this_stack() {
        let f = two_deep();
        assert!(
            f.n >= 3,
            "at least capture, two_deep and this test: {}",
            f.n
        );
        assert!(f.n <= SHIM_FRAMES + 6);
        let here = captures_this_stack as *const () as u64;
        assert!(
            f.ips[..f.n].iter().any(|&ip| ip > here && ip < here + 4096),
            "a return address inside this test function"
        );
    }
}
