//! `gpu-doctor inject ctx-destroy` (stub: being written).

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::report::Report;
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CtxDestroyParams {}

pub struct CtxDestroy;

impl Scenario for CtxDestroy {
    type Params = CtxDestroyParams;
    const NAME: &'static str = "inject ctx-destroy";
    const ABOUT: &'static str = "not written yet";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(_params: &CtxDestroyParams, _ctx: &mut Ctx) -> Result<Report> {
        anyhow::bail!("inject ctx-destroy is not written yet")
    }
}
