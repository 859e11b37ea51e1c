//! `gpu-doctor exporter`: Prometheus / OpenMetrics over HTTP (and node_exporter's textfile
//! collector), where gpu-doctor's findings are metrics (`gpu_doctor_finding{code,severity,gpu}`).
//!
//! NVML is initialised once; each scrape reads every GPU at once on its reader thread
//! (`probe::live::Sampler`), so one GPU that stops answering costs one read timeout and never
//! fails the scrape; XIDs arrive through NVML event sets (`probe::live::EventWatch`) and are
//! counted as they come. A scrape is judged by the same analysis as `watch` (`analyze::live`)
//! and written by `render::exposition`. docs/exporter.md.

pub mod http;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use crate::analyze::live::{self, XidTally};
use crate::context::RunOptions;
use crate::error::input;
use crate::facts::TopoFacts;
use crate::facts::live::{LiveEvent, LiveEventKind};
use crate::probe::live::{EventWatch, Sampler, unix_ms};
use crate::probe::nvml::NvmlProbe;
use crate::render::exposition::{self, ExporterHealth, FindingSeries, Format, Scrape};
use crate::report::{DeviceInfo, Finding, Host};
use http::{Request, Response};

/// The port the exporter listens on by default (dcgm-exporter's is 9400).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9835";

/// The file written into `--textfile DIR`.
pub const TEXTFILE_NAME: &str = "gpu-doctor.prom";

#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Serve /metrics on this address (default 127.0.0.1:9835; port 0 picks a free one, and the
    /// address is printed on stderr). `0.0.0.0:9835` serves every interface.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Also write the metrics to DIR/gpu-doctor.prom for node_exporter's textfile collector
    /// (a temp file in DIR, then a rename). Alone (no --listen) it serves no HTTP.
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// How often the textfile is rewritten.
    #[arg(long, default_value = "15s", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub textfile_interval: Duration,
    /// Write one scrape (Prometheus text format) to stdout, or to --textfile, and exit.
    #[arg(long)]
    pub once: bool,
    /// A GPU whose NVML read takes longer is reported as not answering (GPU_UNRESPONSIVE); the
    /// scrape goes on with the others.
    #[arg(long, default_value = "5s", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub read_timeout: Duration,
    /// How long an application's XID (XID_APP_ERROR) keeps its finding at 1 after the last one.
    /// XIDs that need a reset or reboot hold until the exporter restarts.
    #[arg(long, default_value = "5m", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub xid_hold: Duration,
    /// Benchmark: N reads of every GPU and N scrapes in this process (no HTTP), their p50/p99
    /// as one JSON line, then exit (bench/exporter_scrape.sh compares them with HTTP scrapes).
    #[arg(long, value_name = "N")]
    pub bench_reads: Option<u32>,
}

/// What changes from scrape to scrape.
#[derive(Default)]
struct State {
    xids: Vec<XidTally>,
    /// (gpu, type, count) of NVML events other than clock changes.
    events: Vec<(u32, &'static str, u64)>,
    scrapes: u64,
    nvml_errors: Vec<(u32, u64)>,
    last_read_unix_s: Vec<(u32, f64)>,
    /// Every finding that held in some scrape: the ones no longer holding are shown at 0.
    seen: Vec<Finding>,
}

/// The exporter: NVML open, readers and event sets started, state between scrapes.
pub struct Exporter {
    host: Host,
    devices: Vec<DeviceInfo>,
    topology: TopoFacts,
    sampler: Sampler,
    events: EventWatch,
    started: Instant,
    xid_hold_ms: f64,
    state: Arc<Mutex<State>>,
}

fn bump(list: &mut Vec<(u32, u64)>, gpu: u32) {
    match list.iter_mut().find(|(g, _)| *g == gpu) {
        Some((_, n)) => *n += 1,
        None => list.push((gpu, 1)),
    }
}

fn event_type(kind: &LiveEventKind) -> Option<&'static str> {
    match kind {
        LiveEventKind::Xid { .. } => Some("xid"),
        LiveEventKind::DoubleBitEcc => Some("double_bit_ecc"),
        LiveEventKind::SingleBitEcc => Some("single_bit_ecc"),
        LiveEventKind::GpuLost | LiveEventKind::WatchFailed { .. } => None,
    }
}

impl Exporter {
    /// Opens NVML once, reads the topology (pairs do not change), starts a reader thread and an
    /// event set per GPU, and a thread that counts events as they arrive.
    pub fn start(opts: &RunOptions, args: &ExporterArgs) -> Result<Exporter> {
        let started = Instant::now();
        let probe = Arc::new(NvmlProbe::open()?);
        let selected = probe.select(&opts.devices)?;
        let (mut devices, topology) = probe.topology_and_devices(&selected)?;
        // A GPU lost before the start is known by its index alone: no made-up model name.
        for d in &mut devices {
            if topology
                .gpus
                .iter()
                .any(|g| g.index == d.index && g.lost.is_some())
            {
                d.name.clear();
            }
        }
        let host = probe.host();
        let state = Arc::new(Mutex::new(State {
            nvml_errors: selected.iter().map(|&g| (g, 0)).collect(),
            ..Default::default()
        }));
        let (tx, rx) = mpsc::channel::<LiveEvent>();
        let events = EventWatch::start(probe.clone(), &selected, started, tx);
        let counted = state.clone();
        std::thread::Builder::new()
            .name("nvml-event-count".into())
            .spawn(move || {
                for e in rx {
                    let mut st = counted.lock().unwrap_or_else(|p| p.into_inner());
                    XidTally::record(&mut st.xids, &e);
                    match event_type(&e.kind) {
                        Some(ty) => {
                            match st
                                .events
                                .iter_mut()
                                .find(|(g, t, _)| *g == e.gpu && *t == ty)
                            {
                                Some((_, _, n)) => *n += 1,
                                None => st.events.push((e.gpu, ty, 1)),
                            }
                        }
                        None => {
                            if matches!(e.kind, LiveEventKind::WatchFailed { .. }) {
                                bump(&mut st.nvml_errors, e.gpu);
                            }
                        }
                    }
                }
            })
            .expect("the event counter starts");
        let sampler = Sampler::start(probe, &selected, args.read_timeout);
        Ok(Exporter {
            host,
            devices,
            topology,
            sampler,
            events,
            started,
            xid_hold_ms: args.xid_hold.as_secs_f64() * 1e3,
            state,
        })
    }

    pub fn gpu_count(&self) -> usize {
        self.devices.len()
    }

    /// One scrape: every GPU read at once, judged, written in `format`.
    pub fn scrape(&self, format: Format) -> String {
        let t0 = Instant::now();
        let readings = self.sampler.read_all();
        let now_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let watch = self.events.states();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.scrapes += 1;
        let now_s = unix_ms() as f64 / 1e3;
        for r in &readings {
            if r.no_answer.is_some() {
                bump(&mut st.nvml_errors, r.index);
            }
            if r.answered() {
                match st.last_read_unix_s.iter_mut().find(|(g, _)| *g == r.index) {
                    Some((_, t)) => *t = now_s,
                    None => st.last_read_unix_s.push((r.index, now_s)),
                }
            }
        }
        let holding = live::current_findings(
            &readings,
            &self.topology,
            &st.xids,
            &watch,
            now_ms,
            self.xid_hold_ms,
        );
        let key = |f: &Finding| (f.code.clone(), f.severity, f.device);
        for f in &holding {
            if !st.seen.iter().any(|s| key(s) == key(f)) {
                st.seen.push(f.clone());
            }
        }
        let series: Vec<FindingSeries> = st
            .seen
            .iter()
            .map(|f| FindingSeries {
                finding: f,
                holds: holding.iter().any(|h| key(h) == key(f)),
            })
            .collect();
        let mut events = st.events.clone();
        events.extend(
            watch
                .iter()
                .map(|w| (w.gpu, "clock_change", w.clock_changes)),
        );
        let health = ExporterHealth {
            scrape_seconds: t0.elapsed().as_secs_f64(),
            scrapes: st.scrapes,
            nvml_errors: st.nvml_errors.clone(),
            last_read_unix_s: st.last_read_unix_s.clone(),
        };
        exposition::encode(
            &Scrape {
                host: &self.host,
                devices: &self.devices,
                readings: &readings,
                findings: &series,
                xids: &st.xids,
                events: &events,
                event_watch: &watch,
                health: &health,
            },
            format,
        )
    }

    /// The HTTP routes: /metrics, /healthz (no NVML), / (a pointer).
    pub fn handle(&self, req: &Request) -> Response {
        match req.path.as_str() {
            "/metrics" => {
                let format = Format::negotiate(req.accept.as_deref());
                Response {
                    status: 200,
                    content_type: format.content_type(),
                    body: self.scrape(format).into_bytes(),
                }
            }
            "/healthz" => Response::text(200, "ok\n"),
            "/" => Response::text(
                200,
                format!(
                    "gpu-doctor exporter {}: metrics at /metrics ({} GPU(s)); docs/exporter.md\n",
                    env!("CARGO_PKG_VERSION"),
                    self.gpu_count()
                ),
            ),
            _ => Response::text(404, "not found: try /metrics\n"),
        }
    }
}

/// Checks the arguments that need no GPU (exit 2 before NVML starts).
fn validate(args: &ExporterArgs) -> Result<()> {
    if let Some(dir) = &args.textfile
        && !dir.is_dir()
    {
        return Err(input(format!(
            "--textfile {}: not a directory (node_exporter's --collector.textfile.directory)",
            dir.display()
        )));
    }
    if args.read_timeout < Duration::from_millis(100) {
        return Err(input("--read-timeout: at least 100ms"));
    }
    if args.textfile_interval < Duration::from_secs(1) {
        return Err(input("--textfile-interval: at least 1s"));
    }
    if args.bench_reads == Some(0) {
        return Err(input("--bench-reads: at least 1"));
    }
    Ok(())
}

fn write_textfile(exporter: &Exporter, dir: &std::path::Path) -> Result<()> {
    let text = exporter.scrape(Format::Text);
    crate::output::write_atomic(&dir.join(TEXTFILE_NAME), text.as_bytes(), "the metrics")
}

/// Runs the exporter until Ctrl-C or SIGTERM (or once); returns what to print and the exit
/// code.
pub fn run(args: &ExporterArgs, opts: &RunOptions) -> Result<(String, i32)> {
    validate(args)?;
    let listen = match (
        args.listen,
        &args.textfile,
        args.once || args.bench_reads.is_some(),
    ) {
        (Some(a), _, false) => Some(a),
        (None, None, false) => Some(DEFAULT_LISTEN.parse().expect("an address")),
        _ => None,
    };
    // Bind before NVML starts: a port in use is exit 2 at once.
    let listener = match listen {
        Some(addr) => {
            Some(TcpListener::bind(addr).map_err(|e| input(format!("--listen {addr}: {e}")))?)
        }
        None => None,
    };
    let exporter = Arc::new(Exporter::start(opts, args)?);
    if let Some(n) = args.bench_reads {
        return Ok((bench(&exporter, n), crate::error::exit::OK));
    }
    if args.once {
        // One event wait slice: events already pending at registration (an XID that came
        // before the start) are counted before the one scrape.
        std::thread::sleep(Duration::from_millis(300));
        return match &args.textfile {
            Some(dir) => {
                write_textfile(&exporter, dir)?;
                Ok((String::new(), crate::error::exit::OK))
            }
            None => Ok((exporter.scrape(Format::Text), crate::error::exit::OK)),
        };
    }
    if let Some(listener) = listener {
        let addr = listener.local_addr()?;
        eprintln!(
            "gpu-doctor exporter: serving http://{addr}/metrics ({} GPU(s))",
            exporter.gpu_count()
        );
        let served = exporter.clone();
        let handler: Arc<http::Handler> = Arc::new(move |r: &Request| served.handle(r));
        std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || http::serve(listener, handler))?;
    }
    let mut next_textfile = Instant::now();
    while !crate::context::interrupted() {
        if let Some(dir) = &args.textfile
            && Instant::now() >= next_textfile
        {
            if let Err(e) = write_textfile(&exporter, dir) {
                eprintln!("gpu-doctor exporter: {e:#}");
            }
            next_textfile = Instant::now() + args.textfile_interval;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((String::new(), crate::error::exit::OK))
}

/// p50, p99 and max of `ms`, in milliseconds.
fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({ "p50": at(0.5), "p99": at(0.99), "max": at(1.0) })
}

/// `--bench-reads N`: the floor (reads alone) and a whole scrape in this process.
fn bench(exporter: &Exporter, n: u32) -> String {
    let time = |f: &dyn Fn()| {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect::<Vec<_>>()
    };
    // One of each first: the first read warms caches that later ones find warm.
    exporter.sampler.read_all();
    let reads = time(&|| {
        exporter.sampler.read_all();
    });
    let scrapes = time(&|| {
        exporter.scrape(Format::OpenMetrics);
    });
    serde_json::json!({
        "gpus": exporter.gpu_count(),
        "n": n,
        "nvml_reads_ms": percentiles(reads),
        "scrape_in_process_ms": percentiles(scrapes),
    })
    .to_string()
        + "\n"
}
