//! The wrappers, one per intercepted variant (names::VARIANTS): a module per variant holding
//! `w::<0>` (forwards to slot 0, handed out by dlsym) and `w::<1>` (forwards to slot 1, handed
//! out by cuGetProcAddress), and the exported symbol of the same name (forwards to slot 0).

use core::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::Ordering;

use super::call::{Inside, after, before};
use super::ctx::{ctx_op, read_ptr};
use super::leaks;
use super::libcuda::{current_device, real};
use super::memory::{alloc, free, limited_dev};
use super::proc_address::wrap_proc;
use super::slots::{SEEN, hooked, mark};
use super::state::{lock, state};
use super::{CUresult, Ptr, id};
use crate::accounting::Key;

const NOT_INITIALIZED: CUresult = 3;

macro_rules! forward {
    ($S:ident, $id:expr, ($($t:ty),*)) => {{
        match real::<$S>($id) {
            // SAFETY: the slot holds the real entry point of exactly this variant's ABI.
            Some(p) => unsafe { core::mem::transmute::<Ptr, unsafe extern "C" fn($($t),*) -> CUresult>(p) },
            None => return NOT_INITIALIZED,
        }
    }};
}

macro_rules! export {
    ($name:ident, ($($a:ident : $t:ty),*)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name($($a: $t),*) -> CUresult {
            const ID: usize = id(stringify!($name));
            if SEEN[ID].load(Ordering::Relaxed) & 4 == 0 && mark(ID, 2) {
                hooked(ID, "link", "export");
            }
            // SAFETY: the wrapper of this very variant, with the caller's arguments.
            unsafe { $name::w::<0>($($a),*) }
        }
    };
}

/// A call that is only counted, can fail, and has its failures recorded.
macro_rules! plain {
    ($name:ident, ($($a:ident : $t:ty),*)) => {
        pub mod $name {
            use super::*;
            pub unsafe extern "C" fn w<const S: usize>($($a: $t),*) -> CUresult {
                const ID: usize = id(stringify!($name));
                let f = forward!(S, ID, ($($t),*));
                let Some(_inside) = Inside::enter() else {
                    // SAFETY: the real entry point, with the caller's arguments unchanged.
                    return unsafe { f($($a),*) };
                };
                if let Some(rc) = before(ID) {
                    return rc;
                }
                // SAFETY: the real entry point, with the caller's arguments unchanged.
                let rc = unsafe { f($($a),*) };
                after(ID, rc);
                rc
            }
        }
        export!($name, ($($a: $t),*));
    };
}

/// A call with a custom body: `$body` sees `ID`, the arguments, and `$call`, a closure making
/// the real call with the caller's arguments.
macro_rules! custom {
    ($name:ident, ($($a:ident : $t:ty),*), |$id:ident, $call:ident| $body:block) => {
        pub mod $name {
            use super::*;
            pub unsafe extern "C" fn w<const S: usize>($($a: $t),*) -> CUresult {
                const $id: usize = id(stringify!($name));
                let f = forward!(S, $id, ($($t),*));
                let Some(_inside) = Inside::enter() else {
                    // SAFETY: the real entry point, with the caller's arguments unchanged.
                    return unsafe { f($($a),*) };
                };
                if let Some(rc) = before($id) {
                    return rc;
                }
                // SAFETY: the real entry point, with the caller's arguments unchanged; the
                // closure does not outlive this call.
                let $call = move || unsafe { f($($a),*) };
                $body
            }
        }
        export!($name, ($($a: $t),*));
    };
}

type Stream = Ptr;
type Dptr = u64;

plain!(cuInit, (flags: c_uint));
plain!(cuLaunchKernel, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernel_ptsz, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernelEx, (config: *const c_void, f: Ptr, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernelEx_ptsz, (config: *const c_void, f: Ptr, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchCooperativeKernel, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr));
plain!(cuLaunchCooperativeKernel_ptsz, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr));
plain!(cuGraphLaunch, (exec: Ptr, stream: Stream));
plain!(cuGraphLaunch_ptsz, (exec: Ptr, stream: Stream));
plain!(cuMemcpy, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpy_ptds, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyAsync, (dst: Dptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyAsync_ptsz, (dst: Dptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyHtoD_v2, (dst: Dptr, src: *const c_void, n: usize));
plain!(cuMemcpyHtoD_v2_ptds, (dst: Dptr, src: *const c_void, n: usize));
plain!(cuMemcpyDtoH_v2, (dst: Ptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoH_v2_ptds, (dst: Ptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoD_v2, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoD_v2_ptds, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyHtoDAsync_v2, (dst: Dptr, src: *const c_void, n: usize, stream: Stream));
plain!(cuMemcpyHtoDAsync_v2_ptsz, (dst: Dptr, src: *const c_void, n: usize, stream: Stream));
plain!(cuMemcpyDtoHAsync_v2, (dst: Ptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyDtoHAsync_v2_ptsz, (dst: Ptr, src: Dptr, n: usize, stream: Stream));
plain!(cuStreamSynchronize, (stream: Stream));
plain!(cuStreamSynchronize_ptsz, (stream: Stream));
plain!(cuCtxSynchronize, ());
plain!(cuEventSynchronize, (event: Ptr));
plain!(cuModuleLoadData, (module: *mut Ptr, image: *const c_void));
plain!(cuModuleLoadDataEx, (module: *mut Ptr, image: *const c_void, n: c_uint, options: *mut c_int, values: *mut Ptr));
plain!(cuModuleGetFunction, (f: *mut Ptr, module: Ptr, name: *const c_char));
plain!(cuLibraryLoadData, (lib: *mut Ptr, code: *const c_void, jit_opts: *mut c_int, jit_vals: *mut Ptr, n_jit: c_uint, lib_opts: *mut c_int, lib_vals: *mut Ptr, n_lib: c_uint));
plain!(cuStreamCreate, (stream: *mut Stream, flags: c_uint));
plain!(cuStreamCreateWithPriority, (stream: *mut Stream, flags: c_uint, priority: c_int));
plain!(cuEventRecord, (event: Ptr, stream: Stream));
plain!(cuEventRecord_ptsz, (event: Ptr, stream: Stream));

// Allocations.

fn read_dptr(p: *mut Dptr) -> Option<u64> {
    if p.is_null() {
        None
    } else {
        // SAFETY: written by the driver on success.
        Some(unsafe { *p })
    }
}

custom!(cuMemAlloc_v2, (dptr: *mut Dptr, size: usize), |ID, call| {
    alloc(ID, limited_dev(), size as u64, call, || {
        read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
    })
});

custom!(cuMemAllocPitch_v2, (dptr: *mut Dptr, pitch: *mut usize, width: usize, height: usize, elem: c_uint), |ID, call| {
    let want = (width as u64).saturating_mul(height as u64);
    alloc(ID, limited_dev(), want, call, || {
        let actual = if pitch.is_null() {
            want
        } else {
            // SAFETY: written by the driver on success (this runs only then).
            (unsafe { *pitch } as u64).saturating_mul(height as u64)
        };
        read_dptr(dptr).map(|p| (Key::Ptr(p), actual))
    })
});

custom!(cuMemAllocManaged, (dptr: *mut Dptr, size: usize, flags: c_uint), |ID, call| {
    alloc(ID, limited_dev(), size as u64, call, || {
        read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
    })
});

macro_rules! alloc_async {
    ($name:ident) => {
        custom!($name, (dptr: *mut Dptr, size: usize, stream: Stream), |ID, call| {
            alloc(ID, limited_dev(), size as u64, call, || {
                read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
            })
        });
    };
}
alloc_async!(cuMemAllocAsync);
alloc_async!(cuMemAllocAsync_ptsz);

macro_rules! alloc_pool {
    ($name:ident) => {
        custom!($name, (dptr: *mut Dptr, size: usize, pool: Ptr, stream: Stream), |ID, call| {
            alloc(ID, limited_dev(), size as u64, call, || {
                read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
            })
        });
    };
}
alloc_pool!(cuMemAllocFromPoolAsync);
alloc_pool!(cuMemAllocFromPoolAsync_ptsz);

/// CUmemAllocationProp starts {type, requestedHandleTypes, location {type, id}, …}.
#[repr(C)]
pub struct MemAllocationPropHead {
    pub type_: c_uint,
    pub requested_handle_types: c_uint,
    pub location_type: c_uint,
    pub location_id: c_int,
}

const CU_MEM_LOCATION_TYPE_DEVICE: c_uint = 1;

custom!(cuMemCreate, (handle: *mut u64, size: usize, prop: *const MemAllocationPropHead, flags: u64), |ID, call| {
    // Device memory only: host and NUMA locations are not device memory.
    let dev = if state().acct.is_some() && !prop.is_null() {
        // SAFETY: the caller passes a valid CUmemAllocationProp.
        let p = unsafe { &*prop };
        (p.location_type == CU_MEM_LOCATION_TYPE_DEVICE).then_some(p.location_id)
    } else {
        None
    };
    alloc(ID, dev, size as u64, call, || {
        read_dptr(handle).map(|h| (Key::Handle(h), size as u64))
    })
});

custom!(cuMemFree_v2, (dptr: Dptr), |ID, call| {
    free(ID, Key::Ptr(dptr), call)
});

custom!(cuMemFreeAsync, (dptr: Dptr, stream: Stream), |ID, call| {
    free(ID, Key::Ptr(dptr), call)
});

custom!(cuMemFreeAsync_ptsz, (dptr: Dptr, stream: Stream), |ID, call| {
    free(ID, Key::Ptr(dptr), call)
});

custom!(cuMemRelease, (handle: u64), |ID, call| {
    free(ID, Key::Handle(handle), call)
});

// Virtual memory management: reservations and mappings hold no memory of their own (the
// cuMemCreate handles do); with `leaks=1` they become events (reserved against mapped).

fn leaks_on() -> bool {
    state().config.leaks
}

custom!(cuMemAddressReserve, (ptr: *mut Dptr, size: usize, alignment: usize, addr: Dptr, flags: u64), |ID, call| {
    let rc = call();
    if rc != 0 {
        after(ID, rc);
    } else if leaks_on() && let Some(p) = read_dptr(ptr) {
        leaks::vmm_acquired("reserve", ID, p, size as u64, None);
    }
    rc
});

custom!(cuMemAddressFree, (ptr: Dptr, size: usize), |ID, call| {
    let rc = call();
    if rc != 0 {
        after(ID, rc);
    } else if leaks_on() {
        leaks::vmm_released("unreserve", ID, ptr, size as u64);
    }
    rc
});

custom!(cuMemMap, (ptr: Dptr, size: usize, offset: usize, handle: u64, flags: u64), |ID, call| {
    let rc = call();
    if rc != 0 {
        after(ID, rc);
    } else if leaks_on() {
        leaks::vmm_acquired("map", ID, ptr, size as u64, Some((offset as u64, handle)));
    }
    rc
});

custom!(cuMemUnmap, (ptr: Dptr, size: usize), |ID, call| {
    let rc = call();
    if rc != 0 {
        after(ID, rc);
    } else if leaks_on() {
        leaks::vmm_released("unmap", ID, ptr, size as u64);
    }
    rc
});

custom!(cuMemGetInfo_v2, (free_out: *mut usize, total_out: *mut usize), |ID, call| {
    let rc = call();
    if rc == 0 && !free_out.is_null() && !total_out.is_null() {
        if let Some(acct) = &state().acct {
            let dev = current_device();
            // SAFETY: written by the driver on success.
            let (fr, tot) = unsafe { (*free_out as u64, *total_out as u64) };
            let (fr, tot) = lock(acct).mem_info(dev, fr, tot);
            // SAFETY: the caller's out-parameters, non-null, just written by the driver.
            unsafe {
                *free_out = fr as usize;
                *total_out = tot as usize;
            }
        }
    } else {
        after(ID, rc);
    }
    rc
});

// Contexts.

custom!(cuCtxCreate_v2, (pctx: *mut Ptr, flags: c_uint, dev: c_int), |ID, call| {
    ctx_op(ID, call, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxCreate_v3, (pctx: *mut Ptr, params: *mut c_void, n: c_int, flags: c_uint, dev: c_int), |ID, call| {
    ctx_op(ID, call, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxCreate_v4, (pctx: *mut Ptr, params: *mut c_void, flags: c_uint, dev: c_int), |ID, call| {
    ctx_op(ID, call, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxDestroy_v2, (ctx: Ptr), |ID, call| {
    ctx_op(ID, call, |_| (ctx as u64, -1))
});
custom!(cuCtxSetCurrent, (ctx: Ptr), |ID, call| {
    ctx_op(ID, call, |_| (ctx as u64, -1))
});
custom!(cuCtxPushCurrent_v2, (ctx: Ptr), |ID, call| {
    ctx_op(ID, call, |_| (ctx as u64, -1))
});
custom!(cuCtxPopCurrent_v2, (pctx: *mut Ptr), |ID, call| {
    ctx_op(ID, call, |rc| (read_ptr(pctx, rc), -1))
});
custom!(cuDevicePrimaryCtxRetain, (pctx: *mut Ptr, dev: c_int), |ID, call| {
    ctx_op(ID, call, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuDevicePrimaryCtxRelease_v2, (dev: c_int), |ID, call| {
    ctx_op(ID, call, |_| (0, dev as i64))
});
custom!(cuDevicePrimaryCtxReset_v2, (dev: c_int), |ID, call| {
    ctx_op(ID, call, |_| (0, dev as i64))
});

// cuGetProcAddress: failures are not recorded (the runtime probes symbols that may not exist).

custom!(cuGetProcAddress, (symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64), |ID, call| {
    let rc = call();
    if rc == 0 {
        // SAFETY: the driver accepted the caller's `symbol` and wrote `*pfn`.
        unsafe { wrap_proc(symbol, pfn, version, flags) };
    }
    rc
});

custom!(cuGetProcAddress_v2, (symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64, status: *mut c_int), |ID, call| {
    let rc = call();
    if rc == 0 {
        // SAFETY: the driver accepted the caller's `symbol` and wrote `*pfn`.
        unsafe { wrap_proc(symbol, pfn, version, flags) };
    }
    rc
});
