//! The CUDA driver shim (shim/, docs/shim.md): its configuration (`config`), the driver calls
//! it intercepts (`names`) and the event lines it writes (`events`).

pub mod config;
pub mod events;
pub mod names;
