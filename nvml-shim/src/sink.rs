//! The events file: shim_rt's sink (the CUDA shim's too: one `write` per line, a high
//! descriptor re-checked before each write, never created), fed with serde event lines.

use shim_rt::process::{now_us, tid};

use crate::proto::event::{Event, EventLine};

pub struct Sink(shim_rt::Sink);

impl Sink {
    pub fn open(path: Option<String>) -> Sink {
        Sink(shim_rt::Sink::open(path))
    }

    /// Writes one event line (pid, thread and time added).
    pub fn emit(&self, event: Event) {
        if !self.0.enabled() {
            return;
        }
        let line = EventLine {
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() } as u32,
            tid: tid(),
            t_us: now_us(),
            event,
        };
        if let Ok(mut bytes) = serde_json::to_vec(&line) {
            bytes.push(b'\n');
            self.0.write(&bytes);
        }
    }
}
