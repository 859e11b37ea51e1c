//! `gpu-doctor watch`: every GPU read each interval, NVML events as they arrive, conditions as
//! they start and end (with `info`/`topo`'s codes), shown live; on exit (Ctrl-C or `--for`) a
//! normal report with every finding seen.
//!
//! A scenario, not a built-in command: its probe is the watch loop, its data the readings (one
//! per stretch of equal readings) and events, its analysis the conditions and findings over
//! them, so `watch --from REPORT.json` judges a saved watch again, `compare` and suites take
//! it like any report (docs/watch.md).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::live::{self, Change, Condition, Tracker};
use crate::context::RunCtx;
use crate::error::input;
use crate::facts::live::{LiveEvent, LiveGpu, WatchFacts};
use crate::probe::live::{EventWatch, Sampler, unix_ms};
use crate::probe::nvml::NvmlProbe;
use crate::render::live::{self as render, Frame, GpuLine, JsonLine};
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario};
use crate::units::Span;

#[derive(Debug, Clone, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WatchParams {
    /// Time between two readings of every GPU (e.g. 1s, 500ms).
    #[arg(long, default_value_t = Self::default().interval, value_name = "DURATION")]
    pub interval: Span,
    /// Stop after this long and write the report (default: until Ctrl-C).
    #[arg(long = "for", value_name = "DURATION")]
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Span>,
    /// How long throttling, or a PCIe generation below its maximum, must hold before it is a
    /// condition (a moment of it under changing load is not).
    #[arg(long, default_value_t = Self::default().persist, value_name = "DURATION")]
    pub persist: Span,
    /// A GPU whose NVML read takes longer is reported as not answering (GPU_UNRESPONSIVE); the
    /// others keep being read.
    #[arg(long, default_value_t = Self::default().read_timeout, value_name = "DURATION")]
    pub read_timeout: Span,
}

impl Default for WatchParams {
    fn default() -> Self {
        WatchParams {
            interval: "1s".parse().expect("a duration"),
            for_: None,
            persist: "5s".parse().expect("a duration"),
            read_timeout: "2s".parse().expect("a duration"),
        }
    }
}

/// What a watch report stores: the facts, and the conditions analysis derived from them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatchData {
    pub facts: WatchFacts,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

pub struct Watch;

impl Scenario for Watch {
    type Params = WatchParams;
    type Data = WatchData;
    const NAME: &'static str = "watch";
    const ABOUT: &'static str = "Watch every GPU live: readings each interval, XIDs as NVML delivers them, conditions as they start and end; a report on exit.";
    const EXAMPLES: &'static str = "gpu-doctor watch\ngpu-doctor watch --interval 500ms --for 10m -o watch.json\ngpu-doctor watch --json | tee watch.jsonl\ngpu-doctor --replay box.nvml.json --fault xid=79@gpu1+5s watch --for 10s";
    const JSON_LINES: bool = true;

    fn validate(p: &WatchParams) -> Result<()> {
        let ms = |s: &Span| s.duration().as_secs_f64() * 1e3;
        if !(100.0..=3_600_000.0).contains(&ms(&p.interval)) {
            return Err(input("--interval: between 100ms and 1h"));
        }
        if ms(&p.read_timeout) < 100.0 {
            return Err(input("--read-timeout: at least 100ms"));
        }
        Ok(())
    }

    fn probe(params: &WatchParams, ctx: &RunCtx) -> Result<Probed<WatchData>> {
        let probe = Arc::new(NvmlProbe::open()?);
        let selected = probe.select(&ctx.opts.devices)?;
        let (devices, topology) = probe.topology_and_devices(&selected)?;
        let host = probe.host();
        if !ctx.opts.stream && params.for_.is_none() {
            return Err(input(
                "watch in a suite needs `for` (params = { for = \"30s\" }): it would run until Ctrl-C",
            ));
        }
        let mode = if ctx.opts.quiet || !ctx.opts.stream {
            Mode::Quiet
        } else if ctx.opts.json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        let facts = watch_loop(
            params,
            ctx,
            &probe,
            &selected,
            topology,
            &host.hostname,
            mode,
        );
        Ok(Probed::new(
            WatchData {
                facts,
                conditions: Vec::new(),
            },
            host,
            devices,
        ))
    }

    fn analyze(params: &WatchParams, data: &mut WatchData, _run: &Report) -> Analysis {
        let persist = params.persist.duration().as_secs_f64() * 1e3;
        let (conditions, findings) = live::watch(&data.facts, persist);
        data.conditions = conditions;
        Analysis {
            findings,
            ..Default::default()
        }
    }

    fn render(data: &WatchData, _report: &Report, out: &mut String, style: Style) {
        render::report(out, &data.facts, &data.conditions, style);
    }
}

/// How the live view is written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The table redrawn in place.
    Terminal,
    /// Rows and log lines, never redrawn (stdout is a file or a pipe).
    Lines,
    /// One JSON object per line.
    Json,
    /// Nothing until the report (`--quiet`).
    Quiet,
}

/// The live view's state: what was drawn, the log, the last readings.
struct Output {
    mode: Mode,
    title: String,
    /// Columns of the lines mode (the live view asks the terminal at each redraw).
    width: usize,
    log: Vec<String>,
    drawn: usize,
    readings: Vec<LiveGpu>,
    rates: Vec<Option<f64>>,
    /// Conditions holding now.
    held: Vec<Condition>,
    details: Vec<(u32, Vec<String>)>,
}

/// Log lines kept for the terminal view.
const LOG_LINES: usize = 10;

impl Output {
    fn write(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe ends nothing here: the watch goes on and writes its report.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn start(&mut self, hostname: &str, interval_ms: f64, gpus: &[u32]) {
        match self.mode {
            Mode::Json => self.write(
                &JsonLine::Start {
                    t: render::rfc3339(unix_ms()),
                    hostname,
                    interval_ms,
                    gpus: gpus.to_vec(),
                }
                .to_line(),
            ),
            Mode::Lines => self.write(&format!(
                "{}\n{}\n",
                crate::render::text::wrap(&self.title, Some(self.width), 4),
                render::header()
            )),
            Mode::Terminal | Mode::Quiet => {}
        }
    }

    fn log(&mut self, line: String) {
        match self.mode {
            // Wrapped, not cut: a log keeps every word.
            Mode::Lines => self.write(&format!(
                "{}\n",
                crate::render::text::wrap(&line, Some(self.width), 4)
            )),
            Mode::Terminal => {
                self.log.push(line);
                if self.log.len() > LOG_LINES * 10 {
                    self.log.drain(..LOG_LINES * 9);
                }
                self.redraw();
            }
            Mode::Json | Mode::Quiet => {}
        }
    }

    fn event(&mut self, e: &LiveEvent) {
        if self.mode == Mode::Json {
            self.write(&JsonLine::event(e).to_line());
        }
        self.log(render::event_line(e));
    }

    fn change(&mut self, c: &Change, at_unix_ms: u64) {
        if self.mode == Mode::Json {
            self.write(&JsonLine::change(c, at_unix_ms).to_line());
        }
        self.log(render::change_line(c, at_unix_ms));
    }

    fn interval(&mut self, at_ms: f64, at_unix_ms: u64) {
        let held = &self.held;
        match self.mode {
            Mode::Json => {
                let gpus = self
                    .readings
                    .iter()
                    .zip(&self.rates)
                    .map(|(r, rate)| GpuLine::of(r, *rate))
                    .collect();
                self.write(
                    &JsonLine::Interval {
                        t: render::rfc3339(at_unix_ms),
                        at_ms,
                        gpus,
                    }
                    .to_line(),
                );
            }
            Mode::Lines => {
                // The time on a line of its own: a row and a time side by side pass 80 columns.
                let mut text = format!("{}\n", render::clock(at_unix_ms));
                for (r, rate) in self.readings.iter().zip(&self.rates) {
                    let mine: Vec<&Condition> =
                        held.iter().filter(|c| c.gpu == Some(r.index)).collect();
                    text.push_str(&format!("{}\n", render::gpu_row(r, *rate, &mine)));
                    // Details only when they change: a log does not repeat itself.
                    let items = render::gpu_details(r);
                    let before = self.details.iter().position(|(g, _)| *g == r.index);
                    let changed = before.is_none_or(|i| self.details[i].1 != items);
                    if changed && !(before.is_none() && items.is_empty()) {
                        if items.is_empty() {
                            text.push_str(&format!("    GPU {}: back to normal\n", r.index));
                        } else {
                            for l in render::detail_lines(r.index, &items) {
                                text.push_str(&l);
                                text.push('\n');
                            }
                        }
                    }
                    match before {
                        Some(i) => self.details[i].1 = items,
                        None => self.details.push((r.index, items)),
                    }
                }
                self.write(&text);
            }
            Mode::Terminal => self.redraw(),
            Mode::Quiet => {}
        }
    }

    fn redraw(&mut self) {
        let held = &self.held;
        if self.mode != Mode::Terminal {
            return;
        }
        let rows = self
            .readings
            .iter()
            .zip(&self.rates)
            .map(|(r, rate)| {
                let mine: Vec<&Condition> =
                    held.iter().filter(|c| c.gpu == Some(r.index)).collect();
                (r, *rate, mine)
            })
            .collect();
        let frame = Frame {
            title: self.title.clone(),
            rows,
            log: &self.log,
            log_lines: LOG_LINES,
        };
        let (text, n) = frame.redraw(
            self.drawn,
            crate::render::style::terminal_columns().unwrap_or(render::WIDTH),
        );
        self.drawn = n;
        self.write(&text);
    }
}

/// Until `--for` runs out or Ctrl-C: every GPU read each interval, events handled as they
/// arrive, the live view kept up to date. Returns what the report stores.
fn watch_loop(
    params: &WatchParams,
    ctx: &RunCtx,
    probe: &Arc<NvmlProbe>,
    selected: &[u32],
    topology: crate::facts::TopoFacts,
    hostname: &str,
    mode: Mode,
) -> WatchFacts {
    let interval = params.interval.duration();
    let interval_ms = interval.as_secs_f64() * 1e3;
    let persist_ms = params.persist.duration().as_secs_f64() * 1e3;
    let started_unix_ms = unix_ms().saturating_sub(ctx.now_ms() as u64);
    let unix_at = |at_ms: f64| started_unix_ms + at_ms as u64;
    let mut out = Output {
        mode,
        title: format!(
            "gpu-doctor watch: {hostname}, {} GPU(s), every {}{} (Ctrl-C ends it)",
            selected.len(),
            params.interval,
            params
                .for_
                .as_ref()
                .map(|f| format!(" for {f}"))
                .unwrap_or_default()
        ),
        width: crate::render::style::output_width(),
        log: Vec::new(),
        drawn: 0,
        readings: Vec::new(),
        rates: Vec::new(),
        held: Vec::new(),
        details: Vec::new(),
    };
    out.start(hostname, interval_ms, selected);
    let (tx, rx) = mpsc::channel();
    let events = EventWatch::start(probe.clone(), selected, ctx.started, tx);
    for s in events.states().iter().filter(|s| s.error.is_some()) {
        out.log(format!(
            "GPU {}: XID events not watched: {}",
            s.gpu,
            s.error.as_deref().unwrap_or_default()
        ));
    }
    let sampler = Sampler::start(probe.clone(), selected, params.read_timeout.duration());
    let mut facts = WatchFacts {
        interval_ms,
        started_unix_ms,
        topology: topology.clone(),
        ..Default::default()
    };
    let mut tracker = Tracker::new(persist_ms);
    for f in live::pair_findings(&topology) {
        out.log(format!("{}: {}", f.code, f.message));
    }
    let end = params.for_.as_ref().map(|f| ctx.started + f.duration());
    let mut next = Instant::now();
    let mut previous: Vec<Option<(f64, u64)>> = vec![None; selected.len()];
    let ended_by = 'watch: loop {
        let readings = sampler.read_all();
        let at_ms = ctx.now_ms();
        facts.intervals += 1;
        let mut rates = Vec::new();
        for (r, prev) in readings.iter().zip(previous.iter_mut()) {
            facts.push_reading(at_ms, r);
            for c in tracker.observe(at_ms, r, &topology) {
                match &c {
                    Change::Started(s) => out.held.push(s.clone()),
                    Change::Ended(e) => out.held.retain(|h| !(h.gpu == e.gpu && h.code == e.code)),
                }
                out.change(&c, unix_at(at_ms));
            }
            let now = r.topo.pcie.replay_counter.map(|n| (at_ms, n));
            rates.push(now.and_then(|now| live::rate_per_s(*prev, now)));
            if now.is_some() {
                *prev = now;
            }
        }
        out.readings = readings;
        out.rates = rates;
        out.interval(at_ms, unix_at(at_ms));

        next += interval;
        if next < Instant::now() {
            next = Instant::now() + interval;
        }
        loop {
            if ctx.interrupted() {
                break 'watch "interrupt";
            }
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                break 'watch "for";
            }
            let until = end.map_or(next, |e| e.min(next));
            if now >= until {
                continue 'watch;
            }
            // Short slices: Ctrl-C is looked at every 100 ms.
            match rx.recv_timeout((until - now).min(Duration::from_millis(100))) {
                Ok(e) => {
                    out.event(&e);
                    facts.events.push(e);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep((until - now).min(Duration::from_millis(100)))
                }
            }
        }
    };
    facts.event_watch = events.stop();
    while let Ok(e) = rx.try_recv() {
        out.event(&e);
        facts.events.push(e);
    }
    facts.elapsed_ms = ctx.now_ms();
    facts.ended_by = ended_by.into();
    if ended_by == "interrupt" {
        // Ctrl-C is how a watch ends: its report is whole, not interrupted.
        crate::context::clear_interrupt();
    }
    if mode == Mode::Terminal {
        out.write("\n");
    }
    facts
}
