//! `gpu-doctor inject oom` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OomParams {}

pub struct Oom;

impl Scenario for Oom {
    type Params = OomParams;
    const NAME: &'static str = "inject oom";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &OomParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("inject oom is not written yet")
    }
}
