//! libcuda: where each wrapper's real entry point comes from (through glibc's dlsym,
//! shim_rt::dl), and the two driver calls the shim makes itself (current context and device).

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use shim_proto::cuda::names::VARIANTS;
use shim_rt::dl::{RTLD_NEXT, set_once, sym_str};

use super::slots::SLOTS;
use super::{CUresult, Ptr};

static LIBCUDA: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// A handle on libcuda if the process has loaded it (never loads it).
fn libcuda() -> Ptr {
    let h = LIBCUDA.load(Ordering::Acquire);
    if !h.is_null() {
        return h;
    }
    for name in [c"libcuda.so.1", c"libcuda.so"] {
        // SAFETY: dlopen with RTLD_NOLOAD only returns an already loaded library.
        let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if !h.is_null() {
            if !set_once(&LIBCUDA, h) {
                // SAFETY: drop the extra reference of a racing lookup.
                unsafe { libc::dlclose(h) };
            }
            return LIBCUDA.load(Ordering::Acquire);
        }
    }
    core::ptr::null_mut()
}

/// libcuda's own symbol `name`: from the loaded libcuda, else the next object after the shim.
fn lookup_real(name: &str) -> Ptr {
    let h = libcuda();
    if !h.is_null() {
        // SAFETY: libcuda's handle, never closed.
        let p = unsafe { sym_str(h, name) };
        if !p.is_null() {
            return p;
        }
    }
    // SAFETY: a pseudo-handle.
    unsafe { sym_str(RTLD_NEXT, name) }
}

/// The real pointer a wrapper on path `S` forwards to.
#[inline(always)]
pub(super) fn real<const S: usize>(id: usize) -> Option<Ptr> {
    let p = SLOTS[S][id].load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    if S == 1 {
        return None;
    }
    resolve(&SLOTS[0][id], VARIANTS[id].name)
}

/// An empty `slot` on first use: libcuda's `name`, stored once (a racing lookup stores the
/// same pointer).
#[cold]
fn resolve(slot: &AtomicPtr<c_void>, name: &str) -> Option<Ptr> {
    let p = lookup_real(name);
    if p.is_null() {
        return None;
    }
    set_once(slot, p);
    Some(slot.load(Ordering::Acquire))
}

/// Internal helpers the shim calls itself (never wrapped).
static CTX_GET_CURRENT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static CTX_GET_DEVICE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

fn internal(slot: &AtomicPtr<c_void>, name: &str) -> Option<Ptr> {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    resolve(slot, name)
}

/// The context current on this thread (0 when none or the driver is not initialised).
pub(super) fn current_ctx() -> u64 {
    let Some(f) = internal(&CTX_GET_CURRENT, "cuCtxGetCurrent") else {
        return 0;
    };
    let mut ctx: Ptr = core::ptr::null_mut();
    // SAFETY: libcuda's cuCtxGetCurrent, of this type: CUresult cuCtxGetCurrent(CUcontext*).
    let f: unsafe extern "C" fn(*mut Ptr) -> CUresult = unsafe { core::mem::transmute(f) };
    // SAFETY: it writes one context handle into `ctx`.
    if unsafe { f(&mut ctx) } == 0 {
        ctx as u64
    } else {
        0
    }
}

/// The device of the current context (-1 when none).
pub(super) fn current_device() -> i32 {
    let Some(f) = internal(&CTX_GET_DEVICE, "cuCtxGetDevice") else {
        return -1;
    };
    let mut dev: c_int = -1;
    // SAFETY: libcuda's cuCtxGetDevice, of this type: CUresult cuCtxGetDevice(CUdevice*).
    let f: unsafe extern "C" fn(*mut c_int) -> CUresult = unsafe { core::mem::transmute(f) };
    // SAFETY: it writes one device ordinal into `dev`.
    if unsafe { f(&mut dev) } == 0 { dev } else { -1 }
}
