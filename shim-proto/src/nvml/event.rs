//! The events file: one JSON object per line, written by every process that loaded the library
//! (`GPU_DOCTOR_NVML_EVENTS`), read only by gpu-doctor. Every line has `ev`, `pid`, `tid` (OS
//! thread) and `t_us` (CLOCK_MONOTONIC in µs, the clock of Rust's `Instant` on Linux).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub pid: u32,
    pub tid: u64,
    pub t_us: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// How a copy of the library works in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Preloaded (LD_PRELOAD): wraps the real libnvidia-ml that the program loads.
    Interpose,
    /// Loaded as libnvidia-ml with a snapshot: answers from it.
    Replay,
    /// Loaded as libnvidia-ml without a snapshot: forwards to the real one.
    Forward,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// The library loaded into a process.
    Start {
        /// When the library loaded (CLOCK_MONOTONIC µs): time delays count from here.
        loaded_us: u64,
        ppid: u32,
        exe: String,
        mode: Mode,
        /// The faults this copy applies (canonical syntax).
        faults: Vec<String>,
        /// The configuration was refused (the library then applies no fault / serves nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_error: Option<String>,
        /// A remark that does not stop it (a fault for a GPU the snapshot lacks, faults left
        /// to a preloaded copy).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
        /// GPUs in the snapshot (replay).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpus: Option<u32>,
    },
    /// The program initialised NVML through the library (first time per process).
    Init { call: String, rc: u32 },
    /// A delayed fault started: the first call after its delay.
    Active {
        /// Index in the start event's `faults`.
        fault: u32,
        spec: String,
        call: String,
    },
    /// A faulted answer reached the program: the first time per fault, GPU and call.
    Fault {
        fault: u32,
        spec: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpu: Option<u32>,
        call: String,
        /// What the program got, in words ("8", "ERROR_GPU_IS_LOST", "xid 79").
        value: String,
    },
    /// Replay: a query the snapshot has no answer for (answered NVML_ERROR_NOT_SUPPORTED);
    /// once per key and GPU.
    Missing {
        call: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gpu: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
    },
    /// At exit: calls per NVML function, faulted answers per fault, missing answers.
    Stats {
        calls: BTreeMap<String, u64>,
        /// Faulted answers the program got, per fault (index as in `faults`).
        reads: Vec<u64>,
        missing: u64,
    },
}

/// Parses the events file; lines that are not events (a partial last line) are counted.
pub fn parse_lines(text: &str) -> (Vec<EventLine>, usize) {
    let mut bad = 0;
    let events = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).map_err(|_| bad += 1).ok())
        .collect();
    (events, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let l = EventLine {
            pid: 7,
            tid: 8,
            t_us: 9,
            event: Event::Fault {
                fault: 0,
                spec: "pcie-width=8@gpu0".into(),
                gpu: Some(0),
                call: "nvmlDeviceGetCurrPcieLinkWidth".into(),
                value: "8".into(),
            },
        };
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("\"ev\":\"fault\""), "{text}");
        let (back, bad) = parse_lines(&format!("{text}\n{{\"ev\":\"sta"));
        assert_eq!(back, vec![l]);
        assert_eq!(bad, 1);
    }
}
