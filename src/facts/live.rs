//! Facts of the live commands (`watch`, `exporter`): one GPU read once, the NVML events that
//! arrived, and what a watch stores of its whole run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::{GpuHealth, GpuProcess, GpuTopo, TopoFacts};

/// One GPU read once (a watch interval, an exporter scrape): the `info` and `topo` facts of
/// that GPU, so the same analyses judge it, and what only a live view shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LiveGpu {
    pub index: u32,
    /// What `info` reads (`lost` set when NVML answers GPU_IS_LOST).
    pub health: GpuHealth,
    /// What `topo` reads of this GPU: PCIe and NVLinks (empty for a lost GPU).
    #[serde(default)]
    pub topo: GpuTopo,
    /// nvmlDeviceGetUtilizationRates: percent of the last sample period a kernel ran, and the
    /// memory controller was busy.
    #[serde(default)]
    pub utilization_gpu_pct: Option<u32>,
    #[serde(default)]
    pub utilization_memory_pct: Option<u32>,
    /// Error counters of the links that exist (nvmlDeviceGetNvLinkErrorCounter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvlink_errors: Vec<NvLinkErrors>,
    /// How long the read took, in milliseconds.
    #[serde(default)]
    pub read_ms: f64,
    /// The read did not finish in time, or NVML answered an error other than GPU_IS_LOST: why.
    /// Nothing else of this reading is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_answer: Option<String>,
}

impl LiveGpu {
    /// A GPU whose read did not come back (in time, or at all).
    pub fn no_answer(index: u32, why: impl Into<String>) -> LiveGpu {
        LiveGpu {
            index,
            health: GpuHealth {
                index,
                ..Default::default()
            },
            no_answer: Some(why.into()),
            ..Default::default()
        }
    }

    /// Read, and the GPU is there.
    pub fn answered(&self) -> bool {
        self.no_answer.is_none() && self.health.lost.is_none()
    }

    /// The same reading with everything that moves on its own between two reads of a healthy
    /// GPU (temperature, power, clocks, utilisation, memory in use, counters) left out: two
    /// readings with equal steady views are judged alike by every analysis, so a watch keeps
    /// one of them (see [`WatchFacts::push_reading`]). Counters are kept as "zero or not".
    pub fn steady_view(&self) -> LiveGpu {
        let mut s = self.clone();
        let h = &mut s.health;
        h.temperature_c = None;
        h.power_draw_w = None;
        h.sm_clock_mhz = None;
        h.memory_clock_mhz = None;
        h.memory_used_bytes = None;
        h.memory_free_bytes = None;
        h.pstate = None;
        let nonzero = |v: Option<u64>| v.map(|n| (n > 0) as u64);
        h.ecc_volatile_corrected = nonzero(h.ecc_volatile_corrected);
        h.ecc_volatile_uncorrected = nonzero(h.ecc_volatile_uncorrected);
        h.ecc_aggregate_corrected = nonzero(h.ecc_aggregate_corrected);
        h.ecc_aggregate_uncorrected = nonzero(h.ecc_aggregate_uncorrected);
        for p in &mut h.processes {
            p.used_bytes = None;
        }
        s.topo.pcie.replay_counter = nonzero(s.topo.pcie.replay_counter);
        s.utilization_gpu_pct = None;
        s.utilization_memory_pct = None;
        s.nvlink_errors.clear();
        s.read_ms = 0.0;
        s
    }

    /// Sum of every NVLink error counter of this GPU.
    pub fn nvlink_error_total(&self) -> u64 {
        self.nvlink_errors.iter().map(NvLinkErrors::total).sum()
    }
}

/// nvmlDeviceGetNvLinkErrorCounter of one link (None where the driver does not count it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NvLinkErrors {
    pub link: u32,
    pub replay: Option<u64>,
    pub recovery: Option<u64>,
    pub crc_flit: Option<u64>,
    pub crc_data: Option<u64>,
}

impl NvLinkErrors {
    pub fn total(&self) -> u64 {
        [self.replay, self.recovery, self.crc_flit, self.crc_data]
            .iter()
            .flatten()
            .sum()
    }
}

/// What an NVML event set delivered (or what happened to the event watch of a GPU).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEventKind {
    /// nvmlEventTypeXidCriticalError; `xid` None when NVML could not say which (999).
    Xid { xid: Option<u64> },
    /// nvmlEventTypeDoubleBitEccError.
    DoubleBitEcc,
    /// nvmlEventTypeSingleBitEccError.
    SingleBitEcc,
    /// The event wait answered GPU_IS_LOST: the GPU fell off the bus.
    GpuLost,
    /// The event wait failed otherwise: no more events from this GPU.
    WatchFailed { why: String },
}

/// One event, when it arrived, and the processes on the GPU at that moment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LiveEvent {
    /// Milliseconds since the watch (or exporter) started.
    pub at_ms: f64,
    /// Wall-clock time it arrived (Unix milliseconds), to line it up with `dmesg` and logs.
    pub unix_ms: u64,
    pub gpu: u32,
    #[serde(flatten)]
    pub kind: LiveEventKind,
    /// Compute processes on the GPU read as the event arrived (empty where NVML cannot say or
    /// none was left).
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
}

/// Whether the events of one GPU are watched.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct EventWatchState {
    pub gpu: u32,
    /// The event types registered (nvml-wrapper names: CRITICAL_XID_ERROR, …); empty when none.
    #[serde(default)]
    pub registered: Vec<String>,
    /// Why XID events are not watched on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Clock-change events (counted, not listed: they come with every boost change).
    #[serde(default)]
    pub clock_changes: u64,
}

impl EventWatchState {
    /// Whether XIDs on the GPU are seen: critical XID events registered and no error since.
    pub fn watches_xids(&self) -> bool {
        self.error.is_none() && self.registered.iter().any(|r| r == "CRITICAL_XID_ERROR")
    }
}

/// A stretch of consecutive readings of one GPU whose steady views were equal: the first kept
/// whole, and when the stretch ended.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ReadingRun {
    pub gpu: u32,
    /// First and last reading of the stretch, in milliseconds since the start.
    pub from_ms: f64,
    pub to_ms: f64,
    /// Readings in the stretch.
    pub count: u64,
    pub first: LiveGpu,
}

/// Extremes of the readings that move, per GPU, over the whole watch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ReadingStats {
    pub gpu: u32,
    pub readings: u64,
    pub temperature_max_c: Option<u32>,
    pub power_max_w: Option<f64>,
    pub utilization_max_pct: Option<u32>,
    pub memory_used_max_bytes: Option<u64>,
    /// PCIe replay counter at the first and the last reading.
    pub pcie_replays_first: Option<u64>,
    pub pcie_replays_last: Option<u64>,
    pub nvlink_errors_first: Option<u64>,
    pub nvlink_errors_last: Option<u64>,
    /// Longest read of this GPU, in milliseconds.
    pub read_max_ms: f64,
}

/// What a watch stores: the machine as it was at the start, its readings (one per stretch of
/// equal steady views, so a watch of days stays small), the last reading of each GPU, and every
/// event. What analysis derives (conditions) is added by it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct WatchFacts {
    pub interval_ms: f64,
    /// Wall-clock time of the start (Unix milliseconds).
    pub started_unix_ms: u64,
    /// How long it watched.
    pub elapsed_ms: f64,
    /// "for" (its --for ran out) or "interrupt" (Ctrl-C, SIGTERM).
    pub ended_by: String,
    /// Intervals read.
    pub intervals: u64,
    /// Topology at the start: pairs and host facts that readings of one GPU do not repeat.
    pub topology: TopoFacts,
    pub runs: Vec<ReadingRun>,
    pub last: Vec<LiveGpu>,
    pub stats: Vec<ReadingStats>,
    pub events: Vec<LiveEvent>,
    pub event_watch: Vec<EventWatchState>,
}

impl WatchFacts {
    /// Adds a reading taken at `at_ms`: it extends the GPU's last stretch when its steady view
    /// is unchanged, and starts a new one otherwise.
    pub fn push_reading(&mut self, at_ms: f64, reading: &LiveGpu) {
        let gpu = reading.index;
        let extend = self
            .runs
            .iter_mut()
            .rev()
            .find(|r| r.gpu == gpu)
            .filter(|r| r.first.steady_view() == reading.steady_view());
        match extend {
            Some(run) => {
                run.to_ms = at_ms;
                run.count += 1;
            }
            None => self.runs.push(ReadingRun {
                gpu,
                from_ms: at_ms,
                to_ms: at_ms,
                count: 1,
                first: reading.clone(),
            }),
        }
        // `last` and `stats` are kept in GPU order.
        match self.last.binary_search_by_key(&gpu, |l| l.index) {
            Ok(i) => self.last[i] = reading.clone(),
            Err(i) => self.last.insert(i, reading.clone()),
        }
        let i = self
            .stats
            .binary_search_by_key(&gpu, |s| s.gpu)
            .unwrap_or_else(|i| {
                let new = ReadingStats {
                    gpu,
                    ..Default::default()
                };
                self.stats.insert(i, new);
                i
            });
        self.stats[i].add(reading);
    }
}

impl ReadingStats {
    fn add(&mut self, r: &LiveGpu) {
        self.readings += 1;
        self.read_max_ms = self.read_max_ms.max(r.read_ms);
        if !r.answered() {
            return;
        }
        let h = &r.health;
        self.temperature_max_c = self.temperature_max_c.max(h.temperature_c);
        self.utilization_max_pct = self.utilization_max_pct.max(r.utilization_gpu_pct);
        self.memory_used_max_bytes = self.memory_used_max_bytes.max(h.memory_used_bytes);
        self.power_max_w = match (self.power_max_w, h.power_draw_w) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(n) = r.topo.pcie.replay_counter {
            self.pcie_replays_first.get_or_insert(n);
            self.pcie_replays_last = Some(n);
        }
        if !r.nvlink_errors.is_empty() {
            let n = r.nvlink_error_total();
            self.nvlink_errors_first.get_or_insert(n);
            self.nvlink_errors_last = Some(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(gpu: u32, temp: u32, width: u32) -> LiveGpu {
        let mut r = LiveGpu {
            index: gpu,
            ..Default::default()
        };
        r.health.temperature_c = Some(temp);
        r.topo.pcie.current_width = Some(width);
        r.topo.pcie.max_width = Some(16);
        r
    }

    #[test]
    fn readings_that_differ_only_in_moving_values_extend_one_run() {
        let mut w = WatchFacts::default();
        w.push_reading(0.0, &reading(0, 40, 16));
        w.push_reading(1000.0, &reading(0, 55, 16));
        w.push_reading(1000.0, &reading(1, 30, 16));
        w.push_reading(2000.0, &reading(0, 50, 8));
        let runs: Vec<_> = w
            .runs
            .iter()
            .map(|r| (r.gpu, r.from_ms, r.to_ms, r.count))
            .collect();
        assert_eq!(
            runs,
            [
                (0, 0.0, 1000.0, 2),
                (1, 1000.0, 1000.0, 1),
                (0, 2000.0, 2000.0, 1)
            ]
        );
        assert_eq!(w.last[0].health.temperature_c, Some(50));
        assert_eq!(w.stats[0].temperature_max_c, Some(55));
        assert_eq!(w.stats[0].readings, 3);
    }

    #[test]
    fn a_counter_that_starts_counting_starts_a_run_and_one_that_keeps_counting_does_not() {
        let mut w = WatchFacts::default();
        let mut r = reading(0, 40, 16);
        r.topo.pcie.replay_counter = Some(0);
        w.push_reading(0.0, &r);
        r.topo.pcie.replay_counter = Some(2);
        w.push_reading(1.0, &r);
        r.topo.pcie.replay_counter = Some(9);
        w.push_reading(2.0, &r);
        assert_eq!(w.runs.len(), 2);
        assert_eq!(w.stats[0].pcie_replays_first, Some(0));
        assert_eq!(w.stats[0].pcie_replays_last, Some(9));
    }
}
