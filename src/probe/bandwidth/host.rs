//! Host memory: pattern fill and check of the buffers the copies move, and NUMA placement of
//! the measuring thread (CPU affinity, memory policy) so its buffers land next to the GPU.

use std::ffi::c_void;
use std::ptr;

use crate::facts::bandwidth::HostPlacement;

/// The value of word `i` of a buffer filled with `seed` (never 0, so a zeroed buffer fails).
#[inline]
pub fn pattern(seed: u64, i: usize) -> u64 {
    (i as u64)
        .wrapping_add(seed << 40)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1
}

/// Runs `f` over `words` u64 at `ptr`, split over a few threads (which inherit the calling
/// thread's CPU affinity and memory policy, so first touch stays on the chosen node).
fn par(ptr: *mut u64, words: usize, f: &(dyn Fn(&mut [u64], usize) -> bool + Sync)) -> bool {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = words.div_ceil(threads).max(1);
    let base = ptr as usize;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let start = (t * chunk).min(words);
                    let end = (start + chunk).min(words);
                    if start == end {
                        return true;
                    }
                    // SAFETY: disjoint ranges of a live buffer of `words` u64.
                    let part = unsafe {
                        std::slice::from_raw_parts_mut((base as *mut u64).add(start), end - start)
                    };
                    f(part, start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect::<Vec<bool>>() // join every thread before judging
            .into_iter()
            .all(|ok| ok)
    })
}

pub(super) fn fill(ptr: *mut u64, words: usize, seed: u64) {
    par(ptr, words, &|part, off| {
        for (i, w) in part.iter_mut().enumerate() {
            *w = pattern(seed, off + i);
        }
        true
    });
}

pub(super) fn zero(ptr: *mut u64, words: usize) {
    par(ptr, words, &|part, _| {
        part.fill(0);
        true
    });
}

/// Every word (sparse = false) or one word per 4 KiB plus the first and last 32 KiB.
pub(super) fn check(ptr: *mut u64, words: usize, seed: u64, sparse: bool) -> bool {
    if sparse {
        // SAFETY: a live buffer of `words` u64, read only.
        let s = unsafe { std::slice::from_raw_parts(ptr as *const u64, words) };
        let edge = 4096.min(words);
        return (0..edge)
            .chain(words - edge..words)
            .chain((0..words).step_by(512))
            .all(|i| s[i] == pattern(seed, i));
    }
    par(ptr, words, &|part, off| {
        part.iter()
            .enumerate()
            .all(|(i, w)| *w == pattern(seed, off + i))
    })
}

// ---- NUMA placement ------------------------------------------------------------------------

/// Parses a Linux cpulist ("0-15,32-47").
pub fn parse_cpulist(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(c) = part.parse() {
                    out.push(c);
                }
            }
        }
    }
    out
}

const MPOL_PREFERRED: i32 = 1;
const MPOL_F_NODE: u64 = 1;
const MPOL_F_ADDR: u64 = 2;

/// Pins the calling thread to the GPU's CPUs and prefers its NUMA node for new pages, so the
/// host buffers this thread (and its helpers) touch first land next to the GPU.
pub fn place_thread(cpus: Option<&str>, node: Option<u32>, host_nodes: u32) -> HostPlacement {
    let mut p = HostPlacement {
        numa_node: node,
        cpus: cpus.map(str::to_string),
        ..Default::default()
    };
    if let Some(list) = cpus {
        let want = parse_cpulist(list);
        // SAFETY: cpu_set_t is plain data; sched_{get,set}affinity on the calling thread.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut allowed) == 0 {
                let mut n = 0;
                for c in want.into_iter().filter(|c| *c < libc::CPU_SETSIZE as usize) {
                    if libc::CPU_ISSET(c, &allowed) {
                        libc::CPU_SET(c, &mut set);
                        n += 1;
                    }
                }
                if n == 0 {
                    p.notes
                        .push("none of the GPU's CPUs is allowed to this process".into());
                } else if libc::sched_setaffinity(0, size, &set) == 0 {
                    p.affinity_set = true;
                } else {
                    p.notes.push(format!(
                        "sched_setaffinity: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
    }
    if let Some(n) = node.filter(|_| host_nodes > 1) {
        let mut mask = [0u64; 16];
        if (n as usize) < 16 * 64 {
            mask[n as usize / 64] |= 1 << (n % 64);
            // SAFETY: set_mempolicy(mode, nodemask, maxnode) on the calling thread; the mask
            // holds 1024 bits and the kernel reads maxnode - 1 of them.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    MPOL_PREFERRED,
                    mask.as_ptr(),
                    (16 * 64 + 1) as libc::c_ulong,
                )
            };
            if rc == 0 {
                p.mempolicy_set = true;
            } else {
                p.notes.push(format!(
                    "set_mempolicy: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    p
}

/// NUMA node of the page at `addr` (which must have been touched).
pub(super) fn node_of(addr: *const c_void) -> Option<u32> {
    let mut node: i32 = -1;
    // SAFETY: get_mempolicy(int *mode, nodemask = NULL, maxnode = 0, addr, flags).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut node as *mut i32,
            ptr::null_mut::<u64>(),
            0u64,
            addr,
            MPOL_F_NODE | MPOL_F_ADDR,
        )
    };
    (rc == 0 && node >= 0).then_some(node as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulist_parses_ranges_singles_and_junk() {
        assert_eq!(parse_cpulist("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist(""), Vec::<usize>::new());
        assert_eq!(parse_cpulist("x,5"), vec![5]);
    }

    #[test]
    fn pattern_fill_and_check_catch_a_single_bad_word() {
        let words = 1 << 16;
        let mut v = vec![0u64; words];
        assert!(!check(v.as_mut_ptr(), words, 7, false));
        fill(v.as_mut_ptr(), words, 7);
        assert!(check(v.as_mut_ptr(), words, 7, false));
        assert!(check(v.as_mut_ptr(), words, 7, true));
        assert!(!check(v.as_mut_ptr(), words, 8, false));
        v[words / 2 + 3] ^= 1;
        assert!(!check(v.as_mut_ptr(), words, 7, false));
        // Sparse checks see the edges and one word per 4 KiB.
        v[words / 2 + 3] ^= 1;
        v[words - 1] = 0;
        assert!(!check(v.as_mut_ptr(), words, 7, true));
        zero(v.as_mut_ptr(), words);
        assert!(v.iter().all(|w| *w == 0));
        assert!((0..1000).all(|i| pattern(1, i) != 0 && pattern(1, i) != pattern(2, i)));
    }

    #[test]
    fn placement_without_facts_changes_nothing() {
        let p = place_thread(None, None, 1);
        assert!(!p.affinity_set && !p.mempolicy_set && p.notes.is_empty());
    }
}
