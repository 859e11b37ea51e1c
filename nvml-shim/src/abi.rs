//! NVML's C types (nvml.h), as far as the exported functions need them. Structs of plain
//! numbers derive serde with nvml.h's field names: that is their snapshot JSON.

#![allow(non_snake_case)]

use core::ffi::{c_char, c_uint, c_void};

use serde::{Deserialize, Serialize};

/// nvmlReturn_t.
pub type Ret = c_uint;
/// nvmlDevice_t: opaque.
pub type Device = *mut c_void;
/// nvmlEventSet_t: opaque.
pub type EventSet = *mut c_void;

pub use crate::proto::codes::{
    ERROR_FUNCTION_NOT_FOUND, ERROR_GPU_IS_LOST, ERROR_INSUFFICIENT_SIZE, ERROR_INVALID_ARGUMENT,
    ERROR_LIBRARY_NOT_FOUND, ERROR_NOT_FOUND, ERROR_NOT_SUPPORTED, ERROR_TIMEOUT,
    ERROR_UNINITIALIZED, ERROR_UNKNOWN, SUCCESS,
};

/// nvmlEnableState_t NVML_FEATURE_DISABLED (an inactive NVLink).
pub const FEATURE_DISABLED: c_uint = 0;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    pub used: u64,
}

/// nvmlMemory_v2_t: `version` is the caller's input, never recorded.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryV2 {
    #[serde(skip)]
    pub version: c_uint,
    pub total: u64,
    pub reserved: u64,
    pub free: u64,
    pub used: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utilization {
    pub gpu: c_uint,
    pub memory: c_uint,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bar1Memory {
    pub bar1Total: u64,
    pub bar1Free: u64,
    pub bar1Used: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowRemapperHistogram {
    pub max: c_uint,
    pub high: c_uint,
    pub partial: c_uint,
    pub low: c_uint,
    pub none: c_uint,
}

/// nvmlProcessInfo_t, the element of the _v2 and _v3 process queries.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessInfo {
    pub pid: c_uint,
    pub usedGpuMemory: u64,
    pub gpuInstanceId: c_uint,
    pub computeInstanceId: c_uint,
}

/// A retired page as the snapshot lists it (nvmlDeviceGetRetiredPages_v2's two arrays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredPage {
    pub address: u64,
    pub timestamp: u64,
}

/// nvmlPciInfo_t (the layout of the _v2 and _v3 queries); JSON by hand (char arrays).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PciInfo {
    pub busIdLegacy: [c_char; 16],
    pub domain: c_uint,
    pub bus: c_uint,
    pub device: c_uint,
    pub pciDeviceId: c_uint,
    pub pciSubSystemId: c_uint,
    pub busId: [c_char; 32],
}

/// nvmlEventData_t (v2: with the MIG instance ids; nvmlEventSetWait fills the first three).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EventData {
    pub device: Device,
    pub eventType: u64,
    pub eventData: u64,
    pub gpuInstanceId: c_uint,
    pub computeInstanceId: c_uint,
}

/// nvmlFieldValue_t; `value` is the 8-byte union nvmlValue_t, kept as its bits.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FieldValue {
    pub fieldId: c_uint,
    pub scopeId: c_uint,
    pub timestamp: i64,
    pub latencyUsec: i64,
    pub valueType: c_uint,
    pub nvmlReturn: Ret,
    pub value: u64,
}

/// nvmlValueType_t.
pub mod value_type {
    pub const DOUBLE: u32 = 0;
    pub const UNSIGNED_INT: u32 = 1;
    pub const UNSIGNED_LONG: u32 = 2;
    pub const UNSIGNED_LONG_LONG: u32 = 3;
    pub const SIGNED_LONG_LONG: u32 = 4;
    pub const SIGNED_INT: u32 = 5;
    pub const UNSIGNED_SHORT: u32 = 6;
}

impl FieldValue {
    /// The value as JSON, read from the union member `valueType` names (little-endian: the
    /// narrow members are the low bytes).
    pub fn value_json(&self) -> serde_json::Value {
        use value_type::*;
        let b = self.value;
        match self.valueType {
            DOUBLE => serde_json::json!(f64::from_bits(b)),
            UNSIGNED_INT => serde_json::json!(b as u32),
            UNSIGNED_LONG | UNSIGNED_LONG_LONG => serde_json::json!(b),
            SIGNED_LONG_LONG => serde_json::json!(b as i64),
            SIGNED_INT => serde_json::json!(b as u32 as i32),
            UNSIGNED_SHORT => serde_json::json!(b as u16),
            _ => serde_json::json!(b),
        }
    }

    /// The union's bits for `v` as a `value_type`; None when `v` does not fit it.
    pub fn bits_of(value_type: u32, v: &serde_json::Value) -> Option<u64> {
        use value_type::*;
        Some(match value_type {
            DOUBLE => v.as_f64()?.to_bits(),
            UNSIGNED_INT => u32::try_from(v.as_u64()?).ok()? as u64,
            UNSIGNED_LONG | UNSIGNED_LONG_LONG => v.as_u64()?,
            SIGNED_LONG_LONG => v.as_i64()? as u64,
            SIGNED_INT => i32::try_from(v.as_i64()?).ok()? as u32 as u64,
            UNSIGNED_SHORT => u16::try_from(v.as_u64()?).ok()? as u64,
            _ => return None,
        })
    }

    /// The value as an unsigned number whatever its type (counters, enums).
    pub fn as_u64(&self) -> u64 {
        use value_type::*;
        match self.valueType {
            DOUBLE => f64::from_bits(self.value) as u64,
            UNSIGNED_INT | SIGNED_INT => self.value as u32 as u64,
            UNSIGNED_SHORT => self.value as u16 as u64,
            _ => self.value,
        }
    }

    /// Stores `n` in the member `valueType` names (an unsupported field becomes unsigned int).
    pub fn set_u64(&mut self, n: u64) {
        use value_type::*;
        match self.valueType {
            DOUBLE => self.value = (n as f64).to_bits(),
            UNSIGNED_LONG | UNSIGNED_LONG_LONG | SIGNED_LONG_LONG => self.value = n,
            UNSIGNED_SHORT => self.value = n.min(u16::MAX as u64),
            SIGNED_INT => self.value = n.min(i32::MAX as u64),
            _ => {
                self.valueType = UNSIGNED_INT;
                self.value = n.min(u32::MAX as u64);
            }
        }
    }
}

/// A C string in a fixed array (NUL-terminated, cut to fit).
pub fn put_cstr(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// The string in a fixed C array (up to its NUL or end).
pub fn get_cstr(src: &[c_char]) -> String {
    let bytes: Vec<u8> = src
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl PciInfo {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "busIdLegacy": get_cstr(&self.busIdLegacy),
            "domain": self.domain,
            "bus": self.bus,
            "device": self.device,
            "pciDeviceId": self.pciDeviceId,
            "pciSubSystemId": self.pciSubSystemId,
            "busId": get_cstr(&self.busId),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Option<PciInfo> {
        let n = |k: &str| v.get(k)?.as_u64().and_then(|x| u32::try_from(x).ok());
        let mut p = PciInfo {
            domain: n("domain")?,
            bus: n("bus")?,
            device: n("device")?,
            pciDeviceId: n("pciDeviceId")?,
            pciSubSystemId: n("pciSubSystemId")?,
            ..PciInfo::default()
        };
        put_cstr(&mut p.busIdLegacy, v.get("busIdLegacy")?.as_str()?);
        put_cstr(&mut p.busId, v.get("busId")?.as_str()?);
        Some(p)
    }
}

/// The string a caller's buffer holds (snapshot).
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
pub unsafe fn c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller promises a NUL-terminated string.
    Some(
        unsafe { core::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// An opaque pointer as a number (tables of handles and event sets).
pub fn addr(p: *mut c_void) -> usize {
    p as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::query::{QUERIES, Shape, index};

    /// The JSON of each C struct is the shape the query list promises.
    #[test]
    fn struct_json_matches_the_query_shapes() {
        let check = |name: &str, v: serde_json::Value| {
            let q = &QUERIES[index(name)];
            q.shape
                .check(&v)
                .unwrap_or_else(|e| panic!("{name}: {e}: {v}"));
        };
        check(
            "nvmlDeviceGetMemoryInfo",
            serde_json::to_value(Memory::default()).unwrap(),
        );
        check(
            "nvmlDeviceGetMemoryInfo_v2",
            serde_json::to_value(MemoryV2::default()).unwrap(),
        );
        check(
            "nvmlDeviceGetUtilizationRates",
            serde_json::to_value(Utilization::default()).unwrap(),
        );
        check(
            "nvmlDeviceGetBAR1MemoryInfo",
            serde_json::to_value(Bar1Memory::default()).unwrap(),
        );
        check(
            "nvmlDeviceGetRowRemapperHistogram",
            serde_json::to_value(RowRemapperHistogram::default()).unwrap(),
        );
        check(
            "nvmlDeviceGetComputeRunningProcesses_v3",
            serde_json::to_value(vec![ProcessInfo::default()]).unwrap(),
        );
        check(
            "nvmlDeviceGetRetiredPages_v2",
            serde_json::to_value(vec![RetiredPage::default()]).unwrap(),
        );
        let mut pci = PciInfo::default();
        put_cstr(&mut pci.busId, "00000000:18:00.0");
        check("nvmlDeviceGetPciInfo_v3", pci.to_json());
        assert_eq!(PciInfo::from_json(&pci.to_json()), Some(pci));
        assert!(matches!(
            QUERIES[index("nvmlDeviceGetPciInfo_v3")].shape,
            Shape::Pci
        ));
    }

    #[test]
    fn layouts_match_nvml_h() {
        assert_eq!(core::mem::size_of::<PciInfo>(), 68);
        assert_eq!(core::mem::size_of::<MemoryV2>(), 40);
        assert_eq!(core::mem::size_of::<ProcessInfo>(), 24);
        assert_eq!(core::mem::size_of::<EventData>(), 32);
        assert_eq!(core::mem::size_of::<FieldValue>(), 40);
    }

    #[test]
    fn field_values_convert_by_type() {
        let mut f = FieldValue {
            valueType: value_type::UNSIGNED_INT,
            ..Default::default()
        };
        f.value = FieldValue::bits_of(f.valueType, &serde_json::json!(4)).unwrap();
        assert_eq!(f.value_json(), serde_json::json!(4));
        f.valueType = value_type::DOUBLE;
        f.value = FieldValue::bits_of(f.valueType, &serde_json::json!(1.5)).unwrap();
        assert_eq!(f.value_json(), serde_json::json!(1.5));
        f.set_u64(7);
        assert_eq!(f.as_u64(), 7);
        assert!(FieldValue::bits_of(value_type::UNSIGNED_INT, &serde_json::json!(-1)).is_none());
        let mut s = [0 as c_char; 4];
        put_cstr(&mut s, "abcdef");
        assert_eq!(get_cstr(&s), "abc", "cut to fit, NUL-terminated");
    }
}
