//! `gpu_doctor_nvml_snapshot`: asks every query of proto::query::QUERIES, with every recorded
//! parameter, of every GPU and every ordered pair, and writes the answers (or their return
//! codes) as a snapshot. It goes through the library's own functions (imp), so it records
//! whatever this copy answers for: the real driver, or a replayed snapshot (a round trip) —
//! never the faults, which it turns off on its thread while it runs.

use core::ffi::{c_char, c_int, c_uint, c_ulong};
use std::cell::Cell;

use serde::Serialize;
use serde_json::json;

use crate::abi::*;
use crate::exports::imp::*;
use crate::proto::codes;
use crate::proto::query::{QUERIES, Scope, combinations, cpuset_members, format_cpulist, key};
use crate::proto::snapshot::{Answer, DeviceAnswers, PairAnswers, Recorded, Snapshot};
use crate::state::{Backend, state};

std::thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// True on a thread recording a snapshot: no faults, no `missing` events.
pub fn recording() -> bool {
    RECORDING.with(|r| r.get())
}

/// `nvmlMemory_v2` (nvml.h NVML_STRUCT_VERSION(Memory, 2)).
const MEMORY_V2_VERSION: c_uint = core::mem::size_of::<MemoryV2>() as c_uint | (2 << 24);
/// Room for CPU sets: 4096 CPUs.
const CPU_SET_WORDS: usize = 64;

/// What a query is asked about.
#[derive(Clone, Copy)]
pub enum Target {
    System,
    Device(Device),
    Pair(Device, Device),
}

impl Target {
    fn one(self) -> Device {
        match self {
            Target::Device(d) | Target::Pair(d, _) => d,
            Target::System => core::ptr::null_mut(),
        }
    }

    fn two(self) -> Device {
        match self {
            Target::Pair(_, b) => b,
            _ => core::ptr::null_mut(),
        }
    }
}

fn done<T: Serialize>(rc: Ret, v: T) -> Answer {
    if rc == SUCCESS {
        Answer::Value(json!(v))
    } else {
        Answer::error(rc)
    }
}

/// One value behind one pointer: a number, or a struct of numbers.
fn scalar<T: Default + Serialize>(call: impl FnOnce(*mut T) -> Ret) -> Answer {
    let mut v = T::default();
    let rc = call(&mut v);
    done(rc, v)
}

fn uints<const N: usize>(call: impl FnOnce([*mut c_uint; N]) -> Ret) -> Answer {
    let mut v = [0 as c_uint; N];
    let ptrs: [*mut c_uint; N] = core::array::from_fn(|i| &mut v[i] as *mut c_uint);
    let rc = call(ptrs);
    done(rc, v.to_vec())
}

fn text(call: impl FnOnce(*mut c_char, c_uint) -> Ret) -> Answer {
    let mut buf = [0 as c_char; 256];
    let rc = call(buf.as_mut_ptr(), buf.len() as c_uint);
    done(rc, get_cstr(&buf))
}

fn pci(call: impl FnOnce(*mut PciInfo) -> Ret) -> Answer {
    let mut p = PciInfo::default();
    let rc = call(&mut p);
    done(rc, p.to_json())
}

fn cpus(call: impl FnOnce(c_uint, *mut c_ulong) -> Ret) -> Answer {
    let mut words = [0 as c_ulong; CPU_SET_WORDS];
    let rc = call(CPU_SET_WORDS as c_uint, words.as_mut_ptr());
    done(rc, format_cpulist(&cpuset_members(&words)))
}

/// NVML's list protocol: ask the count, then the entries (with room to spare).
fn list<T: Default + Clone>(call: impl Fn(*mut c_uint, *mut T) -> Ret) -> Result<Vec<T>, Ret> {
    let mut n: c_uint = 0;
    match call(&mut n, core::ptr::null_mut()) {
        SUCCESS => return Ok(vec![]),
        ERROR_INSUFFICIENT_SIZE => {}
        rc => return Err(rc),
    }
    let mut items = vec![T::default(); n as usize + 16];
    let mut room = items.len() as c_uint;
    match call(&mut room, items.as_mut_ptr()) {
        SUCCESS => {
            items.truncate(room as usize);
            Ok(items)
        }
        rc => Err(rc),
    }
}

fn answer_of<T: Serialize>(r: Result<T, Ret>) -> Answer {
    match r {
        Ok(v) => Answer::Value(json!(v)),
        Err(rc) => Answer::error(rc),
    }
}

fn pages(d: Device, cause: c_uint) -> Answer {
    let mut n: c_uint = 0;
    // SAFETY: the v2 list protocol with our own buffers.
    let rc = unsafe {
        nvmlDeviceGetRetiredPages_v2(
            d,
            cause,
            &mut n,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    match rc {
        SUCCESS => return Answer::Value(json!([])),
        ERROR_INSUFFICIENT_SIZE => {}
        rc => return Answer::error(rc),
    }
    let mut room = n + 16;
    let mut addresses = vec![0u64; room as usize];
    let mut stamps = vec![0u64; room as usize];
    // SAFETY: arrays of `room` entries.
    let rc = unsafe {
        nvmlDeviceGetRetiredPages_v2(
            d,
            cause,
            &mut room,
            addresses.as_mut_ptr(),
            stamps.as_mut_ptr(),
        )
    };
    let pages: Vec<RetiredPage> = addresses
        .iter()
        .zip(&stamps)
        .take(room as usize)
        .map(|(a, t)| RetiredPage {
            address: *a,
            timestamp: *t,
        })
        .collect();
    done(rc, pages)
}

fn field(d: Device, id: u32, scope: u32) -> Answer {
    let mut fv = FieldValue {
        fieldId: id,
        scopeId: scope,
        ..Default::default()
    };
    // SAFETY: one field value of our own.
    let rc = unsafe { nvmlDeviceGetFieldValues(d, 1, &mut fv) };
    if rc != SUCCESS {
        return Answer::error(rc);
    }
    if fv.nvmlReturn != SUCCESS {
        return Answer::error(fv.nvmlReturn);
    }
    Answer::Value(json!({"valueType": fv.valueType, "value": fv.value_json()}))
}

type Recorder = fn(Target, &[u32]) -> Answer;

/// How each query is asked (the library's own functions, our buffers).
pub fn recorder(name: &str) -> Option<Recorder> {
    // SAFETY (every arm): the library's own functions with buffers of the right types.
    Some(match name {
        "nvmlSystemGetDriverVersion" => {
            |_, _| text(|b, n| unsafe { nvmlSystemGetDriverVersion(b, n) })
        }
        "nvmlSystemGetNVMLVersion" => |_, _| text(|b, n| unsafe { nvmlSystemGetNVMLVersion(b, n) }),
        "nvmlSystemGetCudaDriverVersion_v2" => {
            |_, _| scalar(|o| unsafe { nvmlSystemGetCudaDriverVersion_v2(o) })
        }
        "nvmlDeviceGetName" => |t, _| text(|b, n| unsafe { nvmlDeviceGetName(t.one(), b, n) }),
        "nvmlDeviceGetUUID" => |t, _| text(|b, n| unsafe { nvmlDeviceGetUUID(t.one(), b, n) }),
        "nvmlDeviceGetSerial" => |t, _| text(|b, n| unsafe { nvmlDeviceGetSerial(t.one(), b, n) }),
        "nvmlDeviceGetPciInfo_v3" => |t, _| pci(|o| unsafe { nvmlDeviceGetPciInfo_v3(t.one(), o) }),
        "nvmlDeviceGetMinorNumber" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMinorNumber(t.one(), o) })
        }
        "nvmlDeviceGetBrand" => |t, _| scalar(|o| unsafe { nvmlDeviceGetBrand(t.one(), o) }),
        "nvmlDeviceGetArchitecture" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetArchitecture(t.one(), o) })
        }
        "nvmlDeviceGetCudaComputeCapability" => |t, _| {
            uints(|[a, b]| unsafe {
                nvmlDeviceGetCudaComputeCapability(t.one(), a as *mut c_int, b as *mut c_int)
            })
        },
        "nvmlDeviceGetVbiosVersion" => {
            |t, _| text(|b, n| unsafe { nvmlDeviceGetVbiosVersion(t.one(), b, n) })
        }
        "nvmlDeviceGetInforomImageVersion" => {
            |t, _| text(|b, n| unsafe { nvmlDeviceGetInforomImageVersion(t.one(), b, n) })
        }
        "nvmlDeviceGetBoardPartNumber" => {
            |t, _| text(|b, n| unsafe { nvmlDeviceGetBoardPartNumber(t.one(), b, n) })
        }
        "nvmlDeviceGetBoardId" => |t, _| scalar(|o| unsafe { nvmlDeviceGetBoardId(t.one(), o) }),
        "nvmlDeviceGetMultiGpuBoard" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMultiGpuBoard(t.one(), o) })
        }
        "nvmlDeviceGetNumaNodeId" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetNumaNodeId(t.one(), o) })
        }
        "nvmlDeviceGetCpuAffinity" => {
            |t, _| cpus(|n, s| unsafe { nvmlDeviceGetCpuAffinity(t.one(), n, s) })
        }
        "nvmlDeviceGetCpuAffinityWithinScope" => {
            |t, p| cpus(|n, s| unsafe { nvmlDeviceGetCpuAffinityWithinScope(t.one(), n, s, p[0]) })
        }
        "nvmlDeviceGetMemoryAffinity" => {
            |t, p| cpus(|n, s| unsafe { nvmlDeviceGetMemoryAffinity(t.one(), n, s, p[0]) })
        }
        "nvmlDeviceGetTopologyCommonAncestor" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetTopologyCommonAncestor(t.one(), t.two(), o) })
        }
        "nvmlDeviceGetP2PStatus" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetP2PStatus(t.one(), t.two(), p[0], o) })
        }
        "nvmlDeviceOnSameBoard" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceOnSameBoard(t.one(), t.two(), o) })
        }
        "nvmlDeviceGetMemoryInfo" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMemoryInfo(t.one(), o) })
        }
        "nvmlDeviceGetMemoryInfo_v2" => |t, _| {
            scalar(|o: *mut MemoryV2| unsafe {
                (*o).version = MEMORY_V2_VERSION;
                nvmlDeviceGetMemoryInfo_v2(t.one(), o)
            })
        },
        "nvmlDeviceGetBAR1MemoryInfo" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetBAR1MemoryInfo(t.one(), o) })
        }
        "nvmlDeviceGetMemoryBusWidth" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMemoryBusWidth(t.one(), o) })
        }
        "nvmlDeviceGetPersistenceMode" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPersistenceMode(t.one(), o) })
        }
        "nvmlDeviceGetComputeMode" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetComputeMode(t.one(), o) })
        }
        "nvmlDeviceGetMigMode" => {
            |t, _| uints(|[a, b]| unsafe { nvmlDeviceGetMigMode(t.one(), a, b) })
        }
        "nvmlDeviceGetEccMode" => {
            |t, _| uints(|[a, b]| unsafe { nvmlDeviceGetEccMode(t.one(), a, b) })
        }
        "nvmlDeviceGetDisplayMode" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetDisplayMode(t.one(), o) })
        }
        "nvmlDeviceGetDisplayActive" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetDisplayActive(t.one(), o) })
        }
        "nvmlDeviceGetPerformanceState" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPerformanceState(t.one(), o) })
        }
        "nvmlDeviceGetUtilizationRates" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetUtilizationRates(t.one(), o) })
        }
        "nvmlDeviceGetEncoderUtilization" => {
            |t, _| uints(|[a, b]| unsafe { nvmlDeviceGetEncoderUtilization(t.one(), a, b) })
        }
        "nvmlDeviceGetDecoderUtilization" => {
            |t, _| uints(|[a, b]| unsafe { nvmlDeviceGetDecoderUtilization(t.one(), a, b) })
        }
        "nvmlDeviceGetTemperature" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetTemperature(t.one(), p[0], o) })
        }
        "nvmlDeviceGetTemperatureThreshold" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetTemperatureThreshold(t.one(), p[0], o) })
        }
        "nvmlDeviceGetPowerUsage" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPowerUsage(t.one(), o) })
        }
        "nvmlDeviceGetEnforcedPowerLimit" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetEnforcedPowerLimit(t.one(), o) })
        }
        "nvmlDeviceGetPowerManagementLimit" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPowerManagementLimit(t.one(), o) })
        }
        "nvmlDeviceGetPowerManagementDefaultLimit" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPowerManagementDefaultLimit(t.one(), o) })
        }
        "nvmlDeviceGetPowerManagementLimitConstraints" => |t, _| {
            uints(|[a, b]| unsafe { nvmlDeviceGetPowerManagementLimitConstraints(t.one(), a, b) })
        },
        "nvmlDeviceGetTotalEnergyConsumption" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetTotalEnergyConsumption(t.one(), o) })
        }
        "nvmlDeviceGetFanSpeed" => |t, _| scalar(|o| unsafe { nvmlDeviceGetFanSpeed(t.one(), o) }),
        "nvmlDeviceGetNumFans" => |t, _| scalar(|o| unsafe { nvmlDeviceGetNumFans(t.one(), o) }),
        "nvmlDeviceGetFanSpeed_v2" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetFanSpeed_v2(t.one(), p[0], o) })
        }
        "nvmlDeviceGetClockInfo" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetClockInfo(t.one(), p[0], o) })
        }
        "nvmlDeviceGetMaxClockInfo" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetMaxClockInfo(t.one(), p[0], o) })
        }
        "nvmlDeviceGetCurrentClocksEventReasons" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetCurrentClocksEventReasons(t.one(), o) })
        }
        "nvmlDeviceGetSupportedClocksEventReasons" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetSupportedClocksEventReasons(t.one(), o) })
        }
        "nvmlDeviceGetTotalEccErrors" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetTotalEccErrors(t.one(), p[0], p[1], o) })
        }
        "nvmlDeviceGetMemoryErrorCounter" => |t, p| {
            scalar(|o| unsafe { nvmlDeviceGetMemoryErrorCounter(t.one(), p[0], p[1], p[2], o) })
        },
        "nvmlDeviceGetRetiredPages_v2" => |t, p| pages(t.one(), p[0]),
        "nvmlDeviceGetRetiredPagesPendingStatus" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetRetiredPagesPendingStatus(t.one(), o) })
        }
        "nvmlDeviceGetRemappedRows" => {
            |t, _| uints(|[a, b, c, d]| unsafe { nvmlDeviceGetRemappedRows(t.one(), a, b, c, d) })
        }
        "nvmlDeviceGetRowRemapperHistogram" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetRowRemapperHistogram(t.one(), o) })
        }
        "nvmlDeviceGetCurrPcieLinkGeneration" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetCurrPcieLinkGeneration(t.one(), o) })
        }
        "nvmlDeviceGetCurrPcieLinkWidth" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetCurrPcieLinkWidth(t.one(), o) })
        }
        "nvmlDeviceGetMaxPcieLinkGeneration" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMaxPcieLinkGeneration(t.one(), o) })
        }
        "nvmlDeviceGetMaxPcieLinkWidth" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetMaxPcieLinkWidth(t.one(), o) })
        }
        "nvmlDeviceGetGpuMaxPcieLinkGeneration" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetGpuMaxPcieLinkGeneration(t.one(), o) })
        }
        "nvmlDeviceGetPcieReplayCounter" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPcieReplayCounter(t.one(), o) })
        }
        "nvmlDeviceGetPcieThroughput" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetPcieThroughput(t.one(), p[0], o) })
        }
        "nvmlDeviceGetPcieSpeed" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPcieSpeed(t.one(), o) })
        }
        "nvmlDeviceGetPcieLinkMaxSpeed" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetPcieLinkMaxSpeed(t.one(), o) })
        }
        "nvmlDeviceGetNvLinkState" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetNvLinkState(t.one(), p[0], o) })
        }
        "nvmlDeviceGetNvLinkVersion" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetNvLinkVersion(t.one(), p[0], o) })
        }
        "nvmlDeviceGetNvLinkRemotePciInfo_v2" => {
            |t, p| pci(|o| unsafe { nvmlDeviceGetNvLinkRemotePciInfo_v2(t.one(), p[0], o) })
        }
        "nvmlDeviceGetNvLinkRemoteDeviceType" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetNvLinkRemoteDeviceType(t.one(), p[0], o) })
        }
        "nvmlDeviceGetNvLinkErrorCounter" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetNvLinkErrorCounter(t.one(), p[0], p[1], o) })
        }
        "nvmlDeviceGetNvLinkCapability" => {
            |t, p| scalar(|o| unsafe { nvmlDeviceGetNvLinkCapability(t.one(), p[0], p[1], o) })
        }
        "nvmlDeviceGetComputeRunningProcesses_v3" => |t, _| {
            answer_of(list(|n, o| unsafe {
                nvmlDeviceGetComputeRunningProcesses_v3(t.one(), n, o)
            }))
        },
        "nvmlDeviceGetGraphicsRunningProcesses_v3" => |t, _| {
            answer_of(list(|n, o| unsafe {
                nvmlDeviceGetGraphicsRunningProcesses_v3(t.one(), n, o)
            }))
        },
        "nvmlDeviceGetSupportedEventTypes" => {
            |t, _| scalar(|o| unsafe { nvmlDeviceGetSupportedEventTypes(t.one(), o) })
        }
        "nvmlDeviceGetFieldValues" => |t, p| field(t.one(), p[0], p[1]),
        _ => return None,
    })
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Asks every query of `target` into `answers`.
fn ask_all(scope: Scope, target: Target, answers: &mut std::collections::BTreeMap<String, Answer>) {
    for q in QUERIES.iter().filter(|q| q.scope == scope) {
        let Some(ask) = recorder(q.name) else {
            continue;
        };
        for params in combinations(q) {
            answers.insert(key(q.name, &params), ask(target, &params));
        }
    }
}

/// Every answer of the machine this copy answers for.
fn collect() -> Snapshot {
    let mut recorded = Recorded {
        tool: format!("gpu-doctor-nvml {}", env!("CARGO_PKG_VERSION")),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
        hostname: hostname(),
        ..Recorded::default()
    };
    if let Backend::Replay(r) = &state().backend {
        recorded.synthetic = r.snapshot().recorded.synthetic;
        recorded.note = Some(format!(
            "recorded from a replay of a snapshot by {}",
            r.snapshot().recorded.tool
        ));
    }
    let mut snap = Snapshot::new(recorded);
    ask_all(Scope::System, Target::System, &mut snap.system);
    let mut count: c_uint = 0;
    // SAFETY: our own counter.
    if unsafe { nvmlDeviceGetCount_v2(&mut count) } != SUCCESS {
        count = 0;
    }
    let mut handles: Vec<Result<Device, Ret>> = Vec::new();
    for i in 0..count {
        let mut d: Device = core::ptr::null_mut();
        // SAFETY: our own handle slot.
        let rc = unsafe { nvmlDeviceGetHandleByIndex_v2(i, &mut d) };
        handles.push(if rc == SUCCESS { Ok(d) } else { Err(rc) });
    }
    for (i, h) in handles.iter().enumerate() {
        let mut answers = Default::default();
        match h {
            Ok(d) => ask_all(Scope::Device, Target::Device(*d), &mut answers),
            Err(rc) => every_key(Scope::Device, *rc, &mut answers),
        }
        snap.devices.push(DeviceAnswers {
            index: i as u32,
            answers,
        });
    }
    for (a, ha) in handles.iter().enumerate() {
        for (b, hb) in handles.iter().enumerate().filter(|(b, _)| *b != a) {
            let mut answers = Default::default();
            match (ha, hb) {
                (Ok(x), Ok(y)) => ask_all(Scope::Pair, Target::Pair(*x, *y), &mut answers),
                (Err(rc), _) | (_, Err(rc)) => every_key(Scope::Pair, *rc, &mut answers),
            }
            snap.pairs.push(PairAnswers {
                a: a as u32,
                b: b as u32,
                answers,
            });
        }
    }
    snap
}

/// A GPU whose handle lookup failed: every query answers that code.
fn every_key(scope: Scope, rc: Ret, answers: &mut std::collections::BTreeMap<String, Answer>) {
    for q in QUERIES.iter().filter(|q| q.scope == scope) {
        for params in combinations(q) {
            answers.insert(key(q.name, &params), Answer::error(rc));
        }
    }
}

fn record(path: &str) -> Result<(), (c_int, String)> {
    struct Flag;
    impl Drop for Flag {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(false));
        }
    }
    RECORDING.with(|r| r.set(true));
    let _flag = Flag;
    // SAFETY: no arguments.
    let rc = unsafe { nvmlInit_v2() };
    if rc != SUCCESS {
        return Err((rc as c_int, format!("nvmlInit_v2: {}", codes::name(rc))));
    }
    let snap = collect();
    // SAFETY: no arguments.
    unsafe { nvmlShutdown() };
    let tmp = format!("{path}.tmp-{}", std::process::id());
    std::fs::write(&tmp, snap.to_json_pretty() + "\n")
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            (-1, format!("cannot write {path}: {e}"))
        })
}

/// Records the snapshot of the machine this library answers for into `path` (JSON, written
/// whole or not at all). Returns 0; an NVML return code (> 0) when nvmlInit fails; -1 when the
/// file cannot be written; -2 for a bad argument; -3 for an internal error. On failure a
/// one-line message goes to `err` (`err_len` bytes, may be null).
///
/// # Safety
/// `path` is a NUL-terminated string; `err` is null or a buffer of `err_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gpu_doctor_nvml_snapshot(
    path: *const c_char,
    err: *mut c_char,
    err_len: c_uint,
) -> c_int {
    // SAFETY: the caller's C string.
    let result = match unsafe { c_str(path) } {
        None => Err((-2, "no path given".to_string())),
        Some(p) => std::panic::catch_unwind(|| record(&p))
            .unwrap_or_else(|_| Err((-3, "the recorder failed (a bug)".to_string()))),
    };
    match result {
        Ok(()) => 0,
        Err((code, msg)) => {
            if !err.is_null() && err_len > 0 {
                // SAFETY: the caller's buffer of `err_len` bytes.
                let buf = unsafe { core::slice::from_raw_parts_mut(err, err_len as usize) };
                put_cstr(buf, &msg);
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_has_a_recorder() {
        for q in QUERIES {
            assert!(recorder(q.name).is_some(), "no recorder for {}", q.name);
        }
    }

    #[test]
    fn memory_v2_version_is_nvml_h() {
        assert_eq!(MEMORY_V2_VERSION, 0x0200_0028);
    }
}
