//! The events file gpu-doctor reads.

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The events file: opened O_APPEND (each line is one write), moved to a high descriptor,
/// re-checked before each write so a program that closes or reuses descriptors never gets our
/// lines in its own files. Any error just drops the event.
pub(super) struct Sink {
    path: Option<std::ffi::CString>,
    fd: AtomicI32,
    ident: AtomicU64,
}

fn file_ident(fd: c_int) -> Option<u64> {
    // SAFETY: `stat` is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into `st`, a valid stat buffer; a bad `fd` is only an error.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ st.st_ino)
}

impl Sink {
    pub(super) fn open(path: Option<String>) -> Sink {
        let path = path
            .filter(|p| !p.is_empty())
            .and_then(|p| std::ffi::CString::new(p).ok());
        let s = Sink {
            path,
            fd: AtomicI32::new(-1),
            ident: AtomicU64::new(0),
        };
        s.reopen();
        s
    }

    fn reopen(&self) -> c_int {
        let Some(path) = &self.path else { return -1 };
        // SAFETY: open/fcntl/close on our own descriptors. No O_CREAT: if gpu-doctor removed
        // the file, the events have no reader.
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
            if old >= 0 && old != fd {
                // Only close the old one if it is still ours.
                if file_ident(old) == Some(ident) {
                    libc::close(old);
                }
            }
            fd
        }
    }

    pub(super) fn write(&self, bytes: &[u8]) {
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
