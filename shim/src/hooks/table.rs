//! The table of wrappers: each variant's three addresses, to hand out and to recognise.

use core::ffi::c_void;

use super::wrappers::*;
use super::{N, id};

/// Wrapper addresses of one variant.
#[derive(Clone, Copy)]
pub(super) struct Wrap {
    /// Forwards to slot 0 (handed out by dlsym).
    pub(super) link: *const c_void,
    /// Forwards to slot 1 (handed out by cuGetProcAddress).
    pub(super) proc_: *const c_void,
    /// The exported symbol (forwards to slot 0).
    pub(super) export: *const c_void,
}

impl Wrap {
    /// `p` is one of these wrappers (or the export): wrapping it again would count twice.
    pub(super) fn is_ours(&self, p: *const c_void) -> bool {
        p == self.export || p == self.link || p == self.proc_
    }
}

pub(super) struct Table(pub(super) [Wrap; N]);
// SAFETY: the table holds code addresses only, never written after compile time.
unsafe impl Sync for Table {}

const NO_WRAP: Wrap = Wrap {
    link: core::ptr::null(),
    proc_: core::ptr::null(),
    export: core::ptr::null(),
};

macro_rules! table {
    ($($name:ident),* $(,)?) => {
        const fn build() -> [Wrap; N] {
            let mut t = [NO_WRAP; N];
            $(
                t[id(stringify!($name))] = Wrap {
                    link: $name::w::<0> as *const c_void,
                    proc_: $name::w::<1> as *const c_void,
                    export: $name as *const c_void,
                };
            )*
            t
        }
    };
}

table!(
    cuGetProcAddress,
    cuGetProcAddress_v2,
    cuInit,
    cuMemAlloc_v2,
    cuMemAllocPitch_v2,
    cuMemAllocManaged,
    cuMemAllocAsync,
    cuMemAllocAsync_ptsz,
    cuMemAllocFromPoolAsync,
    cuMemAllocFromPoolAsync_ptsz,
    cuMemCreate,
    cuMemFree_v2,
    cuMemFreeAsync,
    cuMemFreeAsync_ptsz,
    cuMemRelease,
    cuMemAddressReserve,
    cuMemAddressFree,
    cuMemMap,
    cuMemUnmap,
    cuMemGetInfo_v2,
    cuLaunchKernel,
    cuLaunchKernel_ptsz,
    cuLaunchKernelEx,
    cuLaunchKernelEx_ptsz,
    cuLaunchCooperativeKernel,
    cuLaunchCooperativeKernel_ptsz,
    cuGraphLaunch,
    cuGraphLaunch_ptsz,
    cuMemcpy,
    cuMemcpy_ptds,
    cuMemcpyAsync,
    cuMemcpyAsync_ptsz,
    cuMemcpyHtoD_v2,
    cuMemcpyHtoD_v2_ptds,
    cuMemcpyDtoH_v2,
    cuMemcpyDtoH_v2_ptds,
    cuMemcpyDtoD_v2,
    cuMemcpyDtoD_v2_ptds,
    cuMemcpyHtoDAsync_v2,
    cuMemcpyHtoDAsync_v2_ptsz,
    cuMemcpyDtoHAsync_v2,
    cuMemcpyDtoHAsync_v2_ptsz,
    cuStreamSynchronize,
    cuStreamSynchronize_ptsz,
    cuCtxSynchronize,
    cuEventSynchronize,
    cuModuleLoadData,
    cuModuleLoadDataEx,
    cuModuleGetFunction,
    cuLibraryLoadData,
    cuStreamCreate,
    cuStreamCreateWithPriority,
    cuEventRecord,
    cuEventRecord_ptsz,
    cuCtxCreate_v2,
    cuCtxCreate_v3,
    cuCtxCreate_v4,
    cuCtxDestroy_v2,
    cuCtxSetCurrent,
    cuCtxPushCurrent_v2,
    cuCtxPopCurrent_v2,
    cuDevicePrimaryCtxRetain,
    cuDevicePrimaryCtxRelease_v2,
    cuDevicePrimaryCtxReset_v2,
);

pub(super) static TABLE: Table = Table(build());

#[cfg(test)]
mod tests {
    use super::*;
    use shim_proto::cuda::names::Kind;
    use shim_proto::cuda::names::VARIANTS;

    #[test]
    fn every_variant_has_wrappers() {
        for (i, w) in TABLE.0.iter().enumerate() {
            assert!(
                !w.link.is_null() && !w.proc_.is_null() && !w.export.is_null(),
                "{} has no wrapper",
                VARIANTS[i].name
            );
            assert_ne!(
                w.link, w.proc_,
                "{}: two paths, two slots",
                VARIANTS[i].name
            );
        }
        // Kinds the wrappers rely on.
        assert_eq!(VARIANTS[id("cuMemAlloc_v2")].kind, Kind::Alloc);
        assert_eq!(VARIANTS[id("cuCtxSetCurrent")].kind, Kind::Ctx);
    }
}
