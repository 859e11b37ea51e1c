//! Program mode scenarios: the user's COMMAND runs with the LD_PRELOAD shim.
//! - `inject oom --` (`gpu-doctor inject oom --limit 4GiB -- COMMAND`): device memory capped.
//! - `inject error` (`gpu-doctor inject error --call … --code … -- COMMAND`): failpoints.
//! - `trace ctx --` (`gpu-doctor trace ctx -- COMMAND`): context operations per OS thread.
//!
//! They are not isolated: COMMAND is the separate process, gpu-doctor only watches it.
//! Launcher: src/program/mod.rs; analysis: src/analyze/program.rs; docs/shim.md.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shim_proto::cuda::config::{Config, Failpoint, Schedule};
use shim_proto::cuda::names as shim_names;

use crate::analyze::program::{self as analysis, Expect, Mode};
use crate::context::RunCtx;
use crate::error;
use crate::facts::cuda_codes;
use crate::facts::program::Outcome;
use crate::probe::nvml::NvmlProbe;
use crate::program::{self, Launch};
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Redirect, Scenario};
use crate::units::{Size, Span};

/// clap value parser for `--code`.
pub fn code_arg(s: &str) -> Result<String, String> {
    cuda_codes::parse_code(s).map(|_| s.to_string())
}

/// An input error (exit 2) for a program mode given no COMMAND.
pub(crate) fn need_command(command: &[String], name: &str) -> Result<()> {
    if command.is_empty() {
        return Err(error::input(format!(
            "{name}: no COMMAND: put the program and its arguments after `--`"
        )));
    }
    Ok(())
}

/// `inject oom --limit SIZE -- COMMAND`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramOomParams {
    /// Device memory COMMAND may hold per device and process (4GiB, 512MiB, 1000000).
    #[arg(long, value_name = "SIZE")]
    pub limit: Option<Size>,
    /// What COMMAND should do under the fault: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION")]
    pub survive_after: Option<Span>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `inject error --call NAME --code CODE [--nth N] [--every N | --probability P --seed S]
/// [--delay DURATION] -- COMMAND`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InjectErrorParams {
    /// Driver call to fail, by base name (cuLaunchKernel, cuMemAlloc, cuStreamSynchronize, …):
    /// every variant (_v2, _ptsz) counts. An unknown name lists the supported ones.
    #[arg(long, value_name = "NAME")]
    pub call: String,
    /// CUresult to return: name (CUDA_ERROR_LAUNCH_FAILED) or number (719). Optional with --delay.
    #[arg(long, value_name = "CODE", value_parser = code_arg)]
    pub code: Option<String>,
    /// First call that fails (1 = the first call).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nth: u64,
    /// Then fail every Nth call after it.
    #[arg(long, value_name = "N", conflicts_with = "probability")]
    pub every: Option<u64>,
    /// Instead, fail each call from --nth on with probability P (0..1), reproducibly by --seed.
    #[arg(long, value_name = "P")]
    pub probability: Option<f64>,
    /// Seed of --probability: the same seed fails the same call indices.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Fail at most N times.
    #[arg(long, value_name = "N")]
    pub times: Option<u64>,
    /// Sleep this long before a scheduled synchronising call (cuStreamSynchronize,
    /// cuCtxSynchronize, cuEventSynchronize), then fail it with --code or let it run.
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<Span>,
    /// What COMMAND should do under the fault: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION")]
    pub survive_after: Option<Span>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `trace ctx -- COMMAND`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramTraceParams {
    /// Also write the timeline as a Chrome trace (chrome://tracing, Perfetto).
    #[arg(long, value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    /// What COMMAND should do under the fault: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION")]
    pub survive_after: Option<Span>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Program-mode flags for the built-in `inject oom` command line: flatten into `OomParams`
/// (`#[command(flatten)] #[serde(skip)] #[schemars(skip)] pub program: OomProgramArgs`) and
/// dispatch on [`OomProgramArgs::params`] in main.rs (docs/shim.md, integration).
#[derive(Debug, Clone, Default, Args)]
pub struct OomProgramArgs {
    /// Program mode: device memory COMMAND may hold per device (4GiB, 512MiB); needs `-- COMMAND`.
    #[arg(long, value_name = "SIZE", requires = "command")]
    pub limit: Option<Size>,
    /// Program mode: what COMMAND should do under the fault: survive (default) or fail.
    #[arg(long, value_enum, requires = "command")]
    pub expect: Option<Expect>,
    /// Program mode: stop COMMAND after this long and count it as survived.
    #[arg(long, value_name = "DURATION", requires = "command")]
    pub survive_after: Option<Span>,
    /// Program mode: the program to run with the shim, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl OomProgramArgs {
    /// None without `-- COMMAND` (the built-in scenario runs); the program-mode scenario with
    /// them.
    pub fn redirect(&self) -> Option<Result<Redirect>> {
        if self.command.is_empty() {
            return None;
        }
        let params = ProgramOomParams {
            limit: self.limit.clone(),
            expect: self.expect.unwrap_or_default(),
            survive_after: self.survive_after.clone(),
            command: self.command.clone(),
        };
        Some(redirect(ProgramOom::NAME, &params))
    }
}

fn redirect(scenario: &'static str, params: &impl Serialize) -> Result<Redirect> {
    Ok(Redirect {
        scenario,
        params: serde_json::to_value(params)?,
    })
}

/// Program-mode flags for the built-in `trace ctx` command line (flatten like
/// [`OomProgramArgs`]); `--chrome-trace` comes from the built-in's own flag.
#[derive(Debug, Clone, Default, Args)]
pub struct TraceProgramArgs {
    /// Program mode: what COMMAND should do: survive (default) or fail.
    #[arg(long, value_enum, requires = "command")]
    pub expect: Option<Expect>,
    /// Program mode: stop COMMAND after this long and count it as survived.
    #[arg(long, value_name = "DURATION", requires = "command")]
    pub survive_after: Option<Span>,
    /// Program mode: the program to trace, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl TraceProgramArgs {
    /// None without `-- COMMAND` (the built-in scenario runs); the program-mode scenario with
    /// them.
    pub fn redirect(&self, chrome_trace: Option<PathBuf>) -> Option<Result<Redirect>> {
        if self.command.is_empty() {
            return None;
        }
        let params = ProgramTraceParams {
            chrome_trace,
            expect: self.expect.unwrap_or_default(),
            survive_after: self.survive_after.clone(),
            command: self.command.clone(),
        };
        Some(redirect(ProgramTrace::NAME, &params))
    }
}

impl InjectErrorParams {
    /// The shim's failpoint, validated (exit 2 on bad input).
    pub fn failpoint(&self) -> Result<Failpoint> {
        let Some(base) =
            shim_names::base_of(self.call.trim()).filter(|b| shim_names::fail_calls().contains(b))
        else {
            return Err(error::input(format!(
                "inject error: --call '{}' is not a driver call the shim can fail. Supported: {}",
                self.call,
                shim_names::fail_calls().join(", ")
            )));
        };
        let code = self
            .code
            .as_deref()
            .map(cuda_codes::parse_code)
            .transpose()
            .map_err(|e| error::input(format!("inject error: --code: {e}")))?
            .unwrap_or(0);
        let delay = self.delay.as_ref().map(Span::duration);
        if delay.is_some() && !shim_names::is_sync(base) {
            return Err(error::input(format!(
                "inject error: --delay applies to synchronising calls (cuStreamSynchronize, cuCtxSynchronize, cuEventSynchronize), not {base}"
            )));
        }
        if code == 0 && delay.is_none() {
            return Err(error::input(
                "inject error: give --code (or --delay for a synchronising call)",
            ));
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(error::input(format!(
                "inject error: --probability {p} is not in [0, 1]"
            )));
        }
        if self.every == Some(0) {
            return Err(error::input("inject error: --every must be at least 1"));
        }
        Ok(Failpoint {
            call: base.to_string(),
            code,
            schedule: Schedule {
                nth: self.nth.max(1),
                every: self.every.unwrap_or(0),
                probability: self.probability,
                seed: self.seed,
                times: self.times.unwrap_or(0),
            },
            delay_us: delay.map(|d| d.as_micros() as u64).unwrap_or(0),
        })
    }
}

/// What a program-mode report stores: a digest of what the shim saw (docs/shim.md). The raw
/// events are only kept in memory, for the analysis of a live run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProgramData {
    #[serde(skip)]
    pub(crate) outcome: Option<Outcome>,
    #[serde(flatten)]
    pub digest: serde_json::Map<String, serde_json::Value>,
}

/// Runs COMMAND with `shim` in it. `nvml`: gpu-doctor's own NVML when the caller has it open
/// already (else it is opened here, after the run, for the driver versions).
pub(crate) fn probe_program(
    ctx: &RunCtx,
    name: &str,
    shim: program::Shim,
    survive_after: &Option<Span>,
    command: &[String],
    nvml: Option<&NvmlProbe>,
) -> Result<Probed<ProgramData>> {
    need_command(command, name)?;
    let outcome = program::run(&Launch {
        command,
        shim,
        timeout: ctx.opts.timeout,
        survive_after: survive_after.as_ref().map(Span::duration),
        framework_hooks: false,
    })?;
    // Driver versions for the record, when NVML is there (program mode itself needs no GPU).
    let host = match nvml {
        Some(nvml) => nvml.host(),
        None => NvmlProbe::open().map(|n| n.host()).unwrap_or_default(),
    };
    let data = ProgramData {
        outcome: Some(outcome),
        digest: Default::default(),
    };
    Ok(Probed::new(data, host, vec![]))
}

/// The verdict on a live run: findings, metrics, and the digest stored in the report.
fn analyze_program(
    mode: &Mode,
    expect: Expect,
    command: &[String],
    data: &mut ProgramData,
) -> Analysis {
    let Some(outcome) = &data.outcome else {
        return Analysis::default();
    };
    let a = analysis::analyze(mode, expect, command, outcome);
    if let serde_json::Value::Object(digest) = a.data {
        data.digest = digest;
    }
    Analysis {
        findings: a.findings,
        metrics: a.metrics,
    }
}

pub(crate) fn render_program(data: &ProgramData, out: &mut String, style: Style) {
    crate::render::program::render(out, &serde_json::Value::Object(data.digest.clone()), style);
}

fn limit_of(p: &ProgramOomParams) -> Result<u64> {
    match p.limit.as_ref().map(Size::bytes) {
        None => Err(error::input(
            "inject oom -- COMMAND: give --limit SIZE (the device memory COMMAND may use)",
        )),
        Some(0) => Err(error::input(
            "inject oom: --limit 0 is no limit a program could live with",
        )),
        Some(n) => Ok(n),
    }
}

pub struct ProgramOom;

impl Scenario for ProgramOom {
    type Params = ProgramOomParams;
    type Data = ProgramData;
    const NAME: &'static str = "inject oom --";
    const ABOUT: &'static str =
        "Run a program with its device memory capped (LD_PRELOAD shim): does it survive OOM?";
    const IN_CLI: bool = false;
    const REANALYSABLE: bool = false;

    fn validate(p: &ProgramOomParams) -> Result<()> {
        limit_of(p).map(|_| ())
    }

    fn probe(p: &ProgramOomParams, ctx: &RunCtx) -> Result<Probed<ProgramData>> {
        let config = Config {
            limit: Some(limit_of(p)?),
            ..Config::default()
        };
        probe_program(
            ctx,
            Self::NAME,
            program::Shim::Cuda(config),
            &p.survive_after,
            &p.command,
            None,
        )
    }

    fn analyze(p: &ProgramOomParams, data: &mut ProgramData, _run: &Report) -> Analysis {
        let limit = limit_of(p).unwrap_or_default();
        analyze_program(&Mode::Oom { limit }, p.expect, &p.command, data)
    }

    fn render(data: &ProgramData, _report: &Report, out: &mut String, style: Style) {
        render_program(data, out, style);
    }
}

pub struct InjectError;

impl Scenario for InjectError {
    type Params = InjectErrorParams;
    type Data = ProgramData;
    const NAME: &'static str = "inject error";
    const ABOUT: &'static str =
        "Run COMMAND with a failpoint on a CUDA driver call (LD_PRELOAD shim): does it cope?";
    const EXAMPLES: &'static str = "gpu-doctor inject error --call cuLaunchKernel --code CUDA_ERROR_LAUNCH_FAILED --nth 100 -- python train.py\ngpu-doctor inject error --call cuMemAlloc --code 2 --nth 1 --every 10 -- ./app\ngpu-doctor inject error --call cuStreamSynchronize --delay 30s --nth 5 -- ./server\ngpu-doctor inject error --call cuLaunchKernel --code 719 --probability 0.001 --seed 7 --expect fail -- ./app";
    const REANALYSABLE: bool = false;

    fn validate(p: &InjectErrorParams) -> Result<()> {
        p.failpoint().map(|_| ())
    }

    fn probe(p: &InjectErrorParams, ctx: &RunCtx) -> Result<Probed<ProgramData>> {
        let config = Config {
            fail: Some(p.failpoint()?),
            ..Config::default()
        };
        probe_program(
            ctx,
            Self::NAME,
            program::Shim::Cuda(config),
            &p.survive_after,
            &p.command,
            None,
        )
    }

    fn analyze(p: &InjectErrorParams, data: &mut ProgramData, _run: &Report) -> Analysis {
        let Ok(fp) = p.failpoint() else {
            return Analysis::default();
        };
        let mode = Mode::Error {
            call: fp.call.clone(),
            code: fp.code,
            delay_us: fp.delay_us,
        };
        analyze_program(&mode, p.expect, &p.command, data)
    }

    fn render(data: &ProgramData, _report: &Report, out: &mut String, style: Style) {
        render_program(data, out, style);
    }
}

pub struct ProgramTrace;

impl Scenario for ProgramTrace {
    type Params = ProgramTraceParams;
    type Data = ProgramData;
    const NAME: &'static str = "trace ctx --";
    const ABOUT: &'static str = "Trace a program's CUDA contexts per OS thread and its failed driver calls (LD_PRELOAD shim).";
    const IN_CLI: bool = false;
    const REANALYSABLE: bool = false;

    fn probe(p: &ProgramTraceParams, ctx: &RunCtx) -> Result<Probed<ProgramData>> {
        let config = Config {
            trace: true,
            ..Config::default()
        };
        probe_program(
            ctx,
            Self::NAME,
            program::Shim::Cuda(config),
            &p.survive_after,
            &p.command,
            None,
        )
    }

    fn analyze(p: &ProgramTraceParams, data: &mut ProgramData, _run: &Report) -> Analysis {
        analyze_program(&Mode::Trace, p.expect, &p.command, data)
    }

    fn write_outputs(p: &ProgramTraceParams, data: &ProgramData, _report: &Report) -> Result<()> {
        let Some(path) = &p.chrome_trace else {
            return Ok(());
        };
        let digest = serde_json::Value::Object(data.digest.clone());
        let trace = crate::render::program::chrome_trace(&digest);
        crate::output::write_atomic(
            path,
            &serde_json::to_vec_pretty(&trace)?,
            "the Chrome trace",
        )
    }

    fn render(data: &ProgramData, _report: &Report, out: &mut String, style: Style) {
        render_program(data, out, style);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(call: &str, code: Option<&str>) -> InjectErrorParams {
        InjectErrorParams {
            call: call.into(),
            code: code.map(String::from),
            nth: 3,
            command: vec!["true".into()],
            ..Default::default()
        }
    }

    /// The integration the lead does in OomParams / TraceCtxParams: flatten the program args
    /// next to the built-in's own flags and positionals.
    #[test]
    fn program_args_flatten_into_builtin_commands() {
        use clap::Parser;
        #[derive(Parser)]
        struct Oom {
            #[arg(long)]
            fraction: Option<f64>,
            #[command(flatten)]
            program: OomProgramArgs,
        }
        let t =
            Oom::try_parse_from(["oom", "--limit", "4GiB", "--", "python", "-u", "x.py"]).unwrap();
        let r = t.program.redirect().unwrap().unwrap();
        assert_eq!(r.scenario, ProgramOom::NAME);
        let p: ProgramOomParams = serde_json::from_value(r.params).unwrap();
        assert_eq!(p.limit.unwrap().bytes(), 4 << 30);
        assert_eq!(p.command, ["python", "-u", "x.py"]);
        assert_eq!(p.expect, Expect::Survive);
        let t = Oom::try_parse_from(["oom", "--fraction", "0.5"]).unwrap();
        assert!(t.program.redirect().is_none(), "built-in scenario");
        assert_eq!(t.fraction, Some(0.5));
        assert!(
            Oom::try_parse_from(["oom", "--limit", "4GiB"]).is_err(),
            "--limit needs COMMAND"
        );
        assert!(Oom::try_parse_from(["oom", "--limit", "4 bananas", "--", "x"]).is_err());
        let t = Oom::try_parse_from(["oom", "--", "python"]).unwrap();
        let r = t.program.redirect().unwrap().unwrap();
        let p: ProgramOomParams = serde_json::from_value(r.params).unwrap();
        let err = ProgramOom::validate(&p).unwrap_err();
        assert_eq!(error::exit_code_of(&err), 2, "COMMAND without --limit");

        #[derive(Parser)]
        struct Trace {
            case: Option<String>,
            #[arg(long)]
            chrome_trace: Option<PathBuf>,
            #[command(flatten)]
            program: TraceProgramArgs,
        }
        let t = Trace::try_parse_from([
            "trace",
            "--chrome-trace",
            "t.json",
            "--expect",
            "fail",
            "--",
            "./app",
            "--flag",
        ])
        .unwrap();
        assert_eq!(t.case, None);
        let r = t.program.redirect(t.chrome_trace.clone()).unwrap().unwrap();
        assert_eq!(r.scenario, ProgramTrace::NAME);
        let p: ProgramTraceParams = serde_json::from_value(r.params).unwrap();
        assert_eq!(p.command, ["./app", "--flag"]);
        assert_eq!(p.expect, Expect::Fail);
        assert_eq!(p.chrome_trace, Some(PathBuf::from("t.json")));
        let t = Trace::try_parse_from(["trace", "thread-hop"]).unwrap();
        assert_eq!(t.case.as_deref(), Some("thread-hop"));
        assert!(t.program.redirect(None).is_none());
    }

    #[test]
    fn failpoint_validation() {
        let fp = params("cuLaunchKernel_ptsz", Some("CUDA_ERROR_LAUNCH_FAILED"))
            .failpoint()
            .unwrap();
        assert_eq!(fp.call, "cuLaunchKernel");
        assert_eq!(fp.code, 719);
        assert_eq!(fp.schedule.nth, 3);
        assert_eq!(fp.schedule.every, 0);
        let fp = params("cuMemAlloc", Some("2")).failpoint().unwrap();
        assert_eq!(fp.call, "cuMemAlloc");

        let err = params("cuDeviceGetName", Some("2"))
            .failpoint()
            .unwrap_err();
        assert_eq!(error::exit_code_of(&err), 2);
        assert!(
            err.to_string().contains("cuLaunchKernel"),
            "lists the supported calls"
        );
        assert!(params("cuGetProcAddress", Some("2")).failpoint().is_err());
        assert!(params("cuLaunchKernel", Some("12345")).failpoint().is_err());
        assert!(
            params("cuLaunchKernel", None).failpoint().is_err(),
            "no code, no delay"
        );

        let mut p = params("cuLaunchKernel", Some("719"));
        p.delay = Some("1s".parse().unwrap());
        assert!(p.failpoint().is_err(), "delay only on synchronising calls");
        let mut p = params("cuStreamSynchronize", None);
        p.delay = Some("250ms".parse().unwrap());
        let fp = p.failpoint().unwrap();
        assert_eq!((fp.code, fp.delay_us), (0, 250_000));

        let mut p = params("cuLaunchKernel", Some("719"));
        p.probability = Some(1.5);
        assert!(p.failpoint().is_err());
        p.probability = Some(0.1);
        p.seed = 7;
        let fp = p.failpoint().unwrap();
        assert_eq!(fp.schedule.probability, Some(0.1));
        assert_eq!(fp.schedule.seed, 7);
    }
}
