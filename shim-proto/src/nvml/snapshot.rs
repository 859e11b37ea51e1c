//! The snapshot format: the answers of one machine's NVML to every query of
//! [`super::query::QUERIES`], per GPU and per pair of GPUs, with the return code where a query
//! failed. Versioned by `format_version`; a reader accepts [`READ_VERSIONS`] only.
//!
//! ```json
//! {"format_version": 1,
//!  "recorded": {"tool": "gpu-doctor-nvml 0.1.0", "unix_time": 1764460800, "hostname": "h200x2"},
//!  "system": {"nvmlSystemGetDriverVersion": "580.159.04", …},
//!  "devices": [{"index": 0, "answers": {"nvmlDeviceGetName": "NVIDIA H200",
//!                                       "nvmlDeviceGetClockInfo(1)": 1980,
//!                                       "nvmlDeviceGetFanSpeed": {"rc": 3, "error": "ERROR_NOT_SUPPORTED"}, …}}],
//!  "pairs": [{"a": 0, "b": 1, "answers": {"nvmlDeviceGetTopologyCommonAncestor": 50, …}}]}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes;
use super::query::{self, QUERIES, Scope};

/// The version this code writes.
pub const FORMAT_VERSION: u32 = 1;
/// The versions this code reads.
pub const READ_VERSIONS: &[u32] = &[1];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format_version: u32,
    #[serde(default)]
    pub recorded: Recorded,
    /// System answers, by key.
    #[serde(default)]
    pub system: BTreeMap<String, Answer>,
    /// One entry per GPU, in NVML index order (`index` 0, 1, …).
    pub devices: Vec<DeviceAnswers>,
    /// Ordered pairs (a, b), a ≠ b. A replay asked about (a, b) without an entry reads (b, a).
    #[serde(default)]
    pub pairs: Vec<PairAnswers>,
}

/// Where a snapshot comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The program that wrote it, with its version.
    #[serde(default)]
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Written by hand or derived, not recorded on a machine.
    #[serde(default, skip_serializing_if = "is_false")]
    pub synthetic: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAnswers {
    pub index: u32,
    pub answers: BTreeMap<String, Answer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAnswers {
    pub a: u32,
    pub b: u32,
    pub answers: BTreeMap<String, Answer>,
}

/// A recorded answer: the value, or the NVML return code of a failed query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Error(ErrorAnswer),
    Value(Value),
}

/// `{"rc": 3, "error": "ERROR_NOT_SUPPORTED"}`: `error` is for people, `rc` is what is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorAnswer {
    pub rc: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    /// The answer of a failed query with return code `rc`.
    pub fn error(rc: u32) -> Answer {
        Answer::Error(ErrorAnswer {
            rc,
            error: Some(codes::name(rc).to_string()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// The file could not be read.
    Io(String),
    /// Not JSON, or not a snapshot's structure.
    Format(String),
    /// Another format version.
    Version(Option<u64>),
    /// A key, value or index that does not fit the format.
    Invalid(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reads = READ_VERSIONS
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            SnapshotError::Io(e) => write!(f, "cannot read the snapshot: {e}"),
            SnapshotError::Format(e) => write!(f, "not an NVML snapshot: {e}"),
            SnapshotError::Version(Some(v)) => write!(
                f,
                "snapshot format_version {v} is not read here (this gpu-doctor reads {reads})"
            ),
            SnapshotError::Version(None) => write!(
                f,
                "not an NVML snapshot: no format_version (this gpu-doctor reads {reads})"
            ),
            SnapshotError::Invalid(e) => write!(f, "invalid NVML snapshot: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl Snapshot {
    /// An empty snapshot of the current version.
    pub fn new(recorded: Recorded) -> Snapshot {
        Snapshot {
            format_version: FORMAT_VERSION,
            recorded,
            system: BTreeMap::new(),
            devices: vec![],
            pairs: vec![],
        }
    }

    /// Reads and validates a snapshot file.
    pub fn read(path: &std::path::Path) -> Result<Snapshot, SnapshotError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SnapshotError::Io(format!("{}: {e}", path.display())))?;
        Snapshot::parse(&text)
    }

    /// Parses and validates a snapshot: the version first (a file of another version is
    /// refused as such, whatever its structure), then the structure, then every key and value.
    pub fn parse(text: &str) -> Result<Snapshot, SnapshotError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| SnapshotError::Format(e.to_string()))?;
        match v.get("format_version").and_then(Value::as_u64) {
            Some(n) if READ_VERSIONS.iter().any(|r| *r as u64 == n) => {}
            other => return Err(SnapshotError::Version(other)),
        }
        let s: Snapshot =
            serde_json::from_value(v).map_err(|e| SnapshotError::Format(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot serialises")
    }

    pub fn gpu_count(&self) -> u32 {
        self.devices.len() as u32
    }

    /// Indices in order, pairs between existing distinct GPUs, every key a recorded query of
    /// the right scope with the right number of parameters, every value of its query's shape.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let bad = SnapshotError::Invalid;
        check_answers("system", &self.system, Scope::System)?;
        for (i, d) in self.devices.iter().enumerate() {
            if d.index as usize != i {
                return Err(bad(format!(
                    "devices[{i}] has index {}: list the GPUs in NVML order, from 0",
                    d.index
                )));
            }
            check_answers(&format!("devices[{i}]"), &d.answers, Scope::Device)?;
        }
        let n = self.gpu_count();
        for p in &self.pairs {
            if p.a >= n || p.b >= n || p.a == p.b {
                return Err(bad(format!(
                    "pair ({}, {}): pairs are two distinct GPUs below {n}",
                    p.a, p.b
                )));
            }
            check_answers(&format!("pair ({}, {})", p.a, p.b), &p.answers, Scope::Pair)?;
        }
        Ok(())
    }

    /// The answer to `key` for GPU `gpu`.
    pub fn device_answer(&self, gpu: u32, key: &str) -> Option<&Answer> {
        self.devices.get(gpu as usize)?.answers.get(key)
    }

    /// The answers about the pair (a, b), or else (b, a).
    pub fn pair_answers(&self, a: u32, b: u32) -> Option<&BTreeMap<String, Answer>> {
        let find = |a, b| {
            self.pairs
                .iter()
                .find(|p| p.a == a && p.b == b)
                .map(|p| &p.answers)
        };
        find(a, b).or_else(|| find(b, a))
    }

    /// A GPU's recorded UUID.
    pub fn uuid(&self, gpu: u32) -> Option<&str> {
        match self.device_answer(gpu, "nvmlDeviceGetUUID")? {
            Answer::Value(v) => v.as_str(),
            Answer::Error(_) => None,
        }
    }

    /// A GPU's recorded PCI bus id ("00000000:18:00.0").
    pub fn pci_bus_id(&self, gpu: u32) -> Option<&str> {
        match self.device_answer(gpu, "nvmlDeviceGetPciInfo_v3")? {
            Answer::Value(v) => v.get("busId")?.as_str(),
            Answer::Error(_) => None,
        }
    }
}

fn check_answers(
    at: &str,
    answers: &BTreeMap<String, Answer>,
    scope: Scope,
) -> Result<(), SnapshotError> {
    for (k, a) in answers {
        let (i, _) =
            query::parse_key(k).map_err(|e| SnapshotError::Invalid(format!("{at}: {e}")))?;
        let q = &QUERIES[i];
        if q.scope != scope {
            return Err(SnapshotError::Invalid(format!(
                "{at}: {} is a {:?} query, not a {scope:?} one",
                q.name, q.scope
            )));
        }
        match a {
            Answer::Value(v) => q
                .shape
                .check(v)
                .map_err(|e| SnapshotError::Invalid(format!("{at}: {k}: {e}")))?,
            Answer::Error(e) if e.rc == codes::SUCCESS => {
                return Err(SnapshotError::Invalid(format!(
                    "{at}: {k}: rc 0 is success: write the value instead"
                )));
            }
            Answer::Error(_) => {}
        }
    }
    Ok(())
}

/// Whether two PCI bus ids name the same function, whatever the domain's width or the case
/// ("0000:18:00.0" and "00000000:18:00.0" do; NVML accepts both).
pub fn same_pci_bus_id(a: &str, b: &str) -> bool {
    fn parts(s: &str) -> Option<(u64, u64, u64, u64)> {
        let s = s.trim();
        let (rest, func) = s.rsplit_once('.')?;
        let mut it = rest.rsplitn(3, ':');
        let dev = it.next()?;
        let bus = it.next()?;
        let dom = it.next().unwrap_or("0");
        let h = |x: &str| u64::from_str_radix(x, 16).ok();
        Some((h(dom)?, h(bus)?, h(dev)?, h(func)?))
    }
    matches!((parts(a), parts(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "format_version": 1,
            "recorded": {"tool": "test", "synthetic": true},
            "system": {"nvmlSystemGetDriverVersion": "580.159.04"},
            "devices": [
                {"index": 0, "answers": {
                    "nvmlDeviceGetUUID": "GPU-0",
                    "nvmlDeviceGetPciInfo_v3": {"busIdLegacy": "0000:18:00.0", "domain": 0, "bus": 24,
                        "device": 0, "pciDeviceId": 1, "pciSubSystemId": 2, "busId": "00000000:18:00.0"},
                    "nvmlDeviceGetClockInfo(1)": 1980,
                    "nvmlDeviceGetFanSpeed": {"rc": 3, "error": "ERROR_NOT_SUPPORTED"}}},
                {"index": 1, "answers": {}}
            ],
            "pairs": [{"a": 0, "b": 1, "answers": {"nvmlDeviceGetTopologyCommonAncestor": 50}}]
        })
    }

    #[test]
    fn round_trips_and_reads_answers() {
        let s = Snapshot::parse(&minimal().to_string()).unwrap();
        assert_eq!(s.gpu_count(), 2);
        assert!(s.recorded.synthetic);
        assert_eq!(s.uuid(0), Some("GPU-0"));
        assert_eq!(s.pci_bus_id(0), Some("00000000:18:00.0"));
        assert_eq!(
            s.device_answer(0, "nvmlDeviceGetFanSpeed"),
            Some(&Answer::error(3))
        );
        assert_eq!(
            s.device_answer(0, "nvmlDeviceGetClockInfo(1)"),
            Some(&Answer::Value(json!(1980)))
        );
        assert!(s.pair_answers(1, 0).is_some(), "(b, a) reads (a, b)");
        let again = Snapshot::parse(&s.to_json_pretty()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn other_versions_are_refused_by_version() {
        let mut v = minimal();
        v["format_version"] = json!(2);
        v["devices"] = json!("whatever a version 2 holds");
        let e = Snapshot::parse(&v.to_string()).unwrap_err();
        assert_eq!(e, SnapshotError::Version(Some(2)));
        assert!(e.to_string().contains("reads 1"), "{e}");
        let e = Snapshot::parse("{\"devices\": []}").unwrap_err();
        assert_eq!(e, SnapshotError::Version(None));
        assert!(matches!(
            Snapshot::parse("not json").unwrap_err(),
            SnapshotError::Format(_)
        ));
    }

    #[test]
    fn bad_keys_values_and_indices_are_refused() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"nvmlDeviceGetTemprature(0)": 30}),
                "not a recorded query",
            ),
            (json!({"nvmlDeviceGetClockInfo": 30}), "takes 1 parameter"),
            (json!({"nvmlDeviceGetClockInfo(1)": "fast"}), "unsigned int"),
            (json!({"nvmlDeviceGetName": {"rc": 0}}), "rc 0 is success"),
            (
                json!({"nvmlSystemGetDriverVersion": "x"}),
                "System query, not a Device one",
            ),
        ];
        for (answers, want) in cases {
            let mut v = minimal();
            v["devices"][1]["answers"] = answers;
            let e = Snapshot::parse(&v.to_string()).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
        let mut v = minimal();
        v["devices"][1]["index"] = json!(5);
        assert!(
            Snapshot::parse(&v.to_string())
                .unwrap_err()
                .to_string()
                .contains("NVML order")
        );
        let mut v = minimal();
        v["pairs"][0]["b"] = json!(0);
        assert!(
            Snapshot::parse(&v.to_string()).is_err(),
            "a pair with itself"
        );
    }

    #[test]
    fn pci_bus_ids_compare_by_value() {
        assert!(same_pci_bus_id("0000:18:00.0", "00000000:18:00.0"));
        assert!(same_pci_bus_id("00000000:AB:00.0", "0000:ab:00.0"));
        assert!(!same_pci_bus_id("0000:18:00.0", "0000:19:00.0"));
        assert!(!same_pci_bus_id("garbage", "garbage"));
    }
}
