//! Finds and loads the driver libraries at run time, with one clear line when that fails.
//!
//! cudarc (dynamic-loading) panics when libcuda is missing and when a symbol is missing, so
//! every CUDA path goes through [`load_cuda`] first: it checks the library, initialises the
//! driver and checks its version before any versioned symbol is used.

use std::sync::OnceLock;

use anyhow::Result;
use cudarc::driver::sys;

use crate::error::unavailable;

/// Overrides the path of libcuda (tests use it to exercise the missing-driver path).
pub const ENV_LIBCUDA: &str = "GPU_DOCTOR_LIBCUDA";
/// Overrides the path of libnvidia-ml.
pub const ENV_LIBNVML: &str = "GPU_DOCTOR_LIBNVML";

/// Oldest driver the CUDA scenarios run on: CUDA 12.0 (R525). cudarc is built with the
/// 12.2 bindings, whose versioned entry points (cuCtxCreate_v2, cuMemAllocAsync, …) all
/// exist in 12.0 drivers; NVML-only commands (`info`, `topo`) work with any driver.
pub const MIN_CUDA_DRIVER: i32 = 12000;

const NEWCOMER_HINT: &str = "to see what gpu-doctor reports, try `gpu-doctor topo --example` (a report recorded on an H100 box)";

/// A library override from the environment; set but empty means unset, as for any path
/// variable a wrapper script may export empty.
fn override_of(var: &str) -> Option<String> {
    non_empty(std::env::var(var).ok())
}

/// An override's value, where an empty one means unset (a wrapper script that exports the
/// variable empty).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub fn nvml_library() -> String {
    override_of(ENV_LIBNVML).unwrap_or_else(|| "libnvidia-ml.so.1".to_string())
}

pub fn missing_nvml_message(path: &str) -> String {
    let how = if override_of(ENV_LIBNVML).is_some() {
        format!("{ENV_LIBNVML}={path}")
    } else {
        "the loader path (LD_LIBRARY_PATH, ld.so.cache)".to_string()
    };
    format!(
        "no NVIDIA driver: {path} (NVML) could not be loaded from {how}; install the NVIDIA driver or point {ENV_LIBNVML} at libnvidia-ml.so.1 — {NEWCOMER_HINT}"
    )
}

/// What the CUDA driver said at start-up.
#[derive(Debug, Clone, Copy)]
pub struct CudaDriver {
    /// cuDriverGetVersion: 13000 for CUDA 13.0.
    pub version: i32,
}

/// Loads libcuda, runs cuInit and checks the driver version, once per process.
pub fn load_cuda() -> Result<CudaDriver> {
    static STATE: OnceLock<Result<CudaDriver, String>> = OnceLock::new();
    STATE
        .get_or_init(|| load_cuda_once().map_err(|e| e.to_string()))
        .clone()
        .map_err(unavailable)
}

/// Checks that libcuda can be loaded, without initialising the driver (the parent of an
/// isolated scenario calls this so a missing driver fails fast, with the one-line message).
pub fn check_cuda_present() -> Result<()> {
    if crate::probe::nvml_library::replaying() {
        return Err(unavailable(
            "NVML is a replayed machine (--replay): it has no CUDA driver behind it, and this scenario needs one (NVML-only commands such as `info` and `topo` replay)",
        ));
    }
    preload_override()?;
    // SAFETY: only tries to dlopen candidate names.
    if !unsafe { sys::is_culib_present() } {
        return Err(missing_cuda());
    }
    Ok(())
}

fn missing_cuda() -> anyhow::Error {
    unavailable(format!(
        "no CUDA driver: libcuda.so.1 could not be loaded from the loader path (LD_LIBRARY_PATH, ld.so.cache); install the NVIDIA driver or set {ENV_LIBCUDA} — {NEWCOMER_HINT}"
    ))
}

fn preload_override() -> Result<()> {
    if let Some(path) = override_of(ENV_LIBCUDA) {
        // Preload the chosen file globally: cudarc's own lookup ends with the soname
        // libcuda.so.1, which then resolves to this already-loaded library.
        let c = std::ffi::CString::new(path.clone())
            .map_err(|_| unavailable(format!("{ENV_LIBCUDA} contains a NUL byte")))?;
        // SAFETY: dlopen with a valid C string; the handle is deliberately kept for the process.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            return Err(unavailable(format!(
                "no CUDA driver: {ENV_LIBCUDA}={path} could not be loaded; point it at libcuda.so.1 or unset it — {NEWCOMER_HINT}"
            )));
        }
    }
    Ok(())
}

fn load_cuda_once() -> Result<CudaDriver> {
    check_cuda_present()?;
    // SAFETY: cuInit takes no pointers (flags must be 0) and exists in every driver since
    // CUDA 2.0, so it cannot hit cudarc's missing-symbol panic; libcuda was found just above.
    let rc = unsafe { sys::cuInit(0) };
    let mut version = 0;
    // SAFETY: `version` is a live i32 out-pointer; cuDriverGetVersion exists since CUDA 2.0 and
    // needs no cuInit (it is read even when cuInit failed, for the message below).
    unsafe { sys::cuDriverGetVersion(&mut version) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        let what = match rc {
            sys::CUresult::CUDA_ERROR_NO_DEVICE => {
                "no CUDA-capable GPU is visible (check CUDA_VISIBLE_DEVICES and the container's device mounts)".to_string()
            }
            sys::CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH => format!(
                "the kernel driver is older than libcuda (CUDA {}): update the NVIDIA driver",
                cuda_version_string(version)
            ),
            other => format!("cuInit failed with {other:?}"),
        };
        return Err(unavailable(format!("CUDA driver unusable: {what}")));
    }
    if version < MIN_CUDA_DRIVER {
        return Err(unavailable(format!(
            "CUDA driver too old: it supports CUDA {}, gpu-doctor's CUDA scenarios need {} or newer (driver R525+); `info` and `topo` still work",
            cuda_version_string(version),
            cuda_version_string(MIN_CUDA_DRIVER)
        )));
    }
    Ok(CudaDriver { version })
}

pub fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_override_means_unset() {
        assert_eq!(non_empty(Some(String::new())), None);
        assert_eq!(non_empty(None), None);
        assert_eq!(
            non_empty(Some("/x/libnvidia-ml.so.1".into())).as_deref(),
            Some("/x/libnvidia-ml.so.1")
        );
    }
}
