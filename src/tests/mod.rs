//! Tests that need the crate's insides and span several modules: the recorded fixtures
//! re-analysed, the layering, the registry, rendering snapshots.
mod exporter_rules;
pub(crate) mod fixtures;
mod inputs;
mod layers;
mod registry;
mod robustness;
mod snapshots;
mod trace_ctx;
