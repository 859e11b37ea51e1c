//! `gpu-doctor inject illegal-address` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IllegalAddressParams {}

pub struct IllegalAddress;

impl Scenario for IllegalAddress {
    type Params = IllegalAddressParams;
    const NAME: &'static str = "inject illegal-address";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &IllegalAddressParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("inject illegal-address is not written yet")
    }
}
