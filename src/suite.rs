//! Suites: TOML files listing scenarios with params and thresholds (stub: being written).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use crate::context::RunOptions;
use crate::report::Report;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Suite file (TOML), e.g. scenarios/quick.toml.
    pub suite: PathBuf,
}

pub fn run(_args: &RunArgs, _opts: &RunOptions) -> Result<Report> {
    anyhow::bail!("gpu-doctor run is not written yet")
}
