//! `gpu-doctor trace ctx`: context lifetime per OS thread. Four sub-scenarios — thread-hop,
//! device-mixup, push-pop, primary-lifetime — each a deterministic driver sequence recorded
//! call by call (thread, context current before/after, result) into `data.timeline`, analysed
//! into a per-thread summary and findings, and exportable as a Chrome trace.
//!
//! The verdict is whether the driver answered as documented; the findings explain what a
//! service hits when it makes the same mistakes (and how to fix them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, ValueEnum};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::trace_ctx::{self as analysis, TraceData};
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::memory::{MemoryCheck, TOLERANCE_BYTES};
use crate::facts::trace::{DEVICE_MIXUP, PRIMARY_LIFETIME, PUSH_POP, THREAD_HOP};
use crate::probe::cuda::device_for_bus_id;
use crate::probe::loader;
use crate::probe::memory::{self, Watch};
use crate::probe::nvml::NvmlProbe;
use crate::probe::trace_ctx::{self as probe, Tracer};
use crate::render::style::Style;
use crate::report::{Analysis, Better, Metric, MetricKind, Report};
use crate::scenarios::{Probed, Redirect, Scenario};

/// A sub-scenario of `trace ctx`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    ValueEnum,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Sub {
    /// Work items hop across a pool of OS threads; the context is current only on its creator.
    ThreadHop,
    /// Work meant for context/GPU A runs while B is current.
    DeviceMixup,
    /// Context stack: depth, a pop too many, a pop on a thread that never pushed.
    PushPop,
    /// Primary context retain/release counts, release to zero under another user, SetFlags.
    PrimaryLifetime,
}

impl Sub {
    pub const ALL: [Sub; 4] = [
        Sub::ThreadHop,
        Sub::DeviceMixup,
        Sub::PushPop,
        Sub::PrimaryLifetime,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Sub::ThreadHop => THREAD_HOP,
            Sub::DeviceMixup => DEVICE_MIXUP,
            Sub::PushPop => PUSH_POP,
            Sub::PrimaryLifetime => PRIMARY_LIFETIME,
        }
    }
}

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TraceCtxParams {
    /// Sub-scenarios to run (default: all).
    #[arg(value_enum, value_name = "SUB")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub: Vec<Sub>,
    /// Same as the positional SUB, comma-separated: --only thread-hop,push-pop.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<Sub>,
    /// OS threads in the thread-hop pool (2–64).
    #[arg(long, default_value_t = Self::default().threads)]
    pub threads: u32,
    /// Work items thread-hop runs per variant (1–4096).
    #[arg(long, default_value_t = Self::default().tasks)]
    pub tasks: u32,
    /// Also write the timeline as Chrome trace-event JSON (Perfetto, chrome://tracing).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chrome_trace: Option<PathBuf>,
    /// Program mode (`-- COMMAND`): trace any CUDA program's contexts; docs/shim.md.
    #[command(flatten)]
    #[serde(skip)]
    #[schemars(skip)]
    pub program: crate::scenarios::program::TraceProgramArgs,
}

impl Default for TraceCtxParams {
    fn default() -> Self {
        TraceCtxParams {
            sub: vec![],
            only: vec![],
            threads: 4,
            tasks: 16,
            chrome_trace: None,
            program: Default::default(),
        }
    }
}

impl TraceCtxParams {
    /// The sub-scenarios to run, in their fixed order (positional and --only together).
    pub fn selected(&self) -> Vec<Sub> {
        let chosen: Vec<Sub> = self.sub.iter().chain(&self.only).copied().collect();
        Sub::ALL
            .into_iter()
            .filter(|s| chosen.is_empty() || chosen.contains(s))
            .collect()
    }

    fn check(&self) -> Result<()> {
        if !(2..=64).contains(&self.threads) {
            return Err(input(format!(
                "--threads {}: thread-hop needs a pool of 2 to 64 threads",
                self.threads
            )));
        }
        if !(1..=4096).contains(&self.tasks) {
            return Err(input(format!(
                "--tasks {}: give 1 to 4096 work items",
                self.tasks
            )));
        }
        Ok(())
    }
}

pub struct TraceCtx;

impl Scenario for TraceCtx {
    type Params = TraceCtxParams;
    type Data = TraceData;
    const NAME: &'static str = "trace ctx";
    const ABOUT: &'static str =
        "Context lifetime per OS thread: thread hops, device mix-ups, push/pop, primary context.";
    const EXAMPLES: &'static str = "gpu-doctor trace ctx\ngpu-doctor trace ctx thread-hop --chrome-trace hop.json\ngpu-doctor trace ctx -- ./service   # program mode: docs/shim.md";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    /// Bad input is exit 2 before a child or the driver starts.
    fn validate(params: &TraceCtxParams) -> Result<()> {
        params.check()?;
        if let Some(path) = &params.chrome_trace {
            crate::output::check_output(path, "the Chrome trace")?;
        }
        Ok(())
    }

    fn outputs(params: &TraceCtxParams) -> Vec<(&'static str, PathBuf)> {
        params
            .chrome_trace
            .iter()
            .map(|p| ("--chrome-trace", p.clone()))
            .collect()
    }

    fn redirect(params: &TraceCtxParams) -> Option<Result<Redirect>> {
        params.program.redirect(params.chrome_trace.clone())
    }

    fn probe(params: &TraceCtxParams, ctx: &RunCtx) -> Result<Probed<TraceData>> {
        let subs = params.selected();
        let driver = loader::load_cuda()?;
        let nvml = NvmlProbe::open()?;
        let selected = nvml.select(&ctx.opts.devices)?;
        // device-mixup uses two GPUs when two are selected; everything else the first one.
        let want = if subs.contains(&Sub::DeviceMixup) && selected.len() >= 2 {
            2
        } else {
            1
        };
        let used: Vec<u32> = selected.iter().copied().take(want).collect();
        let mut devices = Vec::new();
        let mut cuda = Vec::new();
        for &i in &used {
            let mut info = nvml.device_info(i)?;
            let d = device_for_bus_id(&info.pci_bus_id)?;
            info.cuda_ordinal = Some(d as u32);
            devices.push(info);
            cuda.push(d);
        }
        let watch = Watch::start(ctx, &used);
        let mut checks: Vec<MemoryCheck> = used
            .iter()
            .map(|&i| MemoryCheck {
                device: Some(i),
                ..memory::baseline(&nvml, i)
            })
            .collect();

        let tracer = Tracer::new(ctx);
        tracer.name_thread("main (scenario thread)");
        let mut data = TraceData {
            subs: subs.iter().map(|s| s.name().to_string()).collect(),
            cuda_driver: Some(loader::cuda_version_string(driver.version)),
            pid: std::process::id(),
            ..Default::default()
        };
        let bar = ctx.progress(subs.len() as u64, "trace ctx");
        for sub in &subs {
            if ctx.interrupted() {
                break;
            }
            bar.set_message(format!("trace ctx: {}", sub.name()));
            match sub {
                Sub::ThreadHop => {
                    data.thread_hop =
                        probe::thread_hop(&tracer, cuda[0], params.threads, params.tasks)?
                }
                Sub::DeviceMixup => {
                    let a = (used[0], cuda[0]);
                    let b = if used.len() >= 2 {
                        (used[1], cuda[1])
                    } else {
                        a
                    };
                    data.device_mixup = probe::device_mixup(&tracer, a, b)?;
                }
                Sub::PushPop => {
                    probe::push_pop(&tracer, cuda[0])?;
                }
                Sub::PrimaryLifetime => {
                    data.primary = Some(probe::primary_lifetime(
                        &tracer,
                        cuda[0],
                        used[0],
                        driver.version,
                    )?)
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();

        // Every context is destroyed or released: memory back to where it was (NVML may lag).
        let deadline = Instant::now() + Duration::from_millis(1000);
        loop {
            for (m, &i) in checks.iter_mut().zip(&used) {
                m.nvml_used_after = nvml.memory_used(i);
            }
            let back = checks
                .iter()
                .all(|m| match (m.nvml_used_before, m.nvml_used_after) {
                    (Some(b), Some(a)) => a <= b + TOLERANCE_BYTES,
                    _ => true,
                });
            if back || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for ((m, &i), w) in checks.iter_mut().zip(&used).zip(watch.finish()) {
            memory::after(m, &nvml, i, Some(w));
        }
        data.memory = checks;

        let (events, contexts, threads) = tracer.finish();
        data.timeline = events;
        data.contexts = contexts;
        data.threads = threads;
        Ok(Probed::new(data, nvml.host(), devices))
    }

    /// Per-thread summary, findings, metrics.
    fn analyze(_params: &TraceCtxParams, data: &mut TraceData, run: &Report) -> Analysis {
        data.summary = analysis::summarize(&data.timeline, &data.threads);
        let mut a = Analysis {
            findings: analysis::findings(data),
            ..Default::default()
        };
        let device = run.devices.first().map(|d| d.index);
        let mut metric = |name: &str, v: Option<f64>, unit: &str| {
            if let Some(v) = v {
                // One timed call each: information, not a gate (docs/compare.md).
                let mut m = Metric::new(v, unit, Better::Lower).kind(MetricKind::SingleShot);
                m.device = device;
                a.metrics.insert(name.to_string(), m);
            }
        };
        metric("bind_ctx_us", analysis::bind_cost_us(&data.timeline), "us");
        metric(
            "ctx_create_ms",
            analysis::ctx_create_ms(&data.timeline),
            "ms",
        );
        a
    }

    fn write_outputs(params: &TraceCtxParams, data: &TraceData, _report: &Report) -> Result<()> {
        match &params.chrome_trace {
            Some(path) => write_chrome_trace(path, data),
            None => Ok(()),
        }
    }

    fn render(data: &TraceData, _report: &Report, out: &mut String, style: Style) {
        crate::render::trace_ctx::trace_ctx(out, data, &analysis::view(data), style);
    }
}

/// Writes the Chrome trace atomically (temp file + rename).
pub fn write_chrome_trace(path: &Path, data: &TraceData) -> Result<()> {
    let doc = crate::render::chrome_trace::export(data);
    crate::output::write_atomic(path, &serde_json::to_vec(&doc)?, "the Chrome trace")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::test_support::hop_timeline;
    use crate::report::codes;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        p: TraceCtxParams,
    }

    #[test]
    fn subs_come_from_positionals_and_only_in_fixed_order() {
        let p = Cli::parse_from(["x"]).p;
        assert_eq!(p.selected(), Sub::ALL.to_vec());
        assert_eq!((p.threads, p.tasks), (4, 16));
        let p = Cli::parse_from(["x", "push-pop", "thread-hop"]).p;
        assert_eq!(p.selected(), vec![Sub::ThreadHop, Sub::PushPop]);
        let p = Cli::parse_from(["x", "--only", "primary-lifetime,device-mixup"]).p;
        assert_eq!(p.selected(), vec![Sub::DeviceMixup, Sub::PrimaryLifetime]);
        assert!(Cli::try_parse_from(["x", "thread-hopp"]).is_err());
    }

    #[test]
    fn suite_params_default_and_reject_unknown_fields() {
        let p: TraceCtxParams = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!((p.threads, p.tasks), (4, 16));
        let p: TraceCtxParams =
            serde_json::from_value(serde_json::json!({"only": ["thread-hop"], "threads": 8}))
                .unwrap();
        assert_eq!(p.selected(), vec![Sub::ThreadHop]);
        assert_eq!(p.threads, 8);
        assert!(
            serde_json::from_value::<TraceCtxParams>(serde_json::json!({"thread": 2})).is_err()
        );
        let bad = TraceCtxParams {
            threads: 1,
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn from_saved_report_reanalyses_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let d = hop_timeline(4, 8, false);
        let mut saved = Report::begin(TraceCtx::NAME, serde_json::json!({}));
        saved.data = serde_json::to_value(&d).unwrap();
        // a stale finding in the saved report is recomputed, not copied
        saved.findings.push(crate::report::Finding::new(
            crate::report::Severity::Fail,
            codes::CONTEXT_NOT_CURRENT,
            "old",
        ));
        let rp = dir.path().join("r.json");
        crate::output::write_json_atomic(&rp, &saved).unwrap();
        let tp = dir.path().join("t.json");
        let params = serde_json::json!({ "chrome_trace": tp });
        let opts = crate::context::RunOptions::default();
        let r = crate::runner::execute_named(TraceCtx::NAME, params, Some(&rp), &opts).unwrap();
        assert_eq!(r.status, crate::report::Status::Pass);
        let c: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.code == codes::CONTEXT_NOT_CURRENT)
            .collect();
        assert_eq!(c.len(), 1);
        assert_ne!(c[0].message, "old");
        let data: TraceData = serde_json::from_value(r.data.clone()).unwrap();
        assert_eq!(data.summary.len(), 4);
        assert!(r.metrics.contains_key("bind_ctx_us"));
        let text = crate::scenarios::render_report(&r, Style::terminal(false).with_width(None));
        for want in [
            "Threads (tid and role; stack depth",
            "thread-hop worker 1",
            "CUDA_ERROR_INVALID_CONTEXT (201) ×4",
            "Thread hop (4 threads, 8 in context ctx#1",
            "Calls that did not succeed: 12 of",
            "CONTEXT_NOT_CURRENT",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&tp).unwrap()).unwrap();
        crate::render::chrome_trace::validate(&doc).unwrap();
        let missing = dir.path().join("missing.json");
        let err = crate::runner::execute_named(
            TraceCtx::NAME,
            serde_json::json!({}),
            Some(&missing),
            &opts,
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), crate::error::exit::USAGE);
    }
}
