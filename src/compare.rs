//! `gpu-doctor compare` command glue (stub: being written).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use crate::cli::GlobalOpts;

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    pub baseline: PathBuf,
    pub current: PathBuf,
}

/// Returns the exit code: 0 no regression, 1 regression, 2 unreadable input.
pub fn run(_args: &CompareArgs, _global: &GlobalOpts, _color: bool) -> Result<i32> {
    anyhow::bail!("gpu-doctor compare is not written yet")
}
