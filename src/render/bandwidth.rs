//! `bandwidth` (and `topo --bandwidth`): measured rates per path against the link's
//! theoretical rate, the peer matrices, and where the host buffers were.

use crate::analyze::bandwidth::PathResult;
use crate::facts::bandwidth::{DeviceRun, Method, SkippedPairs, path as bw_path};
use crate::render::style::Style;

/// Measured bandwidth per path against the link's theoretical rate, then the peer matrices.
/// Which link each rate is measured against, and how each path was timed, follow the table
/// (the same for most rows: a column would repeat it).
pub fn bandwidth(
    out: &mut String,
    method: &Method,
    results: &[PathResult],
    devices: &[DeviceRun],
    skipped: Option<&SkippedPairs>,
    style: Style,
) {
    let m = method;
    let per_device: Vec<&PathResult> = results.iter().filter(|r| r.peer.is_none()).collect();
    if !per_device.is_empty() {
        let mut t = style.table();
        t.set_header(["GPU", "path", "GB/s", "min–max", "of link", "check"]);
        for r in &per_device {
            let rate = match r.read_write_gbps {
                Some(rw) => format!("{:.1}\n{rw:.1} r+w", r.median),
                None => format!("{:.1}", r.median),
            };
            t.add_row([
                r.device.to_string(),
                r.path.clone(),
                rate,
                format!("{:.1}–{:.1}", r.min, r.max),
                of_link(r),
                verified(r.verified),
            ]);
        }
        style.section(
            out,
            &format!(
                "Bandwidth ({} MiB buffers, {} samples; GB/s = 10^9 B/s, bytes counted once)",
                m.size_bytes >> 20,
                m.samples
            ),
            t,
        );
        notes(out, &per_device, style);
    }
    for (p, title, unit) in [
        (bw_path::P2P, "Peer-to-peer, peer access on", "GB/s"),
        (
            bw_path::P2P_STAGED,
            "Peer-to-peer staged through the host",
            "GB/s",
        ),
        (
            bw_path::P2P_BIDIR,
            "Peer-to-peer bidirectional (both directions summed)",
            "GB/s",
        ),
        (bw_path::P2P_LATENCY, "Peer-to-peer latency", "µs per copy"),
    ] {
        let rows: Vec<&PathResult> = results.iter().filter(|r| r.path == p).collect();
        if rows.is_empty() {
            continue;
        }
        let mut gpus: Vec<u32> = rows
            .iter()
            .flat_map(|r| [r.device, r.peer.unwrap_or(r.device)])
            .collect();
        gpus.sort_unstable();
        gpus.dedup();
        let mut t = style.table();
        let mut header = vec!["GPU\nfrom \\ to".to_string()];
        header.extend(gpus.iter().map(|g| g.to_string()));
        t.set_header(header);
        for &a in &gpus {
            let mut row = vec![a.to_string()];
            for &b in &gpus {
                let cell = rows
                    .iter()
                    .find(|r| r.device == a && r.peer == Some(b))
                    .map(|r| {
                        let eff = r
                            .efficiency
                            .map(|e| format!("\n{:.0}% of link", e * 100.0))
                            .unwrap_or_default();
                        let bad = if r.verified == Some(false) {
                            "\nMISMATCH"
                        } else {
                            ""
                        };
                        format!("{:.1}{eff}{bad}", r.median)
                    })
                    .unwrap_or_else(|| if a == b { "X".into() } else { "-".into() });
                row.push(cell);
            }
            t.add_row(row);
        }
        style.section(out, &format!("{title} ({unit})"), t);
    }
    if let Some(s) = skipped {
        // The pairs themselves are in the JSON; "-" marks them in the matrices.
        style.para(
            out,
            &format!("Peer pairs not measured (-): {}", s.reason),
            2,
        );
    }
    for d in devices {
        let p = &d.placement;
        let node = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "?".into());
        let mut s = format!(
            "GPU {}: NUMA node {}, pinned buffer on node {}, pageable on node {}; thread pinned to GPU CPUs: {}",
            d.index,
            node(p.numa_node),
            node(p.pinned_buffer_node),
            node(p.pageable_buffer_node),
            if p.affinity_set { "yes" } else { "no" }
        );
        if let (Some(g), Some(w)) = (d.pcie_gen_under_load, d.pcie_width_under_load) {
            s += &format!("; PCIe under load Gen{g} x{w}");
        }
        if let Some(e) = &d.error {
            s += &format!("; stopped early: {e}");
        }
        style.para(out, &s, 2);
    }
}

/// "88% of 63.0": the efficiency and the link rate it is a fraction of, on the basis the rate
/// is counted (a device-local copy reads and writes each byte: both against the memory rate).
fn of_link(r: &PathResult) -> String {
    match (r.efficiency, r.theoretical_gbps) {
        (Some(e), Some(g)) => {
            let basis = if r.read_write_gbps.is_some() {
                " r+w"
            } else {
                ""
            };
            format!("{:.0}% of {g:.1}{basis}", e * 100.0)
        }
        _ => "-".into(),
    }
}

fn verified(v: Option<bool>) -> String {
    match v {
        Some(true) => "ok".into(),
        Some(false) => "MISMATCH".into(),
        None => "-".into(),
    }
}

/// Below the table: each link rate once, what "r+w" means, and how the paths were timed.
fn notes(out: &mut String, rows: &[&PathResult], style: Style) {
    let mut links: Vec<(String, String)> = Vec::new();
    for r in rows {
        if let (Some(g), Some(b)) = (r.theoretical_gbps, &r.theoretical_basis) {
            let rate = format!("{g:.1} GB/s");
            if !links.iter().any(|(x, _)| x == b) {
                links.push((b.clone(), rate));
            }
        }
    }
    if !links.is_empty() {
        let list: Vec<String> = links.iter().map(|(b, g)| format!("{b} = {g}")).collect();
        style.para(out, &format!("Link rates: {}.", list.join("; ")), 2);
    }
    if rows.iter().any(|r| r.read_write_gbps.is_some()) {
        style.para(
            out,
            "r+w: a device-local copy reads and writes every byte; counted both ways it is what the memory rate measures.",
            2,
        );
    }
    let mut timings: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in rows {
        match timings.iter_mut().find(|(t, _)| *t == r.timing) {
            Some((_, paths)) => {
                if !paths.contains(&r.path.as_str()) {
                    paths.push(&r.path)
                }
            }
            None => timings.push((&r.timing, vec![&r.path])),
        }
    }
    timings.sort_by_key(|(_, paths)| std::cmp::Reverse(paths.len()));
    let described: Vec<String> = timings
        .iter()
        .enumerate()
        .map(|(i, (t, paths))| {
            if i == 0 {
                t.to_string()
            } else {
                format!("{t} for {}", paths.join(", "))
            }
        })
        .collect();
    if let Some((first, rest)) = described.split_first() {
        let others = if rest.is_empty() {
            String::new()
        } else {
            format!(", except {}", rest.join("; "))
        };
        style.para(out, &format!("Timing: {first}{others}."), 2);
    }
}
