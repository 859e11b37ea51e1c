//! The only layer that loads or calls libcuda / libnvidia-ml. It returns plain data (facts,
//! steps); verdicts are for `analyze`.

pub mod bandwidth;
pub mod cuda;
pub mod faults;
pub mod gpu_check;
pub mod kernels;
pub mod live;
pub mod loader;
pub mod memory;
pub mod nvml;
pub mod nvml_library;
pub mod slurm;
pub mod trace_ctx;
