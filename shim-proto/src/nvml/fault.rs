//! The fault syntax, one for programs (`GPU_DOCTOR_NVML_FAULTS`), gpu-doctor's `--fault` and
//! suite files: `KIND[=VALUE][@gpuN][+DELAY]`.
//!
//! - KIND and VALUE: see [`KINDS`] (`xid=79`, `gpu-lost`, `pcie-width=8`, …).
//! - `@gpuN`: the GPU by NVML index (PCI bus order); without it the fault applies to every GPU.
//! - `+DELAY`: a duration (`+30s`, `+500ms`, `+2m`) from the moment the library is loaded in
//!   the process, or a count of NVML calls (`+100calls`: the first 100 calls the process makes
//!   through the library answer as before, the 101st and later see the fault). Without it the
//!   fault applies from the first call.

use std::fmt;
use std::time::Duration;

use crate::units::{format_duration, format_size, parse_duration, parse_size};

/// At most this many faults at once (the library keeps one bit per fault).
pub const MAX_FAULTS: usize = 64;
/// `@gpuN` takes N below this.
pub const MAX_GPUS: u32 = 64;
/// NVML_NVLINK_MAX_LINKS: links are numbered below this.
pub const NVLINK_MAX_LINKS: u32 = 18;
/// nvmlEventTypeXidCriticalError.
pub const XID_EVENT_TYPE: u64 = 8;

/// One fault: what changes, on which GPU, from when.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// NVML index of the GPU; None: every GPU.
    pub gpu: Option<u32>,
    pub delay: Delay,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// An XID event (XidCriticalError, eventData = the code) through NVML event sets.
    Xid(u32),
    /// Every call on the GPU answers NVML_ERROR_GPU_IS_LOST, handle lookups included.
    GpuLost,
    /// Uncorrectable ECC errors added to the volatile and aggregate counters.
    EccUncorrectable(u64),
    RowRemap(RowRemap),
    RecoveryAction(RecoveryAction),
    /// Current PCIe link width (lanes).
    PcieWidth(u32),
    /// Current PCIe link generation.
    PcieGen(u32),
    /// The PCIe replay counter grows by this many per second.
    PcieReplays(f64),
    /// These NVLinks are inactive (sorted, no duplicates).
    NvlinkDown(Vec<u32>),
    /// Clock event (throttle) reason bits added to the current reasons.
    Throttle(u64),
    /// GPU temperature in °C.
    Temperature(u32),
    /// Device memory in use, in bytes.
    MemoryUsed(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRemap {
    Pending,
    Failed,
}

/// NVML's nvmlDeviceGpuRecoveryAction_t, in value order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    None = 0,
    GpuReset = 1,
    NodeReboot = 2,
    DrainP2p = 3,
    DrainAndReset = 4,
}

const RECOVERY_ACTIONS: &[(&str, RecoveryAction)] = &[
    ("none", RecoveryAction::None),
    ("gpu-reset", RecoveryAction::GpuReset),
    ("node-reboot", RecoveryAction::NodeReboot),
    ("drain-p2p", RecoveryAction::DrainP2p),
    ("drain-and-reset", RecoveryAction::DrainAndReset),
];

/// Clock event reason names and their bits (nvml.h nvmlClocksEventReason*). `thermal` and
/// `power` name the software and hardware reasons together; consumers test bits with
/// intersects, never equality.
pub const THROTTLE_REASONS: &[(&str, u64)] = &[
    ("thermal", 0x20 | 0x40),
    ("power", 0x04 | 0x80),
    ("idle", 0x01),
    ("app-clocks", 0x02),
    ("sw-power", 0x04),
    ("hw-slowdown", 0x08),
    ("sync-boost", 0x10),
    ("sw-thermal", 0x20),
    ("hw-thermal", 0x40),
    ("hw-power-brake", 0x80),
    ("display-clocks", 0x100),
];

const PCIE_WIDTHS: &[u32] = &[1, 2, 4, 8, 12, 16, 32];

/// Every kind with its value syntax: the list an error message gives.
pub const KINDS: &[(&str, &str)] = &[
    ("xid", "xid=CODE (1..4294967295)"),
    ("gpu-lost", "gpu-lost"),
    ("ecc-uncorrectable", "ecc-uncorrectable=N (1..4294967295)"),
    ("row-remap", "row-remap=pending|failed"),
    (
        "recovery-action",
        "recovery-action=none|gpu-reset|node-reboot|drain-p2p|drain-and-reset",
    ),
    ("pcie-width", "pcie-width=1|2|4|8|12|16|32"),
    ("pcie-gen", "pcie-gen=1..6"),
    ("pcie-replays", "pcie-replays=N/s (0 < N <= 1000000)"),
    ("nvlink-down", "nvlink-down=LINK[,LINK] (0..17)"),
    (
        "throttle",
        "throttle=REASON[,REASON] (thermal, power, idle, app-clocks, sw-power, hw-slowdown, sync-boost, sw-thermal, hw-thermal, hw-power-brake, display-clocks, or a 0x mask)",
    ),
    ("temperature", "temperature=C (0..200)"),
    ("memory-used", "memory-used=SIZE (70GiB, 512MiB, bytes)"),
];

/// When a fault starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// From the first call.
    Now,
    /// This long after the library was loaded in the process.
    After(Duration),
    /// After this many NVML calls of the process (the next call sees the fault).
    AfterCalls(u64),
}

impl Delay {
    /// Whether the fault applies at `elapsed` since load, on the process's call number
    /// `call` (counted from 1, this call included).
    pub fn is_due(&self, elapsed: Duration, call: u64) -> bool {
        match *self {
            Delay::Now => true,
            Delay::After(d) => elapsed >= d,
            Delay::AfterCalls(n) => call > n,
        }
    }

    /// For a time delay: how long until it is due (zero when it is). None for call counts.
    pub fn due_in(&self, elapsed: Duration) -> Option<Duration> {
        match *self {
            Delay::Now => Some(Duration::ZERO),
            Delay::After(d) => Some(d.saturating_sub(elapsed)),
            Delay::AfterCalls(_) => None,
        }
    }
}

/// A fault that could not be parsed or does not fit the machine; the message lists what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError(pub String);

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FaultError {}

/// The kinds and the rest of the syntax, in one line.
pub fn syntax_help() -> String {
    let kinds: Vec<&str> = KINDS.iter().map(|(_, s)| *s).collect();
    format!(
        "kinds: {}; then optionally @gpuN (default: every GPU) and +DELAY (+30s, +500ms, +100calls)",
        kinds.join(", ")
    )
}

impl std::str::FromStr for Fault {
    type Err = FaultError;

    fn from_str(spec: &str) -> Result<Fault, FaultError> {
        let spec = spec.trim();
        let err = |msg: String| FaultError(format!("fault '{spec}': {msg}"));
        let (head, delay) = match spec.split_once('+') {
            Some((h, d)) => (h, parse_delay(d).map_err(err)?),
            None => (spec, Delay::Now),
        };
        let (head, gpu) = match head.split_once('@') {
            Some((h, g)) => (h, Some(parse_gpu(g).map_err(err)?)),
            None => (head, None),
        };
        let (name, value) = match head.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (head.trim(), None),
        };
        let kind = parse_kind(name, value).map_err(err)?;
        Ok(Fault { kind, gpu, delay })
    }
}

fn parse_delay(d: &str) -> Result<Delay, String> {
    let d = d.trim();
    let calls = d.strip_suffix("calls").or_else(|| d.strip_suffix("call"));
    if let Some(n) = calls {
        return n
            .trim()
            .parse::<u64>()
            .map(Delay::AfterCalls)
            .map_err(|_| format!("+{d}: a call count is a whole number (+100calls)"));
    }
    parse_duration(d)
        .map(Delay::After)
        .map_err(|e| format!("+DELAY: {e}, or a call count (+100calls)"))
}

fn parse_gpu(g: &str) -> Result<u32, String> {
    let n = g
        .trim()
        .strip_prefix("gpu")
        .ok_or_else(|| format!("@{g}: write the GPU as @gpuN (NVML index, e.g. @gpu0)"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("@{g}: write the GPU as @gpuN (NVML index, e.g. @gpu0)"))?;
    if n >= MAX_GPUS {
        return Err(format!("@{g}: GPU indices go up to {}", MAX_GPUS - 1));
    }
    Ok(n)
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    name: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("{name}={v}: expected a whole number in {lo}..{hi}")),
    }
}

fn parse_kind(name: &str, value: Option<&str>) -> Result<FaultKind, String> {
    let Some((_, syntax)) = KINDS.iter().find(|(k, _)| *k == name) else {
        return Err(format!("unknown kind '{name}' ({})", syntax_help()));
    };
    if name == "gpu-lost" {
        return match value {
            None => Ok(FaultKind::GpuLost),
            Some(v) => Err(format!("gpu-lost takes no value (got '{v}')")),
        };
    }
    let v = match value {
        Some(v) if !v.is_empty() => v,
        _ => return Err(format!("{name} needs a value: {syntax}")),
    };
    let bad = || format!("{name}={v}: expected {syntax}");
    Ok(match name {
        "xid" => FaultKind::Xid(number(name, v, 1u32, u32::MAX)?),
        "ecc-uncorrectable" => FaultKind::EccUncorrectable(number(name, v, 1u64, u32::MAX as u64)?),
        "row-remap" => match v {
            "pending" => FaultKind::RowRemap(RowRemap::Pending),
            "failed" => FaultKind::RowRemap(RowRemap::Failed),
            _ => return Err(bad()),
        },
        "recovery-action" => match RECOVERY_ACTIONS.iter().find(|(n, _)| *n == v) {
            Some((_, a)) => FaultKind::RecoveryAction(*a),
            None => return Err(bad()),
        },
        "pcie-width" => match v.parse::<u32>() {
            Ok(w) if PCIE_WIDTHS.contains(&w) => FaultKind::PcieWidth(w),
            _ => return Err(bad()),
        },
        "pcie-gen" => FaultKind::PcieGen(number(name, v, 1u32, 6)?),
        "pcie-replays" => {
            let rate = v.strip_suffix("/s").ok_or_else(bad)?;
            match rate.trim().parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1e6 => FaultKind::PcieReplays(r),
                _ => return Err(bad()),
            }
        }
        "nvlink-down" => {
            let mut links = Vec::new();
            for l in v.split(',') {
                let l = number(name, l.trim(), 0u32, NVLINK_MAX_LINKS - 1)?;
                if !links.contains(&l) {
                    links.push(l);
                }
            }
            links.sort_unstable();
            FaultKind::NvlinkDown(links)
        }
        "throttle" => {
            let mut bits = 0u64;
            for r in v.split(',').map(str::trim) {
                bits |= throttle_bits(r).ok_or_else(bad)?;
            }
            FaultKind::Throttle(bits)
        }
        "temperature" => FaultKind::Temperature(number(name, v, 0u32, 200)?),
        "memory-used" => match parse_size(v) {
            Ok(n) if n > 0 => FaultKind::MemoryUsed(n),
            Ok(_) => return Err(format!("{name}={v}: expected a size above 0")),
            Err(e) => return Err(format!("{name}: {e}")),
        },
        _ => unreachable!("every name in KINDS is parsed"),
    })
}

fn throttle_bits(r: &str) -> Option<u64> {
    if let Some(hex) = r.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().filter(|b| *b != 0);
    }
    THROTTLE_REASONS
        .iter()
        .find(|(n, _)| *n == r)
        .map(|(_, b)| *b)
}

fn throttle_text(bits: u64) -> String {
    if let Some((n, _)) = THROTTLE_REASONS.iter().find(|(_, b)| *b == bits) {
        return n.to_string();
    }
    let mut names = Vec::new();
    let mut rest = bits;
    for (n, b) in THROTTLE_REASONS.iter().filter(|(_, b)| b.is_power_of_two()) {
        if bits & b != 0 {
            names.push(n.to_string());
            rest &= !b;
        }
    }
    if rest != 0 {
        return format!("{bits:#x}");
    }
    names.join(",")
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Xid(_) => "xid",
            FaultKind::GpuLost => "gpu-lost",
            FaultKind::EccUncorrectable(_) => "ecc-uncorrectable",
            FaultKind::RowRemap(_) => "row-remap",
            FaultKind::RecoveryAction(_) => "recovery-action",
            FaultKind::PcieWidth(_) => "pcie-width",
            FaultKind::PcieGen(_) => "pcie-gen",
            FaultKind::PcieReplays(_) => "pcie-replays",
            FaultKind::NvlinkDown(_) => "nvlink-down",
            FaultKind::Throttle(_) => "throttle",
            FaultKind::Temperature(_) => "temperature",
            FaultKind::MemoryUsed(_) => "memory-used",
        }
    }

    /// The value as the syntax writes it (None for gpu-lost).
    pub fn value_text(&self) -> Option<String> {
        Some(match self {
            FaultKind::Xid(c) => c.to_string(),
            FaultKind::GpuLost => return None,
            FaultKind::EccUncorrectable(n) => n.to_string(),
            FaultKind::RowRemap(RowRemap::Pending) => "pending".into(),
            FaultKind::RowRemap(RowRemap::Failed) => "failed".into(),
            FaultKind::RecoveryAction(a) => RECOVERY_ACTIONS
                .iter()
                .find(|(_, x)| x == a)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
            FaultKind::PcieWidth(w) => w.to_string(),
            FaultKind::PcieGen(g) => g.to_string(),
            FaultKind::PcieReplays(r) => format!("{r}/s"),
            FaultKind::NvlinkDown(links) => links
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(","),
            FaultKind::Throttle(bits) => throttle_text(*bits),
            FaultKind::Temperature(c) => c.to_string(),
            FaultKind::MemoryUsed(b) => format_size(*b),
        })
    }

    /// The NVML functions whose answers this fault changes. gpu-lost changes every call that
    /// names its GPU instead (see [`FaultKind::all_device_calls`]).
    pub fn calls(&self) -> &'static [&'static str] {
        match self {
            FaultKind::Xid(_) => &[
                "nvmlDeviceRegisterEvents",
                "nvmlEventSetWait",
                "nvmlEventSetWait_v2",
            ],
            FaultKind::GpuLost => &[],
            FaultKind::EccUncorrectable(_) => &[
                "nvmlDeviceGetTotalEccErrors",
                "nvmlDeviceGetMemoryErrorCounter",
                "nvmlDeviceGetFieldValues",
            ],
            FaultKind::RowRemap(_) => &["nvmlDeviceGetRemappedRows", "nvmlDeviceGetFieldValues"],
            FaultKind::RecoveryAction(_) => &["nvmlDeviceGetFieldValues"],
            FaultKind::PcieWidth(_) => &["nvmlDeviceGetCurrPcieLinkWidth"],
            FaultKind::PcieGen(_) => &[
                "nvmlDeviceGetCurrPcieLinkGeneration",
                "nvmlDeviceGetPcieSpeed",
            ],
            FaultKind::PcieReplays(_) => {
                &["nvmlDeviceGetPcieReplayCounter", "nvmlDeviceGetFieldValues"]
            }
            FaultKind::NvlinkDown(_) => &[
                "nvmlDeviceGetNvLinkState",
                "nvmlDeviceGetNvLinkErrorCounter",
            ],
            FaultKind::Throttle(_) => &[
                "nvmlDeviceGetCurrentClocksEventReasons",
                "nvmlDeviceGetCurrentClocksThrottleReasons",
            ],
            FaultKind::Temperature(_) => &["nvmlDeviceGetTemperature"],
            FaultKind::MemoryUsed(_) => &["nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2"],
        }
    }

    /// gpu-lost: every call that names the GPU answers NVML_ERROR_GPU_IS_LOST.
    pub fn all_device_calls(&self) -> bool {
        matches!(self, FaultKind::GpuLost)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(v) = self.kind.value_text() {
            write!(f, "={v}")?;
        }
        if let Some(g) = self.gpu {
            write!(f, "@gpu{g}")?;
        }
        match self.delay {
            Delay::Now => Ok(()),
            Delay::After(d) => write!(f, "+{}", format_duration(d)),
            Delay::AfterCalls(n) => write!(f, "+{n}calls"),
        }
    }
}

/// Parses several faults (each a `--fault` value); more than [`MAX_FAULTS`] is an error.
pub fn parse_faults<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Fault>, FaultError> {
    if specs.len() > MAX_FAULTS {
        return Err(FaultError(format!(
            "{} faults given; at most {MAX_FAULTS} at once",
            specs.len()
        )));
    }
    specs.iter().map(|s| s.as_ref().parse()).collect()
}

/// Parses the `GPU_DOCTOR_NVML_FAULTS` value: faults separated by `;` (or newlines).
pub fn parse_env(line: &str) -> Result<Vec<Fault>, FaultError> {
    let specs: Vec<&str> = line
        .split([';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    parse_faults(&specs)
}

/// The `GPU_DOCTOR_NVML_FAULTS` value for `faults` ([`parse_env`] reads it back).
pub fn encode_env(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

/// Checks every `@gpuN` against the GPUs of the machine or snapshot.
pub fn check_gpus(faults: &[Fault], gpu_count: u32) -> Result<(), FaultError> {
    for f in faults {
        if let Some(g) = f.gpu
            && g >= gpu_count
        {
            let have = match gpu_count {
                0 => "it has no GPU".to_string(),
                1 => "it has 1 GPU (@gpu0)".to_string(),
                n => format!("it has {n} GPUs (@gpu0..@gpu{})", n - 1),
            };
            return Err(FaultError(format!("fault '{f}': no GPU {g} here: {have}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Fault {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn e(s: &str) -> String {
        s.parse::<Fault>().unwrap_err().0
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(p("xid=79").kind, FaultKind::Xid(79));
        assert_eq!(p("gpu-lost").kind, FaultKind::GpuLost);
        assert_eq!(
            p("ecc-uncorrectable=3").kind,
            FaultKind::EccUncorrectable(3)
        );
        assert_eq!(
            p("row-remap=pending").kind,
            FaultKind::RowRemap(RowRemap::Pending)
        );
        assert_eq!(
            p("row-remap=failed").kind,
            FaultKind::RowRemap(RowRemap::Failed)
        );
        assert_eq!(
            p("recovery-action=drain-and-reset").kind,
            FaultKind::RecoveryAction(RecoveryAction::DrainAndReset)
        );
        assert_eq!(p("pcie-width=8").kind, FaultKind::PcieWidth(8));
        assert_eq!(p("pcie-gen=3").kind, FaultKind::PcieGen(3));
        assert_eq!(p("pcie-replays=2.5/s").kind, FaultKind::PcieReplays(2.5));
        assert_eq!(
            p("nvlink-down=3,1,3").kind,
            FaultKind::NvlinkDown(vec![1, 3])
        );
        assert_eq!(p("throttle=thermal").kind, FaultKind::Throttle(0x60));
        assert_eq!(
            p("throttle=sw-power,hw-slowdown").kind,
            FaultKind::Throttle(0x0c)
        );
        assert_eq!(p("throttle=0x8").kind, FaultKind::Throttle(0x8));
        assert_eq!(p("temperature=95").kind, FaultKind::Temperature(95));
        assert_eq!(p("memory-used=70GiB").kind, FaultKind::MemoryUsed(70 << 30));
    }

    #[test]
    fn gpu_and_delay() {
        let f = p("xid=79@gpu1+2s");
        assert_eq!(f.gpu, Some(1));
        assert_eq!(f.delay, Delay::After(Duration::from_secs(2)));
        assert_eq!(p("gpu-lost+100calls").delay, Delay::AfterCalls(100));
        assert_eq!(p("gpu-lost+1call").delay, Delay::AfterCalls(1));
        assert_eq!(p("pcie-width=8").gpu, None);
        assert_eq!(p(" pcie-gen=4@gpu0 ").gpu, Some(0));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "xid=79@gpu1+2s",
            "gpu-lost+100calls",
            "ecc-uncorrectable=3",
            "row-remap=pending@gpu0",
            "recovery-action=node-reboot",
            "pcie-width=8@gpu0",
            "pcie-gen=3+1500ms",
            "pcie-replays=0.5/s",
            "nvlink-down=1,3",
            "throttle=thermal",
            "throttle=sw-power,hw-slowdown",
            "throttle=0x10000",
            "temperature=95+2m",
            "memory-used=70GiB",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn bad_faults_say_what_is_allowed() {
        let m = e("fire=1");
        assert!(m.contains("unknown kind 'fire'"), "{m}");
        assert!(m.contains("pcie-width=1|2|4|8|12|16|32"), "{m}");
        assert!(e("pcie-width=7").contains("1|2|4|8|12|16|32"));
        assert!(e("pcie-gen=9").contains("1..6"));
        assert!(e("xid").contains("needs a value"));
        assert!(e("xid=0").contains("1..4294967295"));
        assert!(e("gpu-lost=1").contains("takes no value"));
        assert!(e("nvlink-down=18").contains("0..17"));
        assert!(e("throttle=hot").contains("thermal, power"));
        assert!(e("temperature=500").contains("0..200"));
        assert!(e("memory-used=lots").contains("not a size"));
        assert!(e("pcie-replays=10").contains("N/s"));
        assert!(e("row-remap=maybe").contains("pending|failed"));
        assert!(e("xid=79@1").contains("@gpuN"));
        assert!(e("xid=79@gpu64").contains("up to 63"));
        assert!(e("xid=79+soon").contains("+100calls"));
        assert!(e("xid=79+5").contains("needs a unit"));
    }

    #[test]
    fn delays_by_time_and_by_calls() {
        let t = |ms| Duration::from_millis(ms);
        assert!(Delay::Now.is_due(t(0), 1));
        let after = Delay::After(t(2000));
        assert!(!after.is_due(t(1999), 1_000_000));
        assert!(after.is_due(t(2000), 1));
        assert_eq!(after.due_in(t(500)), Some(t(1500)));
        assert_eq!(after.due_in(t(5000)), Some(Duration::ZERO));
        let calls = Delay::AfterCalls(100);
        assert!(
            !calls.is_due(t(10_000), 100),
            "the 100th call is still clean"
        );
        assert!(calls.is_due(t(0), 101));
        assert_eq!(calls.due_in(t(0)), None);
        assert!(Delay::AfterCalls(0).is_due(t(0), 1));
    }

    #[test]
    fn env_lists_and_limits() {
        let faults = parse_env("pcie-width=8@gpu0; xid=79+2s\n gpu-lost@gpu1+100calls;").unwrap();
        assert_eq!(faults.len(), 3);
        assert_eq!(parse_env(&encode_env(&faults)).unwrap(), faults);
        assert_eq!(parse_env("").unwrap(), vec![]);
        let many: Vec<String> = (0..=MAX_FAULTS).map(|_| "gpu-lost".to_string()).collect();
        assert!(parse_faults(&many).unwrap_err().0.contains("at most 64"));
        assert!(parse_env("pcie-width=8;nope").is_err());
    }

    #[test]
    fn gpu_indices_are_checked_against_the_machine() {
        let faults = parse_env("pcie-width=8@gpu1;xid=79").unwrap();
        assert!(check_gpus(&faults, 2).is_ok());
        let m = check_gpus(&faults, 1).unwrap_err().0;
        assert!(m.contains("no GPU 1 here: it has 1 GPU (@gpu0)"), "{m}");
        let m = check_gpus(&parse_env("gpu-lost@gpu4").unwrap(), 4)
            .unwrap_err()
            .0;
        assert!(m.contains("@gpu0..@gpu3"), "{m}");
    }
}
