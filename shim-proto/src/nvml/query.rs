//! The fixed list of NVML queries a snapshot records and a replay answers: every query
//! gpu-doctor's probes make (through nvml-wrapper 0.13 and a few raw symbols) and the ones
//! pynvml-based monitors commonly make. docs/nvml.md lists the same (a test checks).
//!
//! A query is one NVML function; its answer is stored in the snapshot under a key made of the
//! function name and its non-handle input parameters: `nvmlDeviceGetClockInfo(1)` is the SM
//! clock, `nvmlDeviceGetNvLinkState(3)` link 3. The snapshot records every value of every
//! parameter listed here; a replay answers exactly those.

use serde_json::Value;

/// What a query is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The machine (`nvmlSystem…`): `system` in the snapshot.
    System,
    /// One GPU: `devices[i]`.
    Device,
    /// An ordered pair of GPUs (a, b), a ≠ b: `pairs`.
    Pair,
}

/// An input parameter and the values a snapshot records it with.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub values: &'static [u32],
}

/// The JSON shape of a recorded answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `unsigned int` (enums included).
    Uint,
    /// `unsigned long long`.
    Uint64,
    /// `int`.
    Int,
    /// A string.
    Text,
    /// Several `unsigned int` outputs, as an array in this order.
    Uints(&'static [&'static str]),
    /// A struct of unsigned numbers: an object with exactly these fields.
    Object(&'static [&'static str]),
    /// `nvmlPciInfo_t`: busIdLegacy, domain, bus, device, pciDeviceId, pciSubSystemId, busId.
    Pci,
    /// A CPU (or NUMA node) set as a Linux list: `"0-15,32-47"`.
    CpuList,
    /// An array of structs of unsigned numbers (processes, retired pages).
    List(&'static [&'static str]),
    /// A field value: `{"valueType": nvmlValueType_t, "value": number}`.
    Field,
}

#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// The NVML function, and the key's name in the snapshot.
    pub name: &'static str,
    pub scope: Scope,
    pub params: &'static [Param],
    pub shape: Shape,
    /// Other NVML functions answered from the same key (another ABI version of the answer).
    pub aliases: &'static [&'static str],
    /// Who asks: `gpu-doctor` (its probes), `monitors` (pynvml-based tools), or both.
    pub asked_by: &'static str,
}

const CLOCKS: Param = Param {
    name: "clockType",
    values: &[0, 1, 2, 3],
};
const LINKS: Param = Param {
    name: "link",
    values: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
};
const ERROR_TYPE: Param = Param {
    name: "errorType",
    values: &[0, 1],
};
const COUNTER_TYPE: Param = Param {
    name: "counterType",
    values: &[0, 1],
};
const SCOPE: Param = Param {
    name: "scope",
    values: &[0, 1],
};
const CAUSE: Param = Param {
    name: "cause",
    values: &[0, 1],
};

/// Field ids recorded with nvmlDeviceGetFieldValues (scope 0): ECC totals (3–6), retired
/// pages (29–31), NVLink error totals (38, 52, 59), memory temperature (82), energy (83),
/// NVLink count (91), PCIe replays (94, 95), remapped rows (142–145), instant power (186),
/// GPU recovery action (230).
pub const FIELD_IDS: &[u32] = &[
    3, 4, 5, 6, 29, 30, 31, 38, 52, 59, 82, 83, 91, 94, 95, 142, 143, 144, 145, 186, 230,
];
/// NVML_FI_DEV_GET_GPU_RECOVERY_ACTION.
pub const FI_GPU_RECOVERY_ACTION: u32 = 230;
pub const FI_ECC_DBE_VOL_TOTAL: u32 = 4;
pub const FI_ECC_DBE_AGG_TOTAL: u32 = 6;
pub const FI_PCIE_REPLAY_COUNTER: u32 = 94;
pub const FI_REMAPPED_UNC: u32 = 143;
pub const FI_REMAPPED_PENDING: u32 = 144;
pub const FI_REMAPPED_FAILURE: u32 = 145;

const fn q(
    name: &'static str,
    scope: Scope,
    params: &'static [Param],
    shape: Shape,
    asked_by: &'static str,
) -> Query {
    Query {
        name,
        scope,
        params,
        shape,
        aliases: &[],
        asked_by,
    }
}

const fn dev(name: &'static str, shape: Shape, asked_by: &'static str) -> Query {
    q(name, Scope::Device, &[], shape, asked_by)
}

const fn alias(mut query: Query, aliases: &'static [&'static str]) -> Query {
    query.aliases = aliases;
    query
}

use Scope::*;
use Shape::*;

const GD: &str = "gpu-doctor";
const MON: &str = "monitors";
const BOTH: &str = "gpu-doctor, monitors";
const PROC: &[&str] = &["pid", "usedGpuMemory", "gpuInstanceId", "computeInstanceId"];

/// Every recorded query, in the snapshot's order.
pub const QUERIES: &[Query] = &[
    // The machine.
    q("nvmlSystemGetDriverVersion", System, &[], Text, BOTH),
    q("nvmlSystemGetNVMLVersion", System, &[], Text, BOTH),
    alias(
        q("nvmlSystemGetCudaDriverVersion_v2", System, &[], Int, BOTH),
        &["nvmlSystemGetCudaDriverVersion"],
    ),
    // Identity.
    dev("nvmlDeviceGetName", Text, BOTH),
    dev("nvmlDeviceGetUUID", Text, BOTH),
    dev("nvmlDeviceGetSerial", Text, MON),
    alias(
        dev("nvmlDeviceGetPciInfo_v3", Pci, BOTH),
        &["nvmlDeviceGetPciInfo_v2"],
    ),
    dev("nvmlDeviceGetMinorNumber", Uint, MON),
    dev("nvmlDeviceGetBrand", Uint, MON),
    dev("nvmlDeviceGetArchitecture", Uint, MON),
    dev(
        "nvmlDeviceGetCudaComputeCapability",
        Uints(&["major", "minor"]),
        BOTH,
    ),
    dev("nvmlDeviceGetVbiosVersion", Text, BOTH),
    dev("nvmlDeviceGetInforomImageVersion", Text, MON),
    dev("nvmlDeviceGetBoardPartNumber", Text, MON),
    dev("nvmlDeviceGetBoardId", Uint, MON),
    dev("nvmlDeviceGetMultiGpuBoard", Uint, MON),
    // Topology and affinity.
    dev("nvmlDeviceGetNumaNodeId", Uint, GD),
    dev("nvmlDeviceGetCpuAffinity", CpuList, GD),
    q(
        "nvmlDeviceGetCpuAffinityWithinScope",
        Device,
        &[SCOPE],
        CpuList,
        MON,
    ),
    q("nvmlDeviceGetMemoryAffinity", Device, &[SCOPE], CpuList, GD),
    q("nvmlDeviceGetTopologyCommonAncestor", Pair, &[], Uint, BOTH),
    q(
        "nvmlDeviceGetP2PStatus",
        Pair,
        &[Param {
            name: "p2pIndex",
            values: &[0, 1, 2, 3, 4],
        }],
        Uint,
        BOTH,
    ),
    q("nvmlDeviceOnSameBoard", Pair, &[], Int, MON),
    // Memory.
    dev(
        "nvmlDeviceGetMemoryInfo",
        Object(&["total", "free", "used"]),
        MON,
    ),
    dev(
        "nvmlDeviceGetMemoryInfo_v2",
        Object(&["total", "reserved", "free", "used"]),
        BOTH,
    ),
    dev(
        "nvmlDeviceGetBAR1MemoryInfo",
        Object(&["bar1Total", "bar1Free", "bar1Used"]),
        MON,
    ),
    dev("nvmlDeviceGetMemoryBusWidth", Uint, GD),
    // Modes and state.
    dev("nvmlDeviceGetPersistenceMode", Uint, BOTH),
    dev("nvmlDeviceGetComputeMode", Uint, BOTH),
    dev("nvmlDeviceGetMigMode", Uints(&["current", "pending"]), BOTH),
    dev("nvmlDeviceGetEccMode", Uints(&["current", "pending"]), BOTH),
    dev("nvmlDeviceGetDisplayMode", Uint, MON),
    dev("nvmlDeviceGetDisplayActive", Uint, MON),
    dev("nvmlDeviceGetPerformanceState", Uint, BOTH),
    // Utilisation.
    dev(
        "nvmlDeviceGetUtilizationRates",
        Object(&["gpu", "memory"]),
        MON,
    ),
    dev(
        "nvmlDeviceGetEncoderUtilization",
        Uints(&["utilization", "samplingPeriodUs"]),
        MON,
    ),
    dev(
        "nvmlDeviceGetDecoderUtilization",
        Uints(&["utilization", "samplingPeriodUs"]),
        MON,
    ),
    // Temperature, power, fans.
    q(
        "nvmlDeviceGetTemperature",
        Device,
        &[Param {
            name: "sensorType",
            values: &[0],
        }],
        Uint,
        BOTH,
    ),
    q(
        "nvmlDeviceGetTemperatureThreshold",
        Device,
        &[Param {
            name: "thresholdType",
            values: &[0, 1, 2, 3],
        }],
        Uint,
        MON,
    ),
    dev("nvmlDeviceGetPowerUsage", Uint, BOTH),
    dev("nvmlDeviceGetEnforcedPowerLimit", Uint, BOTH),
    dev("nvmlDeviceGetPowerManagementLimit", Uint, MON),
    dev("nvmlDeviceGetPowerManagementDefaultLimit", Uint, MON),
    dev(
        "nvmlDeviceGetPowerManagementLimitConstraints",
        Uints(&["minLimit", "maxLimit"]),
        MON,
    ),
    dev("nvmlDeviceGetTotalEnergyConsumption", Uint64, MON),
    dev("nvmlDeviceGetFanSpeed", Uint, MON),
    dev("nvmlDeviceGetNumFans", Uint, MON),
    q(
        "nvmlDeviceGetFanSpeed_v2",
        Device,
        &[Param {
            name: "fan",
            values: &[0, 1, 2, 3],
        }],
        Uint,
        MON,
    ),
    // Clocks.
    q("nvmlDeviceGetClockInfo", Device, &[CLOCKS], Uint, BOTH),
    q("nvmlDeviceGetMaxClockInfo", Device, &[CLOCKS], Uint, BOTH),
    alias(
        dev("nvmlDeviceGetCurrentClocksEventReasons", Uint64, BOTH),
        &["nvmlDeviceGetCurrentClocksThrottleReasons"],
    ),
    alias(
        dev("nvmlDeviceGetSupportedClocksEventReasons", Uint64, MON),
        &["nvmlDeviceGetSupportedClocksThrottleReasons"],
    ),
    // ECC, retired pages, row remapping.
    q(
        "nvmlDeviceGetTotalEccErrors",
        Device,
        &[ERROR_TYPE, COUNTER_TYPE],
        Uint64,
        BOTH,
    ),
    q(
        "nvmlDeviceGetMemoryErrorCounter",
        Device,
        &[
            ERROR_TYPE,
            COUNTER_TYPE,
            Param {
                name: "locationType",
                values: &[0, 1, 2, 3, 4, 5, 6, 7],
            },
        ],
        Uint64,
        MON,
    ),
    alias(
        q(
            "nvmlDeviceGetRetiredPages_v2",
            Device,
            &[CAUSE],
            List(&["address", "timestamp"]),
            BOTH,
        ),
        &["nvmlDeviceGetRetiredPages"],
    ),
    dev("nvmlDeviceGetRetiredPagesPendingStatus", Uint, BOTH),
    dev(
        "nvmlDeviceGetRemappedRows",
        Uints(&["corrRows", "uncRows", "isPending", "failureOccurred"]),
        BOTH,
    ),
    dev(
        "nvmlDeviceGetRowRemapperHistogram",
        Object(&["max", "high", "partial", "low", "none"]),
        MON,
    ),
    // PCIe.
    dev("nvmlDeviceGetCurrPcieLinkGeneration", Uint, BOTH),
    dev("nvmlDeviceGetCurrPcieLinkWidth", Uint, BOTH),
    dev("nvmlDeviceGetMaxPcieLinkGeneration", Uint, BOTH),
    dev("nvmlDeviceGetMaxPcieLinkWidth", Uint, BOTH),
    dev("nvmlDeviceGetGpuMaxPcieLinkGeneration", Uint, GD),
    dev("nvmlDeviceGetPcieReplayCounter", Uint, BOTH),
    q(
        "nvmlDeviceGetPcieThroughput",
        Device,
        &[Param {
            name: "counter",
            values: &[0, 1],
        }],
        Uint,
        MON,
    ),
    dev("nvmlDeviceGetPcieSpeed", Uint, MON),
    dev("nvmlDeviceGetPcieLinkMaxSpeed", Uint, MON),
    // NVLink.
    q("nvmlDeviceGetNvLinkState", Device, &[LINKS], Uint, BOTH),
    q("nvmlDeviceGetNvLinkVersion", Device, &[LINKS], Uint, BOTH),
    q(
        "nvmlDeviceGetNvLinkRemotePciInfo_v2",
        Device,
        &[LINKS],
        Pci,
        BOTH,
    ),
    q(
        "nvmlDeviceGetNvLinkRemoteDeviceType",
        Device,
        &[LINKS],
        Uint,
        BOTH,
    ),
    q(
        "nvmlDeviceGetNvLinkErrorCounter",
        Device,
        &[
            LINKS,
            Param {
                name: "counter",
                values: &[0, 1, 2, 3, 4],
            },
        ],
        Uint64,
        MON,
    ),
    q(
        "nvmlDeviceGetNvLinkCapability",
        Device,
        &[
            LINKS,
            Param {
                name: "capability",
                values: &[0, 1, 2, 3, 4, 5],
            },
        ],
        Uint,
        MON,
    ),
    // Processes.
    alias(
        dev("nvmlDeviceGetComputeRunningProcesses_v3", List(PROC), BOTH),
        &["nvmlDeviceGetComputeRunningProcesses_v2"],
    ),
    alias(
        dev("nvmlDeviceGetGraphicsRunningProcesses_v3", List(PROC), MON),
        &["nvmlDeviceGetGraphicsRunningProcesses_v2"],
    ),
    // Events and field values.
    dev("nvmlDeviceGetSupportedEventTypes", Uint64, MON),
    q(
        "nvmlDeviceGetFieldValues",
        Device,
        &[
            Param {
                name: "fieldId",
                values: FIELD_IDS,
            },
            Param {
                name: "scopeId",
                values: &[0],
            },
        ],
        Field,
        BOTH,
    ),
];

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The index in [`QUERIES`] of the query named `name` or aliased by it; at compile time in a
/// const context (an unknown name does not build).
pub const fn index(name: &str) -> usize {
    let mut i = 0;
    while i < QUERIES.len() {
        if same(QUERIES[i].name, name) {
            return i;
        }
        let mut j = 0;
        while j < QUERIES[i].aliases.len() {
            if same(QUERIES[i].aliases[j], name) {
                return i;
            }
            j += 1;
        }
        i += 1;
    }
    panic!("not in proto::query::QUERIES")
}

/// [`index`] at run time.
pub fn find(name: &str) -> Option<usize> {
    QUERIES
        .iter()
        .position(|q| q.name == name || q.aliases.contains(&name))
}

/// The snapshot key of a query with its parameters: `name` or `name(1,2)`.
pub fn key(name: &str, params: &[u32]) -> String {
    if params.is_empty() {
        return name.to_string();
    }
    let p: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    format!("{name}({})", p.join(","))
}

/// A key back into the query's index and its parameters; the parameter count must match.
pub fn parse_key(k: &str) -> Result<(usize, Vec<u32>), String> {
    let (name, params) = match k.split_once('(') {
        Some((n, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("'{k}': a key is NAME or NAME(P,…)"))?;
            let params = inner
                .split(',')
                .map(|p| p.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("'{k}': parameters are whole numbers"))?;
            (n, params)
        }
        None => (k, vec![]),
    };
    let i = QUERIES
        .iter()
        .position(|q| q.name == name)
        .ok_or_else(|| format!("'{k}': not a recorded query (docs/nvml.md lists them)"))?;
    let want = QUERIES[i].params.len();
    if params.len() != want {
        return Err(format!(
            "'{k}': {name} takes {want} parameter(s) ({})",
            QUERIES[i]
                .params
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok((i, params))
}

/// Every parameter combination a snapshot records for `q`, in order.
pub fn combinations(q: &Query) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = vec![vec![]];
    for p in q.params {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                p.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push(*v);
                    c
                })
            })
            .collect();
    }
    out
}

/// A Linux CPU list ("0-15,32-47", "" for none) as the set members.
pub fn parse_cpulist(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("'{s}' is not a CPU list (like 0-15,32-47)");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The members (ascending) of a CPU or NUMA-node set as NVML passes it: an array of
/// `unsigned long` bitmask words.
pub fn cpuset_members(words: &[core::ffi::c_ulong]) -> Vec<u32> {
    let bits = core::ffi::c_ulong::BITS as usize;
    (0..words.len() * bits)
        .filter(|c| words[c / bits] >> (c % bits) & 1 == 1)
        .map(|c| c as u32)
        .collect()
}

/// Set members (ascending) as a Linux CPU list.
pub fn format_cpulist(members: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < members.len() {
        let start = members[i];
        while i + 1 < members.len() && members[i + 1] == members[i] + 1 {
            i += 1;
        }
        parts.push(if members[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", members[i])
        });
        i += 1;
    }
    parts.join(",")
}

const PCI_NUMBERS: &[&str] = &["domain", "bus", "device", "pciDeviceId", "pciSubSystemId"];

impl Shape {
    /// Whether `v` is a well-formed answer of this shape.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        let uint = |v: &Value, max: u64| v.as_u64().is_some_and(|n| n <= max);
        let ok = match *self {
            Uint => uint(v, u32::MAX as u64),
            Uint64 => v.as_u64().is_some(),
            Int => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Text => v.as_str().is_some(),
            Uints(names) => v.as_array().is_some_and(|a| {
                a.len() == names.len() && a.iter().all(|x| uint(x, u32::MAX as u64))
            }),
            Object(fields) => object_of(v, fields, &[]),
            Pci => {
                object_of(v, PCI_NUMBERS, &["busIdLegacy", "busId"])
                    && v["busIdLegacy"].as_str().is_some_and(|s| s.len() < 16)
                    && v["busId"].as_str().is_some_and(|s| s.len() < 32)
            }
            CpuList => v.as_str().is_some_and(|s| parse_cpulist(s).is_ok()),
            List(fields) => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| object_of(x, fields, &[]))),
            Field => {
                v.as_object().is_some_and(|o| o.len() == 2)
                    && uint(&v["valueType"], 6)
                    && v["value"].is_number()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}", self.describe()))
        }
    }

    /// The shape in words, for docs and error messages.
    pub fn describe(&self) -> String {
        match *self {
            Uint => "an unsigned int".into(),
            Uint64 => "an unsigned long long".into(),
            Int => "an int".into(),
            Text => "a string".into(),
            Uints(names) => format!("[{}]", names.join(", ")),
            Object(fields) => format!("{{{}}}", fields.join(", ")),
            Pci => format!("{{busIdLegacy, {}, busId}}", PCI_NUMBERS.join(", ")),
            CpuList => "a CPU list string (\"0-15,32-47\")".into(),
            List(fields) => format!("[{{{}}}, …]", fields.join(", ")),
            Field => "{valueType, value}".into(),
        }
    }
}

/// `v` is an object with exactly these numeric and string fields.
fn object_of(v: &Value, numbers: &[&str], strings: &[&str]) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == numbers.len() + strings.len()
            && numbers
                .iter()
                .all(|f| o.get(*f).is_some_and(|x| x.is_u64()))
            && strings
                .iter()
                .all(|f| o.get(*f).is_some_and(|x| x.is_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique_and_found_at_compile_time() {
        for (i, q) in QUERIES.iter().enumerate() {
            assert_eq!(find(q.name), Some(i), "{}", q.name);
            for a in q.aliases {
                assert_eq!(find(a), Some(i), "{a}");
            }
        }
        const PCIE: usize = index("nvmlDeviceGetCurrPcieLinkWidth");
        assert_eq!(QUERIES[PCIE].name, "nvmlDeviceGetCurrPcieLinkWidth");
        assert_eq!(
            index("nvmlDeviceGetCurrentClocksThrottleReasons"),
            index("nvmlDeviceGetCurrentClocksEventReasons"),
            "an alias reads its query's key"
        );
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(key("nvmlDeviceGetName", &[]), "nvmlDeviceGetName");
        assert_eq!(
            key("nvmlDeviceGetTotalEccErrors", &[1, 0]),
            "nvmlDeviceGetTotalEccErrors(1,0)"
        );
        let (i, p) = parse_key("nvmlDeviceGetTotalEccErrors(1,0)").unwrap();
        assert_eq!(QUERIES[i].name, "nvmlDeviceGetTotalEccErrors");
        assert_eq!(p, vec![1, 0]);
        assert!(parse_key("nvmlDeviceGetTemprature(0)").is_err(), "typo");
        assert!(
            parse_key("nvmlDeviceGetTemperature").is_err(),
            "missing parameter"
        );
        assert!(
            parse_key("nvmlDeviceGetName(1)").is_err(),
            "extra parameter"
        );
        assert!(
            parse_key("nvmlDeviceGetCurrentClocksThrottleReasons").is_err(),
            "aliases are not keys"
        );
    }

    #[test]
    fn combinations_cover_every_parameter_value() {
        let ecc = &QUERIES[index("nvmlDeviceGetTotalEccErrors")];
        assert_eq!(
            combinations(ecc),
            vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]
        );
        assert_eq!(
            combinations(&QUERIES[index("nvmlDeviceGetName")]),
            vec![Vec::<u32>::new()]
        );
        assert_eq!(
            combinations(&QUERIES[index("nvmlDeviceGetNvLinkErrorCounter")]).len(),
            18 * 5
        );
    }

    #[test]
    fn shapes_check_values() {
        assert!(Uint.check(&json!(16)).is_ok());
        assert!(Uint.check(&json!(-1)).is_err());
        assert!(Uint.check(&json!(1u64 << 40)).is_err());
        assert!(Uint64.check(&json!(u64::MAX)).is_ok());
        assert!(Int.check(&json!(-5)).is_ok());
        assert!(Text.check(&json!("NVIDIA H200")).is_ok());
        assert!(Uints(&["a", "b"]).check(&json!([1, 0])).is_ok());
        assert!(Uints(&["a", "b"]).check(&json!([1])).is_err());
        assert!(
            Object(&["gpu", "memory"])
                .check(&json!({"gpu": 1, "memory": 2}))
                .is_ok()
        );
        assert!(
            Object(&["gpu", "memory"])
                .check(&json!({"gpu": 1}))
                .is_err()
        );
        let pci = json!({"busIdLegacy": "0000:18:00.0", "domain": 0, "bus": 24, "device": 0,
            "pciDeviceId": 590418142, "pciSubSystemId": 411112926, "busId": "00000000:18:00.0"});
        assert!(Pci.check(&pci).is_ok());
        assert!(CpuList.check(&json!("0-15,32-47")).is_ok());
        assert!(CpuList.check(&json!("")).is_ok());
        assert!(CpuList.check(&json!("all")).is_err());
        assert!(List(&["pid", "usedGpuMemory"]).check(&json!([])).is_ok());
        assert!(Field.check(&json!({"valueType": 1, "value": 0})).is_ok());
        assert!(Field.check(&json!({"valueType": 9, "value": 0})).is_err());
    }

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpulist("3-1").is_err());
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpulist(&[]), "");
    }

    #[test]
    fn docs_list_every_query() {
        let docs = include_str!("../../../docs/nvml.md");
        for q in QUERIES {
            assert!(
                docs.contains(&format!("`{}`", q.name)),
                "docs/nvml.md does not list {}",
                q.name
            );
        }
    }
}
