//! `gpu-doctor compare BASELINE... CURRENT`: reads the reports (a folder stands for the
//! reports in it), checks they are comparable, compares them (analyze::compare) and renders
//! the result. Exit 0 no regression, 1 regression, 2 input (docs/compare.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::analyze::compare::{self, Comparison, Options, parse_metric_tolerance, parse_percent};
use crate::error::{exit, input};
use crate::render;
use crate::render::style::Style;

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
    /// Known-good reports (scenario or suite, JSON), in any order: one or several (history),
    /// or a folder standing for every *.json report in it.
    #[arg(value_name = "BASELINE", required = true, num_args = 1..)]
    pub baselines: Vec<PathBuf>,
    /// The report to check against them (always the last argument).
    #[arg(value_name = "CURRENT.json", required = true)]
    pub current: PathBuf,
    /// One band for every metric (instead of each metric's band from its kind and spread);
    /// single_shot and volatile metrics stay information.
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub tolerance: Option<f64>,
    /// Band of one metric (exact name, or base name covering NAME.gpu<N>); makes it a gate
    /// whatever its kind; repeatable.
    #[arg(long = "tol", value_parser = parse_metric_tolerance, value_name = "NAME=PERCENT")]
    pub tol: Vec<(String, f64)>,
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Rows per section in table and markdown output (0: all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

/// The baseline files the arguments name: files as given, a folder as the `*.json` files in
/// it (sorted by name, the current report left out).
pub fn baseline_paths(args: &[PathBuf], current: &Path) -> Result<Vec<PathBuf>> {
    let current_abs = std::fs::canonicalize(current).ok();
    let mut out = Vec::new();
    for a in args {
        if !a.is_dir() {
            out.push(a.clone());
            continue;
        }
        let found: Vec<PathBuf> = crate::output::json_files_in(a)?
            .into_iter()
            .filter(|p| current_abs.is_none() || std::fs::canonicalize(p).ok() != current_abs)
            .collect();
        if found.is_empty() {
            return Err(input(format!(
                "{}: no baseline report (*.json) in this folder",
                a.display()
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Reads the reports and compares them (what the command does before rendering). Reports that
/// share no scenario are an input error, and so is an `output` that is one of the inputs.
pub fn load_and_compare(args: &CompareArgs, output: Option<&Path>) -> Result<Comparison> {
    let paths = baseline_paths(&args.baselines, &args.current)?;
    // `-o` itself was checked with every command's (cli::execute): here, that it is no input.
    if let Some(out) = output {
        let inputs: Vec<&Path> = paths
            .iter()
            .map(PathBuf::as_path)
            .chain([args.current.as_path()])
            .collect();
        crate::output::check_distinct(&inputs, &[("-o", out)])?;
    }
    let current = printable(crate::output::read_report(&args.current)?, args.format);
    let mut baselines = Vec::with_capacity(paths.len());
    for p in &paths {
        let b = printable(crate::output::read_report(p)?, args.format);
        compare::check_comparable(&b, &current).map_err(|why| {
            input(format!(
                "cannot compare {} with {}: {why}",
                p.display(),
                args.current.display()
            ))
        })?;
        baselines.push(b);
    }
    let opts = Options {
        tolerance: args.tolerance,
        per_metric: args.tol.iter().cloned().collect::<HashMap<_, _>>(),
    };
    Ok(compare::compare_history(&baselines, &current, &opts))
}

/// For text formats, `report` with its strings made safe for a terminal (JSON escapes them
/// itself, JUnit as XML).
fn printable(report: crate::report::Report, format: Format) -> crate::report::Report {
    match format {
        Format::Table | Format::Markdown => render::text::printable_report(&report).into_owned(),
        Format::Json | Format::Junit => report,
    }
}

/// Renders a comparison in the given format.
pub fn render(c: &Comparison, format: Format, style: Style, limit: usize) -> Result<String> {
    Ok(match format {
        Format::Table => render::compare::table(c, style, limit),
        Format::Json => render::text::json_printable(serde_json::to_string_pretty(c)? + "\n"),
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
    style: Style,
) -> Result<(String, i32)> {
    let c = load_and_compare(args, output)?;
    if let Some(path) = output {
        let json = serde_json::to_string_pretty(&c)? + "\n";
        crate::output::write_atomic(path, json.as_bytes(), "the comparison")?;
    }
    let format = if json { Format::Json } else { args.format };
    let text = render(&c, format, style, args.limit)?;
    Ok((text, if c.regression { exit::FAIL } else { exit::OK }))
}
