//! gpu-doctor's NVML library (`libgpu_doctor_nvml.so`), see docs/nvml.md. One library, three
//! uses:
//! - **interpose**: preloaded into any program, it wraps the real libnvidia-ml (exported NVML
//!   symbols and a `dlsym` hook) and rewrites the answers the configured faults change;
//! - **replay**: loaded *as* libnvidia-ml with a snapshot, it answers from the snapshot (no
//!   GPU, no driver), faults on top;
//! - **snapshot**: `gpu_doctor_nvml_snapshot(path, …)` records every answer of the machine.
//!
//! Layout: `proto` is pure Rust (fault syntax, snapshot format, query list, event lines)
//! shared with gpu-doctor through shim-proto (`shim_proto::nvml`); `rewrite` (how each fault
//! changes an answer), `out` (the caller's buffers), `replay` and `faults` are plain logic, unit-tested; `exports`,
//! `call`, `lookup`, `fields`, `eventsets`, `record`, `hook` and `real` are the FFI layer.

/// The pure half, shared with gpu-doctor (fault syntax, snapshot format, queries, events).
pub use shim_proto::nvml as proto;

mod abi;
mod call;
mod eventsets;
mod exports;
mod faults;
mod fields;
mod handles;
mod hook;
mod lookup;
mod out;
mod real;
mod record;
mod replay;
mod rewrite;
mod sink;
mod state;
