//! Writes two large reports for bench/compare.sh: `gen_reports OUTDIR [N]` → OUTDIR/baseline.json
//! and OUTDIR/current.json, each with N findings and N metrics (default 10,000) on 8 GPUs.
//! The current one differs: 1 % of metrics down 20 %, 1 % of findings replaced by new ones.

use gpu_doctor::report::{Better, DeviceInfo, Finding, Metric, Report, Severity};

fn report(n: usize, current: bool) -> Report {
    let mut r = Report::begin("bandwidth", serde_json::json!({}));
    r.host.hostname = "bench".into();
    r.host.driver_version = Some("580.159.04".into());
    r.devices = (0..8)
        .map(|i| DeviceInfo {
            index: i,
            uuid: format!("GPU-{i:08x}-bench"),
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + i),
            memory_total_bytes: 85_899_345_920,
            compute_capability: Some("9.0".into()),
            cuda_ordinal: Some(i),
        })
        .collect();
    for i in 0..n {
        let gpu = (i % 8) as u32;
        let moved = current && i % 100 == 0;
        let value = 1000.0 + i as f64;
        r.metrics.insert(
            format!("metric_{i:05}.gpu{gpu}"),
            Metric::new(
                if moved { value * 0.8 } else { value },
                "GB/s",
                if i % 2 == 0 {
                    Better::Higher
                } else {
                    Better::Lower
                },
            )
            .device(gpu),
        );
        let code = if current && i % 100 == 1 {
            format!("NEW_CODE_{}", i % 50)
        } else {
            format!("CODE_{}", i % 50)
        };
        r.findings.push(
            Finding::new(
                if i % 3 == 0 {
                    Severity::Warn
                } else {
                    Severity::Info
                },
                &code,
                format!("finding {i} on GPU {gpu}: something measured {value}"),
            )
            .device(gpu)
            .hint("a hint that makes the report as large as a real one"),
        );
    }
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: gen_reports OUTDIR [N]"));
    let n: usize = args.next().map(|s| s.parse().expect("N")).unwrap_or(10_000);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, current) in [("baseline.json", false), ("current.json", true)] {
        gpu_doctor::output::write_json_atomic(&dir.join(name), &report(n, current)).unwrap();
    }
}
