//! The built library (`libgpu_doctor_nvml.so`, which cargo builds before these tests) driven
//! by real NVML clients, without a GPU:
//! - `replay`: a copy of the library named libnvidia-ml.so.1 serves
//!   tests/nvml/synthetic-2gpu.nvml.json to nvml-wrapper (as gpu-doctor uses it), to a C
//!   client that loads NVML with dlopen + dlsym (as Go's bindings do), and records it back
//!   with `gpu_doctor_nvml_snapshot`;
//! - `interpose`: the library preloaded over such a replayed copy acting as the "real" NVML:
//!   it forwards, and rewrites only what the faults change;
//! - `pynvml`: a pynvml monitor (tests/nvml/pynvml_monitor.py) sees each fault at its time
//!   (skipped with a note where `import pynvml` fails).

use shim_proto::nvml as proto;

mod child;
mod common;
mod interpose;
mod pynvml;
mod replay;
