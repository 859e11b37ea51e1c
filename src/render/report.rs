//! The generic parts of a report as terminal tables: the header (title, host, devices) and the
//! closing sections (steps, metrics, a suite's scenarios, findings). A scenario's own tables go
//! between them (crate::scenarios::render_report).

use comfy_table::Cell;

use super::style::{Style, format_value};
use crate::report::{Report, Severity};

/// The title line, host line and device table every report starts with.
pub fn header(out: &mut String, report: &Report, style: Style) {
    let status = report.status.as_str().to_uppercase();
    if style.markdown {
        out.push_str("### ");
    }
    out.push_str(&format!(
        "gpu-doctor {} — {}{} in {:.0} ms\n",
        report.scenario,
        status,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        report.duration_ms
    ));
    let h = &report.host;
    if style.markdown {
        out.push('\n');
    }
    out.push_str(&format!(
        "host {} · kernel {} · driver {} · CUDA {} · NVML {}\n",
        h.hostname,
        h.kernel,
        h.driver_version.as_deref().unwrap_or("-"),
        h.cuda_driver_version.as_deref().unwrap_or("-"),
        h.nvml_version.as_deref().unwrap_or("-"),
    ));
    if let Some(n) = &report.nvml {
        let source = match (&n.snapshot, &n.recorded) {
            (Some(s), Some(r)) => format!("replay of {s} ({r})"),
            (Some(s), None) => format!("replay of {s}"),
            _ => "the driver".into(),
        };
        let faults = if n.faults.is_empty() {
            String::new()
        } else {
            format!(" · faults: {}", n.faults.join(", "))
        };
        out.push_str(&format!("NVML: {source}{faults}\n"));
    }
    if !report.devices.is_empty() {
        let mut t = style.table();
        t.set_header(["GPU", "name", "UUID", "PCI bus id", "memory", "CC"]);
        for d in &report.devices {
            t.add_row([
                d.index.to_string(),
                d.name.clone(),
                d.uuid.clone(),
                d.pci_bus_id.clone(),
                format!(
                    "{:.1} GiB",
                    d.memory_total_bytes as f64 / (1u64 << 30) as f64
                ),
                d.compute_capability.clone().unwrap_or_default(),
            ]);
        }
        style.section(out, "", t);
    }
}

/// The sections every report ends with: steps, metrics, a suite's scenarios, findings, status.
pub fn sections(out: &mut String, report: &Report, style: Style) {
    let status = report.status.as_str().to_uppercase();
    if !report.steps.is_empty() {
        let mut t = style.table();
        t.set_header([
            "#", "at ms", "thread", "step", "call", "expected", "observed", "ms", "",
        ]);
        for (i, s) in report.steps.iter().enumerate() {
            let expected: Vec<&str> = s.expected.iter().map(|c| c.name.as_str()).collect();
            t.add_row(vec![
                Cell::new(i + 1),
                Cell::new(format!("{:.1}", s.at_ms)),
                Cell::new(s.thread),
                Cell::new(&s.name),
                Cell::new(&s.call),
                Cell::new(expected.join(" | ")),
                Cell::new(s.observed.to_string()),
                Cell::new(format!("{:.3}", s.elapsed_ms)),
                style.ok_cell(s.ok),
            ]);
        }
        style.section(out, "Steps", t);
    }
    if !report.metrics.is_empty() {
        let mut t = style.table();
        t.set_header(["metric", "value", "unit", "better", "GPU"]);
        for (name, m) in &report.metrics {
            t.add_row([
                name.clone(),
                format_value(m.value),
                m.unit.clone(),
                format!("{:?}", m.better).to_lowercase(),
                m.device.map(|d| d.to_string()).unwrap_or_default(),
            ]);
        }
        style.section(out, "Metrics", t);
    }
    if !report.reports.is_empty() {
        let mut t = style.table();
        t.set_header(["#", "scenario", "status", "ms", "findings", "note"]);
        for (i, r) in report.reports.iter().enumerate() {
            t.add_row(vec![
                Cell::new(i + 1),
                Cell::new(&r.scenario),
                style.status_cell(r.status),
                Cell::new(format!("{:.0}", r.duration_ms)),
                Cell::new(finding_counts(r)),
                Cell::new(scenario_note(r)),
            ]);
        }
        style.section(out, "Scenarios", t);
    }
    // A combined report keeps findings in its scenarios' reports: list them all here, with
    // the scenario they belong to.
    let nested: Vec<(&str, &crate::report::Finding)> = report
        .findings
        .iter()
        .map(|f| ("", f))
        .chain(
            report
                .reports
                .iter()
                .flat_map(|r| r.findings.iter().map(move |f| (r.scenario.as_str(), f))),
        )
        .collect();
    if nested.is_empty() {
        out.push_str("\nNo findings.\n");
    } else {
        let with_scenario = !report.reports.is_empty();
        let mut t = style.table();
        if with_scenario {
            t.set_header([
                "scenario",
                "severity",
                "code",
                "GPU",
                "finding",
                "what to do",
            ]);
        } else {
            t.set_header(["severity", "code", "GPU", "finding", "what to do"]);
        }
        for (scenario, f) in nested {
            let mut row = Vec::new();
            if with_scenario {
                row.push(Cell::new(scenario));
            }
            row.extend([
                style.severity_cell(f.severity),
                Cell::new(&f.code),
                Cell::new(f.device.map(|d| d.to_string()).unwrap_or_default()),
                Cell::new(&f.message),
                Cell::new(f.hint.as_deref().unwrap_or("")),
            ]);
            t.add_row(row);
        }
        style.section(out, "Findings", t);
    }
    out.push_str(&format!("\nstatus: {status}\n"));
}

/// "1 fail, 2 warn" (or "-") for a scenario row.
fn finding_counts(r: &Report) -> String {
    let mut parts = Vec::new();
    for sev in [Severity::Fail, Severity::Warn, Severity::Info] {
        let n = r.findings.iter().filter(|f| f.severity == sev).count();
        if n > 0 {
            parts.push(format!("{n} {}", sev.as_str()));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Why a scenario was skipped, or its worst finding, in a few words.
fn scenario_note(r: &Report) -> String {
    if let Some(reason) = r.data.get("skipped_reason").and_then(|v| v.as_str()) {
        return truncate(reason, 90);
    }
    let worst = r
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .max_by_key(|f| f.severity);
    match worst {
        Some(f) => truncate(&format!("{}: {}", f.code, f.message), 90),
        None if r.interrupted => "interrupted".into(),
        None => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.lines().next().unwrap_or("");
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
