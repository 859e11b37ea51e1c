//! gpu-doctor's LD_PRELOAD shim: intercepts the CUDA driver API of any program to cap its
//! device memory (`inject oom --limit`), fail chosen calls (`inject error`) and trace its
//! contexts (`trace ctx --`). See docs/shim.md.
//!
//! Layout: `config`, `names`, `accounting` and `events` are plain Rust, unit-tested without
//! CUDA (gpu-doctor includes `config` and `names` with `#[path]`); `hooks` is the FFI layer
//! (exported `dlsym`, `cuGetProcAddress*` and driver symbols, forwarding to libcuda).

pub mod accounting;
pub mod config;
pub mod events;
pub mod hooks;
pub mod names;
