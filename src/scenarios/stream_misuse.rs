//! `gpu-doctor inject stream-misuse` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamMisuseParams {}

pub struct StreamMisuse;

impl Scenario for StreamMisuse {
    type Params = StreamMisuseParams;
    const NAME: &'static str = "inject stream-misuse";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &StreamMisuseParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("inject stream-misuse is not written yet")
    }
}
