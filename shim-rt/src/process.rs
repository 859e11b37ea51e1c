//! The process a shim runs in: its environment, the clock and the calling thread.

use core::ffi::CStr;

/// The environment variable `name`, copied (None when unset or not a C string).
pub fn getenv(name: &str) -> Option<String> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getenv with a valid C string; the value is copied at once.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv's answer is a NUL-terminated string, read before anything can change it.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
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

/// The calling thread's kernel id.
pub fn tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment_clock_and_thread() {
        assert_eq!(getenv("GPU_DOCTOR_SHIM_RT_SURELY_UNSET"), None);
        assert_eq!(getenv("PATH"), std::env::var("PATH").ok());
        let t0 = now_us();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_us() >= t0 + 2000, "monotonic, in µs");
        let main = tid();
        let other = std::thread::spawn(tid).join().unwrap();
        assert_ne!(main, other, "one id per thread");
        assert_eq!(main, tid());
    }
}
