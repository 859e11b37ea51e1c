//! `gpu-doctor fleet REPORTS… | DIR`: many nodes' reports (`srun -N 64 gpu-doctor run … -o
//! %N.json`, a Kubernetes Indexed Job writing to a volume) read in parallel, each reduced to
//! its summary as soon as it is parsed (analyze::fleet), then the nodes that stand out in
//! their group. Exit 0 none flagged, 1 a node flagged, 2 input (docs/fleet.md).
//!
//! A built-in command, not a scenario: it probes nothing and runs on no GPU, it reads many
//! reports rather than making one, and scenarios' machinery (devices, --from, NVML replay,
//! suites) has nothing to say about it — as `compare`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::analyze::compare::parse_percent;
use crate::analyze::fleet::{self, Fleet, Interner, NodeSummary, Options, ReportView};
use crate::error::{exit, input};
use crate::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Terminal tables: the groups, then the flagged nodes, worst first.
    Table,
    /// Everything, as JSON (same as --json).
    Json,
    /// GitHub-flavoured Markdown.
    Markdown,
}

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Reports of many nodes (any scenario or suite, JSON), or folders standing for every
    /// *.json report in them.
    #[arg(value_name = "REPORT|DIR", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// A metric is an outlier this many robust standard deviations (1.4826 × MAD) from its
    /// group's median, in the worse direction ...
    #[arg(long, default_value_t = Options::default().sigmas, value_name = "K")]
    pub sigmas: f64,
    /// ... and at least this far from it, for every metric (default by the metric's kind: 5 %
    /// for rates and counts, 25 % for volatile paths, 100 % for one-off timings).
    #[arg(long, value_parser = parse_percent, value_name = "PERCENT")]
    pub min_gap: Option<f64>,
    /// Groups with fewer nodes are not judged on metrics.
    #[arg(long, default_value_t = Options::default().min_peers, value_name = "N")]
    pub min_peers: usize,
    /// Flagged nodes shown in table and markdown output (0: all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// Reports parsed at once (default: the CPUs available).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// The report files the arguments name: files as given, a folder as the `*.json` in it
/// (sorted by name).
pub fn report_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in inputs {
        if !a.is_dir() {
            if !a.exists() {
                return Err(input(format!("{}: no such file or folder", a.display())));
            }
            out.push(a.clone());
            continue;
        }
        let found = crate::output::json_files_in(a)?;
        if found.is_empty() {
            return Err(input(format!(
                "{}: no report (*.json) in this folder",
                a.display()
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Reads and summarises every report, `jobs` at a time; a report that cannot be read is
/// returned with its error instead. Summaries come back in the order of `paths`.
pub fn summarize_all(paths: &[PathBuf], jobs: usize) -> (Vec<NodeSummary>, Vec<(String, String)>) {
    let next = AtomicUsize::new(0);
    // Bounded: a slow collector holds back the readers instead of queueing summaries.
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<NodeSummary, String>)>(1024);
    let mut slots: Vec<Option<Result<NodeSummary, String>>> = Vec::new();
    slots.resize_with(paths.len(), || None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(paths.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    let _ = tx.send((i, read_one(p)));
                }
            });
        }
        drop(tx);
        let mut interner = Interner::default();
        for (i, r) in rx {
            slots[i] = Some(r.map(|mut n| {
                interner.intern(&mut n);
                n
            }));
        }
    });
    let mut nodes = Vec::new();
    let mut unreadable = Vec::new();
    for (p, slot) in paths.iter().zip(slots) {
        match slot {
            Some(Ok(n)) => nodes.push(n),
            Some(Err(e)) => unreadable.push((p.display().to_string(), e)),
            None => unreadable.push((p.display().to_string(), "not read".into())),
        }
    }
    disambiguate(&mut nodes);
    (nodes, unreadable)
}

fn read_one(path: &Path) -> Result<NodeSummary, String> {
    let view: ReportView = crate::output::read_report_as(path, |v: &ReportView| v.schema_version)
        .map_err(|e| format!("{e:#}"))?;
    Ok(fleet::summarize(&view, &path.display().to_string()))
}

/// Two reports of one host (two runs, or hosts that all call themselves `localhost`): each
/// is named by its file too.
fn disambiguate(nodes: &mut [NodeSummary]) {
    let mut count: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for n in nodes.iter() {
        *count.entry(n.node.clone()).or_default() += 1;
    }
    for n in nodes.iter_mut() {
        if count[&n.node] > 1 {
            let file = Path::new(&n.source)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.node = format!("{} ({file})", n.node);
        }
    }
}

/// Reads, judges and renders: the text for stdout and the exit code (0 nothing flagged, 1 a
/// node flagged; unreadable inputs are flagged, a missing path is an input error). `output`
/// also gets the fleet as JSON.
pub fn run(
    args: &FleetArgs,
    output: Option<&Path>,
    json: bool,
    style: render::style::Style,
) -> Result<(String, i32)> {
    if !(args.sigmas.is_finite() && args.sigmas >= 0.0) {
        return Err(input("--sigmas must be a number ≥ 0"));
    }
    let mut paths = report_paths(&args.inputs)?;
    if let Some(out) = output {
        // A report named on the command line is never overwritten; the fleet report left in
        // a folder of reports by an earlier run is not one of them.
        let named: Vec<&Path> = args
            .inputs
            .iter()
            .filter(|p| !p.is_dir())
            .map(PathBuf::as_path)
            .collect();
        crate::output::check_distinct(&named, &[("-o", out)])?;
        let out_abs = std::fs::canonicalize(out).ok();
        paths.retain(|p| out_abs.is_none() || std::fs::canonicalize(p).ok() != out_abs);
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let (nodes, unreadable) = summarize_all(&paths, jobs);
    let opts = Options {
        sigmas: args.sigmas,
        min_gap: args.min_gap,
        min_peers: args.min_peers.max(2),
    };
    let f: Fleet = fleet::analyze(&nodes, &unreadable, &opts);
    if let Some(path) = output {
        let text = serde_json::to_string_pretty(&f)? + "\n";
        crate::output::write_atomic(path, text.as_bytes(), "the fleet report")?;
    }
    let format = if json { Format::Json } else { args.format };
    let text = match format {
        Format::Json => render::text::json_printable(serde_json::to_string_pretty(&f)? + "\n"),
        Format::Table if !style.markdown => render::fleet::fleet(&f, style, args.limit),
        Format::Table | Format::Markdown => {
            render::fleet::fleet(&f, render::style::Style::markdown(), args.limit)
        }
    };
    Ok((
        text,
        if f.flagged.is_empty() {
            exit::OK
        } else {
            exit::FAIL
        },
    ))
}
