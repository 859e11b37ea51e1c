//! `leak-check` (`leaks=1`): every allocation, free, address reservation and mapping as an
//! event, allocations and reservations with their native call site (return addresses, resolved
//! by gpu-doctor after the run against the maps copies of hooks/maps.rs). One `write` per
//! event, so a process that ends without exit handlers loses nothing written before.

use shim_proto::cuda::names::VARIANTS;

use super::backtrace::{self, MAX};
use super::libcuda::current_ctx;
use super::maps::MAPS;
use super::state::{emit, event, state};
use crate::accounting::Key;

/// The call site: return addresses past the shim's own frames, and the maps copy they
/// resolve in.
struct Site {
    ips: [u64; MAX],
    n: usize,
    maps: u64,
}

#[inline(never)]
fn site() -> Site {
    let s = state();
    let want = s.config.frames() as usize;
    let frames = backtrace::capture(want);
    let events = s.events.as_deref().unwrap_or("");
    let mut out = Site {
        ips: [0; MAX],
        n: 0,
        maps: 0,
    };
    let mut m = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    if m.seq == 0 {
        m.refresh(events);
    }
    let skip = frames.ips[..frames.n]
        .iter()
        .take_while(|&&ip| m.in_shim(ip))
        .count();
    let kept = &frames.ips[skip..frames.n.min(skip + want)];
    if kept.iter().any(|&ip| !m.covers(ip)) {
        m.refresh(events);
    }
    out.maps = m.seq;
    drop(m);
    out.ips[..kept.len()].copy_from_slice(kept);
    out.n = kept.len();
    out
}

fn key_field(l: &mut shim_proto::cuda::events::Line, key: Key) {
    match key {
        Key::Ptr(p) => l.hex("ptr", p),
        Key::Handle(h) => l.hex("handle", h),
    };
}

/// A device allocation (or cuMemCreate handle) succeeded.
pub(super) fn allocated(id: usize, key: Key, size: u64, dev: i32) {
    let at = site();
    let mut l = event("alloc");
    l.str("call", VARIANTS[id].name);
    key_field(&mut l, key);
    l.u64("size", size)
        .i64("dev", dev as i64)
        .hex("ctx", current_ctx())
        .u64("maps", at.maps)
        .hex_array("bt", &at.ips[..at.n]);
    emit(l);
}

/// A free succeeded; `known` is (device, size) when the shim had seen the allocation.
pub(super) fn freed(id: usize, key: Key, known: Option<(i32, u64)>) {
    let mut l = event("free");
    l.str("call", VARIANTS[id].name);
    key_field(&mut l, key);
    if let Some((dev, size)) = known {
        l.u64("size", size).i64("dev", dev as i64);
    }
    emit(l);
}

/// cuMemAddressReserve / cuMemMap succeeded (`ev` = "reserve" / "map").
pub(super) fn vmm_acquired(ev: &str, id: usize, ptr: u64, size: u64, mapping: Option<(u64, u64)>) {
    let at = site();
    let mut l = event(ev);
    l.str("call", VARIANTS[id].name)
        .hex("ptr", ptr)
        .u64("size", size);
    if let Some((offset, handle)) = mapping {
        l.u64("offset", offset).hex("handle", handle);
    }
    l.u64("maps", at.maps).hex_array("bt", &at.ips[..at.n]);
    emit(l);
}

/// cuMemAddressFree / cuMemUnmap succeeded (`ev` = "unreserve" / "unmap").
pub(super) fn vmm_released(ev: &str, id: usize, ptr: u64, size: u64) {
    let mut l = event(ev);
    l.str("call", VARIANTS[id].name)
        .hex("ptr", ptr)
        .u64("size", size);
    emit(l);
}
