//! Replay: a snapshot's answers, indexed by (query, parameters) per GPU and per pair. A query
//! the snapshot lacks answers NVML_ERROR_NOT_SUPPORTED, as the driver does for an unsupported
//! query, and is reported once per key and GPU (`missing`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde_json::Value;

use crate::abi::{ERROR_NOT_SUPPORTED, ERROR_UNINITIALIZED, Ret, SUCCESS};
use crate::proto::event::Event;
use crate::proto::query::{self, QUERIES};
use crate::proto::snapshot::{Answer, Snapshot, same_pci_bus_id};
use crate::sink::Sink;

/// (query index, parameters padded with u32::MAX).
type Key = (usize, [u32; 3]);
type Answers = HashMap<Key, Answer>;
/// A missing answer already reported: (key, GPU, peer GPU).
type Reported = HashSet<(String, Option<u32>, Option<u32>)>;

pub struct Replay {
    snap: Snapshot,
    system: Answers,
    devices: Vec<Answers>,
    pairs: HashMap<(u32, u32), Answers>,
    inits: AtomicI64,
    missing_seen: Mutex<Reported>,
    missing: AtomicU64,
}

/// The recorded answer to one call.
pub enum Found<'a> {
    Value(&'a Value),
    Error(Ret),
    Missing,
}

pub fn key(q: usize, params: &[u32]) -> Key {
    let mut p = [u32::MAX; 3];
    for (d, s) in p.iter_mut().zip(params) {
        *d = *s;
    }
    (q, p)
}

fn index(answers: &std::collections::BTreeMap<String, Answer>) -> Answers {
    answers
        .iter()
        .filter_map(|(k, a)| {
            // A validated snapshot's keys all parse.
            let (q, params) = query::parse_key(k).ok()?;
            Some((key(q, &params), a.clone()))
        })
        .collect()
}

impl Replay {
    pub fn new(snap: Snapshot) -> Replay {
        let mut pairs = HashMap::new();
        for p in &snap.pairs {
            pairs.insert((p.a, p.b), index(&p.answers));
        }
        Replay {
            system: index(&snap.system),
            devices: snap.devices.iter().map(|d| index(&d.answers)).collect(),
            pairs,
            snap,
            inits: AtomicI64::new(0),
            missing_seen: Mutex::new(HashSet::new()),
            missing: AtomicU64::new(0),
        }
    }

    pub fn gpu_count(&self) -> u32 {
        self.snap.gpu_count()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// nvmlInit*: counted like the driver (each init needs a shutdown).
    pub fn init(&self) -> Ret {
        self.inits.fetch_add(1, Ordering::AcqRel);
        SUCCESS
    }

    pub fn shutdown(&self) -> Ret {
        let ok = self
            .inits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n - 1)
            })
            .is_ok();
        if ok { SUCCESS } else { ERROR_UNINITIALIZED }
    }

    /// NVML_ERROR_UNINITIALIZED before nvmlInit, as the driver answers.
    pub fn ready(&self) -> Result<(), Ret> {
        if self.inits.load(Ordering::Acquire) > 0 {
            Ok(())
        } else {
            Err(ERROR_UNINITIALIZED)
        }
    }

    fn found<'a>(answers: Option<&'a Answers>, k: &Key) -> Found<'a> {
        match answers.and_then(|a| a.get(k)) {
            Some(Answer::Value(v)) => Found::Value(v),
            Some(Answer::Error(e)) => Found::Error(e.rc),
            None => Found::Missing,
        }
    }

    pub fn system(&self, q: usize, params: &[u32]) -> Found<'_> {
        Self::found(Some(&self.system), &key(q, params))
    }

    pub fn device(&self, gpu: u32, q: usize, params: &[u32]) -> Found<'_> {
        Self::found(self.devices.get(gpu as usize), &key(q, params))
    }

    /// The answer about (a, b), or else (b, a).
    pub fn pair(&self, a: u32, b: u32, q: usize, params: &[u32]) -> Found<'_> {
        let k = key(q, params);
        match Self::found(self.pairs.get(&(a, b)), &k) {
            Found::Missing => Self::found(self.pairs.get(&(b, a)), &k),
            f => f,
        }
    }

    /// Reports a query the snapshot lacks (once per key and GPU); the caller answers
    /// NVML_ERROR_NOT_SUPPORTED.
    pub fn missing(
        &self,
        call: &str,
        q: usize,
        params: &[u32],
        gpu: Option<u32>,
        peer: Option<u32>,
        sink: &Sink,
    ) -> Ret {
        if crate::record::recording() {
            return ERROR_NOT_SUPPORTED;
        }
        self.missing.fetch_add(1, Ordering::Relaxed);
        let k = query::key(QUERIES[q].name, params);
        let fresh = self
            .missing_seen
            .lock()
            .map(|mut s| s.insert((k.clone(), gpu, peer)))
            .unwrap_or(false);
        if fresh {
            sink.emit(Event::Missing {
                call: call.to_string(),
                key: k,
                gpu,
                peer,
            });
        }
        ERROR_NOT_SUPPORTED
    }

    pub fn missing_count(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }

    /// The GPU with this UUID.
    pub fn by_uuid(&self, uuid: &str) -> Option<u32> {
        (0..self.gpu_count()).find(|g| self.snap.uuid(*g) == Some(uuid))
    }

    /// The GPU at this PCI bus id (any domain width, any case).
    pub fn by_pci_bus_id(&self, bus: &str) -> Option<u32> {
        (0..self.gpu_count()).find(|g| {
            self.snap
                .pci_bus_id(*g)
                .is_some_and(|b| same_pci_bus_id(b, bus))
        })
    }

    /// The GPU with this serial number.
    pub fn by_serial(&self, serial: &str) -> Option<u32> {
        const Q: usize = query::index("nvmlDeviceGetSerial");
        (0..self.gpu_count()).find(
            |g| matches!(self.device(*g, Q, &[]), Found::Value(v) if v.as_str() == Some(serial)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn replay() -> Replay {
        let snap = Snapshot::parse(
            &json!({
                "format_version": 1,
                "system": {"nvmlSystemGetDriverVersion": "580.159.04"},
                "devices": [
                    {"index": 0, "answers": {
                        "nvmlDeviceGetUUID": "GPU-aaa",
                        "nvmlDeviceGetSerial": "1650",
                        "nvmlDeviceGetPciInfo_v3": {"busIdLegacy": "0000:18:00.0", "domain": 0,
                            "bus": 24, "device": 0, "pciDeviceId": 1, "pciSubSystemId": 2,
                            "busId": "00000000:18:00.0"},
                        "nvmlDeviceGetClockInfo(1)": 1980,
                        "nvmlDeviceGetFanSpeed": {"rc": 3}}},
                    {"index": 1, "answers": {"nvmlDeviceGetUUID": "GPU-bbb"}}
                ],
                "pairs": [{"a": 0, "b": 1, "answers": {"nvmlDeviceGetTopologyCommonAncestor": 50}}]
            })
            .to_string(),
        )
        .unwrap();
        Replay::new(snap)
    }

    #[test]
    fn answers_values_errors_and_missing() {
        let r = replay();
        let clock = query::index("nvmlDeviceGetClockInfo");
        assert!(matches!(r.device(0, clock, &[1]), Found::Value(v) if v == &json!(1980)));
        assert!(matches!(r.device(0, clock, &[0]), Found::Missing));
        assert!(matches!(r.device(7, clock, &[1]), Found::Missing));
        let fan = query::index("nvmlDeviceGetFanSpeed");
        assert!(matches!(r.device(0, fan, &[]), Found::Error(3)));
        let anc = query::index("nvmlDeviceGetTopologyCommonAncestor");
        assert!(matches!(r.pair(1, 0, anc, &[]), Found::Value(v) if v == &json!(50)));
        let drv = query::index("nvmlSystemGetDriverVersion");
        assert!(matches!(r.system(drv, &[]), Found::Value(_)));
        let sink = Sink::open(None);
        assert_eq!(
            r.missing("x", clock, &[0], Some(0), None, &sink),
            ERROR_NOT_SUPPORTED
        );
        assert_eq!(r.missing_count(), 1);
    }

    #[test]
    fn finds_gpus_by_identity_and_counts_inits() {
        let r = replay();
        assert_eq!(r.by_uuid("GPU-bbb"), Some(1));
        assert_eq!(r.by_uuid("GPU-zzz"), None);
        assert_eq!(r.by_pci_bus_id("0000:18:00.0"), Some(0));
        assert_eq!(r.by_serial("1650"), Some(0));
        assert_eq!(r.ready(), Err(ERROR_UNINITIALIZED));
        assert_eq!(r.shutdown(), ERROR_UNINITIALIZED);
        r.init();
        assert_eq!(r.ready(), Ok(()));
        assert_eq!(r.shutdown(), SUCCESS);
        assert_eq!(r.ready(), Err(ERROR_UNINITIALIZED));
    }
}
