//! A report as terminal tables (comfy-table). Generic sections for every report, plus the
//! scenario-specific ones registered in [`super::sections`].

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};

use crate::report::{Report, Severity, Status};

/// Styling choices for one rendering.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
    }

    pub fn status_cell(&self, s: Status) -> Cell {
        let c = Cell::new(s.as_str().to_uppercase());
        if !self.color {
            return c;
        }
        c.fg(match s {
            Status::Pass => Color::Green,
            Status::Warn => Color::Yellow,
            Status::Fail | Status::Error => Color::Red,
            Status::Skipped => Color::Grey,
        })
    }

    pub fn severity_cell(&self, s: Severity) -> Cell {
        let c = Cell::new(s.as_str());
        if !self.color {
            return c;
        }
        c.fg(match s {
            Severity::Info => Color::Cyan,
            Severity::Warn => Color::Yellow,
            Severity::Fail => Color::Red,
        })
    }

    pub fn ok_cell(&self, ok: bool) -> Cell {
        let c = Cell::new(if ok { "ok" } else { "MISMATCH" });
        if !self.color {
            return c;
        }
        c.fg(if ok { Color::Green } else { Color::Red })
    }
}

/// The whole report as text.
pub fn render(report: &Report, color: bool) -> String {
    let style = Style { color };
    let mut out = String::new();
    render_into(&mut out, report, style);
    out
}

fn render_into(out: &mut String, report: &Report, style: Style) {
    let status = report.status.as_str().to_uppercase();
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
    out.push_str(&format!(
        "host {} · kernel {} · driver {} · CUDA {} · NVML {}\n",
        h.hostname,
        h.kernel,
        h.driver_version.as_deref().unwrap_or("-"),
        h.cuda_driver_version.as_deref().unwrap_or("-"),
        h.nvml_version.as_deref().unwrap_or("-"),
    ));
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
        out.push_str(&format!("\n{t}\n"));
    }
    super::sections::render_scenario(out, report, style);
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
        out.push_str(&format!("\nSteps\n{t}\n"));
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
        out.push_str(&format!("\nMetrics\n{t}\n"));
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
        out.push_str(&format!("\nScenarios\n{t}\n"));
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
        out.push_str(&format!("\nFindings\n{t}\n"));
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

/// Large numbers with thousands separators, small ones with up to 3 decimals.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = format!("{}", v as i64);
        let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_readable() {
        assert_eq!(format_value(84_362_000_000.0), "84,362,000,000");
        assert_eq!(format_value(-1200.0), "-1,200");
        assert_eq!(format_value(0.99992), "1.000");
        assert_eq!(format_value(54.31), "54.310");
    }
}
