//! Finding codes: the stable identifiers CI jobs match on. Every code a scenario emits is
//! declared here with its meaning; a test checks that docs/report.md lists each one.

/// (code, meaning) for every finding code gpu-doctor emits.
pub const ALL: &[(&str, &str)] = &[
    // info
    (
        PERSISTENCE_OFF,
        "Persistence mode is off: the driver tears down state when the last client exits, so every CUDA start-up pays for initialisation.",
    ),
    (
        ROW_REMAP_PENDING,
        "A row remap is pending: the GPU must be reset (or the node rebooted) to apply it.",
    ),
    (
        ROW_REMAP_FAILED,
        "A row remap failed: the memory is degraded; replace or RMA the GPU.",
    ),
    (
        ECC_UNCORRECTABLE,
        "Uncorrectable ECC errors were counted (volatile: since the last driver load).",
    ),
    (ECC_DISABLED, "ECC is disabled on a GPU that supports it."),
    (
        RETIRED_PAGES_PENDING,
        "Pages are pending retirement: reset the GPU to retire them.",
    ),
    (
        RECOVERY_ACTION,
        "The driver recommends a recovery action other than none (NVML GPU_RECOVERY_ACTION).",
    ),
    (
        THERMAL_THROTTLE,
        "Clocks are held down by a thermal or power-brake event reason.",
    ),
    (
        PCIE_WIDTH_DEGRADED,
        "PCIe link trained below its maximum width (e.g. x8 on an x16 link).",
    ),
    (
        PCIE_GEN_BELOW_MAX,
        "PCIe link runs below its maximum generation; at idle this is normal power saving.",
    ),
    (
        PCIE_REPLAYS,
        "PCIe replay counter is non-zero: the link retransmits packets (signal integrity).",
    ),
    (
        NVLINK_INACTIVE,
        "An NVLink is inactive while other links of that GPU are active.",
    ),
    (
        P2P_UNSUPPORTED,
        "Peer-to-peer access is not supported between two GPUs that share a PCIe switch or NVLink.",
    ),
    (
        NUMA_AFFINITY_MISSING,
        "The GPU reports no NUMA node / CPU affinity on a multi-node host.",
    ),
    (NO_GPU, "No NVIDIA GPU is visible to NVML."),
    (
        QUERY_UNSUPPORTED,
        "A field could not be read on this GPU or driver (not supported or no permission).",
    ),
    (
        FOREIGN_PROCESSES,
        "Other processes hold GPU memory; memory figures include their use.",
    ),
    (
        STEP_MISMATCH,
        "A CUDA driver call answered differently than the scenario expected.",
    ),
    (
        MEMORY_NOT_RETURNED,
        "Device memory in use did not return to its baseline after cleanup.",
    ),
    (
        CHILD_CRASHED,
        "The isolated child process died (signal or abnormal exit) before finishing its report.",
    ),
    (
        CHILD_TIMEOUT,
        "The isolated child process did not finish in time and was killed.",
    ),
    (
        CHILD_PROTOCOL,
        "The isolated child process printed output that is not the event protocol.",
    ),
    (
        INTERRUPTED,
        "The run was interrupted (Ctrl-C); the report holds what was gathered until then.",
    ),
    (
        THRESHOLD,
        "A suite threshold on a metric, duration or status was not met, or a required scenario was skipped.",
    ),
    (
        SCENARIO_ERROR,
        "A scenario of a suite (or `inject all`) stopped with an internal error; the other scenarios still ran.",
    ),
];

pub const PERSISTENCE_OFF: &str = "PERSISTENCE_OFF";
pub const ROW_REMAP_PENDING: &str = "ROW_REMAP_PENDING";
pub const ROW_REMAP_FAILED: &str = "ROW_REMAP_FAILED";
pub const ECC_UNCORRECTABLE: &str = "ECC_UNCORRECTABLE";
pub const ECC_DISABLED: &str = "ECC_DISABLED";
pub const RETIRED_PAGES_PENDING: &str = "RETIRED_PAGES_PENDING";
pub const RECOVERY_ACTION: &str = "RECOVERY_ACTION";
pub const THERMAL_THROTTLE: &str = "THERMAL_THROTTLE";
pub const PCIE_WIDTH_DEGRADED: &str = "PCIE_WIDTH_DEGRADED";
pub const PCIE_GEN_BELOW_MAX: &str = "PCIE_GEN_BELOW_MAX";
pub const PCIE_REPLAYS: &str = "PCIE_REPLAYS";
pub const NVLINK_INACTIVE: &str = "NVLINK_INACTIVE";
pub const P2P_UNSUPPORTED: &str = "P2P_UNSUPPORTED";
pub const NUMA_AFFINITY_MISSING: &str = "NUMA_AFFINITY_MISSING";
pub const NO_GPU: &str = "NO_GPU";
pub const QUERY_UNSUPPORTED: &str = "QUERY_UNSUPPORTED";
pub const FOREIGN_PROCESSES: &str = "FOREIGN_PROCESSES";
pub const STEP_MISMATCH: &str = "STEP_MISMATCH";
pub const MEMORY_NOT_RETURNED: &str = "MEMORY_NOT_RETURNED";
pub const CHILD_CRASHED: &str = "CHILD_CRASHED";
pub const CHILD_TIMEOUT: &str = "CHILD_TIMEOUT";
pub const CHILD_PROTOCOL: &str = "CHILD_PROTOCOL";
pub const INTERRUPTED: &str = "INTERRUPTED";
pub const THRESHOLD: &str = "THRESHOLD";
pub const SCENARIO_ERROR: &str = "SCENARIO_ERROR";
