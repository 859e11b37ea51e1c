//! Device handles and NVML indices. A replay hands out the addresses of a static array (one
//! byte per GPU, never read by anyone); over the real library the driver's handles are mapped
//! to indices as the program looks them up, or with nvmlDeviceGetIndex on first sight.

use core::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::{Device, Ret, SUCCESS};
use crate::exports::Fid;
use crate::proto::fault::MAX_GPUS;

const N: usize = MAX_GPUS as usize;

static TOKENS: [u8; N] = [0; N];
static HANDLES: [AtomicPtr<c_void>; N] = [const { AtomicPtr::new(core::ptr::null_mut()) }; N];

/// The handle a replay hands out for GPU `gpu`.
pub fn replay_handle(gpu: u32) -> Device {
    TOKENS[..].as_ptr().wrapping_add(gpu as usize) as Device
}

/// The GPU of a replay handle; None for anything else.
pub fn replay_gpu(dev: Device) -> Option<u32> {
    let base = TOKENS.as_ptr() as usize;
    let p = dev as usize;
    (p >= base && p < base + N).then(|| (p - base) as u32)
}

/// Remembers the driver's handle of GPU `gpu` (from a lookup by index).
pub fn remember(gpu: u32, dev: Device) {
    if let Some(slot) = HANDLES.get(gpu as usize) {
        slot.store(dev, Ordering::Release);
    }
}

/// The NVML index of a driver handle.
pub fn real_gpu(dev: Device) -> Option<u32> {
    if dev.is_null() {
        return None;
    }
    if let Some(i) = HANDLES
        .iter()
        .position(|h| h.load(Ordering::Acquire) == dev)
    {
        return Some(i as u32);
    }
    type IndexFn = unsafe extern "C" fn(Device, *mut c_uint) -> Ret;
    let f = crate::real::func::<IndexFn>(Fid::nvmlDeviceGetIndex)?;
    let mut i: c_uint = 0;
    // SAFETY: nvmlDeviceGetIndex(device, unsigned int*), with the re-entrancy guard held.
    let rc = crate::call::forward(|| unsafe { f(dev, &mut i) });
    if rc != SUCCESS || i >= MAX_GPUS {
        return None;
    }
    remember(i, dev);
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_handles_round_trip() {
        for g in [0, 1, 63] {
            assert_eq!(replay_gpu(replay_handle(g)), Some(g));
        }
        assert_eq!(replay_gpu(core::ptr::null_mut()), None);
        assert_eq!(replay_gpu(0x1000 as Device), None);
    }
}
