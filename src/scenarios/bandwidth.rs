//! `gpu-doctor bandwidth` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthParams {}

pub struct Bandwidth;

impl Scenario for Bandwidth {
    type Params = BandwidthParams;
    const NAME: &'static str = "bandwidth";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = false;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &BandwidthParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("bandwidth is not written yet")
    }
}
