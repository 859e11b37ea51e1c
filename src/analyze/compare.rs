//! Compare reports (pure): status changes, new and resolved findings, metrics beyond their band
//! in their bad direction, and changes of devices, driver and tool (info).
//!
//! Works on scenario and suite reports alike: each side is flattened into its scenarios (a
//! suite's `reports`, or the report itself), matched by scenario name (the n-th occurrence of
//! a name matches the n-th); two suites also compare their own status and findings. Devices
//! are matched by UUID first, then by NVML index, and findings are keyed by (code, matched
//! device). With several baselines, statuses, findings and devices compare with the newest;
//! metrics take every baseline run as evidence (analyze::band). Hash-map based: O(n).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::analyze::band::{self, BandSource};
use crate::analyze::metric_kind::{self, KindSource};
use crate::report::{
    Better, DeviceInfo, Finding, Metric, MetricKind, Report, Severity, Spread, Status,
};

/// Key of the row that holds two suites' own status and findings.
pub const SUITE_ROW: &str = "suite";

/// Tolerances as fractions (0.05 = 5 %).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--tolerance`: one band for every metric no `--tol` names, instead of the evidence.
    pub tolerance: Option<f64>,
    /// `--tol`: a band by exact name, or by base name covering `NAME.gpu<N>`. A metric named
    /// here is a gate whatever its kind.
    pub per_metric: HashMap<String, f64>,
}

impl Options {
    /// The band `--tol` gives a metric: its exact name first, then its base name.
    pub fn named(&self, name: &str) -> Option<f64> {
        self.per_metric
            .get(name)
            .or_else(|| per_device_base(name).and_then(|base| self.per_metric.get(base)))
            .copied()
    }
}

/// The base name of a per-device metric name `NAME.gpu<N>`, or None for any other name.
pub fn per_device_base(name: &str) -> Option<&str> {
    metric_kind::numbered_base(name, ".gpu")
}

/// Why two reports cannot be compared: they share no scenario (a single report's own, or a
/// suite's). A suite and one of its scenarios' reports can be compared.
pub fn check_comparable(baseline: &Report, current: &Report) -> Result<(), String> {
    let names = |r: &Report| -> HashSet<String> {
        units(r)
            .into_iter()
            .map(|(_, u)| u.scenario.clone())
            .collect()
    };
    if baseline.scenario == current.scenario || !names(baseline).is_disjoint(&names(current)) {
        Ok(())
    } else {
        Err(format!(
            "the baseline is a `{}` report and the current a `{}` report, which share no scenario: compare reports of the same scenario or suite (or a suite with one of its scenarios)",
            baseline.scenario, current.scenario
        ))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// True when anything regressed: the exit code is 1.
    pub regression: bool,
    /// Rows that regressed: scenarios, plus the suite's own row when its status or findings
    /// regressed on their own (a suite status that follows from a scenario's is not counted
    /// again). `regressed` counts the items within them.
    pub regressions: usize,
    pub regressed: Counts,
    /// `--tolerance` in percent when given (one band for every metric no `--tol` names);
    /// None: each metric's band follows its kind and evidence.
    pub tolerance_pct: Option<f64>,
    /// Baseline reports given; statuses, findings and devices compare with the newest.
    pub baseline_reports: usize,
    /// The newest baseline.
    pub baseline: Side,
    pub current: Side,
    /// Changes of tool, driver, host and devices: information, never a regression.
    pub changes: Vec<Change>,
    pub scenarios: Vec<ScenarioDiff>,
}

/// Regressed items, by what they are.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Rows whose status got worse, turned skipped, or that are gone.
    pub statuses: usize,
    /// New warn or fail findings.
    pub findings: usize,
    /// Metrics beyond their band in their bad direction.
    pub metrics: usize,
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
    /// "tool_version", "driver_version", "cuda_driver_version", "hostname", "kernel", "suite",
    /// "device".
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
    /// Only in the baseline report: a regression (a CI job must not lose a scenario).
    Removed,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioDiff {
    /// Scenario name, with `#n` for the n-th repeat of a name in a suite; `suite` for two
    /// suites' own status and findings.
    pub key: String,
    pub scenario: String,
    pub baseline: Option<Status>,
    pub current: Option<Status>,
    pub status: StatusChange,
    /// The status change counts as a regression: worse, now skipped, gone, or new and failed.
    /// The suite row's worse status counts only when no scenario's status regressed.
    pub status_regression: bool,
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
    /// The status itself counts as a regression.
    pub fn status_regressed(&self) -> bool {
        self.status_regression
    }
    fn counts(&self) -> Counts {
        Counts {
            statuses: usize::from(self.status_regression),
            findings: self.new_findings.iter().filter(|f| f.regression).count(),
            metrics: self
                .metrics
                .iter()
                .filter(|m| m.verdict == MetricVerdict::Regressed)
                .count(),
        }
    }
}

fn status_regressed(status: StatusChange, current: Option<Status>) -> bool {
    match status {
        StatusChange::Regressed | StatusChange::Removed => true,
        StatusChange::Added => current.is_some_and(Status::is_failure),
        StatusChange::Same | StatusChange::Improved => false,
    }
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
    /// Beyond the band in the bad direction, and the metric gates: a regression.
    Regressed,
    /// Beyond the band in the bad direction, but the metric is information (single_shot,
    /// volatile, not named by `--tol`): listed, not a regression.
    Worse,
    Improved,
    Added,
    Removed,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricDiff {
    pub name: String,
    pub unit: String,
    pub better: Better,
    pub kind: MetricKind,
    /// recorded in the report, inferred from the table by name, or guessed from the unit.
    pub kind_source: KindSource,
    /// A move beyond the band is a regression: a throughput or exact metric, or one `--tol`
    /// names.
    pub gate: bool,
    /// The baseline value: the baseline's, or with several the median of theirs.
    pub baseline: Option<f64>,
    /// Baseline reports that have the metric.
    pub baseline_runs: usize,
    /// Lowest and highest baseline value, with several baselines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_max: Option<f64>,
    pub current: Option<f64>,
    /// Relative change in percent; None when a side is missing or the baseline is 0.
    pub change_pct: Option<f64>,
    /// Combined relative standard deviation in percent from the spreads (analyze::band);
    /// None without any spread or history.
    pub noise_pct: Option<f64>,
    /// The band, in percent of the baseline value.
    pub tolerance_pct: f64,
    /// What set the band: --tol, --tolerance, floor, spread or history.
    pub tolerance_from: BandSource,
    pub verdict: MetricVerdict,
}

/// Compares `current` against one `baseline`.
#[cfg(test)]
pub fn compare(baseline: &Report, current: &Report, opts: &Options) -> Comparison {
    compare_history(std::slice::from_ref(baseline), current, opts)
}

/// Compares `current` against several baselines (at least one): statuses, findings and
/// devices with the newest (latest `started_at`; the last given on a tie), metrics with the
/// evidence of all.
pub fn compare_history(baselines: &[Report], current: &Report, opts: &Options) -> Comparison {
    let baseline = baselines
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.started_at.cmp(&b.started_at).then(i.cmp(j)))
        .map(|(_, r)| r)
        .expect("at least one baseline");
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
    let suite_name = |r: &Report| {
        r.params
            .get("suite")
            .and_then(|s| s.as_str())
            .map(str::to_string)
    };
    let (base_suite, cur_suite) = (suite_name(baseline), suite_name(current));
    let fields: [(&str, Option<&str>, Option<&str>); 6] = [
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
        ("suite", base_suite.as_deref(), cur_suite.as_deref()),
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

    let ctx = Ctx {
        base_top: baseline,
        cur_top: current,
        devices: &devices,
        opts,
    };
    let history: Vec<HashMap<String, &Report>> = baselines
        .iter()
        .map(|b| units(b).into_iter().collect())
        .collect();
    let runs_of = |key: &str| -> Vec<&Report> {
        history.iter().filter_map(|h| h.get(key).copied()).collect()
    };
    let base_units = units(baseline);
    let cur_units = units(current);
    let base_by_key: HashMap<&str, &Report> =
        base_units.iter().map(|(k, r)| (k.as_str(), *r)).collect();
    let cur_keys: HashSet<&str> = cur_units.iter().map(|(k, _)| k.as_str()).collect();
    let mut scenarios = Vec::new();
    for (key, cur) in &cur_units {
        let base = base_by_key.get(key.as_str()).copied();
        scenarios.push(diff_scenario(key, base, &runs_of(key), Some(cur), &ctx));
    }
    for (key, base) in &base_units {
        if !cur_keys.contains(key.as_str()) {
            scenarios.push(diff_scenario(key, Some(base), &runs_of(key), None, &ctx));
        }
    }
    // Two suites: their own status and findings are compared too (an edited status, a
    // suite-level finding), counted only where the scenarios do not already explain them.
    if is_suite(baseline) && is_suite(current) {
        let tops: Vec<&Report> = baselines.iter().filter(|b| is_suite(b)).collect();
        let mut row = diff_scenario(SUITE_ROW, Some(baseline), &tops, Some(current), &ctx);
        if scenarios.iter().any(|s| s.status_regression) {
            row.status_regression = false;
        }
        row.regression = row.status_regression
            || row.new_findings.iter().any(|f| f.regression)
            || row
                .metrics
                .iter()
                .any(|m| m.verdict == MetricVerdict::Regressed);
        scenarios.push(row);
    }
    let mut regressed = Counts::default();
    for s in &scenarios {
        let c = s.counts();
        regressed.statuses += c.statuses;
        regressed.findings += c.findings;
        regressed.metrics += c.metrics;
    }
    Comparison {
        regression: scenarios.iter().any(|s| s.regression),
        regressions: scenarios.iter().filter(|s| s.regression).count(),
        regressed,
        tolerance_pct: opts.tolerance.map(|t| t * 100.0),
        baseline_reports: baselines.len(),
        baseline: side(baseline),
        current: side(current),
        changes,
        scenarios,
    }
}

/// A report that holds other scenarios' reports (`gpu-doctor run`, `inject all`).
fn is_suite(r: &Report) -> bool {
    !r.reports.is_empty() || r.scenario == "suite"
}

/// What every row's diff needs: the two top-level reports, the device match, the options.
struct Ctx<'a> {
    base_top: &'a Report,
    cur_top: &'a Report,
    devices: &'a DeviceMatch,
    opts: &'a Options,
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
    history: &[&Report],
    cur: Option<&Report>,
    ctx: &Ctx,
) -> ScenarioDiff {
    let (base_top, cur_top, devices, opts) = (ctx.base_top, ctx.cur_top, ctx.devices, ctx.opts);
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
    let runs_of = |name: &str| -> Vec<&Metric> {
        history.iter().filter_map(|r| r.metrics.get(name)).collect()
    };
    let mut metrics = Vec::with_capacity(bm.len().max(cm.len()));
    for (name, c) in cm {
        let runs = if bm.contains_key(name) {
            runs_of(name)
        } else {
            Vec::new()
        };
        metrics.push(diff_metric(&scenario, name, &runs, Some(c), opts));
    }
    for (name, b) in bm {
        if !cm.contains_key(name) {
            metrics.push(diff_metric(&scenario, name, &[b], None, opts));
        }
    }
    metrics.sort_by(|a, b| a.name.cmp(&b.name));

    // A scenario that was skipped in the baseline loses nothing by being gone.
    let status_regression = status_regressed(status, cur.map(|c| c.status))
        && !(status == StatusChange::Removed && base.is_some_and(|b| b.status == Status::Skipped));
    let regression = status_regression
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
        status_regression,
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

/// One metric: `runs` are the baseline runs that have it (empty when only the current has it),
/// `cur` the current's.
fn diff_metric(
    scenario: &str,
    name: &str,
    runs: &[&Metric],
    cur: Option<&Metric>,
    opts: &Options,
) -> MetricDiff {
    let m = cur
        .or(runs.first().copied())
        .expect("one side has the metric");
    let sides: Vec<&Metric> = cur.into_iter().chain(runs.iter().copied()).collect();
    let (kind, kind_source) = metric_kind::kind_of(scenario, name, &sides);
    let named = opts.named(name);
    let gate = named.is_some() || band::gates(kind);
    let values: Vec<f64> = runs.iter().map(|r| r.value).collect();
    let history = Spread::of(&values);
    let reference = history.as_ref().map(|h| h.median);
    let evidence = match (cur, reference) {
        (Some(c), Some(r)) => band::evidence(kind, m.better, runs, c, r),
        _ => band::Band {
            tolerance: band::floor(kind),
            source: BandSource::Floor,
            noise: None,
        },
    };
    let (tol, source) = match (named, opts.tolerance) {
        (Some(t), _) => (t, BandSource::Tol),
        (None, Some(t)) => (t, BandSource::Tolerance),
        (None, None) => (evidence.tolerance, evidence.source),
    };
    let (change_pct, verdict) = match (reference, cur) {
        (Some(b), Some(c)) => {
            let rel = if b == c.value {
                Some(0.0)
            } else if b == 0.0 {
                None
            } else {
                Some((c.value - b) / b.abs())
            };
            // How far it moved in the bad direction (positive = worse).
            let worse = match (rel, m.better) {
                (Some(r), Better::Higher) => -r,
                (Some(r), Better::Lower) => r,
                (None, Better::Higher) => (b - c.value).signum() * f64::INFINITY,
                (None, Better::Lower) => (c.value - b).signum() * f64::INFINITY,
            };
            let eps = 1e-9;
            let verdict = if worse > tol + eps {
                if gate {
                    MetricVerdict::Regressed
                } else {
                    MetricVerdict::Worse
                }
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
    let several = history.as_ref().filter(|h| h.n > 1);
    MetricDiff {
        name: name.to_string(),
        unit: m.unit.clone(),
        better: m.better,
        kind,
        kind_source,
        gate,
        baseline: reference,
        baseline_runs: values.len(),
        baseline_min: several.map(|h| h.min),
        baseline_max: several.map(|h| h.max),
        current: cur.map(|c| c.value),
        change_pct,
        noise_pct: evidence.noise.map(|n| n * 100.0),
        tolerance_pct: tol * 100.0,
        tolerance_from: source,
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
    use crate::report::{Metric, Spread};

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

    /// A bandwidth-like report: `bw` a throughput (gate), `lat` a one-off timing (info).
    fn report(scenario: &str) -> Report {
        let mut r = Report::begin(scenario, serde_json::json!({}));
        r.devices = vec![dev(0, "GPU-a"), dev(1, "GPU-b")];
        r.metrics.insert(
            "bw".into(),
            Metric::new(50.0, "GB/s", Better::Higher).kind(MetricKind::Throughput),
        );
        r.metrics.insert(
            "lat".into(),
            Metric::new(10.0, "ms", Better::Lower).kind(MetricKind::SingleShot),
        );
        r
    }

    fn metric<'a>(c: &'a Comparison, key: &str, name: &str) -> &'a MetricDiff {
        c.scenarios
            .iter()
            .find(|s| s.key == key)
            .and_then(|s| s.metrics.iter().find(|m| m.name == name))
            .unwrap_or_else(|| panic!("{key} {name} in {c:#?}"))
    }

    fn set(r: &mut Report, name: &str, v: f64) {
        r.metrics.get_mut(name).unwrap().value = v;
    }

    #[test]
    fn identical_reports_do_not_regress() {
        let a = report("bandwidth");
        let c = compare(&a, &a, &Options::default());
        assert!(!c.regression);
        assert_eq!((c.regressions, c.regressed), (0, Counts::default()));
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
    fn a_throughput_regresses_beyond_its_floor_in_its_bad_direction() {
        let a = report("bandwidth");
        let mut b = a.clone();
        set(&mut b, "bw", 45.0); // -10 %
        let c = compare(&a, &b, &Options::default());
        assert!(c.regression);
        let bw = metric(&c, "bandwidth", "bw");
        assert_eq!(bw.verdict, MetricVerdict::Regressed);
        assert_eq!(
            (bw.tolerance_pct, bw.tolerance_from),
            (5.0, BandSource::Floor)
        );
        assert!((bw.change_pct.unwrap() + 10.0).abs() < 1e-9);
        assert_eq!(c.regressed.metrics, 1);
        // the other way round it is an improvement
        let back = compare(&b, &a, &Options::default());
        assert_eq!(
            metric(&back, "bandwidth", "bw").verdict,
            MetricVerdict::Improved
        );
        assert!(!back.regression);
        // exactly at the floor is within
        let mut d = a.clone();
        set(&mut d, "bw", 47.5);
        assert!(!compare(&a, &d, &Options::default()).regression);
        // --tol and --tolerance override the evidence
        let mut opts = Options::default();
        opts.per_metric.insert("bw".into(), 0.25);
        let loose = compare(&a, &b, &opts);
        assert!(!loose.regression);
        assert_eq!(
            metric(&loose, "bandwidth", "bw").tolerance_from,
            BandSource::Tol
        );
        let all = Options {
            tolerance: Some(0.2),
            ..Options::default()
        };
        assert!(!compare(&a, &b, &all).regression);
    }

    #[test]
    fn the_band_follows_the_recorded_spread() {
        let sampled = |v: &[f64]| {
            let s = Spread::of(v).unwrap();
            Metric::new(s.median, "GB/s", Better::Higher)
                .kind(MetricKind::Throughput)
                .spread(Some(s))
        };
        let mut a = report("bandwidth");
        a.metrics.insert("bw".into(), sampled(&[44.0, 50.0, 56.0]));
        let mut b = a.clone();
        b.metrics.insert("bw".into(), sampled(&[39.0, 45.0, 51.0]));
        // σ = 1.4826 × 6 / 50 per side: a 10 % drop is inside a band that wide.
        let c = compare(&a, &b, &Options::default());
        let bw = metric(&c, "bandwidth", "bw");
        assert_eq!(bw.verdict, MetricVerdict::Within, "{bw:?}");
        assert_eq!(bw.tolerance_from, BandSource::Spread);
        let (sa, sb): (f64, f64) = (1.4826 * 6.0 / 50.0, 1.4826 * 6.0 / 45.0);
        assert!((bw.noise_pct.unwrap() - 100.0 * (sa * sa + sb * sb).sqrt()).abs() < 1e-6);
        // Tight samples leave the floor: the same drop regresses.
        a.metrics.insert("bw".into(), sampled(&[49.9, 50.0, 50.1]));
        b.metrics.insert("bw".into(), sampled(&[44.9, 45.0, 45.1]));
        assert!(compare(&a, &b, &Options::default()).regression);
    }

    #[test]
    fn single_shot_and_volatile_metrics_are_information_unless_named() {
        let mut a = report("inject oom");
        a.metrics.insert(
            "pageable".into(),
            Metric::new(10.0, "GB/s", Better::Higher).kind(MetricKind::Volatile),
        );
        let mut b = a.clone();
        set(&mut b, "lat", 14.5); // +45 %: a rerun does that
        set(&mut b, "pageable", 7.5); // -25 %
        let c = compare(&a, &b, &Options::default());
        assert!(!c.regression, "{c:#?}");
        assert_eq!(
            metric(&c, "inject oom", "lat").verdict,
            MetricVerdict::Within
        );
        assert!(!metric(&c, "inject oom", "lat").gate);
        // beyond its floor it is listed as worse, still not a regression
        set(&mut b, "lat", 25.0);
        set(&mut b, "pageable", 5.0);
        let c = compare(&a, &b, &Options::default());
        assert!(!c.regression);
        assert_eq!(
            metric(&c, "inject oom", "lat").verdict,
            MetricVerdict::Worse
        );
        assert_eq!(
            metric(&c, "inject oom", "pageable").verdict,
            MetricVerdict::Worse
        );
        // --tolerance sets the band but does not make information a gate
        let all = Options {
            tolerance: Some(0.05),
            ..Options::default()
        };
        assert!(!compare(&a, &b, &all).regression);
        // --tol names it: a gate
        let mut named = Options::default();
        named.per_metric.insert("lat".into(), 0.5);
        let c = compare(&a, &b, &named);
        assert!(c.regression);
        let lat = metric(&c, "inject oom", "lat");
        assert!(lat.gate);
        assert_eq!(lat.verdict, MetricVerdict::Regressed);
    }

    #[test]
    fn old_reports_get_their_kind_from_the_table() {
        let mut a = Report::begin("inject oom", serde_json::json!({}));
        for (name, v, unit, better) in [
            ("time_to_edge_ms", 8.0, "ms", Better::Lower),
            (
                "allocatable_bytes",
                84_462_796_800.0,
                "bytes",
                Better::Higher,
            ),
        ] {
            a.metrics.insert(name.into(), Metric::new(v, unit, better));
        }
        let mut b = a.clone();
        set(&mut b, "time_to_edge_ms", 11.6); // +45 %
        let c = compare(&a, &b, &Options::default());
        assert!(!c.regression);
        let t = metric(&c, "inject oom", "time_to_edge_ms");
        assert_eq!(
            (t.kind, t.kind_source),
            (MetricKind::SingleShot, KindSource::Inferred)
        );
        // allocatable memory is exact: 1 GiB less is a regression
        set(
            &mut b,
            "allocatable_bytes",
            84_462_796_800.0 - 1_073_741_824.0,
        );
        let c = compare(&a, &b, &Options::default());
        assert!(c.regression);
        assert_eq!(
            metric(&c, "inject oom", "allocatable_bytes").kind,
            MetricKind::Exact
        );
    }

    #[test]
    fn per_device_names_use_their_base_tolerance() {
        let mut o = Options::default();
        o.per_metric.insert("bw".into(), 0.3);
        o.per_metric.insert("bw.gpu1".into(), 0.1);
        assert_eq!(o.named("bw.gpu0"), Some(0.3));
        assert_eq!(o.named("bw.gpu1"), Some(0.1));
        assert_eq!(o.named("bw.gpux"), None);
        assert_eq!(o.named("other"), None);
    }

    #[test]
    fn zero_baseline_counts_any_bad_move() {
        let mut a = report("x");
        a.metrics
            .insert("leak".into(), Metric::new(0.0, "bytes", Better::Lower));
        let mut b = a.clone();
        set(&mut b, "leak", 4096.0);
        let c = compare(&a, &b, &Options::default());
        let leak = metric(&c, "x", "leak");
        assert_eq!(
            (leak.kind, leak.kind_source),
            (MetricKind::Exact, KindSource::Unit)
        );
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
        assert_eq!(c.regressed.findings, 1);
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

    fn suite(parts: Vec<Report>) -> Report {
        let mut s = Report::begin("suite", serde_json::json!({ "suite": "ci" }));
        s.reports = parts;
        s
    }

    #[test]
    fn suites_compare_scenario_by_scenario_and_a_missing_one_regresses() {
        let a = suite(vec![
            report("info"),
            report("topo"),
            report("topo"),
            report("bandwidth"),
        ]);
        let mut b = a.clone();
        b.reports[2].status = Status::Fail; // the second topo
        b.reports.remove(3); // bandwidth gone
        let mut extra = report("trace ctx");
        extra.status = Status::Fail;
        b.reports.push(extra);
        b.status = Status::Fail;
        let c = compare(&a, &b, &Options::default());
        let keys: Vec<(&str, StatusChange, bool)> = c
            .scenarios
            .iter()
            .map(|s| (s.key.as_str(), s.status, s.regression))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("info", StatusChange::Same, false),
                ("topo", StatusChange::Same, false),
                ("topo#2", StatusChange::Regressed, true),
                ("trace ctx", StatusChange::Added, true),
                ("bandwidth", StatusChange::Removed, true),
                // pass → fail, explained by its scenarios: not counted again
                (SUITE_ROW, StatusChange::Regressed, false),
            ]
        );
        assert_eq!(c.regressions, 3);
        assert_eq!(
            c.regressed,
            Counts {
                statuses: 3,
                findings: 0,
                metrics: 0
            }
        );
        // a suite baseline against one of its scenarios' reports: the others are missing
        let single = compare(&a, &report("topo"), &Options::default());
        let missing: Vec<&str> = single
            .scenarios
            .iter()
            .filter(|s| s.status == StatusChange::Removed && s.regression)
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(missing, vec!["info", "topo#2", "bandwidth"]);
        assert!(single.regression);
        // one the baseline had skipped loses nothing
        let mut skipped = a.clone();
        skipped.reports[3].status = Status::Skipped;
        let mut cur = skipped.clone();
        cur.reports.remove(3);
        assert!(!compare(&skipped, &cur, &Options::default()).regression);
    }

    #[test]
    fn a_suite_status_edited_to_fail_regresses_on_its_own() {
        let a = suite(vec![report("info"), report("topo")]);
        let mut b = a.clone();
        b.status = Status::Fail;
        let c = compare(&a, &b, &Options::default());
        assert!(c.regression, "{c:#?}");
        assert_eq!(c.regressions, 1);
        let row = c.scenarios.last().unwrap();
        assert_eq!((row.key.as_str(), row.status_regression), (SUITE_ROW, true));
        // and a finding of the suite's own
        let mut d = a.clone();
        d.findings.push(Finding::new(
            Severity::Fail,
            "REQUIRED_SKIPPED",
            "required scenario topo was skipped",
        ));
        let c = compare(&a, &d, &Options::default());
        assert!(c.regression);
        assert_eq!(c.regressed.findings, 1);
    }

    #[test]
    fn reports_must_share_a_scenario() {
        let oom = report("inject oom");
        let topo = report("topo");
        let err = check_comparable(&oom, &topo).unwrap_err();
        assert!(
            err.contains("`inject oom`") && err.contains("`topo`"),
            "{err}"
        );
        let s = suite(vec![report("info"), report("topo")]);
        assert!(check_comparable(&s, &topo).is_ok());
        assert!(check_comparable(&topo, &s).is_ok());
        assert!(check_comparable(&s, &oom).is_err());
        assert!(check_comparable(&s, &suite(vec![report("topo")])).is_ok());
        assert!(check_comparable(&oom, &oom).is_ok());
    }

    #[test]
    fn several_baselines_use_the_newest_for_status_and_all_for_the_band() {
        let run = |at: &str, bw: f64, status: Status| {
            let mut r = report("bandwidth");
            r.started_at = at.into();
            r.status = status;
            set(&mut r, "bw", bw);
            r
        };
        // given out of order: the newest (03:00) passed, an older one failed
        let history = vec![
            run("2025-01-01T03:00:00Z", 55.0, Status::Pass),
            run("2025-01-01T01:00:00Z", 55.2, Status::Fail),
            run("2025-01-01T02:00:00Z", 50.6, Status::Pass),
            run("2025-01-01T00:00:00Z", 54.9, Status::Pass),
        ];
        let cur = run("2025-01-01T04:00:00Z", 50.8, Status::Pass);
        let c = compare_history(&history, &cur, &Options::default());
        assert_eq!(c.baseline_reports, 4);
        assert_eq!(c.baseline.started_at, "2025-01-01T03:00:00Z");
        assert_eq!(c.scenarios[0].status, StatusChange::Same);
        let bw = metric(&c, "bandwidth", "bw");
        assert_eq!(bw.baseline_runs, 4);
        assert_eq!((bw.baseline_min, bw.baseline_max), (Some(50.6), Some(55.2)));
        assert_eq!(bw.baseline, Some((54.9 + 55.0) / 2.0));
        // a run as low as one the history already holds is within …
        assert_eq!(bw.verdict, MetricVerdict::Within, "{bw:?}");
        assert_eq!(bw.tolerance_from, BandSource::History);
        // … lower than any is not
        let low = run("2025-01-01T04:00:00Z", 48.0, Status::Pass);
        assert!(compare_history(&history, &low, &Options::default()).regression);
        // against the newest alone, the first drop is a regression
        assert!(compare(&history[0], &cur, &Options::default()).regression);
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

    fn fixture(name: &str) -> Report {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        crate::output::read_report(&p).unwrap()
    }

    /// The report as this version writes it: metrics re-analysed from the recorded facts, so
    /// they carry their kind and the spread of their samples.
    fn as_written_today(mut r: Report) -> Report {
        for sub in &mut r.reports {
            if let Some(again) = crate::tests::fixtures::reanalysed(sub) {
                sub.metrics = again.metrics;
            }
        }
        r
    }

    fn regressed(c: &Comparison) -> Vec<(&str, &str)> {
        c.scenarios
            .iter()
            .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
            .filter(|(_, m)| m.verdict == MetricVerdict::Regressed)
            .map(|(s, m)| (s.key.as_str(), m.name.as_str()))
            .collect()
    }

    #[test]
    fn real_reports_with_kinds_and_spreads_compare_by_their_evidence() {
        let base = as_written_today(fixture("h100-suite-ci.json"));
        let rerun = as_written_today(fixture("h100-suite-ci-derived-rerun.json"));
        let down = as_written_today(fixture("h100-suite-ci-derived-h2d-pinned-10pct-lower.json"));
        let o = Options::default();
        let c = compare(&base, &rerun, &o);
        assert!(!c.regression, "{c:#?}");
        let d2h = metric(&c, "bandwidth", "d2h_pinned_gbps");
        assert_eq!(d2h.kind_source, KindSource::Recorded);
        assert!(d2h.noise_pct.unwrap() > 0.0, "{d2h:?}");
        assert!(!compare(&rerun, &base, &o).regression);
        assert_eq!(
            regressed(&compare(&base, &down, &o)),
            vec![("bandwidth", "h2d_pinned_gbps")]
        );
        // an old baseline against a report of today: the same verdicts
        let old = fixture("h100-suite-ci.json");
        assert!(!compare(&old, &rerun, &o).regression);
        assert_eq!(
            regressed(&compare(&old, &down, &o)),
            vec![("bandwidth", "h2d_pinned_gbps")]
        );
        // and with the history of both runs
        let c = compare_history(&[old, rerun], &down, &o);
        assert_eq!(regressed(&c), vec![("bandwidth", "h2d_pinned_gbps")]);
    }
}
