//! The events file (the same rules as the CUDA shim's, shim/src/hooks.rs): opened O_APPEND so
//! each line is one `write`, moved to a high descriptor, re-checked before each write so a
//! program that closes or reuses descriptors never gets our lines in its own files. No
//! O_CREAT: a file gpu-doctor removed has no reader. Any error just drops the line.

use core::ffi::{c_int, c_void};
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::proto::event::{Event, EventLine};

pub struct Sink {
    path: Option<CString>,
    fd: AtomicI32,
    ident: AtomicU64,
}

fn file_ident(fd: c_int) -> Option<u64> {
    // SAFETY: fstat into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(st.st_dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ st.st_ino)
}

impl Sink {
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
            if old >= 0 && old != fd && file_ident(old) == Some(ident) {
                libc::close(old);
            }
            fd
        }
    }

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

    /// Writes one event line (pid, thread and time added).
    pub fn emit(&self, event: Event) {
        if !self.enabled() {
            return;
        }
        let line = EventLine {
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() } as u32,
            tid: tid(),
            t_us: now_us(),
            event,
        };
        if let Ok(mut bytes) = serde_json::to_vec(&line) {
            bytes.push(b'\n');
            self.write(&bytes);
        }
    }
}

/// CLOCK_MONOTONIC in µs.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

pub fn tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}
