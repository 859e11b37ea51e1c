//! `gpu-doctor compare BASELINE CURRENT`: reads both reports, compares them
//! (analyze::compare) and renders the result. Exit 0 no regression, 1 regression, 2 input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::analyze::compare::{self, Comparison, Options, parse_metric_tolerance, parse_percent};
use crate::error::exit;
use crate::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Terminal tables (what changed only).
    Table,
    /// Everything, as JSON (same as --json).
    Json,
    /// GitHub-flavoured Markdown, for $GITHUB_STEP_SUMMARY or a pull-request comment.
    Markdown,
    /// JUnit XML: one test case per scenario and per metric.
    Junit,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The known-good report (scenario or suite report, JSON).
    #[arg(value_name = "BASELINE.json")]
    pub baseline: PathBuf,
    /// The report to check against it.
    #[arg(value_name = "CURRENT.json")]
    pub current: PathBuf,
    /// How far a metric may move in its bad direction before it is a regression.
    #[arg(long, default_value = "5%", value_parser = parse_percent, value_name = "PERCENT")]
    pub tolerance: f64,
    /// Tolerance of one metric (exact name, or base name covering NAME.gpu<N>); repeatable.
    #[arg(long = "tol", value_parser = parse_metric_tolerance, value_name = "NAME=PERCENT")]
    pub tol: Vec<(String, f64)>,
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Rows per section in table and markdown output (0: all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

/// Reads both reports and compares them (what the command does before rendering).
pub fn load_and_compare(args: &CompareArgs) -> Result<Comparison> {
    let baseline = crate::output::read_report(&args.baseline)?;
    let current = crate::output::read_report(&args.current)?;
    let opts = Options {
        tolerance: args.tolerance,
        per_metric: args.tol.iter().cloned().collect::<HashMap<_, _>>(),
    };
    Ok(compare::compare(&baseline, &current, &opts))
}

/// Renders a comparison in the given format.
pub fn render(c: &Comparison, format: Format, color: bool, limit: usize) -> Result<String> {
    Ok(match format {
        Format::Table => render::compare::table(c, render::style::Style::terminal(color), limit),
        Format::Json => serde_json::to_string_pretty(c)? + "\n",
        Format::Markdown => render::compare::markdown(c, limit),
        Format::Junit => render::junit::junit(c),
    })
}

/// The comparison as text for stdout, and the exit code: 0 no regression, 1 regression (an
/// unreadable input is an error, exit 2). `output` also gets the comparison as JSON.
pub fn run(
    args: &CompareArgs,
    output: Option<&Path>,
    json: bool,
    color: bool,
) -> Result<(String, i32)> {
    let c = load_and_compare(args)?;
    if let Some(path) = output {
        let json = serde_json::to_string_pretty(&c)? + "\n";
        crate::output::write_atomic(path, json.as_bytes(), "the comparison")?;
    }
    let format = if json { Format::Json } else { args.format };
    let text = render(&c, format, color && format == Format::Table, args.limit)?;
    Ok((text, if c.regression { exit::FAIL } else { exit::OK }))
}
