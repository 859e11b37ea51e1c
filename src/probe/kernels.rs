//! gpu-doctor's kernels: PTX text embedded in the binary, JIT-compiled by the driver.

use std::ffi::{CString, c_void};

use anyhow::Result;

use crate::probe::cuda::{CUresult, check, sys};

/// The PTX source (see kernels/kernels.cu for the CUDA C it corresponds to).
pub const PTX: &str = include_str!("kernels/gpu_doctor.ptx");

/// Kernel names in [`PTX`].
pub mod name {
    pub const EMPTY: &str = "empty";
    pub const TRAP: &str = "trap_kernel";
    pub const WRITE_U32: &str = "write_u32";
    pub const FILL_U32: &str = "fill_u32";
    pub const DELAYED_FILL_U32: &str = "delayed_fill_u32";
    pub const SPIN_WAIT: &str = "spin_wait";
    pub const COPY_V4: &str = "copy_v4";
}

/// A loaded module in the current context. Not unloaded on drop: its context may already be
/// destroyed (that is what some scenarios do); call [`Module::unload`] where it is not.
pub struct Module {
    pub raw: sys::CUmodule,
}

impl Module {
    /// Loads [`PTX`] into the context current on this thread.
    pub fn load() -> Result<Module> {
        let (rc, m) = Self::try_load();
        check(rc, "cuModuleLoadData (gpu-doctor kernels)")?;
        Ok(m.expect("loaded"))
    }

    /// Loads [`PTX`], returning the driver's answer (for scenarios that record it as a step).
    pub fn try_load() -> (CUresult, Option<Module>) {
        // The driver wants NUL-terminated text.
        let text = CString::new(PTX).expect("PTX has no NUL");
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated image.
        let rc = unsafe { sys::cuModuleLoadData(&mut raw, text.as_ptr() as *const c_void) };
        if rc == CUresult::CUDA_SUCCESS {
            (rc, Some(Module { raw }))
        } else {
            (rc, None)
        }
    }

    pub fn function(&self, name: &str) -> Result<sys::CUfunction> {
        let c = CString::new(name).expect("kernel name has no NUL");
        let mut f = std::ptr::null_mut();
        check(
            // SAFETY: `f` is a live out-pointer and `c` a NUL-terminated name that outlives the
            // call; `self.raw` came from a successful cuModuleLoadData (what `load` builds).
            unsafe { sys::cuModuleGetFunction(&mut f, self.raw, c.as_ptr()) },
            &format!("cuModuleGetFunction({name})"),
        )?;
        Ok(f)
    }

    pub fn unload(self) -> CUresult {
        // SAFETY: a module this process loaded, in a context that still exists.
        unsafe { sys::cuModuleUnload(self.raw) }
    }
}

/// Launches `f` with a 1-D grid. `args` are pointers to each kernel argument's value, in order
/// ([`arg`] of each).
///
/// # Safety
/// `args` must match the kernel's parameter list, and `f` and `stream` must be live handles
/// (or deliberately stale ones, in scenarios that record what the driver answers).
pub unsafe fn launch(
    f: sys::CUfunction,
    grid: u32,
    block: u32,
    stream: sys::CUstream,
    args: &mut [*mut c_void],
) -> CUresult {
    // SAFETY: the caller passes pointers to values matching the kernel's parameters.
    unsafe {
        sys::cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            stream,
            args.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    }
}

/// Pointer to a kernel argument, for [`launch`].
pub fn arg<T>(v: &mut T) -> *mut c_void {
    v as *mut T as *mut c_void
}

/// Launches delayed_fill_u32(p, value, n, delay_cycles) with one block per 256 elements
/// (at most 1024 blocks; the kernel loops over the rest).
///
/// # Safety
/// `f` must be delayed_fill_u32 of a module in the current context (or a deliberately stale
/// handle, in a recorded step) and `p` must hold `n` u32 (or be deliberately invalid).
pub unsafe fn launch_delayed_fill(
    f: sys::CUfunction,
    stream: sys::CUstream,
    p: sys::CUdeviceptr,
    value: u32,
    n: u64,
    delay_cycles: u64,
) -> CUresult {
    let (mut p, mut value, mut n2, mut delay) = (p, value, n, delay_cycles);
    let mut args = [arg(&mut p), arg(&mut value), arg(&mut n2), arg(&mut delay)];
    let grid = n.div_ceil(256).clamp(1, 1024) as u32;
    // SAFETY: argument types match delayed_fill_u32(u64, u32, u64, u64).
    unsafe { launch(f, grid, 256, stream, &mut args) }
}

/// Launches fill_u32(p, value, n) with one block per 256 elements (at most 1024 blocks).
///
/// # Safety
/// As [`launch_delayed_fill`].
pub unsafe fn launch_fill(
    f: sys::CUfunction,
    stream: sys::CUstream,
    p: sys::CUdeviceptr,
    value: u32,
    n: u64,
) -> CUresult {
    let (mut p, mut value, mut n2) = (p, value, n);
    let mut args = [arg(&mut p), arg(&mut value), arg(&mut n2)];
    let grid = n.div_ceil(256).clamp(1, 1024) as u32;
    // SAFETY: argument types match fill_u32(u64, u32, u64).
    unsafe { launch(f, grid, 256, stream, &mut args) }
}

/// Launches the empty kernel.
///
/// # Safety
/// `f` must be `empty` (or a deliberately stale handle in a recorded step).
pub unsafe fn launch_empty(f: sys::CUfunction, stream: sys::CUstream) -> CUresult {
    // SAFETY: empty() takes no arguments.
    unsafe { launch(f, 1, 1, stream, &mut []) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_declares_every_kernel_for_an_old_target() {
        assert!(PTX.contains(".version 7.0") && PTX.contains(".target sm_52"));
        for n in [
            name::EMPTY,
            name::TRAP,
            name::WRITE_U32,
            name::FILL_U32,
            name::DELAYED_FILL_U32,
            name::SPIN_WAIT,
            name::COPY_V4,
        ] {
            assert!(PTX.contains(&format!(".visible .entry {n}(")), "{n}");
        }
        // Balanced braces: a cheap guard against a truncated edit.
        assert_eq!(PTX.matches('{').count(), PTX.matches('}').count());
    }
}
