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
        "A suite threshold on a metric or duration was not met.",
    ),
    // program mode (inject oom/error -- COMMAND, trace ctx -- COMMAND): docs/shim.md
    (
        PROGRAM_SURVIVED,
        "The program under test exited 0 (or was still running at --survive-after); fail only with --expect fail.",
    ),
    (
        PROGRAM_CRASHED,
        "The program under test exited non-zero or died of a signal; fail unless --expect fail.",
    ),
    (
        PROGRAM_HUNG,
        "The program under test was still running at --timeout and was killed.",
    ),
    (
        SHIM_NOT_LOADED,
        "The LD_PRELOAD shim never loaded into the program (static or setuid binary, cleared environment).",
    ),
    (
        SHIM_CONFIG_ERROR,
        "The shim rejected the configuration gpu-doctor passed (a bug: please report it).",
    ),
    (
        SHIM_ENTRY_POINT_UNWRAPPED,
        "cuGetProcAddress answered an entry point the shim could not match to a known ABI; it ran unwrapped.",
    ),
    (
        CUDA_NOT_INTERCEPTED,
        "The program never reached the CUDA driver through an intercepted entry point.",
    ),
    (
        FAULT_INJECTED,
        "The configured fault fired: the calls, sizes, times and threads are in data.injected.",
    ),
    (
        FAULT_NOT_INJECTED,
        "The configured fault never fired, so the verdict says nothing about fault handling.",
    ),
    (
        DRIVER_CALLS_FAILED,
        "Intercepted driver calls failed on their own (not injected): listed in data.failures.",
    ),
    (
        CTX_UNBOUND_CALL,
        "A driver call failed with CUDA_ERROR_INVALID_CONTEXT on a thread with no current context.",
    ),
    (
        CTX_DESTROYED_IN_USE,
        "A driver call failed with CUDA_ERROR_CONTEXT_IS_DESTROYED: a context was destroyed while a thread still used it.",
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
pub const PROGRAM_SURVIVED: &str = "PROGRAM_SURVIVED";
pub const PROGRAM_CRASHED: &str = "PROGRAM_CRASHED";
pub const PROGRAM_HUNG: &str = "PROGRAM_HUNG";
pub const SHIM_NOT_LOADED: &str = "SHIM_NOT_LOADED";
pub const SHIM_CONFIG_ERROR: &str = "SHIM_CONFIG_ERROR";
pub const SHIM_ENTRY_POINT_UNWRAPPED: &str = "SHIM_ENTRY_POINT_UNWRAPPED";
pub const CUDA_NOT_INTERCEPTED: &str = "CUDA_NOT_INTERCEPTED";
pub const FAULT_INJECTED: &str = "FAULT_INJECTED";
pub const FAULT_NOT_INJECTED: &str = "FAULT_NOT_INJECTED";
pub const DRIVER_CALLS_FAILED: &str = "DRIVER_CALLS_FAILED";
pub const CTX_UNBOUND_CALL: &str = "CTX_UNBOUND_CALL";
pub const CTX_DESTROYED_IN_USE: &str = "CTX_DESTROYED_IN_USE";
