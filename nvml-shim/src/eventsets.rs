//! NVML event sets, and XID faults delivered through them (eventType 8 =
//! nvmlEventTypeXidCriticalError, eventData = the XID).
//!
//! Over the real library the sets are the driver's: registrations for XID events are noted,
//! and a wait returns a due XID fault at once; before then it waits on the driver in slices
//! that end when the next XID fault is due, so the event arrives at its time. In a replay the
//! sets are the library's own and nothing but XID faults ever happens on them.
//!
//! Each event set registered for XID events on a GPU receives each XID fault for that GPU
//! once: at the fault's time, or at registration if that is later.

use core::ffi::c_uint;
use std::sync::Mutex;
use std::time::Duration;

use shim_rt::process::now_us;

use crate::abi::{
    Device, ERROR_FUNCTION_NOT_FOUND, ERROR_INVALID_ARGUMENT, ERROR_NOT_SUPPORTED, ERROR_TIMEOUT,
    ERROR_UNINITIALIZED, EventData, EventSet, Ret, SUCCESS, addr,
};
use crate::call::{Start, enter, forward, forward_or_replay, mask, start_device};
use crate::exports::Fid;
use crate::faults::each_bit;
use crate::proto::fault::{Delay, FaultKind, XID_EVENT_TYPE};
use crate::state::{Backend, State};

pub type WaitFn = unsafe extern "C" fn(EventSet, *mut EventData, c_uint) -> Ret;

/// A set registered for XID events on a GPU.
struct Registration {
    set: usize,
    gpu: Option<u32>,
    device: usize,
    /// XID faults already delivered to it (bit per fault).
    delivered: u64,
}

static REGISTRATIONS: Mutex<Vec<Registration>> = Mutex::new(Vec::new());
/// The replay's own sets (addresses of boxed tokens).
static REPLAY_SETS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// How often a wait looks again for XID faults that start after a number of calls.
const CALL_DELAY_POLL: Duration = Duration::from_millis(20);

fn is_replay_set(set: EventSet) -> bool {
    REPLAY_SETS
        .lock()
        .map(|l| l.contains(&addr(set)))
        .unwrap_or(false)
}

/// # Safety
/// `set` is the caller's pointer.
pub unsafe fn create(f: Fid, set: *mut EventSet, real: impl FnOnce() -> Ret) -> Ret {
    forward_or_replay(f, real, |_, _| {
        if set.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        let token = Box::into_raw(Box::new(0u64)) as EventSet;
        if let Ok(mut l) = REPLAY_SETS.lock() {
            l.push(addr(token));
        }
        // SAFETY: the caller's pointer, checked non-null.
        unsafe { *set = token };
        SUCCESS
    })
}

/// # Safety
/// The caller's arguments.
pub unsafe fn register(
    f: Fid,
    dev: Device,
    types: u64,
    set: EventSet,
    real: impl FnOnce() -> Ret,
) -> Ret {
    let go = match start_device(f, dev) {
        Start::Forward => return forward(real),
        Start::Answer(rc) => return rc,
        Start::Serve(go) => go,
    };
    let (s, m, gpu) = (go.s, go.mask, go.gpu);
    let mut rc = match &s.backend {
        Backend::Replay(_) if !is_replay_set(set) => ERROR_INVALID_ARGUMENT,
        Backend::Replay(_) => SUCCESS,
        _ => forward(real),
    };
    let targeted = each_bit(m & s.faults.xid_mask()).any(|i| s.faults.targets(i, gpu));
    if targeted && types & XID_EVENT_TYPE != 0 {
        // Where the driver does not offer XID events (some VMs), the fault still delivers.
        if rc == ERROR_NOT_SUPPORTED {
            rc = SUCCESS;
        }
        if rc == SUCCESS
            && let Ok(mut regs) = REGISTRATIONS.lock()
        {
            regs.push(Registration {
                set: addr(set),
                gpu,
                device: addr(dev),
                delivered: 0,
            });
        }
    }
    rc
}

/// The next XID fault due on `set`: (device, xid, gpu, fault index), marked delivered.
fn next_xid(s: &State, f: Fid, set: usize) -> Option<(usize, u32, Option<u32>, usize)> {
    let xids = mask(s, f) & s.faults.xid_mask();
    let mut regs = REGISTRATIONS.lock().ok()?;
    for r in regs.iter_mut().filter(|r| r.set == set) {
        for i in each_bit(xids & !r.delivered) {
            if s.faults.targets(i, r.gpu) && s.faults.is_active(i, 0, Some(f), &s.sink) {
                r.delivered |= 1 << i;
                let FaultKind::Xid(code) = s.faults.list[i].kind else {
                    continue;
                };
                return Some((r.device, code, r.gpu, i));
            }
        }
    }
    None
}

/// How long until an XID fault not yet started could be delivered on `set`.
fn until_due(s: &State, f: Fid, set: usize) -> Option<Duration> {
    let xids = mask(s, f) & s.faults.xid_mask();
    let regs = REGISTRATIONS.lock().ok()?;
    let elapsed = s.faults.elapsed();
    let mut soonest: Option<Duration> = None;
    for r in regs.iter().filter(|r| r.set == set) {
        for i in each_bit(xids & !r.delivered) {
            if !s.faults.targets(i, r.gpu) {
                continue;
            }
            let d = match s.faults.list[i].delay {
                Delay::AfterCalls(_) => CALL_DELAY_POLL,
                delay => delay.due_in(elapsed).unwrap_or(CALL_DELAY_POLL),
            };
            soonest = Some(soonest.map_or(d, |x| x.min(d)));
        }
    }
    soonest
}

/// # Safety
/// `data` is the caller's pointer (an nvmlEventData_t; the v1 call's is three fields long).
unsafe fn put(data: *mut EventData, v2: bool, device: usize, xid: u32) {
    // SAFETY: the caller's struct; v1 callers get the first three fields only.
    unsafe {
        core::ptr::addr_of_mut!((*data).device).write(device as Device);
        core::ptr::addr_of_mut!((*data).eventType).write(XID_EVENT_TYPE);
        core::ptr::addr_of_mut!((*data).eventData).write(xid as u64);
        if v2 {
            core::ptr::addr_of_mut!((*data).gpuInstanceId).write(u32::MAX);
            core::ptr::addr_of_mut!((*data).computeInstanceId).write(u32::MAX);
        }
    }
}

/// nvmlEventSetWait and _v2 (`f` says which; the real one is called with shorter timeouts).
///
/// # Safety
/// The caller's arguments.
pub unsafe fn wait(
    f: Fid,
    set: EventSet,
    data: *mut EventData,
    timeout_ms: c_uint,
    v2: bool,
) -> Ret {
    let call_real = |ms: c_uint| match crate::real::func::<WaitFn>(f) {
        // SAFETY: the real nvmlEventSetWait(_v2) with the caller's set and buffer.
        Some(p) => forward(|| unsafe { p(set, data, ms) }),
        None => ERROR_FUNCTION_NOT_FOUND,
    };
    let Some((s, _)) = enter(f) else {
        return call_real(timeout_ms);
    };
    let replay = match &s.backend {
        Backend::Real => false,
        Backend::Replay(r) => {
            if let Err(rc) = r.ready() {
                return rc;
            }
            if !is_replay_set(set) {
                return ERROR_INVALID_ARGUMENT;
            }
            true
        }
        Backend::Broken => return ERROR_UNINITIALIZED,
    };
    let wait_for = |ms: u64| {
        if replay {
            std::thread::sleep(Duration::from_millis(ms));
            ERROR_TIMEOUT
        } else {
            call_real(ms.min(c_uint::MAX as u64) as c_uint)
        }
    };
    if mask(s, f) == 0 {
        return wait_for(timeout_ms as u64);
    }
    if data.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    let deadline = now_us() + timeout_ms as u64 * 1000;
    loop {
        if let Some((device, xid, gpu, i)) = next_xid(s, f, addr(set)) {
            // SAFETY: the caller's buffer, checked non-null.
            unsafe { put(data, v2, device, xid) };
            s.faults.delivered(i, gpu, f, format!("xid {xid}"), &s.sink);
            return SUCCESS;
        }
        let left = Duration::from_micros(deadline.saturating_sub(now_us()));
        let slice = until_due(s, f, addr(set)).map_or(left, |d| d.min(left));
        let rc = wait_for(slice.as_micros().div_ceil(1000) as u64);
        if rc != ERROR_TIMEOUT {
            return rc;
        }
        if now_us() >= deadline {
            if let Some((device, xid, gpu, i)) = next_xid(s, f, addr(set)) {
                // SAFETY: as above.
                unsafe { put(data, v2, device, xid) };
                s.faults.delivered(i, gpu, f, format!("xid {xid}"), &s.sink);
                return SUCCESS;
            }
            return ERROR_TIMEOUT;
        }
    }
}

/// # Safety
/// The caller's set.
pub unsafe fn free(f: Fid, set: EventSet, real: impl FnOnce() -> Ret) -> Ret {
    let Some((s, _)) = enter(f) else {
        return real();
    };
    if s.faults.xid_mask() != 0
        && let Ok(mut regs) = REGISTRATIONS.lock()
    {
        regs.retain(|r| r.set != addr(set));
    }
    match &s.backend {
        Backend::Real => forward(real),
        Backend::Replay(_) => {
            let known = REPLAY_SETS
                .lock()
                .map(|mut l| {
                    let before = l.len();
                    l.retain(|x| *x != addr(set));
                    l.len() != before
                })
                .unwrap_or(false);
            if !known {
                return ERROR_INVALID_ARGUMENT;
            }
            // SAFETY: a token `create` boxed, removed from the list once.
            drop(unsafe { Box::from_raw(set as *mut u64) });
            SUCCESS
        }
        Backend::Broken => ERROR_UNINITIALIZED,
    }
}
