//! What `health`'s quick GPU check gathers on each GPU: the driver calls it made, in order, with
//! their answers and times. No verdict: `analyze::node_health` judges them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::report::Code;

/// The quick check of every selected GPU, or why it could not run at all.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuCheckRun {
    /// Why no GPU could be checked (no CUDA driver, a replayed machine): None when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// One entry per checked GPU, in NVML order.
    #[serde(default)]
    pub gpus: Vec<GpuCheck>,
    /// Wall time of the whole check (every GPU in parallel), cuInit included.
    #[serde(default)]
    pub wall_ms: f64,
    /// The deadline each GPU had (`--gpu-timeout`).
    #[serde(default)]
    pub timeout_ms: f64,
}

/// The quick check of one GPU: a primary context, a module, a small allocation, a kernel that
/// fills it, a synchronisation, the result read back, the frees.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GpuCheck {
    /// NVML index.
    pub index: u32,
    pub pci_bus_id: String,
    /// CUDA's ordinal for the GPU (CUDA's order differs from NVML's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_ordinal: Option<u32>,
    /// Why this GPU could not be checked (hidden from CUDA): None when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Other processes hold memory on this GPU (a job runs there): it was not given work, so
    /// the check never competes with a job for memory. What NVML listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<String>,
    /// The calls made, in order; the check stops at the first that fails (the frees still run).
    #[serde(default)]
    pub calls: Vec<CheckCall>,
    /// The kernel's result read back equals what it wrote (None when it was not read).
    #[serde(default)]
    pub value_ok: Option<bool>,
    /// The check had not finished at the deadline: `in_flight` is the call it was in.
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<String>,
    /// From the thread's start to its last call (cuInit, shared by all GPUs, excluded).
    #[serde(default)]
    pub elapsed_ms: f64,
}

/// One driver call of the check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CheckCall {
    /// Driver entry point: "cuMemAlloc_v2".
    pub call: String,
    pub observed: Code,
    pub elapsed_ms: f64,
}

impl CheckCall {
    pub fn ok(&self) -> bool {
        self.observed.code == 0
    }
}

impl GpuCheck {
    /// The first call that did not succeed.
    pub fn first_failure(&self) -> Option<&CheckCall> {
        self.calls.iter().find(|c| !c.ok())
    }

    /// Every call succeeded and the kernel's result read back right.
    pub fn passed(&self) -> bool {
        self.first_failure().is_none() && self.value_ok == Some(true)
    }
}
