//! The real libnvidia-ml: the library's handle, and one slot per exported function holding
//! the real function it forwards to (set once, from the program's own dlsym or looked up on
//! first use, through glibc's dlsym: shim_rt::dl).

use core::ffi::c_void;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use shim_rt::dl::{Ptr, sym, sym_str};

use crate::exports::{Fid, N_FN, NAMES};

static SLOTS: [AtomicPtr<c_void>; N_FN] = [const { AtomicPtr::new(core::ptr::null_mut()) }; N_FN];
/// The real library's handle (as an address; 0 when there is none), opened once.
static LIB: OnceLock<usize> = OnceLock::new();

/// The real libnvidia-ml's handle: `GPU_DOCTOR_NVML_REAL` or `libnvidia-ml.so.1`, opened once
/// (already loaded by the program in interpose mode). Null when there is none, or when the
/// name finds this very copy of the library (a copy named libnvidia-ml.so.1 without a
/// snapshot to serve).
fn library() -> Ptr {
    *LIB.get_or_init(|| open_library() as usize) as Ptr
}

fn open_library() -> Ptr {
    let name = shim_rt::process::getenv(crate::proto::ENV_REAL)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "libnvidia-ml.so.1".into());
    let Ok(cname) = std::ffi::CString::new(name.clone()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
    let h = unsafe { libc::dlopen(cname.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if h.is_null() {
        crate::state::warn_once(&format!(
            "cannot load the real NVML library {name} (set {} or {})",
            crate::proto::ENV_REAL,
            crate::proto::ENV_REPLAY
        ));
        return h;
    }
    // SAFETY: the handle dlopen has just returned, never closed.
    if crate::state::in_this_copy(unsafe { sym(h, c"gpu_doctor_nvml_snapshot") }) {
        crate::state::warn_once(&format!(
            "{name} is this library itself: nothing to forward to (set {} to a snapshot, or {} to the real library)",
            crate::proto::ENV_REPLAY,
            crate::proto::ENV_REAL
        ));
        return core::ptr::null_mut();
    }
    h
}

/// The real function behind `f`, as type `T` (its C signature), if the library has it.
#[inline(always)]
pub fn func<T: Copy>(f: Fid) -> Option<T> {
    const { assert!(core::mem::size_of::<T>() == core::mem::size_of::<Ptr>()) };
    let mut p = SLOTS[f as usize].load(Ordering::Acquire);
    if p.is_null() {
        p = resolve(f);
        if p.is_null() {
            return None;
        }
    }
    // SAFETY: T is the function pointer type of the symbol (the exports' signatures).
    Some(unsafe { core::mem::transmute_copy::<Ptr, T>(&p) })
}

#[cold]
fn resolve(f: Fid) -> Ptr {
    let h = library();
    if h.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the real library's handle, never closed.
    let p = unsafe { sym_str(h, NAMES[f as usize]) };
    if p.is_null() {
        return p;
    }
    set_once(f, p);
    SLOTS[f as usize].load(Ordering::Acquire)
}

/// Records the real pointer a program's dlsym found for `f`; false when another pointer is
/// there already (the program uses two NVML libraries: the second is handed out untouched).
pub fn set_once(f: Fid, p: Ptr) -> bool {
    shim_rt::dl::set_once(&SLOTS[f as usize], p)
}

/// A function of the real library that has no slot (nvmlErrorString).
pub fn lookup<T: Copy>(name: &core::ffi::CStr) -> Option<T> {
    const { assert!(core::mem::size_of::<T>() == core::mem::size_of::<Ptr>()) };
    let h = library();
    if h.is_null() {
        return None;
    }
    // SAFETY: the real library's handle, never closed.
    let p = unsafe { sym(h, name) };
    // SAFETY: T is the function pointer type of the symbol.
    (!p.is_null()).then(|| unsafe { core::mem::transmute_copy::<Ptr, T>(&p) })
}
