//! The wire format between an isolated child and its parent: one JSON [`Event`] per line on
//! the child's stdout, flushed as it happens, so the parent keeps every step up to a call that
//! kills the child. [`EventSink`] is the child's writing end.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::report::{Code, Report, Step};

/// One line of the child's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A driver call is about to be made.
    Call {
        name: String,
        call: String,
        expected: Vec<Code>,
        at_ms: f64,
        thread: u64,
    },
    /// The call announced last returned.
    Step { step: Step },
    /// The child's finished report (always the last line).
    Report { report: Box<Report> },
    /// Progress of a long phase (the child throttles it; the parent draws it on its terminal).
    Progress { pos: u64, len: u64, message: String },
}

/// Environment variable that tells a re-executed binary it is the child (guards against
/// recursion when a child would itself isolate).
pub const ENV_CHILD: &str = "GPU_DOCTOR_CHILD";

pub fn in_child() -> bool {
    std::env::var_os(ENV_CHILD).is_some()
}

/// Where a running scenario announces driver calls: in an isolated child every event is one JSON
/// line on stdout, flushed; in the parent process it goes nowhere.
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
    pub fn emit(&self, event: &Event) {
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
