//! NVML: the management library. Reads facts; never changes a GPU setting.

use std::ffi::{OsStr, c_uint};

use anyhow::Result;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, P2pCapabilitiesIndex, P2pStatus, PerformanceState,
    RetirementCause, TemperatureSensor, TopologyLevel,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

use crate::error::{input, unavailable};
use crate::facts::live::{LiveGpu, NvLinkErrors};
use crate::facts::{
    GpuHealth, GpuProcess, GpuTopo, NvLinkFacts, P2pFacts, PairFacts, PcieFacts, TopoFacts,
};
use crate::probe::loader;
use crate::report::{DeviceInfo, Host};

/// NVML field id of the driver's recommended recovery action (nvml.h NVML_FI_DEV_GET_GPU_RECOVERY_ACTION).
const FI_GPU_RECOVERY_ACTION: u32 = 230;

pub struct NvmlProbe {
    nvml: Nvml,
    raw: RawCalls,
}

type RemappedRowsFn =
    unsafe extern "C" fn(Handle, *mut c_uint, *mut c_uint, *mut c_uint, *mut c_uint) -> i32;
type GpuMaxPcieGenFn = unsafe extern "C" fn(Handle, *mut c_uint) -> i32;
type RemoteTypeFn = unsafe extern "C" fn(Handle, c_uint, *mut c_uint) -> i32;
type Handle = nvml_wrapper_sys::bindings::nvmlDevice_t;

/// The few calls nvml-wrapper does not wrap, or wraps wrongly (its
/// NvLink::remote_device_type discards the driver's answer), looked up once, at open, in a
/// second handle on the same library (None: the library lacks the symbol).
struct RawCalls {
    /// `nvmlDeviceGetRemappedRows`.
    remapped_rows: Option<RemappedRowsFn>,
    /// `nvmlDeviceGetGpuMaxPcieLinkGeneration`.
    gpu_max_pcie_gen: Option<GpuMaxPcieGenFn>,
    /// `nvmlDeviceGetNvLinkRemoteDeviceType`.
    remote_type: Option<RemoteTypeFn>,
    /// Keeps the library loaded as long as the pointers above may be called.
    _lib: Option<libloading::Library>,
}

impl RawCalls {
    fn load(path: &str) -> RawCalls {
        // SAFETY: loading the library NVML already loaded; only reference-counts it.
        let lib = unsafe { libloading::Library::new(path) }.ok();
        let lib_ref = lib.as_ref();
        // SAFETY: RemappedRowsFn is nvml.h's signature of the symbol; `_lib` keeps it loaded.
        let remapped_rows = unsafe { symbol(lib_ref, b"nvmlDeviceGetRemappedRows\0") };
        // SAFETY: GpuMaxPcieGenFn is nvml.h's signature of the symbol; `_lib` keeps it loaded.
        let gpu_max_pcie_gen =
            unsafe { symbol(lib_ref, b"nvmlDeviceGetGpuMaxPcieLinkGeneration\0") };
        // SAFETY: RemoteTypeFn is nvml.h's signature of the symbol; `_lib` keeps it loaded.
        let remote_type = unsafe { symbol(lib_ref, b"nvmlDeviceGetNvLinkRemoteDeviceType\0") };
        RawCalls {
            remapped_rows,
            gpu_max_pcie_gen,
            remote_type,
            _lib: lib,
        }
    }
}

/// The function `name` (NUL-terminated) of `lib`.
///
/// # Safety
/// `T` must be the symbol's C signature, and the pointer must not be called once `lib` is
/// unloaded.
unsafe fn symbol<T: Copy>(lib: Option<&libloading::Library>, name: &[u8]) -> Option<T> {
    // SAFETY: the caller vouches for T and for the library's lifetime.
    unsafe { lib?.get::<T>(name) }.ok().map(|f| *f)
}

impl NvmlProbe {
    /// Loads libnvidia-ml and initialises it. Missing library or driver → exit 3 with one line.
    pub fn open() -> Result<Self> {
        let path = loader::nvml_library();
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(&path))
            .init()
            .map_err(|e| match e {
                NvmlError::LibloadingError(_) => unavailable(loader::missing_nvml_message(&path)),
                NvmlError::DriverNotLoaded => unavailable(
                    "NVIDIA kernel driver is not loaded (libnvidia-ml found, but nvmlInit says the driver is not running): load the nvidia module or check `dmesg | grep -i nvrm`",
                ),
                NvmlError::NoPermission => unavailable(
                    "no permission to talk to the NVIDIA driver (nvmlInit: NO_PERMISSION): check /dev/nvidia* permissions",
                ),
                other => unavailable(format!("NVML could not start ({path}): {other}")),
            })?;
        Ok(NvmlProbe {
            nvml,
            raw: RawCalls::load(&path),
        })
    }

    pub fn host(&self) -> Host {
        let cuda = self.nvml.sys_cuda_driver_version().ok().map(|v| {
            format!(
                "{}.{}",
                nvml_wrapper::cuda_driver_version_major(v),
                nvml_wrapper::cuda_driver_version_minor(v)
            )
        });
        Host {
            hostname: host_name(),
            kernel: kernel_release(),
            driver_version: self.nvml.sys_driver_version().ok(),
            cuda_driver_version: cuda,
            nvml_version: self.nvml.sys_nvml_version().ok(),
        }
    }

    pub fn device_count(&self) -> Result<u32> {
        self.nvml
            .device_count()
            .map_err(|e| unavailable(format!("NVML cannot count GPUs: {e}")))
    }

    /// Resolves `--device` selectors (NVML indices or UUIDs) to NVML indices, in the order given.
    /// Empty selects every GPU. No GPU, or a selector that names none → exit 3.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<u32>> {
        let count = self.device_count()?;
        if count == 0 {
            return Err(unavailable(
                "NVML sees no NVIDIA GPU on this machine (driver loaded, 0 devices): check `nvidia-smi -L` and the container's device mounts",
            ));
        }
        if selectors.is_empty() {
            return Ok((0..count).collect());
        }
        let mut out = Vec::new();
        for sel in selectors {
            let idx = if let Ok(i) = sel.parse::<u32>() {
                if i >= count {
                    return Err(unavailable(format!(
                        "device {i} not found: this machine has {count} GPU(s), indices 0..={} (NVML order; see `gpu-doctor info`)",
                        count - 1
                    )));
                }
                i
            } else if sel.starts_with("GPU-") || sel.starts_with("MIG-") {
                let dev = self.nvml.device_by_uuid(sel.as_str()).map_err(|_| {
                    unavailable(format!(
                        "device {sel} not found: no GPU with that UUID (list them with `gpu-doctor info`)"
                    ))
                })?;
                dev.index()
                    .map_err(|e| unavailable(format!("device {sel}: {e}")))?
            } else {
                return Err(input(format!(
                    "--device: '{sel}' is neither an index nor a UUID (GPU-…)"
                )));
            };
            if !out.contains(&idx) {
                out.push(idx);
            }
        }
        Ok(out)
    }

    fn device(&self, index: u32) -> Result<Device<'_>> {
        self.nvml
            .device_by_index(index)
            .map_err(|e| unavailable(format!("device {index}: NVML cannot open it: {e}")))
    }

    /// The GPU, or why NVML says it is lost (GPU_IS_LOST: fallen off the bus). Any other error
    /// stops the run, as [`Self::device`] does.
    fn device_or_lost(&self, index: u32) -> Result<std::result::Result<Device<'_>, String>> {
        match self.nvml.device_by_index(index) {
            Ok(d) => Ok(Ok(d)),
            Err(NvmlError::GpuLost) => Ok(Err(
                "NVML_ERROR_GPU_IS_LOST: the GPU has fallen off the bus".into(),
            )),
            Err(e) => Err(unavailable(format!(
                "device {index}: NVML cannot open it: {e}"
            ))),
        }
    }

    /// What is known of a lost GPU: its index.
    fn lost_info(index: u32) -> DeviceInfo {
        DeviceInfo {
            index,
            name: "(lost: fallen off the bus)".into(),
            ..Default::default()
        }
    }

    pub fn device_info(&self, index: u32) -> Result<DeviceInfo> {
        Ok(device_info_of(index, &self.device(index)?))
    }

    /// Device memory in use as NVML counts it (all processes).
    pub fn memory_used(&self, index: u32) -> Option<u64> {
        self.device(index).ok()?.memory_info().ok().map(|m| m.used)
    }

    /// Device memory free as NVML counts it (all processes).
    pub fn memory_free(&self, index: u32) -> Option<u64> {
        self.device(index).ok()?.memory_info().ok().map(|m| m.free)
    }

    /// Memory bus width in bits and maximum memory clock in MHz (for the memory rate).
    pub fn memory_bus(&self, index: u32) -> (Option<u32>, Option<u32>) {
        let Ok(d) = self.device(index) else {
            return (None, None);
        };
        (
            d.memory_bus_width().ok(),
            d.max_clock_info(Clock::Memory).ok(),
        )
    }

    /// PCIe generation and width the link runs at right now (it trains down when idle).
    pub fn pcie_link_now(&self, index: u32) -> (Option<u32>, Option<u32>) {
        let Ok(d) = self.device(index) else {
            return (None, None);
        };
        (
            d.current_pcie_link_gen().ok(),
            d.current_pcie_link_width().ok(),
        )
    }

    /// Processes holding memory on this GPU (none where NVML cannot say).
    pub fn processes(&self, index: u32) -> Vec<GpuProcess> {
        self.processes_or_error(index).unwrap_or_default()
    }

    /// Processes holding memory on this GPU, or why NVML could not list them (a watch must not
    /// read a failed call as every process having left).
    pub fn processes_or_error(&self, index: u32) -> Result<Vec<GpuProcess>, String> {
        processes_of(&self.device(index).map_err(|e| e.to_string())?)
    }

    /// NVML's used memory and the processes holding memory on this GPU, through one handle
    /// (the memory watch's sample). The process list is asked for twice before it counts as
    /// failed: it can grow between NVML's count and its fill (a neighbour starting up).
    pub fn used_and_processes(&self, index: u32) -> Result<(Option<u64>, Vec<GpuProcess>), String> {
        let d = self.device(index).map_err(|e| e.to_string())?;
        let processes = processes_of(&d).or_else(|_| processes_of(&d))?;
        Ok((d.memory_info().ok().map(|m| m.used), processes))
    }

    /// Health facts of one GPU and its identity, from one set of NVML calls. A lost GPU is a
    /// fact (`lost`), not an error: the other GPUs are still read.
    pub fn health(&self, index: u32) -> Result<(DeviceInfo, GpuHealth)> {
        Ok(match self.device_or_lost(index)? {
            Ok(d) => self.health_of(index, &d),
            Err(why) => Self::lost_health(index, why),
        })
    }

    /// What is known of a lost GPU's health: its index and why it is lost.
    fn lost_health(index: u32, why: String) -> (DeviceInfo, GpuHealth) {
        let info = Self::lost_info(index);
        let h = GpuHealth {
            index,
            name: info.name.clone(),
            lost: Some(why),
            ..Default::default()
        };
        (info, h)
    }

    /// [`Self::health`] of an open GPU.
    fn health_of(&self, index: u32, d: &Device) -> (DeviceInfo, GpuHealth) {
        let mut seen = Unsupported::default();
        let mem = seen.get("memory", d.memory_info());
        let info = identity(index, d, mem.as_ref().map(|m| m.total));
        let ecc = seen.get("ecc_mode", d.is_ecc_enabled());
        let mig = seen.get("mig_mode", d.mig_mode());
        let reasons = seen.get("clock_event_reasons", d.current_throttle_reasons());
        let pstate = seen.get("pstate", d.performance_state());
        let mut h = GpuHealth {
            index,
            uuid: info.uuid.clone(),
            name: info.name.clone(),
            pci_bus_id: info.pci_bus_id.clone(),
            memory_total_bytes: mem.as_ref().map(|m| m.total),
            memory_used_bytes: mem.as_ref().map(|m| m.used),
            memory_free_bytes: mem.as_ref().map(|m| m.free),
            compute_capability: info.compute_capability.clone(),
            persistence_mode: seen.get("persistence_mode", d.is_in_persistent_mode()),
            ecc_mode_current: ecc.as_ref().map(|e| e.currently_enabled),
            ecc_mode_pending: ecc.as_ref().map(|e| e.pending_enabled),
            mig_mode_current: mig.as_ref().map(|m| m.current != 0),
            mig_mode_pending: mig.as_ref().map(|m| m.pending != 0),
            compute_mode: seen
                .get("compute_mode", d.compute_mode())
                .map(|m| format!("{m:?}")),
            temperature_c: seen.get("temperature", d.temperature(TemperatureSensor::Gpu)),
            power_draw_w: seen
                .get("power_draw", d.power_usage())
                .map(|mw| mw as f64 / 1000.0),
            power_limit_w: seen
                .get("power_limit", d.enforced_power_limit())
                .map(|mw| mw as f64 / 1000.0),
            pstate: pstate.map(pstate_name),
            sm_clock_mhz: seen.get("sm_clock", d.clock_info(Clock::SM)),
            memory_clock_mhz: seen.get("memory_clock", d.clock_info(Clock::Memory)),
            sm_clock_max_mhz: seen.get("sm_clock_max", d.max_clock_info(Clock::SM)),
            clock_event_reasons_mask: reasons.map(|r| r.bits()),
            clock_event_reasons: reasons
                .map(|r| r.iter_names().map(|(n, _)| n.to_string()).collect())
                .unwrap_or_default(),
            retired_pages_sbe: seen
                .get(
                    "retired_pages_sbe",
                    d.retired_pages(RetirementCause::MultipleSingleBitEccErrors),
                )
                .map(|v| v.len() as u32),
            retired_pages_dbe: seen
                .get(
                    "retired_pages_dbe",
                    d.retired_pages(RetirementCause::DoubleBitEccError),
                )
                .map(|v| v.len() as u32),
            retired_pages_pending: seen.get("retired_pages_pending", d.are_pages_pending_retired()),
            ecc_volatile_corrected: seen.get(
                "ecc_volatile_corrected",
                d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
            ),
            ecc_volatile_uncorrected: seen.get(
                "ecc_volatile_uncorrected",
                d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
            ),
            ecc_aggregate_corrected: seen.get(
                "ecc_aggregate_corrected",
                d.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate),
            ),
            ecc_aggregate_uncorrected: seen.get(
                "ecc_aggregate_uncorrected",
                d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate),
            ),
            vbios_version: seen.get("vbios_version", d.vbios_version()),
            ..Default::default()
        };
        // Row remapping (Ampere and later): not wrapped by nvml-wrapper.
        match self.raw.remapped_rows {
            Some(f) => {
                let (mut corr, mut unc, mut pending, mut failed) = (0, 0, 0, 0);
                // SAFETY: nvmlDeviceGetRemappedRows(device, uint*, uint*, uint*, uint*).
                let rc = unsafe { f(d.handle(), &mut corr, &mut unc, &mut pending, &mut failed) };
                if rc == 0 {
                    h.remapped_rows_correctable = Some(corr);
                    h.remapped_rows_uncorrectable = Some(unc);
                    h.remap_pending = Some(pending != 0);
                    h.remap_failed = Some(failed != 0);
                } else {
                    seen.0.push("remapped_rows".into());
                }
            }
            None => seen.0.push("remapped_rows".into()),
        }
        match d.field_values_for(&[FieldId(FI_GPU_RECOVERY_ACTION)]) {
            Ok(values) => match values.into_iter().next() {
                Some(Ok(sample)) => match sample.value {
                    Ok(v) => h.recovery_action = Some(recovery_action_name(sample_u64(&v))),
                    Err(_) => seen.0.push("recovery_action".into()),
                },
                _ => seen.0.push("recovery_action".into()),
            },
            Err(_) => seen.0.push("recovery_action".into()),
        }
        h.processes = processes_of(d).unwrap_or_default();
        if info.compute_capability.is_none() {
            seen.0.push("compute_capability".into());
        }
        h.unsupported = seen.0;
        (info, h)
    }

    /// One GPU read for a live view (watch, exporter): its `info` facts, its PCIe and NVLinks
    /// as `topo` reads them, utilisation and NVLink error counters, all through one handle. A
    /// lost GPU is a fact (`health.lost`); any other failure to open it is `no_answer`.
    pub fn live_gpu(&self, index: u32) -> LiveGpu {
        let started = std::time::Instant::now();
        let mut reading = match self.device_or_lost(index) {
            Ok(Ok(d)) => {
                let (info, health) = self.health_of(index, &d);
                let topo = self.gpu_topo(&info, &d);
                let utilization = d.utilization_rates().ok();
                let nvlink_errors = topo
                    .nvlinks
                    .iter()
                    .map(|l| nvlink_errors(&d, l.link))
                    .collect();
                LiveGpu {
                    index,
                    health,
                    topo,
                    utilization_gpu_pct: utilization.as_ref().map(|u| u.gpu),
                    utilization_memory_pct: utilization.as_ref().map(|u| u.memory),
                    nvlink_errors,
                    ..Default::default()
                }
            }
            Ok(Err(why)) => LiveGpu {
                index,
                health: Self::lost_health(index, why).1,
                ..Default::default()
            },
            Err(e) => LiveGpu::no_answer(index, format!("{e:#}")),
        };
        reading.read_ms = started.elapsed().as_secs_f64() * 1e3;
        reading
    }

    /// The library handle, for event sets (crate::probe::live).
    pub fn library(&self) -> &Nvml {
        &self.nvml
    }

    /// Topology facts for the selected GPUs. Each GPU's links, and each row of pairs, are read
    /// on their own thread (NVML is thread-safe): on an 8-GPU host that is most of the time.
    pub fn topology(&self, indices: &[u32]) -> Result<TopoFacts> {
        self.topology_and_devices(indices).map(|(_, facts)| facts)
    }

    /// [`Self::topology`] and the selected GPUs' identities, from one set of NVML calls. A lost
    /// GPU is listed with `lost` set and left out of the pairs.
    pub fn topology_and_devices(&self, indices: &[u32]) -> Result<(Vec<DeviceInfo>, TopoFacts)> {
        let mut lost = Vec::new();
        let mut live = Vec::new();
        let mut handles = Vec::new();
        for &i in indices {
            match self.device_or_lost(i)? {
                Ok(d) => {
                    live.push(i);
                    handles.push(d);
                }
                Err(why) => lost.push((i, why)),
            }
        }
        let indices = &live[..];
        let (gpus, pairs) = std::thread::scope(|s| {
            let gpu_jobs: Vec<_> = indices
                .iter()
                .zip(&handles)
                .map(|(&i, d)| {
                    s.spawn(move || {
                        let info = device_info_of(i, d);
                        let topo = self.gpu_topo(&info, d);
                        (info, topo)
                    })
                })
                .collect();
            let pair_jobs: Vec<_> = (0..handles.len())
                .map(|a| {
                    let handles = &handles;
                    s.spawn(move || {
                        (a + 1..handles.len())
                            .map(|b| self.pair_facts(indices[a], &handles[a], indices[b]))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let gpus: Vec<(DeviceInfo, GpuTopo)> = gpu_jobs
                .into_iter()
                .map(|j| j.join().expect("NVML reader panicked"))
                .collect();
            let pairs = pair_jobs
                .into_iter()
                .map(|j| j.join().expect("NVML reader panicked"))
                .collect::<Result<Vec<_>>>();
            (gpus, pairs)
        });
        let (mut devices, mut gpus): (Vec<DeviceInfo>, Vec<GpuTopo>) = gpus.into_iter().unzip();
        for (i, why) in lost {
            let info = Self::lost_info(i);
            gpus.push(GpuTopo {
                index: i,
                name: info.name.clone(),
                lost: Some(why),
                ..Default::default()
            });
            devices.push(info);
        }
        gpus.sort_by_key(|g| g.index);
        devices.sort_by_key(|d| d.index);
        let facts = TopoFacts {
            gpus,
            pairs: pairs?.into_iter().flatten().collect(),
            host_numa_nodes: host_numa_nodes(),
            host_cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(0),
        };
        Ok((devices, facts))
    }

    fn pair_facts(&self, a: u32, da: &Device, b: u32) -> Result<PairFacts> {
        // nvml-wrapper takes the peer by value for the ancestor query; a second handle is cheap.
        let db = self.device(b)?;
        let p2p = |cap| da.p2p_status(&db, cap).ok().map(p2p_name);
        let p2p = P2pFacts {
            read: p2p(P2pCapabilitiesIndex::Read),
            write: p2p(P2pCapabilitiesIndex::Write),
            atomics: p2p(P2pCapabilitiesIndex::Atomics),
            nvlink: p2p(P2pCapabilitiesIndex::NvLink),
        };
        Ok(PairFacts {
            a,
            b,
            common_ancestor: da.topology_common_ancestor(db).ok().map(level_name),
            p2p,
        })
    }

    fn gpu_topo(&self, info: &DeviceInfo, d: &Device) -> GpuTopo {
        let bus_id = info.pci_bus_id.clone();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(64)
            .max(64);
        let words = cpus.div_ceil(64);
        let cpu_affinity = d.cpu_affinity(words).ok().map(|mask| cpulist(&mask));
        let numa_affinity = d
            .memory_affinity(words, nvml_wrapper_sys::bindings::NVML_AFFINITY_SCOPE_NODE)
            .ok()
            .map(|mask| cpulist(&mask))
            .filter(|s| !s.is_empty())
            .or_else(|| sysfs_numa_node(&bus_id).map(|n| n.to_string()));
        let gpu_max_gen = self.raw.gpu_max_pcie_gen.and_then(|f| {
            let mut g = 0;
            // SAFETY: nvmlDeviceGetGpuMaxPcieLinkGeneration(device, uint*).
            (unsafe { f(d.handle(), &mut g) } == 0).then_some(g)
        });
        let pcie = PcieFacts {
            current_gen: d.current_pcie_link_gen().ok(),
            max_gen: d.max_pcie_link_gen().ok(),
            gpu_max_gen,
            current_width: d.current_pcie_link_width().ok(),
            max_width: d.max_pcie_link_width().ok(),
            replay_counter: d.pcie_replay_counter().ok().map(u64::from),
        };
        let remote_type = self.raw.remote_type;
        let mut nvlinks = Vec::new();
        // NVML_NVLINK_MAX_LINKS is 18 on Hopper; a link that does not exist answers an error.
        for link in 0..18u32 {
            let w = d.link_wrapper_for(link);
            let Ok(active) = w.is_active() else {
                continue;
            };
            let remote = if active {
                remote_type.and_then(|f| {
                    let mut t: c_uint = 99;
                    // SAFETY: nvmlDeviceGetNvLinkRemoteDeviceType(device, uint link, uint*).
                    (unsafe { f(d.handle(), link, &mut t) } == 0).then(|| remote_type_name(t))
                })
            } else {
                None
            };
            nvlinks.push(NvLinkFacts {
                link,
                active,
                version: if active { w.version().ok() } else { None },
                remote_pci_bus_id: if active {
                    w.remote_pci_info().ok().map(|p| p.bus_id)
                } else {
                    None
                },
                remote_type: remote,
            });
        }
        GpuTopo {
            index: info.index,
            uuid: info.uuid.clone(),
            name: info.name.clone(),
            pci_bus_id: bus_id,
            cpu_affinity,
            numa_affinity,
            gpu_numa_id: d.numa_node_id().ok(),
            pcie,
            nvlinks,
            lost: None,
        }
    }
}

/// The error counters of one NVLink (None where the driver does not count them).
fn nvlink_errors(d: &Device, link: u32) -> NvLinkErrors {
    use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
    let w = d.link_wrapper_for(link);
    NvLinkErrors {
        link,
        replay: w.error_counter(ErrorCounter::DlReplay).ok(),
        recovery: w.error_counter(ErrorCounter::DlRecovery).ok(),
        crc_flit: w.error_counter(ErrorCounter::DlCrcFlit).ok(),
        crc_data: w.error_counter(ErrorCounter::DlCrcData).ok(),
    }
}

/// Processes holding memory on an open GPU, or why NVML could not list them.
fn processes_of(d: &Device) -> Result<Vec<GpuProcess>, String> {
    let list = d
        .running_compute_processes()
        .map_err(|e| format!("nvmlDeviceGetComputeRunningProcesses: {e}"))?;
    Ok(list
        .into_iter()
        .map(|p| GpuProcess {
            pid: p.pid,
            used_bytes: match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            },
        })
        .collect())
}

/// A GPU's identity as every report lists it.
fn device_info_of(index: u32, d: &Device) -> DeviceInfo {
    identity(index, d, d.memory_info().ok().map(|m| m.total))
}

/// [`device_info_of`] with the memory total already read (health reads the memory anyway).
fn identity(index: u32, d: &Device, memory_total: Option<u64>) -> DeviceInfo {
    DeviceInfo {
        index,
        uuid: d.uuid().unwrap_or_default(),
        name: d.name().unwrap_or_default(),
        pci_bus_id: d.pci_info().map(|p| p.bus_id).unwrap_or_default(),
        memory_total_bytes: memory_total.unwrap_or(0),
        compute_capability: d
            .cuda_compute_capability()
            .ok()
            .map(|c| format!("{}.{}", c.major, c.minor)),
        cuda_ordinal: None,
    }
}

/// Collects the names of fields a GPU could not report.
#[derive(Default)]
struct Unsupported(Vec<String>);

impl Unsupported {
    fn get<T>(&mut self, field: &str, r: Result<T, NvmlError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(_) => {
                self.0.push(field.to_string());
                None
            }
        }
    }
}

fn sample_u64(v: &nvml_wrapper::enums::device::SampleValue) -> u64 {
    use nvml_wrapper::enums::device::SampleValue::*;
    match *v {
        F64(x) => x as u64,
        U32(x) => x as u64,
        U64(x) => x,
        I64(x) => x as u64,
    }
}

fn recovery_action_name(v: u64) -> String {
    usize::try_from(v)
        .ok()
        .and_then(|i| crate::facts::RECOVERY_ACTIONS.get(i))
        .map_or_else(|| format!("unknown({v})"), |name| name.to_string())
}

fn remote_type_name(t: c_uint) -> String {
    match t {
        0 => "gpu",
        1 => "ibmnpu",
        2 => "switch",
        _ => "unknown",
    }
    .into()
}

fn pstate_name(p: PerformanceState) -> String {
    use PerformanceState::*;
    let n = match p {
        Zero => 0,
        One => 1,
        Two => 2,
        Three => 3,
        Four => 4,
        Five => 5,
        Six => 6,
        Seven => 7,
        Eight => 8,
        Nine => 9,
        Ten => 10,
        Eleven => 11,
        Twelve => 12,
        Thirteen => 13,
        Fourteen => 14,
        Fifteen => 15,
        Unknown => return "unknown".into(),
    };
    format!("P{n}")
}

fn level_name(l: TopologyLevel) -> String {
    match l {
        TopologyLevel::Internal => "INTERNAL",
        TopologyLevel::Single => "SINGLE",
        TopologyLevel::Multiple => "MULTIPLE",
        TopologyLevel::HostBridge => "HOSTBRIDGE",
        TopologyLevel::Node => "NODE",
        TopologyLevel::System => "SYSTEM",
    }
    .into()
}

fn p2p_name(s: P2pStatus) -> String {
    match s {
        P2pStatus::Ok => "ok",
        P2pStatus::ChipsetNotSupported => "chipset_not_supported",
        P2pStatus::GpuNotSupported => "gpu_not_supported",
        P2pStatus::IohTopologyNotSupported => "topology_not_supported",
        P2pStatus::DisabledByRegkey => "disabled_by_regkey",
        P2pStatus::NotSupported => "not_supported",
        P2pStatus::Unknown => "unknown",
    }
    .into()
}

/// Formats a CPU or NUMA-node bitmask (NVML's array of c_ulong) as a Linux list: "0-15,32-47".
pub fn cpulist(mask: &[std::ffi::c_ulong]) -> String {
    use shim_proto::nvml::query::{cpuset_members, format_cpulist};
    format_cpulist(&cpuset_members(mask))
}

/// NUMA node from sysfs for a bus id as NVML writes it ("00000000:18:00.0").
fn sysfs_numa_node(bus_id: &str) -> Option<u32> {
    let lower = bus_id.to_ascii_lowercase();
    // sysfs uses a 4-digit domain: 0000:18:00.0
    let short = if lower.len() > 12 {
        &lower[lower.len() - 12..]
    } else {
        &lower
    };
    let s = std::fs::read_to_string(format!("/sys/bus/pci/devices/{short}/numa_node")).ok()?;
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .map(|n| n as u32)
}

fn host_numa_nodes() -> u32 {
    std::fs::read_dir("/sys/devices/system/node")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("node") && n[4..].chars().all(|c| c.is_ascii_digit())
                })
                .count() as u32
        })
        .unwrap_or(0)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::cpulist;

    #[test]
    fn cpulist_formats_ranges_and_singles() {
        assert_eq!(cpulist(&[0xffff]), "0-15");
        assert_eq!(cpulist(&[0b1011]), "0-1,3");
        assert_eq!(cpulist(&[0, 1]), "64");
        assert_eq!(cpulist(&[0]), "");
    }
}
