//! What program mode sees of a user's program: the lines the shim wrote, and how the run
//! ended. Launching the program is `crate::program`'s job; judging it `analyze::program`'s.

use serde::{Deserialize, Serialize};

/// One line the shim wrote (see shim-proto/src/cuda/events.rs for the meaning of each kind).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShimEvent {
    pub ev: String,
    pub pid: u64,
    pub tid: u64,
    pub t_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#final: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<std::collections::BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_noops: Option<u64>,
    /// `stats` and final `peak` made from the process's ledger: it ended without running its
    /// exit handlers (exit_group, `_exit`, a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    // leak-check (`leaks=1`) and the Python pool hook.
    /// Device pointer or virtual address ("0x…").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptr: Option<String>,
    /// cuMemCreate handle ("0x…").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Offset into the handle of a cuMemMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Return addresses of the call site, innermost first ("0x…").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bt: Option<Vec<String>>,
    /// The maps copy the return addresses resolve in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<u64>,
    /// `pool`: torch, cupy or jax; `before` or `after` its cache was released; the bytes its
    /// tensors used and the bytes its pool held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
}

/// A copy of /proc/PID/maps the shim made (`leak-check`): where return addresses resolve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapsCopy {
    pub pid: u32,
    /// 1, 2, …: an event's `maps` names the copy its addresses resolve in.
    pub seq: u64,
    pub text: String,
}

/// How the program's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// It exited (or died of a signal) on its own.
    Exited,
    /// Still running at `--timeout`: killed (SIGKILL to its process group).
    TimedOut,
    /// Still running at `--survive-after`: stopped (SIGTERM, then SIGKILL) — it survived.
    Stopped,
    /// Ctrl-C: passed on to the program (SIGINT), killed if it did not stop.
    Interrupted,
}

/// What a program run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pid: u32,
    /// Exit code when it exited.
    pub code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    pub ended: Ended,
    /// CLOCK_MONOTONIC µs when it was started (the shim's `t_us` clock).
    pub start_us: u64,
    pub duration_ms: f64,
    /// What the CUDA shim wrote (CUDA program modes), the processes' ledgers folded in.
    pub events: Vec<ShimEvent>,
    /// The shim's copies of /proc/PID/maps (`leak-check`).
    pub maps: Vec<MapsCopy>,
    /// What the NVML library wrote (`inject nvml`, `replay`).
    pub nvml_events: Vec<shim_proto::nvml::event::EventLine>,
    /// Lines of the events file that did not parse (a cut last line when killed).
    pub bad_lines: usize,
    /// Where the shim came from: "embedded" or the GPU_DOCTOR_SHIM path.
    pub shim_source: String,
}
