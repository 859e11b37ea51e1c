//! Live NVML reads for `watch` and the exporter: every GPU read at once, each on a reader thread
//! of its own, so a GPU that stops answering is reported and never holds up the others
//! ([`Sampler`]); and NVML event sets, one per GPU, delivering XIDs and ECC events as they
//! happen, never by polling ([`EventWatch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;

use crate::facts::live::{EventWatchState, LiveEvent, LiveEventKind, LiveGpu};
use crate::probe::nvml::NvmlProbe;

/// Reads one GPU (NVML in gpu-doctor; a stand-in in tests).
pub trait ReadGpu: Send + Sync + 'static {
    fn read_gpu(&self, index: u32) -> LiveGpu;
}

impl ReadGpu for NvmlProbe {
    fn read_gpu(&self, index: u32) -> LiveGpu {
        self.live_gpu(index)
    }
}

/// One GPU's reader thread and what it last read.
struct Slot {
    index: u32,
    shared: Arc<Shared>,
    requests: mpsc::Sender<()>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// A read is in flight since then.
    busy_since: Option<Instant>,
    /// Reads finished so far.
    reads: u64,
    last: Option<LiveGpu>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A reader that panicked is caught in its thread; the state is whole either way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads every GPU at once, each on its own thread, with a deadline. Readers live as long as
/// the sampler, so NVML is never initialised again; requests that arrive while a read is in
/// flight (two scrapes at once) share it.
pub struct Sampler {
    slots: Vec<Slot>,
    timeout: Duration,
}

impl Sampler {
    /// Starts one reader thread per GPU. A GPU whose read has not finished `timeout` after it
    /// was asked for is reported as not answering.
    pub fn start<R: ReadGpu>(reader: Arc<R>, gpus: &[u32], timeout: Duration) -> Sampler {
        let slots = gpus
            .iter()
            .map(|&index| {
                let shared = Arc::new(Shared::default());
                let (requests, rx) = mpsc::channel::<()>();
                let (reader, worker) = (reader.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("nvml-gpu{index}"))
                    .spawn(move || {
                        for () in rx {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                reader.read_gpu(index)
                            }))
                            .unwrap_or_else(|_| {
                                LiveGpu::no_answer(index, "the NVML read panicked (a bug)")
                            });
                            let mut st = worker.lock();
                            st.last = Some(r);
                            st.reads += 1;
                            st.busy_since = None;
                            drop(st);
                            worker.done.notify_all();
                        }
                    })
                    .expect("a reader thread starts");
                Slot {
                    index,
                    shared,
                    requests,
                }
            })
            .collect();
        Sampler { slots, timeout }
    }

    /// A fresh reading of every GPU, in the order they were given. A GPU still busy with a read
    /// that started over `timeout` ago is not waited for again: it answers at once as not
    /// answering, so one hung GPU costs one timeout, not one per interval.
    pub fn read_all(&self) -> Vec<LiveGpu> {
        let now = Instant::now();
        let deadline = now + self.timeout;
        let wants: Vec<Option<u64>> = self
            .slots
            .iter()
            .map(|s| {
                let mut st = s.shared.lock();
                match st.busy_since {
                    Some(since) if now.duration_since(since) >= self.timeout => None,
                    Some(_) => Some(st.reads + 1),
                    None => {
                        if s.requests.send(()).is_err() {
                            return None;
                        }
                        st.busy_since = Some(now);
                        Some(st.reads + 1)
                    }
                }
            })
            .collect();
        self.slots
            .iter()
            .zip(wants)
            .map(|(s, want)| {
                let mut st = s.shared.lock();
                if let Some(want) = want {
                    while st.reads < want {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        st = s
                            .shared
                            .done
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    if st.reads >= want
                        && let Some(r) = &st.last
                    {
                        return r.clone();
                    }
                }
                let waited = st.busy_since.map(|t| t.elapsed()).unwrap_or_default();
                LiveGpu::no_answer(
                    s.index,
                    format!(
                        "NVML has not answered a read of GPU {} for {:.1} s",
                        s.index,
                        waited.as_secs_f64()
                    ),
                )
            })
            .collect()
    }
}

/// Wall-clock now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// NVML event sets, one per GPU on a thread of its own (a set is not thread-safe, and one set
/// for all would be freed by nvml-wrapper when one GPU's registration fails). Events go to the
/// channel given to [`EventWatch::start`] as they arrive, with the processes on that GPU read
/// at once; clock changes are only counted.
pub struct EventWatch {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    states: Arc<Mutex<Vec<EventWatchState>>>,
}

/// The events asked for, where the GPU offers them.
fn wanted() -> EventTypes {
    EventTypes::CRITICAL_XID_ERROR
        | EventTypes::DOUBLE_BIT_ECC_ERROR
        | EventTypes::SINGLE_BIT_ECC_ERROR
        | EventTypes::CLOCK_CHANGE
}

/// How long one wait lasts before the stop flag is looked at again.
const WAIT_SLICE_MS: u32 = 200;

impl EventWatch {
    /// Registers for events on every GPU and returns once each registration has answered (or
    /// 5 s have passed); `started` is the clock of the events' `at_ms`.
    pub fn start(
        probe: Arc<NvmlProbe>,
        gpus: &[u32],
        started: Instant,
        sink: mpsc::Sender<LiveEvent>,
    ) -> EventWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let states = Arc::new(Mutex::new(
            gpus.iter()
                .map(|&gpu| EventWatchState {
                    gpu,
                    error: Some("registration did not answer within 5 s".into()),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        ));
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let threads = gpus
            .iter()
            .map(|&gpu| {
                let (probe, stop, states, sink, ready) = (
                    probe.clone(),
                    stop.clone(),
                    states.clone(),
                    sink.clone(),
                    ready_tx.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("nvml-events{gpu}"))
                    .spawn(move || {
                        watch_gpu(&probe, gpu, started, &stop, &states, &sink, ready);
                    })
                    .expect("an event thread starts")
            })
            .collect();
        drop(ready_tx);
        let deadline = Instant::now() + Duration::from_secs(5);
        for _ in gpus {
            let left = deadline.saturating_duration_since(Instant::now());
            if ready_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        EventWatch {
            stop,
            threads,
            states,
        }
    }

    /// Whether each GPU is watched, and its clock changes so far.
    pub fn states(&self) -> Vec<EventWatchState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the threads (each within one wait slice) and returns the final states. A thread
    /// stuck inside NVML is left behind rather than waited for.
    pub fn stop(self) -> Vec<EventWatchState> {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_millis(u64::from(WAIT_SLICE_MS) * 3);
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn set_state(states: &Mutex<Vec<EventWatchState>>, gpu: u32, f: impl FnOnce(&mut EventWatchState)) {
    let mut l = states.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = l.iter_mut().find(|s| s.gpu == gpu) {
        f(s);
    }
}

fn watch_gpu(
    probe: &NvmlProbe,
    gpu: u32,
    started: Instant,
    stop: &AtomicBool,
    states: &Mutex<Vec<EventWatchState>>,
    sink: &mpsc::Sender<LiveEvent>,
    ready: mpsc::Sender<()>,
) {
    let nvml = probe.library();
    let registered = (|| -> Result<_, String> {
        let dev = nvml.device_by_index(gpu).map_err(|e| match e {
            NvmlError::GpuLost => "the GPU is lost (GPU_IS_LOST)".to_string(),
            e => format!("NVML cannot open the GPU: {e}"),
        })?;
        let types = match dev.supported_event_types() {
            Ok(s) => s & wanted(),
            // Drivers that cannot list them still deliver XIDs.
            Err(_) => EventTypes::CRITICAL_XID_ERROR,
        };
        if types.is_empty() {
            return Err("NVML offers none of the XID, ECC or clock events on this GPU".into());
        }
        let set = nvml
            .create_event_set()
            .map_err(|e| format!("nvmlEventSetCreate: {e}"))?;
        let set = dev
            .register_events(types, set)
            .map_err(|e| format!("nvmlDeviceRegisterEvents: {}", e.error))?;
        Ok((set, types))
    })();
    let set = match registered {
        Ok((set, types)) => {
            set_state(states, gpu, |s| {
                s.registered = types.iter_names().map(|(n, _)| n.to_string()).collect();
                s.error = if types.contains(EventTypes::CRITICAL_XID_ERROR) {
                    None
                } else {
                    Some("the GPU does not offer XID events".into())
                };
            });
            set
        }
        Err(why) => {
            set_state(states, gpu, |s| s.error = Some(why));
            let _ = ready.send(());
            return;
        }
    };
    let _ = ready.send(());
    let event = |kind: LiveEventKind, processes| LiveEvent {
        at_ms: started.elapsed().as_secs_f64() * 1e3,
        unix_ms: unix_ms(),
        gpu,
        kind,
        processes,
    };
    while !stop.load(Ordering::SeqCst) {
        match set.wait(WAIT_SLICE_MS) {
            Ok(ev) => {
                let t = ev.event_type;
                if t.contains(EventTypes::CLOCK_CHANGE) {
                    set_state(states, gpu, |s| s.clock_changes += 1);
                }
                let kind = if t.contains(EventTypes::CRITICAL_XID_ERROR) {
                    LiveEventKind::Xid {
                        xid: match ev.event_data {
                            Some(XidError::Value(v)) => Some(v),
                            _ => None,
                        },
                    }
                } else if t.contains(EventTypes::DOUBLE_BIT_ECC_ERROR) {
                    LiveEventKind::DoubleBitEcc
                } else if t.contains(EventTypes::SINGLE_BIT_ECC_ERROR) {
                    LiveEventKind::SingleBitEcc
                } else {
                    continue;
                };
                // Stamped before the processes are read: the time is when NVML delivered it.
                let mut e = event(kind, Vec::new());
                e.processes = probe.processes_or_error(gpu).unwrap_or_default();
                if sink.send(e).is_err() {
                    return;
                }
            }
            Err(NvmlError::Timeout) => {}
            Err(NvmlError::GpuLost) => {
                let _ = sink.send(event(LiveEventKind::GpuLost, Vec::new()));
                set_state(states, gpu, |s| {
                    s.error = Some("the GPU fell off the bus (GPU_IS_LOST)".into())
                });
                return;
            }
            Err(e) => {
                let why = format!("nvmlEventSetWait: {e}");
                let _ = sink.send(event(
                    LiveEventKind::WatchFailed { why: why.clone() },
                    Vec::new(),
                ));
                set_state(states, gpu, |s| s.error = Some(why));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// GPU 1 never answers after its first read; GPU 0 always does.
    struct OneHangs {
        reads: AtomicU64,
    }

    impl ReadGpu for OneHangs {
        fn read_gpu(&self, index: u32) -> LiveGpu {
            if index == 1 && self.reads.fetch_add(1, Ordering::SeqCst) > 0 {
                std::thread::sleep(Duration::from_secs(3600));
            }
            LiveGpu {
                index,
                read_ms: 1.0,
                ..Default::default()
            }
        }
    }

    #[test]
    fn a_gpu_that_stops_answering_is_reported_and_the_others_keep_going() {
        let reader = Arc::new(OneHangs {
            reads: AtomicU64::new(0),
        });
        let s = Sampler::start(reader, &[0, 1], Duration::from_millis(200));
        let first = s.read_all();
        assert!(first.iter().all(LiveGpu::answered), "{first:?}");

        let t = Instant::now();
        let second = s.read_all();
        assert!(second[0].answered());
        let why = second[1].no_answer.as_deref().expect("GPU 1 hangs");
        assert!(why.contains("GPU 1"), "{why}");
        assert!(t.elapsed() < Duration::from_secs(2), "one timeout at most");

        // The hung read is not waited for again: later rounds answer at once.
        let t = Instant::now();
        let third = s.read_all();
        assert!(third[0].answered() && !third[1].answered());
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }

    /// Reads take 100 ms each and are counted.
    struct Slow {
        reads: AtomicU64,
    }

    impl ReadGpu for Slow {
        fn read_gpu(&self, index: u32) -> LiveGpu {
            self.reads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            LiveGpu {
                index,
                ..Default::default()
            }
        }
    }

    #[test]
    fn gpus_are_read_in_parallel_and_concurrent_requests_share_a_read() {
        let reader = Arc::new(Slow {
            reads: AtomicU64::new(0),
        });
        let s = Arc::new(Sampler::start(
            reader.clone(),
            &[0, 1, 2, 3],
            Duration::from_secs(5),
        ));
        let t = Instant::now();
        let (a, b) = std::thread::scope(|sc| {
            let s2 = s.clone();
            let h = sc.spawn(move || s2.read_all());
            let b = s.read_all();
            (h.join().unwrap(), b)
        });
        assert!(
            t.elapsed() < Duration::from_millis(350),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.len(), 4);
        assert!(a.iter().chain(&b).all(LiveGpu::answered));
        assert!(reader.reads.load(Ordering::SeqCst) <= 8);
    }
}
