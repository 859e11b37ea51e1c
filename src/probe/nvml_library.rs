//! gpu-doctor's NVML library (nvml-shim/, embedded in the binary; docs/nvml.md): how a process
//! gets it, and what it wrote.
//!
//! - [`Harness::for_self`]: gpu-doctor's own NVML becomes the library — replaying a snapshot
//!   (`--replay`), or over the real libnvidia-ml with faults (`--fault`). Its environment is
//!   set for this process before NVML is loaded, and children inherit it.
//! - [`Harness::for_program`]: a user's program gets it — preloaded over its real libnvidia-ml
//!   (`inject nvml`), or found as libnvidia-ml on LD_LIBRARY_PATH (`replay`).
//! - [`record_snapshot`]: the library records every answer of this machine's NVML.
//!
//! The library and its events file live in a private directory (0700), removed when the
//! harness is dropped; only gpu-doctor reads the events.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use shim_proto::nvml::event::{self as nvml_event, EventLine};
use shim_proto::nvml::fault::{self, Fault};
use shim_proto::nvml::snapshot::Snapshot;
use shim_proto::nvml::{
    ENV_EVENTS, ENV_FAULTS, ENV_REAL, ENV_REPLAY, LIBRARY_FILE, SNAPSHOT_SYMBOL,
};

use crate::error::input;
use crate::output::PrivateDir;
use crate::probe::loader::ENV_LIBNVML;

/// Path of an NVML library to use instead of the embedded one.
pub const ENV_NVML_SHIM: &str = "GPU_DOCTOR_NVML_SHIM";

/// The library built by build.rs (empty when it could not be built).
static EMBEDDED: &[u8] = include_bytes!(env!("GPU_DOCTOR_NVML_SO"));

/// The name a program's dynamic loader looks for.
const SONAME: &str = "libnvidia-ml.so.1";

/// Whether NVML in this process is a replayed machine (set by [`Harness::for_self`], inherited
/// by children): there is no CUDA driver behind it.
pub fn replaying() -> bool {
    std::env::var_os(ENV_REPLAY).is_some_and(|v| !v.is_empty())
}

/// What the library should do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Setup {
    /// Serve this snapshot instead of a real driver.
    pub snapshot: Option<PathBuf>,
    /// Faults on top (already parsed and checked).
    pub faults: Vec<Fault>,
}

impl Setup {
    /// The snapshot read and the faults checked against its GPUs: input errors (exit 2) before
    /// anything starts. Returns the snapshot when there is one.
    pub fn check(&self) -> Result<Option<Snapshot>> {
        let Some(path) = &self.snapshot else {
            return Ok(None);
        };
        let snap = Snapshot::read(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        fault::check_gpus(&self.faults, snap.gpu_count())
            .map_err(|e| input(format!("--fault: {}", e.0)))?;
        Ok(Some(snap))
    }
}

/// The library in a private directory, and the environment that makes a process use it.
pub struct Harness {
    dir: PrivateDir,
    pub events: PathBuf,
    /// "embedded" or the path `GPU_DOCTOR_NVML_SHIM` named.
    pub source: String,
    env: Vec<(String, OsString)>,
}

impl Harness {
    /// gpu-doctor's own NVML becomes the library (a copy named libnvidia-ml.so.1, which
    /// `GPU_DOCTOR_LIBNVML` points at).
    pub fn for_self(setup: &Setup) -> Result<Harness> {
        let mut h = Harness::new(SONAME)?;
        let library = h.library_path();
        // A real library the user pointed gpu-doctor at is the one the copy forwards to.
        if setup.snapshot.is_none()
            && let Some(real) = std::env::var_os(ENV_LIBNVML).filter(|v| !v.is_empty())
        {
            h.env.push((ENV_REAL.into(), real));
        }
        h.env.push((ENV_LIBNVML.into(), library.into_os_string()));
        h.configure(setup)?;
        Ok(h)
    }

    /// A user's program gets the library: preloaded over its real NVML, or (with a snapshot)
    /// found as libnvidia-ml.so.1 first on its library path.
    pub fn for_program(setup: &Setup) -> Result<Harness> {
        let mut h = Harness::new(if setup.snapshot.is_some() {
            SONAME
        } else {
            LIBRARY_FILE
        })?;
        let library = h.library_path();
        if setup.snapshot.is_some() {
            // Programs that ask for the development name find the same library.
            std::os::unix::fs::symlink(SONAME, h.dir.path().join("libnvidia-ml.so"))
                .context("cannot link libnvidia-ml.so")?;
            let path = prepend(std::env::var_os("LD_LIBRARY_PATH"), h.dir.path());
            h.env.push(("LD_LIBRARY_PATH".into(), path));
        } else {
            let preload = prepend_preload(std::env::var_os("LD_PRELOAD"), &library);
            h.env.push(("LD_PRELOAD".into(), preload));
        }
        h.configure(setup)?;
        Ok(h)
    }

    fn new(file: &str) -> Result<Harness> {
        let dir = PrivateDir::create()?;
        let (library, source) = crate::output::library_copy(&dir, file, EMBEDDED, ENV_NVML_SHIM)?;
        if source != "embedded" && library.file_name() != Some(OsStr::new(file)) {
            // An override under another name: link it in under the name the loader wants.
            std::os::unix::fs::symlink(&library, dir.path().join(file))
                .context("cannot link the NVML library")?;
        }
        let events = dir.write_file("nvml-events.jsonl", b"", 0o600)?;
        Ok(Harness {
            dir,
            events,
            source,
            env: Vec::new(),
        })
    }

    fn library_path(&self) -> PathBuf {
        let soname = self.dir.path().join(SONAME);
        if soname.exists() {
            soname
        } else {
            self.dir.path().join(LIBRARY_FILE)
        }
    }

    fn configure(&mut self, setup: &Setup) -> Result<()> {
        if let Some(snapshot) = &setup.snapshot {
            let abs = std::fs::canonicalize(snapshot)
                .map_err(|e| input(format!("{}: {e}", snapshot.display())))?;
            self.env.push((ENV_REPLAY.into(), abs.into_os_string()));
        }
        if !setup.faults.is_empty() {
            self.env
                .push((ENV_FAULTS.into(), fault::encode_env(&setup.faults).into()));
        }
        self.env
            .push((ENV_EVENTS.into(), self.events.clone().into_os_string()));
        Ok(())
    }

    /// The variables to set on a child process.
    pub fn env(&self) -> &[(String, OsString)] {
        &self.env
    }

    /// Sets the variables in this process, so the NVML it loads next (and its children's) is
    /// the library.
    ///
    /// # Safety
    /// No other thread may read or write the environment meanwhile: call it while the
    /// process has one thread (at start-up, before anything spawns threads).
    pub unsafe fn apply_to_self(&self) {
        for (k, v) in &self.env {
            // SAFETY: the caller guarantees no other thread touches the environment.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// What the library wrote so far, and how many lines did not parse (a line cut by a kill).
    pub fn events(&self) -> (Vec<EventLine>, usize) {
        let text = std::fs::read(&self.events).unwrap_or_default();
        nvml_event::parse_lines(&String::from_utf8_lossy(&text))
    }
}

fn prepend(existing: Option<OsString>, dir: &Path) -> OsString {
    let mut v = dir.as_os_str().to_os_string();
    if let Some(e) = existing.filter(|e| !e.is_empty()) {
        v.push(":");
        v.push(e);
    }
    v
}

/// The program's own preloads first, then the library (it must see the real NVML's symbols
/// through dlsym, and an earlier preload of the program's keeps working as before).
fn prepend_preload(existing: Option<OsString>, library: &Path) -> OsString {
    match existing.filter(|e| !e.to_string_lossy().trim().is_empty()) {
        Some(mut e) => {
            e.push(":");
            e.push(library);
            e
        }
        None => library.as_os_str().to_os_string(),
    }
}

/// What [`record_snapshot`] wrote.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub snapshot: Snapshot,
    pub bytes: u64,
}

/// Records this machine's NVML into `path` (the library's `gpu_doctor_nvml_snapshot`, over the
/// real libnvidia-ml).
///
/// # Safety
/// It sets the library's environment in this process: call it while the process has one
/// thread.
pub unsafe fn record_snapshot(path: &Path) -> Result<Recorded> {
    let dir = PrivateDir::create()?;
    let (library, _) = crate::output::library_copy(&dir, LIBRARY_FILE, EMBEDDED, ENV_NVML_SHIM)?;
    let tmp = dir.path().join("snapshot.json");
    let real = std::env::var_os(ENV_LIBNVML)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SONAME.into());
    // SAFETY: the caller runs this while the process has one thread.
    unsafe {
        std::env::remove_var(ENV_REPLAY);
        std::env::remove_var(ENV_FAULTS);
        std::env::set_var(ENV_REAL, &real);
    }
    // SAFETY: loading our own library runs its constructor, which only reads the environment
    // and sets up its state; it exports nothing that replaces gpu-doctor's symbols (it is not
    // loaded with RTLD_GLOBAL).
    let lib = unsafe { libloading::Library::new(&library) }
        .with_context(|| format!("cannot load {}", library.display()))?;
    type SnapshotFn = unsafe extern "C" fn(*const libc::c_char, *mut libc::c_char, u32) -> i32;
    let symbol = format!("{SNAPSHOT_SYMBOL}\0");
    // SAFETY: the symbol has this C signature (shim_proto::nvml::SNAPSHOT_SYMBOL, docs/nvml.md).
    let record = unsafe { lib.get::<SnapshotFn>(symbol.as_bytes()) }
        .context("the NVML library has no snapshot function")?;
    let c_path = std::ffi::CString::new(tmp.as_os_str().as_encoded_bytes())
        .context("a path without NUL bytes")?;
    let mut err = vec![0u8; 512];
    // SAFETY: a NUL-terminated path and a writable buffer of the length we pass.
    let rc = unsafe {
        record(
            c_path.as_ptr(),
            err.as_mut_ptr() as *mut libc::c_char,
            err.len() as u32,
        )
    };
    let message =
        String::from_utf8_lossy(&err[..err.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
    match rc {
        0 => {}
        // NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_DRIVER_NOT_LOADED: no driver here.
        9 | 12 => {
            return Err(crate::error::unavailable(format!(
                "no NVIDIA driver to record: {message} ({})",
                crate::probe::loader::missing_nvml_message(&real.to_string_lossy())
            )));
        }
        rc if rc > 0 => {
            return Err(crate::error::unavailable(format!(
                "NVML could not start (code {rc}): {message}"
            )));
        }
        _ => return Err(anyhow::anyhow!("recording the snapshot failed: {message}")),
    }
    let text = std::fs::read_to_string(&tmp).context("the recorded snapshot")?;
    let snapshot =
        Snapshot::parse(&text).map_err(|e| anyhow::anyhow!("the recorded snapshot: {e}"))?;
    crate::output::write_atomic(path, text.as_bytes(), "the snapshot")?;
    Ok(Recorded {
        snapshot,
        bytes: text.len() as u64,
    })
}
