//! `gpu-doctor health`: one fast command a scheduler runs on every node — the driver loads, the
//! GPU count is right, `info`'s and `topo`'s findings, and (`--quick`, the default) a small
//! allocation, a kernel and a sync on every GPU at once; `--thorough` adds `inject oom` and
//! copy bandwidth against thresholds. It answers each engine in its own terms: a report,
//! node-problem-detector's one line and exit code (`--format npd`), a Slurm drain
//! (`--drain`), a Prolog's explicit choice when it cannot run (`--on-error`). docs/health.md.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::topology::{self, TopoView};
use crate::analyze::{health, node_health, slurm, verdict};
use crate::context::{RunCtx, RunOptions};
use crate::error::{exit, exit_code_of, input};
use crate::facts::gpu_check::{GpuCheck, GpuCheckRun};
use crate::facts::slurm::SlurmOutcome;
use crate::facts::{GpuHealth, TopoFacts};
use crate::probe::gpu_check::{self, CheckTarget};
use crate::probe::nvml::NvmlProbe;
use crate::render::node_health as text;
use crate::render::style::Style;
use crate::report::{Analysis, Finding, Host, Report, Severity, Status, codes};
use crate::scenarios::bandwidth::{self as bw, BandwidthData, BandwidthParams};
use crate::scenarios::{Finished, Probed, Scenario};
use crate::units::Span;

/// How the result is given.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The usual report (tables; --json, --markdown, -o as for any command).
    #[default]
    Report,
    /// Kubernetes node-problem-detector custom plugin: one line of at most 80 characters,
    /// exit 0 OK, 1 problem, 2 unknown (could not run).
    Npd,
}

/// What "cannot run here" means for this node (a Prolog or Epilog must choose: docs/health.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// A node where the check cannot run is unhealthy: exit 1 (a Prolog drains it and requeues
    /// the job), drained with --drain, NPD problem.
    Drain,
    /// A node where the check cannot run passes (exit 0), with a warning.
    Pass,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthParams {
    /// GPUs this node must have: another count fails (GPU_COUNT_MISMATCH), and a driver that
    /// does not load is a failure (DRIVER_NOT_LOADED) rather than "cannot run".
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_gpus: Option<u32>,
    /// NVML checks and, on every GPU at once, a small allocation, a kernel and a sync (the
    /// default).
    #[arg(long, conflicts_with = "thorough")]
    #[serde(skip)]
    #[schemars(skip)]
    pub quick: bool,
    /// Also `inject oom` on every GPU and copy bandwidth against thresholds (seconds, not
    /// milliseconds: not for a Prolog).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub thorough: bool,
    /// With --thorough: pinned host-to-device copies below this many GB/s fail.
    #[arg(long, value_name = "GB/S", requires = "thorough")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_h2d_gbps: Option<f64>,
    /// With --thorough: pinned device-to-host copies below this many GB/s fail.
    #[arg(long, value_name = "GB/S", requires = "thorough")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_d2h_gbps: Option<f64>,
    /// A GPU whose quick check has not finished after this long fails (GPU_CHECK_TIMEOUT).
    #[arg(long, default_value_t = Self::default().gpu_timeout, value_name = "DURATION")]
    pub gpu_timeout: Span,
    /// How to answer: the report, or one line for node-problem-detector (npd).
    #[arg(long, value_enum, default_value_t = Format::Report)]
    #[serde(skip_serializing_if = "is_report")]
    pub format: Format,
    /// Slurm HealthCheckProgram: drain this node (scontrol) when it is unhealthy, with a
    /// reason starting "gpu-doctor:"; never touches a DOWN node or another's reason.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// With --drain: resume the node when it is healthy again and gpu-doctor drained it.
    #[arg(long, requires = "drain")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
    /// With --drain: the node's Slurm name (default: SLURMD_NODENAME, else the short host name).
    #[arg(long, value_name = "NAME", requires = "drain")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_node: Option<String>,
    /// When the check cannot run here (no driver, no CUDA): drain (fail) or pass. Unset: exit
    /// 3 (npd: 2), and a missing CUDA driver only warns.
    #[arg(long, value_enum, value_name = "POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
}

fn is_report(f: &Format) -> bool {
    *f == Format::Report
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            expect_gpus: None,
            quick: false,
            thorough: false,
            min_h2d_gbps: None,
            min_d2h_gbps: None,
            gpu_timeout: "10s".parse().expect("a duration"),
            format: Format::Report,
            drain: false,
            resume: false,
            slurm_node: None,
            on_error: None,
        }
    }
}

impl HealthParams {
    fn bandwidth(&self) -> BandwidthParams {
        BandwidthParams {
            // Pageable copies swing with the host: information, not a health verdict.
            no_pageable: true,
            min_h2d_gbps: self.min_h2d_gbps,
            min_d2h_gbps: self.min_d2h_gbps,
            ..Default::default()
        }
    }
}

/// What a health report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_gpus: Option<u32>,
    /// GPUs NVML counts (None when the driver did not load).
    #[serde(default)]
    pub gpu_count: Option<u32>,
    /// Why the driver did not load (with --expect-gpus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_error: Option<String>,
    /// Why nothing could run (with --on-error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cannot_run: Option<String>,
    #[serde(default)]
    pub gpus: Vec<GpuHealth>,
    #[serde(default)]
    pub topo: TopoFacts,
    #[serde(default)]
    pub view: TopoView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<GpuCheckRun>,
    /// --thorough: each GPU's `inject oom` report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oom: Vec<Report>,
    /// --thorough: the copy bandwidth measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthData>,
    /// --thorough parts that could not run, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thorough_skipped: Vec<String>,
    /// --drain: what was done in Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmOutcome>,
}

pub struct Health;

impl Scenario for Health {
    type Params = HealthParams;
    type Data = HealthData;
    const NAME: &'static str = "health";
    const ABOUT: &'static str = "One fast node check for schedulers: driver, GPU count, NVML findings, a kernel on every GPU at once; Slurm drain, node-problem-detector, NHC.";
    const EXAMPLES: &'static str = "gpu-doctor health --expect-gpus 8\ngpu-doctor health --format npd   # Kubernetes node-problem-detector plugin\ngpu-doctor health --drain --expect-gpus 8   # Slurm HealthCheckProgram (deploy/slurm/)\ngpu-doctor health --on-error drain --expect-gpus 8   # Slurm Prolog\ngpu-doctor health --thorough --min-h2d-gbps 48";

    fn validate(params: &HealthParams) -> Result<()> {
        if params.gpu_timeout.duration() < Duration::from_millis(100) {
            return Err(input("--gpu-timeout must be at least 100ms"));
        }
        if params.thorough {
            params.bandwidth().plan()?;
        }
        Ok(())
    }

    fn probe(params: &HealthParams, ctx: &RunCtx) -> Result<Probed<HealthData>> {
        let expected = params.expect_gpus;
        let mut data = HealthData {
            expected_gpus: expected,
            ..Default::default()
        };
        let nvml = match NvmlProbe::open() {
            Ok(n) => n,
            Err(e) if expected.is_some_and(|n| n > 0) && exit_code_of(&e) == exit::UNAVAILABLE => {
                data.driver_error = Some(format!("{e:#}"));
                return Ok(Probed::new(data, Host::default(), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let count = nvml.device_count()?;
        data.gpu_count = Some(count);
        if count == 0 && expected.is_some_and(|n| n > 0) {
            // The count finding says it all; there is nothing else to read.
            return Ok(Probed::new(data, nvml.host(), Vec::new()));
        }
        let selected = nvml.select(&ctx.opts.devices)?;
        // Bus ids and users first (cheap), so the GPUs get their work while NVML reads the
        // rest. A GPU another process holds memory on (a job) is not given work.
        let mut targets = Vec::new();
        let mut busy = Vec::new();
        for d in selected.iter().filter_map(|&i| nvml.device_info(i).ok()) {
            let users = nvml.processes(d.index);
            if users.is_empty() {
                targets.push(CheckTarget {
                    index: d.index,
                    pci_bus_id: d.pci_bus_id,
                });
            } else {
                let mib: u64 = users.iter().filter_map(|p| p.used_bytes).sum::<u64>() >> 20;
                busy.push(GpuCheck {
                    index: d.index,
                    pci_bus_id: d.pci_bus_id,
                    busy: Some(format!("{} process(es) holding {mib} MiB", users.len())),
                    ..Default::default()
                });
            }
        }
        let timeout = params.gpu_timeout.duration();
        let (check, gpus, topo) = std::thread::scope(|s| {
            let check = s.spawn(|| gpu_check::check_gpus(&targets, timeout));
            let gpus: Result<Vec<GpuHealth>> = selected
                .iter()
                .map(|&i| nvml.health(i).map(|(_, h)| h))
                .collect();
            let topo = nvml.topology_and_devices(&selected);
            let check = check
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (check, gpus, topo)
        });
        let mut check = check;
        if check.unavailable.is_none() {
            check.gpus.extend(busy);
            check.gpus.sort_by_key(|g| g.index);
        }
        let (mut devices, topo) = topo?;
        for d in devices.iter_mut() {
            d.cuda_ordinal = check
                .gpus
                .iter()
                .find(|g| g.index == d.index)
                .and_then(|g| g.cuda_ordinal);
        }
        data.gpus = gpus?;
        data.topo = topo;
        let cuda_ok = check.unavailable.is_none();
        data.check = Some(check);
        if params.thorough {
            if cuda_ok {
                thorough(params, ctx, &nvml, &mut devices, &mut data)?;
            } else {
                data.thorough_skipped.push(
                    "inject oom and bandwidth: no CUDA driver here (see the quick check)".into(),
                );
            }
        }
        Ok(Probed::new(data, nvml.host(), devices))
    }

    fn analyze(params: &HealthParams, data: &mut HealthData, _run: &Report) -> Analysis {
        let mut a = Analysis::default();
        if let Some(why) = &data.cannot_run {
            a.findings.push(cannot_run_finding(why, params.on_error));
            return a;
        }
        if let Some(why) = &data.driver_error {
            a.findings.push(node_health::driver_not_loaded(
                why,
                data.expected_gpus.unwrap_or(0),
            ));
            return a;
        }
        if let Some(f) = data
            .gpu_count
            .and_then(|n| node_health::gpu_count(data.expected_gpus, n))
        {
            a.findings.push(f);
        }
        a.findings.extend(health::findings(&data.gpus));
        // A lost GPU is already said once, by its health.
        a.findings.extend(
            topology::findings(&data.topo)
                .into_iter()
                .filter(|f| f.code != codes::GPU_LOST),
        );
        data.view = topology::view(&data.topo);
        if let Some(check) = &data.check {
            let (f, m) = node_health::gpu_check(check, params.on_error == Some(OnError::Drain));
            a.findings.extend(f);
            a.metrics.extend(m);
        }
        let (f, m) = node_health::thorough(&data.oom, &data.thorough_skipped);
        a.findings.extend(f);
        a.metrics.extend(m);
        if let Some(b) = &mut data.bandwidth {
            let t = params.bandwidth().thresholds();
            let more = bw::analyze_data(b, &t);
            a.findings.extend(more.findings);
            a.metrics.extend(more.metrics);
        }
        a
    }

    fn render(data: &HealthData, report: &Report, out: &mut String, style: Style) {
        let mut rows: Vec<(&str, String)> = Vec::new();
        if let Some(why) = &data.cannot_run {
            rows.push(("could not run", why.clone()));
        }
        rows.push((
            "driver",
            match (&data.driver_error, &report.host.driver_version) {
                (Some(e), _) => format!("did not load: {e}"),
                (None, Some(v)) => format!(
                    "{v} (CUDA {})",
                    report.host.cuda_driver_version.as_deref().unwrap_or("?")
                ),
                (None, None) => "-".into(),
            },
        ));
        rows.push((
            "GPUs",
            match (data.gpu_count, data.expected_gpus) {
                (Some(n), Some(e)) => format!("{n} (expected {e})"),
                (Some(n), None) => n.to_string(),
                (None, Some(e)) => format!("- (expected {e})"),
                (None, None) => "-".into(),
            },
        ));
        if let Some(c) = &data.check {
            rows.push((
                "quick check",
                match &c.unavailable {
                    Some(why) => format!("not run: {why}"),
                    None => format!("{} GPU(s) in parallel, {:.0} ms", c.gpus.len(), c.wall_ms),
                },
            ));
        }
        if !data.oom.is_empty() || data.bandwidth.is_some() {
            let oom: Vec<String> = data
                .oom
                .iter()
                .map(|r| r.status.as_str().to_string())
                .collect();
            rows.push((
                "thorough",
                format!(
                    "inject oom: {}; bandwidth: {}",
                    oom.join(", "),
                    if data.bandwidth.is_some() {
                        "measured"
                    } else {
                        "-"
                    }
                ),
            ));
        }
        if let Some(s) = &data.slurm {
            let what = match (&s.error, s.action.as_str()) {
                (Some(e), _) => format!("error: {e}"),
                (None, "none") => format!("nothing done: {}", s.why),
                (None, a) => format!("{a}: {}", s.reason.as_deref().unwrap_or(&s.why)),
            };
            rows.push(("slurm", what));
        }
        text::summary(out, &rows, style);
        let names: Vec<(u32, String)> = report
            .devices
            .iter()
            .map(|d| (d.index, d.name.clone()))
            .collect();
        text::gpus(out, &names, data.check.as_ref(), &report.findings, style);
        if let Some(b) = &data.bandwidth {
            bw::render(b, out, style);
        }
    }

    fn finish(params: &HealthParams, result: Result<Report>) -> Result<Finished> {
        let mut report = match result {
            Ok(r) => r,
            // A mistake on the command line stays one, whatever the policy.
            Err(e) if params.on_error.is_some() && exit_code_of(&e) != exit::USAGE => {
                cannot_run_report(params, &format!("{e:#}"))
            }
            Err(e) if params.format == Format::Npd => {
                return Ok(Finished::Line {
                    report: None,
                    text: text::unknown_line(&format!("{e:#}")),
                    code: NPD_UNKNOWN,
                });
            }
            Err(e) => return Err(e),
        };
        if params.drain {
            let outcome = drain(params, &report);
            if let Some(e) = &outcome.error {
                eprintln!("gpu-doctor: --drain: {e}");
            }
            if let Some(obj) = report.data.as_object_mut() {
                obj.insert("slurm".into(), serde_json::to_value(&outcome)?);
            }
        }
        Ok(match params.format {
            Format::Report => Finished::Report(report),
            Format::Npd => {
                let code = match report.status {
                    _ if report.interrupted => NPD_UNKNOWN,
                    Status::Pass | Status::Warn => exit::OK,
                    Status::Fail | Status::Error => exit::FAIL,
                    Status::Skipped => NPD_UNKNOWN,
                };
                Finished::Line {
                    text: text::one_line(&report),
                    report: Some(report),
                    code,
                }
            }
        })
    }
}

/// node-problem-detector's "unknown": anything but 0 and 1; 2 by its custom plugin protocol.
const NPD_UNKNOWN: i32 = 2;

fn cannot_run_finding(why: &str, policy: Option<OnError>) -> Finding {
    let (severity, hint) = match policy {
        Some(OnError::Drain) => (
            Severity::Fail,
            "--on-error drain: a node where the check cannot run is taken out of service. Fix the driver (or gpu-doctor's install) and resume it.",
        ),
        _ => (
            Severity::Warn,
            "--on-error pass: the node stays in service unchecked. Fix the driver (or gpu-doctor's install) so the check runs.",
        ),
    };
    Finding::new(
        severity,
        codes::HEALTH_CANNOT_RUN,
        format!("the health check could not run: {why}"),
    )
    .hint(hint)
}

/// The report of a run that could not happen, under an `--on-error` policy.
fn cannot_run_report(params: &HealthParams, why: &str) -> Report {
    let mut r = Report::begin(
        Health::NAME,
        serde_json::to_value(params).unwrap_or_default(),
    );
    let mut data = HealthData {
        expected_gpus: params.expect_gpus,
        cannot_run: Some(why.to_string()),
        ..Default::default()
    };
    r.findings = Health::analyze(params, &mut data, &r).findings;
    r.data = serde_json::to_value(&data).unwrap_or_default();
    r.host.hostname = crate::probe::nvml::host_name();
    r.host.kernel = crate::probe::nvml::kernel_release();
    verdict::finalize(&mut r);
    r
}

/// `--thorough`: `inject oom` on every GPU at once (each in its own child process, as the
/// command runs it), then copy bandwidth GPU by GPU.
fn thorough(
    params: &HealthParams,
    ctx: &RunCtx,
    nvml: &NvmlProbe,
    devices: &mut [crate::report::DeviceInfo],
    data: &mut HealthData,
) -> Result<()> {
    let live: Vec<u32> = data
        .gpus
        .iter()
        // Not a lost GPU, nor one a job uses: inject oom fills the memory.
        .filter(|g| g.lost.is_none() && g.processes.is_empty())
        .map(|g| g.index)
        .collect();
    let oom: Vec<Result<Report>> = std::thread::scope(|s| {
        let jobs: Vec<_> = live
            .iter()
            .map(|&i| {
                let opts = RunOptions {
                    devices: vec![i.to_string()],
                    ..ctx.opts.clone()
                };
                s.spawn(move || {
                    crate::isolate::run_isolated("inject oom", &serde_json::json!({}), &opts)
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (i, r) in live.iter().zip(oom) {
        match r {
            Ok(r) => data.oom.push(r),
            Err(e) => data
                .thorough_skipped
                .push(format!("inject oom on GPU {i}: {e:#}")),
        }
    }
    if ctx.interrupted() {
        return Ok(());
    }
    let mut measured: Vec<crate::report::DeviceInfo> = devices
        .iter()
        .filter(|d| live.contains(&d.index))
        .cloned()
        .collect();
    match bw::measure(ctx, nvml, &mut measured, &data.topo, &params.bandwidth()) {
        Ok(b) => data.bandwidth = Some(b),
        Err(e) if exit_code_of(&e) == exit::UNAVAILABLE => {
            data.thorough_skipped.push(format!("bandwidth: {e:#}"))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `--drain`: reads this node in Slurm, decides (analyze::slurm), and runs scontrol.
fn drain(params: &HealthParams, report: &Report) -> SlurmOutcome {
    let node = crate::probe::slurm::node_name(params.slurm_node.as_deref());
    let problem = report.status.is_failure().then(|| text::one_line(report));
    let before = match crate::probe::slurm::show_node(&node) {
        Ok(n) => n,
        Err(e) => {
            return SlurmOutcome {
                action: "none".into(),
                why: format!("node {node} could not be read"),
                error: Some(format!("{e:#}")),
                ..Default::default()
            };
        }
    };
    let (action, why) = slurm::decide(&before, problem.as_deref(), params.resume);
    let command = action.scontrol_args(&node);
    let error = if command.is_empty() {
        None
    } else {
        crate::probe::slurm::update(&command)
            .err()
            .map(|e| format!("{e:#}"))
    };
    SlurmOutcome {
        before: Some(before),
        action: action.name().into(),
        reason: match &action {
            slurm::Action::Drain(r) | slurm::Action::UpdateReason(r) => Some(r.clone()),
            _ => None,
        },
        why,
        command: if command.is_empty() {
            command
        } else {
            std::iter::once("scontrol".to_string())
                .chain(command)
                .collect()
        },
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_cannot_happen_follows_the_policy() {
        let p = HealthParams {
            on_error: Some(OnError::Drain),
            ..Default::default()
        };
        let r = cannot_run_report(&p, "no NVIDIA driver");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.findings[0].code, codes::HEALTH_CANNOT_RUN);
        assert_eq!(
            text::one_line(&r),
            "HEALTH_CANNOT_RUN: the health check could not run: no NVIDIA driver"
        );
        let p = HealthParams {
            on_error: Some(OnError::Pass),
            ..Default::default()
        };
        assert_eq!(cannot_run_report(&p, "x").status, Status::Warn);
    }
}
