//! What the live tests (watch, exporter) share besides tests/common: the replayed machine,
//! the exporter started on a free loopback port, a plain HTTP GET on loopback, the samples of
//! an exposition. A test crate that uses it also declares `mod common;`.
// Each test crate includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{RECORDED_SNAPSHOT, Running, doctor, repo_arg};

/// The machine the live tests replay: the NVML snapshot recorded on the 2×H200 host.
pub fn snapshot() -> String {
    repo_arg(RECORDED_SNAPSHOT)
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
