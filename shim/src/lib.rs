//! gpu-doctor's LD_PRELOAD shim: intercepts the CUDA driver API of any program to cap its
//! device memory (`inject oom --limit`), fail chosen calls (`inject error`) and trace its
//! contexts (`trace ctx --`). See docs/shim.md.
//!
//! Layout: `accounting` is plain Rust, unit-tested without CUDA; the configuration, the call
//! table and the event encoder are shared with gpu-doctor in `shim_proto::cuda`; `hooks` is
//! the FFI layer (exported `dlsym`, `cuGetProcAddress*` and driver symbols, forwarding to
//! libcuda).

pub mod accounting;
pub mod hooks;
