//! A replayed machine in a temporary directory, the programs that read it, and their output.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proto;
use crate::proto::event::{Event, EventLine, Mode};

/// The library cargo built for these tests: beside the test binary in target/<profile>/deps/
/// (where `cargo test` puts it), else in target/<profile>/ (`cargo build`).
pub fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary's directory");
    let candidates = [
        deps.to_path_buf(),
        deps.parent().unwrap_or(deps).to_path_buf(),
    ];
    candidates
        .iter()
        .map(|d| d.join(proto::LIBRARY_FILE))
        .find(|so| so.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} is missing beside {}: cargo builds the library before its tests",
                proto::LIBRARY_FILE,
                exe.display()
            )
        })
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("nvml-shim/ lies in the workspace")
        .to_path_buf()
}

pub fn synthetic() -> PathBuf {
    repo().join("tests/nvml/synthetic-2gpu.nvml.json")
}

/// A machine replayed from a snapshot: `lib/libnvidia-ml.so.1` is a *copy* of the library (a
/// link to the preloaded file would be the same object to the loader), found through
/// LD_LIBRARY_PATH; the events file exists (the library never creates it).
pub struct Machine {
    pub dir: tempfile::TempDir,
    snapshot: PathBuf,
    faults: Option<String>,
    interposed: bool,
}

impl Machine {
    pub fn replay(snapshot: &Path) -> Machine {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::copy(library(), dir.path().join("lib/libnvidia-ml.so.1")).unwrap();
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        Machine {
            dir,
            snapshot: snapshot.to_path_buf(),
            faults: None,
            interposed: false,
        }
    }

    pub fn faults(mut self, faults: &str) -> Machine {
        self.faults = Some(faults.to_string());
        self
    }

    /// The library preloaded on top of the replayed copy.
    pub fn interposed(mut self) -> Machine {
        self.interposed = true;
        self
    }

    pub fn nvml(&self) -> PathBuf {
        self.dir.path().join("lib/libnvidia-ml.so.1")
    }

    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env(proto::ENV_REPLAY, &self.snapshot)
            .env(proto::ENV_EVENTS, self.dir.path().join("events.jsonl"))
            .env("LD_LIBRARY_PATH", self.dir.path().join("lib"))
            .env_remove(proto::ENV_REAL)
            .env_remove(proto::ENV_FAULTS)
            .env_remove("LD_PRELOAD");
        if let Some(f) = &self.faults {
            c.env(proto::ENV_FAULTS, f);
        }
        if self.interposed {
            c.env("LD_PRELOAD", library());
        }
        c
    }

    pub fn events(&self) -> Vec<EventLine> {
        let text = std::fs::read_to_string(self.dir.path().join("events.jsonl")).unwrap();
        let (events, bad) = proto::event::parse_lines(&text);
        assert_eq!(bad, 0, "every event line parses:\n{text}");
        events
    }

    /// The `fault` events: (spec, gpu, call).
    pub fn delivered(&self) -> Vec<(String, Option<u32>, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Fault {
                    spec, gpu, call, ..
                } => Some((spec, gpu, call)),
                _ => None,
            })
            .collect()
    }

    /// The start events' modes and faults, in order.
    pub fn starts(&self) -> Vec<(Mode, Vec<String>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Start { mode, faults, .. } => Some((mode, faults)),
                _ => None,
            })
            .collect()
    }
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The stdout lines that are JSON objects (a test harness adds its own lines).
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The JSON after `PREFIX ` on the first line that has it (the test harness writes the
    /// test's name before it).
    pub fn tagged(&self, prefix: &str) -> Value {
        let tag = format!("{prefix} ");
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.find(&tag).map(|i| &l[i + tag.len()..]))
            .unwrap_or_else(|| panic!("no {prefix} line in:\n{}\n{}", self.stdout, self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{prefix}: {e}: {line}"))
    }
}

/// Runs a command to its end, killed (and the test failed) after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr:\n{}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code(),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// The C client (tests/nvml/dlsym_client.c), built once; None (test skipped) without `cc`.
pub fn c_client() -> Option<&'static Path> {
    static CLIENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let dir = tempfile::tempdir().ok()?.keep();
            let exe = dir.join("dlsym_client");
            let ok = Command::new("cc")
                .arg("-O2")
                .arg("-o")
                .arg(&exe)
                .arg(repo().join("tests/nvml/dlsym_client.c"))
                .arg("-ldl")
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            ok.then_some(exe)
        })
        .as_deref()
        .or_else(|| {
            eprintln!("skipped: no working C compiler (cc)");
            None
        })
}

/// This test binary started again to run one helper (an ignored test in `child`), with the
/// machine's environment.
pub fn child(m: &Machine, helper: &str) -> Command {
    let mut c = m.command(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        helper,
        "--nocapture",
        "--test-threads=1",
    ])
    .env("NVML_SHIM_TEST_LIB", m.nvml());
    c
}
