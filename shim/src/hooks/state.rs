//! Process state: the configuration (read once, at load or first call), the events sink, the
//! memory accounting (under `--limit`, and for `leak-check`); and how an event line starts.

use core::ffi::c_char;
use std::sync::{Mutex, OnceLock};

use shim_proto::cuda::config::{self, Config};
use shim_proto::cuda::events::Line;
use shim_proto::cuda::names::VARIANTS;
use shim_rt::Sink;
use shim_rt::process::{getenv, now_us, tid};

use super::N;
use crate::accounting::Accounting;

pub(super) struct State {
    pub(super) config: Config,
    config_error: Option<String>,
    /// Variants the failpoint targets.
    pub(super) armed: [bool; N],
    pub(super) acct: Option<Mutex<Accounting>>,
    pub(super) peak_step: u64,
    pub(super) sink: Sink,
    /// The events file's path: side files (ledger, maps copies) are named after it.
    pub(super) events: Option<String>,
}

pub(super) static STATE: OnceLock<State> = OnceLock::new();

pub(super) fn state() -> &'static State {
    if let Some(s) = STATE.get() {
        return s;
    }
    let mut fresh = false;
    let s = STATE.get_or_init(|| {
        fresh = true;
        init_state()
    });
    if fresh {
        announce(s);
    }
    s
}

fn init_state() -> State {
    let line = getenv(config::ENV_CONFIG).unwrap_or_default();
    let (config, config_error) = match Config::parse(&line) {
        Ok(c) => (c, None),
        Err(e) => (Config::default(), Some(e)),
    };
    let mut armed = [false; N];
    if let Some(fp) = &config.fail {
        for (i, v) in VARIANTS.iter().enumerate() {
            armed[i] = v.base == fp.call || v.name == fp.call;
        }
    }
    // leak-check accounts without a limit: held bytes and peaks for the ledger; its alloc and
    // free events make peak events redundant.
    let acct = match (config.limit, config.leaks) {
        (Some(l), _) => Some(Mutex::new(Accounting::new(l))),
        (None, true) => Some(Mutex::new(Accounting::new(u64::MAX))),
        (None, false) => None,
    };
    let peak_step = match config.limit {
        _ if config.leaks => u64::MAX,
        Some(l) => (l / 64).max(1 << 20),
        None => 1 << 20,
    };
    let events = getenv(config::ENV_EVENTS).filter(|p| !p.is_empty());
    super::ledger::open(events.as_deref());
    State {
        config,
        config_error,
        armed,
        acct,
        peak_step,
        sink: Sink::open(events.clone()),
        events,
    }
}

fn announce(s: &State) {
    let mut l = event("start");
    // SAFETY: getppid has no preconditions.
    l.u64("ppid", unsafe { libc::getppid() } as u64);
    let mut exe = [0u8; 512];
    // SAFETY: readlink into a buffer of the given size.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            exe.as_mut_ptr() as *mut c_char,
            exe.len(),
        )
    };
    if n > 0 {
        l.str("exe", &String::from_utf8_lossy(&exe[..n as usize]));
    }
    if let Some(e) = &s.config_error {
        l.str("config_error", e);
    }
    s.sink.write(l.finish());
}

pub(super) fn lock(m: &Mutex<Accounting>) -> std::sync::MutexGuard<'_, Accounting> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn event(kind: &str) -> Line {
    let mut l = Line::new();
    // SAFETY: getpid has no preconditions.
    l.str("ev", kind)
        .u64("pid", unsafe { libc::getpid() } as u64)
        .u64("tid", tid())
        .u64("t_us", now_us());
    l
}

pub(super) fn emit(mut l: Line) {
    state().sink.write(l.finish());
}
