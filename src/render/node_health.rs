//! `health`: the node's checks as one table, one row per GPU, and the one line a scheduler
//! reads (node-problem-detector's condition message, Slurm's drain reason).

use comfy_table::Cell;

use crate::analyze::node_health::worst;
use crate::facts::gpu_check::GpuCheckRun;
use crate::render::style::Style;
use crate::render::text::{cut, short_model};
use crate::report::{Finding, Report, Severity};

/// Longest line node-problem-detector keeps (`max_output_length` in its example config).
pub const LINE_MAX: usize = 80;

/// What the checks did, as rows: check | result.
pub fn summary(out: &mut String, rows: &[(&str, String)], style: Style) {
    let mut t = style.table();
    t.set_header(["check", "result"]);
    for (k, v) in rows {
        // Whole in the findings below and in --json: one line each here.
        t.add_row([k.to_string(), cut(v, 60)]);
    }
    style.section(out, "Health", t);
}

/// One row per GPU: its NVML state, the quick check and its time, its worst finding's code.
pub fn gpus(
    out: &mut String,
    devices: &[(u32, String)],
    check: Option<&GpuCheckRun>,
    findings: &[Finding],
    style: Style,
) {
    if devices.is_empty() {
        return;
    }
    let mut t = style.table();
    t.set_header(["GPU", "model", "quick check", "ms", "worst finding"]);
    for (i, name) in devices {
        let mine: Vec<Finding> = findings
            .iter()
            .filter(|f| f.device == Some(*i))
            .cloned()
            .collect();
        let (check_cell, ms) = match check {
            None => ("-".to_string(), "-".to_string()),
            Some(run) if run.unavailable.is_some() => ("not run".into(), "-".into()),
            Some(run) => match run.gpus.iter().find(|g| g.index == *i) {
                None => ("-".into(), "-".into()),
                Some(g) if g.busy.is_some() => ("busy: left alone".into(), "-".into()),
                Some(g) if g.unavailable.is_some() => ("not run".into(), "-".into()),
                Some(g) if g.timed_out => ("TIMEOUT".into(), format!("{:.0}", g.elapsed_ms)),
                Some(g) if !g.passed() => ("FAILED".into(), format!("{:.0}", g.elapsed_ms)),
                Some(g) => ("ok".into(), format!("{:.0}", g.elapsed_ms)),
            },
        };
        let w = worst(&mine);
        let worst_cell = match w {
            Some(f) => style.severity_colored(f.severity, &f.code),
            None => Cell::new("-"),
        };
        t.add_row(vec![
            Cell::new(i),
            Cell::new(short_model(name)),
            Cell::new(check_cell),
            Cell::new(ms),
            worst_cell,
        ]);
    }
    style.section(out, "GPUs", t);
}

/// The one line that speaks for the node: the worst finding as `CODE gpuN: why` (and how many
/// more problems there are), or `OK: …`; at most [`LINE_MAX`] ASCII characters.
pub fn one_line(report: &Report) -> String {
    let problems = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .count();
    let line = match worst(&report.findings) {
        Some(f) if f.severity == Severity::Fail => {
            let more = if problems > 1 {
                format!(" (+{} more)", problems - 1)
            } else {
                String::new()
            };
            format!("{}{more}: {}", code_and_gpu(f), short_reason(f))
        }
        Some(f) => {
            let warnings = report
                .findings
                .iter()
                .filter(|x| x.severity == Severity::Warn)
                .count();
            format!(
                "OK: {}, {warnings} warning(s): {}: {}",
                gpus_phrase(report),
                code_and_gpu(f),
                short_reason(f)
            )
        }
        None => format!("OK: {} healthy", gpus_phrase(report)),
    };
    fit(&line, LINE_MAX)
}

/// The line for a run that could not happen: `UNKNOWN: why`.
pub fn unknown_line(why: &str) -> String {
    fit(&format!("UNKNOWN: {why}"), LINE_MAX)
}

fn gpus_phrase(report: &Report) -> String {
    match report.devices.len() {
        0 => "no GPU checked".into(),
        1 => "1 GPU".into(),
        n => format!("{n} GPUs"),
    }
}

fn code_and_gpu(f: &Finding) -> String {
    match f.device {
        Some(i) => format!("{} gpu{i}", f.code),
        None => f.code.clone(),
    }
}

/// The finding's message without the "GPU N" it starts with (the line names the GPU already),
/// or a shorter wording where the message is long and the action is one.
fn short_reason(f: &Finding) -> String {
    if f.code == crate::report::codes::GPU_LOST {
        return "fallen off the bus (XID 79): drain, reboot".into();
    }
    let mut m = f.message.as_str();
    if let Some(i) = f.device {
        for prefix in [format!("GPU {i}: "), format!("GPU {i} ")] {
            if let Some(rest) = m.strip_prefix(&prefix) {
                m = rest;
                break;
            }
        }
        // "GPU 0 (00000000:18:00.0) PCIe link is x8": the bus id is in the report.
        if m.starts_with('(')
            && let Some(end) = m.find(") ")
        {
            m = &m[end + 2..];
        }
    }
    m.to_string()
}

/// ASCII only (a condition message and a Slurm reason travel through tools that count bytes),
/// one line, at most `max` characters, "..." where it was cut.
pub fn fit(text: &str, max: usize) -> String {
    let ascii: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '→' => '>',
            '×' => 'x',
            '≥' => '>',
            '≤' => '<',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect();
    if ascii.len() <= max {
        return ascii;
    }
    let mut cut = ascii[..max - 3].to_string();
    if let Some(space) = cut.rfind(' ').filter(|&i| i > max / 2) {
        cut.truncate(space);
    }
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::codes;

    fn report(findings: Vec<Finding>, gpus: u32) -> Report {
        let mut r = Report::begin("health", serde_json::json!({}));
        r.devices = (0..gpus)
            .map(|index| crate::report::DeviceInfo {
                index,
                ..Default::default()
            })
            .collect();
        r.findings = findings;
        r
    }

    #[test]
    fn the_line_names_the_worst_finding_and_fits_in_80_ascii_characters() {
        let lost = crate::analyze::health::lost_finding(
            1,
            "NVML_ERROR_GPU_IS_LOST: the GPU has fallen off the bus",
        );
        let width = Finding::new(
            Severity::Fail,
            codes::PCIE_WIDTH_DEGRADED,
            "GPU 0 (00000000:18:00.0) PCIe link is x8, the link supports x16",
        )
        .device(0);
        let line = one_line(&report(vec![width.clone(), lost], 2));
        assert_eq!(
            line,
            "GPU_LOST gpu1 (+1 more): fallen off the bus (XID 79): drain, reboot"
        );
        assert_eq!(
            one_line(&report(vec![width], 2)),
            "PCIE_WIDTH_DEGRADED gpu0: PCIe link is x8, the link supports x16"
        );
        let long = Finding::new(
            Severity::Fail,
            codes::NVLINK_INACTIVE,
            format!(
                "GPU 3 has NVLink(s) {} inactive while 1 other link(s) are active → °C",
                (0..17)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .device(3);
        let line = one_line(&report(vec![long], 8));
        assert!(
            line.len() <= LINE_MAX && line.is_ascii() && line.ends_with("..."),
            "{line}"
        );
        assert!(
            line.starts_with("NVLINK_INACTIVE gpu3: has NVLink(s) 0, 1"),
            "{line}"
        );
    }

    #[test]
    fn healthy_and_warning_lines_start_with_ok() {
        assert_eq!(one_line(&report(vec![], 8)), "OK: 8 GPUs healthy");
        let info = Finding::new(Severity::Info, codes::PERSISTENCE_OFF, "x").device(0);
        assert_eq!(one_line(&report(vec![info], 1)), "OK: 1 GPU healthy");
        let warn = Finding::new(
            Severity::Warn,
            codes::GPU_CHECK_UNAVAILABLE,
            "the quick GPU check could not run: no CUDA driver",
        );
        assert_eq!(
            one_line(&report(vec![warn], 2)),
            "OK: 2 GPUs, 1 warning(s): GPU_CHECK_UNAVAILABLE: the quick GPU check could..."
        );
        assert_eq!(
            unknown_line("no NVIDIA driver"),
            "UNKNOWN: no NVIDIA driver"
        );
    }
}
