//! Finding codes: the stable identifiers CI jobs match on. Each code is declared once, below,
//! with its meaning: the macro makes the constant and the [`ALL`] table that `gpu-doctor`'s docs
//! test (docs/report.md lists every code) and `--help` read.

macro_rules! codes {
    ($($name:ident => $meaning:literal,)*) => {
        $(
            #[doc = $meaning]
            pub const $name: &str = stringify!($name);
        )*
        /// (code, meaning) for every finding code gpu-doctor emits.
        pub const ALL: &[(&str, &str)] = &[$(($name, $meaning),)*];
    };
}

codes! {
    // info
    GPU_LOST => "NVML answers GPU_IS_LOST for the GPU: it has fallen off the bus (XID 79) and nothing on it works until the node is rebooted.",
    PERSISTENCE_OFF => "Persistence mode is off: the driver tears down state when the last client exits, so every CUDA start-up pays for initialisation.",
    ROW_REMAP_PENDING => "A row remap is pending: the GPU must be reset (or the node rebooted) to apply it.",
    ROW_REMAP_FAILED => "A row remap failed: the memory is degraded; replace or RMA the GPU.",
    ECC_UNCORRECTABLE => "Uncorrectable ECC errors were counted (volatile: since the last driver load).",
    ECC_DISABLED => "ECC is disabled on a GPU that supports it.",
    RETIRED_PAGES_PENDING => "Pages are pending retirement: reset the GPU to retire them.",
    RECOVERY_ACTION => "The driver recommends a recovery action other than none (NVML GPU_RECOVERY_ACTION).",
    THERMAL_THROTTLE => "Clocks are held down by a thermal or power-brake event reason.",
    PCIE_WIDTH_DEGRADED => "PCIe link trained below its maximum width (e.g. x8 on an x16 link).",
    PCIE_GEN_BELOW_MAX => "PCIe link runs below its maximum generation; at idle this is normal power saving.",
    PCIE_REPLAYS => "PCIe replay counter is non-zero: the link retransmits packets (signal integrity).",
    NVLINK_INACTIVE => "An NVLink is inactive while other links of that GPU are active.",
    P2P_UNSUPPORTED => "Peer-to-peer access is not supported between two GPUs that share a PCIe switch or NVLink.",
    NUMA_AFFINITY_MISSING => "The GPU reports no NUMA node / CPU affinity on a multi-node host.",
    FOREIGN_PROCESSES => "Other processes hold GPU memory; memory figures include their use.",
    STEP_MISMATCH => "A CUDA driver call answered differently than the scenario expected.",
    MEMORY_NOT_RETURNED => "Device memory in use did not return to its baseline after cleanup.",
    MEMORY_CHECK_INCONCLUSIVE => "Another process allocated or freed device memory on the GPU while the scenario ran, so a memory check (memory back to its baseline, the OOM edge) could not be judged; the finding names the processes (pid, how much, when).",
    CHILD_CRASHED => "The isolated child process died (signal or abnormal exit) before finishing its report.",
    CHILD_TIMEOUT => "The isolated child process did not finish in time and was killed.",
    CHILD_PROTOCOL => "The isolated child process printed output that is not the event protocol.",
    INTERRUPTED => "The run was interrupted (Ctrl-C); the report holds what was gathered until then.",
    THRESHOLD => "A suite threshold on a metric, duration or status was not met, or a required scenario was skipped.",
    SCENARIO_ERROR => "A scenario of a suite (or `inject all`) stopped with an internal error; the other scenarios still ran.",
    // watch, exporter (docs/watch.md, docs/exporter.md)
    GPU_UNRESPONSIVE => "NVML did not answer a read of the GPU in time (or answered an error other than GPU_IS_LOST); the other GPUs are still read.",
    XID_APP_ERROR => "An XID that NVIDIA's catalog files as an application's fault (13, 31, 43, 45, 68, 94): restart the application; the GPU needs nothing.",
    XID_NEEDS_RESET => "An XID after which NVIDIA's catalog says to drain and reset the GPU (46, 48, 62, 63, 64, 95, 109, 119, 120, 140).",
    XID_NEEDS_REBOOT => "An XID after which NVIDIA's catalog says to drain and reboot the node (79: fallen off the bus).",
    XID_NVLINK_ERROR => "XID 74, an NVLink error: check the links and the fabric manager, then reset the GPU.",
    XID_OTHER => "An XID to note rather than act on at once (61, 92, 154), or one not in gpu-doctor's catalog: look it up in NVIDIA's.",
    XID_EVENTS_UNAVAILABLE => "NVML could not register for XID events on the GPU (or its event wait failed): XIDs on it are not seen.",
    // health (Slurm, Kubernetes, NHC): docs/health.md
    DRIVER_NOT_LOADED => "The NVIDIA driver did not load (libnvidia-ml missing, or nvmlInit failed) on a node that `health --expect-gpus N` says has GPUs.",
    GPU_COUNT_MISMATCH => "NVML sees a different number of GPUs than `health --expect-gpus N` expects: a GPU is missing or fell off the bus before the driver loaded.",
    GPU_CHECK_FAILED => "health's quick GPU check (a context, a small allocation, a kernel, a sync, the result read back, a free) failed on a GPU: the call and the driver's answer are in the message.",
    GPU_CHECK_TIMEOUT => "health's quick GPU check did not finish on a GPU within --gpu-timeout: the GPU (or its driver) hangs.",
    GPU_CHECK_UNAVAILABLE => "health's quick GPU check could not run here (no CUDA driver, a replayed machine, a GPU hidden from CUDA): a warning, or a failure with --on-error drain; info for a GPU left alone because a job uses it.",
    HEALTH_CANNOT_RUN => "gpu-doctor health could not run at all (no NVIDIA driver where no GPU is expected, an unreadable device list); with --on-error drain that is a failure under this code.",
    // trace ctx
    CONTEXT_NOT_CURRENT => "A driver call ran on an OS thread where no CUDA context was current and answered CUDA_ERROR_INVALID_CONTEXT (201): work hopped threads without binding its context.",
    DEVICE_MIXUP => "Memory meant for one context/GPU was allocated while another was current: cuPointerGetAttribute places it elsewhere, and the allocation itself succeeded.",
    CTX_STACK_UNBALANCED => "cuCtxPopCurrent with nothing to pop, or popping a context the thread bound with cuCtxSetCurrent rather than pushed.",
    PRIMARY_CTX_RELEASED => "A primary context was released to a retain count of zero while another user still held memory in it; that user's next calls fail.",
    PRIMARY_CTX_FLAGS => "What cuDevicePrimaryCtxSetFlags answered while the primary context was active, on this driver.",
    UNDEFINED_CALL_CRASHED => "A driver call that NVIDIA documents as undefined (a handle of a destroyed context or stream) killed the process on this driver instead of returning an error.",
    // bandwidth
    BANDWIDTH_LOW => "A measured copy rate is below its threshold: pinned host<->device below the fraction of the PCIe link rate (fail), device-local or peer copies below theirs (warn).",
    BANDWIDTH_ASYMMETRIC => "The two directions of a link differ strongly (H2D vs D2H, or GPU a->b vs b->a).",
    PAGEABLE_SLOW => "Copies from or to pageable host memory run far below pinned ones: pin host buffers.",
    P2P_SLOWER_THAN_HOST => "A peer-to-peer copy with peer access is slower than the same copy staged through host memory.",
    COPY_MISMATCH => "Data copied by a bandwidth path differs from its source.",
    // inject (fault injection)
    OOM_STICKY => "After CUDA_ERROR_OUT_OF_MEMORY the context did not work (allocation, memset, launch or sync failed): OOM behaved as a sticky error.",
    OOM_EDGE_NOT_REACHED => "inject oom stopped filling before the driver answered OUT_OF_MEMORY (error, guard or Ctrl-C).",
    OOM_ALLOCATABLE_LOW => "Much less memory could be allocated than cuMemGetInfo reported free (fragmentation, another process, or a reservation).",
    OOM_ASYNC_DEFERRED => "cuMemAllocAsync did not report OUT_OF_MEMORY at the call: it surfaced at the stream synchronisation.",
    POOL_TRIM_NO_EFFECT => "cuMemPoolTrimTo(0) did not return the default pool's unused memory.",
    FRAGMENTATION => "inject fragmentation: the largest single block each allocator gave after the churn against the memory it had available, the verdict (which fragments) and what fixes it.",
    FRAGMENTATION_LARGEST_BLOCK_LOW => "After the churn, an allocator's largest single block was well below its free memory: it fragments under the pattern (warn for cuMemAlloc; info for a pool that keeps freed memory, whose remedy is trimming).",
    FRAGMENTATION_REMEDY_SHORT => "A remedy of fragmentation (the trimmed pool, the virtual memory API) did not reach the memory available as one block.",
    KERNEL_NOT_IN_FLIGHT => "The kernel meant to be running when its context was destroyed had already finished: that case was not exercised.",
    PRIMARY_RESET_INVALIDATES => "cuDevicePrimaryCtxReset (cudaDeviceReset) destroyed the allocations of another holder of the primary context.",
    RECOVERY_FAILED => "After the fault, a fresh context (or a fresh process) could not allocate, run a kernel and read its result.",
    STALE_READS_WITHOUT_EVENT => "A copy on one stream read a buffer a kernel on another stream was writing, with no event between them: it read stale data.",
    STALE_READS_WITH_EVENT => "A copy ordered after a kernel with cuEventRecord + cuStreamWaitEvent still read stale data.",
    DEFAULT_STREAM_SEMANTICS => "A blocking stream did not wait for the legacy default stream, or waited for the per-thread one.",
    ERROR_NOT_STICKY => "A call in a context that had hit a sticky error (700/719) succeeded.",
    XID_REPORTED => "NVML reported XID events while the fault was provoked (expected for illegal-address and trap).",
    // program mode (inject oom/error -- COMMAND, trace ctx -- COMMAND): docs/shim.md
    PROGRAM_SURVIVED => "The program under test exited 0 (or was still running at --survive-after); fail only with --expect fail.",
    PROGRAM_CRASHED => "The program under test exited non-zero or died of a signal; fail unless --expect fail.",
    PROGRAM_HUNG => "The program under test was still running at --timeout and was killed.",
    SHIM_NOT_LOADED => "The LD_PRELOAD shim never loaded into the program (static or setuid binary, cleared environment).",
    SHIM_CONFIG_ERROR => "The shim rejected the configuration gpu-doctor passed (a bug: please report it).",
    SHIM_ENTRY_POINT_UNWRAPPED => "cuGetProcAddress answered an entry point the shim could not match to a known ABI; it ran unwrapped.",
    CUDA_NOT_INTERCEPTED => "The program never reached the CUDA driver through an intercepted entry point.",
    FAULT_INJECTED => "The configured fault fired: the calls, sizes, times and threads are in data.injected.",
    FAULT_NOT_INJECTED => "The configured fault never fired, so the verdict says nothing about fault handling.",
    DRIVER_CALLS_FAILED => "Intercepted driver calls failed on their own (not injected): listed in data.failures.",
    CTX_UNBOUND_CALL => "A driver call failed with CUDA_ERROR_INVALID_CONTEXT on a thread with no current context.",
    NVML_NOT_USED => "The program never initialised NVML through gpu-doctor's NVML library, so no NVML fault reached it (docs/nvml.md, Known limits).",
    REPLAY_QUERY_MISSING => "A replayed snapshot has no answer for a query the program made; it was answered NVML_ERROR_NOT_SUPPORTED, as a driver does for an unsupported query.",
    CTX_DESTROYED_IN_USE => "A driver call failed with CUDA_ERROR_CONTEXT_IS_DESTROYED: a context was destroyed while a thread still used it.",
    // leak-check: docs/memory.md
    LEAK_AT_EXIT => "Device memory the program allocated was still allocated when it ended (freed only by process exit), listed by call site; info when gpu-doctor stopped the program.",
    LEAK_AT_CONTEXT_DESTROY => "Device memory was freed only when its context was destroyed (cuCtxDestroy, cudaDeviceReset): what compute-sanitizer --leak-check reports.",
    REFERENCED_AT_EXIT => "Memory of a framework's caching allocator still referenced by its objects at exit, after its cache was released: not by itself a leak.",
    POOL_CACHED_AT_EXIT => "A framework's caching allocator held memory it was not using at exit (released by gpu-doctor's hook, or kept by an allocator that cannot release it): cached, not leaked.",
    DEVICE_MEMORY_GROWING => "Device memory held grows steadily to the end of the run: a leak, with its rate and when it would exhaust the free memory.",
    LEAK_OVER_LIMIT => "More device memory was left allocated than --fail-over allows.",
    LEAK_CHECK_CLEAN => "Every device allocation was freed by the program and its memory did not grow.",
}

/// What the parent of an isolated child concludes about the child itself (not its data).
pub const CHILD_FAILURES: [&str; 3] = [CHILD_CRASHED, CHILD_TIMEOUT, CHILD_PROTOCOL];
