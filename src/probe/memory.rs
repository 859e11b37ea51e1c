//! Device memory around a scenario, the probe half of the one memory check
//! (`crate::facts::memory`): the baseline and after-cleanup figures, and the watch.
//!
//! The watch is a background thread that samples NVML's process list and used memory of the
//! scenario's GPU(s) every [`PERIOD`] — and whenever the scenario asks ([`Watch::mark`]) — from
//! before the scenario starts until after its cleanup, and records every change of another
//! process's device memory (pid, bytes, when). This run's processes — this one and its
//! descendants (isolated parts, variants run in processes of their own) — are told apart by
//! their parent chain in /proc. A sample is a few NVML queries per GPU, well under a
//! millisecond: every 50 ms, the watch takes a small share of the run.
//!
//! The sampling logic ([`Log`]) takes its samples from a [`Sampler`]: NVML here, a script in
//! the tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::RunCtx;
use crate::facts::GpuProcess;
use crate::facts::memory::{MemoryChange, MemoryCheck, MemoryWatch, TOLERANCE_BYTES};
use crate::probe::nvml::NvmlProbe;

/// Time between two periodic samples: an `inject oom` fill on an H200 takes 25–30 ms and
/// holds the memory for about 100 ms, so a neighbour's fill is seen.
pub const PERIOD: Duration = Duration::from_millis(50);

/// Starts a memory check of GPU `index`: the watch first, then NVML's used memory and the
/// processes on the GPU now.
pub fn begin(ctx: &RunCtx, nvml: &NvmlProbe, index: u32) -> (MemoryCheck, Watch) {
    let watch = Watch::start(ctx, &[index]);
    (baseline(nvml, index), watch)
}

/// Finishes a check begun with [`begin`], after cleanup.
pub fn end(m: &mut MemoryCheck, watch: Watch, nvml: &NvmlProbe, index: u32) {
    m.nvml_used_after = nvml.memory_used(index);
    let record = watch.finish().pop();
    after(m, nvml, index, record);
}

/// The baseline of a check: NVML used memory and the other processes on the GPU now.
pub fn baseline(nvml: &NvmlProbe, index: u32) -> MemoryCheck {
    let mut m = MemoryCheck {
        tolerance_bytes: TOLERANCE_BYTES,
        nvml_used_before: nvml.memory_used(index),
        own_pids: vec![std::process::id()],
        ..Default::default()
    };
    add_foreign(&mut m, nvml.processes(index));
    m
}

/// Completes a check after cleanup (`nvml_used_after` already read): the other processes on
/// the GPU now, and the watch's record of the run.
pub fn after(m: &mut MemoryCheck, nvml: &NvmlProbe, index: u32, record: Option<MemoryWatch>) {
    if let Some(w) = &record {
        for &pid in &w.own_pids {
            if !m.own_pids.contains(&pid) {
                m.own_pids.push(pid);
            }
        }
    }
    add_foreign(m, nvml.processes(index));
    m.watch = record;
}

fn add_foreign(m: &mut MemoryCheck, procs: Vec<GpuProcess>) {
    for p in procs {
        if !m.own_pids.contains(&p.pid) && !m.foreign_processes.iter().any(|q| q.pid == p.pid) {
            m.foreign_processes.push(p);
        }
    }
}

/// One look at a GPU: NVML used memory (all processes) and the processes holding memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub used_bytes: Option<u64>,
    pub processes: Vec<GpuProcess>,
}

/// Where samples come from.
pub trait Sampler: Send {
    /// GPU `device` now, or why it could not be read.
    fn sample(&mut self, device: u32) -> Result<Sample, String>;
}

impl Sampler for NvmlProbe {
    fn sample(&mut self, device: u32) -> Result<Sample, String> {
        let (used_bytes, processes) = self.used_and_processes(device)?;
        Ok(Sample {
            used_bytes,
            processes,
        })
    }
}

/// NVML could not be opened for the watch: every sample says why.
struct Unavailable(String);

impl Sampler for Unavailable {
    fn sample(&mut self, _device: u32) -> Result<Sample, String> {
        Err(self.0.clone())
    }
}

/// The sampling logic for one GPU: samples in, the record of other processes' changes out.
#[derive(Debug)]
pub struct Log {
    record: MemoryWatch,
    /// Other processes at the last answered sample, and what each held (None: unknown).
    others: BTreeMap<u32, Option<u64>>,
    answered: bool,
}

impl Log {
    pub fn new(device: u32, period: Duration) -> Log {
        Log {
            record: MemoryWatch {
                device,
                period_ms: period.as_secs_f64() * 1e3,
                ..Default::default()
            },
            others: BTreeMap::new(),
            answered: false,
        }
    }

    /// Takes one sample, seen `at_ms` into the scenario; `ours` says whether a pid is one of
    /// this run's processes.
    pub fn observe(
        &mut self,
        at_ms: f64,
        sample: Result<Sample, String>,
        ours: &mut dyn FnMut(u32) -> bool,
    ) {
        let r = &mut self.record;
        if r.samples == 0 {
            r.from_ms = at_ms;
        }
        r.samples += 1;
        r.to_ms = at_ms;
        let sample = match sample {
            Ok(s) => s,
            Err(e) => {
                // A failed read says nothing about the processes: they are kept as they were.
                r.failed_samples += 1;
                r.error.get_or_insert(e);
                return;
            }
        };
        if let Some(u) = sample.used_bytes {
            r.used_min_bytes = Some(r.used_min_bytes.map_or(u, |m| m.min(u)));
            r.used_max_bytes = Some(r.used_max_bytes.map_or(u, |m| m.max(u)));
        }
        let mut now: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        for p in sample.processes {
            if ours(p.pid) {
                if !r.own_pids.contains(&p.pid) {
                    r.own_pids.push(p.pid);
                }
                continue;
            }
            let held = now.entry(p.pid).or_insert(Some(0));
            *held = held.zip(p.used_bytes).map(|(a, b)| a + b);
        }
        if !self.answered {
            self.answered = true;
            r.others_at_start = now
                .iter()
                .map(|(&pid, &used_bytes)| GpuProcess { pid, used_bytes })
                .collect();
        } else {
            let mut changes = Vec::new();
            for (&pid, &used) in &now {
                match self.others.get(&pid) {
                    None => changes.push((pid, used.map(|u| u as i64), used)),
                    Some(&before) if before != used => {
                        let bytes = before.zip(used).map(|(b, a)| a as i64 - b as i64);
                        changes.push((pid, bytes, used));
                    }
                    Some(_) => {}
                }
            }
            for (&pid, &before) in &self.others {
                if !now.contains_key(&pid) {
                    changes.push((pid, before.map(|b| -(b as i64)), Some(0)));
                }
            }
            for (pid, bytes, used_bytes) in changes {
                if r.changes.len() < MemoryWatch::MAX_CHANGES {
                    r.changes.push(MemoryChange {
                        pid,
                        bytes,
                        used_bytes,
                        at_ms,
                    });
                } else {
                    r.changes_dropped += 1;
                }
            }
        }
        self.others = now;
    }

    pub fn finish(self) -> MemoryWatch {
        self.record
    }
}

/// Tells this run's processes (this one and its descendants) from others, by the parent
/// chain in /proc, and remembers each answer (a child that has exited cannot be asked again).
#[derive(Debug)]
pub struct OwnProcesses {
    root: u32,
    known: HashMap<u32, bool>,
}

impl OwnProcesses {
    pub fn of_this_process() -> OwnProcesses {
        OwnProcesses {
            root: std::process::id(),
            known: HashMap::new(),
        }
    }

    pub fn contains(&mut self, pid: u32) -> bool {
        let root = self.root;
        *self
            .known
            .entry(pid)
            .or_insert_with(|| descends_from(pid, root))
    }
}

/// `pid` is `ancestor` or one of its descendants (false where /proc does not say: a process
/// of another PID namespace, or one that has exited).
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == ancestor {
            return true;
        }
        match parent_of(p) {
            Some(parent) if parent > 1 && parent != p => p = parent,
            _ => return false,
        }
    }
    false
}

/// The parent pid of `pid`, from /proc/PID/stat (`pid (comm) state ppid …`; comm may hold
/// spaces and parentheses, so the fields are read after the last ')').
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A watch of the memory of some GPUs, sampling on a background thread until
/// [`Watch::finish`] (or until dropped).
pub struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    started: Instant,
    period: Duration,
    stop: Mutex<bool>,
    wake: Condvar,
    state: Mutex<State>,
}

struct State {
    sampler: Box<dyn Sampler>,
    ours: Box<dyn FnMut(u32) -> bool + Send>,
    logs: Vec<Log>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while sampling cannot leave a log half-written in a way that matters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples every GPU now; returns when, in ms since the scenario started.
    fn sample_all(&self) -> f64 {
        let mut state = self.state();
        let State {
            sampler,
            ours,
            logs,
        } = &mut *state;
        let mut first = None;
        for log in logs.iter_mut() {
            let at_ms = self.started.elapsed().as_secs_f64() * 1e3;
            first.get_or_insert(at_ms);
            let sample = sampler.sample(log.record.device);
            log.observe(at_ms, sample, ours.as_mut());
        }
        first.unwrap_or_else(|| self.started.elapsed().as_secs_f64() * 1e3)
    }
}

impl Watch {
    /// Watches GPUs `devices` (NVML indices) through NVML, on the clock of `ctx`'s steps. Never
    /// fails: where NVML cannot be opened, the record says why.
    pub fn start(ctx: &RunCtx, devices: &[u32]) -> Watch {
        let sampler: Box<dyn Sampler> = match NvmlProbe::open() {
            Ok(nvml) => Box::new(nvml),
            Err(e) => Box::new(Unavailable(format!("NVML: {e:#}"))),
        };
        let mut own = OwnProcesses::of_this_process();
        Watch::with(
            ctx.started,
            devices,
            PERIOD,
            sampler,
            Box::new(move |pid| own.contains(pid)),
        )
    }

    /// A watch with its sampler and its test of our own processes given (tests); the first
    /// sample is taken before this returns.
    pub fn with(
        started: Instant,
        devices: &[u32],
        period: Duration,
        sampler: Box<dyn Sampler>,
        ours: Box<dyn FnMut(u32) -> bool + Send>,
    ) -> Watch {
        let shared = Arc::new(Shared {
            started,
            period,
            stop: Mutex::new(false),
            wake: Condvar::new(),
            state: Mutex::new(State {
                sampler,
                ours,
                logs: devices.iter().map(|&d| Log::new(d, period)).collect(),
            }),
        });
        shared.sample_all();
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("memory watch".into())
            .spawn(move || {
                loop {
                    let stop = bg.stop.lock().unwrap_or_else(|e| e.into_inner());
                    let (stop, _) = bg
                        .wake
                        .wait_timeout_while(stop, bg.period, |stop| !*stop)
                        .unwrap_or_else(|e| e.into_inner());
                    if *stop {
                        break;
                    }
                    drop(stop);
                    bg.sample_all();
                }
            })
            .ok();
        Watch { shared, thread }
    }

    /// Samples now, at a moment the scenario measures (the start and the end of a fill);
    /// returns when, in ms since the scenario started.
    pub fn mark(&self) -> f64 {
        self.shared.sample_all()
    }

    /// Stops sampling, takes a last sample and returns one record per GPU, in the order given.
    pub fn finish(mut self) -> Vec<MemoryWatch> {
        self.stop();
        self.shared.sample_all();
        std::mem::take(&mut self.shared.state().logs)
            .into_iter()
            .map(Log::finish)
            .collect()
    }

    fn stop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    /// A scenario that stops on an error drops its watch: the thread ends with it.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn proc(pid: u32, used: Option<u64>) -> GpuProcess {
        GpuProcess {
            pid,
            used_bytes: used,
        }
    }

    fn sample(used: u64, procs: &[(u32, Option<u64>)]) -> Result<Sample, String> {
        Ok(Sample {
            used_bytes: Some(used),
            processes: procs.iter().map(|&(p, u)| proc(p, u)).collect(),
        })
    }

    /// Our pid is 100 and its child 101; everything else is another process.
    fn ours(pid: u32) -> bool {
        pid == 100 || pid == 101
    }

    #[test]
    fn another_process_appearing_growing_and_vanishing_is_recorded_ours_is_not() {
        let mut log = Log::new(0, Duration::from_millis(50));
        let mut o = ours;
        // A neighbour holds 1 GiB before we start.
        log.observe(0.0, sample(2 * GIB, &[(7, Some(GIB))]), &mut o);
        // We (and our child) allocate: nothing recorded.
        log.observe(
            50.0,
            sample(
                40 * GIB,
                &[(7, Some(GIB)), (100, Some(30 * GIB)), (101, Some(GIB))],
            ),
            &mut o,
        );
        // Another gpu-doctor starts and fills; the neighbour frees half.
        log.observe(
            100.0,
            sample(
                80 * GIB,
                &[
                    (7, Some(GIB / 2)),
                    (100, Some(30 * GIB)),
                    (4242, Some(40 * GIB)),
                ],
            ),
            &mut o,
        );
        // It leaves; a process whose use NVML does not report appears.
        log.observe(150.0, sample(GIB, &[(7, Some(GIB / 2)), (9, None)]), &mut o);
        let w = log.finish();
        assert_eq!(w.samples, 4);
        assert_eq!((w.from_ms, w.to_ms), (0.0, 150.0));
        assert_eq!(
            (w.used_min_bytes, w.used_max_bytes),
            (Some(GIB), Some(80 * GIB))
        );
        assert_eq!(w.others_at_start, vec![proc(7, Some(GIB))]);
        assert_eq!(w.own_pids, vec![100, 101]);
        let seen: Vec<(u32, Option<i64>, Option<u64>, f64)> = w
            .changes
            .iter()
            .map(|c| (c.pid, c.bytes, c.used_bytes, c.at_ms))
            .collect();
        assert_eq!(
            seen,
            vec![
                (7, Some(-(GIB as i64) / 2), Some(GIB / 2), 100.0),
                (4242, Some(40 * GIB as i64), Some(40 * GIB), 100.0),
                (9, None, None, 150.0),
                (4242, Some(-40 * GIB as i64), Some(0), 150.0),
            ]
        );
    }

    #[test]
    fn a_failed_sample_is_counted_and_is_not_every_process_leaving() {
        let mut log = Log::new(3, Duration::from_millis(50));
        let mut o = ours;
        log.observe(0.0, sample(GIB, &[(7, Some(GIB))]), &mut o);
        log.observe(
            50.0,
            Err("nvmlDeviceGetComputeRunningProcesses: Unknown".into()),
            &mut o,
        );
        log.observe(100.0, sample(GIB, &[(7, Some(GIB))]), &mut o);
        let w = log.finish();
        assert_eq!(w.device, 3);
        assert_eq!((w.samples, w.failed_samples), (3, 1));
        assert!(w.changes.is_empty(), "{:?}", w.changes);
        assert!(w.error.as_deref().unwrap().contains("Unknown"));
    }

    #[test]
    fn changes_beyond_the_cap_are_counted_not_kept() {
        let mut log = Log::new(0, Duration::from_millis(50));
        let mut o = ours;
        for i in 0..(MemoryWatch::MAX_CHANGES as u64 + 11) {
            log.observe(i as f64, sample(GIB, &[(7, Some(i << 20))]), &mut o);
        }
        let w = log.finish();
        assert_eq!(w.changes.len(), MemoryWatch::MAX_CHANGES);
        assert_eq!(w.changes_dropped, 10);
    }

    /// A scripted sampler: each GPU answers its samples in order, then repeats the last.
    struct Script(Vec<Sample>, usize);

    impl Sampler for Script {
        fn sample(&mut self, _device: u32) -> Result<Sample, String> {
            let s = self.0[self.1.min(self.0.len() - 1)].clone();
            self.1 += 1;
            Ok(s)
        }
    }

    #[test]
    fn the_watch_samples_at_start_on_marks_and_at_finish() {
        let script = Script(
            vec![
                Sample {
                    used_bytes: Some(GIB),
                    processes: vec![],
                },
                Sample {
                    used_bytes: Some(9 * GIB),
                    processes: vec![proc(4242, Some(8 * GIB))],
                },
                Sample {
                    used_bytes: Some(GIB),
                    processes: vec![],
                },
            ],
            0,
        );
        // A period far longer than the test: only the start, the mark and the finish sample.
        let w = Watch::with(
            Instant::now(),
            &[0],
            Duration::from_secs(3600),
            Box::new(script),
            Box::new(ours),
        );
        let marked = w.mark();
        let started = Instant::now();
        let mut records = w.finish();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "finish waits for the period"
        );
        assert_eq!(records.len(), 1);
        let r = records.pop().unwrap();
        assert_eq!(r.samples, 3);
        assert_eq!(r.changes.len(), 2);
        assert_eq!(r.changes[0].at_ms, marked);
        assert_eq!(r.changes[0].bytes, Some(8 * GIB as i64));
        assert_eq!(r.changes[1].bytes, Some(-8 * GIB as i64));
    }

    #[test]
    fn the_watch_samples_periodically_in_the_background() {
        let script = Script(vec![Sample::default()], 0);
        let w = Watch::with(
            Instant::now(),
            &[0, 1],
            Duration::from_millis(5),
            Box::new(script),
            Box::new(ours),
        );
        std::thread::sleep(Duration::from_millis(200));
        let records = w.finish();
        assert_eq!(
            records.iter().map(|r| r.device).collect::<Vec<_>>(),
            vec![0, 1]
        );
        // Start and finish alone would be 2: the thread took the others.
        assert!(records[0].samples > 5, "{} samples", records[0].samples);
    }

    #[test]
    fn without_nvml_the_record_says_why() {
        let w = Watch::with(
            Instant::now(),
            &[0],
            Duration::from_secs(3600),
            Box::new(Unavailable("NVML: no driver".into())),
            Box::new(ours),
        );
        let r = w.finish().pop().unwrap();
        assert_eq!((r.samples, r.failed_samples), (2, 2));
        assert_eq!(r.error.as_deref(), Some("NVML: no driver"));
    }

    #[test]
    fn this_process_and_its_children_are_ours_others_are_not() {
        let mut own = OwnProcesses::of_this_process();
        assert!(own.contains(std::process::id()));
        assert_eq!(
            parent_of(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        assert!(own.contains(child.id()), "a child is ours");
        assert!(
            !own.contains(std::os::unix::process::parent_id()),
            "the parent is not"
        );
        assert!(!own.contains(1));
        assert!(!own.contains(u32::MAX), "no such process");
        child.kill().ok();
        child.wait().ok();
        // Remembered after it exited.
        assert!(own.contains(child.id()));
    }
}
