//! Scenarios: one file each, all implementing [`Scenario`]. A scenario's `Params` type is
//! used both by the CLI (clap `Args`) and by suite files (serde), so the two cannot drift.
//!
//! Adding a scenario = a new file here + one line in [`registry`].

use std::fmt::Debug;

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use crate::context::Ctx;
use crate::report::Report;

pub mod bandwidth;
pub mod ctx_destroy;
pub mod illegal_address;
pub mod info;
pub mod oom;
pub mod program;
pub mod stream_misuse;
pub mod topo;
pub mod trace_ctx;

/// One scenario: provoke or probe something, return a report.
pub trait Scenario: Send + Sync + 'static {
    /// Parameters, shared by the command line and suite files.
    type Params: clap::Args
        + Serialize
        + DeserializeOwned
        + JsonSchema
        + Default
        + Debug
        + Clone
        + Send
        + Sync;

    /// The name used in suites, reports and the hidden child command ("inject oom").
    const NAME: &'static str;
    /// One line for suite listings.
    const ABOUT: &'static str;
    /// Destructive scenarios run in a re-executed child process (see isolate.rs).
    const ISOLATED: bool = false;
    /// True when the scenario needs the CUDA driver (not only NVML).
    const NEEDS_CUDA: bool = false;

    /// Time the scenario deliberately waits with these params (e.g. `inject oom --hold`): the
    /// runner adds it to an isolated child's timeout.
    fn planned_wait(_params: &Self::Params) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Checks params beyond their types (ranges, writable output paths) before anything runs,
    /// so bad input is exit 2 before a child process or the driver is started.
    fn validate(_params: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// Whether these params need an isolated child (a re-analysis of a saved report does not).
    fn isolated_for(_params: &Self::Params) -> bool {
        Self::ISOLATED
    }

    /// Runs the scenario in this process and returns its report. Steps, findings, metrics and
    /// data are filled here; the caller (`runner`) sets status, duration and host.
    fn run(params: &Self::Params, ctx: &mut Ctx) -> Result<Report>;
}

/// Object-safe view of a [`Scenario`], for the registry (suites, child process).
pub trait DynScenario: Send + Sync {
    fn name(&self) -> &'static str;
    fn about(&self) -> &'static str;
    fn needs_cuda(&self) -> bool;
    /// Validates and normalises params given as JSON (suite files, child command line):
    /// unknown fields and wrong types are errors; missing fields take their defaults.
    fn normalize_params(&self, params: serde_json::Value) -> Result<serde_json::Value, String>;
    fn run_json(&self, params: &serde_json::Value, ctx: &mut Ctx) -> Result<Report>;
    fn params_schema(&self) -> serde_json::Value;
    /// See [`Scenario::planned_wait`] (zero for params that do not parse).
    fn planned_wait(&self, params: &serde_json::Value) -> std::time::Duration;
    /// See [`Scenario::validate`].
    fn validate(&self, params: &serde_json::Value) -> Result<()>;
    /// See [`Scenario::isolated_for`].
    fn isolated_for(&self, params: &serde_json::Value) -> bool;
}

struct Erased<S>(std::marker::PhantomData<S>);

impl<S: Scenario> DynScenario for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn about(&self) -> &'static str {
        S::ABOUT
    }
    fn needs_cuda(&self) -> bool {
        S::NEEDS_CUDA
    }
    fn normalize_params(&self, params: serde_json::Value) -> Result<serde_json::Value, String> {
        let params = if params.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            params
        };
        let typed: S::Params = serde_json::from_value(params).map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(typed).expect("params serialise"))
    }
    fn run_json(&self, params: &serde_json::Value, ctx: &mut Ctx) -> Result<Report> {
        let typed: S::Params = serde_json::from_value(params.clone())
            .map_err(|e| crate::error::input(format!("{}: bad params: {e}", S::NAME)))?;
        S::run(&typed, ctx)
    }
    fn validate(&self, params: &serde_json::Value) -> Result<()> {
        let typed: S::Params = serde_json::from_value(params.clone())
            .map_err(|e| crate::error::input(format!("{}: bad params: {e}", S::NAME)))?;
        S::validate(&typed)
    }
    fn isolated_for(&self, params: &serde_json::Value) -> bool {
        serde_json::from_value::<S::Params>(params.clone())
            .map(|p| S::isolated_for(&p))
            .unwrap_or(S::ISOLATED)
    }
    fn params_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(S::Params)).expect("schema serialises")
    }
    fn planned_wait(&self, params: &serde_json::Value) -> std::time::Duration {
        serde_json::from_value::<S::Params>(params.clone())
            .map(|p| S::planned_wait(&p))
            .unwrap_or_default()
    }
}

/// Runs a part of scenario `name` that may crash its process (undefined driver behaviour) in
/// a process of its own, records its steps in `report` (a death there is the driver's answer,
/// see `analyze::faults::merge_crash_prone`) and returns the sub-process's report for its data.
pub fn run_crash_prone_part(
    ctx: &Ctx,
    report: &mut Report,
    name: &str,
    params: &serde_json::Value,
) -> Result<Report> {
    let started_at_ms = ctx.now_ms();
    let sub = crate::isolate::run_isolated(name, params, &ctx.opts)?;
    for step in crate::analyze::faults::merge_crash_prone(&sub.steps, started_at_ms) {
        ctx.record(report, step);
    }
    Ok(sub)
}

/// Helper for [`registry`].
pub const fn entry<S: Scenario>() -> &'static dyn DynScenario {
    &Erased::<S>(std::marker::PhantomData)
}

/// Every scenario gpu-doctor knows, in the order `inject all` / listings use.
pub fn registry() -> &'static [&'static dyn DynScenario] {
    static ALL: &[&dyn DynScenario] = &[
        entry::<info::Info>(),
        entry::<topo::Topo>(),
        entry::<oom::Oom>(),
        entry::<ctx_destroy::CtxDestroy>(),
        entry::<stream_misuse::StreamMisuse>(),
        entry::<illegal_address::IllegalAddress>(),
        entry::<trace_ctx::TraceCtx>(),
        entry::<bandwidth::Bandwidth>(),
        entry::<program::ProgramOom>(),
        entry::<program::InjectError>(),
        entry::<program::ProgramTrace>(),
    ];
    ALL
}

/// What `gpu-doctor inject all` runs, in order.
pub const INJECT_ALL: [&str; 4] = [
    "inject oom",
    "inject ctx-destroy",
    "inject stream-misuse",
    "inject illegal-address",
];

pub fn find(name: &str) -> Option<&'static dyn DynScenario> {
    registry().iter().copied().find(|s| s.name() == name)
}
