//! Runs a scenario in a child process: the binary re-executes itself (`__child`, hidden) so a
//! sticky CUDA error, a crash or a hang cannot take the parent with it.
//!
//! Protocol: the child writes one JSON [`Event`] per line on stdout — each driver call
//! announced before it is made (`call`) and completed after (`step`) — and its report last
//! (`report`). Diagnostics go to stderr. When the child dies inside a call, the parent keeps
//! every step so far, records the call in flight as the crash, and finishes the report.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::context::RunOptions;

pub mod protocol;
use crate::report::{Code, Finding, Report, Severity, Status, Step, codes};
pub use protocol::{ENV_CHILD, Event, in_child};

/// How many of the child's last stderr lines a crash finding quotes.
const STDERR_TAIL: usize = 20;

/// Runs `scenario` with `params` in a child of this binary and returns its report — or, if the
/// child crashed, hung or broke the protocol, a report built from what it sent, with status
/// `error` and a finding that says what happened. The child dies with us (PR_SET_PDEATHSIG):
/// a killed gpu-doctor leaves no orphan holding the GPU. Scenarios use it too for parts that
/// poison or may crash their own process (a child of the child).
pub fn run_isolated(
    scenario: &str,
    params: &serde_json::Value,
    opts: &RunOptions,
) -> Result<Report> {
    run_isolated_with_env(scenario, params, opts, &[])
}

/// [`run_isolated`] with variables added to the child's environment (gpu-doctor's NVML library
/// for one suite entry).
pub fn run_isolated_with_env(
    scenario: &str,
    params: &serde_json::Value,
    opts: &RunOptions,
    env: &[(String, std::ffi::OsString)],
) -> Result<Report> {
    let exe = std::env::current_exe().context("cannot find gpu-doctor's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.arg("__child")
        .arg("--scenario")
        .arg(scenario)
        .arg("--params")
        .arg(serde_json::to_string(params)?)
        .arg("--options")
        .arg(serde_json::to_string(opts)?);
    // SAFETY: prctl is async-signal-safe; it only sets this process's parent-death signal.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    run_child_command(cmd, scenario, params, opts.timeout)
}

/// The parent's side of the protocol, for any command that speaks it (tests drive it with
/// stand-in children that crash, hang or print garbage).
pub fn run_child_command(
    mut cmd: Command,
    scenario: &str,
    params: &serde_json::Value,
    timeout: Duration,
) -> Result<Report> {
    use std::os::unix::process::CommandExt;
    // Its own process group: a timeout kills the child and anything it started, and the
    // parent decides when to pass Ctrl-C on (it sets a flag rather than dying).
    cmd.env(ENV_CHILD, "1")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .context("cannot start the isolated child process")?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");

    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = BufReader::new(stderr).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });

    let mut acc = Accumulator::default();
    let mut timed_out = false;
    let mut forwarded_interrupt = false;
    let pgid = child.id() as libc::pid_t;
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            acc.line(&line);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if crate::context::interrupted() && !forwarded_interrupt {
            // The child frees what it holds and reports, marked interrupted.
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGINT) };
            forwarded_interrupt = true;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            // SAFETY: killing our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            break child.wait()?;
        }
        // Wake on the next line or after a short sleep, whichever comes first.
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(20)) {
            acc.line(&line);
        }
    };
    let _ = reader.join();
    while let Ok(line) = rx.try_recv() {
        acc.line(&line);
    }
    if let Some(bar) = acc.bar.take() {
        bar.finish_and_clear();
    }
    let stderr_text = err_reader.join().unwrap_or_default();
    let tail = tail_lines(&stderr_text, STDERR_TAIL);

    if !timed_out
        && status.success()
        && acc.garbage.is_empty()
        && let Some(report) = acc.report.take()
    {
        return Ok(*report);
    }
    // A child that could not start its scenario (no driver, bad input) says so on stderr and
    // exits with its code: pass that on as the parent's own error.
    if !timed_out
        && acc.report.is_none()
        && acc.steps.is_empty()
        && acc.in_flight.is_none()
        && let Some(code @ (2 | 3)) = status.code()
    {
        let msg = tail
            .lines()
            .last()
            .unwrap_or("the isolated child could not run")
            .trim_start_matches("gpu-doctor: ")
            .to_string();
        return Err(if code == 3 {
            crate::error::unavailable(msg)
        } else {
            crate::error::input(msg)
        });
    }
    let protocol_broken = !timed_out && status.success() && !acc.garbage.is_empty();

    // The child did not finish cleanly: build the report from what it sent.
    let acc_had_report = acc.report.is_some();
    let mut report = match acc.report.take() {
        Some(r) => *r,
        None => {
            let mut r = Report::begin(scenario, params.clone());
            r.steps = std::mem::take(&mut acc.steps);
            r
        }
    };
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let how = describe_exit(&status, timed_out, timeout);
    if let Some((name, call, expected, at_ms, thread)) = acc.in_flight.take() {
        report.steps.push(Step {
            name,
            call: call.clone(),
            expected,
            observed: Code {
                code: -1,
                name: format!("PROCESS_DIED: {how}"),
            },
            at_ms,
            elapsed_ms: (started.elapsed().as_secs_f64() * 1e3 - at_ms).max(0.0),
            thread,
            ok: false,
            note: Some(format!("the child died inside {call}")),
        });
    }
    let last_call = report
        .steps
        .last()
        .map(|s| format!(" Last call: {} ({}).", s.call, s.name))
        .unwrap_or_default();
    let stderr_note = if tail.is_empty() {
        String::new()
    } else {
        format!(" Last stderr:\n{tail}")
    };
    let finding = if timed_out {
        Finding::new(
            Severity::Fail,
            codes::CHILD_TIMEOUT,
            format!("{scenario}: the isolated child did not finish within {timeout:?} and was killed.{last_call}{stderr_note}"),
        )
        .hint("A driver call hung. Raise --timeout if the GPU is busy; otherwise the call above is where it hangs.")
    } else if !protocol_broken {
        Finding::new(
            Severity::Fail,
            codes::CHILD_CRASHED,
            format!("{scenario}: the isolated child {how} before it finished its report.{last_call}{stderr_note}"),
        )
        .hint("The parent is unaffected. Re-run with the same options; if it repeats, the call above crashes the driver or gpu-doctor (please report it).")
    } else {
        Finding::new(
            if acc_had_report { Severity::Warn } else { Severity::Fail },
            codes::CHILD_PROTOCOL,
            format!(
                "{scenario}: the isolated child printed {} line(s) that are not protocol events, first: {:?}",
                acc.garbage.len(),
                acc.garbage[0]
            ),
        )
        .hint("Something in the child writes to stdout (a library or LD_PRELOAD); its output is ignored.")
    };
    report.findings.push(finding);
    report.status = if protocol_broken && acc_had_report {
        report.status.max(Status::Warn)
    } else {
        Status::Error
    };
    report.interrupted |= crate::context::interrupted();
    Ok(report)
}

#[derive(Default)]
struct Accumulator {
    steps: Vec<Step>,
    in_flight: Option<(String, String, Vec<Code>, f64, u64)>,
    report: Option<Box<Report>>,
    garbage: Vec<String>,
    /// The child's progress, drawn on our stderr when it is a terminal.
    bar: Option<indicatif::ProgressBar>,
}

impl Accumulator {
    fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(Event::Call {
                name,
                call,
                expected,
                at_ms,
                thread,
            }) => self.in_flight = Some((name, call, expected, at_ms, thread)),
            Ok(Event::Step { step }) => {
                self.in_flight = None;
                self.steps.push(step);
            }
            Ok(Event::Report { report }) => {
                self.in_flight = None;
                self.report = Some(report);
            }
            Ok(Event::Progress { pos, len, message }) => self.progress(pos, len, message),
            Err(_) => self.garbage.push(line.chars().take(200).collect()),
        }
    }

    fn progress(&mut self, pos: u64, len: u64, message: String) {
        use std::io::IsTerminal;
        if self.bar.is_none() {
            if !std::io::stderr().is_terminal() {
                return;
            }
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(crate::context::bar_style());
            self.bar = Some(bar);
        }
        let bar = self.bar.as_ref().expect("set above");
        bar.set_length(len);
        bar.set_position(pos);
        bar.set_message(message);
    }
}

fn describe_exit(status: &std::process::ExitStatus, timed_out: bool, timeout: Duration) -> String {
    use std::os::unix::process::ExitStatusExt;
    if timed_out {
        return format!("was killed after the {timeout:?} timeout");
    }
    if let Some(sig) = status.signal() {
        return format!(
            "was killed by signal {sig} ({})",
            crate::units::signal_name(sig)
        );
    }
    match status.code() {
        Some(0) => "exited 0 without a valid report".to_string(),
        Some(c) => format!("exited with status {c}"),
        None => "ended abnormally".to_string(),
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn step_line(name: &str) -> String {
        let step = Step {
            name: name.into(),
            call: "cuMemAlloc_v2".into(),
            expected: vec![Code {
                code: 0,
                name: "CUDA_SUCCESS".into(),
            }],
            observed: Code {
                code: 0,
                name: "CUDA_SUCCESS".into(),
            },
            at_ms: 1.0,
            elapsed_ms: 0.1,
            thread: 7,
            ok: true,
            note: None,
        };
        serde_json::to_string(&Event::Step { step }).unwrap()
    }

    fn call_line(call: &str) -> String {
        serde_json::to_string(&Event::Call {
            name: "launch".into(),
            call: call.into(),
            expected: vec![],
            at_ms: 2.0,
            thread: 7,
        })
        .unwrap()
    }

    #[test]
    fn child_killed_by_signal_keeps_steps_and_records_call_in_flight() {
        let script = format!(
            "echo '{}'; echo '{}'; echo 'about to die' >&2; kill -SEGV $$",
            step_line("alloc"),
            call_line("cuLaunchKernel")
        );
        let r = run_child_command(
            sh(&script),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.steps[0].name, "alloc");
        let died = &r.steps[1];
        assert_eq!(died.call, "cuLaunchKernel");
        assert!(!died.ok);
        assert!(
            died.observed.name.contains("SIGSEGV"),
            "{}",
            died.observed.name
        );
        let f = &r.findings[0];
        assert_eq!(f.code, codes::CHILD_CRASHED);
        assert!(f.message.contains("about to die"));
    }

    #[test]
    fn hung_child_is_killed_at_timeout() {
        let script = format!("echo '{}'; sleep 30", step_line("alloc"));
        let t0 = Instant::now();
        let r = run_child_command(
            sh(&script),
            "inject x",
            &serde_json::json!({}),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.findings[0].code, codes::CHILD_TIMEOUT);
        assert_eq!(r.steps.len(), 1);
    }

    #[test]
    fn garbage_output_is_a_protocol_finding() {
        let mut rep = Report::begin("inject x", serde_json::json!({}));
        rep.status = Status::Pass;
        let line = serde_json::to_string(&Event::Report {
            report: Box::new(rep),
        })
        .unwrap();
        let script = format!("echo 'hello from a library'; echo '{line}'");
        let r = run_child_command(
            sh(&script),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            r.status,
            Status::Warn,
            "the report arrived; the noise only warns"
        );
        assert_eq!(r.findings[0].code, codes::CHILD_PROTOCOL);
        assert!(r.findings[0].message.contains("hello from a library"));
    }

    #[test]
    fn clean_child_report_is_returned_as_is() {
        let mut rep = Report::begin("inject x", serde_json::json!({"a": 1}));
        rep.status = Status::Warn;
        let line = serde_json::to_string(&Event::Report {
            report: Box::new(rep.clone()),
        })
        .unwrap();
        let script = format!("echo '{}'; echo '{line}'", step_line("alloc"));
        let r = run_child_command(
            sh(&script),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r, rep);
    }

    #[test]
    fn progress_events_are_protocol_not_garbage() {
        let mut rep = Report::begin("inject x", serde_json::json!({}));
        rep.status = Status::Pass;
        let report = serde_json::to_string(&Event::Report {
            report: Box::new(rep.clone()),
        })
        .unwrap();
        let progress = serde_json::to_string(&Event::Progress {
            pos: 5,
            len: 10,
            message: "filling".into(),
        })
        .unwrap();
        let script = format!("echo '{progress}'; echo '{report}'");
        let r = run_child_command(
            sh(&script),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r, rep);
    }

    #[test]
    fn child_that_cannot_run_passes_its_exit_code_on() {
        let err = run_child_command(
            sh("echo 'gpu-doctor: no CUDA driver' >&2; exit 3"),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 3);
        assert_eq!(err.to_string(), "no CUDA driver");
    }

    #[test]
    fn child_exiting_nonzero_without_report_is_a_crash() {
        let r = run_child_command(
            sh("echo oops >&2; exit 5"),
            "inject x",
            &serde_json::json!({}),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.findings[0].code, codes::CHILD_CRASHED);
        assert!(r.findings[0].message.contains("status 5"));
    }
}
