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
    /// Set when NVML was gpu-doctor's own library (`--replay`, `--fault`): what it served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvml: Option<NvmlOrigin>,
}

/// Where the NVML answers of a run came from when they were not (only) the driver's:
/// a replayed snapshot, faults on top (docs/nvml.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NvmlOrigin {
    /// The snapshot replayed (None: the real driver, with faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Where and when the snapshot was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// The faults, in canonical syntax.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Each fault's first faulted answer ("pcie-width=8@gpu1: nvmlDeviceGetCurrPcieLinkWidth
    /// answered 8 on GPU 1 at 12 ms").
    #[serde(default)]
    pub delivered: Vec<String>,
    /// Queries the snapshot had no answer for (answered NOT_SUPPORTED).
    #[serde(default)]
    pub missing_queries: Vec<String>,
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
    /// How far the value can be trusted between runs (docs/compare.md). Absent in reports of
    /// earlier versions: `compare` infers it from the scenario, the name and the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MetricKind>,
    /// The samples behind `value` where the scenario took several (`value` is their median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
}

impl Metric {
    pub fn new(value: f64, unit: &str, better: Better) -> Self {
        Metric {
            value,
            unit: unit.to_string(),
            better,
            device: None,
            kind: None,
            spread: None,
        }
    }
    pub fn device(mut self, index: u32) -> Self {
        self.device = Some(index);
        self
    }
    pub fn kind(mut self, kind: MetricKind) -> Self {
        self.kind = Some(kind);
        self
    }
    pub fn spread(mut self, spread: Option<Spread>) -> Self {
        self.spread = spread;
        self
    }
}

/// How far a metric can be trusted from one run to the next; `compare` sets its band and
/// whether a move can be a regression by it (docs/compare.md).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// The median of repeated samples on a path that holds steady: pinned host↔device,
    /// device-local and peer (NVLink) copy rates. A gate; the band follows the spread.
    Throughput,
    /// A count, size or ratio a rerun of the same box reproduces (allocatable bytes, stale
    /// reads with an event, injected failures). A gate with (almost) no band.
    Exact,
    /// One timed event (time to the OOM edge, a free, a context create or destroy, a
    /// recovery): a rerun moves it by tens of percent. Information, not a gate.
    SingleShot,
    /// Repeated samples of a path known to swing with the host (pageable copies, copies
    /// staged through host memory, bidirectional sums, small-copy latency). Information.
    Volatile,
}

impl MetricKind {
    pub const ALL: [MetricKind; 4] = [
        MetricKind::Throughput,
        MetricKind::Exact,
        MetricKind::SingleShot,
        MetricKind::Volatile,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Throughput => "throughput",
            MetricKind::Exact => "exact",
            MetricKind::SingleShot => "single_shot",
            MetricKind::Volatile => "volatile",
        }
    }
}

/// The samples a metric's value summarises, in the metric's unit.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Spread {
    /// Number of samples.
    pub n: u32,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Median absolute deviation from the median: a dispersion one outlier does not move.
    pub mad: f64,
}

impl Spread {
    /// The spread of finite values; None for none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let median = sorted_median(&v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        Some(Spread {
            n: u32::try_from(v.len()).unwrap_or(u32::MAX),
            min: v[0],
            median,
            max: v[v.len() - 1],
            mad: sorted_median(&dev),
        })
    }
    /// Robust relative standard deviation of one sample: 1.4826 × MAD / |median| (the factor
    /// makes MAD estimate σ for normal noise). 0 for fewer than two samples or a zero median.
    pub fn relative_sigma(&self) -> f64 {
        if self.n < 2 || self.median == 0.0 || !self.median.is_finite() {
            0.0
        } else {
            1.4826 * self.mad / self.median.abs()
        }
    }
}

fn sorted_median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
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

/// "an 'info' report", "a 'topo' report": how messages name a kind of report.
pub fn a_report(scenario: &str) -> String {
    let article = match scenario.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    };
    format!("{article} '{scenario}' report")
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
            nvml: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_robust_to_one_outlier() {
        let s = Spread::of(&[55.0, 55.2, 41.0, f64::NAN]).unwrap();
        assert_eq!((s.n, s.min, s.max), (3, 41.0, 55.2));
        assert_eq!(s.median, 55.0);
        assert!((s.mad - 0.2).abs() < 1e-9, "{s:?}");
        assert!((s.relative_sigma() - 1.4826 * 0.2 / 55.0).abs() < 1e-12);
        let even = Spread::of(&[1.0, 2.0, 3.0, 10.0]).unwrap();
        assert_eq!((even.median, even.mad), (2.5, 1.0));
        assert_eq!(Spread::of(&[7.0]).unwrap().relative_sigma(), 0.0);
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn old_metrics_load_without_kind_and_new_fields_are_left_out_when_absent() {
        let m: Metric =
            serde_json::from_str(r#"{"value": 1.0, "unit": "ms", "better": "lower"}"#).unwrap();
        assert_eq!((m.kind, &m.spread), (None, &None));
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("kind") && !text.contains("spread"), "{text}");
        let k = serde_json::to_value(
            Metric::new(1.0, "ms", Better::Lower).kind(MetricKind::SingleShot),
        )
        .unwrap();
        assert_eq!(k["kind"], "single_shot");
    }
}
