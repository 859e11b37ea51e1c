//! What a running scenario gets from the runner ([`RunCtx`]): options, the steps it records,
//! progress bars, the child-process event sink and the Ctrl-C flag.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::isolate::protocol::{Event, EventSink};
use crate::report::Step;

/// Options every scenario sees (parsed from the global flags).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// `--device`: indices or UUIDs; empty means all.
    pub devices: Vec<String>,
    pub quiet: bool,
    /// Limit for an isolated child.
    pub timeout: Duration,
    /// `--json`: a scenario that streams (watch) writes JSON lines.
    #[serde(default)]
    pub json: bool,
    /// The command runs this one scenario at the user's stdout: a scenario with a live view
    /// (watch) draws it. Off in suites and child processes, whose stdout is not theirs.
    #[serde(default)]
    pub stream: bool,
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

/// Forgets a Ctrl-C the scenario took as its normal end (`watch` stops on it and its report is
/// complete, not interrupted).
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// OS thread id (what `top -H`, gdb and Chrome traces show).
pub fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

/// The run of one scenario: its options, its clock, and the steps it records (from any
/// thread). Named apart from CUDA contexts, which probes trace.
pub struct RunCtx {
    pub opts: RunOptions,
    pub started: Instant,
    pub events: EventSink,
    steps: Mutex<Vec<Step>>,
}

impl RunCtx {
    pub fn new(opts: RunOptions, events: EventSink) -> Self {
        RunCtx {
            opts,
            started: Instant::now(),
            events,
            steps: Mutex::new(Vec::new()),
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

    /// Records a step, from any thread: announces it to the parent at once (when isolated, so
    /// a crash keeps every step before it) and keeps it for the report.
    pub fn record(&self, step: Step) {
        self.events.emit(&Event::Step { step: step.clone() });
        self.lock_steps().push(step);
    }

    /// Announces a driver call about to be made (the parent records it as the crash if the
    /// process dies inside it).
    pub fn announce(&self, event: &Event) {
        self.events.emit(event);
    }

    /// The steps recorded so far, in order, leaving none.
    pub fn take_steps(&self) -> Vec<Step> {
        std::mem::take(&mut *self.lock_steps())
    }

    fn lock_steps(&self) -> std::sync::MutexGuard<'_, Vec<Step>> {
        // A panicking recorder cannot leave the list half-written in a way that matters.
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The look of a scenario's progress bar, drawn by the scenario or, when it is isolated, by
/// the parent from the child's progress events.
pub fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% {elapsed}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// See [`RunCtx::progress_sink`].
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
    pub fn set(&mut self, ctx: &RunCtx, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
        if self.events && self.last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            self.last = Some(Instant::now());
            ctx.events.emit(&Event::Progress {
                pos,
                len: self.len,
                message: self.message.clone(),
            });
        }
    }

    pub fn set_message(&mut self, ctx: &RunCtx, message: &str, pos: u64) {
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
