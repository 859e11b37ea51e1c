//! nvmlInit/nvmlShutdown, the GPU count and the handle lookups (by index, UUID, PCI bus id,
//! serial). A lost GPU answers NVML_ERROR_GPU_IS_LOST to every lookup of it.

use core::ffi::{c_char, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abi::{
    Device, ERROR_FUNCTION_NOT_FOUND, ERROR_GPU_IS_LOST, ERROR_INVALID_ARGUMENT,
    ERROR_LIBRARY_NOT_FOUND, ERROR_NOT_FOUND, ERROR_UNINITIALIZED, Ret, SUCCESS, c_str,
};
use crate::call::{enter, forward, forward_or_replay, mask};
use crate::exports::{Fid, NAMES};
use crate::handles::{remember, replay_handle};
use crate::proto::event::Event;
use crate::state::Backend;

static INIT_REPORTED: AtomicBool = AtomicBool::new(false);

pub fn init(f: Fid, real: impl FnOnce() -> Ret) -> Ret {
    let Some((s, _)) = enter(f) else {
        return real();
    };
    let rc = match &s.backend {
        // A real library always has nvmlInit: without it there is no real library.
        Backend::Real => match forward(real) {
            ERROR_FUNCTION_NOT_FOUND => ERROR_LIBRARY_NOT_FOUND,
            rc => rc,
        },
        Backend::Replay(r) => r.init(),
        Backend::Broken => ERROR_LIBRARY_NOT_FOUND,
    };
    if !crate::record::recording() && !INIT_REPORTED.swap(true, Ordering::AcqRel) {
        s.sink.emit(Event::Init {
            call: NAMES[f as usize].into(),
            rc,
        });
    }
    rc
}

pub fn shutdown(f: Fid, real: impl FnOnce() -> Ret) -> Ret {
    let Some((s, _)) = enter(f) else {
        return real();
    };
    match &s.backend {
        Backend::Real => forward(real),
        Backend::Replay(r) => r.shutdown(),
        Backend::Broken => ERROR_UNINITIALIZED,
    }
}

/// # Safety
/// `count` is the caller's pointer.
pub unsafe fn count(f: Fid, count: *mut c_uint, real: impl FnOnce() -> Ret) -> Ret {
    forward_or_replay(f, real, |_, r| {
        // SAFETY: the caller's pointer, valid or null.
        match unsafe { count.as_mut() } {
            Some(c) => {
                *c = r.gpu_count();
                SUCCESS
            }
            None => ERROR_INVALID_ARGUMENT,
        }
    })
}

/// # Safety
/// `out` is the caller's pointer.
pub unsafe fn by_index(f: Fid, index: c_uint, out: *mut Device, real: impl FnOnce() -> Ret) -> Ret {
    let Some((s, call)) = enter(f) else {
        return real();
    };
    let rc = match &s.backend {
        Backend::Real => {
            let rc = forward(real);
            if rc == SUCCESS && !out.is_null() {
                // SAFETY: the driver filled the caller's pointer.
                remember(index, unsafe { *out });
            }
            rc
        }
        Backend::Replay(r) => {
            if let Err(rc) = r.ready() {
                return rc;
            }
            if out.is_null() || index >= r.gpu_count() {
                return ERROR_INVALID_ARGUMENT;
            }
            // SAFETY: the caller's pointer, checked non-null.
            unsafe { *out = replay_handle(index) };
            SUCCESS
        }
        Backend::Broken => return ERROR_UNINITIALIZED,
    };
    if rc == SUCCESS && mask(s, f) != 0 && s.faults.lost_for(Some(index), call, f, &s.sink) {
        return ERROR_GPU_IS_LOST;
    }
    rc
}

/// What a handle is looked up by.
pub enum Id {
    Uuid,
    Pci,
    Serial,
}

/// # Safety
/// `id` is the caller's C string, `out` its pointer.
pub unsafe fn by_id(
    f: Fid,
    kind: Id,
    id: *const c_char,
    out: *mut Device,
    real: impl FnOnce() -> Ret,
) -> Ret {
    let Some((s, call)) = enter(f) else {
        return real();
    };
    let faults = mask(s, f) != 0;
    let (rc, gpu) = match &s.backend {
        Backend::Real => {
            let rc = forward(real);
            // SAFETY: the driver filled the caller's pointer.
            let gpu = (faults && rc == SUCCESS && !out.is_null())
                .then(|| s.gpu_of(unsafe { *out }))
                .flatten();
            (rc, gpu)
        }
        Backend::Replay(r) => {
            if let Err(rc) = r.ready() {
                return rc;
            }
            // SAFETY: the caller's C string.
            let Some(text) = (unsafe { c_str(id) }) else {
                return ERROR_INVALID_ARGUMENT;
            };
            if out.is_null() {
                return ERROR_INVALID_ARGUMENT;
            }
            let found = match kind {
                Id::Uuid => r.by_uuid(&text),
                Id::Pci => r.by_pci_bus_id(&text),
                Id::Serial => r.by_serial(&text),
            };
            let Some(g) = found else {
                return ERROR_NOT_FOUND;
            };
            // SAFETY: the caller's pointer, checked non-null.
            unsafe { *out = replay_handle(g) };
            (SUCCESS, Some(g))
        }
        Backend::Broken => return ERROR_UNINITIALIZED,
    };
    if rc == SUCCESS && faults && s.faults.lost_for(gpu, call, f, &s.sink) {
        return ERROR_GPU_IS_LOST;
    }
    rc
}

/// # Safety
/// `out` is the caller's pointer.
pub unsafe fn index(f: Fid, dev: Device, out: *mut c_uint, real: impl FnOnce() -> Ret) -> Ret {
    let Some((s, call)) = enter(f) else {
        return real();
    };
    let faults = mask(s, f) != 0;
    match &s.backend {
        Backend::Real => {
            if faults && s.faults.lost_for(s.gpu_of(dev), call, f, &s.sink) {
                return ERROR_GPU_IS_LOST;
            }
            forward(real)
        }
        Backend::Replay(r) => {
            if let Err(rc) = r.ready() {
                return rc;
            }
            let Ok(g) = s.replay_gpu(dev) else {
                return ERROR_INVALID_ARGUMENT;
            };
            if faults && s.faults.lost_for(Some(g), call, f, &s.sink) {
                return ERROR_GPU_IS_LOST;
            }
            // SAFETY: the caller's pointer, valid or null.
            match unsafe { out.as_mut() } {
                Some(o) => {
                    *o = g;
                    SUCCESS
                }
                None => ERROR_INVALID_ARGUMENT,
            }
        }
        Backend::Broken => ERROR_UNINITIALIZED,
    }
}
