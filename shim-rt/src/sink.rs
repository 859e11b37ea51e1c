//! The events file gpu-doctor reads: opened O_APPEND so each line is one `write`, moved to a
//! high descriptor, re-checked before each write so a program that closes or reuses
//! descriptors never gets our lines in its own files. No O_CREAT: a file gpu-doctor removed has
//! no reader. Any error just drops the line.

use core::ffi::{c_int, c_void};
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

pub struct Sink {
    path: Option<CString>,
    fd: AtomicI32,
    ident: AtomicU64,
}

/// Which file a descriptor is open on (device and inode), None for a closed one.
fn file_ident(fd: c_int) -> Option<u64> {
    // SAFETY: `stat` is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into `st`, a valid stat buffer; a bad `fd` is only an error.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(st.st_dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ st.st_ino)
}

impl Sink {
    /// The events file at `path`; an empty or absent path writes nothing.
    pub fn open(path: Option<String>) -> Sink {
        let path = path
            .filter(|p| !p.is_empty())
            .and_then(|p| CString::new(p).ok());
        let s = Sink {
            path,
            fd: AtomicI32::new(-1),
            ident: AtomicU64::new(0),
        };
        s.reopen();
        s
    }

    /// Whether there is an events file to write to.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    fn reopen(&self) -> c_int {
        let Some(path) = &self.path else { return -1 };
        // SAFETY: open/fcntl/close on our own descriptors.
        unsafe {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return -1;
            }
            let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 700);
            let fd = if high >= 0 {
                libc::close(fd);
                high
            } else {
                fd
            };
            let Some(ident) = file_ident(fd) else {
                libc::close(fd);
                return -1;
            };
            self.ident.store(ident, Ordering::Release);
            let old = self.fd.swap(fd, Ordering::AcqRel);
            // Only close the old one if it is still ours.
            if old >= 0 && old != fd && file_ident(old) == Some(ident) {
                libc::close(old);
            }
            fd
        }
    }

    /// Appends `bytes` (one whole line) with one `write`.
    pub fn write(&self, bytes: &[u8]) {
        if self.path.is_none() {
            return;
        }
        let mut fd = self.fd.load(Ordering::Acquire);
        if fd < 0 || file_ident(fd) != Some(self.ident.load(Ordering::Acquire)) {
            fd = self.reopen();
            if fd < 0 {
                return;
            }
        }
        // SAFETY: write from a valid buffer; errors ignored (nobody reads the events anymore).
        unsafe {
            libc::write(fd, bytes.as_ptr() as *const c_void, bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_events_file_even_when_the_program_reuses_its_descriptor() {
        let dir = std::env::temp_dir().join(format!("gd-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("events");
        let other = dir.join("other");
        std::fs::write(&events, "").unwrap();
        std::fs::write(&other, "").unwrap();
        let s = Sink::open(Some(events.display().to_string()));
        assert!(s.enabled());
        s.write(b"a\n");
        let fd = s.fd.load(Ordering::Acquire);
        assert!(fd >= 700, "moved to a high descriptor: {fd}");
        // The program puts one of its own files on our descriptor number.
        let o = std::fs::OpenOptions::new()
            .append(true)
            .open(&other)
            .unwrap();
        let theirs = std::os::fd::AsRawFd::as_raw_fd(&o);
        // SAFETY: dup2 of a descriptor this test owns onto the sink's number.
        let dup = unsafe { libc::dup2(theirs, fd) };
        assert_eq!(dup, fd);
        s.write(b"b\n");
        assert_eq!(std::fs::read_to_string(&events).unwrap(), "a\nb\n");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "", "never theirs");
        std::fs::remove_file(&events).unwrap();
        s.write(b"c\n");
        assert!(!events.exists(), "a removed file is not created again");
        let off = Sink::open(None);
        assert!(!off.enabled());
        off.write(b"d\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
