//! Device memory around a scenario: the one memory check (is device memory back to its
//! baseline after cleanup?) and the watch of every process's device memory while the scenario
//! ran. Plain data, stored in reports; `analyze::memory` judges it.
//!
//! Every scenario that checks memory came back (`inject oom`, `ctx-destroy`, `stream-misuse`,
//! `illegal-address`, `trace ctx`, `bandwidth`) stores a [`MemoryCheck`] (bandwidth stores its
//! two cuMemGetInfo figures and the watch per device, which read as one) and is judged with
//! [`TOLERANCE_BYTES`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::GpuProcess;

/// The one tolerance of every memory check: a difference between baseline and after cleanup
/// up to this size is not a finding. Why 64 MiB (docs/report.md, "Memory checks"): what the
/// driver may legitimately keep or round is far smaller (NVML and cuMemGetInfo count 2 MiB
/// pages; the recorded H100 and H200 runs differ by 0 or 2 MiB), while what a leak looks like
/// is far larger (a context left alive holds about 500 MiB on an H100: total − free with one
/// context is 527 MiB in tests/fixtures/h100-inject-oom.json; the fills allocate 1 GiB chunks).
pub const TOLERANCE_BYTES: u64 = 64 << 20;

/// Device memory before and after a scenario, to check that cleanup returned what it took.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct MemoryCheck {
    /// NVML index of the GPU, where the check is one of several (`trace ctx`: one per GPU);
    /// the fault scenarios name their GPU in their facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<u32>,
    /// The tolerance in force when the check was made ([`TOLERANCE_BYTES`]); the analysis uses
    /// the current one.
    #[serde(default)]
    pub tolerance_bytes: u64,
    /// cuMemGetInfo free bytes at the baseline and after cleanup (measured in comparable
    /// situations: the same context, or one fresh context each time).
    pub cuda_free_before: Option<u64>,
    pub cuda_free_after: Option<u64>,
    /// NVML used bytes (all processes) at the baseline and after cleanup.
    pub nvml_used_before: Option<u64>,
    pub nvml_used_after: Option<u64>,
    /// Processes of this run (child, grandchildren).
    #[serde(default)]
    pub own_pids: Vec<u32>,
    /// Other processes holding memory on the GPU (before or after): their load is theirs.
    #[serde(default)]
    pub foreign_processes: Vec<GpuProcess>,
    /// What NVML showed of every process's device memory while the scenario ran (absent in
    /// reports of earlier versions, and where NVML could not be opened again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<MemoryWatch>,
}

/// The watch of one GPU's memory during a scenario: NVML's process list and used memory,
/// sampled from before the scenario starts until after its cleanup.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct MemoryWatch {
    /// NVML index of the GPU watched.
    pub device: u32,
    /// Time between two periodic samples, ms (the scenario also samples at the moments it
    /// measures, e.g. the start and the end of the OOM fill).
    pub period_ms: f64,
    /// First and last sample, ms since the scenario started (the clock of steps' `at_ms`).
    pub from_ms: f64,
    pub to_ms: f64,
    /// Samples taken, and how many of them NVML did not answer.
    pub samples: u32,
    #[serde(default)]
    pub failed_samples: u32,
    /// NVML used memory (all processes): the smallest and largest sample.
    pub used_min_bytes: Option<u64>,
    pub used_max_bytes: Option<u64>,
    /// Other processes on the GPU at the first sample, with what they held then.
    #[serde(default)]
    pub others_at_start: Vec<GpuProcess>,
    /// Every change of another process's device memory, in order.
    #[serde(default)]
    pub changes: Vec<MemoryChange>,
    /// Changes seen beyond [`MemoryWatch::MAX_CHANGES`], not kept.
    #[serde(default)]
    pub changes_dropped: u32,
    /// Processes of this run seen holding memory on the GPU: this process and its children
    /// (isolated parts, variants). Their memory is the scenario's own.
    #[serde(default)]
    pub own_pids: Vec<u32>,
    /// The first NVML error, when samples failed or NVML could not be opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MemoryWatch {
    /// Changes kept in a report (a busy neighbour sampled for minutes would fill it).
    pub const MAX_CHANGES: usize = 1000;
}

/// Another process allocated or freed device memory (seen between two samples).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct MemoryChange {
    pub pid: u32,
    /// Bytes allocated (positive) or freed (negative) since the previous sample; None where
    /// NVML does not say how much the process holds.
    pub bytes: Option<i64>,
    /// What the process holds after the change: 0 when it left the GPU, None when unknown.
    pub used_bytes: Option<u64>,
    /// The sample that saw it, ms since the scenario started.
    pub at_ms: f64,
}

/// `trace ctx` stores one check per GPU under the names it has used since schema v1
/// (`{nvml, before_bytes, after_bytes, other_pids}`, plus `watch`): this reads and writes a
/// list of [`MemoryCheck`] in that shape (`#[serde(with = "per_gpu")]`).
pub mod per_gpu {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{MemoryCheck, MemoryWatch};
    use crate::facts::GpuProcess;

    #[derive(Serialize, Deserialize)]
    struct PerGpu {
        nvml: u32,
        before_bytes: Option<u64>,
        after_bytes: Option<u64>,
        #[serde(default)]
        other_pids: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<MemoryWatch>,
    }

    pub fn serialize<S: Serializer>(checks: &[MemoryCheck], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<PerGpu> = checks
            .iter()
            .map(|m| PerGpu {
                nvml: m.device.unwrap_or_default(),
                before_bytes: m.nvml_used_before,
                after_bytes: m.nvml_used_after,
                other_pids: m.foreign_processes.iter().map(|p| p.pid).collect(),
                watch: m.watch.clone(),
            })
            .collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MemoryCheck>, D::Error> {
        let v = Vec::<PerGpu>::deserialize(d)?;
        Ok(v.into_iter()
            .map(|g| MemoryCheck {
                device: Some(g.nvml),
                tolerance_bytes: super::TOLERANCE_BYTES,
                nvml_used_before: g.before_bytes,
                nvml_used_after: g.after_bytes,
                foreign_processes: g
                    .other_pids
                    .into_iter()
                    .map(|pid| GpuProcess {
                        pid,
                        used_bytes: None,
                    })
                    .collect(),
                watch: g.watch,
                ..Default::default()
            })
            .collect())
    }
}
