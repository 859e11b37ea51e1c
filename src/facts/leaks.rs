//! `leak-check`: the call sites the shim captured, resolved after the run (`Symbols`, from
//! src/program/symbols.rs), and what the analysis makes of the program's allocations
//! (`LeakDigest`, from src/analyze/leaks.rs), stored in the report as `data.leaks`.
//! docs/memory.md explains every field.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One frame of a call site.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Frame {
    /// The return address as captured in the process ("0x…").
    pub addr: String,
    /// The object file mapped there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The address in the object file's own address space (what addr2line reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Function (demangled), from debug information or the symbol table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Frame {
    /// "function (file:line)", "function", "object+0xoffset" or the raw address.
    pub fn label(&self) -> String {
        let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        match (&self.function, &self.file, self.line) {
            (Some(f), Some(file), Some(line)) => format!("{f} ({}:{line})", base(file)),
            (Some(f), _, _) => f.clone(),
            (None, _, _) => match (&self.object, self.offset) {
                (Some(o), Some(off)) => format!("{}+{off:#x}", base(o)),
                _ => self.addr.clone(),
            },
        }
    }
}

/// Resolved frames by (pid, address as captured).
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    pub frames: HashMap<(u64, String), Frame>,
}

/// What leak-check found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LeakDigest {
    pub summary: LeakSummary,
    /// Memory left allocated (at exit, or until its context was destroyed), by call site,
    /// the most bytes first.
    pub sites: Vec<SiteGroup>,
    /// Call sites beyond the first [`LeakDigest::MAX_SITES`], not listed.
    #[serde(default)]
    pub sites_not_listed: u64,
    pub timeline: Timeline,
    /// Allocation sizes, every allocation of the run.
    pub histogram: Vec<SizeBucket>,
    /// The virtual memory API, when the program used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm: Option<VmmSummary>,
    /// Framework caching allocators seen at exit (gpu-doctor's Python hook).
    #[serde(default)]
    pub pools: Vec<PoolNote>,
}

impl LeakDigest {
    pub const MAX_SITES: usize = 50;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LeakSummary {
    /// Processes that allocated device memory.
    pub processes: u64,
    pub allocations: u64,
    pub allocated_bytes: u64,
    pub frees: u64,
    pub freed_bytes: u64,
    /// Frees of pointers the shim never saw allocated (allocated before it loaded, or through
    /// an entry point it does not wrap).
    pub unknown_frees: u64,
    /// The most device memory the program held at once (all its processes), and when.
    pub peak_bytes: u64,
    pub peak_at_s: f64,
    /// Left allocated when the program ended (direct allocations, no framework pool).
    pub at_exit_bytes: u64,
    pub at_exit_allocations: u64,
    /// Freed only when their context was destroyed (cuCtxDestroy, cuDevicePrimaryCtxReset).
    pub ctx_destroy_bytes: u64,
    pub ctx_destroy_allocations: u64,
    /// Processes whose memory a framework's pool manages: what its tensors still referenced at
    /// exit (after the pool released its cache).
    pub referenced_at_exit_bytes: u64,
    pub referenced_at_exit_allocations: u64,
    /// Released at exit by a framework's cache release (held by the pool, not referenced).
    pub pool_cached_bytes: u64,
    pub pool_cached_allocations: u64,
    /// Left allocated in all: at exit, until context destroy, referenced at exit (what
    /// `--fail-over` compares).
    pub left_bytes: u64,
    pub left_allocations: u64,
}

/// Allocations left at one call site.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SiteGroup {
    /// The first frame outside the CUDA runtime and driver ("function (file:line)").
    pub site: String,
    /// The frames of the first allocation made there, innermost first.
    pub frames: Vec<Frame>,
    pub bytes: u64,
    pub allocations: u64,
    /// First and last allocation there, seconds since the program started.
    pub first_s: f64,
    pub last_s: f64,
    /// The driver entry points that allocated (cuMemAlloc_v2, cuMemCreate, …).
    pub calls: Vec<String>,
    /// How the allocations there ended: "exit", "context destroy", "referenced at exit".
    pub fate: Vec<String>,
}

/// Live device memory over the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Timeline {
    /// (seconds since the program started, bytes held): [`Timeline::MAX_POINTS`] evenly spread,
    /// and the peak's own point when none of them holds it.
    pub points: Vec<(f64, u64)>,
    /// Consecutive windows of the run, with how the memory held moved in each.
    pub windows: Vec<Window>,
    /// Sustained growth at the end of the run, when there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}

impl Timeline {
    pub const MAX_POINTS: usize = 200;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
    pub start_bytes: u64,
    pub end_bytes: u64,
    /// (end − start) / duration.
    pub rate_bytes_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Growth {
    /// Least-squares slope of the memory held over the window.
    pub rate_bytes_per_s: f64,
    pub from_s: f64,
    pub to_s: f64,
    pub grown_bytes: u64,
    /// How well a straight line fits (1: steady growth).
    pub r2: f64,
    /// Device memory still free near the end (NVML), and when it would run out at this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_in_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SizeBucket {
    /// Sizes above the previous bucket's bound up to this one (bytes).
    pub up_to_bytes: u64,
    pub allocations: u64,
    pub bytes: u64,
}

/// The virtual memory API: address space reserved against memory created and mapped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct VmmSummary {
    pub reserved_peak_bytes: u64,
    pub reserved_at_end_bytes: u64,
    pub mapped_peak_bytes: u64,
    pub mapped_at_end_bytes: u64,
    /// cuMemCreate'd memory (what the GPU really gives up).
    pub created_peak_bytes: u64,
    pub created_at_end_bytes: u64,
    pub reservations_left: u64,
    pub mappings_left: u64,
    pub handles_left: u64,
}

/// A framework's pool at interpreter exit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PoolNote {
    pub pid: u64,
    /// torch, cupy, jax.
    pub framework: String,
    pub dev: Option<i64>,
    /// What its tensors used and what the pool held before its cache was released, and what
    /// it held after (None where it cannot release: jax).
    pub in_use_bytes: Option<u64>,
    pub reserved_bytes: Option<u64>,
    pub reserved_after_bytes: Option<u64>,
    /// Device memory the release freed (the shim saw the frees).
    pub released_bytes: u64,
    pub released_allocations: u64,
}
