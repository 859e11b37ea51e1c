//! Raw facts the probe layer gathers: plain data, no verdicts. They are stored in a report's
//! `data` so `--from REPORT.json` can re-analyse them on a machine without a GPU.

pub mod bandwidth;
pub mod cuda_codes;
pub mod faults;
pub mod gpu_check;
pub mod leaks;
pub mod live;
pub mod memory;
pub mod program;
pub mod slurm;
pub mod trace;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What `topo` reads from NVML.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TopoFacts {
    pub gpus: Vec<GpuTopo>,
    /// One entry per unordered pair (a < b) of the selected GPUs.
    pub pairs: Vec<PairFacts>,
    /// NUMA nodes the host has (from /sys/devices/system/node); 0 when unknown.
    #[serde(default)]
    pub host_numa_nodes: u32,
    /// Logical CPUs the host has.
    #[serde(default)]
    pub host_cpus: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuTopo {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    /// CPUs close to the GPU, as a cpulist ("0-15,32-47"); None when NVML cannot say.
    pub cpu_affinity: Option<String>,
    /// NUMA node(s) closest to the GPU as a list ("0", "0-1"): what `nvidia-smi topo -m`
    /// shows as NUMA Affinity (NVML memory affinity, node scope; sysfs numa_node as fallback).
    /// None when the host reports none.
    #[serde(default)]
    pub numa_affinity: Option<String>,
    /// The GPU's own NUMA node id (`GPU NUMA ID`: set only where GPU memory is a NUMA node,
    /// e.g. Grace Hopper).
    #[serde(default)]
    pub gpu_numa_id: Option<u32>,
    pub pcie: PcieFacts,
    #[serde(default)]
    pub nvlinks: Vec<NvLinkFacts>,
    /// NVML answered GPU_IS_LOST for this GPU (fallen off the bus): why, and nothing else is
    /// known of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

impl GpuTopo {
    /// The first NUMA node of the GPU's affinity (where its host buffers belong).
    pub fn numa_node(&self) -> Option<u32> {
        let list = self.numa_affinity.as_deref()?;
        list.split([',', '-']).next()?.trim().parse().ok()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PcieFacts {
    pub current_gen: Option<u32>,
    /// Maximum the GPU and the slot together allow (NVML "max link generation").
    pub max_gen: Option<u32>,
    /// Maximum the GPU itself supports.
    pub gpu_max_gen: Option<u32>,
    pub current_width: Option<u32>,
    pub max_width: Option<u32>,
    pub replay_counter: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NvLinkFacts {
    pub link: u32,
    pub active: bool,
    pub version: Option<u32>,
    /// PCI bus id of the remote end (a GPU or an NVSwitch).
    pub remote_pci_bus_id: Option<String>,
    /// "gpu", "switch", "ibmnpu" or "unknown".
    pub remote_type: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PairFacts {
    pub a: u32,
    pub b: u32,
    /// NVML common ancestor: INTERNAL, SINGLE, MULTIPLE, HOSTBRIDGE, NODE, SYSTEM.
    pub common_ancestor: Option<String>,
    /// NVML P2P status per capability: "ok", "not_supported", "chipset_not_supported",
    /// "topology_not_supported", "disabled_by_regkey", "unknown".
    pub p2p: P2pFacts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct P2pFacts {
    pub read: Option<String>,
    pub write: Option<String>,
    pub atomics: Option<String>,
    pub nvlink: Option<String>,
}

/// The names of NVML_FI_DEV_GET_GPU_RECOVERY_ACTION's values, each at its value's index: what
/// [`GpuHealth::recovery_action`] says, and the number the exporter's metric gives.
pub const RECOVERY_ACTIONS: [&str; 5] = [
    "none",
    "gpu_reset",
    "node_reboot",
    "drain_p2p",
    "drain_and_reset",
];

/// What `info` reads from NVML for one GPU. Every field is optional: a GPU or driver that
/// cannot answer is recorded as None (and named in `unsupported`), not as an error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuHealth {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    pub compute_capability: Option<String>,
    pub persistence_mode: Option<bool>,
    pub ecc_mode_current: Option<bool>,
    pub ecc_mode_pending: Option<bool>,
    pub mig_mode_current: Option<bool>,
    pub mig_mode_pending: Option<bool>,
    pub compute_mode: Option<String>,
    pub temperature_c: Option<u32>,
    pub power_draw_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    /// "P0".."P15"
    pub pstate: Option<String>,
    pub sm_clock_mhz: Option<u32>,
    pub memory_clock_mhz: Option<u32>,
    pub sm_clock_max_mhz: Option<u32>,
    /// Raw clock-event (throttle) reason bitmask, and the names of its set bits.
    pub clock_event_reasons_mask: Option<u64>,
    #[serde(default)]
    pub clock_event_reasons: Vec<String>,
    pub retired_pages_sbe: Option<u32>,
    pub retired_pages_dbe: Option<u32>,
    pub retired_pages_pending: Option<bool>,
    pub remapped_rows_correctable: Option<u32>,
    pub remapped_rows_uncorrectable: Option<u32>,
    pub remap_pending: Option<bool>,
    pub remap_failed: Option<bool>,
    pub ecc_volatile_corrected: Option<u64>,
    pub ecc_volatile_uncorrected: Option<u64>,
    pub ecc_aggregate_corrected: Option<u64>,
    pub ecc_aggregate_uncorrected: Option<u64>,
    /// NVML GPU_RECOVERY_ACTION: "none", "gpu_reset", "node_reboot", "drain_p2p",
    /// "drain_and_reset", or "unknown(N)". None where the driver does not have the field.
    pub recovery_action: Option<String>,
    pub vbios_version: Option<String>,
    /// Processes holding memory on this GPU (pid, used bytes).
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
    /// Fields the GPU or driver could not report.
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// NVML answered GPU_IS_LOST for this GPU (fallen off the bus): why, and nothing else is
    /// known of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuProcess {
    pub pid: u32,
    pub used_bytes: Option<u64>,
}
