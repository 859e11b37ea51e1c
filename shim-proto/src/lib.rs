//! What gpu-doctor and its LD_PRELOAD shims share, so both sides of each format are one code:
//! the configuration line gpu-doctor writes and a shim reads, the table of calls a shim
//! intercepts, and the event lines a shim writes and gpu-doctor parses.
//!
//! Pure Rust without dependencies or `unsafe`: it is linked into the shims, which are loaded
//! into arbitrary programs. One module per shim: `cuda` for the CUDA driver shim (shim/).

pub mod cuda;
