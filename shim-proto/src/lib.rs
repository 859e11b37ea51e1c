//! What gpu-doctor and its LD_PRELOAD shims share, so both sides of each format are one code:
//! the configuration line gpu-doctor writes and a shim reads, the table of calls a shim
//! intercepts, and the event lines a shim writes and gpu-doctor parses.
//!
//! Pure Rust without `unsafe`: it is linked into the shims, which are loaded into arbitrary
//! programs. One module per shim — `cuda` for the CUDA driver shim (shim/), `nvml` for the
//! NVML interposer and replay library (nvml-shim/) — and `units`, the one rule for sizes and
//! durations everywhere. The `cuda` module needs no dependency (the CUDA shim is kept lean);
//! `nvml` reads and writes JSON with serde.

pub mod cuda;
pub mod nvml;
pub mod units;
