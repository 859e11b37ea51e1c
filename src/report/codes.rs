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
    // trace ctx
    (
        CONTEXT_NOT_CURRENT,
        "A driver call ran on an OS thread where no CUDA context was current and answered CUDA_ERROR_INVALID_CONTEXT (201): work hopped threads without binding its context.",
    ),
    (
        DEVICE_MIXUP,
        "Memory meant for one context/GPU was allocated while another was current: cuPointerGetAttribute places it elsewhere, and the allocation itself succeeded.",
    ),
    (
        CTX_STACK_UNBALANCED,
        "cuCtxPopCurrent with nothing to pop, or popping a context the thread bound with cuCtxSetCurrent rather than pushed.",
    ),
    (
        PRIMARY_CTX_RELEASED,
        "A primary context was released to a retain count of zero while another user still held memory in it; that user's next calls fail.",
    ),
    (
        PRIMARY_CTX_FLAGS,
        "What cuDevicePrimaryCtxSetFlags answered while the primary context was active, on this driver.",
    ),
    (
        UNDEFINED_CALL_CRASHED,
        "A driver call that NVIDIA documents as undefined (a handle of a destroyed context or stream) killed the process on this driver instead of returning an error.",
    ),
    // bandwidth
    (
        BANDWIDTH_LOW,
        "A measured copy rate is below its threshold: pinned host<->device below the fraction of the PCIe link rate (fail), device-local or peer copies below theirs (warn).",
    ),
    (
        BANDWIDTH_ASYMMETRIC,
        "The two directions of a link differ strongly (H2D vs D2H, or GPU a->b vs b->a).",
    ),
    (
        PAGEABLE_SLOW,
        "Copies from or to pageable host memory run far below pinned ones: pin host buffers.",
    ),
    (
        P2P_SLOWER_THAN_HOST,
        "A peer-to-peer copy with peer access is slower than the same copy staged through host memory.",
    ),
    (
        COPY_MISMATCH,
        "Data copied by a bandwidth path differs from its source.",
    ),
    // inject (fault injection)
    (
        OOM_STICKY,
        "After CUDA_ERROR_OUT_OF_MEMORY the context did not work (allocation, memset, launch or sync failed): OOM behaved as a sticky error.",
    ),
    (
        OOM_EDGE_NOT_REACHED,
        "inject oom stopped filling before the driver answered OUT_OF_MEMORY (error, guard or Ctrl-C).",
    ),
    (
        OOM_ALLOCATABLE_LOW,
        "Much less memory could be allocated than cuMemGetInfo reported free (fragmentation, another process, or a reservation).",
    ),
    (
        OOM_ASYNC_DEFERRED,
        "cuMemAllocAsync did not report OUT_OF_MEMORY at the call: it surfaced at the stream synchronisation.",
    ),
    (
        POOL_TRIM_NO_EFFECT,
        "cuMemPoolTrimTo(0) did not return the default pool's unused memory.",
    ),
    (
        KERNEL_NOT_IN_FLIGHT,
        "The kernel meant to be running when its context was destroyed had already finished: that case was not exercised.",
    ),
    (
        PRIMARY_RESET_INVALIDATES,
        "cuDevicePrimaryCtxReset (cudaDeviceReset) destroyed the allocations of another holder of the primary context.",
    ),
    (
        RECOVERY_FAILED,
        "After the fault, a fresh context (or a fresh process) could not allocate, run a kernel and read its result.",
    ),
    (
        STALE_READS_WITHOUT_EVENT,
        "A copy on one stream read a buffer a kernel on another stream was writing, with no event between them: it read stale data.",
    ),
    (
        STALE_READS_WITH_EVENT,
        "A copy ordered after a kernel with cuEventRecord + cuStreamWaitEvent still read stale data.",
    ),
    (
        DEFAULT_STREAM_SEMANTICS,
        "A blocking stream did not wait for the legacy default stream, or waited for the per-thread one.",
    ),
    (
        ERROR_NOT_STICKY,
        "A call in a context that had hit a sticky error (700/719) succeeded.",
    ),
    (
        XID_REPORTED,
        "NVML reported XID events while the fault was provoked (expected for illegal-address and trap).",
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
pub const FOREIGN_PROCESSES: &str = "FOREIGN_PROCESSES";
pub const STEP_MISMATCH: &str = "STEP_MISMATCH";
pub const MEMORY_NOT_RETURNED: &str = "MEMORY_NOT_RETURNED";
pub const CHILD_CRASHED: &str = "CHILD_CRASHED";
pub const CHILD_TIMEOUT: &str = "CHILD_TIMEOUT";
pub const CHILD_PROTOCOL: &str = "CHILD_PROTOCOL";
/// What the parent of an isolated child concludes about the child itself (not its data).
pub const CHILD_FAILURES: [&str; 3] = [CHILD_CRASHED, CHILD_TIMEOUT, CHILD_PROTOCOL];
pub const INTERRUPTED: &str = "INTERRUPTED";
pub const THRESHOLD: &str = "THRESHOLD";
pub const CONTEXT_NOT_CURRENT: &str = "CONTEXT_NOT_CURRENT";
pub const DEVICE_MIXUP: &str = "DEVICE_MIXUP";
pub const CTX_STACK_UNBALANCED: &str = "CTX_STACK_UNBALANCED";
pub const PRIMARY_CTX_RELEASED: &str = "PRIMARY_CTX_RELEASED";
pub const PRIMARY_CTX_FLAGS: &str = "PRIMARY_CTX_FLAGS";
pub const BANDWIDTH_LOW: &str = "BANDWIDTH_LOW";
pub const BANDWIDTH_ASYMMETRIC: &str = "BANDWIDTH_ASYMMETRIC";
pub const PAGEABLE_SLOW: &str = "PAGEABLE_SLOW";
pub const P2P_SLOWER_THAN_HOST: &str = "P2P_SLOWER_THAN_HOST";
pub const COPY_MISMATCH: &str = "COPY_MISMATCH";
pub const OOM_STICKY: &str = "OOM_STICKY";
pub const OOM_EDGE_NOT_REACHED: &str = "OOM_EDGE_NOT_REACHED";
pub const OOM_ALLOCATABLE_LOW: &str = "OOM_ALLOCATABLE_LOW";
pub const OOM_ASYNC_DEFERRED: &str = "OOM_ASYNC_DEFERRED";
pub const POOL_TRIM_NO_EFFECT: &str = "POOL_TRIM_NO_EFFECT";
pub const KERNEL_NOT_IN_FLIGHT: &str = "KERNEL_NOT_IN_FLIGHT";
pub const PRIMARY_RESET_INVALIDATES: &str = "PRIMARY_RESET_INVALIDATES";
pub const RECOVERY_FAILED: &str = "RECOVERY_FAILED";
pub const STALE_READS_WITHOUT_EVENT: &str = "STALE_READS_WITHOUT_EVENT";
pub const STALE_READS_WITH_EVENT: &str = "STALE_READS_WITH_EVENT";
pub const DEFAULT_STREAM_SEMANTICS: &str = "DEFAULT_STREAM_SEMANTICS";
pub const ERROR_NOT_STICKY: &str = "ERROR_NOT_STICKY";
pub const XID_REPORTED: &str = "XID_REPORTED";
pub const UNDEFINED_CALL_CRASHED: &str = "UNDEFINED_CALL_CRASHED";
pub const SCENARIO_ERROR: &str = "SCENARIO_ERROR";
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
