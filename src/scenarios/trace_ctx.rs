//! `gpu-doctor trace ctx` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TraceCtxParams {}

pub struct TraceCtx;

impl Scenario for TraceCtx {
    type Params = TraceCtxParams;
    const NAME: &'static str = "trace ctx";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &TraceCtxParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("trace ctx is not written yet")
    }
}
