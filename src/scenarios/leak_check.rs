//! `gpu-doctor leak-check [--fail-over SIZE] [--survive-after D] [--snapshot-every D] -- COMMAND`:
//! the program runs with the CUDA shim recording every device allocation and free with its
//! call site; the report says what was left allocated and where, how the memory held moved
//! over the run, and what a framework's pool only cached (docs/memory.md).
//!
//! Launcher: src/program/mod.rs (with the Python pool hook, src/program/python_hook.rs); call
//! sites resolved by src/program/symbols.rs; analysis: src/analyze/leaks.rs (and the generic
//! program-mode findings of src/analyze/program.rs); tables: src/render/leaks.rs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shim_proto::cuda::config::{Config, DEFAULT_FRAMES, MAX_FRAMES};

use crate::analyze::leaks::{self, Tracker};
use crate::analyze::program::{self as program_analysis, Expect, Mode};
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::leaks::{LeakDigest, Symbols};
use crate::facts::program::{Ended, Outcome};
use crate::probe::nvml::NvmlProbe;
use crate::program::{self, Launch, Watch, tail::EventTail};
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario};
use crate::units::{Size, Span, format_bytes};

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LeakCheckParams {
    /// Fail when more than SIZE is left allocated at the end (at exit, until its context was
    /// destroyed, or referenced by a framework at exit), e.g. 0, 64MiB.
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_over: Option<Size>,
    /// Stop COMMAND after this long (a service) and report what it held and how it grew.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survive_after: Option<Span>,
    /// While COMMAND runs, write the memory held and its growth this often (stderr, or
    /// --snapshot-file).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<Span>,
    /// Append each snapshot to FILE as one JSON line instead of stderr.
    #[arg(long, value_name = "FILE", requires = "snapshot_every")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_file: Option<PathBuf>,
    /// Frames of each allocation's call site kept (1 to 24).
    #[arg(long, value_name = "N", default_value_t = Self::default().frames)]
    pub frames: u32,
    /// Leave PYTHONPATH alone: framework pools (PyTorch, CuPy, JAX) are then not told apart
    /// from memory the program references.
    #[arg(long)]
    pub no_framework_hooks: bool,
    /// What COMMAND should do: survive (exit 0, or still running at --survive-after) or fail.
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl Default for LeakCheckParams {
    fn default() -> Self {
        LeakCheckParams {
            fail_over: None,
            survive_after: None,
            snapshot_every: None,
            snapshot_file: None,
            frames: DEFAULT_FRAMES,
            no_framework_hooks: false,
            expect: Expect::Survive,
            command: vec![],
        }
    }
}

/// What a `leak-check` report stores: the program-mode digest (docs/shim.md) and `leaks`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LeakCheckData {
    /// The run as observed (not stored: the digest is).
    #[serde(skip)]
    run: Option<LeakRun>,
    #[serde(flatten)]
    pub program: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub leaks: Option<LeakDigest>,
}

#[derive(Debug)]
struct LeakRun {
    outcome: Outcome,
    symbols: Symbols,
    /// Device memory free near the end, per CUDA ordinal.
    free_bytes: BTreeMap<i64, u64>,
}

/// The snapshots of `--snapshot-every`: the events read as they come, one line each period.
struct Snapshots {
    every: Duration,
    next: Duration,
    tail: Option<EventTail>,
    tracker: Tracker,
    file: Option<PathBuf>,
    quiet: bool,
}

impl Snapshots {
    fn tick(&mut self, w: &Watch<'_>) {
        if w.elapsed < self.next {
            return;
        }
        self.next = w.elapsed + self.every;
        let Some(events) = w.events else { return };
        let tail = self.tail.get_or_insert_with(|| EventTail::new(events));
        for e in tail.read_new() {
            self.tracker.feed(&e);
        }
        let now = w.start_us + w.elapsed.as_micros() as u64;
        let (held, peak) = self.tracker.held();
        let (allocations, frees) = self.tracker.counts();
        let rate = self.tracker.recent_rate(now, self.every.as_micros() as u64);
        let line = serde_json::json!({
            "t_s": w.elapsed.as_secs_f64(),
            "held_bytes": held,
            "peak_bytes": peak,
            "allocations": allocations,
            "frees": frees,
            "rate_bytes_per_s": rate,
        });
        match &self.file {
            Some(path) => {
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(e) = written {
                    eprintln!(
                        "gpu-doctor: leak-check: cannot write {}: {e}",
                        path.display()
                    );
                }
            }
            None if !self.quiet => eprintln!(
                "gpu-doctor leak-check: {:.0} s: held {} (peak {}), {allocations} allocation(s), {frees} free(s), {}{}/s over the last {}",
                w.elapsed.as_secs_f64(),
                format_bytes(held),
                format_bytes(peak),
                if rate < 0.0 { "-" } else { "+" },
                format_bytes(rate.abs() as u64),
                crate::units::format_span(self.every.as_secs_f64())
            ),
            None => {}
        }
    }
}

/// Free device memory per CUDA ordinal, where the NVML index behind each ordinal is known: one
/// GPU visible, or CUDA_DEVICE_ORDER=PCI_BUS_ID (NVML orders by bus too), through
/// CUDA_VISIBLE_DEVICES when it lists indices. Empty otherwise (no OOM estimate).
fn free_by_ordinal(
    samples: &BTreeMap<u32, u64>,
    visible: Option<&str>,
    bus_order: bool,
) -> BTreeMap<i64, u64> {
    let order: Vec<u32> = match visible {
        None => samples.keys().copied().collect(),
        Some(list) => {
            let parsed: Option<Vec<u32>> = list.split(',').map(|s| s.trim().parse().ok()).collect();
            let Some(parsed) = parsed else {
                return BTreeMap::new();
            };
            parsed
        }
    };
    if order.len() > 1 && !bus_order {
        return BTreeMap::new();
    }
    order
        .iter()
        .enumerate()
        .filter_map(|(ordinal, index)| samples.get(index).map(|f| (ordinal as i64, *f)))
        .collect()
}

pub struct LeakCheck;

impl Scenario for LeakCheck {
    type Params = LeakCheckParams;
    type Data = LeakCheckData;
    const NAME: &'static str = "leak-check";
    const ABOUT: &'static str = "Run a program and report the device memory it leaks: left allocated by call site, growth over time, framework pools (LD_PRELOAD shim).";
    const EXAMPLES: &'static str = "gpu-doctor leak-check -- ./app\ngpu-doctor leak-check --fail-over 0 -- ./test_suite   # CI: fail on any leak\ngpu-doctor leak-check --survive-after 10m --snapshot-every 1m -- ./server\ngpu-doctor leak-check -o leaks.json -- python train.py";
    const REANALYSABLE: bool = false;

    fn validate(p: &LeakCheckParams) -> Result<()> {
        crate::scenarios::program::need_command(&p.command, Self::NAME)?;
        if p.frames == 0 || p.frames > MAX_FRAMES {
            return Err(input(format!(
                "leak-check: --frames {} is not in 1..={MAX_FRAMES}",
                p.frames
            )));
        }
        if p.snapshot_file.is_some() && p.snapshot_every.is_none() {
            return Err(input("leak-check: --snapshot-file needs --snapshot-every"));
        }
        Ok(())
    }

    fn probe(p: &LeakCheckParams, ctx: &RunCtx) -> Result<Probed<LeakCheckData>> {
        let config = Config {
            leaks: true,
            frames: p.frames,
            ..Config::default()
        };
        // NVML, when there is one: the free memory near the end, for the OOM estimate.
        let nvml = NvmlProbe::open().ok();
        let gpus = nvml
            .as_ref()
            .and_then(|n| n.device_count().ok())
            .unwrap_or(0);
        let mut free: BTreeMap<u32, u64> = BTreeMap::new();
        let mut next_sample = Duration::ZERO;
        let mut snapshots = p.snapshot_every.as_ref().map(|every| Snapshots {
            every: every.duration(),
            next: every.duration(),
            tail: None,
            tracker: Tracker::new(program::monotonic_us()),
            file: p.snapshot_file.clone(),
            quiet: ctx.opts.quiet,
        });
        let outcome = program::run_watched(
            &Launch {
                command: &p.command,
                shim: program::Shim::Cuda(config),
                timeout: ctx.opts.timeout,
                survive_after: p.survive_after.as_ref().map(Span::duration),
                framework_hooks: !p.no_framework_hooks,
            },
            &mut |w| {
                if let Some(s) = &mut snapshots {
                    s.tick(w);
                }
                if w.elapsed >= next_sample
                    && let Some(n) = &nvml
                {
                    next_sample = w.elapsed + Duration::from_secs(1);
                    for i in 0..gpus {
                        if let Some(f) = n.memory_free(i) {
                            free.insert(i, f);
                        }
                    }
                }
            },
        )?;
        let symbols = program::symbols::resolve(&outcome.events, &outcome.maps);
        let host = nvml.as_ref().map(|n| n.host()).unwrap_or_default();
        let data = LeakCheckData {
            run: Some(LeakRun {
                outcome,
                symbols,
                free_bytes: free_by_ordinal(
                    &free,
                    std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
                    std::env::var("CUDA_DEVICE_ORDER").is_ok_and(|v| v == "PCI_BUS_ID"),
                ),
            }),
            ..Default::default()
        };
        Ok(Probed::new(data, host, vec![]))
    }

    fn analyze(p: &LeakCheckParams, data: &mut LeakCheckData, _run: &Report) -> Analysis {
        let Some(run) = &data.run else {
            return Analysis::default();
        };
        let o = &run.outcome;
        let generic = program_analysis::analyze(&Mode::Leak, p.expect, &p.command, o);
        if let serde_json::Value::Object(m) = generic.data {
            data.program = m;
        }
        let l = leaks::analyze(&leaks::Input {
            events: &o.events,
            symbols: &run.symbols,
            start_us: o.start_us,
            end_us: o.start_us + (o.duration_ms * 1e3) as u64,
            stopped: o.ended != Ended::Exited,
            free_bytes: &run.free_bytes,
            fail_over: p.fail_over.as_ref().map(Size::bytes),
        });
        data.leaks = Some(l.digest);
        let mut metrics = generic.metrics;
        metrics.extend(l.metrics);
        let mut findings = generic.findings;
        findings.extend(l.findings);
        Analysis { findings, metrics }
    }

    fn render(data: &LeakCheckData, _report: &Report, out: &mut String, style: Style) {
        let program = serde_json::Value::Object(data.program.clone());
        crate::render::program::header(out, &program);
        if let Some(d) = &data.leaks {
            crate::render::leaks::render(out, d, style);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::find;

    #[test]
    fn params_validate_before_anything_runs() {
        let ok = LeakCheckParams {
            command: vec!["true".into()],
            ..Default::default()
        };
        assert!(LeakCheck::validate(&ok).is_ok());
        for bad in [
            LeakCheckParams::default(),
            LeakCheckParams {
                frames: 0,
                ..ok.clone()
            },
            LeakCheckParams {
                frames: 99,
                ..ok.clone()
            },
            LeakCheckParams {
                snapshot_file: Some("x".into()),
                ..ok.clone()
            },
        ] {
            let err = LeakCheck::validate(&bad).unwrap_err();
            assert_eq!(crate::error::exit_code_of(&err), 2, "{bad:?}");
        }
        let s = find(LeakCheck::NAME).unwrap();
        let p = s
            .normalize_params(serde_json::json!({"command": ["./app"], "fail_over": "1MiB"}))
            .unwrap();
        assert_eq!(p["frames"], DEFAULT_FRAMES);
        assert_eq!(p["fail_over"], "1MiB");
    }

    #[test]
    fn free_memory_is_only_mapped_when_the_ordinal_is_known() {
        let one = BTreeMap::from([(0u32, 5u64)]);
        assert_eq!(free_by_ordinal(&one, None, false), BTreeMap::from([(0, 5)]));
        let two = BTreeMap::from([(0u32, 5u64), (1, 7)]);
        assert!(
            free_by_ordinal(&two, None, false).is_empty(),
            "CUDA's order unknown"
        );
        assert_eq!(
            free_by_ordinal(&two, None, true),
            BTreeMap::from([(0, 5), (1, 7)])
        );
        assert_eq!(
            free_by_ordinal(&two, Some("1"), false),
            BTreeMap::from([(0, 7)])
        );
        assert_eq!(
            free_by_ordinal(&two, Some("1,0"), true),
            BTreeMap::from([(0, 7), (1, 5)])
        );
        assert!(free_by_ordinal(&two, Some("GPU-abc"), true).is_empty());
    }
}
