//! gpu-doctor as a library: the binary (main.rs) is a thin shell over these modules, and the
//! integration tests use them directly.
//!
//! Layers: `probe` (the only code that touches NVML / CUDA) → `analyze` (pure functions) →
//! `render` (tables, JSON, …). `scenarios` glue them per subcommand; `runner` and `isolate`
//! run scenarios in or out of process.

pub mod analyze;
pub mod cli;
pub mod compare;
pub mod context;
pub mod error;
pub mod facts;
pub mod isolate;
pub mod output;
pub mod probe;
pub mod program;
pub mod render;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod suite;
pub mod units;
