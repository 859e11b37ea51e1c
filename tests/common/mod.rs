//! What the integration tests share: the built gpu-doctor kept away from any real driver, the
//! repository's files as arguments (fixtures, NVML snapshots to replay), a run that reads back
//! the report it wrote, programs a test needs, bounded waits, processes stopped when a test
//! ends, and YAML read by a real parser.
// Each test crate includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use gpu_doctor::report::Report;
use serde_json::Value;

/// The hand-written 2-GPU NVML snapshot (tests/nvml_cli.rs checks it says "synthetic").
pub const SYNTHETIC_SNAPSHOT: &str = "tests/nvml/synthetic-2gpu.nvml.json";

/// The NVML snapshot recorded on the 2×H200 host.
pub const RECORDED_SNAPSHOT: &str = "tests/fixtures/h200x2.nvml.json";

/// The repository.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `rel`, a path in the repository, as an absolute command-line argument.
pub fn repo_arg(rel: &str) -> String {
    root().join(rel).display().to_string()
}

/// tests/fixtures/`name` as an absolute command-line argument.
pub fn fixture(name: &str) -> String {
    repo_arg(&format!("tests/fixtures/{name}"))
}

/// The built gpu-doctor with no NVIDIA driver within reach: NVML and CUDA are loaded from
/// paths that do not exist, so a machine with a driver behaves as one without (`--replay`
/// still gives gpu-doctor the snapshot's NVML).
pub fn doctor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    c.env("GPU_DOCTOR_LIBNVML", "/nonexistent/libnvidia-ml.so.1")
        .env("GPU_DOCTOR_LIBCUDA", "/nonexistent/libcuda.so.1")
        .env_remove("RUST_BACKTRACE");
    c
}

/// Runs `cmd`, expects exit `code`, and returns what it printed on stdout.
pub fn stdout_of(cmd: &mut Command, code: i32) -> String {
    String::from_utf8(cmd.assert().code(code).get_output().stdout.clone()).unwrap()
}

/// Runs `cmd` (with `--json`), expects exit `code`, and parses the report it printed.
pub fn printed_report(cmd: &mut Command, code: i32) -> Report {
    gpu_doctor::output::parse_report(&stdout_of(cmd, code)).unwrap()
}

/// What one run of gpu-doctor gave: its exit code, the report it wrote with `-o` (none when it
/// stopped before one), and its output (a program's own stdout passes through).
pub struct Ran {
    pub code: i32,
    pub report: Option<Report>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The report it wrote; a failure that shows its stderr when it wrote none.
    pub fn report(&self) -> &Report {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report (exit {}): {}", self.code, self.stderr))
    }
}

/// Runs `cmd` followed by `-o FILE` and `args`, and reads back the report it wrote to FILE.
pub fn with_report(mut cmd: Command, args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let out = cmd.arg("-o").arg(&file).args(args).output().unwrap();
    let report = file.exists().then(|| {
        gpu_doctor::output::parse_report(&std::fs::read_to_string(&file).unwrap()).unwrap()
    });
    Ran {
        code: out.status.code().unwrap_or(-1),
        report,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A program the test needs, or a failure that says how to get it.
pub fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    assert!(
        found,
        "`{program}` is needed by this test: install the Debian package `{package}` (.ci/run does)"
    );
}

/// A loopback port free right now (for a server that takes its port as a flag).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Calls `f` every 200 ms until it returns Some; None once `limit` has passed.
pub fn within<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`within`], failing the test with `what` once `limit` has passed.
pub fn poll<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    within(limit, f).unwrap_or_else(|| panic!("{what}: not within {limit:?}"))
}

/// A child process killed (and reaped) when dropped: a failing test leaves nothing running.
pub struct Running {
    pub child: Child,
    pub what: String,
}

impl Running {
    pub fn spawn(mut cmd: Command, what: &str) -> Running {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Running {
            child,
            what: what.into(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits up to `limit` for it to exit; its exit code.
    pub fn wait_for_exit(&mut self, limit: Duration) -> i32 {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "{} did not exit within {limit:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The documents of the YAML file `rel` (a path in the repository) as JSON, read by PyYAML.
pub fn yaml_documents(rel: &str) -> Vec<Value> {
    let script =
        "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root().join(rel))
        .output()
        .expect(
            "python3 runs (needs PyYAML: Debian python3-yaml, or pip pyyaml as .ci/run installs)",
        );
    assert!(
        out.status.success(),
        "PyYAML could not load {rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
