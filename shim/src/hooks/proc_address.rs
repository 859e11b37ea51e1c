//! cuGetProcAddress: which answers are replaced by a wrapper, and by which one.

use core::ffi::{CStr, c_char, c_int, c_void};

use shim_proto::cuda::names::{self, IDENTITY_ONLY, RULE_MAX_VERSION, VARIANTS};
use shim_rt::dl::set_once;

use super::Ptr;
use super::libcuda::real;
use super::slots::{SLOTS, hooked, mark};
use super::state::{emit, event};
use super::table::TABLE;

const PROC_LEGACY_STREAM: u64 = 1;
const PROC_PER_THREAD_STREAM: u64 = 2;

/// Replaces the entry point cuGetProcAddress answered with our wrapper when it is one of ours.
///
/// # Safety
/// Called after cuGetProcAddress succeeded, with its arguments: `symbol` null or a C string,
/// `pfn` null or the out-parameter the driver has just written.
pub(super) unsafe fn wrap_proc(symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64) {
    if symbol.is_null() || pfn.is_null() {
        return;
    }
    // SAFETY: the driver wrote *pfn on success.
    let p = unsafe { *pfn };
    // SAFETY: the caller's symbol name, a C string the driver has just accepted.
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if p.is_null() || name.len() < 3 || &name[..2] != b"cu" {
        return;
    }
    if let Some(w) = proc_wrapper(name, p, version, flags) {
        // SAFETY: the same out-parameter, read above.
        unsafe { *pfn = w as Ptr };
    }
}

fn proc_wrapper(name: &[u8], p: Ptr, version: c_int, flags: u64) -> Option<*const c_void> {
    let mut first = None;
    let mut has_per_thread = false;
    let pc = p as *const c_void;
    // Asked for a variant by its full name ("cuMemAlloc_v2"): that name is its ABI.
    if let Some(i) = names::variant_id(name)
        && VARIANTS[i].base.as_bytes() != name
    {
        let w = TABLE.0[i];
        if w.is_ours(pc) {
            return None;
        }
        if real::<0>(i) == Some(p) {
            if mark(i, 1) {
                hooked(i, "proc", "identity");
            }
            return Some(w.link);
        }
        if set_once(&SLOTS[1][i], p) {
            if mark(i, 1) {
                hooked(i, "proc", "name");
            }
            return Some(w.proc_);
        }
        return None;
    }
    for (i, v) in VARIANTS.iter().enumerate() {
        if v.base.as_bytes() != name {
            continue;
        }
        // Already ours: a libcuda that takes the address of its own exported function gets
        // the shim's export (LD_PRELOAD interposes it), and a nested lookup may answer one of
        // our wrappers. Wrapping again would count and account every call twice.
        let w = TABLE.0[i];
        if w.is_ours(pc) {
            if mark(i, 1) {
                hooked(i, "proc", "already");
            }
            return None;
        }
        first.get_or_insert(i);
        has_per_thread |= v.per_thread;
        // Identity: the answer is libcuda's export of this variant.
        if real::<0>(i) == Some(p) {
            if mark(i, 1) {
                hooked(i, "proc", "identity");
            }
            return Some(w.link);
        }
    }
    let first = first?;
    // Version rule: the newest variant the caller's CUDA version asks for, in the stream mode
    // it asks for (LEGACY or DEFAULT: legacy; PER_THREAD: _ptsz/_ptds).
    let per_thread =
        has_per_thread && flags & PROC_PER_THREAD_STREAM != 0 && flags & PROC_LEGACY_STREAM == 0;
    let version = version.max(0) as u32;
    let chosen = (version < RULE_MAX_VERSION)
        .then(|| {
            VARIANTS
                .iter()
                .enumerate()
                .filter(|(_, v)| {
                    v.base.as_bytes() == name
                        && v.per_thread == per_thread
                        && v.min_version != IDENTITY_ONLY
                        && v.min_version <= version
                })
                .max_by_key(|(_, v)| v.min_version)
                .map(|(i, _)| i)
        })
        .flatten();
    if let Some(i) = chosen
        && set_once(&SLOTS[1][i], p)
    {
        if mark(i, 1) {
            hooked(i, "proc", "version");
        }
        return Some(TABLE.0[i].proc_);
    }
    if mark(first, 3) {
        let mut l = event("nomatch");
        l.str("call", VARIANTS[first].base)
            .u64("version", version as u64)
            .u64("flags", flags);
        emit(l);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::id;

    #[test]
    fn version_rule_picks_the_variant_asked_for() {
        // Nothing is loaded in the test process: identity never matches, the rule decides.
        let fake = 0x1234usize as Ptr;
        let w = proc_wrapper(b"cuLaunchKernel", fake, 12000, PROC_PER_THREAD_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuLaunchKernel_ptsz")].proc_));
        let w = proc_wrapper(b"cuLaunchKernel", fake, 12000, PROC_LEGACY_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuLaunchKernel")].proc_));
        assert_eq!(
            proc_wrapper(b"cuMemAlloc", 0x99 as Ptr, 3000, 0),
            None,
            "v1 ABI (32-bit sizes) is never wrapped"
        );
        let w = proc_wrapper(b"cuMemAlloc", 0x99 as Ptr, 12000, PROC_PER_THREAD_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuMemAlloc_v2")].proc_));
        assert_eq!(
            proc_wrapper(b"cuMemAlloc", 0x98 as Ptr, 12000, 0),
            None,
            "a second, different pointer for the same variant is passed through"
        );
        assert_eq!(
            proc_wrapper(b"cuCtxCreate", 0x77 as Ptr, 12000, 0),
            None,
            "cuCtxCreate's ABI depends on the version: identity only"
        );
        assert_eq!(
            proc_wrapper(b"cuStreamSynchronize", 0x77 as Ptr, 13000, 0),
            None,
            "no version rule from CUDA 13 on"
        );
        assert_eq!(
            proc_wrapper(b"cuDeviceGetName", 0x77 as Ptr, 13000, 0),
            None
        );
        assert_eq!(
            proc_wrapper(b"cuMemcpyHtoD_v2_ptds", 0x55 as Ptr, 13000, 0),
            Some(TABLE.0[id("cuMemcpyHtoD_v2_ptds")].proc_),
            "a full variant name is its own ABI, whatever the version"
        );
    }
}
