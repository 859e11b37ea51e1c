//! How each fault changes an answer: plain functions on the answer's values (the exports hand
//! them the caller's buffers). Each returns what the program now reads, in words, when the
//! fault applies to this call, and None when it does not (another kind, another link).
//!
//! A fault answers even where the driver (or snapshot) does not support the query: the code
//! becomes SUCCESS and counters start from 0. Only memory-used needs the real total.

use std::time::Duration;

use crate::abi::{FEATURE_DISABLED, FieldValue, Memory, MemoryV2, Ret, SUCCESS};
use crate::proto::fault::{FaultKind, RowRemap};
use crate::proto::query::{
    FI_ECC_DBE_AGG_TOTAL, FI_ECC_DBE_VOL_TOTAL, FI_GPU_RECOVERY_ACTION, FI_PCIE_REPLAY_COUNTER,
    FI_REMAPPED_FAILURE, FI_REMAPPED_PENDING, FI_REMAPPED_UNC,
};
use shim_proto::units::format_size;

/// What a rewrite knows besides the answer: the call's input parameters (as in the snapshot
/// key) and how long the fault has been active.
pub struct Ctx<'a> {
    pub params: &'a [u32],
    pub since_active: Duration,
}

/// The answer now stands whatever the driver said: a failed query starts from `T::default()`.
fn answered<T: Default>(rc: &mut Ret, v: &mut T) {
    if *rc != SUCCESS {
        *v = T::default();
        *rc = SUCCESS;
    }
}

/// Replays a counter that grows at `per_second` from the fault's start.
pub fn grown(per_second: f64, since: Duration) -> u64 {
    (per_second * since.as_secs_f64()).floor() as u64
}

/// NVML_PCIE_LINK_MAX_SPEED_*MBPS of a generation (per lane, the value nvmlDeviceGetPcieSpeed
/// answers).
pub fn pcie_speed_of_gen(generation: u32) -> u32 {
    match generation {
        1 => 2500,
        2 => 5000,
        3 => 8000,
        4 => 16000,
        5 => 32000,
        _ => 64000,
    }
}

pub fn pcie_width(k: &FaultKind, _: &Ctx, rc: &mut Ret, width: &mut u32) -> Option<String> {
    let FaultKind::PcieWidth(w) = k else {
        return None;
    };
    answered(rc, width);
    *width = *w;
    Some(format!("x{w}"))
}

pub fn pcie_gen(k: &FaultKind, _: &Ctx, rc: &mut Ret, generation: &mut u32) -> Option<String> {
    let FaultKind::PcieGen(g) = k else {
        return None;
    };
    answered(rc, generation);
    *generation = *g;
    Some(format!("gen {g}"))
}

pub fn pcie_speed(k: &FaultKind, _: &Ctx, rc: &mut Ret, speed: &mut u32) -> Option<String> {
    let FaultKind::PcieGen(g) = k else {
        return None;
    };
    answered(rc, speed);
    *speed = pcie_speed_of_gen(*g);
    Some(format!("{speed} MB/s per lane"))
}

pub fn pcie_replays(k: &FaultKind, c: &Ctx, rc: &mut Ret, counter: &mut u32) -> Option<String> {
    let FaultKind::PcieReplays(rate) = k else {
        return None;
    };
    answered(rc, counter);
    let n = grown(*rate, c.since_active).min(u32::MAX as u64) as u32;
    *counter = counter.saturating_add(n);
    Some(counter.to_string())
}

/// nvmlDeviceGetNvLinkState(link): a link of the fault is inactive.
pub fn nvlink_state(k: &FaultKind, c: &Ctx, rc: &mut Ret, state: &mut u32) -> Option<String> {
    let FaultKind::NvlinkDown(links) = k else {
        return None;
    };
    if !links.contains(c.params.first()?) {
        return None;
    }
    answered(rc, state);
    *state = FEATURE_DISABLED;
    Some("inactive".into())
}

/// nvmlDeviceGetNvLinkErrorCounter(link, counter): on a link that went down, the replay (0),
/// recovery (1), CRC flit (2) and CRC data (3) counters read one more than before.
pub fn nvlink_errors(k: &FaultKind, c: &Ctx, rc: &mut Ret, n: &mut u64) -> Option<String> {
    let FaultKind::NvlinkDown(links) = k else {
        return None;
    };
    let (link, counter) = (*c.params.first()?, *c.params.get(1)?);
    if !links.contains(&link) || counter > 3 {
        return None;
    }
    answered(rc, n);
    *n = n.saturating_add(1);
    Some(n.to_string())
}

/// Current clock event reasons: the fault's bits are added to the driver's.
pub fn throttle(k: &FaultKind, _: &Ctx, rc: &mut Ret, reasons: &mut u64) -> Option<String> {
    let FaultKind::Throttle(bits) = k else {
        return None;
    };
    answered(rc, reasons);
    *reasons |= bits;
    Some(format!("{reasons:#x}"))
}

/// nvmlDeviceGetTemperature(sensor): the GPU sensor (0).
pub fn temperature(k: &FaultKind, c: &Ctx, rc: &mut Ret, t: &mut u32) -> Option<String> {
    let FaultKind::Temperature(celsius) = k else {
        return None;
    };
    if c.params.first() != Some(&0) {
        return None;
    }
    answered(rc, t);
    *t = *celsius;
    Some(format!("{celsius} C"))
}

/// nvmlDeviceGetMemoryInfo: used as the fault says (at most the total), free the rest.
pub fn memory(k: &FaultKind, _: &Ctx, rc: &mut Ret, m: &mut Memory) -> Option<String> {
    let FaultKind::MemoryUsed(bytes) = k else {
        return None;
    };
    if *rc != SUCCESS {
        return None;
    }
    m.used = (*bytes).min(m.total);
    m.free = m.total - m.used;
    Some(format!("used {}", format_size(m.used)))
}

/// nvmlDeviceGetMemoryInfo_v2: the same within total − reserved.
pub fn memory_v2(k: &FaultKind, _: &Ctx, rc: &mut Ret, m: &mut MemoryV2) -> Option<String> {
    let FaultKind::MemoryUsed(bytes) = k else {
        return None;
    };
    if *rc != SUCCESS {
        return None;
    }
    let usable = m.total.saturating_sub(m.reserved);
    m.used = (*bytes).min(usable);
    m.free = usable - m.used;
    Some(format!("used {}", format_size(m.used)))
}

/// nvmlDeviceGetTotalEccErrors(errorType, counterType): uncorrected (1), volatile and
/// aggregate, get N more.
pub fn ecc_total(k: &FaultKind, c: &Ctx, rc: &mut Ret, n: &mut u64) -> Option<String> {
    let FaultKind::EccUncorrectable(add) = k else {
        return None;
    };
    if c.params.first() != Some(&1) {
        return None;
    }
    answered(rc, n);
    *n = n.saturating_add(*add);
    Some(n.to_string())
}

/// nvmlDeviceGetMemoryErrorCounter(errorType, counterType, location): uncorrected errors in
/// device memory (location 2) get N more.
pub fn memory_error_counter(k: &FaultKind, c: &Ctx, rc: &mut Ret, n: &mut u64) -> Option<String> {
    if c.params.get(2) != Some(&2) {
        return None;
    }
    ecc_total(k, c, rc, n)
}

/// nvmlDeviceGetRemappedRows [corrRows, uncRows, isPending, failureOccurred]: one more
/// uncorrectable row, and pending or failed.
pub fn remapped_rows(k: &FaultKind, _: &Ctx, rc: &mut Ret, rows: &mut [u32; 4]) -> Option<String> {
    let FaultKind::RowRemap(how) = k else {
        return None;
    };
    answered(rc, rows);
    rows[1] = rows[1].saturating_add(1);
    match how {
        RowRemap::Pending => rows[2] = 1,
        RowRemap::Failed => rows[3] = 1,
    }
    Some(format!(
        "uncRows {}, isPending {}, failureOccurred {}",
        rows[1], rows[2], rows[3]
    ))
}

/// One element of nvmlDeviceGetFieldValues: the fields the faults own (recovery action, DBE
/// totals, PCIe replays, remapped rows); others are left alone.
pub fn field(k: &FaultKind, c: &Ctx, fv: &mut FieldValue) -> Option<String> {
    let was_ok = fv.nvmlReturn == SUCCESS;
    let base = |fv: &FieldValue| if was_ok { fv.as_u64() } else { 0 };
    let new = match (k, fv.fieldId) {
        (FaultKind::RecoveryAction(a), FI_GPU_RECOVERY_ACTION) => *a as u64,
        (FaultKind::EccUncorrectable(n), FI_ECC_DBE_VOL_TOTAL | FI_ECC_DBE_AGG_TOTAL) => {
            base(fv).saturating_add(*n)
        }
        (FaultKind::PcieReplays(r), FI_PCIE_REPLAY_COUNTER) => {
            base(fv).saturating_add(grown(*r, c.since_active))
        }
        (FaultKind::RowRemap(_), FI_REMAPPED_UNC) => base(fv).saturating_add(1),
        (FaultKind::RowRemap(RowRemap::Pending), FI_REMAPPED_PENDING) => 1,
        (FaultKind::RowRemap(RowRemap::Failed), FI_REMAPPED_FAILURE) => 1,
        _ => return None,
    };
    if !was_ok {
        fv.valueType = crate::abi::value_type::UNSIGNED_INT;
        fv.nvmlReturn = SUCCESS;
        fv.value = 0;
    }
    fv.set_u64(new);
    Some(format!("field {} = {new}", fv.fieldId))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ERROR_NOT_SUPPORTED, value_type};
    use crate::proto::fault::RecoveryAction;

    fn ctx(params: &[u32]) -> Ctx<'_> {
        Ctx {
            params,
            since_active: Duration::from_secs(10),
        }
    }

    fn kind(spec: &str) -> FaultKind {
        spec.parse::<crate::proto::fault::Fault>().unwrap().kind
    }

    #[test]
    fn pcie() {
        let (mut rc, mut w) = (SUCCESS, 16);
        assert_eq!(
            pcie_width(&kind("pcie-width=8"), &ctx(&[]), &mut rc, &mut w),
            Some("x8".into())
        );
        assert_eq!(w, 8);
        assert_eq!(
            pcie_width(&kind("pcie-gen=3"), &ctx(&[]), &mut rc, &mut w),
            None,
            "another kind leaves it"
        );
        let (mut rc, mut g) = (ERROR_NOT_SUPPORTED, 0);
        pcie_gen(&kind("pcie-gen=3"), &ctx(&[]), &mut rc, &mut g);
        assert_eq!(
            (rc, g),
            (SUCCESS, 3),
            "the fault answers an unsupported query"
        );
        let mut s = 32000;
        pcie_speed(&kind("pcie-gen=3"), &ctx(&[]), &mut rc, &mut s);
        assert_eq!(s, 8000);
        let mut n = 2;
        pcie_replays(&kind("pcie-replays=5/s"), &ctx(&[]), &mut rc, &mut n);
        assert_eq!(n, 52, "2 before + 5/s for 10 s");
        assert_eq!(grown(0.5, Duration::from_millis(2999)), 1);
    }

    #[test]
    fn nvlink() {
        let k = kind("nvlink-down=1,3");
        let mut rc = SUCCESS;
        let mut state = 1;
        assert!(nvlink_state(&k, &ctx(&[0]), &mut rc, &mut state).is_none());
        assert_eq!(state, 1, "link 0 is not in the fault");
        nvlink_state(&k, &ctx(&[3]), &mut rc, &mut state);
        assert_eq!(state, FEATURE_DISABLED);
        let mut n = 7;
        nvlink_errors(&k, &ctx(&[1, 1]), &mut rc, &mut n);
        assert_eq!(n, 8, "recovery counter grows");
        assert!(
            nvlink_errors(&k, &ctx(&[1, 4]), &mut rc, &mut n).is_none(),
            "ECC data"
        );
        assert!(nvlink_errors(&k, &ctx(&[2, 0]), &mut rc, &mut n).is_none());
    }

    #[test]
    fn throttle_and_temperature() {
        let mut rc = SUCCESS;
        let mut r = 0x1u64;
        throttle(&kind("throttle=thermal"), &ctx(&[]), &mut rc, &mut r);
        assert_eq!(r, 0x61, "added to the driver's bits");
        assert!(r & 0x40 != 0, "consumers test with intersects");
        let mut t = 35;
        assert!(temperature(&kind("temperature=95"), &ctx(&[1]), &mut rc, &mut t).is_none());
        temperature(&kind("temperature=95"), &ctx(&[0]), &mut rc, &mut t);
        assert_eq!(t, 95);
    }

    #[test]
    fn memory_used() {
        let mut rc = SUCCESS;
        let mut m = Memory {
            total: 100 << 30,
            free: 99 << 30,
            used: 1 << 30,
        };
        memory(&kind("memory-used=70GiB"), &ctx(&[]), &mut rc, &mut m);
        assert_eq!((m.used, m.free), (70 << 30, 30 << 30));
        memory(&kind("memory-used=200GiB"), &ctx(&[]), &mut rc, &mut m);
        assert_eq!((m.used, m.free), (100 << 30, 0), "at most the total");
        let mut v2 = MemoryV2 {
            version: 0x0200_0028,
            total: 100 << 30,
            reserved: 1 << 30,
            free: 98 << 30,
            used: 1 << 30,
        };
        memory_v2(&kind("memory-used=70GiB"), &ctx(&[]), &mut rc, &mut v2);
        assert_eq!(
            (v2.used, v2.free, v2.version),
            (70 << 30, 29 << 30, 0x0200_0028)
        );
        let mut rc = ERROR_NOT_SUPPORTED;
        assert!(memory(&kind("memory-used=1GiB"), &ctx(&[]), &mut rc, &mut m).is_none());
        assert_eq!(rc, ERROR_NOT_SUPPORTED, "no total to work from");
    }

    #[test]
    fn ecc_and_row_remap() {
        let k = kind("ecc-uncorrectable=3");
        let mut rc = SUCCESS;
        let mut n = 1;
        assert!(
            ecc_total(&k, &ctx(&[0, 0]), &mut rc, &mut n).is_none(),
            "corrected"
        );
        ecc_total(&k, &ctx(&[1, 0]), &mut rc, &mut n);
        assert_eq!(n, 4, "volatile");
        let mut agg = 0;
        ecc_total(&k, &ctx(&[1, 1]), &mut rc, &mut agg);
        assert_eq!(agg, 3, "aggregate");
        let mut dram = 0;
        memory_error_counter(&k, &ctx(&[1, 0, 2]), &mut rc, &mut dram);
        assert_eq!(dram, 3);
        assert!(memory_error_counter(&k, &ctx(&[1, 0, 1]), &mut rc, &mut dram).is_none());
        let mut rows = [0, 0, 0, 0];
        remapped_rows(&kind("row-remap=pending"), &ctx(&[]), &mut rc, &mut rows);
        assert_eq!(rows, [0, 1, 1, 0]);
        let mut rows = [0, 0, 0, 0];
        remapped_rows(&kind("row-remap=failed"), &ctx(&[]), &mut rc, &mut rows);
        assert_eq!(rows, [0, 1, 0, 1]);
    }

    #[test]
    fn field_values() {
        let mut fv = FieldValue {
            fieldId: FI_GPU_RECOVERY_ACTION,
            nvmlReturn: ERROR_NOT_SUPPORTED,
            ..Default::default()
        };
        field(&kind("recovery-action=node-reboot"), &ctx(&[]), &mut fv);
        assert_eq!(fv.nvmlReturn, SUCCESS);
        assert_eq!(fv.valueType, value_type::UNSIGNED_INT);
        assert_eq!(fv.as_u64(), RecoveryAction::NodeReboot as u64);
        let mut dbe = FieldValue {
            fieldId: FI_ECC_DBE_AGG_TOTAL,
            valueType: value_type::UNSIGNED_LONG_LONG,
            value: 2,
            ..Default::default()
        };
        field(&kind("ecc-uncorrectable=3"), &ctx(&[]), &mut dbe);
        assert_eq!(dbe.as_u64(), 5);
        let mut other = FieldValue {
            fieldId: 82,
            value: 40,
            valueType: value_type::UNSIGNED_INT,
            ..Default::default()
        };
        assert!(field(&kind("ecc-uncorrectable=3"), &ctx(&[]), &mut other).is_none());
        assert_eq!(other.as_u64(), 40);
        let mut pending = FieldValue {
            fieldId: FI_REMAPPED_PENDING,
            valueType: value_type::UNSIGNED_INT,
            ..Default::default()
        };
        field(&kind("row-remap=pending"), &ctx(&[]), &mut pending);
        assert_eq!(pending.as_u64(), 1);
    }
}
