//! gpu-doctor: the only place that turns outcomes into exit codes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use gpu_doctor::cli::{Cli, Command, InjectCommand, TraceCommand};
use gpu_doctor::context::{self, RunOptions};
use gpu_doctor::error::{self, exit};
use gpu_doctor::report::{Report, Status};
use gpu_doctor::{output, render, runner, scenarios};

fn main() -> ExitCode {
    // A panic is a bug: one line and exit 4, never a backtrace in the user's face
    // (RUST_BACKTRACE=1 still shows it for us).
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("gpu-doctor: internal error: {msg}{at} (please report this)");
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));

    let cli = Cli::parse();
    context::install_interrupt_handler();
    let code = match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            let code = error::exit_code_of(&err);
            if code == exit::INTERNAL {
                eprintln!("gpu-doctor: internal error: {err:#}");
            } else {
                eprintln!("gpu-doctor: {err:#}");
            }
            code
        }
        Err(_) => exit::INTERNAL,
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    let opts = RunOptions {
        devices: g.device.clone(),
        quiet: g.quiet,
        timeout: g.timeout,
    };
    let color = !g.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let report = match cli.command {
        Command::Info(p) => runner::execute_typed::<scenarios::info::Info>(&p, &opts)?,
        Command::Topo(p) => runner::execute_typed::<scenarios::topo::Topo>(&p, &opts)?,
        Command::Inject(which) => match which {
            InjectCommand::Oom(p) => match p.program.params() {
                Some(program) => {
                    runner::execute_typed::<scenarios::program::ProgramOom>(&program?, &opts)?
                }
                None => runner::execute_typed::<scenarios::oom::Oom>(&p, &opts)?,
            },
            InjectCommand::CtxDestroy(p) => {
                runner::execute_typed::<scenarios::ctx_destroy::CtxDestroy>(&p, &opts)?
            }
            InjectCommand::StreamMisuse(p) => {
                runner::execute_typed::<scenarios::stream_misuse::StreamMisuse>(&p, &opts)?
            }
            InjectCommand::IllegalAddress(p) => {
                runner::execute_typed::<scenarios::illegal_address::IllegalAddress>(&p, &opts)?
            }
            InjectCommand::Error(p) => {
                runner::execute_typed::<scenarios::program::InjectError>(&p, &opts)?
            }
            InjectCommand::All => {
                runner::execute_many("inject all", &scenarios::INJECT_ALL, &opts)?
            }
        },
        Command::Trace(TraceCommand::Ctx(p)) => match p.program.params(p.chrome_trace.clone()) {
            Some(program) => {
                runner::execute_typed::<scenarios::program::ProgramTrace>(&program, &opts)?
            }
            None => runner::execute_typed::<scenarios::trace_ctx::TraceCtx>(&p, &opts)?,
        },
        Command::Bandwidth(p) => {
            runner::execute_typed::<scenarios::bandwidth::Bandwidth>(&p, &opts)?
        }
        Command::Run(args) => gpu_doctor::suite::run(&args, &opts)?,
        Command::Compare(args) => return gpu_doctor::compare::run(&args, g, color),
        Command::Schema => {
            let schema = gpu_doctor::report::json_schema();
            println!("{}", serde_json::to_string_pretty(&schema)?);
            return Ok(exit::OK);
        }
        Command::Child(args) => return runner::child_main(&args),
    };
    emit(&report, g.json, g.output.as_deref(), color)?;
    Ok(exit_code_for(&report))
}

/// Prints the report (table or JSON) and writes the JSON file when asked.
fn emit(report: &Report, json: bool, output: Option<&std::path::Path>, color: bool) -> Result<()> {
    if let Some(path) = output {
        output::write_json_atomic(path, report)?;
    }
    let text = if json {
        serde_json::to_string_pretty(report)? + "\n"
    } else {
        render::table::render(report, color)
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

fn exit_code_for(report: &Report) -> i32 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.status.is_failure() {
        exit::FAIL
    } else if report.status == Status::Skipped {
        // Nothing could run on this box: the report is written, and the exit code says so.
        eprintln!("gpu-doctor: {}", runner::skipped_reason(report));
        exit::UNAVAILABLE
    } else {
        exit::OK
    }
}
