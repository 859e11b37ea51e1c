//! The faults of one process at run time: which calls each may change (a bit mask per
//! exported function, so a call no fault touches pays one load), when each starts, and what
//! reached the program (counted, and one event the first time per fault, GPU and call).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use shim_rt::process::now_us;

use crate::exports::{Fid, N_FN, NAMES};
use crate::proto::event::Event;
use crate::proto::fault::{Delay, Fault, FaultKind};
use crate::sink::Sink;

pub struct Faults {
    pub list: Vec<Fault>,
    specs: Vec<String>,
    active: Vec<AtomicBool>,
    /// When each became active (CLOCK_MONOTONIC µs).
    since_us: Vec<AtomicU64>,
    reads: Vec<AtomicU64>,
    /// Per function: the faults that may change its answer.
    masks: [u64; N_FN],
    /// gpu-lost faults.
    lost: u64,
    /// xid faults.
    xid: u64,
    /// Some fault waits for a call count: count every call.
    count_calls: bool,
    calls: AtomicU64,
    /// [fault][function]: GPUs (bit per index, 63 = unknown) already reported.
    reported: Vec<AtomicU64>,
    t0_us: u64,
}

/// The faults of a mask (its set bits' indices), lowest first.
pub fn each_bit(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// Whether a call names a GPU (gpu-lost answers every one of them).
pub fn names_gpu(name: &str) -> bool {
    name.starts_with("nvmlDevice") && !name.starts_with("nvmlDeviceGetCount")
}

impl Faults {
    pub fn new(list: Vec<Fault>, t0_us: u64) -> Faults {
        let mut masks = [0u64; N_FN];
        let (mut lost, mut xid) = (0u64, 0u64);
        for (i, f) in list.iter().enumerate() {
            let bit = 1u64 << i;
            match f.kind {
                FaultKind::GpuLost => lost |= bit,
                FaultKind::Xid(_) => xid |= bit,
                _ => {}
            }
            for (fid, name) in NAMES.iter().enumerate() {
                if (f.kind.all_device_calls() && names_gpu(name)) || f.kind.calls().contains(name) {
                    masks[fid] |= bit;
                }
            }
        }
        let now = list.iter().map(|f| f.delay == Delay::Now);
        Faults {
            specs: list.iter().map(|f| f.to_string()).collect(),
            active: now.clone().map(AtomicBool::new).collect(),
            since_us: list.iter().map(|_| AtomicU64::new(t0_us)).collect(),
            reads: list.iter().map(|_| AtomicU64::new(0)).collect(),
            masks,
            lost,
            xid,
            count_calls: list.iter().any(|f| matches!(f.delay, Delay::AfterCalls(_))),
            calls: AtomicU64::new(0),
            reported: (0..list.len() * N_FN).map(|_| AtomicU64::new(0)).collect(),
            t0_us,
            list,
        }
    }

    /// The faults that may change `f`'s answer.
    #[inline(always)]
    pub fn mask(&self, f: Fid) -> u64 {
        self.masks[f as usize]
    }

    pub fn xid_mask(&self) -> u64 {
        self.xid
    }

    /// Counts a call (only when a fault waits for a call count); returns the process's call
    /// number, from 1.
    #[inline(always)]
    pub fn tick(&self) -> u64 {
        if self.count_calls {
            self.calls.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        }
    }

    /// Calls counted so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(now_us().saturating_sub(self.t0_us))
    }

    /// Fault `i` applies to `gpu` (a fault without @gpuN applies to every GPU).
    pub fn targets(&self, i: usize, gpu: Option<u32>) -> bool {
        match self.list[i].gpu {
            None => true,
            Some(g) => gpu == Some(g),
        }
    }

    /// Whether fault `i` has started by call number `call` (made by `f`); the first time a
    /// delayed fault is found started, an `active` event says so.
    pub fn is_active(&self, i: usize, call: u64, f: Option<Fid>, sink: &Sink) -> bool {
        if self.active[i].load(Ordering::Acquire) {
            return true;
        }
        let call = if call == 0 { self.calls() } else { call };
        if !self.list[i].delay.is_due(self.elapsed(), call) {
            return false;
        }
        if !self.active[i].swap(true, Ordering::AcqRel) {
            self.since_us[i].store(now_us(), Ordering::Release);
            sink.emit(Event::Active {
                fault: i as u32,
                spec: self.specs[i].clone(),
                call: f.map(|f| NAMES[f as usize]).unwrap_or("").to_string(),
            });
        }
        true
    }

    /// How long fault `i` has been active.
    pub fn since_active(&self, i: usize) -> Duration {
        Duration::from_micros(now_us().saturating_sub(self.since_us[i].load(Ordering::Acquire)))
    }

    /// A faulted answer reached the program: counted; reported the first time per GPU and
    /// call.
    pub fn delivered(&self, i: usize, gpu: Option<u32>, f: Fid, value: String, sink: &Sink) {
        self.reads[i].fetch_add(1, Ordering::Relaxed);
        let bit = 1u64 << gpu.filter(|g| *g < 63).unwrap_or(63);
        let seen = &self.reported[i * N_FN + f as usize];
        if seen.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            sink.emit(Event::Fault {
                fault: i as u32,
                spec: self.specs[i].clone(),
                gpu,
                call: NAMES[f as usize].to_string(),
                value,
            });
        }
    }

    /// The active gpu-lost fault that answers a call about `gpu`, if any (reported as
    /// delivered).
    pub fn lost_for(&self, gpu: Option<u32>, call: u64, f: Fid, sink: &Sink) -> bool {
        for i in each_bit(self.lost & self.mask(f)) {
            if self.targets(i, gpu) && self.is_active(i, call, Some(f), sink) {
                self.delivered(i, gpu, f, "ERROR_GPU_IS_LOST".into(), sink);
                return true;
            }
        }
        false
    }

    /// Runs `rewrite` for every active fault (other than gpu-lost) of `f` that targets `gpu`;
    /// it returns what the program now reads when the fault changed the answer.
    pub fn rewrite(
        &self,
        f: Fid,
        gpu: Option<u32>,
        call: u64,
        sink: &Sink,
        mut rewrite: impl FnMut(&FaultKind, Duration) -> Option<String>,
    ) {
        for i in each_bit(self.mask(f) & !self.lost) {
            if self.targets(i, gpu)
                && self.is_active(i, call, Some(f), sink)
                && let Some(value) = rewrite(&self.list[i].kind, self.since_active(i))
            {
                self.delivered(i, gpu, f, value, sink);
            }
        }
    }

    /// Faulted answers per fault (for the stats at exit).
    pub fn reads(&self) -> Vec<u64> {
        self.reads
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::fault::parse_env;

    fn sink() -> Sink {
        Sink::open(None)
    }

    #[test]
    fn each_bit_lists_a_masks_faults_lowest_first() {
        assert_eq!(each_bit(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(each_bit(1 << 63).collect::<Vec<_>>(), vec![63]);
        assert_eq!(each_bit(0).count(), 0);
    }

    #[test]
    fn masks_follow_the_calls_each_kind_changes() {
        let f = Faults::new(
            parse_env("pcie-width=8;gpu-lost@gpu1;xid=79").unwrap(),
            now_us(),
        );
        assert_eq!(f.mask(Fid::nvmlDeviceGetCurrPcieLinkWidth), 0b011);
        assert_eq!(f.mask(Fid::nvmlDeviceGetName), 0b010, "gpu-lost only");
        assert_eq!(f.mask(Fid::nvmlDeviceGetHandleByIndex_v2), 0b010);
        assert_eq!(
            f.mask(Fid::nvmlDeviceGetCount_v2),
            0,
            "counting names no GPU"
        );
        assert_eq!(f.mask(Fid::nvmlInit_v2), 0);
        assert_eq!(f.mask(Fid::nvmlEventSetWait_v2), 0b100);
        assert_eq!(f.lost, 0b010);
        assert_eq!(f.xid_mask(), 0b100);
        assert!(!f.count_calls);
    }

    #[test]
    fn every_call_a_kind_names_is_exported() {
        for kind in crate::proto::fault::KINDS {
            let spec = match kind.0 {
                "gpu-lost" => "gpu-lost".to_string(),
                "row-remap" => "row-remap=pending".into(),
                "recovery-action" => "recovery-action=none".into(),
                "pcie-replays" => "pcie-replays=1/s".into(),
                "throttle" => "throttle=power".into(),
                "memory-used" => "memory-used=1GiB".into(),
                "pcie-width" => "pcie-width=8".into(),
                k => format!("{k}=1"),
            };
            let fault: Fault = spec.parse().unwrap();
            for c in fault.kind.calls() {
                assert!(NAMES.contains(c), "{c} ({spec}) is not exported");
            }
        }
    }

    #[test]
    fn delays_by_time_and_calls() {
        let s = sink();
        let f = Faults::new(
            parse_env("pcie-width=8+3calls;temperature=90+1h;gpu-lost@gpu0").unwrap(),
            now_us(),
        );
        assert!(f.count_calls);
        let fid = Fid::nvmlDeviceGetCurrPcieLinkWidth;
        let mut seen = vec![];
        for _ in 0..5 {
            let call = f.tick();
            seen.push(f.is_active(0, call, Some(fid), &s));
        }
        assert_eq!(seen, vec![false, false, false, true, true]);
        assert!(!f.is_active(1, f.tick(), Some(fid), &s), "an hour away");
        assert!(f.is_active(2, f.tick(), Some(fid), &s), "no delay: at once");
    }

    #[test]
    fn lost_targets_its_gpu_and_counts_reads() {
        let s = sink();
        let f = Faults::new(parse_env("gpu-lost@gpu1").unwrap(), now_us());
        let name = Fid::nvmlDeviceGetName;
        assert!(!f.lost_for(Some(0), 0, name, &s));
        assert!(f.lost_for(Some(1), 0, name, &s));
        assert!(f.lost_for(Some(1), 0, name, &s));
        assert!(!f.lost_for(None, 0, name, &s), "a handle of no known GPU");
        assert_eq!(f.reads(), vec![2]);
        let all = Faults::new(parse_env("gpu-lost").unwrap(), now_us());
        assert!(all.lost_for(Some(5), 0, name, &s));
        assert!(all.lost_for(None, 0, name, &s));
    }

    #[test]
    fn rewrite_runs_only_active_targeted_faults() {
        let s = sink();
        let f = Faults::new(
            parse_env("pcie-width=8@gpu0;pcie-width=4@gpu1;pcie-width=2+1h").unwrap(),
            now_us(),
        );
        let fid = Fid::nvmlDeviceGetCurrPcieLinkWidth;
        let mut w = 16;
        f.rewrite(fid, Some(1), 0, &s, |k, _| {
            let FaultKind::PcieWidth(n) = k else {
                return None;
            };
            w = *n;
            Some(n.to_string())
        });
        assert_eq!(w, 4);
        assert_eq!(f.reads(), vec![0, 1, 0]);
    }
}
