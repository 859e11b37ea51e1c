//! The FFI layer: the exported `dlsym` hook, the `cuGetProcAddress` hooks and one wrapper per
//! intercepted driver variant (names::VARIANTS).
//!
//! How a program reaches the driver, and how each path lands here:
//! - linked against libcuda (`-lcuda`): the dynamic linker binds `cuMemAlloc_v2` to this
//!   library's export first (LD_PRELOAD order); the export forwards to libcuda's symbol,
//!   resolved lazily (`link`).
//! - `dlopen("libcuda.so.1")` + `dlsym`: the `dlsym` export wraps the answer (`dlsym`).
//! - `cuGetProcAddress` (the CUDA runtime, so PyTorch, CuPy, JAX, cgo): the hook wraps the
//!   entry point it hands out when that pointer is libcuda's export of a known variant, or
//!   else (pointer differs) when the caller's CUDA version and stream flags select exactly one
//!   known variant (`proc`). Anything else is handed out untouched.
//!
//! Every wrapper forwards to exactly one real pointer (a slot set once); calls not configured
//! for injection go straight through after one counter increment.
//!
//! Layout, in the order a call meets it: `wrappers` (the exports and the per-path wrappers,
//! listed in `table`), `call` (around every call), `memory` and `ctx` (what some calls add),
//! `leaks` with `backtrace` and `maps` (allocation events and their call sites, `leak-check`),
//! `libcuda` (the real entry points), `slots` (per-variant pointers), `ledger` (the counters and
//! accounting, in a shared file), `state` (configuration, accounting, events file);
//! `dlsym` and `proc_address` hand out wrappers; `load` runs at load and exit. What the NVML
//! library needs as well — glibc's own dlsym, the `dlsym` trampoline, the events file — is in
//! `shim_rt`.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use core::ffi::c_uint;

use shim_proto::cuda::names::VARIANTS;
use shim_rt::dl::Ptr;

mod backtrace;
mod call;
mod ctx;
pub mod dlsym;
mod leaks;
mod ledger;
mod libcuda;
mod load;
mod maps;
mod memory;
mod proc_address;
mod slots;
mod state;
mod table;
pub mod wrappers;

type CUresult = c_uint;

const N: usize = VARIANTS.len();

/// The index of `name` in names::VARIANTS, at compile time (a typo does not build).
const fn id(name: &str) -> usize {
    let n = name.as_bytes();
    let mut i = 0;
    while i < N {
        let v = VARIANTS[i].name.as_bytes();
        if v.len() == n.len() {
            let mut j = 0;
            while j < n.len() && v[j] == n[j] {
                j += 1;
            }
            if j == n.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("wrapper for a name missing from names::VARIANTS")
}
