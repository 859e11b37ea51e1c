//! The FFI layer: the exported `dlsym` hook, the `cuGetProcAddress` hooks and one wrapper per
//! intercepted driver variant (names::VARIANTS).
//!
//! How a program reaches the driver, and how each path lands here:
//! - linked against libcuda (`-lcuda`): the dynamic linker binds `cuMemAlloc_v2` to this
//!   library's export first (LD_PRELOAD order); the export forwards to libcuda's symbol,
//!   resolved lazily (`link`).
//! - `dlopen("libcuda.so.1")` + `dlsym`: the `dlsym` export wraps the answer (`dlsym`).
//! - `cuGetProcAddress` (the CUDA runtime, so PyTorch, CuPy, JAX, cgo): the hook wraps the
//!   entry point it hands out when that pointer is libcuda's export of a known variant, or
//!   else (pointer differs) when the caller's CUDA version and stream flags select exactly one
//!   known variant (`proc`). Anything else is handed out untouched.
//!
//! Every wrapper forwards to exactly one real pointer (a slot set once); calls not configured
//! for injection go straight through after one counter increment.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::accounting::{Accounting, Key};
use shim_proto::cuda::config::{self, Config};
use shim_proto::cuda::events::Line;
use shim_proto::cuda::names::{self, IDENTITY_ONLY, RULE_MAX_VERSION, VARIANTS};

type CUresult = c_uint;
type Ptr = *mut c_void;
type DlsymFn = unsafe extern "C" fn(Ptr, *const c_char) -> Ptr;

const OUT_OF_MEMORY: CUresult = 2;
const NOT_INITIALIZED: CUresult = 3;
const NOT_READY: CUresult = 600;
const RTLD_NEXT: Ptr = -1isize as Ptr;
const PROC_LEGACY_STREAM: u64 = 1;
const PROC_PER_THREAD_STREAM: u64 = 2;
/// Failed-call events per process before they are only counted.
const MAX_FAIL_EVENTS: u64 = 10_000;
/// Context-operation events per process before they are only counted.
const MAX_CTX_EVENTS: u64 = 100_000;

const N: usize = VARIANTS.len();

/// The index of `name` in names::VARIANTS, at compile time (a typo does not build).
const fn id(name: &str) -> usize {
    let n = name.as_bytes();
    let mut i = 0;
    while i < N {
        let v = VARIANTS[i].name.as_bytes();
        if v.len() == n.len() {
            let mut j = 0;
            while j < n.len() && v[j] == n[j] {
                j += 1;
            }
            if j == n.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("wrapper for a name missing from names::VARIANTS")
}

// ---------------------------------------------------------------------------------------------
// Per-variant state: real pointers (slot 0: link/dlsym path, slot 1: cuGetProcAddress path),
// call counters, first-use flags.

static SLOTS: [[AtomicPtr<c_void>; N]; 2] = [
    [const { AtomicPtr::new(core::ptr::null_mut()) }; N],
    [const { AtomicPtr::new(core::ptr::null_mut()) }; N],
];
static COUNTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Bit 0: hooked via dlsym, 1: via proc, 2: via link, 3: nomatch reported.
static SEEN: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static FP_CALLS: AtomicU64 = AtomicU64::new(0);
static FP_FIRED: AtomicU64 = AtomicU64::new(0);
/// Failures injected (failpoint and limit), whether or not their event was written.
static INJECTED: AtomicU64 = AtomicU64::new(0);
static CTX_EVENTS: AtomicU64 = AtomicU64::new(0);
static CTX_NOOPS: AtomicU64 = AtomicU64::new(0);
static FAIL_EVENTS: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Wrapper addresses of one variant.
#[derive(Clone, Copy)]
struct Wrap {
    /// Forwards to slot 0 (handed out by dlsym).
    link: *const c_void,
    /// Forwards to slot 1 (handed out by cuGetProcAddress).
    proc_: *const c_void,
    /// The exported symbol (forwards to slot 0).
    export: *const c_void,
}

impl Wrap {
    /// `p` is one of these wrappers (or the export): wrapping it again would count twice.
    fn is_ours(&self, p: *const c_void) -> bool {
        p == self.export || p == self.link || p == self.proc_
    }
}

struct Table([Wrap; N]);
// SAFETY: the table holds code addresses only, never written after compile time.
unsafe impl Sync for Table {}

const NO_WRAP: Wrap = Wrap {
    link: core::ptr::null(),
    proc_: core::ptr::null(),
    export: core::ptr::null(),
};

fn set_once(slot: &AtomicPtr<c_void>, p: Ptr) -> bool {
    match slot.compare_exchange(
        core::ptr::null_mut(),
        p,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => true,
        Err(cur) => cur == p,
    }
}

fn mark(id: usize, bit: u64) -> bool {
    SEEN[id].fetch_or(1 << bit, Ordering::Relaxed) & (1 << bit) == 0
}

// ---------------------------------------------------------------------------------------------
// The real dlsym and libcuda.

static REAL_DLSYM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

unsafe extern "C" fn null_dlsym(_: Ptr, _: *const c_char) -> Ptr {
    core::ptr::null_mut()
}

/// glibc's dlsym, found with dlvsym (which is not hooked): 2.34 moved dlsym into libc with a
/// new version; 2.2.5 is the x86_64 base version, 2.17 the aarch64 one.
extern "C" fn real_dlsym_addr() -> *const c_void {
    let p = REAL_DLSYM.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    let mut found: Ptr = core::ptr::null_mut();
    for ver in [c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"] {
        // SAFETY: dlvsym with valid C strings.
        found = unsafe { libc::dlvsym(RTLD_NEXT, c"dlsym".as_ptr(), ver.as_ptr()) };
        if !found.is_null() {
            break;
        }
    }
    if found.is_null() {
        return null_dlsym as *const c_void;
    }
    REAL_DLSYM.store(found, Ordering::Release);
    found
}

fn real_dlsym() -> DlsymFn {
    // SAFETY: real_dlsym_addr returns glibc's dlsym or null_dlsym, both of this type.
    unsafe { core::mem::transmute::<*const c_void, DlsymFn>(real_dlsym_addr()) }
}

static LIBCUDA: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// A handle on libcuda if the process has loaded it (never loads it).
fn libcuda() -> Ptr {
    let h = LIBCUDA.load(Ordering::Acquire);
    if !h.is_null() {
        return h;
    }
    for name in [c"libcuda.so.1", c"libcuda.so"] {
        // SAFETY: dlopen with RTLD_NOLOAD only returns an already loaded library.
        let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if !h.is_null() {
            if !set_once(&LIBCUDA, h) {
                // SAFETY: drop the extra reference of a racing lookup.
                unsafe { libc::dlclose(h) };
            }
            return LIBCUDA.load(Ordering::Acquire);
        }
    }
    core::ptr::null_mut()
}

/// libcuda's own symbol `name`: from the loaded libcuda, else the next object after the shim.
fn lookup_real(name: &str) -> Ptr {
    let mut buf = [0u8; 96];
    if name.len() >= buf.len() {
        return core::ptr::null_mut();
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    let cname = buf.as_ptr() as *const c_char;
    let dlsym = real_dlsym();
    let h = libcuda();
    // SAFETY: valid handle (or RTLD_NEXT) and NUL-terminated name.
    unsafe {
        if !h.is_null() {
            let p = dlsym(h, cname);
            if !p.is_null() {
                return p;
            }
        }
        dlsym(RTLD_NEXT, cname)
    }
}

/// The real pointer a wrapper on path `S` forwards to.
#[inline(always)]
fn real<const S: usize>(id: usize) -> Option<Ptr> {
    let p = SLOTS[S][id].load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    if S == 1 {
        return None;
    }
    resolve(&SLOTS[0][id], VARIANTS[id].name)
}

/// An empty `slot` on first use: libcuda's `name`, stored once (a racing lookup stores the
/// same pointer).
#[cold]
fn resolve(slot: &AtomicPtr<c_void>, name: &str) -> Option<Ptr> {
    let p = lookup_real(name);
    if p.is_null() {
        return None;
    }
    set_once(slot, p);
    Some(slot.load(Ordering::Acquire))
}

/// Internal helpers the shim calls itself (never wrapped).
static CTX_GET_CURRENT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static CTX_GET_DEVICE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

fn internal(slot: &AtomicPtr<c_void>, name: &str) -> Option<Ptr> {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    resolve(slot, name)
}

/// The context current on this thread (0 when none or the driver is not initialised).
fn current_ctx() -> u64 {
    let Some(f) = internal(&CTX_GET_CURRENT, "cuCtxGetCurrent") else {
        return 0;
    };
    let mut ctx: Ptr = core::ptr::null_mut();
    // SAFETY: cuCtxGetCurrent(CUcontext*).
    let f: unsafe extern "C" fn(*mut Ptr) -> CUresult = unsafe { core::mem::transmute(f) };
    if unsafe { f(&mut ctx) } == 0 {
        ctx as u64
    } else {
        0
    }
}

/// The device of the current context (-1 when none).
fn current_device() -> i32 {
    let Some(f) = internal(&CTX_GET_DEVICE, "cuCtxGetDevice") else {
        return -1;
    };
    let mut dev: c_int = -1;
    // SAFETY: cuCtxGetDevice(CUdevice*).
    let f: unsafe extern "C" fn(*mut c_int) -> CUresult = unsafe { core::mem::transmute(f) };
    if unsafe { f(&mut dev) } == 0 { dev } else { -1 }
}

// ---------------------------------------------------------------------------------------------
// Process state: configuration, events sink, accounting.

struct State {
    config: Config,
    config_error: Option<String>,
    /// Variants the failpoint targets.
    armed: [bool; N],
    acct: Option<Mutex<Accounting>>,
    peak_step: u64,
    sink: Sink,
}

static STATE: OnceLock<State> = OnceLock::new();

fn getenv(name: &str) -> Option<String> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getenv with a valid C string; the value is copied at once.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn state() -> &'static State {
    if let Some(s) = STATE.get() {
        return s;
    }
    let mut fresh = false;
    let s = STATE.get_or_init(|| {
        fresh = true;
        init_state()
    });
    if fresh {
        announce(s);
    }
    s
}

fn init_state() -> State {
    let line = getenv(config::ENV_CONFIG).unwrap_or_default();
    let (config, config_error) = match Config::parse(&line) {
        Ok(c) => (c, None),
        Err(e) => (Config::default(), Some(e)),
    };
    let mut armed = [false; N];
    if let Some(fp) = &config.fail {
        for (i, v) in VARIANTS.iter().enumerate() {
            armed[i] = v.base == fp.call || v.name == fp.call;
        }
    }
    let acct = config.limit.map(|l| Mutex::new(Accounting::new(l)));
    let peak_step = config
        .limit
        .map(|l| (l / 64).max(1 << 20))
        .unwrap_or(1 << 20);
    State {
        config,
        config_error,
        armed,
        acct,
        peak_step,
        sink: Sink::open(getenv(config::ENV_EVENTS)),
    }
}

fn announce(s: &State) {
    let mut l = event("start");
    // SAFETY: getppid has no preconditions.
    l.u64("ppid", unsafe { libc::getppid() } as u64);
    let mut exe = [0u8; 512];
    // SAFETY: readlink into a buffer of the given size.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            exe.as_mut_ptr() as *mut c_char,
            exe.len(),
        )
    };
    if n > 0 {
        l.str("exe", &String::from_utf8_lossy(&exe[..n as usize]));
    }
    if let Some(e) = &s.config_error {
        l.str("config_error", e);
    }
    s.sink.write(l.finish());
}

fn lock(m: &Mutex<Accounting>) -> std::sync::MutexGuard<'_, Accounting> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The events file: opened O_APPEND (each line is one write), moved to a high descriptor,
/// re-checked before each write so a program that closes or reuses descriptors never gets our
/// lines in its own files. Any error just drops the event.
struct Sink {
    path: Option<std::ffi::CString>,
    fd: AtomicI32,
    ident: AtomicU64,
}

fn file_ident(fd: c_int) -> Option<u64> {
    // SAFETY: fstat into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ st.st_ino)
}

impl Sink {
    fn open(path: Option<String>) -> Sink {
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

    fn write(&self, bytes: &[u8]) {
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

fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

fn event(kind: &str) -> Line {
    let mut l = Line::new();
    // SAFETY: getpid has no preconditions.
    l.str("ev", kind)
        .u64("pid", unsafe { libc::getpid() } as u64)
        .u64("tid", tid())
        .u64("t_us", now_us());
    l
}

fn emit(mut l: Line) {
    state().sink.write(l.finish());
}

// ---------------------------------------------------------------------------------------------
// Around every call.

std::thread_local! {
    /// True while this thread is inside a wrapper: a driver whose entry points call its own
    /// exported functions through the PLT would otherwise reach our exports again and count,
    /// account and fail every call twice. Nested calls go straight to the real function.
    static INSIDE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

struct Inside;

impl Inside {
    /// None when this thread is already inside a wrapper.
    #[inline(always)]
    fn enter() -> Option<Inside> {
        INSIDE.with(|c| {
            if c.get() {
                None
            } else {
                c.set(true);
                Some(Inside)
            }
        })
    }
}

impl Drop for Inside {
    #[inline(always)]
    fn drop(&mut self) {
        INSIDE.with(|c| c.set(false));
    }
}

/// Before the real call: count it, and fire the failpoint when scheduled.
#[inline(always)]
fn before(id: usize) -> Option<CUresult> {
    COUNTS[id].fetch_add(1, Ordering::Relaxed);
    let s = state();
    if !s.armed[id] {
        return None;
    }
    fire(s, id)
}

#[cold]
fn fire(s: &State, id: usize) -> Option<CUresult> {
    let fp = s.config.fail.as_ref()?;
    let n = FP_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    if !fp.schedule.fires(n) {
        return None;
    }
    let fired = FP_FIRED.fetch_add(1, Ordering::Relaxed);
    if fp.schedule.times > 0 && fired >= fp.schedule.times {
        return None;
    }
    if fp.delay_us > 0 {
        let mut l = event("delay");
        l.str("call", VARIANTS[id].name)
            .u64("index", n)
            .u64("delay_us", fp.delay_us);
        emit(l);
        std::thread::sleep(std::time::Duration::from_micros(fp.delay_us));
    }
    if fp.code == 0 {
        return None;
    }
    INJECTED.fetch_add(1, Ordering::Relaxed);
    if event_budget() {
        let mut l = event("fail");
        l.str("call", VARIANTS[id].name)
            .u64("code", fp.code as u64)
            .bool("injected", true)
            .u64("index", n)
            .hex("ctx", current_ctx());
        emit(l);
    }
    Some(fp.code)
}

/// Whether another failure event may be written (else it is only counted as dropped).
fn event_budget() -> bool {
    if FAIL_EVENTS.fetch_add(1, Ordering::Relaxed) >= MAX_FAIL_EVENTS {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        false
    } else {
        true
    }
}

/// The real call with nothing configured around it: its failure recorded.
#[inline(always)]
fn passthrough(id: usize, call: impl FnOnce() -> CUresult) -> CUresult {
    let rc = call();
    after(id, rc);
    rc
}

/// After the real call: record a failure.
#[inline(always)]
fn after(id: usize, rc: CUresult) {
    if rc != 0 && rc != NOT_READY {
        failed(id, rc);
    }
}

#[cold]
fn failed(id: usize, rc: CUresult) {
    if !event_budget() {
        return;
    }
    let mut l = event("fail");
    l.str("call", VARIANTS[id].name)
        .u64("code", rc as u64)
        .bool("injected", false)
        .hex("ctx", current_ctx());
    emit(l);
}

// ---------------------------------------------------------------------------------------------
// Memory accounting around allocation and free calls.

/// An allocation under `--limit`: reserve, call, commit or cancel.
fn alloc(
    id: usize,
    dev: Option<i32>,
    size: u64,
    call: impl FnOnce() -> CUresult,
    done: impl FnOnce() -> Option<(Key, u64)>,
) -> CUresult {
    let s = state();
    let (Some(acct), Some(dev)) = (&s.acct, dev) else {
        return passthrough(id, call);
    };
    let reserved = lock(acct).reserve(dev, size);
    if let Err(used) = reserved {
        INJECTED.fetch_add(1, Ordering::Relaxed);
        if !event_budget() {
            return OUT_OF_MEMORY;
        }
        let mut l = event("fail");
        l.str("call", VARIANTS[id].name)
            .u64("code", OUT_OF_MEMORY as u64)
            .bool("injected", true)
            .u64("size", size)
            .i64("dev", dev as i64)
            .u64("used", used)
            .u64("limit", s.config.limit.unwrap_or(0))
            .hex("ctx", current_ctx());
        emit(l);
        return OUT_OF_MEMORY;
    }
    let rc = call();
    if rc == 0 {
        match done() {
            Some((key, actual)) => {
                let peak = lock(acct).commit(key, dev, size, actual, s.peak_step);
                if let Some(bytes) = peak {
                    let mut l = event("peak");
                    l.i64("dev", dev as i64).u64("bytes", bytes);
                    emit(l);
                }
            }
            None => lock(acct).cancel(dev, size),
        }
    } else {
        lock(acct).cancel(dev, size);
        after(id, rc);
    }
    rc
}

/// A free under `--limit`: forget first (so a racing allocation reusing the address is not
/// forgotten after it), restore if the driver refuses.
fn free(id: usize, key: Key, call: impl FnOnce() -> CUresult) -> CUresult {
    let s = state();
    let Some(acct) = &s.acct else {
        return passthrough(id, call);
    };
    let removed = lock(acct).remove(key);
    let rc = call();
    if rc != 0 {
        if let Some((dev, size)) = removed {
            lock(acct).restore(key, dev, size);
        }
        after(id, rc);
    }
    rc
}

fn limited_dev() -> Option<i32> {
    if state().acct.is_some() {
        Some(current_device())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Context operations (trace).

const SET_CURRENT: usize = id("cuCtxSetCurrent");

fn ctx_op(
    id: usize,
    call: impl FnOnce() -> CUresult,
    subject: impl FnOnce(CUresult) -> (u64, i64),
) -> CUresult {
    let s = state();
    if !s.config.trace {
        return passthrough(id, call);
    }
    let before_ctx = current_ctx();
    let rc = call();
    let after_ctx = current_ctx();
    let (ctx, dev) = subject(rc);
    // Re-binding the context already current (some frameworks do it around every call)
    // changes nothing: counted, not written.
    if rc == 0 && id == SET_CURRENT && before_ctx == ctx && after_ctx == ctx {
        CTX_NOOPS.fetch_add(1, Ordering::Relaxed);
        return rc;
    }
    if CTX_EVENTS.fetch_add(1, Ordering::Relaxed) >= MAX_CTX_EVENTS {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return rc;
    }
    let mut l = event("ctx");
    l.str("call", VARIANTS[id].name)
        .u64("code", rc as u64)
        .hex("ctx_before", before_ctx)
        .hex("ctx_after", after_ctx)
        .hex("ctx", ctx);
    if dev >= 0 {
        l.i64("dev", dev);
    }
    emit(l);
    rc
}

fn read_ptr(p: *mut Ptr, rc: CUresult) -> u64 {
    if rc == 0 && !p.is_null() {
        // SAFETY: the driver wrote the out-parameter on success.
        unsafe { *p as u64 }
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Wrappers. `w::<0>` forwards to slot 0, `w::<1>` to slot 1; the export forwards to slot 0.

macro_rules! forward {
    ($S:ident, $id:expr, ($($t:ty),*)) => {{
        match real::<$S>($id) {
            // SAFETY: the slot holds the real entry point of exactly this variant's ABI.
            Some(p) => unsafe { core::mem::transmute::<Ptr, unsafe extern "C" fn($($t),*) -> CUresult>(p) },
            None => return NOT_INITIALIZED,
        }
    }};
}

macro_rules! export {
    ($name:ident, ($($a:ident : $t:ty),*)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name($($a: $t),*) -> CUresult {
            const ID: usize = id(stringify!($name));
            if SEEN[ID].load(Ordering::Relaxed) & 4 == 0 && mark(ID, 2) {
                hooked(ID, "link", "export");
            }
            unsafe { $name::w::<0>($($a),*) }
        }
    };
}

/// A call that is only counted, can fail, and has its failures recorded.
macro_rules! plain {
    ($name:ident, ($($a:ident : $t:ty),*)) => {
        pub mod $name {
            use super::*;
            pub unsafe extern "C" fn w<const S: usize>($($a: $t),*) -> CUresult {
                const ID: usize = id(stringify!($name));
                let f = forward!(S, ID, ($($t),*));
                let Some(_inside) = Inside::enter() else {
                    return unsafe { f($($a),*) };
                };
                if let Some(rc) = before(ID) {
                    return rc;
                }
                let rc = unsafe { f($($a),*) };
                after(ID, rc);
                rc
            }
        }
        export!($name, ($($a: $t),*));
    };
}

/// A call with a custom body: `$body` sees `ID`, `f` (the real entry point) and the arguments.
macro_rules! custom {
    ($name:ident, ($($a:ident : $t:ty),*), |$id:ident, $f:ident| $body:block) => {
        pub mod $name {
            use super::*;
            pub unsafe extern "C" fn w<const S: usize>($($a: $t),*) -> CUresult {
                const $id: usize = id(stringify!($name));
                let $f = forward!(S, $id, ($($t),*));
                let Some(_inside) = Inside::enter() else {
                    return unsafe { $f($($a),*) };
                };
                if let Some(rc) = before($id) {
                    return rc;
                }
                $body
            }
        }
        export!($name, ($($a: $t),*));
    };
}

type Stream = Ptr;
type Dptr = u64;

plain!(cuInit, (flags: c_uint));
plain!(cuLaunchKernel, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernel_ptsz, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernelEx, (config: *const c_void, f: Ptr, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchKernelEx_ptsz, (config: *const c_void, f: Ptr, params: *mut Ptr, extra: *mut Ptr));
plain!(cuLaunchCooperativeKernel, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr));
plain!(cuLaunchCooperativeKernel_ptsz, (f: Ptr, gx: c_uint, gy: c_uint, gz: c_uint, bx: c_uint, by: c_uint, bz: c_uint, shmem: c_uint, stream: Stream, params: *mut Ptr));
plain!(cuGraphLaunch, (exec: Ptr, stream: Stream));
plain!(cuGraphLaunch_ptsz, (exec: Ptr, stream: Stream));
plain!(cuMemcpy, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpy_ptds, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyAsync, (dst: Dptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyAsync_ptsz, (dst: Dptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyHtoD_v2, (dst: Dptr, src: *const c_void, n: usize));
plain!(cuMemcpyHtoD_v2_ptds, (dst: Dptr, src: *const c_void, n: usize));
plain!(cuMemcpyDtoH_v2, (dst: Ptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoH_v2_ptds, (dst: Ptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoD_v2, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyDtoD_v2_ptds, (dst: Dptr, src: Dptr, n: usize));
plain!(cuMemcpyHtoDAsync_v2, (dst: Dptr, src: *const c_void, n: usize, stream: Stream));
plain!(cuMemcpyHtoDAsync_v2_ptsz, (dst: Dptr, src: *const c_void, n: usize, stream: Stream));
plain!(cuMemcpyDtoHAsync_v2, (dst: Ptr, src: Dptr, n: usize, stream: Stream));
plain!(cuMemcpyDtoHAsync_v2_ptsz, (dst: Ptr, src: Dptr, n: usize, stream: Stream));
plain!(cuStreamSynchronize, (stream: Stream));
plain!(cuStreamSynchronize_ptsz, (stream: Stream));
plain!(cuCtxSynchronize, ());
plain!(cuEventSynchronize, (event: Ptr));
plain!(cuModuleLoadData, (module: *mut Ptr, image: *const c_void));
plain!(cuModuleLoadDataEx, (module: *mut Ptr, image: *const c_void, n: c_uint, options: *mut c_int, values: *mut Ptr));
plain!(cuModuleGetFunction, (f: *mut Ptr, module: Ptr, name: *const c_char));
plain!(cuLibraryLoadData, (lib: *mut Ptr, code: *const c_void, jit_opts: *mut c_int, jit_vals: *mut Ptr, n_jit: c_uint, lib_opts: *mut c_int, lib_vals: *mut Ptr, n_lib: c_uint));
plain!(cuStreamCreate, (stream: *mut Stream, flags: c_uint));
plain!(cuStreamCreateWithPriority, (stream: *mut Stream, flags: c_uint, priority: c_int));
plain!(cuEventRecord, (event: Ptr, stream: Stream));
plain!(cuEventRecord_ptsz, (event: Ptr, stream: Stream));

// Allocations.

fn read_dptr(p: *mut Dptr) -> Option<u64> {
    if p.is_null() {
        None
    } else {
        // SAFETY: written by the driver on success.
        Some(unsafe { *p })
    }
}

custom!(cuMemAlloc_v2, (dptr: *mut Dptr, size: usize), |ID, f| {
    alloc(ID, limited_dev(), size as u64, || unsafe { f(dptr, size) }, || {
        read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
    })
});

custom!(cuMemAllocPitch_v2, (dptr: *mut Dptr, pitch: *mut usize, width: usize, height: usize, elem: c_uint), |ID, f| {
    let want = (width as u64).saturating_mul(height as u64);
    alloc(ID, limited_dev(), want, || unsafe { f(dptr, pitch, width, height, elem) }, || {
        let actual = if pitch.is_null() { want } else { (unsafe { *pitch } as u64).saturating_mul(height as u64) };
        read_dptr(dptr).map(|p| (Key::Ptr(p), actual))
    })
});

custom!(cuMemAllocManaged, (dptr: *mut Dptr, size: usize, flags: c_uint), |ID, f| {
    alloc(ID, limited_dev(), size as u64, || unsafe { f(dptr, size, flags) }, || {
        read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
    })
});

macro_rules! alloc_async {
    ($name:ident) => {
        custom!($name, (dptr: *mut Dptr, size: usize, stream: Stream), |ID, f| {
            alloc(ID, limited_dev(), size as u64, || unsafe { f(dptr, size, stream) }, || {
                read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
            })
        });
    };
}
alloc_async!(cuMemAllocAsync);
alloc_async!(cuMemAllocAsync_ptsz);

macro_rules! alloc_pool {
    ($name:ident) => {
        custom!($name, (dptr: *mut Dptr, size: usize, pool: Ptr, stream: Stream), |ID, f| {
            alloc(ID, limited_dev(), size as u64, || unsafe { f(dptr, size, pool, stream) }, || {
                read_dptr(dptr).map(|p| (Key::Ptr(p), size as u64))
            })
        });
    };
}
alloc_pool!(cuMemAllocFromPoolAsync);
alloc_pool!(cuMemAllocFromPoolAsync_ptsz);

/// CUmemAllocationProp starts {type, requestedHandleTypes, location {type, id}, …}.
#[repr(C)]
pub struct MemAllocationPropHead {
    pub type_: c_uint,
    pub requested_handle_types: c_uint,
    pub location_type: c_uint,
    pub location_id: c_int,
}

const CU_MEM_LOCATION_TYPE_DEVICE: c_uint = 1;

custom!(cuMemCreate, (handle: *mut u64, size: usize, prop: *const MemAllocationPropHead, flags: u64), |ID, f| {
    // Device memory only: host and NUMA locations are not device memory.
    let dev = if state().acct.is_some() && !prop.is_null() {
        // SAFETY: the caller passes a valid CUmemAllocationProp.
        let p = unsafe { &*prop };
        (p.location_type == CU_MEM_LOCATION_TYPE_DEVICE).then_some(p.location_id)
    } else {
        None
    };
    alloc(ID, dev, size as u64, || unsafe { f(handle, size, prop, flags) }, || {
        read_dptr(handle).map(|h| (Key::Handle(h), size as u64))
    })
});

custom!(cuMemFree_v2, (dptr: Dptr), |ID, f| {
    free(ID, Key::Ptr(dptr), || unsafe { f(dptr) })
});

custom!(cuMemFreeAsync, (dptr: Dptr, stream: Stream), |ID, f| {
    free(ID, Key::Ptr(dptr), || unsafe { f(dptr, stream) })
});

custom!(cuMemFreeAsync_ptsz, (dptr: Dptr, stream: Stream), |ID, f| {
    free(ID, Key::Ptr(dptr), || unsafe { f(dptr, stream) })
});

custom!(cuMemRelease, (handle: u64), |ID, f| {
    free(ID, Key::Handle(handle), || unsafe { f(handle) })
});

custom!(cuMemGetInfo_v2, (free_out: *mut usize, total_out: *mut usize), |ID, f| {
    let rc = unsafe { f(free_out, total_out) };
    if rc == 0 && !free_out.is_null() && !total_out.is_null() {
        if let Some(acct) = &state().acct {
            let dev = current_device();
            // SAFETY: written by the driver on success.
            let (fr, tot) = unsafe { (*free_out as u64, *total_out as u64) };
            let (fr, tot) = lock(acct).mem_info(dev, fr, tot);
            unsafe {
                *free_out = fr as usize;
                *total_out = tot as usize;
            }
        }
    } else {
        after(ID, rc);
    }
    rc
});

// Contexts.

custom!(cuCtxCreate_v2, (pctx: *mut Ptr, flags: c_uint, dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(pctx, flags, dev) }, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxCreate_v3, (pctx: *mut Ptr, params: *mut c_void, n: c_int, flags: c_uint, dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(pctx, params, n, flags, dev) }, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxCreate_v4, (pctx: *mut Ptr, params: *mut c_void, flags: c_uint, dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(pctx, params, flags, dev) }, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuCtxDestroy_v2, (ctx: Ptr), |ID, f| {
    ctx_op(ID, || unsafe { f(ctx) }, |_| (ctx as u64, -1))
});
custom!(cuCtxSetCurrent, (ctx: Ptr), |ID, f| {
    ctx_op(ID, || unsafe { f(ctx) }, |_| (ctx as u64, -1))
});
custom!(cuCtxPushCurrent_v2, (ctx: Ptr), |ID, f| {
    ctx_op(ID, || unsafe { f(ctx) }, |_| (ctx as u64, -1))
});
custom!(cuCtxPopCurrent_v2, (pctx: *mut Ptr), |ID, f| {
    ctx_op(ID, || unsafe { f(pctx) }, |rc| (read_ptr(pctx, rc), -1))
});
custom!(cuDevicePrimaryCtxRetain, (pctx: *mut Ptr, dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(pctx, dev) }, |rc| (read_ptr(pctx, rc), dev as i64))
});
custom!(cuDevicePrimaryCtxRelease_v2, (dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(dev) }, |_| (0, dev as i64))
});
custom!(cuDevicePrimaryCtxReset_v2, (dev: c_int), |ID, f| {
    ctx_op(ID, || unsafe { f(dev) }, |_| (0, dev as i64))
});

// cuGetProcAddress: failures are not recorded (the runtime probes symbols that may not exist).

custom!(cuGetProcAddress, (symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64), |ID, f| {
    let rc = unsafe { f(symbol, pfn, version, flags) };
    if rc == 0 {
        unsafe { wrap_proc(symbol, pfn, version, flags) };
    }
    rc
});

custom!(cuGetProcAddress_v2, (symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64, status: *mut c_int), |ID, f| {
    let rc = unsafe { f(symbol, pfn, version, flags, status) };
    if rc == 0 {
        unsafe { wrap_proc(symbol, pfn, version, flags) };
    }
    rc
});

fn hooked(id: usize, via: &str, how: &str) {
    let mut l = event("hook");
    l.str("call", VARIANTS[id].name)
        .str("via", via)
        .str("match", how);
    emit(l);
}

/// Replaces the entry point cuGetProcAddress answered with our wrapper when it is one of ours.
unsafe fn wrap_proc(symbol: *const c_char, pfn: *mut Ptr, version: c_int, flags: u64) {
    if symbol.is_null() || pfn.is_null() {
        return;
    }
    // SAFETY: the driver wrote *pfn on success; the symbol is the caller's C string.
    let p = unsafe { *pfn };
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if p.is_null() || name.len() < 3 || &name[..2] != b"cu" {
        return;
    }
    if let Some(w) = proc_wrapper(name, p, version, flags) {
        unsafe { *pfn = w as Ptr };
    }
}

fn proc_wrapper(name: &[u8], p: Ptr, version: c_int, flags: u64) -> Option<*const c_void> {
    let mut first = None;
    let mut has_per_thread = false;
    let pc = p as *const c_void;
    // Asked for a variant by its full name ("cuMemAlloc_v2"): that name is its ABI.
    if let Some(i) = names::variant_id(name)
        && VARIANTS[i].base.as_bytes() != name
    {
        let w = TABLE.0[i];
        if w.is_ours(pc) {
            return None;
        }
        if real::<0>(i) == Some(p) {
            if mark(i, 1) {
                hooked(i, "proc", "identity");
            }
            return Some(w.link);
        }
        if set_once(&SLOTS[1][i], p) {
            if mark(i, 1) {
                hooked(i, "proc", "name");
            }
            return Some(w.proc_);
        }
        return None;
    }
    for (i, v) in VARIANTS.iter().enumerate() {
        if v.base.as_bytes() != name {
            continue;
        }
        // Already ours: a libcuda that takes the address of its own exported function gets
        // the shim's export (LD_PRELOAD interposes it), and a nested lookup may answer one of
        // our wrappers. Wrapping again would count and account every call twice.
        let w = TABLE.0[i];
        if w.is_ours(pc) {
            if mark(i, 1) {
                hooked(i, "proc", "already");
            }
            return None;
        }
        first.get_or_insert(i);
        has_per_thread |= v.per_thread;
        // Identity: the answer is libcuda's export of this variant.
        if real::<0>(i) == Some(p) {
            if mark(i, 1) {
                hooked(i, "proc", "identity");
            }
            return Some(w.link);
        }
    }
    let first = first?;
    // Version rule: the newest variant the caller's CUDA version asks for, in the stream mode
    // it asks for (LEGACY or DEFAULT: legacy; PER_THREAD: _ptsz/_ptds).
    let per_thread =
        has_per_thread && flags & PROC_PER_THREAD_STREAM != 0 && flags & PROC_LEGACY_STREAM == 0;
    let version = version.max(0) as u32;
    let chosen = (version < RULE_MAX_VERSION)
        .then(|| {
            VARIANTS
                .iter()
                .enumerate()
                .filter(|(_, v)| {
                    v.base.as_bytes() == name
                        && v.per_thread == per_thread
                        && v.min_version != IDENTITY_ONLY
                        && v.min_version <= version
                })
                .max_by_key(|(_, v)| v.min_version)
                .map(|(i, _)| i)
        })
        .flatten();
    if let Some(i) = chosen
        && set_once(&SLOTS[1][i], p)
    {
        if mark(i, 1) {
            hooked(i, "proc", "version");
        }
        return Some(TABLE.0[i].proc_);
    }
    if mark(first, 3) {
        let mut l = event("nomatch");
        l.str("call", VARIANTS[first].base)
            .u64("version", version as u64)
            .u64("flags", flags);
        emit(l);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// dlsym.

/// The hook proper, for every handle but RTLD_NEXT.
#[cfg_attr(test, allow(dead_code))]
unsafe extern "C" fn dlsym_impl(handle: Ptr, symbol: *const c_char) -> Ptr {
    let dlsym = real_dlsym();
    // SAFETY: forwarding the caller's arguments.
    let p = unsafe { dlsym(handle, symbol) };
    if p.is_null() || symbol.is_null() {
        return p;
    }
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    if name.len() < 4 || name[0] != b'c' || name[1] != b'u' {
        return p;
    }
    let Some(i) = names::variant_id(name) else {
        return p;
    };
    let w = TABLE.0[i];
    if core::ptr::eq(p, w.export) {
        // The global scope found our own export first: it forwards to libcuda when libcuda is
        // loaded; otherwise answer what dlsym would have answered without the shim.
        return if real::<0>(i).is_some() {
            p
        } else {
            core::ptr::null_mut()
        };
    }
    if set_once(&SLOTS[0][i], p) {
        if mark(i, 0) {
            hooked(i, "dlsym", "identity");
        }
        w.link as Ptr
    } else {
        p
    }
}

/// `dlsym` with RTLD_NEXT must resolve relative to its caller, which glibc finds from the
/// return address: so RTLD_NEXT jumps to the real dlsym with the caller's frame untouched, and
/// everything else goes to `dlsym_impl`.
#[cfg(all(not(test), target_arch = "x86_64"))]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(_handle: Ptr, _symbol: *const c_char) -> Ptr {
    core::arch::naked_asm!(
        "cmp rdi, -1",
        "jne {imp}",
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {get}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        imp = sym dlsym_impl,
        get = sym real_dlsym_addr,
    )
}

#[cfg(all(not(test), target_arch = "aarch64"))]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(_handle: Ptr, _symbol: *const c_char) -> Ptr {
    core::arch::naked_asm!(
        "cmn x0, #1",
        "b.ne {imp}",
        "stp x29, x30, [sp, #-32]!",
        "stp x0, x1, [sp, #16]",
        "bl {get}",
        "mov x16, x0",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #32",
        "br x16",
        imp = sym dlsym_impl,
        get = sym real_dlsym_addr,
    )
}

/// Other architectures: RTLD_NEXT resolves relative to the shim (documented limit).
#[cfg(all(not(test), not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: Ptr, symbol: *const c_char) -> Ptr {
    unsafe { dlsym_impl(handle, symbol) }
}

// ---------------------------------------------------------------------------------------------
// The table of wrappers, and load/unload.

macro_rules! table {
    ($($name:ident),* $(,)?) => {
        const fn build() -> [Wrap; N] {
            let mut t = [NO_WRAP; N];
            $(
                t[id(stringify!($name))] = Wrap {
                    link: $name::w::<0> as *const c_void,
                    proc_: $name::w::<1> as *const c_void,
                    export: $name as *const c_void,
                };
            )*
            t
        }
    };
}

table!(
    cuGetProcAddress,
    cuGetProcAddress_v2,
    cuInit,
    cuMemAlloc_v2,
    cuMemAllocPitch_v2,
    cuMemAllocManaged,
    cuMemAllocAsync,
    cuMemAllocAsync_ptsz,
    cuMemAllocFromPoolAsync,
    cuMemAllocFromPoolAsync_ptsz,
    cuMemCreate,
    cuMemFree_v2,
    cuMemFreeAsync,
    cuMemFreeAsync_ptsz,
    cuMemRelease,
    cuMemGetInfo_v2,
    cuLaunchKernel,
    cuLaunchKernel_ptsz,
    cuLaunchKernelEx,
    cuLaunchKernelEx_ptsz,
    cuLaunchCooperativeKernel,
    cuLaunchCooperativeKernel_ptsz,
    cuGraphLaunch,
    cuGraphLaunch_ptsz,
    cuMemcpy,
    cuMemcpy_ptds,
    cuMemcpyAsync,
    cuMemcpyAsync_ptsz,
    cuMemcpyHtoD_v2,
    cuMemcpyHtoD_v2_ptds,
    cuMemcpyDtoH_v2,
    cuMemcpyDtoH_v2_ptds,
    cuMemcpyDtoD_v2,
    cuMemcpyDtoD_v2_ptds,
    cuMemcpyHtoDAsync_v2,
    cuMemcpyHtoDAsync_v2_ptsz,
    cuMemcpyDtoHAsync_v2,
    cuMemcpyDtoHAsync_v2_ptsz,
    cuStreamSynchronize,
    cuStreamSynchronize_ptsz,
    cuCtxSynchronize,
    cuEventSynchronize,
    cuModuleLoadData,
    cuModuleLoadDataEx,
    cuModuleGetFunction,
    cuLibraryLoadData,
    cuStreamCreate,
    cuStreamCreateWithPriority,
    cuEventRecord,
    cuEventRecord_ptsz,
    cuCtxCreate_v2,
    cuCtxCreate_v3,
    cuCtxCreate_v4,
    cuCtxDestroy_v2,
    cuCtxSetCurrent,
    cuCtxPushCurrent_v2,
    cuCtxPopCurrent_v2,
    cuDevicePrimaryCtxRetain,
    cuDevicePrimaryCtxRelease_v2,
    cuDevicePrimaryCtxReset_v2,
);

static TABLE: Table = Table(build());

#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_load() {
    state();
}

/// At exit: calls per variant, peaks, and dropped events.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn on_unload() {
    let Some(s) = STATE.get() else { return };
    let mut l = event("stats");
    l.begin_object("calls");
    for (i, v) in VARIANTS.iter().enumerate() {
        let n = COUNTS[i].load(Ordering::Relaxed);
        if n > 0 {
            l.u64(v.name, n);
        }
    }
    l.end_object();
    l.u64("dropped", DROPPED.load(Ordering::Relaxed))
        .u64("injected_total", INJECTED.load(Ordering::Relaxed))
        .u64("ctx_noops", CTX_NOOPS.load(Ordering::Relaxed))
        .u64("failpoint_calls", FP_CALLS.load(Ordering::Relaxed));
    s.sink.write(l.finish());
    // try_lock: a thread stopped inside an allocation at exit must not hang the exit.
    if let Some(acct) = &s.acct
        && let Ok(a) = acct.try_lock()
    {
        for (dev, u) in a.devices() {
            let mut l = event("peak");
            l.i64("dev", *dev as i64)
                .u64("bytes", u.peak)
                .u64("used", u.used)
                .bool("final", true);
            s.sink.write(l.finish());
        }
    }
}

#[cfg(not(test))]
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[cfg(not(test))]
#[used]
#[unsafe(link_section = ".fini_array")]
static ON_UNLOAD: extern "C" fn() = on_unload;

#[cfg(test)]
mod tests {
    use super::*;
    use shim_proto::cuda::names::Kind;

    #[test]
    fn every_variant_has_wrappers() {
        for (i, w) in TABLE.0.iter().enumerate() {
            assert!(
                !w.link.is_null() && !w.proc_.is_null() && !w.export.is_null(),
                "{} has no wrapper",
                VARIANTS[i].name
            );
            assert_ne!(
                w.link, w.proc_,
                "{}: two paths, two slots",
                VARIANTS[i].name
            );
        }
        // Kinds the wrappers rely on.
        assert_eq!(VARIANTS[id("cuMemAlloc_v2")].kind, Kind::Alloc);
        assert_eq!(VARIANTS[id("cuCtxSetCurrent")].kind, Kind::Ctx);
    }

    #[test]
    fn version_rule_picks_the_variant_asked_for() {
        // Nothing is loaded in the test process: identity never matches, the rule decides.
        let fake = 0x1234usize as Ptr;
        let w = proc_wrapper(b"cuLaunchKernel", fake, 12000, PROC_PER_THREAD_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuLaunchKernel_ptsz")].proc_));
        let w = proc_wrapper(b"cuLaunchKernel", fake, 12000, PROC_LEGACY_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuLaunchKernel")].proc_));
        assert_eq!(
            proc_wrapper(b"cuMemAlloc", 0x99 as Ptr, 3000, 0),
            None,
            "v1 ABI (32-bit sizes) is never wrapped"
        );
        let w = proc_wrapper(b"cuMemAlloc", 0x99 as Ptr, 12000, PROC_PER_THREAD_STREAM);
        assert_eq!(w, Some(TABLE.0[id("cuMemAlloc_v2")].proc_));
        assert_eq!(
            proc_wrapper(b"cuMemAlloc", 0x98 as Ptr, 12000, 0),
            None,
            "a second, different pointer for the same variant is passed through"
        );
        assert_eq!(
            proc_wrapper(b"cuCtxCreate", 0x77 as Ptr, 12000, 0),
            None,
            "cuCtxCreate's ABI depends on the version: identity only"
        );
        assert_eq!(
            proc_wrapper(b"cuStreamSynchronize", 0x77 as Ptr, 13000, 0),
            None,
            "no version rule from CUDA 13 on"
        );
        assert_eq!(
            proc_wrapper(b"cuDeviceGetName", 0x77 as Ptr, 13000, 0),
            None
        );
        assert_eq!(
            proc_wrapper(b"cuMemcpyHtoD_v2_ptds", 0x55 as Ptr, 13000, 0),
            Some(TABLE.0[id("cuMemcpyHtoD_v2_ptds")].proc_),
            "a full variant name is its own ABI, whatever the version"
        );
    }
}
