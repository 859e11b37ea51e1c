//! The dynamic loader as the shims use it: glibc's own `dlsym` (the exported one is ours),
//! symbol lookups through it, write-once slots for the real functions found, and the items a
//! shim must emit itself — its `dlsym` export ([`dlsym_export!`]) and its load/exit hooks
//! ([`on_load_and_exit!`]).

use core::ffi::{CStr, c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

pub type Ptr = *mut c_void;
pub type DlsymFn = unsafe extern "C" fn(Ptr, *const c_char) -> Ptr;

/// dlfcn.h's pseudo-handles.
pub const RTLD_NEXT: Ptr = -1isize as Ptr;
pub const RTLD_DEFAULT: Ptr = core::ptr::null_mut();

static REAL_DLSYM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

unsafe extern "C" fn null_dlsym(_: Ptr, _: *const c_char) -> Ptr {
    core::ptr::null_mut()
}

/// glibc's dlsym, found with dlvsym (which is not hooked): 2.34 moved dlsym into libc with a
/// new version; 2.2.5 is the x86_64 base version, 2.17 the aarch64 one. `extern "C"`: the
/// `dlsym` trampolines call it from assembly.
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

/// `name` in `handle`, through glibc's dlsym (RTLD_NEXT: the objects after the calling shim).
///
/// # Safety
/// `handle` is a pseudo-handle or a handle from `dlopen` that is still open.
pub unsafe fn sym(handle: Ptr, name: &CStr) -> Ptr {
    // SAFETY: a valid handle (the caller's promise) and a C string.
    unsafe { real_dlsym()(handle, name.as_ptr()) }
}

/// [`sym`] for a name without its NUL (the shims' tables); null for a name too long.
///
/// # Safety
/// As [`sym`].
pub unsafe fn sym_str(handle: Ptr, name: &str) -> Ptr {
    let mut buf = [0u8; 96];
    if name.len() >= buf.len() {
        return core::ptr::null_mut();
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    match CStr::from_bytes_until_nul(&buf) {
        // SAFETY: the caller's handle.
        Ok(cname) => unsafe { sym(handle, cname) },
        Err(_) => core::ptr::null_mut(),
    }
}

/// Stores `p` in an empty `slot`; true when the slot holds `p` now (false: another pointer
/// was there first).
pub fn set_once(slot: &AtomicPtr<c_void>, p: Ptr) -> bool {
    match slot.compare_exchange(
        core::ptr::null_mut(),
        p,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => true,
        Err(cur) => cur == p,
    }
}

/// Emits the shim's exported `dlsym`. `$imp`, an `unsafe extern "C" fn(Ptr, *const c_char) ->
/// Ptr`, answers every handle but RTLD_NEXT. `dlsym` with RTLD_NEXT must resolve relative to
/// its caller, which glibc finds from the return address: so RTLD_NEXT jumps to the real dlsym
/// with the caller's frame untouched. On other architectures than x86_64 and aarch64 every
/// handle goes to `$imp`, and RTLD_NEXT resolves relative to the shim (a documented limit).
/// Not in unit tests (the test binary must keep glibc's dlsym).
#[macro_export]
macro_rules! dlsym_export {
    ($imp:path) => {
        #[cfg(all(not(test), target_arch = "x86_64"))]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn dlsym(
            _handle: $crate::dl::Ptr,
            _symbol: *const ::core::ffi::c_char,
        ) -> $crate::dl::Ptr {
            ::core::arch::naked_asm!(
                "cmp rdi, -1",
                "jne {imp}",
                "push rdi",
                "push rsi",
                "sub rsp, 8",
                "call {get}",
                "add rsp, 8",
                "pop rsi",
                "pop rdi",
                "jmp rax",
                imp = sym $imp,
                get = sym $crate::dl::real_dlsym_addr,
            )
        }

        #[cfg(all(not(test), target_arch = "aarch64"))]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn dlsym(
            _handle: $crate::dl::Ptr,
            _symbol: *const ::core::ffi::c_char,
        ) -> $crate::dl::Ptr {
            ::core::arch::naked_asm!(
                "cmn x0, #1",
                "b.ne {imp}",
                "stp x29, x30, [sp, #-32]!",
                "stp x0, x1, [sp, #16]",
                "bl {get}",
                "mov x16, x0",
                "ldp x0, x1, [sp, #16]",
                "ldp x29, x30, [sp], #32",
                "br x16",
                imp = sym $imp,
                get = sym $crate::dl::real_dlsym_addr,
            )
        }

        #[cfg(all(not(test), not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn dlsym(
            handle: $crate::dl::Ptr,
            symbol: *const ::core::ffi::c_char,
        ) -> $crate::dl::Ptr {
            // SAFETY: forwarding the caller's arguments.
            unsafe { $imp(handle, symbol) }
        }
    };
}

/// Runs `$load` when the loader maps the shim (before the program's `main`) and `$exit` when
/// the process runs its exit handlers: entries in `.init_array` / `.fini_array`, both
/// `extern "C" fn()`. Not in unit tests.
#[macro_export]
macro_rules! on_load_and_exit {
    ($load:path, $exit:path) => {
        #[cfg(not(test))]
        #[used]
        #[unsafe(link_section = ".init_array")]
        static ON_LOAD: extern "C" fn() = $load;

        #[cfg(not(test))]
        #[used]
        #[unsafe(link_section = ".fini_array")]
        static ON_UNLOAD: extern "C" fn() = $exit;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_glibc_dlsym_and_symbols_through_it() {
        // SAFETY: the test binary's dlsym (glibc's: nothing is preloaded) with a C string.
        let direct = unsafe { libc::dlsym(RTLD_DEFAULT, c"getpid".as_ptr()) };
        assert!(!direct.is_null());
        // SAFETY: a pseudo-handle, in all three.
        unsafe {
            assert_eq!(sym_str(RTLD_DEFAULT, "getpid"), direct);
            assert!(sym(RTLD_DEFAULT, c"gd_surely_no_such_symbol").is_null());
            assert!(sym_str(RTLD_DEFAULT, &"x".repeat(96)).is_null(), "too long");
        }
        let slot = AtomicPtr::new(core::ptr::null_mut());
        assert!(set_once(&slot, 8 as Ptr));
        assert!(set_once(&slot, 8 as Ptr), "the same pointer again");
        assert!(!set_once(&slot, 9 as Ptr), "another one is refused");
        assert_eq!(slot.load(Ordering::Acquire), 8 as Ptr);
    }
}
