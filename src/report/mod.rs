//! The report: the one public contract every scenario fills and every renderer reads.
//!
//! Field names and finding codes are stable within a `schema_version` major. Add fields
//! freely (with `#[serde(default)]` so old reports still load); rename or remove only
//! with a major bump. Documented in docs/report.md; schema in schema/report.schema.json.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod codes;

/// What an analysis concludes from a scenario's facts: findings and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    pub metrics: BTreeMap<String, Metric>,
}

/// Major version of the report format. Readers accept reports whose major matches.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub host: Host,
    /// Scenario name as given on the command line (`topo`, `inject oom`, `suite`).
    pub scenario: String,
    /// Parameters the scenario ran with, as a JSON object.
    #[serde(default)]
    pub params: serde_json::Value,
    /// RFC 3339 UTC time the scenario started.
    pub started_at: String,
    pub duration_ms: f64,
    pub status: Status,
    /// True when the run was cut short by Ctrl-C: what was gathered until then is kept.
    #[serde(default, skip_serializing_if = "is_false")]
    pub interrupted: bool,
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Metric>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Scenario-specific detail (topology matrix, event timeline, …).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Reports of the scenarios a suite ran, in order. Empty for a single scenario.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Report>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    pub fn this() -> Self {
        Tool {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Host {
    pub hostname: String,
    pub kernel: String,
    /// NVIDIA kernel driver version, e.g. "580.159.04".
    pub driver_version: Option<String>,
    /// CUDA version the driver supports, e.g. "13.0".
    pub cuda_driver_version: Option<String>,
    pub nvml_version: Option<String>,
}

/// Outcome of a scenario. Ordered from best to worst so `max` gives the worst.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Could not run on this box (missing GPU, too few GPUs, driver too old).
    Skipped,
    Pass,
    Warn,
    Fail,
    /// The scenario itself broke (child crashed, timed out, internal error).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Skipped => "skipped",
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
    /// True for outcomes that fail a CI job.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Fail,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DeviceInfo {
    /// NVML index (PCI bus order). CUDA's default order may differ: match by uuid or pci_bus_id.
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// PCI bus id as NVML writes it, e.g. "00000000:18:00.0".
    pub pci_bus_id: String,
    pub memory_total_bytes: u64,
    /// "9.0"
    pub compute_capability: Option<String>,
    /// CUDA device ordinal when the scenario used the CUDA driver API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_ordinal: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    /// Stable UPPER_SNAKE identifier; see report::codes and docs/report.md.
    pub code: String,
    /// NVML index of the device it concerns, if any.
    #[serde(default)]
    pub device: Option<u32>,
    pub message: String,
    /// What a person can do about it.
    #[serde(default)]
    pub hint: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Self {
        Finding {
            severity,
            code: code.to_string(),
            device: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn device(mut self, index: u32) -> Self {
        self.device = Some(index);
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Metric {
    pub value: f64,
    /// "bytes", "ms", "GB/s", "ratio", …
    pub unit: String,
    /// Which direction is an improvement; `compare` flags moves the other way.
    pub better: Better,
    #[serde(default)]
    pub device: Option<u32>,
}

impl Metric {
    pub fn new(value: f64, unit: &str, better: Better) -> Self {
        Metric {
            value,
            unit: unit.to_string(),
            better,
            device: None,
        }
    }
    pub fn device(mut self, index: u32) -> Self {
        self.device = Some(index);
        self
    }
}

/// A CUDA driver result: numeric CUresult and its name ("CUDA_ERROR_INVALID_CONTEXT").
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
pub struct Code {
    pub code: i64,
    pub name: String,
}

/// "CUDA_ERROR_INVALID_CONTEXT (201)": how reports and tables write a driver result.
impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.code)
    }
}

/// One driver call that matters to a scenario: what was expected, what came back.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Step {
    /// What the step does, in words: "alloc after OOM".
    pub name: String,
    /// Driver entry point: "cuMemAlloc_v2".
    pub call: String,
    /// Every answer the step accepts (NVIDIA documents some behaviour as a set of answers).
    pub expected: Vec<Code>,
    pub observed: Code,
    /// Milliseconds since the scenario started, when the call was made.
    #[serde(default)]
    pub at_ms: f64,
    pub elapsed_ms: f64,
    /// OS thread id (gettid) that made the call.
    pub thread: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Renders the JSON Schema of [`Report`] (what `gpu-doctor schema` prints).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).expect("schema serialises")
}

impl Report {
    /// An empty report for `scenario`, started now. The runner fills host, status and duration.
    pub fn begin(scenario: &str, params: serde_json::Value) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::this(),
            host: Host::default(),
            scenario: scenario.to_string(),
            params,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0.0,
            status: Status::Pass,
            interrupted: false,
            devices: vec![],
            findings: vec![],
            metrics: Default::default(),
            steps: vec![],
            data: serde_json::Value::Null,
            reports: vec![],
        }
    }
}
