//! gpu-doctor: the only place that turns outcomes into exit codes.

use std::io::Write;
use std::process::ExitCode;

use gpu_doctor::cli::{self, Outcome};
use gpu_doctor::error::{self, exit};
use gpu_doctor::report::{Report, Status};

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

    let (global, invocation) = cli::parse();
    cli::install_interrupt_handler();
    let code =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&global, invocation))) {
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

fn run(global: &cli::GlobalOpts, invocation: cli::Invocation) -> anyhow::Result<i32> {
    match cli::execute(global, invocation)? {
        Outcome::Text(text, code) => {
            print(&text);
            Ok(code)
        }
        Outcome::Line { report, text, code } => {
            if let (Some(path), Some(report)) = (&global.output, &report) {
                gpu_doctor::output::write_json_atomic(path, report)?;
            }
            print(&(text + "\n"));
            Ok(code)
        }
        Outcome::Report(report) => {
            if let Some(path) = &global.output {
                gpu_doctor::output::write_json_atomic(path, &report)?;
            }
            let text = if global.json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                cli::render_report(&report, global)
            };
            print(&text);
            Ok(exit_code_for(&report))
        }
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
}

fn exit_code_for(report: &Report) -> i32 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.status.is_failure() {
        exit::FAIL
    } else if report.status == Status::Skipped {
        // Nothing could run on this box: the report is written, and the exit code says so.
        eprintln!("gpu-doctor: {}", cli::skipped_reason(report));
        exit::UNAVAILABLE
    } else {
        exit::OK
    }
}
