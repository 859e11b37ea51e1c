//! What `bandwidth` (and `topo --bandwidth`) measures: raw samples per copy path, the link
//! facts their theoretical rates come from, and the per-run records (placement, peer access,
//! method). Plain data the probe returns and a report stores under `data`; the rates and
//! verdicts are `analyze::bandwidth`'s.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::memory::{MemoryCheck, MemoryWatch, TOLERANCE_BYTES};
use crate::facts::{GpuProcess, NvLinkFacts, PcieFacts};

/// Path names: stable, they are part of metric names.
pub mod path {
    /// Host → device from pinned (page-locked) host memory, copy engine.
    pub const H2D_PINNED: &str = "h2d_pinned";
    /// Device → host into pinned host memory.
    pub const D2H_PINNED: &str = "d2h_pinned";
    /// H2D and D2H at once on two streams; bytes of both directions summed.
    pub const BIDIR_PINNED: &str = "bidir_pinned";
    /// Host → device from pageable memory (driver-staged, synchronous; wall clock).
    pub const H2D_PAGEABLE: &str = "h2d_pageable";
    /// Device → host into pageable memory (synchronous; wall clock).
    pub const D2H_PAGEABLE: &str = "d2h_pageable";
    /// Device-local copy by the copy engine (bytes counted once).
    pub const D2D_CE: &str = "d2d_ce";
    /// Device-local copy by an SM kernel (bytes counted once).
    pub const D2D_SM: &str = "d2d_sm";
    /// GPU a → GPU b with peer access enabled.
    pub const P2P: &str = "p2p";
    /// GPU a → GPU b without peer access: the driver stages the copy through host memory.
    pub const P2P_STAGED: &str = "p2p_staged";
    /// a → b and b → a at once with peer access; bytes of both directions summed.
    pub const P2P_BIDIR: &str = "p2p_bidir";
    /// Small peer copies a → b: time per copy.
    pub const P2P_LATENCY: &str = "p2p_latency";
}

/// The raw measurement of one path: what the probe returns and the report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PathSamples {
    /// One of [`path`]'s names.
    pub path: String,
    /// NVML index of the device (the source GPU for peer paths).
    pub device: u32,
    /// NVML index of the other GPU for peer paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<u32>,
    /// Bytes one sample moves, counted once (bidirectional paths: both directions summed).
    pub bytes: u64,
    /// Copies per sample.
    pub copies: u32,
    /// Duration of each sample in seconds.
    pub seconds: Vec<f64>,
    /// "cuda_events" (events around a batch held back by the spin kernel), "cuda_events_unheld"
    /// (events, no spin kernel) or "wall_clock" (host clock around synchronous copies).
    pub timing: String,
    /// Whether the copied data matched the source (checked once per path); None: not checked.
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a device's links should do: the inputs of the theoretical rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DeviceLinks {
    pub index: u32,
    pub pci_bus_id: String,
    /// "9.0"
    #[serde(default)]
    pub compute_capability: Option<String>,
    /// PCIe facts from NVML (the expected rate uses max_gen × max_width).
    #[serde(default)]
    pub pcie: PcieFacts,
    /// PCIe generation and width read while the H2D copies ran (an idle link trains down).
    #[serde(default)]
    pub pcie_gen_under_load: Option<u32>,
    #[serde(default)]
    pub pcie_width_under_load: Option<u32>,
    #[serde(default)]
    pub memory_bus_width_bits: Option<u32>,
    /// Maximum memory clock in MHz (NVML max clock, or CUDA's MEMORY_CLOCK_RATE).
    #[serde(default)]
    pub memory_clock_max_mhz: Option<u32>,
    #[serde(default)]
    pub nvlinks: Vec<NvLinkFacts>,
    /// NUMA node of the GPU, and the node the pinned host buffer landed on.
    #[serde(default)]
    pub numa_node: Option<u32>,
    #[serde(default)]
    pub host_buffer_node: Option<u32>,
}

/// Active NVLinks between two measured GPUs (0: PCIe only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PairLink {
    pub a: u32,
    pub b: u32,
    pub nvlinks: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Links {
    pub devices: Vec<DeviceLinks>,
    #[serde(default)]
    pub pairs: Vec<PairLink>,
}

/// Everything [`crate::analyze::bandwidth::analyze`] needs, as stored in `data.facts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct BandwidthFacts {
    pub samples: Vec<PathSamples>,
    pub links: Links,
}

/// Where the host buffers of a device's run were placed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct HostPlacement {
    pub numa_node: Option<u32>,
    /// The measuring thread was pinned to the GPU's CPUs (sched_setaffinity).
    pub affinity_set: bool,
    pub cpus: Option<String>,
    /// The measuring thread's memory policy preferred the GPU's node (set_mempolicy).
    pub mempolicy_set: bool,
    /// Node of the first page of the pinned and pageable buffers (get_mempolicy).
    pub pinned_buffer_node: Option<u32>,
    pub pageable_buffer_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What one device's run returns besides its samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DeviceRun {
    pub index: u32,
    pub cuda_ordinal: i32,
    pub sm_count: Option<u32>,
    /// From cuDeviceGetAttribute: GLOBAL_MEMORY_BUS_WIDTH (bits), MEMORY_CLOCK_RATE (kHz).
    pub cuda_memory_bus_width_bits: Option<u32>,
    pub cuda_memory_clock_khz: Option<u32>,
    /// Free device memory before allocating and after freeing (cuMemGetInfo).
    pub memory_free_before: Option<u64>,
    pub memory_free_after: Option<u64>,
    /// Every process's device memory on this GPU during its run (absent in earlier reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_watch: Option<MemoryWatch>,
    pub placement: HostPlacement,
    pub pcie_gen_under_load: Option<u32>,
    pub pcie_width_under_load: Option<u32>,
    /// The first error that ended the run early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub samples: Vec<PathSamples>,
    #[serde(skip)]
    pub interrupted: bool,
}

impl DeviceRun {
    /// This run's memory check: free memory before and after it, and the watch of the GPU.
    pub fn memory_check(&self) -> MemoryCheck {
        MemoryCheck {
            tolerance_bytes: TOLERANCE_BYTES,
            cuda_free_before: self.memory_free_before,
            cuda_free_after: self.memory_free_after,
            foreign_processes: self
                .memory_watch
                .as_ref()
                .map(|w| w.others_at_start.clone())
                .unwrap_or_default(),
            watch: self.memory_watch.clone(),
            ..Default::default()
        }
    }
}

/// Peer capabilities of one ordered pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PeerPair {
    pub a: u32,
    pub b: u32,
    /// cuDeviceCanAccessPeer(a, b).
    pub can_access: bool,
    /// Peer access was enabled for a → b (both directions are enabled together).
    pub enabled: bool,
}

/// Ordered pairs left out of the peer measurement, and why (`--p2p-budget`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SkippedPairs {
    /// (a, b) by NVML index.
    pub pairs: Vec<(u32, u32)>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PeerRun {
    pub pairs: Vec<PeerPair>,
    /// Ordered pairs not measured to keep within `--p2p-budget` (none when every pair was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkippedPairs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub samples: Vec<PathSamples>,
    #[serde(skip)]
    pub interrupted: bool,
}

/// How the numbers were taken (so a reader of the JSON knows what they mean).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Method {
    pub size_bytes: u64,
    pub copies: u32,
    pub samples: u32,
    pub warmup: u32,
    pub slow_copies: u32,
    pub spin_cycles: u64,
    pub units: String,
    pub timing: String,
    pub counting: String,
    pub host_memory: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DeviceProcesses {
    pub device: u32,
    pub processes: Vec<GpuProcess>,
}
