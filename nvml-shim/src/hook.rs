//! The `dlsym` hook (interpose mode) and the load/exit hooks.
//!
//! Programs that load NVML with dlopen + dlsym (pynvml through ctypes, Go bindings,
//! nvml-wrapper) reach the real library's functions without going through our exported
//! symbols. The exported `dlsym` calls glibc's and, when the answer is the real function of a
//! name this library exports, records it as the function to forward to and hands out our
//! export instead. Any other name (an NVML function not wrapped here) is handed out untouched.
//! Copies that are not preloaded pass every lookup through.

use core::ffi::{CStr, c_char};

use shim_rt::dl::{Ptr, real_dlsym};

use crate::exports::{self, export_addr};
use crate::proto::event::{Event, Mode};
use crate::state::{state, state_if_set};

/// The hook proper, for every handle but RTLD_NEXT (shim_rt's trampoline, below).
#[cfg_attr(test, allow(dead_code))]
unsafe extern "C" fn dlsym_impl(handle: Ptr, symbol: *const c_char) -> Ptr {
    // SAFETY: forwarding the caller's arguments.
    let p = unsafe { real_dlsym()(handle, symbol) };
    if p.is_null() || symbol.is_null() {
        return p;
    }
    // SAFETY: dlsym's symbol is a C string.
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if !name.starts_with(b"nvml") || state().mode != Mode::Interpose {
        return p;
    }
    let Some(f) = exports::find(name) else {
        return p;
    };
    let ours = export_addr(f) as Ptr;
    if p == ours {
        // The global scope found our own export first: it forwards to the real library when
        // there is one; otherwise answer what dlsym would have answered without us.
        return if crate::real::func::<Ptr>(f).is_some() {
            p
        } else {
            core::ptr::null_mut()
        };
    }
    if crate::real::set_once(f, p) {
        pin(p);
        ours
    } else {
        p
    }
}

static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds a reference on the library the program's dlsym found our first real function in, so
/// that a program that dlcloses it does not leave our slots pointing at unmapped code.
fn pin(p: Ptr) {
    if PINNED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    // SAFETY: dladdr into a zeroed Dl_info; dlopen(RTLD_NOLOAD) of a loaded file only takes a
    // reference, never released.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        if libc::dladdr(p, &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        }
    }
}

shim_rt::dlsym_export!(dlsym_impl);

#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_load() {
    state();
}

/// At exit: calls per function, faulted answers per fault, missing answers.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_unload() {
    let Some(s) = state_if_set() else { return };
    let calls = exports::NAMES
        .iter()
        .zip(crate::call::COUNTS.iter())
        .map(|(n, c)| (n.to_string(), c.load(std::sync::atomic::Ordering::Relaxed)))
        .filter(|(_, c)| *c > 0)
        .collect();
    let missing = match &s.backend {
        crate::state::Backend::Replay(r) => r.missing_count(),
        _ => 0,
    };
    s.sink.emit(Event::Stats {
        calls,
        reads: s.faults.reads(),
        missing,
    });
}

shim_rt::on_load_and_exit!(on_load, on_unload);
