//! The driver entry points the CUDA shim intercepts, also used by gpu-doctor to validate
//! `--call`. Pure data.
//!
//! Each row is one exported variant of an entry point: `cuGetProcAddress` is asked for the
//! base name (`cuMemAlloc`) and answers the variant matching the caller's CUDA version and
//! stream mode (`cuMemAlloc_v2`, `cuLaunchKernel_ptsz`). `min_version` is the CUDA version
//! (1000 * major + 10 * minor) from which that variant is the answer for the base name; it is
//! used only when the returned pointer is not identical to the exported symbol.
//! `IDENTITY_ONLY` marks variants wrapped only on an exact pointer match.

/// What a call is, for accounting and tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Allocates device memory (counted against `--limit`).
    Alloc,
    /// Returns device memory.
    Free,
    /// Virtual memory management: address reservations and mappings (`leak-check`).
    Vmm,
    /// cuMemGetInfo: reports the limited view.
    MemInfo,
    /// Waits for the GPU (`--delay` applies).
    Sync,
    /// Creates, destroys or switches a context (traced).
    Ctx,
    /// cuGetProcAddress: hands out entry points.
    ProcAddress,
    /// Anything else: counted, can fail, failures recorded.
    Other,
}

pub struct Variant {
    pub name: &'static str,
    pub base: &'static str,
    pub min_version: u32,
    /// A per-thread default stream variant: derived from the `_ptsz` / `_ptds` suffix.
    pub per_thread: bool,
    pub kind: Kind,
}

pub const IDENTITY_ONLY: u32 = u32::MAX;
/// Callers asking for this CUDA version or newer get wrappers on identity only.
pub const RULE_MAX_VERSION: u32 = 13000;

const fn ends_with(name: &str, suffix: &str) -> bool {
    let (n, s) = (name.as_bytes(), suffix.as_bytes());
    if n.len() < s.len() {
        return false;
    }
    let mut i = 0;
    while i < s.len() {
        if n[n.len() - s.len() + i] != s[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn v(name: &'static str, base: &'static str, min_version: u32, kind: Kind) -> Variant {
    Variant {
        name,
        base,
        min_version,
        per_thread: ends_with(name, "_ptsz") || ends_with(name, "_ptds"),
        kind,
    }
}

use Kind::*;

/// Every intercepted variant. The order is the shim's internal id (shim/src/hooks/mod.rs, `id`).
pub const VARIANTS: &[Variant] = &[
    v("cuGetProcAddress", "cuGetProcAddress", 11030, ProcAddress),
    v(
        "cuGetProcAddress_v2",
        "cuGetProcAddress",
        12000,
        ProcAddress,
    ),
    v("cuInit", "cuInit", 2000, Other),
    // memory
    v("cuMemAlloc_v2", "cuMemAlloc", 3020, Alloc),
    v("cuMemAllocPitch_v2", "cuMemAllocPitch", 3020, Alloc),
    v("cuMemAllocManaged", "cuMemAllocManaged", 6000, Alloc),
    v("cuMemAllocAsync", "cuMemAllocAsync", 11020, Alloc),
    v("cuMemAllocAsync_ptsz", "cuMemAllocAsync", 11020, Alloc),
    v(
        "cuMemAllocFromPoolAsync",
        "cuMemAllocFromPoolAsync",
        11020,
        Alloc,
    ),
    v(
        "cuMemAllocFromPoolAsync_ptsz",
        "cuMemAllocFromPoolAsync",
        11020,
        Alloc,
    ),
    v("cuMemCreate", "cuMemCreate", 10020, Alloc),
    v("cuMemFree_v2", "cuMemFree", 3020, Free),
    v("cuMemFreeAsync", "cuMemFreeAsync", 11020, Free),
    v("cuMemFreeAsync_ptsz", "cuMemFreeAsync", 11020, Free),
    v("cuMemRelease", "cuMemRelease", 10020, Free),
    v("cuMemAddressReserve", "cuMemAddressReserve", 10020, Vmm),
    v("cuMemAddressFree", "cuMemAddressFree", 10020, Vmm),
    v("cuMemMap", "cuMemMap", 10020, Vmm),
    v("cuMemUnmap", "cuMemUnmap", 10020, Vmm),
    v("cuMemGetInfo_v2", "cuMemGetInfo", 3020, MemInfo),
    // launches
    v("cuLaunchKernel", "cuLaunchKernel", 4000, Other),
    v("cuLaunchKernel_ptsz", "cuLaunchKernel", 4000, Other),
    v("cuLaunchKernelEx", "cuLaunchKernelEx", 11060, Other),
    v("cuLaunchKernelEx_ptsz", "cuLaunchKernelEx", 11060, Other),
    v(
        "cuLaunchCooperativeKernel",
        "cuLaunchCooperativeKernel",
        9000,
        Other,
    ),
    v(
        "cuLaunchCooperativeKernel_ptsz",
        "cuLaunchCooperativeKernel",
        9000,
        Other,
    ),
    v("cuGraphLaunch", "cuGraphLaunch", 10000, Other),
    v("cuGraphLaunch_ptsz", "cuGraphLaunch", 10000, Other),
    // copies
    v("cuMemcpy", "cuMemcpy", 4000, Other),
    v("cuMemcpy_ptds", "cuMemcpy", 4000, Other),
    v("cuMemcpyAsync", "cuMemcpyAsync", 4000, Other),
    v("cuMemcpyAsync_ptsz", "cuMemcpyAsync", 4000, Other),
    v("cuMemcpyHtoD_v2", "cuMemcpyHtoD", 3020, Other),
    v("cuMemcpyHtoD_v2_ptds", "cuMemcpyHtoD", 3020, Other),
    v("cuMemcpyDtoH_v2", "cuMemcpyDtoH", 3020, Other),
    v("cuMemcpyDtoH_v2_ptds", "cuMemcpyDtoH", 3020, Other),
    v("cuMemcpyDtoD_v2", "cuMemcpyDtoD", 3020, Other),
    v("cuMemcpyDtoD_v2_ptds", "cuMemcpyDtoD", 3020, Other),
    v("cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync", 3020, Other),
    v(
        "cuMemcpyHtoDAsync_v2_ptsz",
        "cuMemcpyHtoDAsync",
        3020,
        Other,
    ),
    v("cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync", 3020, Other),
    v(
        "cuMemcpyDtoHAsync_v2_ptsz",
        "cuMemcpyDtoHAsync",
        3020,
        Other,
    ),
    // synchronisation
    v("cuStreamSynchronize", "cuStreamSynchronize", 2000, Sync),
    v(
        "cuStreamSynchronize_ptsz",
        "cuStreamSynchronize",
        2000,
        Sync,
    ),
    v("cuCtxSynchronize", "cuCtxSynchronize", 2000, Sync),
    v("cuEventSynchronize", "cuEventSynchronize", 2000, Sync),
    // modules, streams, events
    v("cuModuleLoadData", "cuModuleLoadData", 2000, Other),
    v("cuModuleLoadDataEx", "cuModuleLoadDataEx", 2010, Other),
    v("cuModuleGetFunction", "cuModuleGetFunction", 2000, Other),
    v("cuLibraryLoadData", "cuLibraryLoadData", 12000, Other),
    v("cuStreamCreate", "cuStreamCreate", 2000, Other),
    v(
        "cuStreamCreateWithPriority",
        "cuStreamCreateWithPriority",
        5050,
        Other,
    ),
    v("cuEventRecord", "cuEventRecord", 2000, Other),
    v("cuEventRecord_ptsz", "cuEventRecord", 2000, Other),
    // contexts
    v("cuCtxCreate_v2", "cuCtxCreate", IDENTITY_ONLY, Ctx),
    v("cuCtxCreate_v3", "cuCtxCreate", IDENTITY_ONLY, Ctx),
    v("cuCtxCreate_v4", "cuCtxCreate", IDENTITY_ONLY, Ctx),
    v("cuCtxDestroy_v2", "cuCtxDestroy", 4000, Ctx),
    v("cuCtxSetCurrent", "cuCtxSetCurrent", 4000, Ctx),
    v("cuCtxPushCurrent_v2", "cuCtxPushCurrent", 4000, Ctx),
    v("cuCtxPopCurrent_v2", "cuCtxPopCurrent", 4000, Ctx),
    v(
        "cuDevicePrimaryCtxRetain",
        "cuDevicePrimaryCtxRetain",
        7000,
        Ctx,
    ),
    v(
        "cuDevicePrimaryCtxRelease_v2",
        "cuDevicePrimaryCtxRelease",
        11000,
        Ctx,
    ),
    v(
        "cuDevicePrimaryCtxReset_v2",
        "cuDevicePrimaryCtxReset",
        11000,
        Ctx,
    ),
];

/// Index of a variant by its exported name.
pub fn variant_id(name: &[u8]) -> Option<usize> {
    VARIANTS.iter().position(|v| v.name.as_bytes() == name)
}

/// The base name a user may give to `--call` for `name` (a base or a variant name).
pub fn base_of(name: &str) -> Option<&'static str> {
    VARIANTS
        .iter()
        .find(|v| v.name == name || v.base == name)
        .map(|v| v.base)
}

/// Base names a failpoint may target, in table order, without duplicates.
pub fn fail_calls() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for v in VARIANTS {
        if v.kind != Kind::ProcAddress && !out.contains(&v.base) {
            out.push(v.base);
        }
    }
    out
}

/// True when `base` waits for the GPU (where `--delay` makes sense).
pub fn is_sync(base: &str) -> bool {
    VARIANTS
        .iter()
        .any(|v| v.base == base && v.kind == Kind::Sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_bases_are_prefixes() {
        for (i, a) in VARIANTS.iter().enumerate() {
            assert!(a.name.starts_with(a.base), "{} / {}", a.name, a.base);
            assert_eq!(variant_id(a.name.as_bytes()), Some(i), "{} twice", a.name);
            assert_eq!(
                a.per_thread,
                a.name.ends_with("_ptsz") || a.name.ends_with("_ptds"),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn base_lookup() {
        assert_eq!(base_of("cuMemAlloc_v2"), Some("cuMemAlloc"));
        assert_eq!(base_of("cuLaunchKernel"), Some("cuLaunchKernel"));
        assert_eq!(base_of("cuLaunchKernel_ptsz"), Some("cuLaunchKernel"));
        assert_eq!(base_of("cuFoo"), None);
        assert!(fail_calls().contains(&"cuStreamSynchronize"));
        assert!(!fail_calls().contains(&"cuGetProcAddress"));
        assert!(is_sync("cuCtxSynchronize") && !is_sync("cuLaunchKernel"));
    }
}
