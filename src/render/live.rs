//! `watch` as text: the live table (one row per GPU within 80 columns, a detail line for a GPU
//! with something to say), its log lines, the JSON lines of `--json`, and the report's tables.

use serde::Serialize;

use crate::analyze::live::{Change, Condition};
use crate::analyze::xid;
use crate::facts::live::{LiveEvent, LiveEventKind, LiveGpu, WatchFacts};
use crate::render::style::Style;
use crate::render::text::cut;

/// Width the live view is laid out for.
pub const WIDTH: usize = 80;

/// "12:03:04.123" (UTC) of a Unix time in milliseconds.
pub fn clock(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    let s = humantime::format_rfc3339_millis(t).to_string();
    s.get(11..23).unwrap_or(&s).to_string()
}

/// The column header of the live table and of the lines mode.
pub fn header() -> String {
    format!(
        "{:>3} {:>4} {:>10} {:>4} {:>9} {:>9} {:>5} {:>5} {:>6} {:>4} {}",
        "GPU",
        "UTIL",
        "MEMORY",
        "TEMP",
        "POWER",
        "SM/MEM",
        "PCIE",
        "RPL/s",
        "NVLINK",
        "PROC",
        "STATE"
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// "70.1/141G": used with a decimal, total rounded.
fn memory(r: &LiveGpu) -> String {
    match (r.health.memory_used_bytes, r.health.memory_total_bytes) {
        (Some(u), Some(t)) => format!("{:.1}/{:.0}G", gib(u), gib(t)),
        _ => "-".into(),
    }
}

/// One row of the live table. `replays_per_s`: the PCIe replay rate since the previous
/// reading; `held`: conditions of this GPU holding now.
pub fn gpu_row(r: &LiveGpu, replays_per_s: Option<f64>, held: &[&Condition]) -> String {
    let i = r.index;
    if let Some(why) = &r.no_answer {
        return cut(&format!("{i:>3} {:<63}NO ANSWER", cut(why, 62)), WIDTH);
    }
    if r.health.lost.is_some() {
        return format!("{i:>3} {:<63}LOST", "fallen off the bus (GPU_IS_LOST)");
    }
    let h = &r.health;
    let power = match (h.power_draw_w, h.power_limit_w) {
        (Some(d), Some(l)) => format!("{d:.0}/{l:.0}W"),
        (Some(d), None) => format!("{d:.0}W"),
        _ => "-".into(),
    };
    let clocks = format!(
        "{}/{}",
        opt(h.sm_clock_mhz, |v| v.to_string()),
        opt(h.memory_clock_mhz, |v| v.to_string())
    );
    let p = &r.topo.pcie;
    let pcie = match (p.current_gen, p.current_width) {
        (Some(g), Some(w)) => format!("G{g}x{w}"),
        _ => "-".into(),
    };
    let active = r.topo.nvlinks.iter().filter(|l| l.active).count();
    let nvlink = if r.topo.nvlinks.is_empty() {
        "-".to_string()
    } else {
        format!("{active}/{}", r.topo.nvlinks.len())
    };
    let state = state(held);
    format!(
        "{i:>3} {:>4} {:>10} {:>4} {:>9} {:>9} {:>5} {:>5} {:>6} {:>4} {state}",
        opt(r.utilization_gpu_pct, |v| format!("{v}%")),
        memory(r),
        opt(h.temperature_c, |v| format!("{v}C")),
        power,
        clocks,
        pcie,
        opt(replays_per_s, |v| if v == 0.0 {
            "0".into()
        } else {
            format!("{v:.1}")
        }),
        nvlink,
        h.processes.len(),
    )
}

/// "ok", or how many conditions hold and the worst severity ("2 fail").
fn state(held: &[&Condition]) -> String {
    match held.iter().map(|c| c.severity).max() {
        None => "ok".into(),
        Some(s) => format!("{} {}", held.len(), s.as_str()),
    }
}

/// What a GPU's row cannot show, as items for its detail line: links down, link errors,
/// clock-event reasons, ECC, remapping, recovery action, processes. Empty for a GPU with
/// nothing to say.
pub fn gpu_details(r: &LiveGpu) -> Vec<String> {
    if !r.answered() {
        return Vec::new();
    }
    let h = &r.health;
    let mut out = Vec::new();
    let down: Vec<String> = r
        .topo
        .nvlinks
        .iter()
        .filter(|l| !l.active)
        .map(|l| l.link.to_string())
        .collect();
    if !down.is_empty() && down.len() < r.topo.nvlinks.len() {
        out.push(format!("NVLink {} down", down.join(",")));
    }
    let p = &r.topo.pcie;
    if let (Some(c), Some(m)) = (p.current_width, p.max_width)
        && c < m
    {
        out.push(format!("PCIe x{c} of x{m}"));
    }
    // Counters since the driver loaded: a healthy H200's links show hundreds of replays each,
    // so one summary item; each link's counts are in the JSON.
    let errs: Vec<(u32, u64)> = r
        .nvlink_errors
        .iter()
        .map(|e| (e.link, e.total()))
        .filter(|&(_, n)| n > 0)
        .collect();
    if let Some(&(link, most)) = errs.iter().max_by_key(|&&(l, n)| (n, std::cmp::Reverse(l))) {
        let all: u64 = errs.iter().map(|&(_, n)| n).sum();
        out.push(if errs.len() == 1 {
            format!("NVLink errors: link {link} ({most})")
        } else {
            format!(
                "NVLink errors: {all} on {} links (most: link {link}, {most})",
                errs.len()
            )
        });
    }
    let reasons: Vec<&str> = h
        .clock_event_reasons
        .iter()
        .map(String::as_str)
        .filter(|r| *r != "GPU_IDLE")
        .collect();
    if !reasons.is_empty() {
        out.push(format!("clocks: {}", reasons.join(",")));
    }
    if let Some(n) = h.ecc_volatile_uncorrected.filter(|&n| n > 0) {
        out.push(format!("ECC uncorrected {n}"));
    }
    if h.remap_pending == Some(true) {
        out.push("row remap pending".into());
    }
    if h.remap_failed == Some(true) {
        out.push("row remap FAILED".into());
    }
    if h.retired_pages_pending == Some(true) {
        out.push("pages pending retirement".into());
    }
    if let Some(a) = h.recovery_action.as_deref().filter(|a| *a != "none") {
        out.push(format!("recovery: {a}"));
    }
    if !h.processes.is_empty() {
        let pids: Vec<String> = h
            .processes
            .iter()
            .take(4)
            .map(|p| p.pid.to_string())
            .collect();
        let more = if h.processes.len() > 4 { ",…" } else { "" };
        out.push(format!("pid {}{more}", pids.join(",")));
    }
    out
}

/// Detail items as lines of at most [`WIDTH`] columns, indented under the row.
pub fn detail_lines(gpu: u32, items: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = format!("    GPU {gpu}:");
    for item in items {
        let sep = if line.ends_with(':') { " " } else { "; " };
        if line.chars().count() + sep.len() + item.chars().count() > WIDTH && !line.ends_with(':') {
            lines.push(cut(&line, WIDTH));
            line = format!("      {item}");
        } else {
            line.push_str(sep);
            line.push_str(item);
        }
    }
    lines.push(cut(&line, WIDTH));
    lines
}

/// One log line for an event: time, GPU, what, and for an XID its meaning and NVIDIA's action.
pub fn event_line(e: &LiveEvent) -> String {
    let pids = if e.processes.is_empty() {
        String::new()
    } else {
        let p: Vec<String> = e.processes.iter().map(|p| p.pid.to_string()).collect();
        format!(" [pid {}]", p.join(","))
    };
    let what = match &e.kind {
        LiveEventKind::Xid { xid: Some(x) } => {
            let info = xid::lookup(*x);
            // The action first: a line cut or wrapped to the width keeps what to do.
            format!("XID {x} -> {}: {}", info.action.as_str(), info.meaning)
        }
        LiveEventKind::Xid { xid: None } => "an XID NVML could not name".into(),
        LiveEventKind::DoubleBitEcc => "double-bit ECC error".into(),
        LiveEventKind::SingleBitEcc => "single-bit ECC error".into(),
        LiveEventKind::GpuLost => "event wait: GPU_IS_LOST".into(),
        LiveEventKind::WatchFailed { why } => format!("events no longer watched: {why}"),
    };
    format!("{} GPU {} {what}{pids}", clock(e.unix_ms), e.gpu)
}

/// One log line for a condition that starts (`+`) or ends (`-`), at `unix_ms`.
pub fn change_line(c: &Change, unix_ms: u64) -> String {
    let (sign, c) = match c {
        Change::Started(c) => ("+", c),
        Change::Ended(c) => ("-", c),
    };
    let gpu = c.gpu.map(|g| format!("GPU {g} ")).unwrap_or_default();
    format!(
        "{} {gpu}{sign}{} ({}): {}",
        clock(unix_ms),
        c.code,
        c.severity.as_str(),
        c.message
    )
}

/// The live view, drawn whole each interval.
pub struct Frame<'a> {
    pub title: String,
    pub rows: Vec<(&'a LiveGpu, Option<f64>, Vec<&'a Condition>)>,
    /// Newest last.
    pub log: &'a [String],
    /// Log lines shown.
    pub log_lines: usize,
}

impl Frame<'_> {
    /// The lines of the frame, each at most `width` columns.
    pub fn lines(&self, width: usize) -> Vec<String> {
        let mut out = vec![cut(&self.title, width), header()];
        for (r, rate, held) in &self.rows {
            out.push(gpu_row(r, *rate, held));
            let items = gpu_details(r);
            if !items.is_empty() {
                out.extend(detail_lines(r.index, &items));
            }
        }
        out.push(String::new());
        let skip = self.log.len().saturating_sub(self.log_lines);
        if self.log.is_empty() {
            out.push("(no events yet: XIDs, ECC events and conditions appear here)".into());
        }
        out.extend(self.log[skip..].iter().cloned());
        out.into_iter().map(|l| cut(&l, width)).collect()
    }

    /// The frame as terminal output that replaces the previous one (`previous` lines long):
    /// cursor up to its first line, clear to the end of the screen, draw.
    pub fn redraw(&self, previous: usize, width: usize) -> (String, usize) {
        let lines = self.lines(width);
        let mut s = String::new();
        if previous > 0 {
            s.push_str(&format!("\x1b[{previous}F"));
        }
        s.push_str("\x1b[J");
        for l in &lines {
            s.push_str(l);
            s.push('\n');
        }
        (s, lines.len())
    }
}

/// `--json`: what each line carries. One JSON object per line, `ev` saying which.
#[derive(Debug, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum JsonLine<'a> {
    /// First line: the machine and the interval.
    Start {
        t: String,
        hostname: &'a str,
        interval_ms: f64,
        gpus: Vec<u32>,
    },
    /// Every interval: one reading per GPU.
    Interval {
        t: String,
        at_ms: f64,
        gpus: Vec<GpuLine<'a>>,
    },
    /// An NVML event (XID, ECC, lost, a watch that failed).
    Event {
        t: String,
        #[serde(flatten)]
        event: &'a LiveEvent,
        /// For an XID: the catalog's meaning and action.
        #[serde(skip_serializing_if = "Option::is_none")]
        meaning: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        what_to_do: Option<&'static str>,
    },
    /// A condition starts or ends.
    Condition {
        t: String,
        state: &'static str,
        #[serde(flatten)]
        condition: &'a Condition,
    },
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    )
    .to_string()
}

impl<'a> JsonLine<'a> {
    pub fn event(e: &'a LiveEvent) -> JsonLine<'a> {
        let info = match e.kind {
            LiveEventKind::Xid { xid: Some(x) } => Some(xid::lookup(x)),
            _ => None,
        };
        JsonLine::Event {
            t: rfc3339(e.unix_ms),
            event: e,
            meaning: info.map(|i| i.meaning),
            action: info.map(|i| i.action.as_str()),
            what_to_do: info.map(|i| i.what_to_do),
        }
    }

    pub fn change(c: &'a Change, unix_ms: u64) -> JsonLine<'a> {
        let (state, condition) = match c {
            Change::Started(c) => ("start", c),
            Change::Ended(c) => ("end", c),
        };
        JsonLine::Condition {
            t: rfc3339(unix_ms),
            state,
            condition,
        }
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("JSON lines serialise") + "\n"
    }
}

/// One GPU in an `interval` line: the readings, flat.
#[derive(Debug, Serialize)]
pub struct GpuLine<'a> {
    pub gpu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_answer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<&'a str>,
    pub utilization_pct: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub memory_clock_mhz: Option<u32>,
    pub clock_event_reasons: &'a [String],
    pub pcie_gen: Option<u32>,
    pub pcie_width: Option<u32>,
    pub pcie_max_width: Option<u32>,
    pub pcie_replays: Option<u64>,
    pub pcie_replays_per_s: Option<f64>,
    pub nvlinks_active: usize,
    pub nvlinks_down: Vec<u32>,
    pub nvlink_errors: u64,
    pub ecc_volatile_uncorrected: Option<u64>,
    pub remap_pending: Option<bool>,
    pub recovery_action: Option<&'a str>,
    pub pids: Vec<u32>,
    pub read_ms: f64,
}

impl<'a> GpuLine<'a> {
    pub fn of(r: &'a LiveGpu, replays_per_s: Option<f64>) -> GpuLine<'a> {
        let h = &r.health;
        let p = &r.topo.pcie;
        GpuLine {
            gpu: r.index,
            no_answer: r.no_answer.as_deref(),
            lost: h.lost.as_deref(),
            utilization_pct: r.utilization_gpu_pct,
            memory_used_bytes: h.memory_used_bytes,
            memory_total_bytes: h.memory_total_bytes,
            temperature_c: h.temperature_c,
            power_w: h.power_draw_w,
            power_limit_w: h.power_limit_w,
            sm_clock_mhz: h.sm_clock_mhz,
            memory_clock_mhz: h.memory_clock_mhz,
            clock_event_reasons: &h.clock_event_reasons,
            pcie_gen: p.current_gen,
            pcie_width: p.current_width,
            pcie_max_width: p.max_width,
            pcie_replays: p.replay_counter,
            pcie_replays_per_s: replays_per_s,
            nvlinks_active: r.topo.nvlinks.iter().filter(|l| l.active).count(),
            nvlinks_down: if r.topo.nvlinks.iter().any(|l| l.active) {
                r.topo
                    .nvlinks
                    .iter()
                    .filter(|l| !l.active)
                    .map(|l| l.link)
                    .collect()
            } else {
                Vec::new()
            },
            nvlink_errors: r.nvlink_error_total(),
            ecc_volatile_uncorrected: h.ecc_volatile_uncorrected,
            remap_pending: h.remap_pending,
            recovery_action: h.recovery_action.as_deref(),
            pids: h.processes.iter().map(|p| p.pid).collect(),
            read_ms: r.read_ms,
        }
    }
}

/// The watch report's own tables: each GPU's last reading and extremes, the conditions, the
/// events.
pub fn report(out: &mut String, facts: &WatchFacts, conditions: &[Condition], style: Style) {
    let mut t = style.table();
    t.set_header([
        "GPU",
        "last",
        "max temp",
        "max power",
        "max util",
        "PCIe replays",
    ]);
    for s in &facts.stats {
        let last = facts.last.iter().find(|l| l.index == s.gpu);
        let last = match last {
            Some(l) if l.no_answer.is_some() => "no answer".to_string(),
            Some(l) if l.health.lost.is_some() => "lost".to_string(),
            Some(l) => format!(
                "{} {}",
                memory(l),
                opt(l.health.temperature_c, |v| format!("{v}C"))
            ),
            None => "-".into(),
        };
        let replays = match (s.pcie_replays_first, s.pcie_replays_last) {
            (Some(a), Some(b)) => format!("{b} (+{})", b.saturating_sub(a)),
            _ => "-".into(),
        };
        t.add_row([
            s.gpu.to_string(),
            last,
            opt(s.temperature_max_c, |v| format!("{v} C")),
            opt(s.power_max_w, |v| format!("{v:.0} W")),
            opt(s.utilization_max_pct, |v| format!("{v}%")),
            replays,
        ]);
    }
    let secs = facts.elapsed_ms / 1e3;
    style.section(
        out,
        &format!(
            "Watched {secs:.1} s, {} interval(s) of {:.0} ms, ended by {}",
            facts.intervals, facts.interval_ms, facts.ended_by
        ),
        t,
    );

    if !conditions.is_empty() {
        let mut t = style.table();
        t.set_header(["GPU", "condition", "sev", "from", "to"]);
        for c in conditions {
            t.add_row([
                c.gpu.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
                c.code.clone(),
                c.severity.as_str().to_string(),
                format!("{:.1} s", c.started_ms / 1e3),
                c.ended_ms
                    .map(|e| format!("{:.1} s", e / 1e3))
                    .unwrap_or_else(|| "end".into()),
            ]);
        }
        style.section(out, "Conditions (times since the start)", t);
    }

    if !facts.events.is_empty() {
        let mut t = style.table();
        t.set_header(["time (UTC)", "GPU", "event", "action", "pids"]);
        for e in &facts.events {
            let (what, action) = match &e.kind {
                LiveEventKind::Xid { xid: Some(x) } => (
                    format!("XID {x}"),
                    xid::lookup(*x).action.as_str().to_string(),
                ),
                LiveEventKind::Xid { xid: None } => ("XID ?".into(), "unknown".into()),
                LiveEventKind::DoubleBitEcc => ("ECC double-bit".into(), "-".into()),
                LiveEventKind::SingleBitEcc => ("ECC single-bit".into(), "-".into()),
                // Fallen off the bus: XID 79's action.
                LiveEventKind::GpuLost => {
                    ("GPU lost".into(), xid::lookup(79).action.as_str().into())
                }
                LiveEventKind::WatchFailed { .. } => ("watch failed".into(), "-".into()),
            };
            let pids: Vec<String> = e
                .processes
                .iter()
                .take(3)
                .map(|p| p.pid.to_string())
                .collect();
            t.add_row([
                clock(e.unix_ms),
                e.gpu.to_string(),
                what,
                action,
                pids.join(","),
            ]);
        }
        style.section(out, "Events", t);
        let mut seen = Vec::new();
        for e in &facts.events {
            if let LiveEventKind::Xid { xid: Some(x) } = e.kind
                && !seen.contains(&x)
            {
                seen.push(x);
                let i = xid::lookup(x);
                style.para(out, &format!("XID {x}: {}. {}", i.meaning, i.what_to_do), 2);
            }
        }
    }
    let unwatched: Vec<String> = facts
        .event_watch
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.gpu.to_string())
        .collect();
    if !unwatched.is_empty() {
        out.push_str(&format!(
            "XID events not watched on GPU {} (see the findings).\n",
            unwatched.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::NvLinkFacts;
    use crate::report::Severity;

    fn busy() -> LiveGpu {
        let mut r = LiveGpu {
            index: 7,
            utilization_gpu_pct: Some(100),
            ..Default::default()
        };
        let h = &mut r.health;
        h.memory_used_bytes = Some(150 << 30);
        h.memory_total_bytes = Some(150 << 30);
        h.temperature_c = Some(100);
        h.power_draw_w = Some(1000.0);
        h.power_limit_w = Some(1000.0);
        h.sm_clock_mhz = Some(1980);
        h.memory_clock_mhz = Some(3201);
        h.clock_event_reasons = vec!["SW_POWER_CAPPING".into(), "HW_THERMAL_SLOWDOWN".into()];
        h.remap_pending = Some(true);
        h.recovery_action = Some("drain_and_reset".into());
        h.processes = (0..6)
            .map(|pid| crate::facts::GpuProcess {
                pid: 4_000_000 + pid,
                used_bytes: None,
            })
            .collect();
        r.topo.pcie.current_gen = Some(5);
        r.topo.pcie.current_width = Some(8);
        r.topo.pcie.max_width = Some(16);
        r.topo.nvlinks = (0..18)
            .map(|link| NvLinkFacts {
                link,
                active: link % 3 != 0,
                ..Default::default()
            })
            .collect();
        r
    }

    #[test]
    fn rows_and_details_fit_80_columns_at_their_widest() {
        let c = Condition {
            code: "PCIE_WIDTH_DEGRADED".into(),
            severity: Severity::Fail,
            gpu: Some(7),
            message: String::new(),
            hint: None,
            started_ms: 0.0,
            ended_ms: None,
        };
        let r = busy();
        let row = gpu_row(&r, Some(12345.5), &[&c, &c, &c]);
        assert!(
            row.chars().count() <= WIDTH,
            "{row} ({})",
            row.chars().count()
        );
        assert!(header().chars().count() <= WIDTH);
        assert!(row.contains("3 fail") && row.contains("G5x8"), "{row}");
        let items = gpu_details(&r);
        let lines = detail_lines(7, &items);
        assert!(lines.len() >= 2, "{lines:?}");
        for l in &lines {
            assert!(l.chars().count() <= WIDTH, "{l}");
        }
        let all = lines.join(" ");
        for want in [
            "NVLink 0,3,6,9,12,15 down",
            "PCIe x8 of x16",
            "row remap pending",
            "recovery: drain_and_reset",
            ",…",
        ] {
            assert!(all.contains(want), "{want} in {all}");
        }
        assert!(!all.contains("GPU_IDLE"));
        let lost = LiveGpu::no_answer(3, "x".repeat(200));
        assert!(gpu_row(&lost, None, &[]).chars().count() <= WIDTH);
    }

    #[test]
    fn a_frame_replaces_the_previous_one_and_keeps_the_last_log_lines() {
        let r = busy();
        let log: Vec<String> = (0..20).map(|i| format!("event {i}")).collect();
        let f = Frame {
            title: "gpu-doctor watch".into(),
            rows: vec![(&r, None, vec![])],
            log: &log,
            log_lines: 5,
        };
        let (text, n) = f.redraw(9, 80);
        assert!(text.starts_with("\x1b[9F\x1b[J"));
        assert_eq!(text.lines().count(), n);
        assert!(text.contains("event 19") && !text.contains("event 14\n"));
    }

    #[test]
    fn an_xid_event_line_says_what_nvidia_says_to_do() {
        let e = LiveEvent {
            at_ms: 1.0,
            unix_ms: 1_764_460_800_123,
            gpu: 1,
            kind: LiveEventKind::Xid { xid: Some(79) },
            processes: vec![],
        };
        let l = event_line(&e);
        assert!(
            l.starts_with(
                "00:00:00.123 GPU 1 XID 79 -> reboot_node: the GPU has fallen off the bus"
            ),
            "{l}"
        );
        let j: serde_json::Value = serde_json::from_str(&JsonLine::event(&e).to_line()).unwrap();
        assert_eq!(j["ev"], "event");
        assert_eq!(j["kind"], "xid");
        assert_eq!(j["xid"], 79);
        assert_eq!(j["action"], "reboot_node");
    }
}
