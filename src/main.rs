//! gpu-doctor: the only place that turns outcomes into exit codes.

use std::io::Write;
use std::process::ExitCode;

use gpu_doctor::cli::{self, Outcome};
use gpu_doctor::error::{self, exit};
use gpu_doctor::report::{Report, Status};

fn main() -> ExitCode {
    // A panic is a bug: one line and exit 4, never a backtrace in the user's face (a
    // RUST_BACKTRACE exported for other tools does not change that; GPU_DOCTOR_BACKTRACE=1
    // shows it for us).
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
        let _ = writeln!(
            std::io::stderr(),
            "gpu-doctor: internal error: {}{at} (please report this)",
            cli::printable(&msg)
        );
        if std::env::var_os("GPU_DOCTOR_BACKTRACE").is_some_and(|v| v == "1") {
            let _ = writeln!(
                std::io::stderr(),
                "{}",
                std::backtrace::Backtrace::force_capture()
            );
        }
    }));

    let (global, invocation) = match cli::parse() {
        Ok(parsed) => parsed,
        // --help, --version: printed like any output, so a write error is not lost either.
        Err(text) => {
            return match print(&text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "gpu-doctor: {e:#}");
                    ExitCode::from(exit::USAGE as u8)
                }
            };
        }
    };
    cli::install_interrupt_handler();
    let code =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&global, invocation))) {
            Ok(Ok(code)) => code,
            Ok(Err(err)) => {
                let code = error::exit_code_of(&err);
                let what = if code == exit::INTERNAL {
                    "internal error: "
                } else {
                    ""
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "gpu-doctor: {what}{}",
                    cli::printable(&format!("{err:#}"))
                );
                code
            }
            Err(_) => exit::INTERNAL,
        };
    ExitCode::from(code as u8)
}

fn run(global: &cli::GlobalOpts, invocation: cli::Invocation) -> anyhow::Result<i32> {
    match cli::execute(global, invocation)? {
        Outcome::Text(text, code) => {
            print(&text)?;
            Ok(code)
        }
        Outcome::Line { report, text, code } => {
            if let (Some(path), Some(report)) = (&global.output, &report) {
                gpu_doctor::output::write_json_atomic(path, report)?;
            }
            print(&(text + "\n"))?;
            Ok(code)
        }
        Outcome::Report(report) => {
            if let Some(path) = &global.output {
                gpu_doctor::output::write_json_atomic(path, &report)?;
            }
            if report.status == Status::Skipped && !report.interrupted {
                // Nothing could run on this box: the reason first, then the (short) report.
                let _ = writeln!(
                    std::io::stderr(),
                    "gpu-doctor: {}",
                    cli::printable(&cli::skipped_reason(&report))
                );
            }
            let text = if global.json {
                cli::report_json(&report)?
            } else {
                cli::render_report(&report, global)
            };
            print(&text)?;
            Ok(exit_code_for(&report))
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`| head`) is not an error worth reporting; any
/// other write error (a full disk, /dev/full) is one line and exit 2: the output was lost.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(error::input(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

fn exit_code_for(report: &Report) -> i32 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.status.is_failure() {
        exit::FAIL
    } else if report.status == Status::Skipped {
        // Nothing could run on this box: the report is written, and the exit code says so.
        exit::UNAVAILABLE
    } else {
        exit::OK
    }
}
