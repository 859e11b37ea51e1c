//! The process ledger: the CUDA shim's counters (calls per variant, injected failures, dropped
//! events) and per-device memory accounting (bytes held, peak), kept in a small file the shim
//! maps shared into the process. The shim updates it in place as calls happen; the kernel keeps
//! the pages when the process ends however it ends (exit handlers or not: Go's exit_group,
//! `_exit`, SIGKILL), so gpu-doctor reads the figures afterwards from the file.
//!
//! Layout: [`WORDS`] native-endian u64 words (the shim and gpu-doctor run on the same machine),
//! at the indices of [`word`]. The shim's mapped struct mirrors it (shim/src/hooks/ledger.rs,
//! checked by a test there). Side files of a run live beside the events file:
//! `EVENTS.PID.ledger` and, with `leaks=1`, `EVENTS.PID.maps.SEQ` (copies of /proc/PID/maps
//! the backtraces resolve in).

use std::collections::BTreeMap;

use super::names::VARIANTS;

/// "GDLEDG01" read as a little-endian u64: a file of this layout.
pub const MAGIC: u64 = u64::from_le_bytes(*b"GDLEDG01");
/// Call counters: room for this many variants.
pub const COUNTERS: usize = 128;
/// Device slots: (CUDA ordinal + 1, bytes held, peak) each.
pub const DEVICES: usize = 32;

/// Word indices.
pub mod word {
    pub const MAGIC: usize = 0;
    /// [`super::names_hash`] of the shim that wrote it: counters are by variant index.
    pub const NAMES: usize = 1;
    pub const PID: usize = 2;
    /// 1 once the process ran its exit handlers (the shim's unload).
    pub const EXITED: usize = 3;
    pub const INJECTED: usize = 4;
    pub const DROPPED: usize = 5;
    pub const CTX_NOOPS: usize = 6;
    /// First call counter (variant `i` at `COUNTS + i`).
    pub const COUNTS: usize = 8;
    /// First device slot: 3 words each (`dev + 1`, held, peak).
    pub const DEVICES: usize = COUNTS + super::COUNTERS;
}

/// Words in a ledger.
pub const WORDS: usize = word::DEVICES + 3 * DEVICES;
/// Bytes in a ledger file.
pub const BYTES: usize = WORDS * 8;

const _: () = assert!(
    VARIANTS.len() <= COUNTERS,
    "more variants than ledger counters"
);

/// FNV-1a over the variant names in table order: a ledger is read with the table it was
/// written with, or its counters are not read at all.
pub const fn names_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < VARIANTS.len() {
        let b = VARIANTS[i].name.as_bytes();
        let mut j = 0;
        while j < b.len() {
            h ^= b[j] as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            j += 1;
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// The ledger of process `pid` beside events file `events`.
pub fn ledger_path(events: &str, pid: u32) -> String {
    format!("{events}.{pid}.ledger")
}

/// Copy number `seq` of process `pid`'s /proc/PID/maps beside events file `events`.
pub fn maps_path(events: &str, pid: u32, seq: u64) -> String {
    format!("{events}.{pid}.maps.{seq}")
}

/// A side file of the run whose events file is named `events_name` (file names only):
/// `(pid, Side)`, or None for any other file.
pub fn side_file(events_name: &str, name: &str) -> Option<(u32, Side)> {
    let rest = name.strip_prefix(events_name)?.strip_prefix('.')?;
    let (pid, kind) = rest.split_once('.')?;
    let pid: u32 = pid.parse().ok()?;
    if kind == "ledger" {
        return Some((pid, Side::Ledger));
    }
    let seq = kind.strip_prefix("maps.")?.parse().ok()?;
    Some((pid, Side::Maps(seq)))
}

/// What a side file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ledger,
    /// A copy of /proc/PID/maps, by sequence number (1, 2, …).
    Maps(u64),
}

/// A ledger as read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub pid: u32,
    /// The process ran its exit handlers: its `stats` event holds the same figures.
    pub exited: bool,
    /// Calls per variant name (empty when the ledger was written with another call table).
    pub calls: BTreeMap<String, u64>,
    pub injected: u64,
    pub dropped: u64,
    pub ctx_noops: u64,
    /// (CUDA ordinal, bytes held at the end, peak bytes held).
    pub devices: Vec<(i64, u64, u64)>,
}

/// Reads a ledger file's bytes; None when it is not one (short, wrong magic).
pub fn decode(bytes: &[u8]) -> Option<Ledger> {
    if bytes.len() < BYTES {
        return None;
    }
    let w = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(b)
    };
    if w(word::MAGIC) != MAGIC {
        return None;
    }
    let mut calls = BTreeMap::new();
    if w(word::NAMES) == names_hash() {
        for (i, v) in VARIANTS.iter().enumerate() {
            let n = w(word::COUNTS + i);
            if n > 0 {
                calls.insert(v.name.to_string(), n);
            }
        }
    }
    let devices = (0..DEVICES)
        .filter_map(|d| {
            let base = word::DEVICES + 3 * d;
            let tag = w(base);
            (tag > 0).then(|| (tag as i64 - 1, w(base + 1), w(base + 2)))
        })
        .collect();
    Some(Ledger {
        pid: w(word::PID) as u32,
        exited: w(word::EXITED) != 0,
        calls,
        injected: w(word::INJECTED),
        dropped: w(word::DROPPED),
        ctx_noops: w(word::CTX_NOOPS),
        devices,
    })
}

/// The bytes of a ledger (what the shim's mapped words hold): for tests on both sides.
pub fn encode(l: &Ledger) -> Vec<u8> {
    let mut words = vec![0u64; WORDS];
    words[word::MAGIC] = MAGIC;
    words[word::NAMES] = names_hash();
    words[word::PID] = u64::from(l.pid);
    words[word::EXITED] = u64::from(l.exited);
    words[word::INJECTED] = l.injected;
    words[word::DROPPED] = l.dropped;
    words[word::CTX_NOOPS] = l.ctx_noops;
    for (name, n) in &l.calls {
        if let Some(i) = super::names::variant_id(name.as_bytes()) {
            words[word::COUNTS + i] = *n;
        }
    }
    for (d, (dev, held, peak)) in l.devices.iter().take(DEVICES).enumerate() {
        let base = word::DEVICES + 3 * d;
        words[base] = (*dev + 1) as u64;
        words[base + 1] = *held;
        words[base + 2] = *peak;
    }
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let l = Ledger {
            pid: 4242,
            exited: false,
            calls: BTreeMap::from([
                ("cuMemAlloc_v2".to_string(), 3),
                ("cuLaunchKernel".to_string(), 1_000_000),
            ]),
            injected: 1,
            dropped: 2,
            ctx_noops: 3,
            devices: vec![(0, 5 << 20, 7 << 20), (3, 0, 1 << 30)],
        };
        assert_eq!(decode(&encode(&l)), Some(l));
        assert_eq!(decode(&[0u8; BYTES]), None, "no magic");
        assert_eq!(decode(&[0u8; 16]), None, "short");
    }

    #[test]
    fn counters_of_another_table_are_not_read() {
        let mut b = encode(&Ledger {
            pid: 1,
            calls: BTreeMap::from([("cuInit".to_string(), 1)]),
            ..Default::default()
        });
        b[word::NAMES * 8] ^= 1;
        let l = decode(&b).unwrap();
        assert!(l.calls.is_empty());
        assert_eq!(l.pid, 1);
    }

    #[test]
    fn side_files_are_named_after_the_events_file() {
        assert_eq!(
            side_file("events.jsonl", "events.jsonl.77.ledger"),
            Some((77, Side::Ledger))
        );
        assert_eq!(
            side_file("events.jsonl", "events.jsonl.77.maps.3"),
            Some((77, Side::Maps(3)))
        );
        assert_eq!(side_file("events.jsonl", "events.jsonl"), None);
        assert_eq!(side_file("events.jsonl", "events.jsonl.x.ledger"), None);
        assert_eq!(side_file("events.jsonl", "other.77.ledger"), None);
        assert!(ledger_path("/d/events.jsonl", 5).ends_with("events.jsonl.5.ledger"));
        assert_eq!(
            side_file("events.jsonl", &ledger_path("events.jsonl", 5)),
            Some((5, Side::Ledger)),
            "what the shim writes is what gpu-doctor reads"
        );
        assert_eq!(
            side_file("events.jsonl", &maps_path("events.jsonl", 5, 2)),
            Some((5, Side::Maps(2)))
        );
    }
}
