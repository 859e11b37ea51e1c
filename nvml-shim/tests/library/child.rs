//! Helpers run in a child process (the library reads its environment when it loads), started
//! by the other tests through `common::child`. Ignored in a plain `cargo test`: they are not
//! tests themselves.

use std::ffi::{CString, c_char, c_int, c_uint};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, P2pCapabilitiesIndex, TemperatureSensor,
};
use nvml_wrapper::structs::device::FieldId;
use serde_json::{Value, json};

fn lib() -> String {
    std::env::var("NVML_SHIM_TEST_LIB").expect("started by common::child")
}

fn r<T: serde::Serialize, E: std::fmt::Debug>(x: Result<T, E>) -> Value {
    match x {
        Ok(v) => json!(v),
        Err(e) => json!(format!("error: {e:?}")),
    }
}

/// What gpu-doctor's probe reads (src/probe/nvml.rs), through nvml-wrapper.
fn facts(path: &str) -> Value {
    let nvml = match Nvml::builder().lib_path(std::ffi::OsStr::new(path)).init() {
        Ok(n) => n,
        Err(e) => return json!({"init": format!("{e:?}")}),
    };
    // The raw symbol gpu-doctor reads itself (nvml-wrapper does not wrap it).
    type RemappedRowsFn = unsafe extern "C" fn(
        *mut std::ffi::c_void,
        *mut c_uint,
        *mut c_uint,
        *mut c_uint,
        *mut c_uint,
    ) -> c_int;
    // SAFETY: the library nvml-wrapper loaded; only reference-counted again.
    let raw = unsafe { libloading::Library::new(path) }.unwrap();
    // SAFETY: nvmlDeviceGetRemappedRows's C signature.
    let remapped: libloading::Symbol<RemappedRowsFn> =
        unsafe { raw.get(b"nvmlDeviceGetRemappedRows\0") }.unwrap();
    let count = nvml.device_count().unwrap_or(0);
    let mut gpus = Vec::new();
    for i in 0..count {
        let d = match nvml.device_by_index(i) {
            Ok(d) => d,
            Err(e) => {
                gpus.push(json!({"index": i, "lookup": format!("{e:?}")}));
                continue;
            }
        };
        let recovery = d
            .field_values_for(&[FieldId(230)])
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(|s| s.ok())
            .and_then(|s| s.value.ok())
            .map(|v| format!("{v:?}"));
        let links: Vec<Value> = (0..18)
            .map(|l| r(d.link_wrapper_for(l).is_active()))
            .collect();
        let (mut c, mut u, mut p, mut f) = (0, 0, 0, 0);
        // SAFETY: four unsigned ints of ours.
        let rc = unsafe {
            remapped(
                d.handle() as *mut std::ffi::c_void,
                &mut c,
                &mut u,
                &mut p,
                &mut f,
            )
        };
        gpus.push(json!({
            "index": i,
            "index_back": r(d.index()),
            "name": r(d.name()),
            "uuid": r(d.uuid()),
            "bus": r(d.pci_info().map(|p| p.bus_id)),
            "width": r(d.current_pcie_link_width()),
            "max_width": r(d.max_pcie_link_width()),
            "gen": r(d.current_pcie_link_gen()),
            "replays": r(d.pcie_replay_counter()),
            "temperature": r(d.temperature(TemperatureSensor::Gpu)),
            "reasons": r(d.current_throttle_reasons().map(|x| x.bits())),
            "memory_used": r(d.memory_info().map(|m| m.used)),
            "memory_total": r(d.memory_info().map(|m| m.total)),
            "ecc_unc_volatile": r(d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)),
            "ecc_unc_aggregate": r(d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)),
            "sm_clock_max": r(d.max_clock_info(Clock::SM)),
            "recovery": recovery,
            "links": links,
            "remapped": if rc == 0 { json!([c, u, p, f]) } else { json!(format!("error {rc}")) },
            "processes": r(d.running_compute_processes().map(|p| p.len())),
            "decoder": r(d.decoder_utilization().map(|u| u.utilization)),
        }));
    }
    let pair = match (nvml.device_by_index(0), nvml.device_by_index(1)) {
        (Ok(a), Ok(b)) => json!({
            "p2p_read": r(a.p2p_status(&b, P2pCapabilitiesIndex::Read).map(|s| format!("{s:?}"))),
            "ancestor": r(a.topology_common_ancestor(b).map(|l| format!("{l:?}"))),
        }),
        _ => Value::Null,
    };
    let by_uuid = nvml
        .device_by_index(1)
        .and_then(|d| d.uuid())
        .and_then(|u| nvml.device_by_uuid(u.as_str()))
        .and_then(|d| d.index());
    json!({
        "driver": r(nvml.sys_driver_version()),
        "cuda": r(nvml.sys_cuda_driver_version()),
        "count": count,
        "gpus": gpus,
        "pair": pair,
        "by_uuid": r(by_uuid),
        "by_bus": r(nvml.device_by_pci_bus_id("0000:2a:00.0").and_then(|d| d.index())),
    })
}

#[test]
#[ignore = "helper process, started by the replay and interpose tests"]
fn nvml_wrapper_facts() {
    println!("FACTS {}", facts(&lib()));
}

/// Records a snapshot the way gpu-doctor will: load the library, call its recorder.
#[test]
#[ignore = "helper process, started by the replay tests"]
fn record_snapshot() {
    type SnapshotFn = unsafe extern "C" fn(*const c_char, *mut c_char, c_uint) -> c_int;
    let out = std::env::var("NVML_SHIM_TEST_OUT").expect("started with an output path");
    // SAFETY: loading the library; its constructor only reads the environment.
    let lib = unsafe { libloading::Library::new(lib()) }.unwrap();
    // SAFETY: the recorder's C signature (proto::SNAPSHOT_SYMBOL).
    let record: libloading::Symbol<SnapshotFn> =
        unsafe { lib.get(b"gpu_doctor_nvml_snapshot\0") }.unwrap();
    let path = CString::new(out).unwrap();
    let mut err = [0 as c_char; 256];
    // SAFETY: a C string and a buffer of 256 bytes.
    let rc = unsafe { record(path.as_ptr(), err.as_mut_ptr(), err.len() as c_uint) };
    // SAFETY: the recorder NUL-terminates its message.
    let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    println!("SNAPSHOT {}", json!({"rc": rc, "error": msg}));
}
