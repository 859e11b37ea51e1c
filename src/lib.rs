//! gpu-doctor as a library: the binary (main.rs) is a thin shell over [`cli`], and turns its
//! outcome into an exit code.
//!
//! Layers, each importing only from the ones before it (a test checks this):
//! `units`, `error`, `report` → `facts` → `context` (with `isolate::protocol`) → `probe`,
//! `program` | `analyze` → `render` → `isolate` → `scenarios` → `runner`, `suite`, `compare`,
//! `fleet`, `exporter` → `cli`. `probe` and `program` are the only code that touches NVML, CUDA or a user's program;
//! `analyze` is pure; `render` only formats. docs/design.md has the whole picture.
//!
//! Public: the command line, and the report format with what it carries (`report`, `facts`,
//! `output`, `error`), for tests and tools that read reports.

pub(crate) mod analyze;
pub mod cli;
pub(crate) mod compare;
pub(crate) mod context;
pub mod error;
pub(crate) mod examples;
pub(crate) mod exporter;
pub mod facts;
pub(crate) mod fleet;
pub(crate) mod isolate;
pub mod output;
pub(crate) mod probe;
pub(crate) mod program;
pub(crate) mod render;
pub mod report;
pub(crate) mod runner;
pub(crate) mod scenarios;
pub(crate) mod suite;
pub(crate) mod units;

#[cfg(test)]
mod tests;
