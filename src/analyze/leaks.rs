//! `leak-check` (pure): the shim's allocation events → what the program left allocated and
//! where, the live-bytes timeline and its growth, the size histogram, the virtual memory API's
//! reserved against mapped, and the framework pools at exit. docs/memory.md says what "leaked"
//! means for each case.
//!
//! [`Tracker`] follows the events one at a time (the report at the end, and the snapshots of
//! `--snapshot-every` while the program runs); [`analyze`] turns a finished run into the digest,
//! findings and metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::facts::leaks::{
    Frame, Growth, LeakDigest, LeakSummary, PoolNote, SiteGroup, SizeBucket, Symbols, Timeline,
    VmmSummary, Window,
};
use crate::facts::program::ShimEvent;
use crate::report::{Better, Finding, Metric, MetricKind, Severity, codes};
use crate::units::{format_bytes, format_span};

/// Device pointers and cuMemCreate handles are separate namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ptr(u64),
    Handle(u64),
}

/// A live allocation.
#[derive(Debug, Clone)]
struct Live {
    call: String,
    size: u64,
    dev: Option<i64>,
    ctx: Option<u64>,
    t_us: u64,
    pid: u64,
    bt: Vec<String>,
}

/// What became of an allocation the program did not free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Freed when its context was destroyed.
    CtxDestroy,
    /// Still allocated when the program ended.
    Exit,
    /// Still referenced by a framework's tensors at exit (after its cache was released).
    Referenced,
}

impl Fate {
    fn text(self) -> &'static str {
        match self {
            Fate::CtxDestroy => "context destroy",
            Fate::Exit => "exit",
            Fate::Referenced => "referenced at exit",
        }
    }
}

/// A cuMemCreate handle: its memory lives until it is released and unmapped everywhere.
#[derive(Debug, Clone)]
struct Handle {
    live: Live,
    released: bool,
    mappings: u32,
}

/// The bytes held over time, thinned to a bounded number of points.
#[derive(Debug, Clone, Default)]
struct Series {
    points: Vec<(u64, u64)>,
}

impl Series {
    const CAP: usize = 1 << 16;

    fn push(&mut self, t_us: u64, bytes: u64) {
        if let Some(last) = self.points.last_mut()
            && last.0 == t_us
        {
            last.1 = bytes;
            return;
        }
        if self.points.len() >= Self::CAP {
            // Keep every other point: the step function loses detail, not its shape.
            let kept: Vec<(u64, u64)> = self.points.iter().copied().skip(1).step_by(2).collect();
            self.points = kept;
        }
        self.points.push((t_us, bytes));
    }

    /// The bytes held at `t_us` (the step function).
    fn at(&self, t_us: u64) -> u64 {
        let i = self.points.partition_point(|&(t, _)| t <= t_us);
        if i == 0 { 0 } else { self.points[i - 1].1 }
    }

    /// How the bytes held moved from `from_us` to `to_us`, in bytes/s (0 over no time).
    fn rate(&self, from_us: u64, to_us: u64) -> f64 {
        if to_us <= from_us {
            return 0.0;
        }
        (self.at(to_us) as f64 - self.at(from_us) as f64) / ((to_us - from_us) as f64 / 1e6)
    }
}

/// Follows the allocation events of a run.
#[derive(Debug, Default)]
pub struct Tracker {
    start_us: u64,
    last_us: u64,
    live: HashMap<(u64, Key), Live>,
    handles: HashMap<(u64, u64), Handle>,
    held: u64,
    series: Series,
    peak: (u64, u64),
    allocations: u64,
    allocated_bytes: u64,
    frees: u64,
    freed_bytes: u64,
    unknown_frees: u64,
    /// log2 bucket → (allocations, bytes).
    sizes: BTreeMap<u32, (u64, u64)>,
    /// Allocations the program did not free, with what became of them.
    left: Vec<(Live, Fate)>,
    /// Contexts the program created (not primary).
    created: BTreeSet<(u64, u64)>,
    reservations: HashMap<(u64, u64), u64>,
    mappings: HashMap<(u64, u64), (u64, Option<u64>)>,
    vmm: VmmSummary,
    vmm_used: bool,
    pools: Vec<PoolNote>,
    /// A framework releasing its cache in this process now.
    releasing: HashMap<u64, String>,
    /// When the first framework started releasing its cache: the program was exiting, and the
    /// drop that follows is gpu-doctor's hook, not the program's behaviour.
    exiting_us: Option<u64>,
    pool_cached: (u64, u64),
    processes: BTreeSet<u64>,
}

fn hex(s: &Option<String>) -> Option<u64> {
    s.as_deref()
        .and_then(|h| h.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}

/// The power of two at or above `size` (the histogram's bucket).
fn bucket(size: u64) -> u32 {
    size.max(1).next_power_of_two().trailing_zeros()
}

impl Tracker {
    /// A tracker of a program started at `start_us` (CLOCK_MONOTONIC µs, the events' clock).
    pub fn new(start_us: u64) -> Tracker {
        Tracker {
            start_us,
            last_us: start_us,
            ..Default::default()
        }
    }

    /// Bytes of device memory held now, and the most held so far.
    pub fn held(&self) -> (u64, u64) {
        (self.held, self.peak.0)
    }

    /// Allocations and frees seen so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.allocations, self.frees)
    }

    fn hold(&mut self, t_us: u64, add: u64, sub: u64) {
        self.held = self.held.saturating_add(add).saturating_sub(sub);
        if self.held > self.peak.0 {
            self.peak = (self.held, t_us);
        }
        self.series.push(t_us, self.held);
    }

    pub fn feed(&mut self, e: &ShimEvent) {
        self.last_us = self.last_us.max(e.t_us);
        match e.ev.as_str() {
            "alloc" => self.alloc(e),
            "free" => self.free(e),
            "reserve" => {
                if let (Some(p), Some(size)) = (hex(&e.ptr), e.size) {
                    self.vmm_used = true;
                    self.reservations.insert((e.pid, p), size);
                    self.vmm.reserved_at_end_bytes += size;
                    self.vmm.reserved_peak_bytes = self
                        .vmm
                        .reserved_peak_bytes
                        .max(self.vmm.reserved_at_end_bytes);
                }
            }
            "unreserve" => {
                if let Some(size) = hex(&e.ptr).and_then(|p| self.reservations.remove(&(e.pid, p)))
                {
                    self.vmm.reserved_at_end_bytes -= size;
                }
            }
            "map" => self.map(e),
            "unmap" => self.unmap(e),
            "ctx" => self.ctx(e),
            "pool" => self.pool(e),
            _ => {}
        }
    }

    fn alloc(&mut self, e: &ShimEvent) {
        let Some(size) = e.size else { return };
        let key = match (hex(&e.ptr), hex(&e.handle)) {
            (Some(p), _) => Key::Ptr(p),
            (None, Some(h)) => Key::Handle(h),
            (None, None) => return,
        };
        self.processes.insert(e.pid);
        self.allocations += 1;
        self.allocated_bytes += size;
        let b = self.sizes.entry(bucket(size)).or_default();
        b.0 += 1;
        b.1 += size;
        let live = Live {
            call: e.call.clone().unwrap_or_default(),
            size,
            dev: e.dev,
            ctx: hex(&e.ctx),
            t_us: e.t_us,
            pid: e.pid,
            bt: e.bt.clone().unwrap_or_default(),
        };
        match key {
            Key::Ptr(_) => {
                // A pointer the driver handed out again: its free went unseen.
                let stale = self.live.insert((e.pid, key), live).map_or(0, |l| l.size);
                self.hold(e.t_us, size, stale);
            }
            Key::Handle(h) => {
                self.vmm_used = true;
                let stale = self
                    .handles
                    .insert(
                        (e.pid, h),
                        Handle {
                            live,
                            released: false,
                            mappings: 0,
                        },
                    )
                    .map_or(0, |l| l.live.size);
                self.vmm.created_at_end_bytes =
                    self.vmm.created_at_end_bytes.saturating_sub(stale) + size;
                self.vmm.created_peak_bytes = self
                    .vmm
                    .created_peak_bytes
                    .max(self.vmm.created_at_end_bytes);
                self.hold(e.t_us, size, stale);
            }
        }
    }

    /// A live allocation leaves: freed by the program (counted as a free) or by the cache
    /// release of a framework at exit.
    fn release(&mut self, pid: u64, live: &Live, t_us: u64) {
        self.frees += 1;
        self.freed_bytes += live.size;
        if let Some(framework) = self.releasing.get(&pid).cloned() {
            self.pool_cached.0 += 1;
            self.pool_cached.1 += live.size;
            let mine = |n: &PoolNote| n.pid == pid && n.framework == framework;
            let i = self
                .pools
                .iter()
                .rposition(|n| mine(n) && n.dev == live.dev)
                .or_else(|| self.pools.iter().rposition(mine));
            if let Some(n) = i.map(|i| &mut self.pools[i]) {
                n.released_bytes += live.size;
                n.released_allocations += 1;
            }
        }
        self.hold(t_us, 0, live.size);
    }

    fn free(&mut self, e: &ShimEvent) {
        if let Some(p) = hex(&e.ptr) {
            match self.live.remove(&(e.pid, Key::Ptr(p))) {
                Some(live) => self.release(e.pid, &live, e.t_us),
                None => self.unknown_frees += 1,
            }
        } else if let Some(h) = hex(&e.handle) {
            let Some(handle) = self.handles.get_mut(&(e.pid, h)) else {
                self.unknown_frees += 1;
                return;
            };
            handle.released = true;
            if handle.mappings == 0 {
                self.drop_handle(e.pid, h, e.t_us);
            }
        }
    }

    fn drop_handle(&mut self, pid: u64, h: u64, t_us: u64) {
        if let Some(handle) = self.handles.remove(&(pid, h)) {
            self.vmm.created_at_end_bytes = self
                .vmm
                .created_at_end_bytes
                .saturating_sub(handle.live.size);
            self.release(pid, &handle.live, t_us);
        }
    }

    fn map(&mut self, e: &ShimEvent) {
        let (Some(p), Some(size)) = (hex(&e.ptr), e.size) else {
            return;
        };
        self.vmm_used = true;
        let h = hex(&e.handle);
        self.mappings.insert((e.pid, p), (size, h));
        if let Some(handle) = h.and_then(|h| self.handles.get_mut(&(e.pid, h))) {
            handle.mappings += 1;
        }
        self.vmm.mapped_at_end_bytes += size;
        self.vmm.mapped_peak_bytes = self.vmm.mapped_peak_bytes.max(self.vmm.mapped_at_end_bytes);
    }

    fn unmap(&mut self, e: &ShimEvent) {
        let (Some(p), Some(size)) = (hex(&e.ptr), e.size) else {
            return;
        };
        let end = p.saturating_add(size);
        let gone: Vec<(u64, u64)> = self
            .mappings
            .keys()
            .filter(|(pid, va)| *pid == e.pid && *va >= p && *va < end)
            .copied()
            .collect();
        for k in gone {
            let Some((size, h)) = self.mappings.remove(&k) else {
                continue;
            };
            self.vmm.mapped_at_end_bytes = self.vmm.mapped_at_end_bytes.saturating_sub(size);
            if let Some(h) = h
                && let Some(handle) = self.handles.get_mut(&(e.pid, h))
            {
                handle.mappings = handle.mappings.saturating_sub(1);
                if handle.released && handle.mappings == 0 {
                    self.drop_handle(e.pid, h, e.t_us);
                }
            }
        }
    }

    fn ctx(&mut self, e: &ShimEvent) {
        if e.code != Some(0) {
            return;
        }
        let call = e.call.as_deref().unwrap_or("");
        if call.starts_with("cuCtxCreate") {
            if let Some(c) = hex(&e.ctx) {
                self.created.insert((e.pid, c));
            }
            return;
        }
        let doomed: Vec<(u64, Key)> = if call == "cuCtxDestroy_v2" {
            let Some(c) = hex(&e.ctx) else { return };
            self.live
                .iter()
                .filter(|((pid, _), l)| *pid == e.pid && l.ctx == Some(c))
                .map(|(k, _)| *k)
                .collect()
        } else if call.starts_with("cuDevicePrimaryCtxReset") {
            // The primary context of that device: every allocation there in a context the
            // program did not create itself.
            let Some(dev) = e.dev else { return };
            self.live
                .iter()
                .filter(|((pid, _), l)| {
                    *pid == e.pid
                        && l.dev == Some(dev)
                        && !l.ctx.is_some_and(|c| self.created.contains(&(e.pid, c)))
                })
                .map(|(k, _)| *k)
                .collect()
        } else {
            return;
        };
        for k in doomed {
            if let Some(l) = self.live.remove(&k) {
                self.hold(e.t_us, 0, l.size);
                self.left.push((l, Fate::CtxDestroy));
            }
        }
    }

    fn pool(&mut self, e: &ShimEvent) {
        let framework = e.framework.clone().unwrap_or_default();
        match e.phase.as_deref() {
            Some("before") => {
                self.exiting_us.get_or_insert(e.t_us);
                self.pools.push(PoolNote {
                    pid: e.pid,
                    framework: framework.clone(),
                    dev: e.dev,
                    in_use_bytes: e.in_use,
                    reserved_bytes: e.reserved,
                    ..Default::default()
                });
                self.releasing.insert(e.pid, framework);
            }
            Some("after") => {
                self.releasing.remove(&e.pid);
                if let Some(n) = self
                    .pools
                    .iter_mut()
                    .rev()
                    .find(|n| n.pid == e.pid && n.framework == framework && n.dev == e.dev)
                {
                    n.reserved_after_bytes = e.reserved;
                }
            }
            _ => {}
        }
    }

    /// The bytes held over the last `window_us` before `now_us`, as a rate (bytes/s).
    pub fn recent_rate(&self, now_us: u64, window_us: u64) -> f64 {
        let from = now_us.saturating_sub(window_us).max(self.start_us);
        self.series.rate(from, now_us)
    }

    /// Ends the run at `end_us`: what is still allocated becomes left at exit (or referenced,
    /// in processes whose memory a framework's pool manages).
    fn finish(mut self, end_us: u64) -> Finished {
        let pool_pids: BTreeSet<u64> = self.pools.iter().map(|p| p.pid).collect();
        let fate = |pid: u64| {
            if pool_pids.contains(&pid) {
                Fate::Referenced
            } else {
                Fate::Exit
            }
        };
        let mut rest: Vec<Live> = self.live.drain().map(|(_, l)| l).collect();
        rest.extend(self.handles.drain().map(|(_, h)| h.live));
        rest.sort_by_key(|l| l.t_us);
        for l in rest {
            let f = fate(l.pid);
            self.vmm.handles_left += u64::from(l.call == "cuMemCreate");
            self.left.push((l, f));
        }
        self.vmm.reservations_left = self.reservations.len() as u64;
        self.vmm.mappings_left = self.mappings.len() as u64;
        Finished {
            end_us: end_us.max(self.last_us),
            t: self,
        }
    }
}

struct Finished {
    t: Tracker,
    end_us: u64,
}

/// What the analysis needs besides the events.
pub struct Input<'a> {
    pub events: &'a [ShimEvent],
    pub symbols: &'a Symbols,
    /// When the program started and ended (CLOCK_MONOTONIC µs).
    pub start_us: u64,
    pub end_us: u64,
    /// gpu-doctor stopped it (--survive-after, --timeout, Ctrl-C): memory held then was in use.
    pub stopped: bool,
    /// Device memory free near the end, per CUDA ordinal (NVML), for the OOM estimate.
    pub free_bytes: &'a BTreeMap<i64, u64>,
    /// `--fail-over`.
    pub fail_over: Option<u64>,
}

pub struct LeakAnalysis {
    pub digest: LeakDigest,
    pub findings: Vec<Finding>,
    pub metrics: BTreeMap<String, Metric>,
}

pub fn analyze(input: &Input<'_>) -> LeakAnalysis {
    let mut t = Tracker::new(input.start_us);
    for e in input.events {
        t.feed(e);
    }
    let f = t.finish(input.end_us);
    let secs = |t_us: u64| t_us.saturating_sub(input.start_us) as f64 / 1e6;

    let mut summary = LeakSummary {
        processes: f.t.processes.len() as u64,
        allocations: f.t.allocations,
        allocated_bytes: f.t.allocated_bytes,
        frees: f.t.frees,
        freed_bytes: f.t.freed_bytes,
        unknown_frees: f.t.unknown_frees,
        peak_bytes: f.t.peak.0,
        peak_at_s: secs(f.t.peak.1),
        pool_cached_bytes: f.t.pool_cached.1,
        pool_cached_allocations: f.t.pool_cached.0,
        ..Default::default()
    };
    for (l, fate) in &f.t.left {
        let (b, n) = match fate {
            Fate::Exit => (&mut summary.at_exit_bytes, &mut summary.at_exit_allocations),
            Fate::CtxDestroy => (
                &mut summary.ctx_destroy_bytes,
                &mut summary.ctx_destroy_allocations,
            ),
            Fate::Referenced => (
                &mut summary.referenced_at_exit_bytes,
                &mut summary.referenced_at_exit_allocations,
            ),
        };
        *b += l.size;
        *n += 1;
    }
    summary.left_bytes =
        summary.at_exit_bytes + summary.ctx_destroy_bytes + summary.referenced_at_exit_bytes;
    summary.left_allocations = summary.at_exit_allocations
        + summary.ctx_destroy_allocations
        + summary.referenced_at_exit_allocations;

    let (sites, sites_not_listed) = group_sites(&f.t.left, input.symbols, &secs);
    let free_near_end = {
        let devs: BTreeSet<i64> = f.t.left.iter().filter_map(|(l, _)| l.dev).collect();
        let devs: Vec<i64> = if devs.is_empty() {
            input.free_bytes.keys().copied().collect()
        } else {
            devs.into_iter().collect()
        };
        devs.iter()
            .filter_map(|d| input.free_bytes.get(d))
            .min()
            .copied()
    };
    let timeline = timeline(
        &f.t.series,
        input.start_us,
        f.end_us,
        f.t.exiting_us.unwrap_or(f.end_us),
        summary.peak_bytes,
        free_near_end,
    );
    let histogram =
        f.t.sizes
            .iter()
            .map(|(b, (n, bytes))| SizeBucket {
                up_to_bytes: 1u64.checked_shl(*b).unwrap_or(u64::MAX),
                allocations: *n,
                bytes: *bytes,
            })
            .collect();
    let digest = LeakDigest {
        summary,
        sites,
        sites_not_listed,
        timeline,
        histogram,
        vmm: f.t.vmm_used.then(|| f.t.vmm.clone()),
        pools: f.t.pools.clone(),
    };
    let findings = findings(&digest, input);
    let mut metrics = BTreeMap::new();
    let exact = |v: f64, unit: &str| Metric::new(v, unit, Better::Lower).kind(MetricKind::Exact);
    metrics.insert(
        "left_allocated_bytes".into(),
        exact(digest.summary.left_bytes as f64, "bytes"),
    );
    metrics.insert(
        "left_allocations".into(),
        exact(digest.summary.left_allocations as f64, "count"),
    );
    metrics.insert(
        "live_peak_bytes".into(),
        exact(digest.summary.peak_bytes as f64, "bytes"),
    );
    if let Some(g) = &digest.timeline.growth {
        metrics.insert(
            "growth_bytes_per_s".into(),
            Metric::new(g.rate_bytes_per_s, "bytes/s", Better::Lower).kind(MetricKind::SingleShot),
        );
    }
    LeakAnalysis {
        digest,
        findings,
        metrics,
    }
}

/// Frames of the CUDA runtime and driver (and the shim): the call site is the first frame
/// past them.
fn is_runtime(f: &Frame) -> bool {
    let object = f
        .object
        .as_deref()
        .map(|o| o.rsplit('/').next().unwrap_or(o))
        .unwrap_or("");
    if object.starts_with("libcudart")
        || object.starts_with("libcuda.so")
        || object.contains("gpu_doctor_shim")
    {
        return true;
    }
    let Some(name) = f.function.as_deref() else {
        return false;
    };
    let cuda_api = name
        .strip_prefix("cuda")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
    cuda_api
        || name.starts_with("cudart")
        || name.starts_with("__cudart")
        || name.starts_with("libcudart")
        || name.starts_with("cuMem")
}

fn frames_of(l: &Live, symbols: &Symbols) -> Vec<Frame> {
    l.bt.iter()
        .map(|a| {
            symbols
                .frames
                .get(&(l.pid, a.clone()))
                .cloned()
                .unwrap_or_else(|| Frame {
                    addr: a.clone(),
                    ..Default::default()
                })
        })
        .collect()
}

/// The allocations left, by call site: the first frame outside the runtime (by object and
/// address in it, so the same site in several processes is one).
fn group_sites(
    left: &[(Live, Fate)],
    symbols: &Symbols,
    secs: &dyn Fn(u64) -> f64,
) -> (Vec<SiteGroup>, u64) {
    let mut groups: Vec<(String, SiteGroup, BTreeSet<Fate>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (l, fate) in left {
        let frames = frames_of(l, symbols);
        let site = frames
            .iter()
            .find(|f| !is_runtime(f))
            .or(frames.first())
            .cloned();
        let (key, label) = match &site {
            Some(f) => match (&f.object, f.offset) {
                (Some(o), Some(off)) => (format!("{o}+{off:#x}"), f.label()),
                _ => (format!("{}:{}", l.pid, f.addr), f.label()),
            },
            None => ("(no backtrace)".to_string(), "(no backtrace)".to_string()),
        };
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((
                key,
                SiteGroup {
                    site: label,
                    frames,
                    first_s: secs(l.t_us),
                    last_s: secs(l.t_us),
                    ..Default::default()
                },
                BTreeSet::new(),
            ));
            groups.len() - 1
        });
        let (_, g, fates) = &mut groups[i];
        g.bytes += l.size;
        g.allocations += 1;
        g.first_s = g.first_s.min(secs(l.t_us));
        g.last_s = g.last_s.max(secs(l.t_us));
        if !g.calls.contains(&l.call) {
            g.calls.push(l.call.clone());
        }
        fates.insert(*fate);
    }
    let mut out: Vec<SiteGroup> = groups
        .into_iter()
        .map(|(_, mut g, fates)| {
            g.fate = fates.iter().map(|f| f.text().to_string()).collect();
            g
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.first_s.total_cmp(&b.first_s)));
    let not_listed = out.len().saturating_sub(LeakDigest::MAX_SITES) as u64;
    out.truncate(LeakDigest::MAX_SITES);
    (out, not_listed)
}

/// Points of the step function on a grid, for fits.
const GRID: usize = 100;
/// Windows of the timeline shown.
const WINDOWS: usize = 10;
/// Growth below this over the growth window is not reported.
const MIN_GROWTH_BYTES: u64 = 8 << 20;
/// A straight line must explain this share of the variance.
const MIN_R2: f64 = 0.8;

/// The timeline from the first allocation to `end_us`; growth is judged up to `growth_end_us`
/// (the program's own run, before gpu-doctor's exit hook released caches).
fn timeline(
    series: &Series,
    start_us: u64,
    end_us: u64,
    growth_end_us: u64,
    peak: u64,
    free_near_end: Option<u64>,
) -> Timeline {
    let Some(&(first_us, _)) = series.points.first() else {
        return Timeline::default();
    };
    let end_us = end_us.max(first_us);
    let s = |t: u64| t.saturating_sub(start_us) as f64 / 1e6;
    let span = end_us - first_us;
    // The points: at most MAX_POINTS, the step function sampled evenly, plus the peak.
    let n = Timeline::MAX_POINTS.min(series.points.len() + 1).max(2);
    let mut points: Vec<(f64, u64)> = (0..n)
        .map(|i| {
            let t = first_us + span * i as u64 / (n as u64 - 1);
            (s(t), series.at(t))
        })
        .collect();
    if !points.iter().any(|p| p.1 == peak)
        && let Some(&(t_peak, _)) = series.points.iter().find(|p| p.1 == peak)
    {
        points.push((s(t_peak), peak));
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let windows = if span == 0 {
        vec![]
    } else {
        (0..WINDOWS)
            .map(|i| {
                let a = first_us + span * i as u64 / WINDOWS as u64;
                let b = first_us + span * (i as u64 + 1) / WINDOWS as u64;
                Window {
                    from_s: s(a),
                    to_s: s(b),
                    start_bytes: series.at(a),
                    end_bytes: series.at(b),
                    rate_bytes_per_s: series.rate(a, b),
                }
            })
            .collect()
    };
    let growth =
        growth(series, first_us, growth_end_us.min(end_us)).map(|(rate, from, to, grown, r2)| {
            Growth {
                rate_bytes_per_s: rate,
                from_s: s(from),
                to_s: s(to),
                grown_bytes: grown,
                r2,
                free_bytes: free_near_end,
                oom_in_s: free_near_end.map(|f| f as f64 / rate),
            }
        });
    Timeline {
        points,
        windows,
        growth,
    }
}

/// Least squares over (x, y): (slope, R²).
fn fit(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return (0.0, 0.0);
    }
    (sxy / sxx, sxy * sxy / (sxx * syy))
}

/// Sustained growth that lasts to the end of the run: the longest trailing window (from 0%,
/// 10%, … 70% of the run on) where a straight line fits the bytes held (R² ≥ [`MIN_R2`]),
/// climbing by at least [`MIN_GROWTH_BYTES`] in at least four separate steps, and still
/// climbing in the last quarter (a warm-up that levels off is not a leak).
/// (rate bytes/s, from µs, to µs, grown bytes, R²).
fn growth(series: &Series, first_us: u64, end_us: u64) -> Option<(f64, u64, u64, u64, f64)> {
    let span = end_us.checked_sub(first_us).filter(|s| *s > 0)?;
    let grid: Vec<(u64, u64)> = (0..=GRID)
        .map(|i| {
            let t = first_us + span * i as u64 / GRID as u64;
            (t, series.at(t))
        })
        .collect();
    for start in (0..=70).step_by(10) {
        let part = &grid[start..];
        let xs: Vec<f64> = part.iter().map(|p| p.0 as f64 / 1e6).collect();
        let ys: Vec<f64> = part.iter().map(|p| p.1 as f64).collect();
        let (slope, r2) = fit(&xs, &ys);
        let duration = xs[xs.len() - 1] - xs[0];
        let grown = (slope * duration).max(0.0) as u64;
        let steps = part.windows(2).filter(|w| w[1].1 > w[0].1).count();
        let quarter = &grid[75..];
        let late = quarter[quarter.len() - 1].1 as f64 - quarter[0].1 as f64;
        let still_climbing = late >= 0.5 * slope * (duration * 25.0 / (100 - start) as f64);
        if slope > 0.0 && r2 >= MIN_R2 && grown >= MIN_GROWTH_BYTES && steps >= 4 && still_climbing
        {
            return Some((slope, part[0].0, end_us, grown, r2));
        }
    }
    None
}

fn findings(d: &LeakDigest, input: &Input<'_>) -> Vec<Finding> {
    let s = &d.summary;
    let mut out = Vec::new();
    let top = |fate: &str| -> String {
        let sites: Vec<&SiteGroup> = d
            .sites
            .iter()
            .filter(|g| g.fate.iter().any(|f| f == fate))
            .collect();
        let shown: Vec<String> = sites
            .iter()
            .take(3)
            .map(|g| {
                format!(
                    "{} ({} in {})",
                    g.site,
                    format_bytes(g.bytes),
                    g.allocations
                )
            })
            .collect();
        let more = if sites.len() > 3 {
            format!(" and {} more", sites.len() - 3)
        } else {
            String::new()
        };
        format!("{} call site(s): {}{more}", sites.len(), shown.join(", "))
    };
    if s.at_exit_allocations > 0 {
        let (severity, what, hint) = if input.stopped {
            (
                Severity::Info,
                "still allocated when gpu-doctor stopped the program",
                "A program stopped while running holds what it is using: the timeline says whether it grows.",
            )
        } else {
            (
                Severity::Warn,
                "still allocated when the program ended (freed only by process exit)",
                "Free them before exit (cuMemFree / cudaFree / cuMemRelease). A long-running service never reaches exit: read the timeline, or stop it with --survive-after.",
            )
        };
        out.push(
            Finding::new(
                severity,
                codes::LEAK_AT_EXIT,
                format!(
                    "{} in {} allocation(s) {what}, at {}.",
                    format_bytes(s.at_exit_bytes),
                    s.at_exit_allocations,
                    top(Fate::Exit.text())
                ),
            )
            .hint(hint),
        );
    }
    if s.ctx_destroy_allocations > 0 {
        out.push(
            Finding::new(
                Severity::Warn,
                codes::LEAK_AT_CONTEXT_DESTROY,
                format!(
                    "{} in {} allocation(s) were freed only when their context was destroyed (cuCtxDestroy, cudaDeviceReset), at {}.",
                    format_bytes(s.ctx_destroy_bytes),
                    s.ctx_destroy_allocations,
                    top(Fate::CtxDestroy.text())
                ),
            )
            .hint("compute-sanitizer --leak-check full reports these (it checks at context destroy); free them before destroying the context."),
        );
    }
    if s.referenced_at_exit_allocations > 0 {
        let frameworks: BTreeSet<&str> = d.pools.iter().map(|p| p.framework.as_str()).collect();
        out.push(
            Finding::new(
                Severity::Info,
                codes::REFERENCED_AT_EXIT,
                format!(
                    "{} in {} allocation(s) of {}'s allocator were still referenced at exit, after its cache was released: live objects (a model, globals), not by itself a leak.",
                    format_bytes(s.referenced_at_exit_bytes),
                    s.referenced_at_exit_allocations,
                    frameworks.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
            .hint("With a caching allocator, a leak shows as growth over the run (DEVICE_MEMORY_GROWING); docs/memory.md."),
        );
    }
    for p in &d.pools {
        let cached = match p.reserved_after_bytes {
            Some(_) => p.released_bytes,
            None => p
                .reserved_bytes
                .unwrap_or(0)
                .saturating_sub(p.in_use_bytes.unwrap_or(0)),
        };
        if cached == 0 {
            continue;
        }
        let how = if p.reserved_after_bytes.is_some() {
            format!(
                "released at exit by gpu-doctor's hook ({} allocation(s) freed)",
                p.released_allocations
            )
        } else {
            "kept until exit: its allocator cannot release it".to_string()
        };
        out.push(Finding::new(
            Severity::Info,
            codes::POOL_CACHED_AT_EXIT,
            format!(
                "{} (pid {}, cuda{}): its pool held {} it was not using ({} in use of {} reserved), {how}: cached, not leaked.",
                p.framework,
                p.pid,
                p.dev.map_or("?".into(), |d| d.to_string()),
                format_bytes(cached),
                p.in_use_bytes.map_or("?".into(), format_bytes),
                p.reserved_bytes.map_or("?".into(), format_bytes)
            ),
        ));
    }
    if let Some(g) = &d.timeline.growth {
        let oom = match (g.oom_in_s, g.free_bytes) {
            (Some(t), Some(free)) => format!(
                "; OOM in about {} at this rate ({} free)",
                format_span(t),
                format_bytes(free)
            ),
            _ => String::new(),
        };
        out.push(
            Finding::new(
                Severity::Warn,
                codes::DEVICE_MEMORY_GROWING,
                format!(
                    "Device memory grows {}/s for {} (+{}, a steady climb: R² {:.2}): a leak{oom}.",
                    format_bytes(g.rate_bytes_per_s.max(0.0) as u64),
                    format_span(g.to_s - g.from_s),
                    format_bytes(g.grown_bytes),
                    g.r2
                ),
            )
            .hint("The sites that allocated during the climb are in the report (left allocated, by call site) when they were never freed; with a caching allocator look for references kept across steps (lists, caches, closures)."),
        );
    }
    if let Some(limit) = input.fail_over
        && s.left_bytes > limit
    {
        out.push(Finding::new(
            Severity::Fail,
            codes::LEAK_OVER_LIMIT,
            format!(
                "{} left allocated, over --fail-over {}.",
                format_bytes(s.left_bytes),
                format_bytes(limit)
            ),
        ));
    }
    if s.allocations > 0 && s.left_allocations == 0 && d.timeline.growth.is_none() {
        out.push(Finding::new(
            Severity::Info,
            codes::LEAK_CHECK_CLEAN,
            format!(
                "Every one of the {} allocation(s) ({}) was freed by the program; the most held at once was {}.",
                s.allocations,
                format_bytes(s.allocated_bytes),
                format_bytes(s.peak_bytes)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ev(kind: &str, t_us: u64) -> ShimEvent {
        ShimEvent {
            ev: kind.into(),
            pid: 10,
            tid: 11,
            t_us,
            ..Default::default()
        }
    }

    fn alloc(t_us: u64, ptr: u64, size: u64, bt: &[&str]) -> ShimEvent {
        ShimEvent {
            call: Some("cuMemAlloc_v2".into()),
            ptr: Some(format!("{ptr:#x}")),
            size: Some(size),
            dev: Some(0),
            ctx: Some("0xc0".into()),
            bt: Some(bt.iter().map(|s| s.to_string()).collect()),
            maps: Some(1),
            ..ev("alloc", t_us)
        }
    }

    fn free(t_us: u64, ptr: u64) -> ShimEvent {
        ShimEvent {
            call: Some("cuMemFree_v2".into()),
            ptr: Some(format!("{ptr:#x}")),
            ..ev("free", t_us)
        }
    }

    fn frame(addr: &str, function: &str, object: &str, offset: u64) -> Frame {
        Frame {
            addr: addr.into(),
            object: Some(object.into()),
            offset: Some(offset),
            function: Some(function.into()),
            file: Some("/src/app.c".into()),
            line: Some(offset as u32),
        }
    }

    /// Two sites in the program, reached through the runtime's cudaMalloc.
    fn symbols() -> Symbols {
        let mut s = Symbols::default();
        for (a, f, o, off) in [
            ("0x1", "cudaMalloc", "/usr/lib/libcudart.so.12", 0x100),
            ("0xa", "load_weights", "/app/bin", 10),
            ("0xb", "scratch", "/app/bin", 20),
            ("0xc", "main", "/app/bin", 30),
        ] {
            s.frames.insert((10, a.into()), frame(a, f, o, off));
        }
        s
    }

    fn input<'a>(events: &'a [ShimEvent], symbols: &'a Symbols, end_us: u64) -> Input<'a> {
        static NONE: BTreeMap<i64, u64> = BTreeMap::new();
        Input {
            events,
            symbols,
            start_us: 0,
            end_us,
            stopped: false,
            free_bytes: &NONE,
            fail_over: None,
        }
    }

    fn codes_of(a: &LeakAnalysis) -> Vec<&str> {
        a.findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn leaks_are_grouped_by_the_first_frame_past_the_runtime() {
        let sym = symbols();
        let events = vec![
            alloc(1_000, 0x100, MIB, &["0x1", "0xa", "0xc"]),
            alloc(2_000, 0x200, 2 * MIB, &["0x1", "0xa", "0xc"]),
            alloc(3_000, 0x300, 3 * MIB, &["0x1", "0xb", "0xc"]),
            alloc(4_000, 0x400, 4 * MIB, &["0x1", "0xb", "0xc"]),
            free(5_000, 0x400),
            free(5_500, 0x999),
        ];
        let a = analyze(&input(&events, &sym, 10_000));
        let s = &a.digest.summary;
        assert_eq!((s.allocations, s.frees, s.unknown_frees), (4, 1, 1));
        assert_eq!((s.at_exit_allocations, s.at_exit_bytes), (3, 6 * MIB));
        assert_eq!(s.left_bytes, 6 * MIB);
        assert_eq!((s.peak_bytes, s.peak_at_s), (10 * MIB, 0.004));
        let sites: Vec<(&str, u64, u64)> = a
            .digest
            .sites
            .iter()
            .map(|g| (g.site.as_str(), g.bytes, g.allocations))
            .collect();
        assert_eq!(
            sites,
            vec![
                ("load_weights (app.c:10)", 3 * MIB, 2),
                ("scratch (app.c:20)", 3 * MIB, 1)
            ],
            "the same bytes: the earlier site first; 0x1 (cudaMalloc) is skipped"
        );
        assert_eq!(a.digest.sites[0].first_s, 0.001);
        assert_eq!(a.digest.sites[0].last_s, 0.002);
        assert_eq!(a.digest.sites[0].frames.len(), 3);
        assert_eq!(a.digest.sites[0].fate, vec!["exit"]);
        assert_eq!(codes_of(&a), vec![codes::LEAK_AT_EXIT]);
        assert!(
            a.findings[0].message.contains("2 call site(s)"),
            "{}",
            a.findings[0].message
        );
        assert_eq!(a.metrics["left_allocated_bytes"].value, (6 * MIB) as f64);
    }

    #[test]
    fn context_destroy_frees_its_allocations_and_fail_over_fails() {
        let sym = symbols();
        let created = ShimEvent {
            call: Some("cuCtxCreate_v2".into()),
            code: Some(0),
            ctx: Some("0xc0".into()),
            ..ev("ctx", 500)
        };
        let destroy = ShimEvent {
            call: Some("cuCtxDestroy_v2".into()),
            code: Some(0),
            ctx: Some("0xc0".into()),
            ..ev("ctx", 9_000)
        };
        let mut other_ctx = alloc(2_000, 0x200, 2 * MIB, &["0xb"]);
        other_ctx.ctx = Some("0xd0".into());
        let events = vec![
            created,
            alloc(1_000, 0x100, MIB, &["0xa"]),
            other_ctx,
            destroy,
        ];
        let mut inp = input(&events, &sym, 10_000);
        inp.fail_over = Some(2 * MIB);
        let a = analyze(&inp);
        let s = &a.digest.summary;
        assert_eq!((s.ctx_destroy_allocations, s.ctx_destroy_bytes), (1, MIB));
        assert_eq!((s.at_exit_allocations, s.at_exit_bytes), (1, 2 * MIB));
        assert_eq!(s.left_bytes, 3 * MIB);
        let c = codes_of(&a);
        assert!(c.contains(&codes::LEAK_AT_CONTEXT_DESTROY), "{c:?}");
        assert!(c.contains(&codes::LEAK_OVER_LIMIT), "{c:?}");
        let fail = a
            .findings
            .iter()
            .find(|f| f.code == codes::LEAK_OVER_LIMIT)
            .unwrap();
        assert_eq!(fail.severity, Severity::Fail);
        // The held bytes drop at the destroy.
        let last = a.digest.timeline.points.last().unwrap();
        assert_eq!(last.1, 2 * MIB);
    }

    #[test]
    fn primary_reset_frees_only_primary_context_allocations() {
        let sym = Symbols::default();
        let created = ShimEvent {
            call: Some("cuCtxCreate_v2".into()),
            code: Some(0),
            ctx: Some("0xd0".into()),
            ..ev("ctx", 100)
        };
        let mut own = alloc(2_000, 0x200, 2 * MIB, &[]);
        own.ctx = Some("0xd0".into());
        let reset = ShimEvent {
            call: Some("cuDevicePrimaryCtxReset_v2".into()),
            code: Some(0),
            dev: Some(0),
            ..ev("ctx", 3_000)
        };
        let events = vec![created, alloc(1_000, 0x100, MIB, &[]), own, reset];
        let a = analyze(&input(&events, &sym, 4_000));
        assert_eq!(a.digest.summary.ctx_destroy_bytes, MIB);
        assert_eq!(a.digest.summary.at_exit_bytes, 2 * MIB);
        assert_eq!(a.digest.sites[0].site, "(no backtrace)");
    }

    #[test]
    fn a_clean_run_says_so() {
        let sym = symbols();
        let events = vec![
            alloc(1_000, 0x100, MIB, &["0xa"]),
            free(2_000, 0x100),
            alloc(3_000, 0x100, 5 * MIB, &["0xa"]),
            free(4_000, 0x100),
        ];
        let a = analyze(&input(&events, &sym, 5_000));
        assert_eq!(codes_of(&a), vec![codes::LEAK_CHECK_CLEAN]);
        assert_eq!(a.digest.summary.peak_bytes, 5 * MIB);
        assert_eq!(
            a.digest
                .histogram
                .iter()
                .map(|b| (b.up_to_bytes, b.allocations))
                .collect::<Vec<_>>(),
            vec![(MIB, 1), (8 * MIB, 1)]
        );
    }

    #[test]
    fn vmm_handles_live_until_released_and_unmapped() {
        let sym = Symbols::default();
        let h = |t, kind: &str, handle: u64, size: u64| ShimEvent {
            call: Some(
                if kind == "alloc" {
                    "cuMemCreate"
                } else {
                    "cuMemRelease"
                }
                .into(),
            ),
            handle: Some(format!("{handle:#x}")),
            size: Some(size),
            dev: Some(0),
            ..ev(kind, t)
        };
        let vm = |t, kind: &str, ptr: u64, size: u64, handle: Option<u64>| ShimEvent {
            ptr: Some(format!("{ptr:#x}")),
            size: Some(size),
            handle: handle.map(|h| format!("{h:#x}")),
            ..ev(kind, t)
        };
        let events = vec![
            vm(100, "reserve", 0x7000, 16 * MIB, None),
            h(200, "alloc", 1, 2 * MIB),
            h(300, "alloc", 2, 2 * MIB),
            vm(400, "map", 0x7000, 2 * MIB, Some(1)),
            vm(500, "map", 0x7000 + 2 * MIB, 2 * MIB, Some(2)),
            // The usual idiom: release right after mapping; the memory lives until unmapped.
            h(600, "free", 2, 2 * MIB),
            vm(700, "unmap", 0x7000 + 2 * MIB, 2 * MIB, None),
        ];
        let a = analyze(&input(&events, &sym, 1_000));
        let v = a.digest.vmm.as_ref().unwrap();
        assert_eq!(
            (v.reserved_peak_bytes, v.reserved_at_end_bytes),
            (16 * MIB, 16 * MIB)
        );
        assert_eq!(
            (v.mapped_peak_bytes, v.mapped_at_end_bytes),
            (4 * MIB, 2 * MIB)
        );
        assert_eq!(
            (v.created_peak_bytes, v.created_at_end_bytes),
            (4 * MIB, 2 * MIB)
        );
        assert_eq!(
            (v.reservations_left, v.mappings_left, v.handles_left),
            (1, 1, 1)
        );
        let s = &a.digest.summary;
        assert_eq!(
            (s.frees, s.at_exit_bytes, s.peak_bytes),
            (1, 2 * MIB, 4 * MIB)
        );
        let held: Vec<u64> = a.digest.timeline.points.iter().map(|p| p.1).collect();
        assert!(
            held.contains(&(4 * MIB)) && *held.last().unwrap() == 2 * MIB,
            "{held:?}"
        );
    }

    #[test]
    fn framework_cache_released_at_exit_is_told_apart() {
        let sym = Symbols::default();
        let pool = |t, phase: &str, reserved| ShimEvent {
            framework: Some("torch".into()),
            phase: Some(phase.into()),
            dev: Some(0),
            in_use: Some(MIB),
            reserved: Some(reserved),
            ..ev("pool", t)
        };
        let events = vec![
            alloc(1_000, 0x100, 20 * MIB, &[]),
            alloc(2_000, 0x200, 2 * MIB, &[]),
            pool(3_000, "before", 22 * MIB),
            free(3_100, 0x100),
            pool(3_200, "after", 2 * MIB),
        ];
        let a = analyze(&input(&events, &sym, 4_000));
        let s = &a.digest.summary;
        assert_eq!(
            (s.pool_cached_allocations, s.pool_cached_bytes),
            (1, 20 * MIB)
        );
        assert_eq!(s.referenced_at_exit_bytes, 2 * MIB);
        assert_eq!(s.at_exit_bytes, 0);
        assert_eq!(
            codes_of(&a),
            vec![codes::REFERENCED_AT_EXIT, codes::POOL_CACHED_AT_EXIT]
        );
        let p = &a.digest.pools[0];
        assert_eq!(
            (p.released_bytes, p.reserved_after_bytes),
            (20 * MIB, Some(2 * MIB))
        );
        assert!(
            a.findings.iter().all(|f| f.severity == Severity::Info),
            "a framework's objects at exit and its cache are no leak"
        );
    }

    /// The cache released by the exit hook is a drop of gpu-doctor's making: growth is judged
    /// on the run before it.
    #[test]
    fn growth_is_judged_before_the_exit_hook_released_the_cache() {
        let sym = Symbols::default();
        let mut events = steady(true);
        let t = 60_100_000;
        events.push(ShimEvent {
            framework: Some("torch".into()),
            phase: Some("before".into()),
            dev: Some(0),
            ..ev("pool", t)
        });
        for i in 0..600u64 {
            events.push(free(t + 1 + i, 0x1000 + i));
        }
        events.push(ShimEvent {
            framework: Some("torch".into()),
            phase: Some("after".into()),
            dev: Some(0),
            ..ev("pool", t + 1000)
        });
        let a = analyze(&input(&events, &sym, t + 2_000_000));
        assert!(
            a.digest.timeline.growth.is_some(),
            "{:?}",
            a.digest.timeline.windows
        );
        assert_eq!(a.digest.summary.pool_cached_allocations, 600);
    }

    /// A steady leak: 4 MiB every 100 ms for 60 s after a 1 GiB model load.
    fn steady(with_leak: bool) -> Vec<ShimEvent> {
        let mut v = vec![alloc(50_000, 0x1, 1 << 30, &[])];
        for i in 0..600u64 {
            let t = 100_000 + i * 100_000;
            v.push(alloc(t, 0x1000 + i, 4 * MIB, &[]));
            if !with_leak {
                v.push(free(t + 50_000, 0x1000 + i));
            }
        }
        v
    }

    #[test]
    fn steady_growth_is_a_leak_with_an_oom_estimate() {
        let sym = Symbols::default();
        let events = steady(true);
        let free = BTreeMap::from([(0i64, 20u64 << 30)]);
        let mut inp = input(&events, &sym, 60_100_000);
        inp.free_bytes = &free;
        inp.stopped = true;
        let a = analyze(&inp);
        let g = a.digest.timeline.growth.as_ref().expect("growth");
        let rate_mib = g.rate_bytes_per_s / MIB as f64;
        assert!((rate_mib - 40.0).abs() < 1.0, "{rate_mib} MiB/s");
        assert!(g.r2 > 0.99);
        assert!(g.to_s - g.from_s > 50.0, "{g:?}");
        let oom = g.oom_in_s.unwrap();
        assert!((oom - 512.0).abs() < 15.0, "20 GiB at 40 MiB/s: {oom}");
        let f = a
            .findings
            .iter()
            .find(|f| f.code == codes::DEVICE_MEMORY_GROWING)
            .unwrap();
        assert!(f.message.contains("OOM in about 8.5 min"), "{}", f.message);
        assert!(f.message.contains("MiB/s for 60 s"), "{}", f.message);
        let leak = a
            .findings
            .iter()
            .find(|f| f.code == codes::LEAK_AT_EXIT)
            .unwrap();
        assert_eq!(
            leak.severity,
            Severity::Info,
            "stopped: held, not leaked at exit"
        );
        assert_eq!(a.digest.timeline.windows.len(), WINDOWS);
        assert!(
            a.digest
                .timeline
                .windows
                .iter()
                .skip(1)
                .all(|w| w.rate_bytes_per_s > 30.0 * MIB as f64)
        );
        assert!(a.digest.timeline.points.len() <= Timeline::MAX_POINTS + 1);
    }

    #[test]
    fn flat_use_and_a_warm_up_are_no_growth() {
        let sym = Symbols::default();
        let events = steady(false);
        let a = analyze(&input(&events, &sym, 60_100_000));
        assert!(a.digest.timeline.growth.is_none());
        // Warm-up: grows for the first 40% of the run, then flat.
        let mut warm = vec![];
        for i in 0..40u64 {
            warm.push(alloc(i * 100_000, 0x1000 + i, 16 * MIB, &[]));
        }
        let a = analyze(&input(&warm, &sym, 10_000_000));
        assert!(
            a.digest.timeline.growth.is_none(),
            "{:?}",
            a.digest.timeline.growth
        );
        // One big allocation is one step, not a climb.
        let one = vec![alloc(5_000_000, 0x1, 1 << 30, &[])];
        let a = analyze(&input(&one, &sym, 10_000_000));
        assert!(a.digest.timeline.growth.is_none());
    }

    #[test]
    fn tracker_reports_held_and_recent_rate() {
        let mut t = Tracker::new(0);
        for e in steady(true).iter().take(101) {
            t.feed(e);
        }
        let (held, peak) = t.held();
        assert_eq!(held, (1 << 30) + 100 * 4 * MIB);
        assert_eq!(peak, held);
        assert_eq!(t.counts(), (101, 0));
        let rate = t.recent_rate(10_000_000, 5_000_000) / MIB as f64;
        assert!((rate - 40.0).abs() < 1.0, "{rate}");
    }
}
