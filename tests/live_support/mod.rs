//! What the live tests (watch, exporter) share: the replayed machine, gpu-doctor started as a
//! child that is killed when the test ends, a plain HTTP GET on loopback, bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The machine the live tests replay: the NVML snapshot recorded on the 2×H200 host.
pub const SNAPSHOT: &str = "tests/fixtures/h200x2.nvml.json";

pub fn snapshot() -> String {
    format!("{}/{SNAPSHOT}", env!("CARGO_MANIFEST_DIR"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// gpu-doctor with no real driver within reach.
pub fn doctor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    c.env("GPU_DOCTOR_LIBCUDA", "/nonexistent/libcuda.so.1")
        .env_remove("GPU_DOCTOR_LIBNVML")
        .env_remove("NO_COLOR");
    c
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

/// Starts the exporter with `args` before the command (`--replay`, `--fault`), listening on a
/// free loopback port; returns it and its address (read from its first stderr line).
pub fn start_exporter(before: &[&str], after: &[&str]) -> (Running, String) {
    let mut cmd = doctor();
    cmd.args(before)
        .arg("exporter")
        .args(["--listen", "127.0.0.1:0"])
        .args(after)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut running = Running::spawn(cmd, "gpu-doctor exporter");
    let stderr = running.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(rest) = line.split("serving http://").nth(1) {
                    let addr = rest.split('/').next().unwrap().to_string();
                    return (running, addr);
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(s) = running.child.try_wait().unwrap() {
                    panic!("the exporter exited ({s}): {}", seen.join("\n"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the exporter closed stderr: {}", seen.join("\n"))
            }
        }
    }
    panic!(
        "the exporter did not say where it listens: {}",
        seen.join("\n")
    );
}

/// A response: status, headers (lower-case names), body.
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path` from `addr` (HTTP/1.0, loopback only), with an optional Accept header.
pub fn get(addr: &str, path: &str, accept: Option<&str>) -> Http {
    assert!(
        addr.starts_with("127.0.0.1:"),
        "tests talk to loopback only"
    );
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Calls `f` every 200 ms until it returns Some or `limit` passes.
pub fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A program the test needs, or a failure that says how to get it.
pub fn need(program: &str, package: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
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

/// The sample lines of an exposition whose name and labels start with `prefix`.
pub fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The value of a sample line.
pub fn value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {line}"))
}
