//! The exported `dlsym`: wraps the answer when it is a known driver variant.

use core::ffi::{CStr, c_char};

use shim_proto::cuda::names;

use super::Ptr;
use super::libcuda::{real, real_dlsym};
use super::slots::{SLOTS, hooked, mark, set_once};
use super::table::TABLE;

/// The hook proper, for every handle but RTLD_NEXT.
#[cfg_attr(test, allow(dead_code))]
unsafe extern "C" fn dlsym_impl(handle: Ptr, symbol: *const c_char) -> Ptr {
    let dlsym = real_dlsym();
    // SAFETY: forwarding the caller's arguments.
    let p = unsafe { dlsym(handle, symbol) };
    if p.is_null() || symbol.is_null() {
        return p;
    }
    // SAFETY: a non-null symbol name for which dlsym found a symbol: a C string.
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if name.len() < 4 || name[0] != b'c' || name[1] != b'u' {
        return p;
    }
    let Some(i) = names::variant_id(name) else {
        return p;
    };
    let w = TABLE.0[i];
    if core::ptr::eq(p, w.export) {
        // The global scope found our own export first: it forwards to libcuda when libcuda is
        // loaded; otherwise answer what dlsym would have answered without the shim.
        return if real::<0>(i).is_some() {
            p
        } else {
            core::ptr::null_mut()
        };
    }
    if set_once(&SLOTS[0][i], p) {
        if mark(i, 0) {
            hooked(i, "dlsym", "identity");
        }
        w.link as Ptr
    } else {
        p
    }
}

/// `dlsym` with RTLD_NEXT must resolve relative to its caller, which glibc finds from the
/// return address: so RTLD_NEXT jumps to the real dlsym with the caller's frame untouched, and
/// everything else goes to `dlsym_impl`.
#[cfg(all(not(test), target_arch = "x86_64"))]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(_handle: Ptr, _symbol: *const c_char) -> Ptr {
    core::arch::naked_asm!(
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
        imp = sym dlsym_impl,
        get = sym super::libcuda::real_dlsym_addr,
    )
}

#[cfg(all(not(test), target_arch = "aarch64"))]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(_handle: Ptr, _symbol: *const c_char) -> Ptr {
    core::arch::naked_asm!(
        "cmn x0, #1",
        "b.ne {imp}",
        "stp x29, x30, [sp, #-32]!",
        "stp x0, x1, [sp, #16]",
        "bl {get}",
        "mov x16, x0",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #32",
        "br x16",
        imp = sym dlsym_impl,
        get = sym super::libcuda::real_dlsym_addr,
    )
}

/// Other architectures: RTLD_NEXT resolves relative to the shim (documented limit).
#[cfg(all(not(test), not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: Ptr, symbol: *const c_char) -> Ptr {
    // SAFETY: forwarding the caller's arguments.
    unsafe { dlsym_impl(handle, symbol) }
}
