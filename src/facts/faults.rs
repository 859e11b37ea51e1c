//! What the fault-injection scenarios (`inject …`) observe: plain data stored in each report's
//! `data.facts`, so `analyze::faults` can re-run the verdicts on a saved report without a GPU.
//! The driver's answers themselves are the report's `steps`; these facts hold what steps
//! cannot (sizes, timings, counts, memory snapshots).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::report::Code;

/// Step-name prefixes that `analyze::faults` reads: the probes name their steps with them.
pub mod step_names {
    /// `inject oom`: the steps that prove OOM is not sticky.
    pub const AFTER_OOM: &str = "after OOM: ";
    /// `inject illegal-address`: the calls made in the faulted context.
    pub const STICKY_AFTER: &str = "after the fault: ";
    /// `inject ctx-destroy`: the fresh context after the destroyed ones.
    pub const RECOVERY: &str = "recovery";
}

/// The memory check of every fault scenario (the one type, `crate::facts::memory`).
pub use crate::facts::memory::MemoryCheck;

/// `inject oom`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct OomFacts {
    /// NVML index of the GPU filled.
    pub device: u32,
    /// "sync" (cuMemAlloc) or "async" (cuMemAllocAsync from the device's default pool).
    pub allocator: String,
    pub granularity_bytes: u64,
    /// Largest chunk tried first.
    pub chunk_bytes: u64,
    pub fraction: Option<f64>,
    pub total_bytes: u64,
    /// cuMemGetInfo free in our context (kernels loaded) before filling.
    pub free_before_bytes: u64,
    /// With --fraction: the bytes to allocate.
    pub target_bytes: Option<u64>,
    pub allocatable_bytes: u64,
    /// Successful allocations.
    pub allocations: u64,
    /// Allocation calls that answered OUT_OF_MEMORY (one per halving).
    pub oom_answers: u64,
    /// True when the driver answered OUT_OF_MEMORY (the edge was reached).
    pub reached_oom: bool,
    /// Size of the last refused allocation: the edge is found within it.
    pub last_refused_bytes: Option<u64>,
    /// Why filling stopped: "oom" (edge found), "fraction", "interrupted", "error", "guard"
    /// (allocated more than the GPU has without an error: async OOM deferred).
    pub stopped_by: String,
    pub time_to_edge_ms: f64,
    /// When the fill started (just before `free_before_bytes` was read) and ended (the edge,
    /// before anything was freed), ms since the scenario started: the window in which other
    /// processes' memory changes move the edge (`memory.watch`). Absent in earlier reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_started_at_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_ended_at_ms: Option<f64>,
    pub free_ms: f64,
    /// How long the memory was held (--hold).
    pub held_ms: f64,
    /// Where OUT_OF_MEMORY surfaced: "call" (the allocation answered it), "sync" (the
    /// stream synchronisation after the fill did), or None (not reached).
    pub oom_surfaced_at: Option<String>,
    /// The kernel launched after OOM wrote the value read back.
    pub proof_value_ok: Option<bool>,
    /// --allocator async only.
    pub pool: Option<PoolFacts>,
    pub memory: MemoryCheck,
}

/// The default memory pool around an async fill.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PoolFacts {
    /// CU_MEMPOOL_ATTR_RELEASE_THRESHOLD before we raised it (restored afterwards).
    pub release_threshold_before: Option<u64>,
    /// cuMemGetInfo free after every cuMemFreeAsync and a sync: the pool keeps the memory.
    pub free_after_free_bytes: Option<u64>,
    /// CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT after the frees and after cuMemPoolTrimTo(0).
    pub reserved_after_free_bytes: Option<u64>,
    pub reserved_after_trim_bytes: Option<u64>,
    /// cuMemGetInfo free after cuMemPoolTrimTo(0).
    pub free_after_trim_bytes: Option<u64>,
}

/// `inject fragmentation`: the same churn of mixed sizes, with every other allocation freed,
/// through three allocators; after it, the largest single block each can still hand out against
/// the memory it has free.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FragmentationFacts {
    /// NVML index of the GPU.
    pub device: u32,
    pub total_bytes: u64,
    /// cuMemGetInfo free in our context before the first churn.
    pub free_before_bytes: u64,
    /// Share of the free memory each churn allocates.
    pub fraction: f64,
    /// The sizes allocated in turn (bytes); the odd ones are freed.
    pub pattern_bytes: Vec<u64>,
    /// cuMemGetAllocationGranularity (recommended) of the device: the virtual memory API's
    /// unit, and the precision of the largest-block searches.
    pub granularity_bytes: u64,
    /// "driver" (cuMemAlloc), "pool" (cuMemAllocFromPoolAsync from a pool that keeps what is
    /// freed), "vmm" (cuMemCreate + cuMemMap into one reserved range), in the order run.
    pub allocators: Vec<AllocatorFragmentation>,
    pub memory: MemoryCheck,
}

/// One allocator through the churn.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct AllocatorFragmentation {
    pub allocator: String,
    /// The churn: allocations made and their bytes.
    pub allocations: u64,
    pub allocated_bytes: u64,
    /// Freed by the pattern (every other allocation).
    pub freed_allocations: u64,
    pub freed_bytes: u64,
    /// cuMemGetInfo free once the pattern was freed.
    pub free_after_pattern_bytes: u64,
    /// What the allocator had to hand out then: the driver's free memory, plus for the pool
    /// what it kept unused (reserved − used).
    pub available_bytes: u64,
    /// The largest single allocation it then gave (within the granularity, or the first
    /// success of a descending ladder where a success changes the pool: `exact` false).
    pub largest_block_bytes: u64,
    pub exact: bool,
    /// Pool only: CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT and USED_MEM_CURRENT after the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_reserved_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_used_bytes: Option<u64>,
    /// Pool only: the same measure after cuMemPoolTrimTo(0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_trim: Option<TrimmedPool>,
    /// Why the churn stopped before its target ("oom", "error", "interrupted"), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    pub elapsed_ms: f64,
}

/// The pool's measure after cuMemPoolTrimTo(0).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TrimmedPool {
    pub free_bytes: u64,
    pub pool_reserved_bytes: Option<u64>,
    pub available_bytes: u64,
    pub largest_block_bytes: u64,
}

/// `inject ctx-destroy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CtxDestroyFacts {
    pub device: u32,
    /// How long delayed_fill_u32 spins before writing (so it is in flight at destroy).
    pub kernel_delay_ms: f64,
    /// "owner-thread" and "other-thread".
    pub variants: Vec<DestroyVariant>,
    pub primary: Option<PrimaryResetFacts>,
    /// A fresh context allocated, ran a kernel and read its result back.
    pub recovery_ok: bool,
    pub memory: MemoryCheck,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DestroyVariant {
    pub name: String,
    /// cuStreamQuery answered NOT_READY just before the destroy: the kernel was running.
    pub in_flight_at_destroy: bool,
    pub destroy_ms: f64,
    pub owner_thread: u64,
    pub destroy_thread: u64,
    /// What cuCtxGetCurrent on the owner thread gave afterwards: "null", "destroyed handle",
    /// "other context", or the error.
    pub owner_current_after: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PrimaryResetFacts {
    /// cuDevicePrimaryCtxGetState before and after cuDevicePrimaryCtxReset.
    pub active_before: Option<bool>,
    pub active_after_reset: Option<bool>,
    /// What the holder's old pointer gives after the reset (pointer query, memcpy).
    pub old_pointer_query: Option<Code>,
    pub old_pointer_memcpy: Option<Code>,
    /// The holder, still retaining the handle, allocates again after the reset.
    pub holder_alloc_after_reset: Option<Code>,
    /// The holder's cuDevicePrimaryCtxRelease after the reset: the retain count was kept.
    pub release_after_reset: Option<Code>,
}

/// `inject stream-misuse`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct StreamMisuseFacts {
    pub device: u32,
    /// Parts run, in order (all unless --only).
    pub parts: Vec<String>,
    pub race: Option<RaceFacts>,
    pub capture: Option<CaptureFacts>,
    pub default_stream: Option<DefaultStreamFacts>,
    pub memory: MemoryCheck,
}

/// Kernel writes on S1, copy reads on S2: without and with an event between them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RaceFacts {
    pub iterations: u32,
    pub elements: u64,
    pub kernel_delay_us: f64,
    /// Iterations whose copy did not read exactly what the kernel wrote.
    pub stale_without_event: u32,
    pub stale_with_event: u32,
    /// Iterations that ran (fewer when interrupted or a call failed).
    pub ran_without_event: u32,
    pub ran_with_event: u32,
    /// One example, e.g. "iteration 0: 1048576 of 1048576 elements stale (read 0, expected 1)".
    pub example: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CaptureFacts {
    /// cuStreamIsCapturing after the illegal sync: "none", "active", "invalidated".
    pub status_after_sync: Option<String>,
    /// cuStreamEndCapture handed back a graph (it must not, once invalidated).
    pub graph_returned: bool,
    /// Whether the blocking stream's capture still produced a graph after the refused use of
    /// the legacy stream (NVIDIA does not document whether that refusal invalidates it).
    #[serde(default)]
    pub blocking_capture_graph: Option<bool>,
}

/// A blocking stream's wait on work in the legacy vs the per-thread default stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DefaultStreamFacts {
    pub kernel_delay_ms: f64,
    /// Host time until a tiny kernel on a blocking stream finished, launched right after a
    /// delayed kernel on the legacy (resp. per-thread) default stream.
    pub legacy_wait_ms: f64,
    pub per_thread_wait_ms: f64,
}

/// `inject illegal-address`: the orchestrating child runs each variant in its own process.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct IllegalAddressFacts {
    pub device: u32,
    pub runs: Vec<SubRun>,
    pub xid: XidFacts,
    pub memory: MemoryCheck,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SubRun {
    /// "illegal-address", "trap", "recover".
    pub variant: String,
    /// The sub-process report's status ("pass", "fail", "error").
    pub status: String,
    pub duration_ms: f64,
    /// Offset of the sub-run's start from the scenario's start (its steps' at_ms include it).
    pub started_at_ms: f64,
    #[serde(default)]
    pub facts: VariantFacts,
}

/// What one variant process saw (its report's data.facts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct VariantFacts {
    pub pid: u32,
    /// The address write_u32 wrote to (illegal-address variant), hex.
    pub bad_address: Option<String>,
    /// The launch's own answer, and the first synchronisation's (where the fault surfaces).
    pub launch: Option<Code>,
    pub fault: Option<Code>,
    /// Answers of the calls made after the fault in the same context.
    #[serde(default)]
    pub after_fault: Vec<Code>,
    /// recover: the kernel's value was read back.
    pub value_ok: Option<bool>,
}

/// XID events NVML delivered while the variants ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct XidFacts {
    /// NVML accepted the registration for critical XID events.
    pub watched: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    #[serde(default)]
    pub events: Vec<XidEvent>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct XidEvent {
    /// The XID number (None when NVML did not say).
    pub xid: Option<u64>,
    /// Milliseconds since the scenario started, when it was read.
    pub at_ms: f64,
    /// The variant running (or just finished) when it was read.
    pub during: String,
}
