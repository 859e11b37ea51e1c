//! nvmlDeviceGetFieldValues: each requested field answered on its own (its `nvmlReturn`), from
//! the snapshot key `nvmlDeviceGetFieldValues(fieldId,scopeId)` in a replay; the faults rewrite
//! the fields they own (recovery action, DBE totals, PCIe replays, remapped rows).

use core::ffi::c_int;

use crate::abi::{Device, ERROR_INVALID_ARGUMENT, ERROR_UNKNOWN, FieldValue, Ret, SUCCESS};
use crate::call::{Serving, Start, forward, start_device};
use crate::exports::{Fid, NAMES};
use crate::replay::{Found, Replay};
use crate::rewrite::{self, Ctx};
use crate::sink::Sink;
use crate::state::Backend;

const Q: usize = crate::proto::query::index("nvmlDeviceGetFieldValues");

fn realtime_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn fill(r: &Replay, f: Fid, gpu: u32, v: &mut FieldValue, sink: &Sink) {
    let params = [v.fieldId, v.scopeId];
    v.timestamp = realtime_us();
    v.latencyUsec = 0;
    v.nvmlReturn = match r.device(gpu, Q, &params) {
        Found::Value(x) => {
            let vt = x["valueType"].as_u64().unwrap_or(u64::MAX) as u32;
            match FieldValue::bits_of(vt, &x["value"]) {
                Some(bits) => {
                    v.valueType = vt;
                    v.value = bits;
                    SUCCESS
                }
                None => ERROR_UNKNOWN,
            }
        }
        Found::Error(rc) => rc,
        Found::Missing => r.missing(NAMES[f as usize], Q, &params, Some(gpu), None, sink),
    };
}

/// # Safety
/// `values` is the caller's array of `count` field values.
pub unsafe fn get(
    f: Fid,
    dev: Device,
    count: c_int,
    values: *mut FieldValue,
    real: impl FnOnce() -> Ret,
) -> Ret {
    let Serving { s, call, mask, gpu } = match start_device(f, dev) {
        Start::Forward => return forward(real),
        Start::Answer(rc) => return rc,
        Start::Serve(go) => go,
    };
    let faults = mask != 0;
    let rc = match &s.backend {
        Backend::Replay(_) if values.is_null() || count < 0 => return ERROR_INVALID_ARGUMENT,
        Backend::Replay(r) => {
            // SAFETY: the caller's array of `count` values.
            let vals = unsafe { core::slice::from_raw_parts_mut(values, count as usize) };
            for v in vals {
                fill(r, f, gpu.unwrap_or(u32::MAX), v, &s.sink);
            }
            SUCCESS
        }
        _ => forward(real),
    };
    if faults && rc == SUCCESS && !values.is_null() && count > 0 {
        // SAFETY: the caller's array of `count` values, filled.
        let vals = unsafe { core::slice::from_raw_parts_mut(values, count as usize) };
        for v in vals {
            let params = [v.fieldId, v.scopeId];
            s.faults
                .rewrite(f, gpu, call, &s.sink, |kind, since_active| {
                    let ctx = Ctx {
                        params: &params,
                        since_active,
                    };
                    rewrite::field(kind, &ctx, v)
                });
        }
    }
    rc
}
