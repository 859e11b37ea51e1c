//! Suite thresholds: limits a scenario's report must meet, turned into `THRESHOLD` findings.
//! Pure: the suite file's parser (crate::suite) builds [`Thresholds`], a run applies them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analyze::verdict;
use crate::report::{Finding, Report, Severity, Status, codes};

/// Limits a scenario's report must meet; each miss is a `THRESHOLD` finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    /// Bounds on metrics by name. A name also covers its per-device variants (`NAME.gpu<N>`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Bound>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<f64>,
    /// The worst status the scenario may end with (`pass` or `warn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_status: Option<Status>,
    /// Severity of the findings a missed threshold produces (`fail` unless set to `warn`).
    pub severity: Severity,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            metrics: BTreeMap::new(),
            max_duration_ms: None,
            max_status: None,
            severity: Severity::Fail,
        }
    }
}

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.max_duration_ms.is_none() && self.max_status.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bound {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// True when metric `name` is covered by a threshold on `key`: the same name, or the name of a
/// per-device variant (`key.gpu<N>`).
pub fn metric_matches(key: &str, name: &str) -> bool {
    name == key || crate::analyze::compare::per_device_base(name) == Some(key)
}

/// Checks a scenario's report against thresholds set at `origin` (`file:line` of the suite
/// entry): each miss becomes a `THRESHOLD` finding in the report and the status is recomputed.
/// A skipped run of a `required` scenario fails. Reports of scenarios that broke (`error`) are
/// left alone.
pub fn apply(report: &mut Report, t: &Thresholds, required: bool, origin: &str) {
    let hint = format!(
        "Threshold set in {origin}; change it there if the hardware or the expectation changed."
    );
    match report.status {
        Status::Error => return,
        Status::Skipped => {
            if required {
                let reason = report
                    .data
                    .get("skipped_reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("no reason given");
                report.findings.push(
                    Finding::new(
                        Severity::Fail,
                        codes::THRESHOLD,
                        format!("required scenario was skipped: {reason}"),
                    )
                    .hint(format!("The suite marks it `required = true` ({origin}): this runner must be able to run it.")),
                );
                report.status = Status::Fail;
            }
            return;
        }
        _ => {}
    }
    let miss = |message: String| Finding::new(t.severity, codes::THRESHOLD, message);
    let mut found = Vec::new();
    if let Some(max) = t.max_status
        && report.status > max
    {
        found.push(miss(format!(
            "status {} is worse than the suite's max_status {}",
            report.status.as_str(),
            max.as_str()
        )));
    }
    if let Some(max) = t.max_duration_ms
        && report.duration_ms > max
    {
        found.push(miss(format!(
            "took {:.0} ms, above the suite's max_duration_ms {max}",
            report.duration_ms
        )));
    }
    for (key, bound) in &t.metrics {
        let mut any = false;
        for (name, m) in report
            .metrics
            .iter()
            .filter(|(n, _)| metric_matches(key, n))
        {
            any = true;
            let outside = match (bound.min, bound.max) {
                (Some(lo), _) if m.value < lo => Some(format!("below the suite's min {lo}")),
                (_, Some(hi)) if m.value > hi => Some(format!("above the suite's max {hi}")),
                _ => None,
            };
            if let Some(outside) = outside {
                let mut f = miss(format!(
                    "{name} = {} {}, {outside}",
                    crate::units::format_value(m.value),
                    m.unit
                ));
                f.device = m.device;
                found.push(f);
            }
        }
        if !any && !report.interrupted {
            let names: Vec<&str> = report.metrics.keys().map(String::as_str).take(20).collect();
            found.push(Finding::new(
                Severity::Warn,
                codes::THRESHOLD,
                format!(
                    "the suite sets a threshold on metric `{key}` but the report has no such metric (it has: {})",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
            ));
        }
    }
    report
        .findings
        .extend(found.into_iter().map(|f| f.hint(hint.clone())));
    let from_findings = verdict::status_from_findings(&report.findings);
    report.status = report.status.max(from_findings);
}
