//! `inject illegal-address`: a sticky error in its own process, and what NVML saw.
//!
//! Each variant runs in a process of its own (a sticky error poisons the process's contexts):
//! `illegal-address` (write_u32 through an unmapped pointer → 700), `trap` (trap_kernel → 719)
//! and `recover` (a fresh process creates a context and runs a kernel). The orchestrating
//! process never touches CUDA: it starts the variants and watches NVML for XID events.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Steps, Target, rc};
use crate::facts::faults::{VariantFacts, XidEvent, XidFacts};
use crate::probe::cuda::{self, CUresult, check, sys};
use crate::probe::kernels::{self, Module, name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    IllegalAddress,
    Trap,
    Recover,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::IllegalAddress, Variant::Trap, Variant::Recover];
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::IllegalAddress => "illegal-address",
            Variant::Trap => "trap",
            Variant::Recover => "recover",
        }
    }
}

/// Step names (stable: analyze::faults reads them).
pub mod step {
    pub const LAUNCH: &str = "launch the faulting kernel";
    pub const FAULT: &str = "synchronize: the fault surfaces";
    /// Prefix of the calls made in the faulted context.
    pub const AFTER: &str = crate::facts::faults::step_names::STICKY_AFTER;
    pub const RECOVER: &str = "fresh process: ";
}

/// The null page: never mapped on the device. (1 TiB, tried first, is inside the range the
/// H100's driver hands out for allocations: the write landed in our own buffer and nothing
/// faulted.)
pub const BAD_ADDRESS: u64 = 0;
const VALUE: u32 = 0xBAD;
const RECOVER_VALUE: u32 = 0x600D;
const ELEMS: u64 = 1 << 16;

/// One variant, in this (sub)process.
pub fn run_variant(steps: &Steps, t: &Target, variant: Variant) -> Result<VariantFacts> {
    let mut f = VariantFacts {
        pid: std::process::id(),
        ..Default::default()
    };
    let recover = variant == Variant::Recover;
    let pre = if recover { step::RECOVER } else { "" };
    let mut c: sys::CUcontext = std::ptr::null_mut();
    let r = steps.call(
        &format!("{pre}create a context"),
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        // SAFETY: `c` is a live out-pointer; `t.dev` came from cuDeviceGetByPCIBusId.
        || unsafe { sys::cuCtxCreate_v2(&mut c, 0, t.dev) },
    );
    check(r, "cuCtxCreate_v2")?;
    let module = Module::load()?;
    let mut buf: sys::CUdeviceptr = 0;
    let r = steps.call(
        &format!("{pre}allocate"),
        "cuMemAlloc_v2",
        &[rc::SUCCESS],
        // SAFETY: `buf` is a live out-pointer; the context just created is current.
        || unsafe { sys::cuMemAlloc_v2(&mut buf, (ELEMS * 4) as usize) },
    );
    check(r, "cuMemAlloc_v2")?;

    if recover {
        let fill = module.function(name::FILL_U32)?;
        let (_, equal) = super::fill_and_read_back(steps, pre, fill, buf, RECOVER_VALUE, ELEMS);
        f.value_ok = Some(equal);
        steps.call(
            &format!("{pre}free"),
            "cuMemFree_v2",
            &[rc::SUCCESS],
            // SAFETY: `buf` was allocated above and is freed once, here, after
            // fill_and_read_back synchronised the kernel that wrote it.
            || unsafe { sys::cuMemFree_v2(buf) },
        );
        module.unload();
        steps.call(
            &format!("{pre}destroy the context"),
            "cuCtxDestroy_v2",
            &[rc::SUCCESS],
            // SAFETY: `c` was created above and is destroyed once, here; its buffer was freed
            // and its module unloaded.
            || unsafe { sys::cuCtxDestroy_v2(c) },
        );
        return Ok(f);
    }

    let (kernel, sticky, note) = match variant {
        Variant::Trap => (
            module.function(name::TRAP)?,
            rc::LAUNCH_FAILED,
            "a trapping kernel fails with LAUNCH_FAILED (719), a sticky error",
        ),
        _ => (
            module.function(name::WRITE_U32)?,
            rc::ILLEGAL_ADDRESS,
            "a store to unmapped memory fails with ILLEGAL_ADDRESS (700), a sticky error",
        ),
    };
    let empty = module.function(name::EMPTY)?;
    if variant == Variant::IllegalAddress {
        f.bad_address = Some(format!("{BAD_ADDRESS:#x}"));
    }
    let r = steps.call_noted(
        step::LAUNCH,
        "cuLaunchKernel",
        &[rc::SUCCESS],
        Some("the launch only queues the kernel: the fault is reported later"),
        // SAFETY: trap_kernel takes no arguments; write_u32(u32 *p, u32 value) gets pointers
        // to the live locals `p` (u64) and `v` (u32), its parameter types. p = BAD_ADDRESS is
        // the deliberate store to unmapped device memory: the GPU faults (no host memory is
        // written) and the sticky error is why each variant runs in a process of its own.
        || unsafe {
            if variant == Variant::Trap {
                kernels::launch(kernel, 1, 1, std::ptr::null_mut(), &mut [])
            } else {
                let (mut p, mut v) = (BAD_ADDRESS, VALUE);
                let mut args = [kernels::arg(&mut p), kernels::arg(&mut v)];
                kernels::launch(kernel, 1, 1, std::ptr::null_mut(), &mut args)
            }
        },
    );
    f.launch = Some(cuda::code(r));
    let r = steps.call_noted(
        step::FAULT,
        "cuCtxSynchronize",
        &[sticky],
        Some(note),
        // SAFETY: no arguments; waits for the faulting kernel in the current context.
        || unsafe { sys::cuCtxSynchronize() },
    );
    f.fault = Some(cuda::code(r));

    let snote = Some(
        "sticky: every later call in the faulted context returns the error; only a new process recovers",
    );
    let a = step::AFTER;
    let after: [(&str, &str, &mut dyn FnMut() -> CUresult); 4] = [
        // SAFETY: `p` is a live out-pointer; the faulted context is current (the driver
        // answers the sticky error).
        ("allocate", "cuMemAlloc_v2", &mut || unsafe {
            let mut p: sys::CUdeviceptr = 0;
            sys::cuMemAlloc_v2(&mut p, 4096)
        }),
        // SAFETY: `host` is a live 16-byte buffer, the size asked; `buf` is still a live
        // allocation of the faulted context (never freed in this variant).
        ("memcpy", "cuMemcpyDtoH_v2", &mut || unsafe {
            let mut host = [0u32; 4];
            sys::cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, buf, 16)
        }),
        // SAFETY: `empty` is the faulted context's `empty` kernel (no arguments); null is the
        // legacy stream.
        ("launch", "cuLaunchKernel", &mut || unsafe {
            kernels::launch_empty(empty, std::ptr::null_mut())
        }),
        // SAFETY: no arguments; the faulted context is current.
        ("synchronize", "cuCtxSynchronize", &mut || unsafe {
            sys::cuCtxSynchronize()
        }),
    ];
    for (what, call, fun) in after {
        let r = steps.call_noted(&format!("{a}{what}"), call, &[sticky], snote, fun);
        f.after_fault.push(cuda::code(r));
    }
    steps.call_noted(
        "destroy the faulted context",
        "cuCtxDestroy_v2",
        &[rc::SUCCESS, sticky],
        Some("destroying a faulted context is allowed; the process stays unusable for CUDA"),
        // SAFETY: `c` was created above and is destroyed once, here (allowed in a faulted
        // context); its buffer and module go with it and are not used afterwards.
        || unsafe { sys::cuCtxDestroy_v2(c) },
    );
    Ok(f)
}

/// Watches NVML for critical XID events on one GPU from a thread of its own.
pub struct XidWatch {
    stop: Arc<AtomicBool>,
    during: Arc<Mutex<String>>,
    handle: Option<std::thread::JoinHandle<XidFacts>>,
    failed: Option<XidFacts>,
}

impl XidWatch {
    /// Registers for XID events on the GPU with this PCI bus id; returns once registered (or
    /// once it is known that NVML cannot deliver them).
    pub fn start(started: Instant, pci_bus_id: &str) -> XidWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let during = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let bus = pci_bus_id.to_string();
        let (stop2, during2) = (stop.clone(), during.clone());
        let handle = std::thread::spawn(move || watch(started, &bus, &stop2, &during2, tx));
        let error = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {
                return XidWatch {
                    stop,
                    during,
                    handle: Some(handle),
                    failed: None,
                };
            }
            Ok(Err(e)) => {
                let _ = handle.join();
                e
            }
            Err(_) => {
                stop.store(true, Ordering::SeqCst);
                "NVML event registration did not answer within 5 s".into()
            }
        };
        XidWatch {
            stop,
            during,
            handle: None,
            failed: Some(XidFacts {
                watched: false,
                error: Some(error),
                events: vec![],
            }),
        }
    }

    pub fn set_during(&self, what: &str) {
        *self.during.lock().expect("during lock") = what.to_string();
    }

    /// Waits `linger` for late events, then stops and returns what was seen.
    pub fn finish(mut self, linger: Duration) -> XidFacts {
        if let Some(f) = self.failed.take() {
            return f;
        }
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

fn watch(
    started: Instant,
    bus: &str,
    stop: &AtomicBool,
    during: &Mutex<String>,
    ready: mpsc::Sender<Result<(), String>>,
) -> XidFacts {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::error::NvmlError;

    // A failure goes to XidWatch::start, which reports it (what this thread returns then is
    // not read).
    let fail = |e: String| {
        let _ = ready.send(Err(e));
        XidFacts::default()
    };
    let path = crate::probe::loader::nvml_library();
    let nvml = match Nvml::builder().lib_path(std::ffi::OsStr::new(&path)).init() {
        Ok(n) => n,
        Err(e) => return fail(format!("NVML: {e}")),
    };
    let registered = (|| -> Result<_, String> {
        let dev = nvml
            .device_by_pci_bus_id(bus)
            .map_err(|e| format!("NVML cannot open {bus}: {e}"))?;
        let set = nvml
            .create_event_set()
            .map_err(|e| format!("nvmlEventSetCreate: {e}"))?;
        dev.register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .map_err(|e| format!("nvmlDeviceRegisterEvents(XidCriticalError): {}", e.error))
    })();
    let set = match registered {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut facts = XidFacts {
        watched: true,
        ..Default::default()
    };
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::SeqCst) {
        match set.wait(100) {
            Ok(ev) => facts.events.push(XidEvent {
                xid: match ev.event_data {
                    Some(XidError::Value(v)) => Some(v),
                    _ => None,
                },
                at_ms: started.elapsed().as_secs_f64() * 1e3,
                during: during.lock().expect("during lock").clone(),
            }),
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                facts.error = Some(format!("nvmlEventSetWait: {e}"));
                break;
            }
        }
    }
    facts
}
