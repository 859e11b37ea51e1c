//! The library's state in one process: its mode, its backend (the real library or a
//! snapshot), its faults and its events file, set up once when the library is loaded.
//!
//! The mode is decided by how this copy was loaded:
//! - preloaded (its file is named in LD_PRELOAD): interpose, over the real libnvidia-ml;
//! - else, with `GPU_DOCTOR_NVML_REPLAY`: replay (this copy *is* libnvidia-ml);
//! - else: forward (this copy is loaded as libnvidia-ml and passes calls to the real one).
//!
//! When a copy that is not preloaded finds a preloaded copy in the process, it leaves the
//! faults to that one (so a fault is applied once, by the outermost copy).

use core::ffi::{c_char, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use shim_rt::dl::{RTLD_DEFAULT, sym};
use shim_rt::process::{getenv, now_us};

use crate::abi::{Device, ERROR_INVALID_ARGUMENT};
use crate::faults::Faults;
use crate::proto::event::{Event, Mode};
use crate::proto::fault::{self, Fault};
use crate::proto::snapshot::Snapshot;
use crate::proto::{ENV_EVENTS, ENV_FAULTS, ENV_REPLAY};
use crate::replay::Replay;
use crate::sink::Sink;

pub enum Backend {
    /// The real libnvidia-ml (interpose, forward).
    Real,
    Replay(Box<Replay>),
    /// Replay was asked for but the snapshot could not be read: nothing to answer with.
    Broken,
}

pub struct State {
    pub mode: Mode,
    pub backend: Backend,
    pub faults: Faults,
    pub sink: Sink,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The state if it was set up (the exit hook must not set it up).
pub fn state_if_set() -> Option<&'static State> {
    STATE.get()
}

#[inline(always)]
pub fn state() -> &'static State {
    if let Some(s) = STATE.get() {
        return s;
    }
    init()
}

#[cold]
fn init() -> &'static State {
    let mut fresh = None;
    let s = STATE.get_or_init(|| {
        let (state, start) = build();
        fresh = Some(start);
        state
    });
    if let Some(start) = fresh {
        s.sink.emit(start);
    }
    s
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// One line on stderr, once per process: the only thing the library ever prints.
pub fn warn_once(msg: &str) {
    if !WARNED.swap(true, Ordering::AcqRel) {
        let line = format!("gpu-doctor-nvml: {msg}\n");
        // SAFETY: write to stderr from a valid buffer; errors ignored.
        unsafe { libc::write(2, line.as_ptr() as *const c_void, line.len()) };
    }
}

/// The loaded object (file, base address) that holds address `p`.
fn object_of(p: *const c_void) -> Option<(*const c_char, *mut c_void)> {
    // SAFETY: dladdr into a zeroed Dl_info.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let ok = unsafe { libc::dladdr(p, &mut info) };
    (ok != 0 && !info.dli_fname.is_null()).then_some((info.dli_fname, info.dli_fbase))
}

/// Whether `p` lies in this very copy of the library. (The address of one of our exported
/// functions, taken in Rust, is the *first* definition in the process — another copy's when
/// one is preloaded — so the comparison goes by object, from a private function.)
pub fn in_this_copy(p: *const c_void) -> bool {
    let own = object_of(object_of as *const c_void).map(|o| o.1);
    !p.is_null() && own.is_some() && object_of(p).map(|o| o.1) == own
}

/// This copy's file, as the loader named it.
fn own_path() -> Option<String> {
    let (name, _) = object_of(object_of as *const c_void)?;
    // SAFETY: dladdr gives a NUL-terminated path.
    unsafe { crate::abi::c_str(name) }
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Whether LD_PRELOAD names this copy's file (by its file name, as the loader matches names
/// without a slash).
fn preloaded(own: Option<&str>) -> bool {
    let (Some(own), Some(list)) = (own, getenv("LD_PRELOAD")) else {
        return false;
    };
    let own = base_name(own);
    list.split([':', ' '])
        .filter(|e| !e.is_empty())
        .any(|e| base_name(e) == own)
}

/// Another copy of this library that comes first in the process's global scope (a preloaded
/// interposer over this copy).
fn other_copy_first() -> bool {
    // SAFETY: a pseudo-handle.
    let first = unsafe { sym(RTLD_DEFAULT, c"gpu_doctor_nvml_snapshot") };
    !first.is_null() && !in_this_copy(first)
}

fn build() -> (State, Event) {
    let t0 = now_us();
    let sink = Sink::open(getenv(ENV_EVENTS));
    let own = own_path();
    let replay_path = getenv(ENV_REPLAY).filter(|s| !s.is_empty());
    let mode = if preloaded(own.as_deref()) {
        Mode::Interpose
    } else if replay_path.is_some() {
        Mode::Replay
    } else {
        Mode::Forward
    };
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut faults: Vec<Fault> = match getenv(ENV_FAULTS) {
        None => vec![],
        Some(line) => fault::parse_env(&line).unwrap_or_else(|e| {
            errors.push(format!("{ENV_FAULTS}: {e}"));
            vec![]
        }),
    };
    if mode != Mode::Interpose && !faults.is_empty() && other_copy_first() {
        warnings.push("faults left to the preloaded copy of the library".into());
        faults.clear();
    }
    let backend = match mode {
        Mode::Replay => {
            let path = replay_path.clone().unwrap_or_default();
            match Snapshot::read(std::path::Path::new(&path)) {
                Ok(snap) => {
                    if let Err(e) = fault::check_gpus(&faults, snap.gpu_count()) {
                        warnings.push(e.0);
                    }
                    Backend::Replay(Box::new(Replay::new(snap)))
                }
                Err(e) => {
                    errors.push(format!("{ENV_REPLAY}={path}: {e}"));
                    Backend::Broken
                }
            }
        }
        _ => Backend::Real,
    };
    let config_error = (!errors.is_empty()).then(|| errors.join("; "));
    if let Some(e) = &config_error {
        warn_once(e);
    }
    let gpus = match &backend {
        Backend::Replay(r) => Some(r.gpu_count()),
        _ => None,
    };
    let start = Event::Start {
        loaded_us: t0,
        // SAFETY: getppid has no preconditions.
        ppid: unsafe { libc::getppid() } as u32,
        exe: std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        mode,
        faults: faults.iter().map(|f| f.to_string()).collect(),
        config_error,
        warnings,
        snapshot: (mode == Mode::Replay).then(|| replay_path.unwrap_or_default()),
        gpus,
    };
    let state = State {
        mode,
        backend,
        faults: Faults::new(faults, t0),
        sink,
    };
    (state, start)
}

impl State {
    /// The NVML index of a device handle: the snapshot's GPU, or the driver's (None for a
    /// handle the library cannot place, e.g. a MIG device).
    pub fn gpu_of(&self, dev: Device) -> Option<u32> {
        match &self.backend {
            Backend::Replay(_) => crate::handles::replay_gpu(dev),
            _ => crate::handles::real_gpu(dev),
        }
    }

    /// Replay: the GPU of a handle, or the code for a handle that is not ours.
    pub fn replay_gpu(&self, dev: Device) -> Result<u32, u32> {
        crate::handles::replay_gpu(dev).ok_or(ERROR_INVALID_ARGUMENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names() {
        assert_eq!(
            base_name("/tmp/x/libgpu_doctor_nvml.so"),
            "libgpu_doctor_nvml.so"
        );
        assert_eq!(base_name("libnvidia-ml.so.1"), "libnvidia-ml.so.1");
    }
}
