//! Tables of `leak-check` (data.leaks, facts::leaks::LeakDigest): what was left allocated by
//! call site and the stacks behind the first sites, the live-bytes timeline, the size
//! histogram, the virtual memory API and the framework pools. Built for 80 columns: long
//! function names are cut with "…", stacks are listed below the table.

use crate::facts::leaks::{LeakDigest, SiteGroup};
use crate::render::style::Style;
use crate::render::text::cut;
use crate::units::format_bytes as b;

/// Stacks listed below the sites table.
const STACKS_SHOWN: usize = 3;
/// Width of the call site column, and of a stack line.
const SITE_WIDTH: usize = 28;
const LINE_WIDTH: usize = 78;

/// Seconds with as many decimals as a run of `span` seconds needs to tell moments apart.
fn secs(v: f64, span: f64) -> String {
    let decimals = match span {
        s if s < 0.1 => 3,
        s if s < 1.0 => 2,
        s if s < 100.0 => 1,
        _ => 0,
    };
    format!("{v:.decimals$}")
}

/// The run's length as the timeline knows it.
fn run_span(d: &LeakDigest) -> f64 {
    d.timeline.points.last().map_or(0.0, |p| p.0)
}

fn fate_short(f: &str) -> &str {
    match f {
        "context destroy" => "ctx",
        "referenced at exit" => "ref",
        other => other,
    }
}

pub fn render(out: &mut String, d: &LeakDigest, style: Style) {
    let s = &d.summary;
    out.push_str(&format!(
        "  {} allocation(s) of {}, {} free(s); most held {} at {} s\n",
        s.allocations,
        b(s.allocated_bytes),
        s.frees,
        b(s.peak_bytes),
        secs(s.peak_at_s, run_span(d))
    ));
    out.push_str(&format!(
        "  left allocated {} in {}: at exit {}, until context destroy {}\n",
        b(s.left_bytes),
        s.left_allocations,
        b(s.at_exit_bytes),
        b(s.ctx_destroy_bytes)
    ));
    if s.referenced_at_exit_allocations > 0 || s.pool_cached_allocations > 0 {
        let line = format!(
            "  framework pools: {} referenced at exit, {} only cached (released at exit)",
            b(s.referenced_at_exit_bytes),
            b(s.pool_cached_bytes)
        );
        out.push_str(&style.wrap(&line, 4));
        out.push('\n');
    }
    if s.unknown_frees > 0 {
        out.push_str(&format!(
            "  {} free(s) of memory allocated before the shim saw it\n",
            s.unknown_frees
        ));
    }
    sites(out, d, style);
    timeline(out, d, style);
    histogram(out, d, style);
    vmm(out, d, style);
    pools(out, d, style);
}

fn sites(out: &mut String, d: &LeakDigest, style: Style) {
    if d.sites.is_empty() {
        return;
    }
    let span = run_span(d);
    let mut t = style.table();
    t.set_header(["call site", "bytes", "allocs", "t (s)", "ended by"]);
    for g in &d.sites {
        t.add_row([
            cut(&g.site, SITE_WIDTH),
            b(g.bytes),
            g.allocations.to_string(),
            if g.first_s == g.last_s {
                secs(g.first_s, span)
            } else {
                format!("{}–{}", secs(g.first_s, span), secs(g.last_s, span))
            },
            g.fate
                .iter()
                .map(|f| fate_short(f))
                .collect::<Vec<_>>()
                .join("+"),
        ]);
    }
    let more = if d.sites_not_listed > 0 {
        format!(" ({} more not listed)", d.sites_not_listed)
    } else {
        String::new()
    };
    style.section(out, &format!("Left allocated, by call site{more}"), t);
    out.push_str(
        "  ended by: exit (process exit), ctx (context destroy), ref (referenced at exit)\n",
    );
    for g in d.sites.iter().take(STACKS_SHOWN) {
        stack(out, g);
    }
}

fn stack(out: &mut String, g: &SiteGroup) {
    if g.frames.is_empty() {
        return;
    }
    out.push_str(&format!(
        "  {} ({}):\n",
        cut(&g.site, 50),
        g.calls.join(", ")
    ));
    for f in &g.frames {
        out.push_str(&format!("      {}\n", cut(&f.label(), LINE_WIDTH - 6)));
    }
}

/// Eight levels of a bar, for the sparkline.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const SPARK_WIDTH: usize = 60;

fn timeline(out: &mut String, d: &LeakDigest, style: Style) {
    let tl = &d.timeline;
    let (Some(first), Some(last)) = (tl.points.first(), tl.points.last()) else {
        return;
    };
    let max = tl.points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let span = (last.0 - first.0).max(f64::MIN_POSITIVE);
    let spark: String = (0..SPARK_WIDTH)
        .map(|i| {
            let t = first.0 + span * i as f64 / (SPARK_WIDTH - 1) as f64;
            let v = tl
                .points
                .iter()
                .take_while(|p| p.0 <= t)
                .last()
                .map_or(0, |p| p.1);
            BARS[((v as f64 / max as f64) * 7.0).round() as usize]
        })
        .collect();
    let at = |v: f64| secs(v, last.0);
    out.push_str(&format!(
        "\nDevice memory held, {}–{} s (max {})\n  {spark}\n",
        at(first.0),
        at(last.0),
        b(max)
    ));
    if let Some(g) = &tl.growth {
        out.push_str(&format!(
            "  grows {}/s from {} s to {} s (R² {:.2})\n",
            b(g.rate_bytes_per_s.max(0.0) as u64),
            at(g.from_s),
            at(g.to_s),
            g.r2
        ));
        if let (Some(t), Some(free)) = (g.oom_in_s, g.free_bytes) {
            out.push_str(&format!(
                "  OOM in about {} at this rate ({} free)\n",
                crate::units::format_span(t),
                b(free)
            ));
        }
    }
    if tl.windows.is_empty() {
        return;
    }
    let mut t = style.table();
    t.set_header(["window (s)", "held at start", "held at end", "rate"]);
    for w in &tl.windows {
        let sign = if w.rate_bytes_per_s < 0.0 { "-" } else { "+" };
        t.add_row([
            format!("{}–{}", at(w.from_s), at(w.to_s)),
            b(w.start_bytes),
            b(w.end_bytes),
            format!("{sign}{}/s", b(w.rate_bytes_per_s.abs() as u64)),
        ]);
    }
    style.section(out, "Held over the run, by window", t);
}

fn histogram(out: &mut String, d: &LeakDigest, style: Style) {
    if d.histogram.is_empty() {
        return;
    }
    let mut t = style.table();
    t.set_header(["size up to", "allocations", "bytes"]);
    for h in &d.histogram {
        t.add_row([b(h.up_to_bytes), h.allocations.to_string(), b(h.bytes)]);
    }
    style.section(out, "Allocation sizes", t);
}

fn vmm(out: &mut String, d: &LeakDigest, style: Style) {
    let Some(v) = &d.vmm else { return };
    let mut t = style.table();
    t.set_header(["virtual memory", "reserved", "mapped", "created"]);
    t.add_row([
        "peak".to_string(),
        b(v.reserved_peak_bytes),
        b(v.mapped_peak_bytes),
        b(v.created_peak_bytes),
    ]);
    t.add_row([
        "at end".to_string(),
        b(v.reserved_at_end_bytes),
        b(v.mapped_at_end_bytes),
        b(v.created_at_end_bytes),
    ]);
    t.add_row([
        "left (count)".to_string(),
        v.reservations_left.to_string(),
        v.mappings_left.to_string(),
        v.handles_left.to_string(),
    ]);
    style.section(out, "Virtual memory API: address space against memory", t);
}

fn pools(out: &mut String, d: &LeakDigest, style: Style) {
    if d.pools.is_empty() {
        return;
    }
    let o = |v: Option<u64>| v.map_or("-".into(), b);
    let mut t = style.table();
    t.set_header([
        "framework",
        "pid",
        "dev",
        "in use",
        "pool",
        "after",
        "released",
    ]);
    for p in &d.pools {
        t.add_row([
            p.framework.clone(),
            p.pid.to_string(),
            p.dev.map_or("-".into(), |d| d.to_string()),
            o(p.in_use_bytes),
            o(p.reserved_bytes),
            o(p.reserved_after_bytes),
            b(p.released_bytes),
        ]);
    }
    style.section(out, "Framework pools at exit", t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::leaks::{Frame, Growth, LeakSummary, Timeline, Window};

    #[test]
    fn fits_80_columns() {
        let long = "std::vector<float, std::allocator<float> >::_M_realloc_insert<float const&>(__gnu_cxx::__normal_iterator)";
        let d = LeakDigest {
            summary: LeakSummary {
                allocations: 3,
                left_bytes: 3 << 30,
                left_allocations: 3,
                ..Default::default()
            },
            sites: vec![SiteGroup {
                site: long.into(),
                frames: vec![Frame {
                    addr: "0x1".into(),
                    function: Some(long.into()),
                    ..Default::default()
                }],
                bytes: 3 << 30,
                allocations: 3,
                first_s: 1234.5,
                last_s: 99999.9,
                calls: vec!["cuMemAlloc_v2".into()],
                fate: vec!["exit".into(), "context destroy".into()],
            }],
            timeline: Timeline {
                points: vec![(0.0, 0), (99999.9, 5 << 30)],
                windows: vec![Window {
                    from_s: 0.0,
                    to_s: 99999.0,
                    start_bytes: 0,
                    end_bytes: 5 << 30,
                    rate_bytes_per_s: -12.0 * 1048576.0,
                }],
                growth: Some(Growth {
                    rate_bytes_per_s: 12.0 * 1048576.0,
                    from_s: 0.0,
                    to_s: 10.0,
                    grown_bytes: 5 << 30,
                    r2: 0.99,
                    free_bytes: Some(28 << 30),
                    oom_in_s: Some(2400.0),
                }),
            },
            ..Default::default()
        };
        let mut out = String::new();
        render(&mut out, &d, Style::terminal(false));
        for l in out.lines() {
            assert!(
                l.chars().count() <= 80,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(out.contains("OOM in about 40.0 min"), "{out}");
        assert!(out.contains("exit+ctx"), "{out}");
        assert!(out.contains('…'));
    }
}
