//! Live analysis (`watch`, exporter): the `info` and `topo` findings of each reading, turned into
//! conditions that start and end; XIDs judged by the catalog (`analyze::xid`). The same codes
//! as `info`/`topo`, so a condition seen live, in a watch report and as an exporter metric is
//! one thing with one name.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::{health, topology, xid};
use crate::facts::TopoFacts;
use crate::facts::live::{EventWatchState, LiveEvent, LiveEventKind, LiveGpu, WatchFacts};
use crate::report::{Finding, Severity, codes};

/// Codes that become conditions only once they have held for the watch's `--persist`: a moment
/// of throttling, or a link at a lower generation while the load changes, is not a condition.
pub const TRANSIENT: &[&str] = &[codes::THERMAL_THROTTLE, codes::PCIE_GEN_BELOW_MAX];

/// Codes the exporter can report at severity fail: each has an alert in
/// deploy/prometheus/gpu-doctor.rules.yml (src/tests/exporter_rules.rs checks).
#[cfg(test)]
pub const FAIL_CODES: &[&str] = &[
    codes::GPU_LOST,
    codes::GPU_UNRESPONSIVE,
    codes::ROW_REMAP_PENDING,
    codes::ROW_REMAP_FAILED,
    codes::ECC_UNCORRECTABLE,
    codes::RECOVERY_ACTION,
    codes::PCIE_WIDTH_DEGRADED,
    codes::NVLINK_INACTIVE,
    codes::XID_NEEDS_RESET,
    codes::XID_NEEDS_REBOOT,
    codes::XID_NVLINK_ERROR,
];

pub fn unresponsive_finding(gpu: u32, why: &str) -> Finding {
    Finding::new(
        Severity::Fail,
        codes::GPU_UNRESPONSIVE,
        format!("GPU {gpu} does not answer: {why}"),
    )
    .device(gpu)
    .hint("NVML is stuck on this GPU (the others are still read). Check `dmesg` for XIDs and `nvidia-smi -q -i N`; a GPU that stays unresponsive needs a reset or a reboot.")
}

/// What `info` and `topo` would find on this GPU from this one reading.
pub fn reading_findings(r: &LiveGpu, topology_at_start: &TopoFacts) -> Vec<Finding> {
    if let Some(why) = &r.no_answer {
        return vec![unresponsive_finding(r.index, why)];
    }
    if let Some(why) = &r.health.lost {
        return vec![health::lost_finding(r.index, why)];
    }
    let mut out = health::findings(std::slice::from_ref(&r.health));
    let one = TopoFacts {
        gpus: vec![r.topo.clone()],
        pairs: Vec::new(),
        host_numa_nodes: topology_at_start.host_numa_nodes,
        host_cpus: topology_at_start.host_cpus,
    };
    out.extend(topology::findings(&one));
    out
}

/// Findings about pairs of GPUs (P2P), from the topology read at the start: they do not change
/// while the machine runs.
pub fn pair_findings(topology_at_start: &TopoFacts) -> Vec<Finding> {
    topology::findings(topology_at_start)
        .into_iter()
        .filter(|f| f.code == codes::P2P_UNSUPPORTED)
        .collect()
}

/// A finding that held for a while.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Condition {
    pub code: String,
    pub severity: Severity,
    #[serde(default)]
    pub gpu: Option<u32>,
    /// The message of its latest reading.
    pub message: String,
    #[serde(default)]
    pub hint: Option<String>,
    /// Milliseconds since the start: when it was first seen, and the first reading without it
    /// (None: it still held at the end).
    pub started_ms: f64,
    #[serde(default)]
    pub ended_ms: Option<f64>,
}

/// A condition starting or ending, as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Started(Condition),
    Ended(Condition),
}

struct Open {
    condition: Condition,
    confirmed: bool,
}

/// Turns readings, one GPU at a time, into conditions. The live view feeds it every reading;
/// the report's analysis feeds it the stored stretches, and gets the same conditions.
pub struct Tracker {
    persist_ms: f64,
    open: Vec<Open>,
    done: Vec<Condition>,
}

impl Tracker {
    pub fn new(persist_ms: f64) -> Tracker {
        Tracker {
            persist_ms,
            open: Vec::new(),
            done: Vec::new(),
        }
    }

    /// A reading of its GPU at `at_ms`. Conditions of that GPU its findings no longer hold end
    /// here, unless the GPU did not answer (then nothing is known of them and they stay).
    pub fn observe(&mut self, at_ms: f64, reading: &LiveGpu, start: &TopoFacts) -> Vec<Change> {
        let gpu = reading.index;
        let findings = reading_findings(reading, start);
        let keep_others = reading.no_answer.is_some();
        let mut changes = Vec::new();
        for f in &findings {
            let code = f.code.as_str();
            match self
                .open
                .iter_mut()
                .find(|o| o.condition.gpu == Some(gpu) && o.condition.code == code)
            {
                Some(o) => {
                    o.condition.message = f.message.clone();
                    o.condition.hint = f.hint.clone();
                    o.condition.severity = o.condition.severity.max(f.severity);
                    if !o.confirmed && at_ms - o.condition.started_ms >= self.persist_ms {
                        o.confirmed = true;
                        changes.push(Change::Started(o.condition.clone()));
                    }
                }
                None => {
                    let condition = Condition {
                        code: f.code.clone(),
                        severity: f.severity,
                        gpu: Some(gpu),
                        message: f.message.clone(),
                        hint: f.hint.clone(),
                        started_ms: at_ms,
                        ended_ms: None,
                    };
                    let confirmed = !TRANSIENT.contains(&code) || self.persist_ms <= 0.0;
                    if confirmed {
                        changes.push(Change::Started(condition.clone()));
                    }
                    self.open.push(Open {
                        condition,
                        confirmed,
                    });
                }
            }
        }
        if !keep_others {
            let mut i = 0;
            while i < self.open.len() {
                let o = &self.open[i];
                let gone = o.condition.gpu == Some(gpu)
                    && !findings.iter().any(|f| f.code == o.condition.code);
                if !gone {
                    i += 1;
                    continue;
                }
                let mut o = self.open.remove(i);
                if o.confirmed {
                    o.condition.ended_ms = Some(at_ms);
                    changes.push(Change::Ended(o.condition.clone()));
                    self.done.push(o.condition);
                }
            }
        }
        changes
    }

    /// Every condition seen: those that ended, then those still held (`ended_ms` None), by
    /// start.
    pub fn finish(self) -> Vec<Condition> {
        let mut all = self.done;
        all.extend(
            self.open
                .into_iter()
                .filter(|o| o.confirmed)
                .map(|o| o.condition),
        );
        all.sort_by(|a, b| {
            a.started_ms
                .total_cmp(&b.started_ms)
                .then(a.gpu.cmp(&b.gpu))
                .then(a.code.cmp(&b.code))
        });
        all
    }
}

/// The XIDs of one GPU and code: how many, when, and who was on the GPU.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct XidTally {
    pub gpu: u32,
    /// None: NVML could not say which XID.
    pub xid: Option<u64>,
    pub count: u64,
    pub first_ms: f64,
    pub last_ms: f64,
    /// Processes on the GPU when they arrived (pids, first seen first, at most 8).
    #[serde(default)]
    pub pids: Vec<u32>,
}

impl XidTally {
    /// Adds an XID event to `tallies` (other events are ignored).
    pub fn record(tallies: &mut Vec<XidTally>, e: &LiveEvent) {
        let LiveEventKind::Xid { xid } = e.kind else {
            return;
        };
        let i = match tallies.iter().position(|t| t.gpu == e.gpu && t.xid == xid) {
            Some(i) => i,
            None => {
                tallies.push(XidTally {
                    gpu: e.gpu,
                    xid,
                    first_ms: e.at_ms,
                    ..Default::default()
                });
                tallies.len() - 1
            }
        };
        let t = &mut tallies[i];
        t.count += 1;
        t.last_ms = e.at_ms;
        for p in &e.processes {
            if !t.pids.contains(&p.pid) && t.pids.len() < 8 {
                t.pids.push(p.pid);
            }
        }
    }

    pub fn info(&self) -> xid::XidInfo {
        self.xid.map(xid::lookup).unwrap_or(xid::XidInfo {
            xid: 999,
            meaning: "NVML could not say which XID",
            action: xid::XidAction::Unknown,
            what_to_do: "Check `dmesg` for the XID the driver logged.",
        })
    }

    /// The finding this tally is: code and severity from the catalog's action.
    pub fn finding(&self) -> Finding {
        let info = self.info();
        let name = self
            .xid
            .map(|x| format!("XID {x}"))
            .unwrap_or_else(|| "an XID".into());
        let times = if self.count == 1 {
            format!("at {}", seconds(self.first_ms))
        } else {
            format!(
                "{} times, {} to {}",
                self.count,
                seconds(self.first_ms),
                seconds(self.last_ms)
            )
        };
        let pids = if self.pids.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.pids.iter().map(|p| p.to_string()).collect();
            format!("; on the GPU then: pid {}", list.join(", "))
        };
        Finding::new(
            info.action.severity(),
            info.action.code(),
            format!("GPU {}: {name} ({}) {times}{pids}", self.gpu, info.meaning),
        )
        .device(self.gpu)
        .hint(format!("NVIDIA's action: {}", info.what_to_do))
    }
}

/// Every XID of the events, by GPU and code.
pub fn tally(events: &[LiveEvent]) -> Vec<XidTally> {
    let mut out = Vec::new();
    for e in events {
        XidTally::record(&mut out, e);
    }
    out
}

/// GPUs whose XIDs are not watched (a lost GPU is GPU_LOST already).
pub fn event_watch_findings(states: &[EventWatchState]) -> Vec<Finding> {
    states
        .iter()
        .filter_map(|s| {
            let why = s.error.as_deref()?;
            if why.contains("GPU_IS_LOST") {
                return None;
            }
            Some(
                Finding::new(
                    Severity::Warn,
                    codes::XID_EVENTS_UNAVAILABLE,
                    format!("GPU {}: XID events are not watched: {why}", s.gpu),
                )
                .device(s.gpu)
                .hint("XIDs on this GPU will not be seen (some VMs and vGPUs offer no event sets); `dmesg | grep -i xid` still shows them."),
            )
        })
        .collect()
}

/// "12.3 s" since the start.
fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1e3)
}

/// What a watch concludes: every condition seen, and one finding per GPU and code (with when it
/// held), per XID tally, and per GPU whose events were not watched.
pub fn watch(facts: &WatchFacts, persist_ms: f64) -> (Vec<Condition>, Vec<Finding>) {
    let mut readings: Vec<(f64, &LiveGpu)> = Vec::new();
    for run in &facts.runs {
        readings.push((run.from_ms, &run.first));
        if run.count > 1 {
            readings.push((run.to_ms, &run.first));
        }
    }
    readings.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.index.cmp(&b.1.index)));
    let mut tracker = Tracker::new(persist_ms);
    for (at, r) in readings {
        tracker.observe(at, r, &facts.topology);
    }
    let conditions = tracker.finish();
    let mut findings = condition_findings(&conditions);
    findings.extend(pair_findings(&facts.topology));
    findings.extend(tally(&facts.events).iter().map(XidTally::finding));
    findings.extend(event_watch_findings(&facts.event_watch));
    (conditions, findings)
}

/// One finding per GPU and code: the worst severity, the latest message, and when it held.
pub fn condition_findings(conditions: &[Condition]) -> Vec<Finding> {
    let mut keys: Vec<(Option<u32>, &str)> = Vec::new();
    for c in conditions {
        if !keys.contains(&(c.gpu, c.code.as_str())) {
            keys.push((c.gpu, &c.code));
        }
    }
    keys.into_iter()
        .map(|(gpu, code)| {
            let spans: Vec<&Condition> = conditions
                .iter()
                .filter(|c| c.gpu == gpu && c.code == code)
                .collect();
            let last = spans.last().expect("a key has a condition");
            let severity = spans
                .iter()
                .map(|c| c.severity)
                .max()
                .unwrap_or(last.severity);
            let span = |c: &Condition| match c.ended_ms {
                Some(end) => format!("{} to {}", seconds(c.started_ms), seconds(end)),
                None => format!("from {} to the end", seconds(c.started_ms)),
            };
            let when = if spans.len() == 1 {
                span(spans[0])
            } else {
                format!(
                    "{} times: {}",
                    spans.len(),
                    spans.iter().map(|c| span(c)).collect::<Vec<_>>().join(", ")
                )
            };
            let mut f = Finding::new(severity, code, format!("{} (held {when})", last.message));
            f.device = gpu;
            f.hint = last.hint.clone();
            f
        })
        .collect()
}

/// What holds now, for the exporter: each reading's findings, the pair findings, XIDs (those
/// whose action needs an operator until the exporter restarts; an application's for
/// `app_hold_ms` after the last), and GPUs whose events are not watched.
pub fn current_findings(
    readings: &[LiveGpu],
    topology_at_start: &TopoFacts,
    xids: &[XidTally],
    events: &[EventWatchState],
    now_ms: f64,
    app_hold_ms: f64,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = readings
        .iter()
        .flat_map(|r| reading_findings(r, topology_at_start))
        .collect();
    out.extend(pair_findings(topology_at_start));
    out.extend(
        xids.iter()
            .filter(|t| t.info().action.needs_operator() || now_ms - t.last_ms <= app_hold_ms)
            .map(XidTally::finding),
    );
    out.extend(event_watch_findings(events));
    out
}

/// A counter's rate per second between two readings (None before the second, or when it went
/// down: a driver reload).
pub fn rate_per_s(prev: Option<(f64, u64)>, now: (f64, u64)) -> Option<f64> {
    let (t0, v0) = prev?;
    let dt = (now.0 - t0) / 1e3;
    (dt > 0.0 && now.1 >= v0).then(|| (now.1 - v0) as f64 / dt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::GpuProcess;
    use crate::facts::live::ReadingRun;

    fn healthy(index: u32) -> LiveGpu {
        let mut r = LiveGpu {
            index,
            ..Default::default()
        };
        r.health.index = index;
        r.topo.index = index;
        r.health.persistence_mode = Some(true);
        r.topo.pcie.current_width = Some(16);
        r.topo.pcie.max_width = Some(16);
        r
    }

    fn throttled(index: u32) -> LiveGpu {
        let mut r = healthy(index);
        r.health.clock_event_reasons = vec!["HW_THERMAL_SLOWDOWN".into()];
        r
    }

    fn x8(index: u32) -> LiveGpu {
        let mut r = healthy(index);
        r.topo.pcie.current_width = Some(8);
        r
    }

    fn start() -> TopoFacts {
        TopoFacts::default()
    }

    #[test]
    fn a_degraded_link_starts_and_ends_a_condition_with_the_topo_code() {
        let mut t = Tracker::new(5000.0);
        assert!(t.observe(0.0, &healthy(0), &start()).is_empty());
        let c = t.observe(1000.0, &x8(0), &start());
        assert!(
            matches!(&c[..], [Change::Started(c)] if c.code == codes::PCIE_WIDTH_DEGRADED && c.severity == Severity::Fail)
        );
        assert!(t.observe(2000.0, &x8(0), &start()).is_empty());
        let c = t.observe(3000.0, &healthy(0), &start());
        assert!(matches!(&c[..], [Change::Ended(c)] if c.ended_ms == Some(3000.0)));
        let all = t.finish();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].started_ms, all[0].ended_ms), (1000.0, Some(3000.0)));
    }

    #[test]
    fn throttling_is_a_condition_only_once_it_persists() {
        let mut t = Tracker::new(2000.0);
        assert!(t.observe(0.0, &throttled(0), &start()).is_empty());
        assert!(
            t.observe(1000.0, &healthy(0), &start()).is_empty(),
            "a blip ends unseen"
        );
        t.observe(2000.0, &throttled(0), &start());
        t.observe(3000.0, &throttled(0), &start());
        let c = t.observe(4000.0, &throttled(0), &start());
        assert!(
            matches!(&c[..], [Change::Started(c)] if c.code == codes::THERMAL_THROTTLE && c.started_ms == 2000.0)
        );
        let all = t.finish();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ended_ms, None, "still held at the end");
    }

    #[test]
    fn a_gpu_that_does_not_answer_keeps_its_conditions_and_a_lost_one_replaces_them() {
        let mut t = Tracker::new(0.0);
        t.observe(0.0, &x8(1), &start());
        let c = t.observe(1000.0, &LiveGpu::no_answer(1, "timeout"), &start());
        assert!(
            matches!(&c[..], [Change::Started(c)] if c.code == codes::GPU_UNRESPONSIVE),
            "{c:?}"
        );
        let mut lost = healthy(1);
        lost.health.lost = Some("GPU_IS_LOST".into());
        let c = t.observe(2000.0, &lost, &start());
        let codes_now: Vec<_> = c
            .iter()
            .map(|c| match c {
                Change::Started(c) => format!("+{}", c.code),
                Change::Ended(c) => format!("-{}", c.code),
            })
            .collect();
        assert_eq!(
            codes_now,
            ["+GPU_LOST", "-PCIE_WIDTH_DEGRADED", "-GPU_UNRESPONSIVE"]
        );
    }

    fn xid_event(gpu: u32, xid: u64, at_ms: f64, pid: u32) -> LiveEvent {
        LiveEvent {
            at_ms,
            unix_ms: 0,
            gpu,
            kind: LiveEventKind::Xid { xid: Some(xid) },
            processes: vec![GpuProcess {
                pid,
                used_bytes: None,
            }],
        }
    }

    #[test]
    fn xids_become_findings_by_the_catalogs_action() {
        let events = [
            xid_event(1, 79, 1000.0, 7),
            xid_event(0, 31, 2000.0, 9),
            xid_event(0, 31, 2500.0, 9),
        ];
        let t = tally(&events);
        let f: Vec<_> = t.iter().map(XidTally::finding).collect();
        assert_eq!(f[0].code, codes::XID_NEEDS_REBOOT);
        assert_eq!((f[0].severity, f[0].device), (Severity::Fail, Some(1)));
        assert!(f[0].message.contains("fallen off the bus") && f[0].message.contains("pid 7"));
        assert!(f[0].hint.as_deref().unwrap().contains("reboot"));
        assert_eq!(
            (f[1].code.as_str(), f[1].severity),
            (codes::XID_APP_ERROR, Severity::Warn)
        );
        assert!(f[1].message.contains("2 times"), "{}", f[1].message);

        // The exporter: an application's XID passes after the hold; XID 79 stays.
        let held = |now| {
            current_findings(&[], &start(), &t, &[], now, 60_000.0)
                .into_iter()
                .map(|f| f.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            held(3000.0),
            [codes::XID_NEEDS_REBOOT, codes::XID_APP_ERROR]
        );
        assert_eq!(held(100_000.0), [codes::XID_NEEDS_REBOOT]);
    }

    #[test]
    fn a_watch_report_is_analysed_from_its_stretches_as_it_was_live() {
        let mut facts = WatchFacts::default();
        let mut tracker = Tracker::new(0.0);
        let mut live = Vec::new();
        for (i, r) in [healthy(0), healthy(0), x8(0), x8(0), x8(0), healthy(0)]
            .iter()
            .enumerate()
        {
            let at = i as f64 * 1000.0;
            facts.push_reading(at, r);
            live.extend(tracker.observe(at, r, &start()));
        }
        facts.events.push(xid_event(0, 48, 1500.0, 3));
        let (conditions, findings) = watch(&facts, 0.0);
        assert_eq!(conditions, tracker.finish());
        assert_eq!(live.len(), 2, "{live:?}");
        let codes: Vec<_> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, [codes::PCIE_WIDTH_DEGRADED, codes::XID_NEEDS_RESET]);
        assert!(
            findings[0].message.contains("held 2.0 s to 5.0 s"),
            "{}",
            findings[0].message
        );
        assert!(facts.runs.len() < 6);
        let _: &ReadingRun = &facts.runs[0];
    }

    #[test]
    fn every_fail_code_a_live_reading_can_have_is_listed() {
        let mut worst = healthy(0);
        worst.topo.pcie.current_width = Some(8);
        worst.topo.nvlinks = vec![
            crate::facts::NvLinkFacts {
                link: 0,
                active: true,
                ..Default::default()
            },
            crate::facts::NvLinkFacts {
                link: 1,
                active: false,
                ..Default::default()
            },
        ];
        worst.health.remap_pending = Some(true);
        worst.health.remap_failed = Some(true);
        worst.health.ecc_volatile_uncorrected = Some(1);
        worst.health.recovery_action = Some("gpu_reset".into());
        let mut lost = healthy(1);
        lost.health.lost = Some("lost".into());
        let xids: Vec<XidTally> = xid::CATALOG
            .iter()
            .map(|i| XidTally {
                xid: Some(i.xid),
                count: 1,
                ..Default::default()
            })
            .collect();
        let f = current_findings(
            &[worst, lost, LiveGpu::no_answer(2, "x")],
            &start(),
            &xids,
            &[],
            0.0,
            0.0,
        );
        for f in f.iter().filter(|f| f.severity == Severity::Fail) {
            assert!(
                FAIL_CODES.contains(&f.code.as_str()),
                "{} is not in FAIL_CODES",
                f.code
            );
        }
        for code in FAIL_CODES {
            assert!(f.iter().any(|x| x.code == *code), "{code} never found");
        }
    }

    #[test]
    fn rates_need_two_readings_and_a_counter_that_did_not_go_back() {
        assert_eq!(rate_per_s(None, (0.0, 5)), None);
        assert_eq!(rate_per_s(Some((0.0, 5)), (2000.0, 11)), Some(3.0));
        assert_eq!(rate_per_s(Some((0.0, 5)), (2000.0, 1)), None);
    }
}
