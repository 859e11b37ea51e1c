//! The generic parts of a report as terminal tables: the header (title, host, devices) and the
//! closing sections (steps, metrics, a suite's scenarios, findings). A scenario's own tables go
//! between them (crate::scenarios::render_report). Every table fits 80 columns: what would
//! widen it (hints, a step's expected answers) goes below it or into a second line of a cell.

use comfy_table::Cell;

use super::style::{Style, format_value};
use crate::report::{Finding, Report, Severity, Status};

/// The title line, host line and device table every report starts with.
pub fn header(out: &mut String, report: &Report, style: Style) {
    let status = report.status.as_str().to_uppercase();
    if style.markdown {
        out.push_str("### ");
    }
    let title = format!(
        "gpu-doctor {} — {}{} in {:.0} ms",
        title_of(report),
        status,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        report.duration_ms
    );
    style.para(out, &title, 2);
    let h = &report.host;
    if style.markdown {
        out.push('\n');
    }
    let host = format!(
        "host {} · kernel {} · driver {} · CUDA {} · NVML {}",
        or_dash(&h.hostname),
        or_dash(&h.kernel),
        h.driver_version.as_deref().unwrap_or("-"),
        h.cuda_driver_version.as_deref().unwrap_or("-"),
        h.nvml_version.as_deref().unwrap_or("-"),
    );
    style.para(out, &host, 2);
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
        style.para(out, &format!("NVML: {source}{faults}"), 2);
    }
    if !report.devices.is_empty() {
        let mut t = style.table();
        t.set_header(["GPU", "name · memory · CC", "PCI bus id · UUID"]);
        for d in &report.devices {
            let mut what = format!(
                "{}\n{:.1} GiB",
                d.name,
                d.memory_total_bytes as f64 / (1u64 << 30) as f64
            );
            if let Some(cc) = &d.compute_capability {
                what.push_str(&format!(" · CC {cc}"));
            }
            t.add_row([
                d.index.to_string(),
                what,
                format!("{}\n{}", d.pci_bus_id, d.uuid),
            ]);
        }
        style.section(out, "", t);
    }
}

/// The scenario, with the suite's name for a suite, and for program mode (`inject oom --`) the
/// program it ran.
fn title_of(report: &Report) -> String {
    if report.scenario == "suite"
        && let Some(name) = report.params.get("suite").and_then(|s| s.as_str())
    {
        return format!("suite {name}");
    }
    if !report.scenario.ends_with(" --") {
        return report.scenario.clone();
    }
    let command: Vec<&str> = report
        .params
        .get("command")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(|w| w.as_str()).collect())
        .unwrap_or_default();
    if command.is_empty() {
        report.scenario.trim_end_matches(" --").to_string()
    } else {
        let words: Vec<String> = command.iter().map(|w| shell_word(w)).collect();
        format!("{} {}", report.scenario, words.join(" "))
    }
}

/// A command-line word as a shell would need it: quoted when it holds spaces or quotes.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// The sections every report ends with: steps, metrics, a suite's scenarios, findings, status.
/// `metrics_shown`: the scenario's own tables already show its metrics (they are listed with
/// --verbose only).
pub fn sections(out: &mut String, report: &Report, style: Style, metrics_shown: bool) {
    let status = report.status.as_str().to_uppercase();
    steps(out, report, style);
    if !report.metrics.is_empty() {
        if metrics_shown && !style.verbose {
            style.para(
                out,
                &format!(
                    "\nMetrics: {}, the rates above (names and values: --verbose or --json).",
                    report.metrics.len()
                ),
                0,
            );
        } else {
            metrics(out, report, style);
        }
    }
    if !report.reports.is_empty() {
        scenarios(out, report, style);
    }
    findings(out, report, style);
    out.push_str(&format!("\nstatus: {status}\n"));
}

/// Steps listed one by one up to this many; beyond, only those that did not succeed or were
/// not expected (every step: --verbose).
const STEPS_LISTED: usize = 30;

/// Each driver call a scenario made, what it expected and what it got: the step in words, then
/// the call and its answer (and the expected answers where they were not met). The thread is
/// in the title when there is one, under the time when there are several. A long run of
/// routine steps (set-up, clean-up) is counted, not listed, unless --verbose.
fn steps(out: &mut String, report: &Report, style: Style) {
    if report.steps.is_empty() {
        return;
    }
    let mut threads: Vec<u64> = report.steps.iter().map(|s| s.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    let by_thread = threads.len() > 1;
    let all = report.steps.len() <= STEPS_LISTED || style.verbose;
    let listed: Vec<(usize, &crate::report::Step)> = report
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| all || !s.ok || s.observed.code != 0)
        .collect();
    let title = match threads.as_slice() {
        [one] => format!("Steps (thread {one})"),
        _ => "Steps".to_string(),
    };
    let routine = report.steps.len() - listed.len();
    if listed.is_empty() {
        style.para(
            out,
            &format!(
                "\n{title}: {routine} driver calls, each answered as expected (every step: --verbose)."
            ),
            2,
        );
        return;
    }
    let mut t = style.table();
    t.set_header([
        "#",
        if by_thread {
            "at ms +took thread"
        } else {
            "at ms +took"
        },
        "step: call → answer",
        "expected",
    ]);
    for (i, s) in listed {
        let mut what = format!("{}\n{} → {}", s.name, s.call, s.observed);
        if !s.ok {
            let expected: Vec<&str> = s.expected.iter().map(|c| c.name.as_str()).collect();
            what.push_str(&format!("\nexpected {}", expected.join(" or ")));
        }
        let mut at = format!("{:.1}\n+{:.1}", s.at_ms, s.elapsed_ms);
        if by_thread {
            at.push_str(&format!("\ntid {}", s.thread));
        }
        t.add_row(vec![
            Cell::new(i + 1),
            Cell::new(at),
            Cell::new(what),
            style.ok_cell(s.ok),
        ]);
    }
    let title = if routine > 0 {
        format!(
            "{title}: those that did not answer CUDA_SUCCESS; {routine} more answered it as expected (every step: --verbose)"
        )
    } else {
        title
    };
    style.section(out, &title, t);
}

fn metrics(out: &mut String, report: &Report, style: Style) {
    let mut t = style.table();
    t.set_header(["metric", "value", "unit", "better", "GPU"]);
    for (name, m) in &report.metrics {
        t.add_row([
            name.clone(),
            format_value(m.value),
            display_unit(&m.unit).to_string(),
            format!("{:?}", m.better).to_lowercase(),
            m.device.map(|d| d.to_string()).unwrap_or_default(),
        ]);
    }
    style.section(out, "Metrics", t);
}

/// A suite's (or `inject all`'s) scenarios, one row each; consecutive rows that read the same
/// are one row (`3–7`) unless --verbose. When none could run, the reasons, grouped.
fn scenarios(out: &mut String, report: &Report, style: Style) {
    if report.status == Status::Skipped && !report.interrupted {
        nothing_ran(out, report, style);
        return;
    }
    let mut t = style.table();
    let notes = report.reports.iter().any(|r| !scenario_note(r).is_empty());
    let mut header = vec!["#", "scenario", "status", "ms", "findings"];
    if notes {
        header.push("note");
    }
    t.set_header(header);
    let rows: Vec<(String, Status, String, String, f64)> = report
        .reports
        .iter()
        .map(|r| {
            (
                r.scenario.clone(),
                r.status,
                finding_counts(r),
                scenario_note(r),
                r.duration_ms,
            )
        })
        .collect();
    let mut i = 0;
    while i < rows.len() {
        let same = |j: usize| {
            let (a, b) = (&rows[i], &rows[j]);
            (&a.0, a.1, &a.2, &a.3) == (&b.0, b.1, &b.2, &b.3)
        };
        let mut end = i;
        while !style.verbose && end + 1 < rows.len() && same(end + 1) {
            end += 1;
        }
        let (scenario, status, counts, note, _) = &rows[i];
        let (number, ms) = if end == i {
            ((i + 1).to_string(), format!("{:.0}", rows[i].4))
        } else {
            let total: f64 = rows[i..=end].iter().map(|r| r.4).sum();
            (format!("{}–{}", i + 1, end + 1), format!("{total:.0}"))
        };
        let mut row = vec![
            Cell::new(number),
            Cell::new(scenario),
            style.status_cell(*status),
            Cell::new(ms),
            Cell::new(counts),
        ];
        if notes {
            row.push(Cell::new(note));
        }
        t.add_row(row);
        i = end + 1;
    }
    style.section(out, "Scenarios", t);
}

/// Every scenario skipped: which could not run, and why, in a few lines.
fn nothing_ran(out: &mut String, report: &Report, style: Style) {
    let mut reasons: Vec<(String, Vec<&str>)> = Vec::new();
    for r in &report.reports {
        let reason = r
            .data
            .get("skipped_reason")
            .and_then(|v| v.as_str())
            .unwrap_or("not run");
        // The reason's first clause ("no CUDA driver: …" → "no CUDA driver") groups them; the
        // whole reason is on stderr and in the report.
        let short = reason.split([':', ';']).next().unwrap_or(reason).trim();
        match reasons.iter_mut().find(|(s, _)| s == short) {
            Some((_, names)) => names.push(&r.scenario),
            None => reasons.push((short.to_string(), vec![&r.scenario])),
        }
    }
    out.push_str(&format!(
        "\nNone of the {} scenarios could run here:\n",
        report.reports.len()
    ));
    for (reason, names) in reasons {
        style.para(out, &format!("  {reason}: {}", names.join(", ")), 4);
    }
}

/// Findings of the report and of its scenarios: severity, code (with the scenario and GPU it
/// concerns) and message in the table; what to do below it, once per distinct hint.
fn findings(out: &mut String, report: &Report, style: Style) {
    let nested: Vec<(&str, &Finding)> = report
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
        return;
    }
    let mut t = style.table();
    t.set_header(["sev", "code\nwhere", "finding"]);
    let mut hints: Vec<(&str, &str)> = Vec::new();
    for (scenario, f) in &nested {
        let mut place: Vec<String> = Vec::new();
        if !scenario.is_empty() {
            place.push(scenario.to_string());
        }
        if let Some(d) = f.device {
            // A no-break space: "GPU 0" is one thing, never split over two lines.
            place.push(format!("GPU\u{a0}{d}"));
        }
        let code = if place.is_empty() {
            f.code.clone()
        } else {
            format!("{}\n{}", f.code, place.join(" · "))
        };
        t.add_row(vec![
            style.severity_cell(f.severity),
            Cell::new(code),
            Cell::new(&f.message),
        ]);
        if let Some(h) = f.hint.as_deref().filter(|h| !h.is_empty())
            && !hints.contains(&(f.code.as_str(), h))
        {
            hints.push((f.code.as_str(), h));
        }
    }
    style.section(out, "Findings", t);
    if hints.is_empty() {
        return;
    }
    if style.markdown {
        out.push_str("\n**What to do**\n\n");
        for (code, hint) in hints {
            out.push_str(&format!("- `{code}`: {hint}\n"));
        }
    } else {
        out.push_str("What to do:\n");
        for (code, hint) in hints {
            style.para(out, &format!("  {code}: {hint}"), 4);
        }
    }
}

/// A unit as people write it: reports store microseconds as "us" (ASCII, stable for tools).
pub fn display_unit(unit: &str) -> &str {
    match unit {
        "us" => "µs",
        other => other,
    }
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

/// Why a scenario was skipped, or that it was interrupted; its findings are listed below the
/// table with the scenario named.
fn scenario_note(r: &Report) -> String {
    if let Some(reason) = r.data.get("skipped_reason").and_then(|v| v.as_str()) {
        return reason.lines().next().unwrap_or("").to_string();
    }
    if r.interrupted {
        "interrupted".into()
    } else {
        String::new()
    }
}
