//! The exported NVML functions. Each is declared once below with its C signature (nvml.h)
//! and a body that says which query it answers and which rewrite its faults use; the macro
//! makes the `extern "C"` export, a Rust twin in [`imp`] (what the snapshot recorder calls),
//! its id in [`Fid`] and its name in [`NAMES`]. A function that is not here is not wrapped:
//! over the real library the dlsym hook hands out the real one untouched, and a replay does
//! not have it (NVML_ERROR_FUNCTION_NOT_FOUND for pynvml, a missing symbol for nvml-wrapper).

#![allow(non_snake_case, clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

use crate::abi::*;
use crate::call::{device as dev, none, pair, system};
use crate::out::{CpuSet, MemV2, Pages, Pci, Plain, Procs, Text, Uints};
use crate::proto::fault::FaultKind;
use crate::rewrite::{self, Ctx};

/// The index in proto::query::QUERIES of a query (or alias) name, checked at compile time.
macro_rules! q {
    ($name:literal) => {{
        const Q: usize = crate::proto::query::index($name);
        Q
    }};
}

macro_rules! exports {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) [$f:ident, $real:ident] $body:block)*) => {
        /// Every exported NVML function, in the order of [`NAMES`].
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Fid { $($name),* }

        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
        pub const N_FN: usize = NAMES.len();

        /// The functions as Rust calls them: the recorder goes through these, never through
        /// the exported symbols (which a preloaded copy may interpose).
        pub mod imp {
            use super::*;
            $(
                #[allow(unused_unsafe)]
                pub unsafe fn $name($($arg: $ty),*) -> Ret {
                    /// The C signature, for the real function.
                    type RealFn = unsafe extern "C" fn($($ty),*) -> Ret;
                    let $f = Fid::$name;
                    let $real = move || -> Ret {
                        match crate::real::func::<RealFn>($f) {
                            // SAFETY: the real library's function of this name has this
                            // signature (nvml.h); the caller's arguments.
                            Some(p) => unsafe { p($($arg),*) },
                            None => ERROR_FUNCTION_NOT_FOUND,
                        }
                    };
                    // SAFETY: the caller's arguments, as nvml.h documents them.
                    unsafe { $body }
                }
            )*
        }

        $(
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> Ret {
                // SAFETY: the caller's arguments, passed on.
                unsafe { imp::$name($($arg),*) }
            }
        )*

        struct Table([*const c_void; N_FN]);
        // SAFETY: code addresses only, never written.
        unsafe impl Sync for Table {}
        static TABLE: Table = Table([$($name as *const c_void),*]);

        /// The exported function `f` (what the dlsym hook hands out).
        pub fn export_addr(f: Fid) -> *const c_void {
            TABLE.0[f as usize]
        }
    };
}

/// The id of an exported function named `name`.
pub fn find(name: &[u8]) -> Option<Fid> {
    let i = NAMES.iter().position(|n| n.as_bytes() == name)?;
    // SAFETY: Fid is repr(usize) with one variant per entry of NAMES, in order.
    Some(unsafe { core::mem::transmute::<usize, Fid>(i) })
}

// Rewrites on the values behind the caller's pointers.

type Rw<T> = fn(&FaultKind, &Ctx, &mut Ret, &mut T) -> Option<String>;

fn on<T>(r: Rw<T>) -> impl Fn(&FaultKind, &Ctx, &mut Ret, Plain<T>) -> Option<String> {
    // SAFETY: the caller's pointer (null: no rewrite).
    move |k, c, rc, o| r(k, c, rc, unsafe { o.get()? })
}

fn on_memv2(r: Rw<MemoryV2>) -> impl Fn(&FaultKind, &Ctx, &mut Ret, MemV2) -> Option<String> {
    // SAFETY: the caller's pointer (null: no rewrite).
    move |k, c, rc, o| r(k, c, rc, unsafe { o.0.as_mut()? })
}

fn on_uints<const N: usize>(
    r: Rw<[u32; N]>,
) -> impl Fn(&FaultKind, &Ctx, &mut Ret, Uints<N>) -> Option<String> {
    move |k, c, rc, o| {
        // SAFETY: the caller's pointers (a null one: no rewrite).
        let mut v = unsafe { o.get()? };
        let said = r(k, c, rc, &mut v);
        // SAFETY: non-null, checked by `get`.
        unsafe { o.set(v) };
        said
    }
}

exports! {
    // Life cycle.
    fn nvmlInit_v2() [f, real] { crate::lookup::init(f, real) }
    fn nvmlInit() [f, real] { crate::lookup::init(f, real) }
    fn nvmlInitWithFlags(flags: c_uint) [f, real] { crate::lookup::init(f, real) }
    fn nvmlShutdown() [f, real] { crate::lookup::shutdown(f, real) }

    // The machine.
    fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) [f, real] {
        system(f, q!("nvmlSystemGetDriverVersion"), Text(version, length), real)
    }
    fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) [f, real] {
        system(f, q!("nvmlSystemGetNVMLVersion"), Text(version, length), real)
    }
    fn nvmlSystemGetCudaDriverVersion(version: *mut c_int) [f, real] {
        system(f, q!("nvmlSystemGetCudaDriverVersion"), Plain(version), real)
    }
    fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) [f, real] {
        system(f, q!("nvmlSystemGetCudaDriverVersion_v2"), Plain(version), real)
    }

    // Handles.
    fn nvmlDeviceGetCount_v2(count: *mut c_uint) [f, real] { crate::lookup::count(f, count, real) }
    fn nvmlDeviceGetCount(count: *mut c_uint) [f, real] { crate::lookup::count(f, count, real) }
    fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut Device) [f, real] {
        crate::lookup::by_index(f, index, device, real)
    }
    fn nvmlDeviceGetHandleByIndex(index: c_uint, device: *mut Device) [f, real] {
        crate::lookup::by_index(f, index, device, real)
    }
    fn nvmlDeviceGetHandleByUUID(uuid: *const c_char, device: *mut Device) [f, real] {
        crate::lookup::by_id(f, crate::lookup::Id::Uuid, uuid, device, real)
    }
    fn nvmlDeviceGetHandleByPciBusId_v2(pciBusId: *const c_char, device: *mut Device) [f, real] {
        crate::lookup::by_id(f, crate::lookup::Id::Pci, pciBusId, device, real)
    }
    fn nvmlDeviceGetHandleByPciBusId(pciBusId: *const c_char, device: *mut Device) [f, real] {
        crate::lookup::by_id(f, crate::lookup::Id::Pci, pciBusId, device, real)
    }
    fn nvmlDeviceGetHandleBySerial(serial: *const c_char, device: *mut Device) [f, real] {
        crate::lookup::by_id(f, crate::lookup::Id::Serial, serial, device, real)
    }
    fn nvmlDeviceGetIndex(device: Device, index: *mut c_uint) [f, real] {
        crate::lookup::index(f, device, index, real)
    }

    // Identity.
    fn nvmlDeviceGetName(device: Device, name: *mut c_char, length: c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetName"), &[], Text(name, length), real, none)
    }
    fn nvmlDeviceGetUUID(device: Device, uuid: *mut c_char, length: c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetUUID"), &[], Text(uuid, length), real, none)
    }
    fn nvmlDeviceGetSerial(device: Device, serial: *mut c_char, length: c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetSerial"), &[], Text(serial, length), real, none)
    }
    fn nvmlDeviceGetPciInfo_v3(device: Device, pci: *mut PciInfo) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPciInfo_v3"), &[], Pci(pci), real, none)
    }
    fn nvmlDeviceGetPciInfo_v2(device: Device, pci: *mut PciInfo) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPciInfo_v2"), &[], Pci(pci), real, none)
    }
    fn nvmlDeviceGetMinorNumber(device: Device, minor: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMinorNumber"), &[], Plain(minor), real, none)
    }
    fn nvmlDeviceGetBrand(device: Device, brand: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetBrand"), &[], Plain(brand), real, none)
    }
    fn nvmlDeviceGetArchitecture(device: Device, arch: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetArchitecture"), &[], Plain(arch), real, none)
    }
    fn nvmlDeviceGetCudaComputeCapability(device: Device, major: *mut c_int, minor: *mut c_int) [f, real] {
        let out = Uints([major as *mut c_uint, minor as *mut c_uint]);
        dev(f, device, q!("nvmlDeviceGetCudaComputeCapability"), &[], out, real, none)
    }
    fn nvmlDeviceGetVbiosVersion(device: Device, version: *mut c_char, length: c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetVbiosVersion"), &[], Text(version, length), real, none)
    }
    fn nvmlDeviceGetInforomImageVersion(device: Device, version: *mut c_char, length: c_uint) [f, real] {
        let out = Text(version, length);
        dev(f, device, q!("nvmlDeviceGetInforomImageVersion"), &[], out, real, none)
    }
    fn nvmlDeviceGetBoardPartNumber(device: Device, part: *mut c_char, length: c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetBoardPartNumber"), &[], Text(part, length), real, none)
    }
    fn nvmlDeviceGetBoardId(device: Device, id: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetBoardId"), &[], Plain(id), real, none)
    }
    fn nvmlDeviceGetMultiGpuBoard(device: Device, multi: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMultiGpuBoard"), &[], Plain(multi), real, none)
    }

    // Topology and affinity.
    fn nvmlDeviceGetNumaNodeId(device: Device, node: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetNumaNodeId"), &[], Plain(node), real, none)
    }
    fn nvmlDeviceGetCpuAffinity(device: Device, cpuSetSize: c_uint, cpuSet: *mut c_ulong) [f, real] {
        dev(f, device, q!("nvmlDeviceGetCpuAffinity"), &[], CpuSet(cpuSetSize, cpuSet), real, none)
    }
    fn nvmlDeviceGetCpuAffinityWithinScope(device: Device, cpuSetSize: c_uint, cpuSet: *mut c_ulong, scope: c_uint) [f, real] {
        let out = CpuSet(cpuSetSize, cpuSet);
        dev(f, device, q!("nvmlDeviceGetCpuAffinityWithinScope"), &[scope], out, real, none)
    }
    fn nvmlDeviceGetMemoryAffinity(device: Device, nodeSetSize: c_uint, nodeSet: *mut c_ulong, scope: c_uint) [f, real] {
        let out = CpuSet(nodeSetSize, nodeSet);
        dev(f, device, q!("nvmlDeviceGetMemoryAffinity"), &[scope], out, real, none)
    }
    fn nvmlDeviceGetTopologyCommonAncestor(device1: Device, device2: Device, pathInfo: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetTopologyCommonAncestor");
        pair(f, (device1, device2), q, &[], Plain(pathInfo), real)
    }
    fn nvmlDeviceGetP2PStatus(device1: Device, device2: Device, p2pIndex: c_uint, p2pStatus: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetP2PStatus");
        pair(f, (device1, device2), q, &[p2pIndex], Plain(p2pStatus), real)
    }
    fn nvmlDeviceOnSameBoard(device1: Device, device2: Device, onSameBoard: *mut c_int) [f, real] {
        pair(f, (device1, device2), q!("nvmlDeviceOnSameBoard"), &[], Plain(onSameBoard), real)
    }

    // Memory.
    fn nvmlDeviceGetMemoryInfo(device: Device, memory: *mut Memory) [f, real] {
        let rw = on(rewrite::memory);
        dev(f, device, q!("nvmlDeviceGetMemoryInfo"), &[], Plain(memory), real, rw)
    }
    fn nvmlDeviceGetMemoryInfo_v2(device: Device, memory: *mut MemoryV2) [f, real] {
        let rw = on_memv2(rewrite::memory_v2);
        dev(f, device, q!("nvmlDeviceGetMemoryInfo_v2"), &[], MemV2(memory), real, rw)
    }
    fn nvmlDeviceGetBAR1MemoryInfo(device: Device, bar1: *mut Bar1Memory) [f, real] {
        dev(f, device, q!("nvmlDeviceGetBAR1MemoryInfo"), &[], Plain(bar1), real, none)
    }
    fn nvmlDeviceGetMemoryBusWidth(device: Device, width: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMemoryBusWidth"), &[], Plain(width), real, none)
    }

    // Modes and state.
    fn nvmlDeviceGetPersistenceMode(device: Device, mode: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPersistenceMode"), &[], Plain(mode), real, none)
    }
    fn nvmlDeviceGetComputeMode(device: Device, mode: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetComputeMode"), &[], Plain(mode), real, none)
    }
    fn nvmlDeviceGetMigMode(device: Device, current: *mut c_uint, pending: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMigMode"), &[], Uints([current, pending]), real, none)
    }
    fn nvmlDeviceGetEccMode(device: Device, current: *mut c_uint, pending: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetEccMode"), &[], Uints([current, pending]), real, none)
    }
    fn nvmlDeviceGetDisplayMode(device: Device, mode: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetDisplayMode"), &[], Plain(mode), real, none)
    }
    fn nvmlDeviceGetDisplayActive(device: Device, active: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetDisplayActive"), &[], Plain(active), real, none)
    }
    fn nvmlDeviceGetPerformanceState(device: Device, state: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPerformanceState"), &[], Plain(state), real, none)
    }

    // Utilisation.
    fn nvmlDeviceGetUtilizationRates(device: Device, utilization: *mut Utilization) [f, real] {
        dev(f, device, q!("nvmlDeviceGetUtilizationRates"), &[], Plain(utilization), real, none)
    }
    fn nvmlDeviceGetEncoderUtilization(device: Device, utilization: *mut c_uint, period: *mut c_uint) [f, real] {
        let out = Uints([utilization, period]);
        dev(f, device, q!("nvmlDeviceGetEncoderUtilization"), &[], out, real, none)
    }
    fn nvmlDeviceGetDecoderUtilization(device: Device, utilization: *mut c_uint, period: *mut c_uint) [f, real] {
        let out = Uints([utilization, period]);
        dev(f, device, q!("nvmlDeviceGetDecoderUtilization"), &[], out, real, none)
    }

    // Temperature, power, fans.
    fn nvmlDeviceGetTemperature(device: Device, sensorType: c_uint, temp: *mut c_uint) [f, real] {
        let rw = on(rewrite::temperature);
        dev(f, device, q!("nvmlDeviceGetTemperature"), &[sensorType], Plain(temp), real, rw)
    }
    fn nvmlDeviceGetTemperatureThreshold(device: Device, thresholdType: c_uint, temp: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetTemperatureThreshold");
        dev(f, device, q, &[thresholdType], Plain(temp), real, none)
    }
    fn nvmlDeviceGetPowerUsage(device: Device, power: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPowerUsage"), &[], Plain(power), real, none)
    }
    fn nvmlDeviceGetEnforcedPowerLimit(device: Device, limit: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetEnforcedPowerLimit"), &[], Plain(limit), real, none)
    }
    fn nvmlDeviceGetPowerManagementLimit(device: Device, limit: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPowerManagementLimit"), &[], Plain(limit), real, none)
    }
    fn nvmlDeviceGetPowerManagementDefaultLimit(device: Device, limit: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetPowerManagementDefaultLimit");
        dev(f, device, q, &[], Plain(limit), real, none)
    }
    fn nvmlDeviceGetPowerManagementLimitConstraints(device: Device, minLimit: *mut c_uint, maxLimit: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetPowerManagementLimitConstraints");
        dev(f, device, q, &[], Uints([minLimit, maxLimit]), real, none)
    }
    fn nvmlDeviceGetTotalEnergyConsumption(device: Device, energy: *mut u64) [f, real] {
        dev(f, device, q!("nvmlDeviceGetTotalEnergyConsumption"), &[], Plain(energy), real, none)
    }
    fn nvmlDeviceGetFanSpeed(device: Device, speed: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetFanSpeed"), &[], Plain(speed), real, none)
    }
    fn nvmlDeviceGetNumFans(device: Device, numFans: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetNumFans"), &[], Plain(numFans), real, none)
    }
    fn nvmlDeviceGetFanSpeed_v2(device: Device, fan: c_uint, speed: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetFanSpeed_v2"), &[fan], Plain(speed), real, none)
    }

    // Clocks.
    fn nvmlDeviceGetClockInfo(device: Device, clockType: c_uint, clock: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetClockInfo"), &[clockType], Plain(clock), real, none)
    }
    fn nvmlDeviceGetMaxClockInfo(device: Device, clockType: c_uint, clock: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMaxClockInfo"), &[clockType], Plain(clock), real, none)
    }
    fn nvmlDeviceGetCurrentClocksEventReasons(device: Device, reasons: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetCurrentClocksEventReasons");
        dev(f, device, q, &[], Plain(reasons), real, on(rewrite::throttle))
    }
    fn nvmlDeviceGetCurrentClocksThrottleReasons(device: Device, reasons: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetCurrentClocksThrottleReasons");
        dev(f, device, q, &[], Plain(reasons), real, on(rewrite::throttle))
    }
    fn nvmlDeviceGetSupportedClocksEventReasons(device: Device, reasons: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetSupportedClocksEventReasons");
        dev(f, device, q, &[], Plain(reasons), real, none)
    }
    fn nvmlDeviceGetSupportedClocksThrottleReasons(device: Device, reasons: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetSupportedClocksThrottleReasons");
        dev(f, device, q, &[], Plain(reasons), real, none)
    }

    // ECC, retired pages, row remapping.
    fn nvmlDeviceGetTotalEccErrors(device: Device, errorType: c_uint, counterType: c_uint, eccCounts: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetTotalEccErrors");
        let rw = on(rewrite::ecc_total);
        dev(f, device, q, &[errorType, counterType], Plain(eccCounts), real, rw)
    }
    fn nvmlDeviceGetMemoryErrorCounter(device: Device, errorType: c_uint, counterType: c_uint, locationType: c_uint, count: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetMemoryErrorCounter");
        let rw = on(rewrite::memory_error_counter);
        dev(f, device, q, &[errorType, counterType, locationType], Plain(count), real, rw)
    }
    fn nvmlDeviceGetRetiredPages_v2(device: Device, cause: c_uint, pageCount: *mut c_uint, addresses: *mut u64, timestamps: *mut u64) [f, real] {
        let out = Pages(pageCount, addresses, Some(timestamps));
        dev(f, device, q!("nvmlDeviceGetRetiredPages_v2"), &[cause], out, real, none)
    }
    fn nvmlDeviceGetRetiredPages(device: Device, cause: c_uint, pageCount: *mut c_uint, addresses: *mut u64) [f, real] {
        let out = Pages(pageCount, addresses, None);
        dev(f, device, q!("nvmlDeviceGetRetiredPages"), &[cause], out, real, none)
    }
    fn nvmlDeviceGetRetiredPagesPendingStatus(device: Device, isPending: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetRetiredPagesPendingStatus");
        dev(f, device, q, &[], Plain(isPending), real, none)
    }
    fn nvmlDeviceGetRemappedRows(device: Device, corrRows: *mut c_uint, uncRows: *mut c_uint, isPending: *mut c_uint, failureOccurred: *mut c_uint) [f, real] {
        let out = Uints([corrRows, uncRows, isPending, failureOccurred]);
        let rw = on_uints(rewrite::remapped_rows);
        dev(f, device, q!("nvmlDeviceGetRemappedRows"), &[], out, real, rw)
    }
    fn nvmlDeviceGetRowRemapperHistogram(device: Device, values: *mut RowRemapperHistogram) [f, real] {
        let q = q!("nvmlDeviceGetRowRemapperHistogram");
        dev(f, device, q, &[], Plain(values), real, none)
    }

    // PCIe.
    fn nvmlDeviceGetCurrPcieLinkGeneration(device: Device, generation: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetCurrPcieLinkGeneration");
        dev(f, device, q, &[], Plain(generation), real, on(rewrite::pcie_gen))
    }
    fn nvmlDeviceGetCurrPcieLinkWidth(device: Device, width: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetCurrPcieLinkWidth");
        dev(f, device, q, &[], Plain(width), real, on(rewrite::pcie_width))
    }
    fn nvmlDeviceGetMaxPcieLinkGeneration(device: Device, generation: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetMaxPcieLinkGeneration");
        dev(f, device, q, &[], Plain(generation), real, none)
    }
    fn nvmlDeviceGetMaxPcieLinkWidth(device: Device, width: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetMaxPcieLinkWidth"), &[], Plain(width), real, none)
    }
    fn nvmlDeviceGetGpuMaxPcieLinkGeneration(device: Device, generation: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetGpuMaxPcieLinkGeneration");
        dev(f, device, q, &[], Plain(generation), real, none)
    }
    fn nvmlDeviceGetPcieReplayCounter(device: Device, value: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetPcieReplayCounter");
        dev(f, device, q, &[], Plain(value), real, on(rewrite::pcie_replays))
    }
    fn nvmlDeviceGetPcieThroughput(device: Device, counter: c_uint, value: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPcieThroughput"), &[counter], Plain(value), real, none)
    }
    fn nvmlDeviceGetPcieSpeed(device: Device, speed: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPcieSpeed"), &[], Plain(speed), real, on(rewrite::pcie_speed))
    }
    fn nvmlDeviceGetPcieLinkMaxSpeed(device: Device, speed: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetPcieLinkMaxSpeed"), &[], Plain(speed), real, none)
    }

    // NVLink.
    fn nvmlDeviceGetNvLinkState(device: Device, link: c_uint, isActive: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetNvLinkState");
        dev(f, device, q, &[link], Plain(isActive), real, on(rewrite::nvlink_state))
    }
    fn nvmlDeviceGetNvLinkVersion(device: Device, link: c_uint, version: *mut c_uint) [f, real] {
        dev(f, device, q!("nvmlDeviceGetNvLinkVersion"), &[link], Plain(version), real, none)
    }
    fn nvmlDeviceGetNvLinkRemotePciInfo_v2(device: Device, link: c_uint, pci: *mut PciInfo) [f, real] {
        dev(f, device, q!("nvmlDeviceGetNvLinkRemotePciInfo_v2"), &[link], Pci(pci), real, none)
    }
    fn nvmlDeviceGetNvLinkRemoteDeviceType(device: Device, link: c_uint, remoteType: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetNvLinkRemoteDeviceType");
        dev(f, device, q, &[link], Plain(remoteType), real, none)
    }
    fn nvmlDeviceGetNvLinkErrorCounter(device: Device, link: c_uint, counter: c_uint, counterValue: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetNvLinkErrorCounter");
        let rw = on(rewrite::nvlink_errors);
        dev(f, device, q, &[link, counter], Plain(counterValue), real, rw)
    }
    fn nvmlDeviceGetNvLinkCapability(device: Device, link: c_uint, capability: c_uint, capResult: *mut c_uint) [f, real] {
        let q = q!("nvmlDeviceGetNvLinkCapability");
        dev(f, device, q, &[link, capability], Plain(capResult), real, none)
    }

    // Processes.
    fn nvmlDeviceGetComputeRunningProcesses_v3(device: Device, infoCount: *mut c_uint, infos: *mut ProcessInfo) [f, real] {
        let q = q!("nvmlDeviceGetComputeRunningProcesses_v3");
        dev(f, device, q, &[], Procs(infoCount, infos), real, none)
    }
    fn nvmlDeviceGetComputeRunningProcesses_v2(device: Device, infoCount: *mut c_uint, infos: *mut ProcessInfo) [f, real] {
        let q = q!("nvmlDeviceGetComputeRunningProcesses_v2");
        dev(f, device, q, &[], Procs(infoCount, infos), real, none)
    }
    fn nvmlDeviceGetGraphicsRunningProcesses_v3(device: Device, infoCount: *mut c_uint, infos: *mut ProcessInfo) [f, real] {
        let q = q!("nvmlDeviceGetGraphicsRunningProcesses_v3");
        dev(f, device, q, &[], Procs(infoCount, infos), real, none)
    }
    fn nvmlDeviceGetGraphicsRunningProcesses_v2(device: Device, infoCount: *mut c_uint, infos: *mut ProcessInfo) [f, real] {
        let q = q!("nvmlDeviceGetGraphicsRunningProcesses_v2");
        dev(f, device, q, &[], Procs(infoCount, infos), real, none)
    }

    // Field values and events.
    fn nvmlDeviceGetFieldValues(device: Device, valuesCount: c_int, values: *mut FieldValue) [f, real] {
        crate::fields::get(f, device, valuesCount, values, real)
    }
    fn nvmlDeviceGetSupportedEventTypes(device: Device, eventTypes: *mut u64) [f, real] {
        let q = q!("nvmlDeviceGetSupportedEventTypes");
        dev(f, device, q, &[], Plain(eventTypes), real, none)
    }
    fn nvmlEventSetCreate(set: *mut EventSet) [f, real] { crate::eventsets::create(f, set, real) }
    fn nvmlDeviceRegisterEvents(device: Device, eventTypes: u64, set: EventSet) [f, real] {
        crate::eventsets::register(f, device, eventTypes, set, real)
    }
    fn nvmlEventSetWait_v2(set: EventSet, data: *mut EventData, timeoutms: c_uint) [f, real] {
        let _ = real;
        crate::eventsets::wait(f, set, data, timeoutms, true)
    }
    fn nvmlEventSetWait(set: EventSet, data: *mut EventData, timeoutms: c_uint) [f, real] {
        let _ = real;
        crate::eventsets::wait(f, set, data, timeoutms, false)
    }
    fn nvmlEventSetFree(set: EventSet) [f, real] { crate::eventsets::free(f, set, real) }
}

/// nvmlErrorString: the real library's text, or NVML's own words in a replay.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: Ret) -> *const c_char {
    if let crate::state::Backend::Real = crate::state::state().backend {
        type ErrorStringFn = unsafe extern "C" fn(Ret) -> *const c_char;
        if let Some(f) = crate::real::lookup::<ErrorStringFn>(c"nvmlErrorString") {
            // SAFETY: nvmlErrorString(nvmlReturn_t) from the real library.
            return crate::call::forward(|| unsafe { f(result) });
        }
    }
    error_string(result).as_ptr()
}

/// NVML's words for a return code (nvmlErrorString).
pub fn error_string(rc: Ret) -> &'static core::ffi::CStr {
    match rc {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        4 => c"Insufficient Permissions",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        12 => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        15 => c"GPU is lost",
        _ => c"Unknown Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_addresses_agree() {
        assert_eq!(NAMES[Fid::nvmlDeviceGetName as usize], "nvmlDeviceGetName");
        assert_eq!(find(b"nvmlEventSetWait_v2"), Some(Fid::nvmlEventSetWait_v2));
        assert_eq!(find(b"nvmlDeviceGetNope"), None);
        assert_eq!(
            export_addr(Fid::nvmlDeviceGetCurrPcieLinkWidth),
            nvmlDeviceGetCurrPcieLinkWidth as *const c_void
        );
        let mut seen = std::collections::HashSet::new();
        for n in NAMES {
            assert!(seen.insert(*n), "{n} twice");
        }
    }

    /// Every recorded query (and alias) has an export that answers it.
    #[test]
    fn every_query_is_exported() {
        for q in crate::proto::query::QUERIES {
            for name in std::iter::once(&q.name).chain(q.aliases) {
                assert!(find(name.as_bytes()).is_some(), "{name} is not exported");
            }
        }
    }
}
