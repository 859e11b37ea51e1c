//! The real libnvidia-ml: glibc's own dlsym, the library's handle, and one slot per exported
//! function holding the real function it forwards to (set once, from the program's own dlsym
//! or looked up on first use).

use core::ffi::{c_char, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::exports::{Fid, N_FN, NAMES};

pub type Ptr = *mut c_void;
pub type DlsymFn = unsafe extern "C" fn(Ptr, *const c_char) -> Ptr;

pub const RTLD_NEXT: Ptr = -1isize as Ptr;
pub const RTLD_DEFAULT: Ptr = core::ptr::null_mut();

static SLOTS: [AtomicPtr<c_void>; N_FN] = [const { AtomicPtr::new(core::ptr::null_mut()) }; N_FN];
static REAL_DLSYM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
/// The real library's handle (as an address; 0 when there is none), opened once.
static LIB: OnceLock<usize> = OnceLock::new();

unsafe extern "C" fn null_dlsym(_: Ptr, _: *const c_char) -> Ptr {
    core::ptr::null_mut()
}

/// glibc's dlsym, found with dlvsym (which is not hooked): 2.34 moved dlsym into libc with a
/// new version; 2.2.5 is the x86_64 base version, 2.17 the aarch64 one.
pub extern "C" fn real_dlsym_addr() -> *const c_void {
    let p = REAL_DLSYM.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    let mut found: Ptr = core::ptr::null_mut();
    for ver in [c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"] {
        // SAFETY: dlvsym with valid C strings.
        found = unsafe { libc::dlvsym(RTLD_NEXT, c"dlsym".as_ptr(), ver.as_ptr()) };
        if !found.is_null() {
            break;
        }
    }
    if found.is_null() {
        return null_dlsym as *const c_void;
    }
    REAL_DLSYM.store(found, Ordering::Release);
    found
}

pub fn real_dlsym() -> DlsymFn {
    // SAFETY: real_dlsym_addr returns glibc's dlsym or null_dlsym, both of this type.
    unsafe { core::mem::transmute::<*const c_void, DlsymFn>(real_dlsym_addr()) }
}

/// `name` (NUL-terminated) in `handle`, through glibc's dlsym.
pub fn sym(handle: Ptr, name: &core::ffi::CStr) -> Ptr {
    // SAFETY: a valid handle (or pseudo-handle) and a C string.
    unsafe { real_dlsym()(handle, name.as_ptr()) }
}

/// The real libnvidia-ml's handle: `GPU_DOCTOR_NVML_REAL` or `libnvidia-ml.so.1`, opened once
/// (already loaded by the program in interpose mode). Null when there is none, or when the
/// name finds this very copy of the library (a copy named libnvidia-ml.so.1 without a
/// snapshot to serve).
fn library() -> Ptr {
    *LIB.get_or_init(|| open_library() as usize) as Ptr
}

fn open_library() -> Ptr {
    let name = crate::state::getenv(crate::proto::ENV_REAL)
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
    if crate::state::in_this_copy(sym(h, c"gpu_doctor_nvml_snapshot")) {
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
    let mut buf = [0u8; 96];
    let name = NAMES[f as usize].as_bytes();
    buf[..name.len()].copy_from_slice(name);
    let Ok(cname) = core::ffi::CStr::from_bytes_until_nul(&buf) else {
        return core::ptr::null_mut();
    };
    let p = sym(h, cname);
    if p.is_null() {
        return p;
    }
    set_once(f, p);
    SLOTS[f as usize].load(Ordering::Acquire)
}

/// Records the real pointer a program's dlsym found for `f`; false when another pointer is
/// there already (the program uses two NVML libraries: the second is handed out untouched).
pub fn set_once(f: Fid, p: Ptr) -> bool {
    match SLOTS[f as usize].compare_exchange(
        core::ptr::null_mut(),
        p,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => true,
        Err(cur) => cur == p,
    }
}

/// A function of the real library that has no slot (nvmlErrorString).
pub fn lookup<T: Copy>(name: &core::ffi::CStr) -> Option<T> {
    const { assert!(core::mem::size_of::<T>() == core::mem::size_of::<Ptr>()) };
    let h = library();
    if h.is_null() {
        return None;
    }
    let p = sym(h, name);
    // SAFETY: T is the function pointer type of the symbol.
    (!p.is_null()).then(|| unsafe { core::mem::transmute_copy::<Ptr, T>(&p) })
}
