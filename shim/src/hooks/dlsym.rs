//! The exported `dlsym` (shim_rt's trampoline): wraps the answer when it is a known driver
//! variant.

use core::ffi::{CStr, c_char};

use shim_proto::cuda::names;
use shim_rt::dl::{real_dlsym, set_once};

use super::Ptr;
use super::libcuda::real;
use super::slots::{SLOTS, hooked, mark};
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

shim_rt::dlsym_export!(dlsym_impl);
