//! What `trace ctx` records: the timeline of driver calls, the contexts and threads it names,
//! and the raw facts of each sub-scenario. Plain data stored in the report's `data`, so
//! `analyze::trace_ctx` re-runs the findings on a saved report without a GPU.

use serde::{Deserialize, Serialize};

use crate::report::Code;

/// Sub-scenarios, as the timeline's `sub` names them.
pub const THREAD_HOP: &str = "thread-hop";
pub const DEVICE_MIXUP: &str = "device-mixup";
pub const PUSH_POP: &str = "push-pop";
pub const PRIMARY_LIFETIME: &str = "primary-lifetime";

/// Thread-hop variants, in the order they run.
pub const UNBOUND: &str = "unbound";
pub const BOUND: &str = "bound";
pub const PINNED: &str = "pinned";

/// Driver answers the analysis looks for in `TraceEvent::result`.
pub const SUCCESS: i64 = 0;
pub const INVALID_CONTEXT: i64 = 201;

/// A context as the timeline names it: a short stable id (`ctx#1`) and the raw handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtxRef {
    pub id: String,
    /// The CUcontext pointer as hex ("0x5581e2c0a8d0").
    pub ptr: String,
}

/// One driver call on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Order of the call in the run (calls never overlap: the scenario serialises them).
    pub seq: u32,
    /// Start, microseconds since the scenario started.
    pub t_us: f64,
    /// Duration of the driver call itself, microseconds.
    pub dur_us: f64,
    /// OS thread id (gettid) that made the call.
    pub thread: u64,
    /// Sub-scenario: thread-hop, device-mixup, push-pop, primary-lifetime.
    pub sub: String,
    /// thread-hop: unbound, bound or pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// thread-hop: the work item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    /// What the call is for, in words.
    pub what: String,
    /// Driver entry point: "cuMemAlloc_v2".
    pub op: String,
    /// The context the call was given as argument, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg_ctx: Option<CtxRef>,
    /// The context the call handed back (pop, create, retain, pointer attribute), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_ctx: Option<CtxRef>,
    /// cuCtxGetCurrent on this thread right before and right after the call (null: none).
    pub ctx_before: Option<CtxRef>,
    pub ctx_after: Option<CtxRef>,
    pub result: Code,
    /// Every answer the documentation allows for this call here.
    pub expected: Vec<Code>,
    /// result ∈ expected.
    pub ok: bool,
    /// Also recorded as a report step.
    #[serde(default)]
    pub step: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TraceEvent {
    pub fn failed(&self) -> bool {
        self.result.code != SUCCESS
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadInfo {
    pub tid: u64,
    /// Role of the thread: "thread-hop worker 0 (creator)".
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtxInfo {
    pub id: String,
    pub ptr: String,
    /// "created" (cuCtxCreate), "primary" (cuDevicePrimaryCtxRetain) or "seen" (only observed).
    pub kind: String,
    /// CUDA device ordinal.
    #[serde(default)]
    pub device: Option<i32>,
    #[serde(default)]
    pub label: String,
}

/// One pass of thread-hop over all tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopRun {
    pub variant: String,
    pub tasks: u32,
    /// Worker threads the tasks ran on.
    pub threads_used: u32,
    /// Tasks whose result slot held the right value when read back on the creator thread.
    pub written: u32,
    /// Tasks whose write never happened.
    #[serde(default)]
    pub unwritten: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopFacts {
    pub threads: u32,
    pub tasks: u32,
    /// Id of the context the pool works in.
    pub ctx: String,
    pub creator_tid: u64,
    pub runs: Vec<HopRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixupCase {
    /// "B left current" (deliberate mix-up) or "A bound first" (the fix).
    pub case: String,
    /// True for the case that provokes the mix-up on purpose.
    pub deliberate: bool,
    pub intended_ctx: String,
    pub intended_device: i32,
    /// Context current when the allocation was made, and its device (cuCtxGetDevice).
    pub current_ctx: Option<String>,
    pub current_device: Option<i32>,
    /// Where the memory landed: cuPointerGetAttribute CONTEXT and DEVICE_ORDINAL.
    pub landed_ctx: Option<String>,
    pub landed_device: Option<i32>,
    pub pointer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixupFacts {
    /// "two-gpus" (A and B are different GPUs) or "two-contexts" (two contexts on one GPU).
    pub mode: String,
    /// NVML indices of A and B.
    pub nvml: Vec<u32>,
    pub cases: Vec<MixupCase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryState {
    pub flags: u32,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryFacts {
    /// CUDA device ordinal and its NVML index.
    pub device: i32,
    pub nvml: u32,
    /// cuDriverGetVersion, e.g. 13000.
    pub driver_version: i32,
    pub initial: Option<PrimaryState>,
    pub after_retain: Option<PrimaryState>,
    /// Both users' retains handed back the same CUcontext.
    pub same_handle: Option<bool>,
    /// Flags asked for while the primary context was active (CU_CTX_SCHED_BLOCKING_SYNC = 4).
    pub requested_flags: u32,
    /// cuDevicePrimaryCtxSetFlags_v2's answer while active.
    pub set_flags_while_active: Option<Code>,
    pub state_after_set_flags: Option<PrimaryState>,
    /// cuCtxGetFlags in the running primary context after SetFlags.
    pub ctx_flags_after_set: Option<u32>,
    pub state_after_release_to_zero: Option<PrimaryState>,
    /// The call the second user made on its old pointer after the release to zero, and its answer.
    pub use_after_release_call: String,
    pub use_after_release: Option<Code>,
    /// The second user's own release after the count had reached zero.
    pub over_release: Option<Code>,
    /// The fixed pattern (one retain for the process): the same work's answer.
    pub fixed_use: Option<Code>,
    pub final_state: Option<PrimaryState>,
}
