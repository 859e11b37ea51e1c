//! Compare two reports (pure): status changes, new and resolved findings, metrics beyond
//! tolerance in their bad direction, and changes of devices, driver and tool (info).
//!
//! Works on scenario and suite reports alike: each side is flattened into its scenarios (a
//! suite's `reports`, or the report itself), matched by scenario name (the n-th occurrence of
//! a name matches the n-th). Devices are matched by UUID first, then by NVML index, and
//! findings are keyed by (code, matched device). Everything is hash-map based: O(n).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::report::{Better, DeviceInfo, Finding, Metric, Report, Severity, Status};

/// Tolerances as fractions (0.05 = 5 %).
#[derive(Debug, Clone)]
pub struct Options {
    pub tolerance: f64,
    /// Per-metric tolerance by exact name, or by base name covering `NAME.gpu<N>`.
    pub per_metric: HashMap<String, f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tolerance: 0.05,
            per_metric: HashMap::new(),
        }
    }
}

impl Options {
    pub fn tolerance_for(&self, name: &str) -> f64 {
        self.per_metric
            .get(name)
            .or_else(|| per_device_base(name).and_then(|base| self.per_metric.get(base)))
            .copied()
            .unwrap_or(self.tolerance)
    }
}

/// The base name of a per-device metric name `NAME.gpu<N>`, or None for any other name.
pub fn per_device_base(name: &str) -> Option<&str> {
    let (base, n) = name.rsplit_once(".gpu")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// True when anything regressed: the exit code is 1.
    pub regression: bool,
    /// Number of regressed items (statuses, findings, metrics).
    pub regressions: usize,
    pub tolerance_pct: f64,
    pub baseline: Side,
    pub current: Side,
    /// Changes of tool, driver, host and devices: information, never a regression.
    pub changes: Vec<Change>,
    pub scenarios: Vec<ScenarioDiff>,
}

/// What a report says about itself.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    pub scenario: String,
    pub status: Status,
    pub started_at: String,
    pub tool_version: String,
    pub hostname: String,
    pub driver_version: Option<String>,
    pub cuda_driver_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// "tool_version", "driver_version", "cuda_driver_version", "hostname", "device".
    pub what: String,
    pub baseline: Option<String>,
    pub current: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatusChange {
    Same,
    Regressed,
    Improved,
    /// Only in the current report.
    Added,
    /// Only in the baseline report.
    Removed,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioDiff {
    /// Scenario name, with `#n` for the n-th repeat of a name in a suite.
    pub key: String,
    pub scenario: String,
    pub baseline: Option<Status>,
    pub current: Option<Status>,
    pub status: StatusChange,
    /// Why the current run was skipped, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_reason: Option<String>,
    pub regression: bool,
    pub new_findings: Vec<FindingDiff>,
    pub resolved_findings: Vec<FindingDiff>,
    /// Every metric of either side, sorted by name.
    pub metrics: Vec<MetricDiff>,
}

impl ScenarioDiff {
    /// The status itself regressed: worse than the baseline's, or a new scenario that failed.
    pub fn status_regressed(&self) -> bool {
        status_regressed(self.status, self.current)
    }
}

fn status_regressed(status: StatusChange, current: Option<Status>) -> bool {
    status == StatusChange::Regressed
        || (status == StatusChange::Added && current.is_some_and(Status::is_failure))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingDiff {
    pub severity: Severity,
    pub code: String,
    /// NVML index in the report it comes from.
    pub gpu: Option<u32>,
    /// UUID of the device (the baseline's, for matched devices), or `gpu<N>` when unknown.
    pub device: Option<String>,
    pub message: String,
    /// A new warn/fail finding is a regression; info findings and resolved ones are not.
    pub regression: bool,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricVerdict {
    Within,
    Regressed,
    Improved,
    Added,
    Removed,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricDiff {
    pub name: String,
    pub unit: String,
    pub better: Better,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Relative change in percent; None when a side is missing or the baseline is 0.
    pub change_pct: Option<f64>,
    pub tolerance_pct: f64,
    pub verdict: MetricVerdict,
}

/// Compares `current` against `baseline`.
pub fn compare(baseline: &Report, current: &Report, opts: &Options) -> Comparison {
    let mut changes = Vec::new();
    let side = |r: &Report| Side {
        scenario: r.scenario.clone(),
        status: r.status,
        started_at: r.started_at.clone(),
        tool_version: r.tool.version.clone(),
        hostname: r.host.hostname.clone(),
        driver_version: r.host.driver_version.clone(),
        cuda_driver_version: r.host.cuda_driver_version.clone(),
    };
    let fields: [(&str, Option<&str>, Option<&str>); 5] = [
        (
            "tool_version",
            Some(baseline.tool.version.as_str()),
            Some(current.tool.version.as_str()),
        ),
        (
            "driver_version",
            baseline.host.driver_version.as_deref(),
            current.host.driver_version.as_deref(),
        ),
        (
            "cuda_driver_version",
            baseline.host.cuda_driver_version.as_deref(),
            current.host.cuda_driver_version.as_deref(),
        ),
        (
            "hostname",
            Some(baseline.host.hostname.as_str()),
            Some(current.host.hostname.as_str()),
        ),
        (
            "kernel",
            Some(baseline.host.kernel.as_str()),
            Some(current.host.kernel.as_str()),
        ),
    ];
    for (what, b, c) in fields {
        if b != c {
            changes.push(Change {
                what: what.into(),
                baseline: b.map(str::to_string),
                current: c.map(str::to_string),
                note: format!(
                    "{what} changed from {} to {}",
                    b.unwrap_or("unknown"),
                    c.unwrap_or("unknown")
                ),
            });
        }
    }
    let devices = DeviceMatch::new(&all_devices(baseline), &all_devices(current));
    changes.extend(devices.changes.iter().cloned());

    let base_units = units(baseline);
    let cur_units = units(current);
    let base_by_key: HashMap<&str, &Report> =
        base_units.iter().map(|(k, r)| (k.as_str(), *r)).collect();
    let cur_keys: HashSet<&str> = cur_units.iter().map(|(k, _)| k.as_str()).collect();
    let mut scenarios = Vec::new();
    for (key, cur) in &cur_units {
        let base = base_by_key.get(key.as_str()).copied();
        scenarios.push(diff_scenario(
            key,
            base,
            Some(cur),
            baseline,
            current,
            &devices,
            opts,
        ));
    }
    for (key, base) in &base_units {
        if !cur_keys.contains(key.as_str()) {
            scenarios.push(diff_scenario(
                key,
                Some(base),
                None,
                baseline,
                current,
                &devices,
                opts,
            ));
        }
    }
    let regressions = scenarios
        .iter()
        .map(|s| {
            usize::from(
                s.status == StatusChange::Regressed
                    || (s.status == StatusChange::Added && s.regression),
            ) + s.new_findings.iter().filter(|f| f.regression).count()
                + s.metrics
                    .iter()
                    .filter(|m| m.verdict == MetricVerdict::Regressed)
                    .count()
        })
        .sum();
    Comparison {
        regression: scenarios.iter().any(|s| s.regression),
        regressions,
        tolerance_pct: opts.tolerance * 100.0,
        baseline: side(baseline),
        current: side(current),
        changes,
        scenarios,
    }
}

/// The scenarios of a report: a suite's reports, or the report itself; keyed by name, `#n`
/// for repeats.
fn units(r: &Report) -> Vec<(String, &Report)> {
    if r.reports.is_empty() {
        return vec![(r.scenario.clone(), r)];
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    r.reports
        .iter()
        .map(|x| {
            let n = seen.entry(x.scenario.as_str()).or_insert(0);
            *n += 1;
            let key = if *n == 1 {
                x.scenario.clone()
            } else {
                format!("{}#{n}", x.scenario)
            };
            (key, x)
        })
        .collect()
}

/// The devices a report names, its own first, then any its scenarios add (by UUID).
fn all_devices(r: &Report) -> Vec<DeviceInfo> {
    let mut out: Vec<DeviceInfo> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for d in r
        .devices
        .iter()
        .chain(r.reports.iter().flat_map(|x| x.devices.iter()))
    {
        if seen.insert(d.uuid.as_str()) {
            out.push(d.clone());
        }
    }
    out
}

/// Which current device is which baseline device: UUID first, then NVML index.
struct DeviceMatch {
    /// Current UUID → identity used for findings (the matched baseline UUID, or its own).
    canonical: HashMap<String, String>,
    changes: Vec<Change>,
}

impl DeviceMatch {
    fn new(base: &[DeviceInfo], cur: &[DeviceInfo]) -> Self {
        let mut matched_base = vec![false; base.len()];
        let mut pair: Vec<Option<usize>> = vec![None; cur.len()];
        let by_uuid: HashMap<&str, usize> = base
            .iter()
            .enumerate()
            .map(|(i, d)| (d.uuid.as_str(), i))
            .collect();
        for (ci, d) in cur.iter().enumerate() {
            if let Some(&bi) = by_uuid.get(d.uuid.as_str())
                && !matched_base[bi]
            {
                matched_base[bi] = true;
                pair[ci] = Some(bi);
            }
        }
        let by_index: HashMap<u32, usize> = base
            .iter()
            .enumerate()
            .filter(|(i, _)| !matched_base[*i])
            .map(|(i, d)| (d.index, i))
            .collect();
        for (ci, d) in cur.iter().enumerate() {
            if pair[ci].is_none()
                && let Some(&bi) = by_index.get(&d.index)
                && !matched_base[bi]
            {
                matched_base[bi] = true;
                pair[ci] = Some(bi);
            }
        }
        let mut changes = Vec::new();
        let mut canonical = HashMap::new();
        let label = |d: &DeviceInfo| format!("GPU {} {} ({})", d.index, d.name, d.uuid);
        for (ci, c) in cur.iter().enumerate() {
            match pair[ci] {
                Some(bi) => {
                    let b = &base[bi];
                    canonical.insert(c.uuid.clone(), b.uuid.clone());
                    let mut what = Vec::new();
                    if b.uuid != c.uuid {
                        what.push(format!("replaced: {} → {}", b.uuid, c.uuid));
                    }
                    if b.index != c.index {
                        what.push(format!("index {} → {}", b.index, c.index));
                    }
                    if b.name != c.name {
                        what.push(format!("model {} → {}", b.name, c.name));
                    }
                    if b.pci_bus_id != c.pci_bus_id {
                        what.push(format!("PCI bus id {} → {}", b.pci_bus_id, c.pci_bus_id));
                    }
                    if b.memory_total_bytes != c.memory_total_bytes {
                        what.push(format!(
                            "memory {} → {} bytes",
                            b.memory_total_bytes, c.memory_total_bytes
                        ));
                    }
                    if !what.is_empty() {
                        changes.push(Change {
                            what: "device".into(),
                            baseline: Some(label(b)),
                            current: Some(label(c)),
                            note: format!("GPU {}: {}", c.index, what.join(", ")),
                        });
                    }
                }
                None => {
                    canonical.insert(c.uuid.clone(), c.uuid.clone());
                    changes.push(Change {
                        what: "device".into(),
                        baseline: None,
                        current: Some(label(c)),
                        note: format!("{} is new", label(c)),
                    });
                }
            }
        }
        for (bi, b) in base.iter().enumerate() {
            if !matched_base[bi] {
                changes.push(Change {
                    what: "device".into(),
                    baseline: Some(label(b)),
                    current: None,
                    note: format!("{} is gone", label(b)),
                });
            }
        }
        DeviceMatch { canonical, changes }
    }
}

fn status_rank(s: Status) -> u8 {
    match s {
        Status::Skipped | Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
        Status::Error => 3,
    }
}

/// Regressed when the current status is worse (pass < warn < fail < error; a skipped
/// baseline counts as pass), or when a scenario that ran is now skipped.
pub fn status_change(base: Status, cur: Status) -> StatusChange {
    if base == cur {
        return StatusChange::Same;
    }
    if cur == Status::Skipped {
        return StatusChange::Regressed;
    }
    match status_rank(cur).cmp(&status_rank(base)) {
        std::cmp::Ordering::Greater => StatusChange::Regressed,
        std::cmp::Ordering::Less => StatusChange::Improved,
        // skipped → pass
        std::cmp::Ordering::Equal => StatusChange::Improved,
    }
}

type FindingKey<'a> = (&'a str, Option<String>);

fn diff_scenario(
    key: &str,
    base: Option<&Report>,
    cur: Option<&Report>,
    base_top: &Report,
    cur_top: &Report,
    devices: &DeviceMatch,
    opts: &Options,
) -> ScenarioDiff {
    let scenario = cur.or(base).map(|r| r.scenario.clone()).unwrap_or_default();
    let status = match (base, cur) {
        (Some(b), Some(c)) => status_change(b.status, c.status),
        (None, Some(_)) => StatusChange::Added,
        _ => StatusChange::Removed,
    };
    let skipped_reason = cur
        .filter(|c| c.status == Status::Skipped)
        .and_then(|c| c.data.get("skipped_reason"))
        .and_then(|r| r.as_str())
        .map(str::to_string);

    // Findings, keyed by (code, device identity).
    let base_dev = |f: &Finding| -> Option<String> {
        f.device
            .map(|i| uuid_of(i, base, base_top).unwrap_or_else(|| format!("gpu{i}")))
    };
    let cur_dev = |f: &Finding| -> Option<String> {
        f.device.map(|i| match uuid_of(i, cur, cur_top) {
            Some(u) => devices.canonical.get(&u).cloned().unwrap_or(u),
            None => format!("gpu{i}"),
        })
    };
    let base_findings: &[Finding] = base.map(|b| b.findings.as_slice()).unwrap_or(&[]);
    let cur_findings: &[Finding] = cur.map(|c| c.findings.as_slice()).unwrap_or(&[]);
    let base_keys: Vec<FindingKey> = base_findings
        .iter()
        .map(|f| (f.code.as_str(), base_dev(f)))
        .collect();
    let cur_keys: Vec<FindingKey> = cur_findings
        .iter()
        .map(|f| (f.code.as_str(), cur_dev(f)))
        .collect();
    let mut by_msg: HashMap<(&FindingKey, &str), Vec<usize>> = HashMap::new();
    let mut by_key: HashMap<&FindingKey, Vec<usize>> = HashMap::new();
    for (i, (k, f)) in base_keys.iter().zip(base_findings).enumerate().rev() {
        by_msg.entry((k, f.message.as_str())).or_default().push(i);
        by_key.entry(k).or_default().push(i);
    }
    let mut used = vec![false; base_findings.len()];
    let mut matched = vec![false; cur_findings.len()];
    // Same key and same message first, then the same key with another message.
    for (ci, (k, f)) in cur_keys.iter().zip(cur_findings).enumerate() {
        if let Some(v) = by_msg.get_mut(&(k, f.message.as_str()))
            && let Some(bi) = v.pop()
        {
            used[bi] = true;
            matched[ci] = true;
        }
    }
    for (ci, k) in cur_keys.iter().enumerate() {
        if matched[ci] {
            continue;
        }
        if let Some(v) = by_key.get_mut(k) {
            while let Some(bi) = v.pop() {
                if !used[bi] {
                    used[bi] = true;
                    matched[ci] = true;
                    break;
                }
            }
        }
    }
    let finding_diff = |f: &Finding, dev: &Option<String>, regression: bool| FindingDiff {
        severity: f.severity,
        code: f.code.clone(),
        gpu: f.device,
        device: dev.clone(),
        message: f.message.clone(),
        regression,
    };
    let new_findings: Vec<FindingDiff> = cur_findings
        .iter()
        .zip(&cur_keys)
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|((f, k), _)| finding_diff(f, &k.1, f.severity >= Severity::Warn))
        .collect();
    let resolved_findings: Vec<FindingDiff> = base_findings
        .iter()
        .zip(&base_keys)
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((f, k), _)| finding_diff(f, &k.1, false))
        .collect();

    let empty = BTreeMap::new();
    let bm = base.map(|b| &b.metrics).unwrap_or(&empty);
    let cm = cur.map(|c| &c.metrics).unwrap_or(&empty);
    let mut metrics = Vec::with_capacity(bm.len().max(cm.len()));
    for (name, c) in cm {
        metrics.push(diff_metric(name, bm.get(name), Some(c), opts));
    }
    for (name, b) in bm {
        if !cm.contains_key(name) {
            metrics.push(diff_metric(name, Some(b), None, opts));
        }
    }
    metrics.sort_by(|a, b| a.name.cmp(&b.name));

    let regression = status_regressed(status, cur.map(|c| c.status))
        || new_findings.iter().any(|f| f.regression)
        || metrics
            .iter()
            .any(|m| m.verdict == MetricVerdict::Regressed);
    ScenarioDiff {
        key: key.to_string(),
        scenario,
        baseline: base.map(|b| b.status),
        current: cur.map(|c| c.status),
        status,
        skipped_reason,
        regression,
        new_findings,
        resolved_findings,
        metrics,
    }
}

/// UUID of NVML index `i` in a scenario report, or in its suite's device list.
fn uuid_of(i: u32, unit: Option<&Report>, top: &Report) -> Option<String> {
    unit.into_iter()
        .flat_map(|u| u.devices.iter())
        .chain(top.devices.iter())
        .find(|d| d.index == i)
        .map(|d| d.uuid.clone())
}

fn diff_metric(
    name: &str,
    base: Option<&Metric>,
    cur: Option<&Metric>,
    opts: &Options,
) -> MetricDiff {
    let tol = opts.tolerance_for(name);
    let m = cur.or(base).expect("one side has the metric");
    let (change_pct, verdict) = match (base, cur) {
        (Some(b), Some(c)) => {
            let rel = if b.value == c.value {
                Some(0.0)
            } else if b.value == 0.0 {
                None
            } else {
                Some((c.value - b.value) / b.value.abs())
            };
            // How far it moved in the bad direction (positive = worse).
            let worse = match (rel, c.better) {
                (Some(r), Better::Higher) => -r,
                (Some(r), Better::Lower) => r,
                (None, Better::Higher) => (b.value - c.value).signum() * f64::INFINITY,
                (None, Better::Lower) => (c.value - b.value).signum() * f64::INFINITY,
            };
            let eps = 1e-9;
            let verdict = if worse > tol + eps {
                MetricVerdict::Regressed
            } else if -worse > tol + eps {
                MetricVerdict::Improved
            } else {
                MetricVerdict::Within
            };
            (rel.map(|r| r * 100.0), verdict)
        }
        (None, Some(_)) => (None, MetricVerdict::Added),
        _ => (None, MetricVerdict::Removed),
    };
    MetricDiff {
        name: name.to_string(),
        unit: m.unit.clone(),
        better: m.better,
        baseline: base.map(|b| b.value),
        current: cur.map(|c| c.value),
        change_pct,
        tolerance_pct: tol * 100.0,
        verdict,
    }
}

/// Parses "5%", "5" (both 5 %) or "0.5%" into a fraction.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let num = t.strip_suffix('%').unwrap_or(t).trim();
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!(
            "'{s}' is not a percentage: write e.g. 5% (a number ≥ 0, the % sign optional)"
        )),
    }
}

/// Parses a `--tol NAME=PCT` entry.
pub fn parse_metric_tolerance(s: &str) -> Result<(String, f64), String> {
    let (name, pct) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=PERCENT (e.g. h2d_pinned_gbps=10%)"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!(
            "'{s}': the metric name is empty (e.g. h2d_pinned_gbps=10%)"
        ));
    }
    Ok((name.to_string(), parse_percent(pct)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Metric;

    fn dev(index: u32, uuid: &str) -> DeviceInfo {
        DeviceInfo {
            index,
            uuid: uuid.into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + index),
            memory_total_bytes: 85_899_345_920,
            compute_capability: Some("9.0".into()),
            cuda_ordinal: None,
        }
    }

    fn report(scenario: &str) -> Report {
        let mut r = Report::begin(scenario, serde_json::json!({}));
        r.devices = vec![dev(0, "GPU-a"), dev(1, "GPU-b")];
        r.metrics
            .insert("bw".into(), Metric::new(50.0, "GB/s", Better::Higher));
        r.metrics
            .insert("lat".into(), Metric::new(10.0, "ms", Better::Lower));
        r
    }

    #[test]
    fn identical_reports_do_not_regress() {
        let a = report("bandwidth");
        let c = compare(&a, &a, &Options::default());
        assert!(!c.regression);
        assert_eq!(c.regressions, 0);
        assert!(c.changes.is_empty());
        assert_eq!(c.scenarios.len(), 1);
        assert!(
            c.scenarios[0]
                .metrics
                .iter()
                .all(|m| m.verdict == MetricVerdict::Within)
        );
    }

    #[test]
    fn metrics_regress_only_beyond_tolerance_in_their_bad_direction() {
        let a = report("bandwidth");
        let mut b = a.clone();
        b.metrics.get_mut("bw").unwrap().value = 40.0; // -20 %, higher is better
        b.metrics.get_mut("lat").unwrap().value = 9.0; // -10 %, lower is better: improvement
        let c = compare(&a, &b, &Options::default());
        assert!(c.regression);
        let m = &c.scenarios[0].metrics;
        assert_eq!(m[0].name, "bw");
        assert_eq!(m[0].verdict, MetricVerdict::Regressed);
        assert!((m[0].change_pct.unwrap() + 20.0).abs() < 1e-9);
        assert_eq!(m[1].verdict, MetricVerdict::Improved);

        let mut opts = Options::default();
        opts.per_metric.insert("bw".into(), 0.25);
        assert!(!compare(&a, &b, &opts).regression);

        // exactly at the tolerance is within
        let mut d = a.clone();
        d.metrics.get_mut("bw").unwrap().value = 47.5;
        assert!(!compare(&a, &d, &Options::default()).regression);
    }

    #[test]
    fn per_device_names_use_their_base_tolerance() {
        let mut o = Options::default();
        o.per_metric.insert("bw".into(), 0.3);
        o.per_metric.insert("bw.gpu1".into(), 0.1);
        assert_eq!(o.tolerance_for("bw.gpu0"), 0.3);
        assert_eq!(o.tolerance_for("bw.gpu1"), 0.1);
        assert_eq!(o.tolerance_for("bw.gpux"), 0.05);
        assert_eq!(o.tolerance_for("other"), 0.05);
    }

    #[test]
    fn zero_baseline_counts_any_bad_move() {
        let mut a = report("x");
        a.metrics
            .insert("leak".into(), Metric::new(0.0, "bytes", Better::Lower));
        let mut b = a.clone();
        b.metrics.get_mut("leak").unwrap().value = 4096.0;
        let c = compare(&a, &b, &Options::default());
        let leak = c.scenarios[0]
            .metrics
            .iter()
            .find(|m| m.name == "leak")
            .unwrap();
        assert_eq!(leak.verdict, MetricVerdict::Regressed);
        assert_eq!(leak.change_pct, None);
        let back = compare(&b, &a, &Options::default());
        assert!(!back.regression);
    }

    #[test]
    fn status_changes() {
        use Status::*;
        assert_eq!(status_change(Pass, Warn), StatusChange::Regressed);
        assert_eq!(status_change(Pass, Fail), StatusChange::Regressed);
        assert_eq!(status_change(Warn, Fail), StatusChange::Regressed);
        assert_eq!(status_change(Fail, Error), StatusChange::Regressed);
        assert_eq!(status_change(Pass, Skipped), StatusChange::Regressed);
        assert_eq!(status_change(Skipped, Pass), StatusChange::Improved);
        assert_eq!(status_change(Skipped, Fail), StatusChange::Regressed);
        assert_eq!(status_change(Fail, Pass), StatusChange::Improved);
        assert_eq!(status_change(Warn, Warn), StatusChange::Same);
    }

    #[test]
    fn findings_are_keyed_by_code_and_device_uuid() {
        let mut a = report("info");
        a.findings
            .push(Finding::new(Severity::Warn, "PCIE_REPLAYS", "12 replays").device(1));
        a.findings
            .push(Finding::new(Severity::Info, "PERSISTENCE_OFF", "off"));
        let mut b = a.clone();
        // Same finding, other message: not new. Device order changed: GPU-b is now index 0.
        b.devices = vec![dev(0, "GPU-b"), dev(1, "GPU-a")];
        b.findings[0] = Finding::new(Severity::Warn, "PCIE_REPLAYS", "15 replays").device(0);
        b.findings
            .push(Finding::new(Severity::Fail, "ECC_UNCORRECTABLE", "3 errors").device(1));
        b.findings.remove(1);
        let c = compare(&a, &b, &Options::default());
        let s = &c.scenarios[0];
        assert_eq!(s.new_findings.len(), 1, "{:?}", s.new_findings);
        assert_eq!(s.new_findings[0].code, "ECC_UNCORRECTABLE");
        assert_eq!(s.new_findings[0].device.as_deref(), Some("GPU-a"));
        assert!(s.new_findings[0].regression);
        assert_eq!(s.resolved_findings.len(), 1);
        assert_eq!(s.resolved_findings[0].code, "PERSISTENCE_OFF");
        assert!(c.regression);
        assert_eq!(c.regressions, 1);
        // the reordering is reported as info
        assert!(
            c.changes.iter().any(|ch| ch.note.contains("index 1 → 0")),
            "{:?}",
            c.changes
        );
    }

    #[test]
    fn a_new_info_finding_is_not_a_regression() {
        let a = report("info");
        let mut b = a.clone();
        b.findings
            .push(Finding::new(Severity::Info, "PERSISTENCE_OFF", "off"));
        let c = compare(&a, &b, &Options::default());
        assert_eq!(c.scenarios[0].new_findings.len(), 1);
        assert!(!c.regression);
    }

    #[test]
    fn swapped_device_is_info_and_matched_by_index() {
        let mut a = report("info");
        a.findings
            .push(Finding::new(Severity::Warn, "PCIE_REPLAYS", "r").device(0));
        let mut b = a.clone();
        b.devices[0].uuid = "GPU-z".into();
        b.host.driver_version = Some("580.159.04".into());
        let c = compare(&a, &b, &Options::default());
        assert!(!c.regression, "{c:?}");
        assert!(c.scenarios[0].new_findings.is_empty());
        let notes: Vec<&str> = c.changes.iter().map(|c| c.note.as_str()).collect();
        assert!(
            notes.iter().any(|n| n.contains("replaced: GPU-a → GPU-z")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("driver_version changed")),
            "{notes:?}"
        );
    }

    #[test]
    fn suites_compare_scenario_by_scenario() {
        let mut a = Report::begin("suite", serde_json::json!({}));
        a.reports = vec![
            report("info"),
            report("topo"),
            report("topo"),
            report("bandwidth"),
        ];
        let mut b = a.clone();
        b.reports[2].status = Status::Fail; // the second topo
        b.reports.remove(3); // bandwidth gone
        let mut extra = report("trace ctx");
        extra.status = Status::Fail;
        b.reports.push(extra);
        let c = compare(&a, &b, &Options::default());
        let keys: Vec<(&str, StatusChange)> = c
            .scenarios
            .iter()
            .map(|s| (s.key.as_str(), s.status))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("info", StatusChange::Same),
                ("topo", StatusChange::Same),
                ("topo#2", StatusChange::Regressed),
                ("trace ctx", StatusChange::Added),
                ("bandwidth", StatusChange::Removed),
            ]
        );
        assert_eq!(c.regressions, 2);
        assert!(!c.scenarios[4].regression);
        // a suite against one of its scenarios' reports
        let single = compare(&a, &report("topo"), &Options::default());
        assert_eq!(
            single
                .scenarios
                .iter()
                .filter(|s| s.status == StatusChange::Removed)
                .count(),
            3
        );
    }

    #[test]
    fn percentages_parse() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("10"), Ok(0.10));
        assert_eq!(parse_percent(" 0.5 % "), Ok(0.005));
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("five").is_err());
        assert!(parse_percent("NaN").is_err());
        assert_eq!(
            parse_metric_tolerance("bw.gpu0=10%"),
            Ok(("bw.gpu0".into(), 0.1))
        );
        assert!(parse_metric_tolerance("bw").is_err());
        assert!(parse_metric_tolerance("=5%").is_err());
    }
}
