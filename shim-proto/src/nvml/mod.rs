//! The NVML shim's pure half, shared with gpu-doctor: the fault syntax (`fault`), the snapshot
//! format (`snapshot`), the fixed list of recorded queries (`query`), the event lines the
//! library writes (`event`) and NVML's return codes (`codes`). No FFI and no libc: gpu-doctor
//! uses it to validate `--fault` and a snapshot before it starts anything.

pub mod codes;
pub mod event;
pub mod fault;
pub mod query;
pub mod snapshot;

/// The faults, `;`-separated, in the `--fault` syntax (`pcie-width=8@gpu0;xid=79+2s`).
pub const ENV_FAULTS: &str = "GPU_DOCTOR_NVML_FAULTS";
/// A snapshot file: a copy of the library that is not preloaded serves it as libnvidia-ml.
pub const ENV_REPLAY: &str = "GPU_DOCTOR_NVML_REPLAY";
/// The events file (must exist; the library appends to it and never creates it).
pub const ENV_EVENTS: &str = "GPU_DOCTOR_NVML_EVENTS";
/// The real libnvidia-ml to forward to (default `libnvidia-ml.so.1` on the loader path).
pub const ENV_REAL: &str = "GPU_DOCTOR_NVML_REAL";

/// The library's file name as cargo builds it.
pub const LIBRARY_FILE: &str = "libgpu_doctor_nvml.so";
/// `int gpu_doctor_nvml_snapshot(const char *path, char *err, unsigned err_len)`: records the
/// snapshot of the machine the library answers for; 0 on success.
pub const SNAPSHOT_SYMBOL: &str = "gpu_doctor_nvml_snapshot";
