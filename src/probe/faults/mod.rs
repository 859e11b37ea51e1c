//! Raw driver sequences of the fault-injection scenarios (`inject …`), one file per scenario.
//! Each returns plain facts (crate::facts::faults) and records its driver calls as steps;
//! verdicts are for `analyze::faults`.
//!
//! Handles here are raw on purpose: several of them are used after their context, stream or
//! allocation is gone, to record what the driver answers. Every such use is a recorded step,
//! announced to the parent before the call, so a crash inside it is attributed to it.

use std::ffi::c_void;

use anyhow::Result;

use crate::context::RunCtx;
pub use crate::probe::cuda::Steps;
use crate::probe::cuda::{self, CUresult, check, sys};
use crate::probe::kernels::{self, launch_fill};
use crate::probe::nvml::NvmlProbe;
use crate::report::DeviceInfo;

pub mod ctx_destroy;
pub mod fragmentation;
pub mod illegal_address;
pub mod oom;
pub mod stream_misuse;

/// CU_STREAM_LEGACY: the legacy default stream, as a stream handle (cuda.h `((CUstream)0x1)`).
pub const STREAM_LEGACY: sys::CUstream = 0x1 as sys::CUstream;
/// CU_STREAM_PER_THREAD: the per-thread default stream (cuda.h `((CUstream)0x2)`).
pub const STREAM_PER_THREAD: sys::CUstream = 0x2 as sys::CUstream;

/// The GPU a fault scenario works on: the first of the `--device` selection.
pub struct Target {
    pub nvml: NvmlProbe,
    pub index: u32,
    pub info: DeviceInfo,
    pub dev: sys::CUdevice,
}

/// Resolves the target GPU (NVML selection → CUDA device by PCI bus id). Loads CUDA.
pub fn target(ctx: &RunCtx) -> Result<Target> {
    crate::probe::loader::load_cuda()?;
    let (nvml, index, mut info) = nvml_target(ctx)?;
    let dev = cuda::device_for_bus_id(&info.pci_bus_id)?;
    info.cuda_ordinal = Some(dev as u32);
    Ok(Target {
        nvml,
        index,
        info,
        dev,
    })
}

/// NVML target without touching CUDA (the illegal-address orchestrator).
pub fn nvml_target(ctx: &RunCtx) -> Result<(NvmlProbe, u32, DeviceInfo)> {
    let nvml = NvmlProbe::open()?;
    let index = nvml.select(&ctx.opts.devices)?[0];
    let info = nvml.device_info(index)?;
    Ok((nvml, index, info))
}

/// A stream of the current context with these flags ([`NON_BLOCKING`] or [`BLOCKING`]).
pub fn new_stream(flags: u32) -> Result<sys::CUstream> {
    let mut s: sys::CUstream = std::ptr::null_mut();
    check(
        // SAFETY: `s` is a live out-pointer; the stream goes to whichever context the caller
        // has current (without one the driver answers an error code).
        unsafe { sys::cuStreamCreate(&mut s, flags) },
        "cuStreamCreate",
    )?;
    Ok(s)
}

/// CU_STREAM_NON_BLOCKING.
pub const NON_BLOCKING: u32 = sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32;
/// CU_STREAM_DEFAULT: synchronises with the legacy default stream.
pub const BLOCKING: u32 = sys::CUstream_flags::CU_STREAM_DEFAULT as u32;

/// CU_MEMPOOL_ATTR_RELEASE_THRESHOLD (a cuuint64_t).
pub const ATTR_THRESHOLD: sys::CUmemPool_attribute =
    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
/// CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT (a cuuint64_t).
pub const ATTR_RESERVED: sys::CUmemPool_attribute =
    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT;
/// CU_MEMPOOL_ATTR_USED_MEM_CURRENT (a cuuint64_t).
pub const ATTR_USED: sys::CUmemPool_attribute =
    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT;

/// A u64 attribute of a memory pool, one of the `ATTR_*` above (None when the driver refuses).
pub fn pool_attr(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: every `ATTR_*` attribute is a cuuint64_t and `v` a live u64; `pool` is a pool
    // of the caller's (the driver answers an error code for one it does not know).
    let r = unsafe { sys::cuMemPoolGetAttribute(pool, attr, kernels::arg(&mut v)) };
    (r == rc::SUCCESS).then_some(v)
}

/// cuMemGetInfo free bytes in the current context (None without one).
pub fn cuda_free() -> Option<u64> {
    cuda::mem_get_info().ok().map(|(free, _)| free)
}

/// SM clock rate in kHz (cycles per millisecond), for the delay of delayed_fill_u32.
pub fn clock_khz(dev: sys::CUdevice) -> u64 {
    cuda::attribute(dev, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
        .map_or(2_000_000, u64::from)
}

/// The proof that a context works: fill_u32 on the legacy stream, synchronize, read back, as
/// steps `{prefix}launch fill_u32`, `{prefix}synchronize` and `{prefix}read the result back`
/// (all three are made whatever the earlier ones answer). Returns (every call succeeded,
/// every element holds `value`).
fn fill_and_read_back(
    steps: &Steps,
    prefix: &str,
    fill: sys::CUfunction,
    buf: sys::CUdeviceptr,
    value: u32,
    n: u64,
) -> (bool, bool) {
    let launched = steps.call(
        &format!("{prefix}launch fill_u32"),
        "cuLaunchKernel",
        &[rc::SUCCESS],
        // SAFETY: both callers (ctx-destroy recovery, illegal-address recover) pass fill_u32 of
        // the module loaded in the context current here and `buf`, their live allocation of
        // `n` u32, as launch_fill requires; null is the legacy stream.
        || unsafe { launch_fill(fill, std::ptr::null_mut(), buf, value, n) },
    );
    let synced = steps.call(
        &format!("{prefix}synchronize"),
        "cuCtxSynchronize",
        &[rc::SUCCESS],
        // SAFETY: no arguments; waits for the fill launched just above in the current context.
        || unsafe { sys::cuCtxSynchronize() },
    );
    let mut equal = false;
    let read = steps.call(
        &format!("{prefix}read the result back"),
        "cuMemcpyDtoH_v2",
        &[rc::SUCCESS],
        || {
            let (r, e) = read_back_equals(buf, n as usize, value);
            equal = e;
            r
        },
    );
    (
        [launched, synced, read].iter().all(|&r| r == rc::SUCCESS),
        equal,
    )
}

/// Copies `n` u32 from the device and says whether every one equals `value`.
pub fn read_back_equals(p: sys::CUdeviceptr, n: usize, value: u32) -> (CUresult, bool) {
    let mut host = vec![0u32; n];
    // SAFETY: host buffer of n u32; p is a live allocation of at least n u32.
    let rc = unsafe { sys::cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, p, n * 4) };
    (
        rc,
        rc == CUresult::CUDA_SUCCESS && host.iter().all(|&x| x == value),
    )
}

/// Short names for the expected-answer lists.
pub mod rc {
    use crate::probe::cuda::CUresult;
    pub const SUCCESS: CUresult = CUresult::CUDA_SUCCESS;
    pub const INVALID_VALUE: CUresult = CUresult::CUDA_ERROR_INVALID_VALUE;
    pub const OOM: CUresult = CUresult::CUDA_ERROR_OUT_OF_MEMORY;
    pub const INVALID_CONTEXT: CUresult = CUresult::CUDA_ERROR_INVALID_CONTEXT;
    pub const INVALID_HANDLE: CUresult = CUresult::CUDA_ERROR_INVALID_HANDLE;
    pub const NOT_READY: CUresult = CUresult::CUDA_ERROR_NOT_READY;
    pub const ILLEGAL_ADDRESS: CUresult = CUresult::CUDA_ERROR_ILLEGAL_ADDRESS;
    pub const CONTEXT_IS_DESTROYED: CUresult = CUresult::CUDA_ERROR_CONTEXT_IS_DESTROYED;
    pub const LAUNCH_FAILED: CUresult = CUresult::CUDA_ERROR_LAUNCH_FAILED;
    pub const CAPTURE_UNSUPPORTED: CUresult = CUresult::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    pub const CAPTURE_INVALIDATED: CUresult = CUresult::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    pub const CAPTURE_IMPLICIT: CUresult = CUresult::CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    /// What a call with a handle of a destroyed context may answer (undefined behaviour per
    /// NVIDIA; these are the answers that mean "refused").
    pub const STALE: &[CUresult] = &[INVALID_CONTEXT, CONTEXT_IS_DESTROYED, INVALID_HANDLE];
    /// The same for calls that take a device pointer (the driver may no longer know it).
    pub const STALE_PTR: &[CUresult] = &[
        INVALID_CONTEXT,
        CONTEXT_IS_DESTROYED,
        INVALID_HANDLE,
        INVALID_VALUE,
    ];
}
