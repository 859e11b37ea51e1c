//! What the CUDA shim leaves beside its events file (shim_proto::cuda::ledger): each process's
//! ledger — calls, injections, bytes held and peaks, kept current in a shared file — and, for
//! `leak-check`, its copies of /proc/PID/maps. A process that ends without exit handlers (Go's
//! exit_group, `_exit`, SIGKILL) writes no `stats` line; its ledger still has the figures.

use std::collections::BTreeMap;
use std::path::Path;

use shim_proto::cuda::ledger::{self, Ledger, Side};

use crate::facts::program::{MapsCopy, ShimEvent};

/// The side files of a run, read once the program has ended.
#[derive(Debug, Default)]
pub struct SideFiles {
    pub ledgers: Vec<Ledger>,
    pub maps: Vec<MapsCopy>,
}

/// Reads the side files of `events` (in its directory).
pub fn read(events: &Path) -> SideFiles {
    let mut out = SideFiles::default();
    let (Some(dir), Some(name)) = (events.parent(), events.file_name().and_then(|n| n.to_str()))
    else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some((pid, side)) = file.to_str().and_then(|f| ledger::side_file(name, f)) else {
            continue;
        };
        match side {
            Side::Ledger => {
                if let Some(l) = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| ledger::decode(&b))
                {
                    out.ledgers.push(l);
                }
            }
            Side::Maps(seq) => {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.maps.push(MapsCopy {
                        pid,
                        seq,
                        text: String::from_utf8_lossy(&b).into_owned(),
                    });
                }
            }
        }
    }
    out.ledgers.sort_by_key(|l| l.pid);
    out.maps.sort_by_key(|m| (m.pid, m.seq));
    out
}

/// Folds the ledgers into the events: each process with a ledger gets its `stats` and final
/// `peak` lines from it (the ledger is current however the process ended), marked `recovered`
/// when the process did not run its exit handlers.
pub fn merge_ledgers(events: &mut Vec<ShimEvent>, ledgers: &[Ledger]) {
    let last_t: BTreeMap<u64, u64> = events.iter().fold(BTreeMap::new(), |mut m, e| {
        let t = m.entry(e.pid).or_insert(0);
        *t = (*t).max(e.t_us);
        m
    });
    for l in ledgers {
        let pid = u64::from(l.pid);
        events.retain(|e| {
            !(e.pid == pid && (e.ev == "stats" || (e.ev == "peak" && e.r#final == Some(true))))
        });
        let t_us = last_t.get(&pid).copied().unwrap_or(0);
        let recovered = (!l.exited).then_some(true);
        events.push(ShimEvent {
            ev: "stats".into(),
            pid,
            t_us,
            calls: Some(l.calls.clone()),
            dropped: Some(l.dropped),
            injected_total: Some(l.injected),
            ctx_noops: Some(l.ctx_noops),
            recovered,
            ..Default::default()
        });
        for &(dev, held, peak) in &l.devices {
            events.push(ShimEvent {
                ev: "peak".into(),
                pid,
                t_us,
                dev: Some(dev),
                bytes: Some(peak),
                used: Some(held),
                r#final: Some(true),
                recovered,
                ..Default::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, pid: u64, t_us: u64) -> ShimEvent {
        ShimEvent {
            ev: kind.into(),
            pid,
            t_us,
            ..Default::default()
        }
    }

    #[test]
    fn a_ledger_replaces_the_stats_of_its_process_only() {
        let mut stats = ev("stats", 10, 50);
        stats.calls = Some(BTreeMap::from([("cuInit".to_string(), 1)]));
        let mut other = ev("stats", 11, 60);
        other.calls = Some(BTreeMap::from([("cuInit".to_string(), 5)]));
        let mut events = vec![ev("start", 10, 1), ev("start", 12, 2), stats, other];
        let killed = Ledger {
            pid: 12,
            exited: false,
            calls: BTreeMap::from([("cuMemAlloc_v2".to_string(), 4)]),
            injected: 1,
            devices: vec![(0, 3 << 20, 4 << 20)],
            ..Default::default()
        };
        let clean = Ledger {
            pid: 10,
            exited: true,
            calls: BTreeMap::from([("cuInit".to_string(), 2)]),
            ..Default::default()
        };
        merge_ledgers(&mut events, &[clean, killed]);
        let stats: Vec<&ShimEvent> = events.iter().filter(|e| e.ev == "stats").collect();
        assert_eq!(stats.len(), 3, "10 (replaced), 11 (kept), 12 (recovered)");
        let s10 = stats.iter().find(|e| e.pid == 10).unwrap();
        assert_eq!(s10.calls.as_ref().unwrap()["cuInit"], 2);
        assert_eq!(s10.recovered, None);
        let s12 = stats.iter().find(|e| e.pid == 12).unwrap();
        assert_eq!(s12.recovered, Some(true));
        assert_eq!(s12.injected_total, Some(1));
        assert_eq!(s12.t_us, 2, "the last time the process was seen");
        let peak = events.iter().find(|e| e.ev == "peak").unwrap();
        assert_eq!(
            (peak.pid, peak.bytes, peak.used, peak.r#final),
            (12, Some(4 << 20), Some(3 << 20), Some(true))
        );
        assert_eq!(
            stats
                .iter()
                .find(|e| e.pid == 11)
                .unwrap()
                .calls
                .as_ref()
                .unwrap()["cuInit"],
            5
        );
    }

    #[test]
    fn reads_the_files_beside_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, b"").unwrap();
        let l = Ledger {
            pid: 77,
            exited: true,
            ..Default::default()
        };
        std::fs::write(
            dir.path().join("events.jsonl.77.ledger"),
            ledger::encode(&l),
        )
        .unwrap();
        std::fs::write(dir.path().join("events.jsonl.77.maps.2"), b"b").unwrap();
        std::fs::write(dir.path().join("events.jsonl.77.maps.1"), b"a").unwrap();
        std::fs::write(dir.path().join("events.jsonl.78.ledger"), b"short").unwrap();
        std::fs::write(dir.path().join("libgpu_doctor_shim.so"), b"").unwrap();
        let side = read(&events);
        assert_eq!(side.ledgers, vec![l]);
        assert_eq!(
            side.maps
                .iter()
                .map(|m| (m.pid, m.seq, m.text.as_str()))
                .collect::<Vec<_>>(),
            vec![(77, 1, "a"), (77, 2, "b")]
        );
    }
}
