//! `bandwidth` (and `topo --bandwidth`): measured rates per path against the link's
//! theoretical rate, the peer matrices, and where the host buffers were.

use crate::analyze::bandwidth::PathResult;
use crate::facts::bandwidth::{DeviceRun, Method, path as bw_path};
use crate::render::style::Style;

/// Measured bandwidth per path against the link's theoretical rate, then the peer matrices.
pub fn bandwidth(
    out: &mut String,
    method: &Method,
    results: &[PathResult],
    devices: &[DeviceRun],
    style: Style,
) {
    let m = method;
    let per_device: Vec<&PathResult> = results.iter().filter(|r| r.peer.is_none()).collect();
    if !per_device.is_empty() {
        let mut t = style.table();
        t.set_header([
            "GPU",
            "path",
            "GB/s (median)",
            "min – max",
            "theoretical",
            "efficiency",
            "verified",
            "timing",
        ]);
        for r in per_device {
            let path = match r.read_write_gbps {
                Some(rw) => format!("{} (read+write {rw:.0})", r.path),
                None => r.path.clone(),
            };
            t.add_row([
                r.device.to_string(),
                path,
                format!("{:.1}", r.median),
                format!("{:.1} – {:.1}", r.min, r.max),
                theoretical(r),
                r.efficiency
                    .map(|e| format!("{:.0}%", e * 100.0))
                    .unwrap_or_else(|| "-".into()),
                verified(r.verified),
                r.timing.clone(),
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
        let mut header = vec!["src \\ dst".to_string()];
        header.extend(gpus.iter().map(|g| format!("GPU{g}")));
        t.set_header(header);
        for &a in &gpus {
            let mut row = vec![format!("GPU{a}")];
            for &b in &gpus {
                let cell = rows
                    .iter()
                    .find(|r| r.device == a && r.peer == Some(b))
                    .map(|r| {
                        let eff = r
                            .efficiency
                            .map(|e| format!(" ({:.0}%)", e * 100.0))
                            .unwrap_or_default();
                        let bad = if r.verified == Some(false) {
                            " MISMATCH"
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
    let notes: Vec<String> = devices
        .iter()
        .map(|d| {
            let p = &d.placement;
            let node = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "?".into());
            let mut s = format!(
                "GPU{}: NUMA node {}, pinned buffer on node {}, pageable on node {}; thread pinned to GPU CPUs: {}",
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
            s
        })
        .collect();
    if !notes.is_empty() {
        out.push_str(&format!("{}\n", notes.join("\n")));
    }
}

fn theoretical(r: &PathResult) -> String {
    match (r.theoretical_gbps, &r.theoretical_basis) {
        (Some(g), Some(b)) => format!("{g:.1} ({b})"),
        _ => "-".into(),
    }
}

fn verified(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "MISMATCH".into(),
        None => "-".into(),
    }
}
