//! What a running scenario gets from the runner: options, progress bars, the child-process
//! event sink and the Ctrl-C flag.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Host, Report, SCHEMA_VERSION, Status, Step, Tool};

/// Options every scenario sees (parsed from the global flags).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// `--device`: indices or UUIDs; empty means all.
    pub devices: Vec<String>,
    pub quiet: bool,
    /// Limit for an isolated child.
    pub timeout: Duration,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handler once: it only sets a flag, so a scenario can free what
/// it holds and return a report marked interrupted.
pub fn install_interrupt_handler() {
    extern "C" fn on_signal(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// OS thread id (what `top -H`, gdb and Chrome traces show).
pub fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

/// Where a scenario announces driver calls. In an isolated child every event is one JSON line
/// on stdout, flushed, so the parent keeps the steps up to a call that kills the process.
pub struct EventSink {
    enabled: bool,
}

impl EventSink {
    pub fn none() -> Self {
        EventSink { enabled: false }
    }
    pub fn stdout() -> Self {
        EventSink { enabled: true }
    }
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    pub fn emit(&self, event: &crate::isolate::Event) {
        if !self.enabled {
            return;
        }
        let line = serde_json::to_string(event).expect("event serialises");
        let mut out = std::io::stdout().lock();
        // A closed pipe means the parent is gone; nothing useful to do about it here.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub struct Ctx {
    pub opts: RunOptions,
    pub started: Instant,
    pub events: EventSink,
}

impl Ctx {
    pub fn new(opts: RunOptions, events: EventSink) -> Self {
        Ctx {
            opts,
            started: Instant::now(),
            events,
        }
    }

    /// Milliseconds since the scenario started (the `at_ms` of steps and timeline events).
    pub fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    pub fn interrupted(&self) -> bool {
        interrupted()
    }

    /// A progress bar on stderr, hidden with --quiet, when stderr is not a terminal, or in a child.
    pub fn progress(&self, len: u64, message: &str) -> ProgressBar {
        let bar = ProgressBar::new(len);
        if self.opts.quiet || self.events.is_enabled() || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        } else {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_style(bar_style());
        bar.set_message(message.to_string());
        bar
    }

    /// Progress of a long phase that works in an isolated child too: there the child sends
    /// throttled progress events and the parent draws the bar.
    pub fn progress_sink(&self, len: u64, message: &str) -> Progress {
        let events = self.events.is_enabled() && !self.opts.quiet;
        Progress {
            bar: (!self.events.is_enabled()).then(|| self.progress(len, message)),
            events,
            len,
            message: message.to_string(),
            last: None,
        }
    }

    /// Records a step: announces it to the parent (when isolated) and keeps it in the report.
    pub fn record(&self, report: &mut Report, step: Step) {
        self.events
            .emit(&crate::isolate::Event::Step { step: step.clone() });
        report.steps.push(step);
    }
}

/// The look of a scenario's progress bar, drawn by the scenario or, when it is isolated, by
/// the parent from the child's progress events.
pub fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% {elapsed}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// See [`Ctx::progress_sink`].
pub struct Progress {
    bar: Option<ProgressBar>,
    events: bool,
    len: u64,
    message: String,
    last: Option<Instant>,
}

impl Progress {
    /// Minimum time between two progress events sent to the parent.
    const EVERY: Duration = Duration::from_millis(100);

    /// Sets the position (cheap: in a child, at most one event per 100 ms).
    pub fn set(&mut self, ctx: &Ctx, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
        if self.events && self.last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            self.last = Some(Instant::now());
            ctx.events.emit(&crate::isolate::Event::Progress {
                pos,
                len: self.len,
                message: self.message.clone(),
            });
        }
    }

    pub fn set_message(&mut self, ctx: &Ctx, message: &str, pos: u64) {
        self.message = message.to_string();
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
        self.last = None;
        self.set(ctx, pos);
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Report {
    /// An empty report for `scenario`, started now. The runner fills host, status and duration.
    pub fn begin(scenario: &str, params: serde_json::Value) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::this(),
            host: Host::default(),
            scenario: scenario.to_string(),
            params,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0.0,
            status: Status::Pass,
            interrupted: false,
            devices: vec![],
            findings: vec![],
            metrics: Default::default(),
            steps: vec![],
            data: serde_json::Value::Null,
            reports: vec![],
        }
    }
}
