//! What gpu-doctor's two LD_PRELOAD libraries — the CUDA driver shim (shim/) and the NVML
//! library (nvml-shim/) — need from the process they are loaded into, written once:
//! - `dl`: glibc's own `dlsym`, symbol lookups through it, the `dlsym` export that hooks it
//!   ([`dlsym_export!`]) and the load/exit hooks ([`on_load_and_exit!`]);
//! - `sink`: the events file gpu-doctor reads;
//! - `process`: the environment, the clock and the thread id.
//!
//! Unlike shim-proto (pure, no `unsafe`, shared with gpu-doctor), this is FFI and libc, linked
//! only into the shims' cdylibs. The macros emit the `#[no_mangle]` items themselves, in the
//! shim that invokes them: each cdylib exports its own `dlsym`.

pub mod dl;
pub mod process;
pub mod sink;

pub use sink::Sink;
