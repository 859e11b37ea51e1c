//! The process ledger (shim_proto::cuda::ledger): call counters and per-device accounting in a
//! file mapped shared, so the figures outlive a process that ends without exit handlers (Go's
//! exit_group, `_exit`, SIGKILL). Until the file is mapped (and if it cannot be), the words
//! live in a static: counting never waits for it.
//!
//! A process forked without exec shares the mapping: its calls add to its parent's counters
//! (one ledger, counted once), and only the process that created the ledger writes `stats`.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use shim_proto::cuda::ledger::{self, DEVICES, MAGIC, WORDS, word};

#[repr(C)]
pub(super) struct Words([AtomicU64; WORDS]);

static FALLBACK: Words = Words([const { AtomicU64::new(0) }; WORDS]);
static LEDGER: AtomicPtr<Words> = AtomicPtr::new(&FALLBACK as *const Words as *mut Words);

/// The ledger in use: the mapped file, or the static before (or without) it.
#[inline(always)]
pub(super) fn ledger() -> &'static Words {
    // SAFETY: LEDGER points at FALLBACK or at a mapping of BYTES bytes that is never unmapped,
    // both valid for 'static and made of AtomicU64 (all-zero bytes are valid values).
    unsafe { &*LEDGER.load(Ordering::Acquire) }
}

impl Words {
    /// One more call of variant `id`.
    #[inline(always)]
    pub(super) fn count(&self, id: usize) {
        self.0[word::COUNTS + id].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn calls(&self, id: usize) -> u64 {
        self.0[word::COUNTS + id].load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, w: usize, n: u64) {
        self.0[w].fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(&self, w: usize) -> u64 {
        self.0[w].load(Ordering::Relaxed)
    }

    /// Publishes what the process holds on `dev` and its peak (callers hold the accounting
    /// lock, so a process's own updates are ordered).
    pub(super) fn device(&self, dev: i32, held: u64, peak: u64) {
        let tag = (dev as i64 + 1) as u64;
        for d in 0..DEVICES {
            let base = word::DEVICES + 3 * d;
            let slot = &self.0[base];
            let cur = slot.load(Ordering::Relaxed);
            let mine = cur == tag
                || (cur == 0
                    && slot
                        .compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
                        .map_or_else(|now| now == tag, |_| true));
            if mine {
                self.0[base + 1].store(held, Ordering::Relaxed);
                self.0[base + 2].fetch_max(peak, Ordering::Relaxed);
                return;
            }
        }
    }

    /// The process that created this ledger (0 for the static one).
    pub(super) fn owner(&self) -> u32 {
        self.get(word::PID) as u32
    }

    pub(super) fn mark_exited(&self) {
        self.0[word::EXITED].store(1, Ordering::Relaxed);
    }
}

/// Creates `EVENTS.PID.ledger` beside the events file and moves counting into it. Called once,
/// when the shim's state is set up; a failure (no events file, read-only directory) leaves the
/// static ledger in place.
pub(super) fn open(events: Option<&str>) {
    let Some(events) = events else { return };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let Ok(path) = std::ffi::CString::new(ledger::ledger_path(events, pid)) else {
        return;
    };
    // SAFETY: open/ftruncate/mmap/close on a file we create; the mapping is checked before use
    // and never unmapped (it must outlive every thread that counts).
    let mapped = unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        );
        if fd < 0 {
            return;
        }
        let len = ledger::BYTES;
        let p = if libc::ftruncate(fd, len as libc::off_t) == 0 {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        if p == libc::MAP_FAILED {
            libc::unlink(path.as_ptr());
            return;
        }
        p as *mut Words
    };
    // SAFETY: a fresh shared mapping of BYTES zero bytes, aligned to a page: valid Words.
    let words = unsafe { &*mapped };
    let old = ledger();
    for w in word::INJECTED..WORDS {
        words.0[w].store(old.get(w), Ordering::Relaxed);
    }
    words.0[word::NAMES].store(ledger::names_hash(), Ordering::Relaxed);
    words.0[word::PID].store(u64::from(pid), Ordering::Relaxed);
    words.0[word::MAGIC].store(MAGIC, Ordering::Relaxed);
    LEDGER.store(mapped, Ordering::Release);
    // Counts made by other threads between the copy and the switch went to the static: add
    // what is new there.
    for w in word::COUNTS..word::DEVICES {
        let late = old.get(w).saturating_sub(words.get(w));
        if late > 0 {
            words.add(w, late);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_shim_proto() {
        assert_eq!(core::mem::size_of::<Words>(), ledger::BYTES);
        let w = Words([const { AtomicU64::new(0) }; WORDS]);
        w.0[word::MAGIC].store(MAGIC, Ordering::Relaxed);
        w.0[word::NAMES].store(ledger::names_hash(), Ordering::Relaxed);
        w.0[word::PID].store(9, Ordering::Relaxed);
        w.count(crate::hooks::id("cuMemAlloc_v2"));
        w.count(crate::hooks::id("cuMemAlloc_v2"));
        w.add(word::INJECTED, 1);
        w.device(0, 5, 7);
        w.device(2, 1, 1);
        w.device(0, 3, 6);
        let bytes: Vec<u8> =
            w.0.iter()
                .flat_map(|a| a.load(Ordering::Relaxed).to_ne_bytes())
                .collect();
        let l = ledger::decode(&bytes).unwrap();
        assert_eq!(l.pid, 9);
        assert_eq!(l.calls["cuMemAlloc_v2"], 2);
        assert_eq!(l.injected, 1);
        assert_eq!(
            l.devices,
            vec![(0, 3, 7), (2, 1, 1)],
            "held is the last, peak the most"
        );
        assert!(!l.exited);
    }
}
