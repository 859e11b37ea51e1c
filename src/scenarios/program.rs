//! Program mode scenarios: the user's COMMAND runs with the LD_PRELOAD shim.
//! - `inject oom --` (`gpu-doctor inject oom --limit 4GiB -- COMMAND`): device memory capped.
//! - `inject error` (`gpu-doctor inject error --call … --code … -- COMMAND`): failpoints.
//! - `trace ctx --` (`gpu-doctor trace ctx -- COMMAND`): context operations per OS thread.
//!
//! They are not isolated: COMMAND is the separate process, gpu-doctor only watches it.
//! Launcher: src/program/mod.rs; analysis: src/analyze/program.rs; docs/shim.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shim_proto::cuda::config::{Config, Failpoint, Schedule};
use shim_proto::cuda::names as shim_names;

use crate::analyze::program::{self as analysis, Expect, Mode};
use crate::context::Ctx;
use crate::error;
use crate::program::{self, Launch, cuda_codes};
use crate::report::Report;
use crate::scenarios::Scenario;

/// clap value parser for sizes (`4GiB`): checked, kept as written.
pub fn size_arg(s: &str) -> Result<String, String> {
    program::parse_size(s).map(|_| s.to_string())
}

/// clap value parser for durations (`500ms`, `2m`): checked, kept as written.
pub fn duration_arg(s: &str) -> Result<String, String> {
    crate::cli::parse_duration(s).map(|_| s.to_string())
}

/// clap value parser for `--code`.
pub fn code_arg(s: &str) -> Result<String, String> {
    cuda_codes::parse_code(s).map(|_| s.to_string())
}

fn duration(what: &str, s: &Option<String>) -> Result<Option<Duration>> {
    s.as_deref()
        .map(|s| crate::cli::parse_duration(s).map_err(|e| error::input(format!("{what}: {e}"))))
        .transpose()
}

fn need_command(command: &[String], name: &str) -> Result<()> {
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
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub limit: String,
    /// What COMMAND should do under the fault: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub survive_after: Option<String>,
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
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub delay: Option<String>,
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub survive_after: Option<String>,
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
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub survive_after: Option<String>,
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
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "command")]
    pub limit: Option<String>,
    /// Program mode: what COMMAND should do under the fault: survive (default) or fail.
    #[arg(long, value_enum, requires = "command")]
    pub expect: Option<Expect>,
    /// Program mode: stop COMMAND after this long and count it as survived.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "command")]
    pub survive_after: Option<String>,
    /// Program mode: the program to run with the shim, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl OomProgramArgs {
    /// None without `-- COMMAND` (the built-in scenario runs); an input error without --limit.
    pub fn params(&self) -> Option<Result<ProgramOomParams>> {
        if self.command.is_empty() {
            return None;
        }
        let Some(limit) = self.limit.clone() else {
            return Some(Err(error::input(
                "inject oom -- COMMAND: give --limit SIZE (the device memory COMMAND may use)",
            )));
        };
        Some(Ok(ProgramOomParams {
            limit,
            expect: self.expect.unwrap_or_default(),
            survive_after: self.survive_after.clone(),
            command: self.command.clone(),
        }))
    }
}

/// Program-mode flags for the built-in `trace ctx` command line (flatten like
/// [`OomProgramArgs`]); `--chrome-trace` comes from the built-in's own flag.
#[derive(Debug, Clone, Default, Args)]
pub struct TraceProgramArgs {
    /// Program mode: what COMMAND should do: survive (default) or fail.
    #[arg(long, value_enum, requires = "command")]
    pub expect: Option<Expect>,
    /// Program mode: stop COMMAND after this long and count it as survived.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "command")]
    pub survive_after: Option<String>,
    /// Program mode: the program to trace, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl TraceProgramArgs {
    /// None without `-- COMMAND` (the built-in scenario runs).
    pub fn params(&self, chrome_trace: Option<PathBuf>) -> Option<ProgramTraceParams> {
        if self.command.is_empty() {
            return None;
        }
        Some(ProgramTraceParams {
            chrome_trace,
            expect: self.expect.unwrap_or_default(),
            survive_after: self.survive_after.clone(),
            command: self.command.clone(),
        })
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
        let delay = duration("inject error: --delay", &self.delay)?;
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

/// Runs COMMAND with `config` and turns what happened into the report.
fn run_program(
    name: &str,
    mode: Mode,
    config: Config,
    expect: Expect,
    survive_after: &Option<String>,
    command: &[String],
    ctx: &mut Ctx,
) -> Result<Report> {
    need_command(command, name)?;
    let survive_after = duration("--survive-after", survive_after)?;
    let outcome = program::run(&Launch {
        command,
        config,
        timeout: ctx.opts.timeout,
        survive_after,
    })?;
    let a = analysis::analyze(&mode, expect, command, &outcome);
    let mut report = Report::begin(name, serde_json::Value::Null);
    report.findings = a.findings;
    report.metrics = a.metrics;
    report.data = a.data;
    report.interrupted = outcome.ended == program::Ended::Interrupted;
    // Driver versions for the record, when NVML is there (program mode itself needs no GPU).
    if let Ok(nvml) = crate::probe::nvml::NvmlProbe::open() {
        report.host = nvml.host();
    }
    Ok(report)
}

pub struct ProgramOom;

impl Scenario for ProgramOom {
    type Params = ProgramOomParams;
    const NAME: &'static str = "inject oom --";
    const ABOUT: &'static str =
        "Run a program with its device memory capped (LD_PRELOAD shim): does it survive OOM?";

    fn run(p: &ProgramOomParams, ctx: &mut Ctx) -> Result<Report> {
        let limit = program::parse_size(&p.limit)
            .map_err(|e| error::input(format!("inject oom: --limit: {e}")))?;
        let config = Config {
            limit: Some(limit),
            ..Config::default()
        };
        run_program(
            Self::NAME,
            Mode::Oom { limit },
            config,
            p.expect,
            &p.survive_after,
            &p.command,
            ctx,
        )
    }
}

pub struct InjectError;

impl Scenario for InjectError {
    type Params = InjectErrorParams;
    const NAME: &'static str = "inject error";
    const ABOUT: &'static str =
        "Run a program with a failpoint on a driver call (LD_PRELOAD shim): does it handle it?";

    fn run(p: &InjectErrorParams, ctx: &mut Ctx) -> Result<Report> {
        let fp = p.failpoint()?;
        let mode = Mode::Error {
            call: fp.call.clone(),
            code: fp.code,
            delay_us: fp.delay_us,
        };
        let config = Config {
            fail: Some(fp),
            ..Config::default()
        };
        run_program(
            Self::NAME,
            mode,
            config,
            p.expect,
            &p.survive_after,
            &p.command,
            ctx,
        )
    }
}

pub struct ProgramTrace;

impl Scenario for ProgramTrace {
    type Params = ProgramTraceParams;
    const NAME: &'static str = "trace ctx --";
    const ABOUT: &'static str = "Trace a program's CUDA contexts per OS thread and its failed driver calls (LD_PRELOAD shim).";

    fn run(p: &ProgramTraceParams, ctx: &mut Ctx) -> Result<Report> {
        let config = Config {
            trace: true,
            ..Config::default()
        };
        let report = run_program(
            Self::NAME,
            Mode::Trace,
            config,
            p.expect,
            &p.survive_after,
            &p.command,
            ctx,
        )?;
        if let Some(path) = &p.chrome_trace {
            let trace = crate::render::program::chrome_trace(&report);
            crate::output::write_atomic(
                path,
                &serde_json::to_vec_pretty(&trace)?,
                "the Chrome trace",
            )?;
        }
        Ok(report)
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
        let p = t.program.params().unwrap().unwrap();
        assert_eq!(p.limit, "4GiB");
        assert_eq!(p.command, ["python", "-u", "x.py"]);
        assert_eq!(p.expect, Expect::Survive);
        let t = Oom::try_parse_from(["oom", "--fraction", "0.5"]).unwrap();
        assert!(t.program.params().is_none(), "built-in scenario");
        assert_eq!(t.fraction, Some(0.5));
        assert!(
            Oom::try_parse_from(["oom", "--limit", "4GiB"]).is_err(),
            "--limit needs COMMAND"
        );
        assert!(Oom::try_parse_from(["oom", "--limit", "4 bananas", "--", "x"]).is_err());
        let t = Oom::try_parse_from(["oom", "--", "python"]).unwrap();
        let err = t.program.params().unwrap().unwrap_err();
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
        let p = t.program.params(t.chrome_trace.clone()).unwrap();
        assert_eq!(p.command, ["./app", "--flag"]);
        assert_eq!(p.expect, Expect::Fail);
        assert_eq!(p.chrome_trace, Some(PathBuf::from("t.json")));
        let t = Trace::try_parse_from(["trace", "thread-hop"]).unwrap();
        assert_eq!(t.case.as_deref(), Some("thread-hop"));
        assert!(t.program.params(None).is_none());
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
        p.delay = Some("1s".into());
        assert!(p.failpoint().is_err(), "delay only on synchronising calls");
        let mut p = params("cuStreamSynchronize", None);
        p.delay = Some("250ms".into());
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
