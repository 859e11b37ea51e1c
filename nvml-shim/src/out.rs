//! A call's output buffers (the caller's pointers): filled from a recorded answer in replay,
//! and handed to the rewrites as plain values.

use core::ffi::{c_char, c_uint, c_ulong};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::abi::{
    ERROR_INSUFFICIENT_SIZE, ERROR_INVALID_ARGUMENT, ERROR_UNKNOWN, MemoryV2, PciInfo, ProcessInfo,
    Ret, RetiredPage, SUCCESS, put_cstr,
};
use crate::proto::query::parse_cpulist;

pub trait Out: Copy {
    /// Writes a recorded value into the caller's buffers; the NVML code of the answer.
    ///
    /// # Safety
    /// The pointers are the caller's, valid as nvml.h documents them (or null).
    unsafe fn fill(self, v: &Value) -> Ret;
}

/// Several `unsigned int *` outputs (an `int *` pair such as the compute capability is
/// written through the same bits).
#[derive(Clone, Copy)]
pub struct Uints<const N: usize>(pub [*mut c_uint; N]);

impl<const N: usize> Uints<N> {
    /// The values, copied out (None when a pointer is null); write them back with `set`.
    ///
    /// # Safety
    /// As [`Out::fill`].
    pub unsafe fn get(self) -> Option<[u32; N]> {
        let mut out = [0u32; N];
        for (o, p) in out.iter_mut().zip(self.0) {
            // SAFETY: the caller's pointer, valid or null.
            *o = unsafe { *p.as_ref()? };
        }
        Some(out)
    }

    /// # Safety
    /// As [`Out::fill`], every pointer non-null.
    pub unsafe fn set(self, v: [u32; N]) {
        for (p, x) in self.0.into_iter().zip(v) {
            // SAFETY: checked non-null by `get` before.
            unsafe { *p = x };
        }
    }
}

impl<const N: usize> Out for Uints<N> {
    unsafe fn fill(self, v: &Value) -> Ret {
        if self.0.iter().any(|p| p.is_null()) {
            return ERROR_INVALID_ARGUMENT;
        }
        let Some(a) = v.as_array().filter(|a| a.len() == N) else {
            return ERROR_UNKNOWN;
        };
        let mut vals = [0u32; N];
        for (d, x) in vals.iter_mut().zip(a) {
            match u32::deserialize(x) {
                Ok(n) => *d = n,
                Err(_) => return ERROR_UNKNOWN,
            }
        }
        // SAFETY: non-null, the caller's.
        unsafe { self.set(vals) };
        SUCCESS
    }
}

/// A string output: `char *buf, unsigned int length`.
#[derive(Clone, Copy)]
pub struct Text(pub *mut c_char, pub c_uint);

impl Out for Text {
    unsafe fn fill(self, v: &Value) -> Ret {
        let Some(s) = v.as_str() else {
            return ERROR_UNKNOWN;
        };
        if self.0.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        if s.len() + 1 > self.1 as usize {
            return ERROR_INSUFFICIENT_SIZE;
        }
        // SAFETY: the caller's buffer holds `self.1` bytes, more than the string and its NUL.
        let dst = unsafe { core::slice::from_raw_parts_mut(self.0, self.1 as usize) };
        put_cstr(dst, s);
        SUCCESS
    }
}

/// One value behind one pointer — a number (`unsigned int *`, `unsigned long long *`, `int *`)
/// or a struct of numbers — whose JSON is its serde form (a number out of the type's range
/// does not fit: NVML_ERROR_UNKNOWN).
pub struct Plain<T>(pub *mut T);

impl<T> Clone for Plain<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Plain<T> {}

impl<T> Plain<T> {
    /// The caller's value (None when the pointer is null).
    ///
    /// # Safety
    /// As [`Out::fill`].
    pub unsafe fn get<'a>(self) -> Option<&'a mut T> {
        // SAFETY: the caller's pointer, valid or null.
        unsafe { self.0.as_mut() }
    }
}

impl<T: DeserializeOwned> Out for Plain<T> {
    unsafe fn fill(self, v: &Value) -> Ret {
        // SAFETY: as the trait says.
        let Some(dst) = (unsafe { self.get() }) else {
            return ERROR_INVALID_ARGUMENT;
        };
        match T::deserialize(v) {
            Ok(x) => {
                *dst = x;
                SUCCESS
            }
            Err(_) => ERROR_UNKNOWN,
        }
    }
}

/// nvmlMemory_v2_t: the caller's `version` stays.
#[derive(Clone, Copy)]
pub struct MemV2(pub *mut MemoryV2);

impl Out for MemV2 {
    unsafe fn fill(self, v: &Value) -> Ret {
        // SAFETY: the caller's pointer, valid or null.
        let Some(dst) = (unsafe { self.0.as_mut() }) else {
            return ERROR_INVALID_ARGUMENT;
        };
        match MemoryV2::deserialize(v) {
            Ok(x) => {
                *dst = MemoryV2 {
                    version: dst.version,
                    ..x
                };
                SUCCESS
            }
            Err(_) => ERROR_UNKNOWN,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Pci(pub *mut PciInfo);

impl Out for Pci {
    unsafe fn fill(self, v: &Value) -> Ret {
        // SAFETY: the caller's pointer, valid or null.
        let Some(dst) = (unsafe { self.0.as_mut() }) else {
            return ERROR_INVALID_ARGUMENT;
        };
        match PciInfo::from_json(v) {
            Some(p) => {
                *dst = p;
                SUCCESS
            }
            None => ERROR_UNKNOWN,
        }
    }
}

/// A CPU or node set: `unsigned int size` words of `unsigned long` bits.
#[derive(Clone, Copy)]
pub struct CpuSet(pub c_uint, pub *mut c_ulong);

impl Out for CpuSet {
    unsafe fn fill(self, v: &Value) -> Ret {
        if self.1.is_null() || self.0 == 0 {
            return ERROR_INVALID_ARGUMENT;
        }
        let Some(members) = v.as_str().and_then(|s| parse_cpulist(s).ok()) else {
            return ERROR_UNKNOWN;
        };
        // SAFETY: the caller's array of `size` words.
        let words = unsafe { core::slice::from_raw_parts_mut(self.1, self.0 as usize) };
        words.fill(0);
        let bits = c_ulong::BITS as usize;
        for m in members {
            if let Some(w) = words.get_mut(m as usize / bits) {
                *w |= 1 << (m as usize % bits);
            }
        }
        SUCCESS
    }
}

/// NVML's list protocol: `*count` in is the room, out the number of entries; too little room
/// (or no array) answers INSUFFICIENT_SIZE with the count needed, no entries SUCCESS.
///
/// # Safety
/// `count` is the caller's pointer (or null).
unsafe fn list_room(count: *mut c_uint, have_array: bool, n: usize) -> Result<(), Ret> {
    // SAFETY: the caller's pointer, valid or null.
    let Some(c) = (unsafe { count.as_mut() }) else {
        return Err(ERROR_INVALID_ARGUMENT);
    };
    let room = *c as usize;
    *c = n as c_uint;
    if n == 0 {
        return Err(SUCCESS);
    }
    if room < n || !have_array {
        return Err(ERROR_INSUFFICIENT_SIZE);
    }
    Ok(())
}

/// Running processes: `unsigned int *count, nvmlProcessInfo_t *infos`.
#[derive(Clone, Copy)]
pub struct Procs(pub *mut c_uint, pub *mut ProcessInfo);

impl Out for Procs {
    unsafe fn fill(self, v: &Value) -> Ret {
        let Ok(list) = Vec::<ProcessInfo>::deserialize(v) else {
            return ERROR_UNKNOWN;
        };
        // SAFETY: the caller's count pointer.
        if let Err(rc) = unsafe { list_room(self.0, !self.1.is_null(), list.len()) } {
            return rc;
        }
        for (i, p) in list.into_iter().enumerate() {
            // SAFETY: the caller said its array has room for at least this many.
            unsafe { *self.1.add(i) = p };
        }
        SUCCESS
    }
}

/// Retired pages: `unsigned int *count, unsigned long long *addresses[, *timestamps]`
/// (nvmlDeviceGetRetiredPages has no timestamps).
#[derive(Clone, Copy)]
pub struct Pages(pub *mut c_uint, pub *mut u64, pub Option<*mut u64>);

impl Out for Pages {
    unsafe fn fill(self, v: &Value) -> Ret {
        let Ok(list) = Vec::<RetiredPage>::deserialize(v) else {
            return ERROR_UNKNOWN;
        };
        let arrays = !self.1.is_null() && self.2.is_none_or(|t| !t.is_null());
        // SAFETY: the caller's count pointer.
        if let Err(rc) = unsafe { list_room(self.0, arrays, list.len()) } {
            return rc;
        }
        for (i, p) in list.into_iter().enumerate() {
            // SAFETY: the caller said its arrays have room for at least this many.
            unsafe {
                *self.1.add(i) = p.address;
                if let Some(t) = self.2 {
                    *t.add(i) = p.timestamp;
                }
            }
        }
        SUCCESS
    }
}

// SAFETY (every `unsafe` in these tests): the outputs point to locals of the sizes the calls
// are told.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::query::cpuset_members;
    use serde_json::json;

    #[test]
    fn scalars_and_text() {
        let mut w = 0u32;
        // SAFETY: a local.
        assert_eq!(unsafe { Plain(&mut w).fill(&json!(8)) }, SUCCESS);
        assert_eq!(w, 8);
        assert_eq!(
            unsafe { Plain::<u32>(core::ptr::null_mut()).fill(&json!(8)) },
            ERROR_INVALID_ARGUMENT
        );
        let mut buf = [0 as c_char; 8];
        let t = Text(buf.as_mut_ptr(), 8);
        assert_eq!(unsafe { t.fill(&json!("H200")) }, SUCCESS);
        assert_eq!(crate::abi::get_cstr(&buf), "H200");
        assert_eq!(
            unsafe { Text(buf.as_mut_ptr(), 4).fill(&json!("H200")) },
            ERROR_INSUFFICIENT_SIZE,
            "room for the NUL too"
        );
        let (mut a, mut b) = (0u32, 0u32);
        assert_eq!(
            unsafe { Uints([&mut a, &mut b]).fill(&json!([9, 0])) },
            SUCCESS
        );
        assert_eq!((a, b), (9, 0));
    }

    #[test]
    fn a_number_out_of_its_types_range_is_unknown() {
        let (mut u, mut i, mut l) = (0u32, 0i32, 0u64);
        assert_eq!(
            unsafe { Plain(&mut u).fill(&json!(1u64 << 32)) },
            ERROR_UNKNOWN
        );
        assert_eq!(unsafe { Plain(&mut u).fill(&json!(-1)) }, ERROR_UNKNOWN);
        assert_eq!(unsafe { Plain(&mut u).fill(&json!(1.5)) }, ERROR_UNKNOWN);
        assert_eq!(unsafe { Plain(&mut i).fill(&json!(-7)) }, SUCCESS);
        assert_eq!(
            unsafe { Plain(&mut i).fill(&json!(1u64 << 31)) },
            ERROR_UNKNOWN
        );
        assert_eq!(unsafe { Plain(&mut l).fill(&json!(u64::MAX)) }, SUCCESS);
        assert_eq!(unsafe { Plain(&mut l).fill(&json!(-1)) }, ERROR_UNKNOWN);
        assert_eq!((u, i, l), (0, -7, u64::MAX));
    }

    #[test]
    fn memory_v2_keeps_the_callers_version() {
        let mut m = MemoryV2 {
            version: 0x0200_0028,
            ..Default::default()
        };
        let v = json!({"total": 10, "reserved": 1, "free": 8, "used": 1});
        assert_eq!(unsafe { MemV2(&mut m).fill(&v) }, SUCCESS);
        assert_eq!((m.version, m.total, m.used), (0x0200_0028, 10, 1));
    }

    #[test]
    fn cpu_sets() {
        let mut words = [0 as c_ulong; 2];
        assert_eq!(
            unsafe { CpuSet(2, words.as_mut_ptr()).fill(&json!("0-3,64,200")) },
            SUCCESS
        );
        assert_eq!(
            words,
            [0xf, 1],
            "members past the caller's words are dropped"
        );
        assert_eq!(cpuset_members(&words), vec![0, 1, 2, 3, 64]);
    }

    #[test]
    fn lists_follow_nvmls_count_protocol() {
        let procs = json!([{"pid": 1, "usedGpuMemory": 2, "gpuInstanceId": 0, "computeInstanceId": 0},
                           {"pid": 3, "usedGpuMemory": 4, "gpuInstanceId": 0, "computeInstanceId": 0}]);
        let mut count = 0;
        assert_eq!(
            unsafe { Procs(&mut count, core::ptr::null_mut()).fill(&procs) },
            ERROR_INSUFFICIENT_SIZE
        );
        assert_eq!(count, 2);
        let mut infos = [ProcessInfo::default(); 4];
        count = 4;
        assert_eq!(
            unsafe { Procs(&mut count, infos.as_mut_ptr()).fill(&procs) },
            SUCCESS
        );
        assert_eq!((count, infos[1].pid), (2, 3));
        count = 0;
        assert_eq!(
            unsafe { Procs(&mut count, core::ptr::null_mut()).fill(&json!([])) },
            SUCCESS
        );
        let pages = json!([{"address": 4096, "timestamp": 7}]);
        let mut addr = [0u64; 1];
        count = 1;
        assert_eq!(
            unsafe { Pages(&mut count, addr.as_mut_ptr(), None).fill(&pages) },
            SUCCESS
        );
        assert_eq!(addr[0], 4096);
    }
}
