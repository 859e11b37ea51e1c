//! Where return addresses resolve (`leak-check`): copies of /proc/self/maps written beside the
//! events file (`EVENTS.PID.maps.SEQ`), which gpu-doctor reads to turn an address into an
//! object file and offset, and symbolises after the run. A new copy is made when an allocation's
//! backtrace holds an address outside every executable mapping of the last copy (a library
//! loaded since); the executable ranges of the last copy are kept here to check that, with no
//! allocation. At most [`MAX_COPIES`] copies per process.

use core::ffi::c_void;
use std::ffi::CString;
use std::sync::Mutex;

use shim_proto::cuda::ledger::maps_path;

/// Executable mappings remembered from the last copy.
const MAX_RANGES: usize = 4096;
/// Copies per process (a program that loads libraries all the time stops being followed).
const MAX_COPIES: u64 = 64;

pub(super) struct Maps {
    ranges: [(u64, u64); MAX_RANGES],
    n: usize,
    /// Sequence number of the last copy (0: none yet).
    pub(super) seq: u64,
    /// The shim's own executable mapping.
    shim: (u64, u64),
}

pub(super) static MAPS: Mutex<Maps> = Mutex::new(Maps {
    ranges: [(0, 0); MAX_RANGES],
    n: 0,
    seq: 0,
    shim: (0, 0),
});

impl Maps {
    /// True when `ip` is inside an executable mapping of the last copy.
    pub(super) fn covers(&self, ip: u64) -> bool {
        let r = &self.ranges[..self.n];
        let i = r.partition_point(|&(start, _)| start <= ip);
        i > 0 && ip < r[i - 1].1
    }

    /// True when `ip` is in the shim itself.
    pub(super) fn in_shim(&self, ip: u64) -> bool {
        ip >= self.shim.0 && ip < self.shim.1
    }

    /// Makes a new copy of /proc/self/maps, `EVENTS.PID.maps.SEQ`, and remembers its
    /// executable ranges. False once the copies are used up.
    pub(super) fn refresh(&mut self, events: &str) -> bool {
        if self.seq >= MAX_COPIES {
            return false;
        }
        self.seq += 1;
        self.n = 0;
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        // No events file (gpu-doctor gone, or none given): no copy, never a file elsewhere.
        let path = (!events.is_empty())
            .then(|| CString::new(maps_path(events, pid, self.seq)).ok())
            .flatten();
        // SAFETY: open/read/write/close on our own descriptors and buffers; errors only stop
        // the copy (the ranges read so far are kept).
        unsafe {
            let out = match &path {
                Some(path) => libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o600,
                ),
                None => -1,
            };
            let inp = libc::open(
                c"/proc/self/maps".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            if inp >= 0 {
                let mut buf = [0u8; 4096];
                let mut line = LineBuf::new();
                loop {
                    let n = libc::read(inp, buf.as_mut_ptr() as *mut c_void, buf.len());
                    if n <= 0 {
                        break;
                    }
                    let chunk = &buf[..n as usize];
                    if out >= 0 {
                        libc::write(out, chunk.as_ptr() as *const c_void, chunk.len());
                    }
                    for &b in chunk {
                        if let Some(l) = line.push(b) {
                            self.add_line(l);
                        }
                    }
                }
                libc::close(inp);
            }
            if out >= 0 {
                libc::close(out);
            }
        }
        let here = Maps::refresh as *const () as u64;
        let shim = self.ranges[..self.n]
            .iter()
            .copied()
            .find(|&(s, e)| here >= s && here < e);
        if let Some(r) = shim {
            self.shim = r;
        }
        true
    }

    fn add_line(&mut self, l: &[u8]) {
        if let Some((start, end)) = exec_range(l)
            && self.n < MAX_RANGES
        {
            self.ranges[self.n] = (start, end);
            self.n += 1;
        }
    }
}

/// A line of /proc/self/maps as it streams in (longer lines are cut: only their start, the
/// range and permissions, matters here).
struct LineBuf {
    buf: [u8; 128],
    n: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            buf: [0; 128],
            n: 0,
        }
    }

    /// The line just completed, at a newline.
    fn push(&mut self, b: u8) -> Option<&[u8]> {
        if b == b'\n' {
            let n = self.n;
            self.n = 0;
            return Some(&self.buf[..n]);
        }
        if self.n < self.buf.len() {
            self.buf[self.n] = b;
            self.n += 1;
        }
        None
    }
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// `start-end r-xp …`: the range of an executable mapping.
fn exec_range(l: &[u8]) -> Option<(u64, u64)> {
    let dash = l.iter().position(|&c| c == b'-')?;
    let space = l.iter().position(|&c| c == b' ')?;
    if space <= dash || l.len() < space + 4 || l[space + 3] != b'x' {
        return None;
    }
    Some((hex(&l[..dash])?, hex(&l[dash + 1..space])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_ranges() {
        assert_eq!(
            exec_range(b"7f0000001000-7f0000005000 r-xp 00001000 08:01 123 /usr/lib/libc.so.6"),
            Some((0x7f00_0000_1000, 0x7f00_0000_5000))
        );
        assert_eq!(exec_range(b"7f00-7f10 rw-p 00000000 00:00 0"), None);
        assert_eq!(exec_range(b"garbage"), None);
        assert_eq!(maps_path("/d/ev", 42, 7), "/d/ev.42.maps.7");
    }

    #[test]
    fn covers_this_process_code() {
        let dir = std::env::temp_dir().join(format!("gd-maps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("ev");
        let mut m = Maps {
            ranges: [(0, 0); MAX_RANGES],
            n: 0,
            seq: 0,
            shim: (0, 0),
        };
        assert!(m.refresh(events.to_str().unwrap()));
        let here = covers_this_process_code as *const () as u64;
        assert!(m.covers(here));
        assert!(m.in_shim(here), "the test binary is the shim's code here");
        assert!(!m.covers(8));
        let copy =
            std::fs::read_to_string(dir.join(format!("ev.{}.maps.1", std::process::id()))).unwrap();
        assert!(copy.contains("r-xp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
