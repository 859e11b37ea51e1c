//! Program mode: run the user's COMMAND with the LD_PRELOAD shim (shim/, embedded in this
//! binary) and collect what the shim saw. Used by `inject oom --limit … -- COMMAND`,
//! `inject error … -- COMMAND` and `trace ctx -- COMMAND` (src/scenarios/program.rs); the
//! analysis is in src/analyze/program.rs. See docs/shim.md.
//!
//! The program runs in its own process group with gpu-doctor's stdin, stdout and stderr; the
//! shim writes its events to a file in a private directory (0700) that only gpu-doctor reads.
//! If gpu-doctor dies, the program goes on: the shim ignores a missing or closed events file.
//! After the run, the shim's side files (each process's ledger; for `leak-check`, its maps
//! copies) are read too: `side_files`.

pub mod python_hook;
pub mod side_files;
pub mod symbols;
pub mod tail;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::output::PrivateDir;

pub use crate::facts::program::{Ended, Outcome, ShimEvent};
use shim_proto::cuda::config as shim_config;

/// Environment variable: path of a shim library to use instead of the embedded one.
pub const ENV_SHIM: &str = "GPU_DOCTOR_SHIM";

/// The shim built by build.rs (empty when it could not be built).
static EMBEDDED_SHIM: &[u8] = include_bytes!(env!("GPU_DOCTOR_SHIM_SO"));

/// Which of gpu-doctor's libraries goes into the program.
pub enum Shim {
    /// The CUDA driver shim, preloaded, with this configuration.
    Cuda(shim_config::Config),
    /// The NVML library (interposed over the program's libnvidia-ml, or replaying a snapshot).
    Nvml(crate::probe::nvml_library::Setup),
}

/// What to run and how.
pub struct Launch<'a> {
    pub command: &'a [String],
    pub shim: Shim,
    /// Kill it after this long and call it hung.
    pub timeout: Duration,
    /// Stop it after this long and call it survived.
    pub survive_after: Option<Duration>,
    /// Put the Python hook of `leak-check` first on the program's PYTHONPATH (CUDA shim only).
    pub framework_hooks: bool,
}

/// Where a watched run stands, for the watcher called while the program runs.
pub struct Watch<'a> {
    /// The shim's events file (empty with the NVML library).
    pub events: Option<&'a Path>,
    /// When the program started (CLOCK_MONOTONIC µs, the events' clock) and since then.
    pub start_us: u64,
    pub elapsed: Duration,
}

/// How often a watcher is called while the program runs.
pub const WATCH_PERIOD: Duration = Duration::from_millis(250);

/// CLOCK_MONOTONIC in µs (the clock the shim stamps events with).
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// `LD_PRELOAD` for the program: the caller's own preloads first, then the shim.
pub fn ld_preload_value(existing: Option<&str>, shim: &Path) -> String {
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(e) => format!("{e}:{}", shim.display()),
        None => shim.display().to_string(),
    }
}

/// Runs COMMAND with the shim until it exits, `--timeout` or `--survive-after` passes, or
/// Ctrl-C; returns its exit and the shim's events.
pub fn run(spec: &Launch<'_>) -> Result<Outcome> {
    run_watched(spec, &mut |_| {})
}

/// [`run`], calling `watch` every [`WATCH_PERIOD`] while the program runs.
pub fn run_watched(spec: &Launch<'_>, watch: &mut dyn FnMut(&Watch<'_>)) -> Result<Outcome> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(crate::error::input(
            "no COMMAND: put the program and its arguments after `--`",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        // Its own process group: a timeout stops it and everything it started.
        .process_group(0);
    // The library's directory and events file live until the events are read.
    let harness = match &spec.shim {
        Shim::Cuda(config) => {
            let dir = PrivateDir::create()?;
            let (shim, source) = crate::output::library_copy(
                &dir,
                "libgpu_doctor_shim.so",
                EMBEDDED_SHIM,
                ENV_SHIM,
            )?;
            let events = dir.write_file("events.jsonl", b"", 0o600)?;
            let preload = ld_preload_value(std::env::var("LD_PRELOAD").ok().as_deref(), &shim);
            cmd.env("LD_PRELOAD", preload)
                .env(shim_config::ENV_CONFIG, config.encode())
                .env(shim_config::ENV_EVENTS, &events);
            if spec.framework_hooks {
                let existing = std::env::var("PYTHONPATH").ok();
                cmd.env(
                    "PYTHONPATH",
                    python_hook::install(&dir, existing.as_deref())?,
                );
            }
            Harness::Cuda {
                _dir: dir,
                events,
                source,
            }
        }
        Shim::Nvml(setup) => {
            let h = crate::probe::nvml_library::Harness::for_program(setup)?;
            cmd.envs(h.env().iter().map(|(k, v)| (k, v)));
            Harness::Nvml(h)
        }
    };
    let start_us = monotonic_us();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| crate::error::input(format!("cannot run {program}: {e}")))?;
    let pid = child.id();
    let pgid = pid as libc::pid_t;
    let signal_group = |sig: libc::c_int| {
        // SAFETY: signalling the process group we created for our own child.
        unsafe { libc::kill(-pgid, sig) };
    };

    let mut ended = Ended::Exited;
    let mut deadline_kill: Option<Instant> = None;
    let events_path = match &harness {
        Harness::Cuda { events, .. } => Some(events.clone()),
        Harness::Nvml(_) => None,
    };
    let mut next_watch = WATCH_PERIOD;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let elapsed = started.elapsed();
        if elapsed >= next_watch {
            watch(&Watch {
                events: events_path.as_deref(),
                start_us,
                elapsed,
            });
            next_watch = elapsed + WATCH_PERIOD;
        }
        if ended == Ended::Exited {
            if crate::context::interrupted() {
                ended = Ended::Interrupted;
                signal_group(libc::SIGINT);
                deadline_kill = Some(Instant::now() + Duration::from_secs(5));
            } else if elapsed >= spec.timeout {
                ended = Ended::TimedOut;
                signal_group(libc::SIGKILL);
            } else if spec.survive_after.is_some_and(|d| elapsed >= d) {
                ended = Ended::Stopped;
                signal_group(libc::SIGTERM);
                deadline_kill = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        if deadline_kill.is_some_and(|d| Instant::now() >= d) {
            signal_group(libc::SIGKILL);
            deadline_kill = None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let (events, maps, nvml_events, bad_lines, shim_source) = match &harness {
        Harness::Cuda { events, source, .. } => {
            let (mut parsed, bad) = read_events(events);
            let side = side_files::read(events);
            side_files::merge_ledgers(&mut parsed, &side.ledgers);
            (parsed, side.maps, vec![], bad, source.clone())
        }
        Harness::Nvml(h) => {
            let (nvml, bad) = h.events();
            (vec![], vec![], nvml, bad, h.source.clone())
        }
    };
    drop(harness);
    Ok(Outcome {
        pid,
        code: status.code(),
        signal: status.signal(),
        ended,
        start_us,
        duration_ms,
        events,
        maps,
        nvml_events,
        bad_lines,
        shim_source,
    })
}

/// The library in the program and where its events go, until they are read.
enum Harness {
    Cuda {
        /// Kept alive: the program's library and events file are in it.
        _dir: PrivateDir,
        events: PathBuf,
        source: String,
    },
    Nvml(crate::probe::nvml_library::Harness),
}

/// Parses the events file; unparsable lines (a line cut by a kill) are counted, not fatal.
pub fn read_events(path: &Path) -> (Vec<ShimEvent>, usize) {
    let text = std::fs::read(path).unwrap_or_default();
    parse_events(&String::from_utf8_lossy(&text))
}

pub fn parse_events(text: &str) -> (Vec<ShimEvent>, usize) {
    let mut events = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<ShimEvent>(line) {
            Ok(e) => events.push(e),
            Err(_) => bad += 1,
        }
    }
    (events, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    use shim_proto::cuda::{events as shim_events, names as shim_names};

    #[test]
    fn ld_preload_appends() {
        let shim = Path::new("/tmp/x/libgpu_doctor_shim.so");
        assert_eq!(ld_preload_value(None, shim), "/tmp/x/libgpu_doctor_shim.so");
        assert_eq!(
            ld_preload_value(Some("  "), shim),
            "/tmp/x/libgpu_doctor_shim.so"
        );
        assert_eq!(
            ld_preload_value(Some("libjemalloc.so"), shim),
            "libjemalloc.so:/tmp/x/libgpu_doctor_shim.so"
        );
    }

    #[test]
    fn shim_encoded_events_parse_here() {
        let mut l = shim_events::Line::new();
        l.str("ev", "fail")
            .u64("pid", 10)
            .u64("tid", 11)
            .u64("t_us", 12)
            .str("call", "cuMemAlloc_v2")
            .u64("code", 2)
            .bool("injected", true)
            .u64("size", 1 << 30)
            .i64("dev", 0)
            .hex("ctx", 0x5555_0000_1234);
        let mut s = shim_events::Line::new();
        s.str("ev", "stats")
            .u64("pid", 10)
            .u64("tid", 10)
            .u64("t_us", 99)
            .begin_object("calls")
            .u64("cuLaunchKernel", 7)
            .end_object()
            .u64("dropped", 0);
        let text = format!(
            "{}{}{{\"ev\":\"fail\",\"pid\":1,\"ti",
            String::from_utf8_lossy(l.finish()),
            String::from_utf8_lossy(s.finish())
        );
        let (events, bad) = parse_events(&text);
        assert_eq!(bad, 1, "the cut last line");
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.ev, "fail");
        assert_eq!(e.call.as_deref(), Some("cuMemAlloc_v2"));
        assert_eq!(
            (e.code, e.injected, e.size, e.dev),
            (Some(2), Some(true), Some(1 << 30), Some(0))
        );
        assert_eq!(e.ctx.as_deref(), Some("0x555500001234"));
        assert_eq!(events[1].calls.as_ref().unwrap()["cuLaunchKernel"], 7);
    }

    #[test]
    fn shim_config_line_is_shared() {
        let cfg = shim_config::Config {
            limit: Some(1 << 20),
            ..Default::default()
        };
        assert_eq!(shim_config::Config::parse(&cfg.encode()), Ok(cfg));
        assert!(shim_names::fail_calls().contains(&"cuLaunchKernel"));
    }
}
