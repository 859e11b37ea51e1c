//! The exporter's metrics as Prometheus / OpenMetrics text, built with the Prometheus project's
//! own Rust client (`prometheus-client`): a registry of typed families per scrape, encoded as
//! OpenMetrics (what a Prometheus server asks for) or the Prometheus text format 0.0.4
//! (node_exporter's textfile collector, `promtool check metrics`, curl). docs/exporter.md lists
//! every metric with the dcgm-exporter name for the same quantity.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::analyze::live::XidTally;
use crate::facts::RECOVERY_ACTIONS;
use crate::facts::live::{EventWatchState, LiveGpu};
use crate::report::{DeviceInfo, Finding, Host};

/// Which text format a scrape is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format an HTTP `Accept` header asks for: OpenMetrics when it names it (a Prometheus
    /// server does), the 0.0.4 text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// A finding's series: 1 while it holds, 0 once it has ended (so a graph shows the end).
pub struct FindingSeries<'a> {
    pub finding: &'a Finding,
    pub holds: bool,
}

/// The exporter's own health for this scrape.
#[derive(Debug, Clone, Default)]
pub struct ExporterHealth {
    /// Reads and analysis of this scrape.
    pub scrape_seconds: f64,
    pub scrapes: u64,
    /// Per GPU: reads that failed (no answer in time, or an NVML error), and event waits that
    /// failed.
    pub nvml_errors: Vec<(u32, u64)>,
    /// Per GPU: Unix time of the last read it answered.
    pub last_read_unix_s: Vec<(u32, f64)>,
}

/// Everything one scrape shows.
pub struct Scrape<'a> {
    pub host: &'a Host,
    /// Identities read at the start: a GPU lost later keeps its labels.
    pub devices: &'a [DeviceInfo],
    pub readings: &'a [LiveGpu],
    pub findings: &'a [FindingSeries<'a>],
    pub xids: &'a [XidTally],
    /// NVML events counted since the start, per GPU: (gpu, type, count).
    pub events: &'a [(u32, &'static str, u64)],
    pub event_watch: &'a [EventWatchState],
    pub health: &'a ExporterHealth,
}

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

/// The clock-event reason names nvml-wrapper gives (the bits of NVML's mask, in order).
pub const CLOCK_EVENT_REASONS: &[&str] = &[
    "GPU_IDLE",
    "APPLICATIONS_CLOCKS_SETTING",
    "SW_POWER_CAPPING",
    "HW_SLOWDOWN",
    "SYNC_BOOST",
    "SW_THERMAL_SLOWDOWN",
    "HW_THERMAL_SLOWDOWN",
    "HW_POWER_BRAKE_SLOWDOWN",
    "DISPLAY_CLOCK_SETTING",
];

struct Builder {
    registry: Registry,
}

impl Builder {
    fn gauge(&mut self, name: &str, help: &str, unit: Option<Unit>) -> Family<Labels, GaugeF> {
        let f = Family::<Labels, GaugeF>::default();
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, f.clone()),
            None => self.registry.register(name, help, f.clone()),
        }
        f
    }

    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let f = Family::<Labels, Counter>::default();
        self.registry.register(name, help, f.clone());
        f
    }
}

fn set(f: &Family<Labels, GaugeF>, labels: &Labels, v: Option<f64>) {
    if let Some(v) = v {
        f.get_or_create(labels).set(v);
    }
}

fn count(f: &Family<Labels, Counter>, labels: &Labels, v: Option<u64>) {
    if let Some(v) = v {
        f.get_or_create(labels).inc_by(v);
    }
}

fn with(labels: &Labels, more: &[(&str, String)]) -> Labels {
    let mut l = labels.clone();
    l.extend(more.iter().map(|(k, v)| (k.to_string(), v.clone())));
    l
}

fn bit(b: Option<bool>) -> Option<f64> {
    b.map(|b| if b { 1.0 } else { 0.0 })
}

/// The scrape as text in `format`.
pub fn encode(s: &Scrape, format: Format) -> String {
    let mut b = Builder {
        registry: Registry::default(),
    };
    let hostname = s.host.hostname.clone();
    let version = |v: &Option<String>| v.clone().unwrap_or_default();
    b.registry.register(
        "gpu_doctor",
        "gpu-doctor and the driver it reads: versions (value 1)",
        Info::new(vec![
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("hostname".to_string(), hostname.clone()),
            (
                "driver_version".to_string(),
                version(&s.host.driver_version),
            ),
            (
                "cuda_driver_version".to_string(),
                version(&s.host.cuda_driver_version),
            ),
            ("nvml_version".to_string(), version(&s.host.nvml_version)),
        ]),
    );
    let gpu_info = b.gauge(
        "gpu_doctor_gpu_info",
        "One series per GPU with its identity and compute capability (value 1)",
        None,
    );
    let up = b.gauge(
        "gpu_doctor_gpu_up",
        "1 when the GPU answered this scrape's read, 0 when it is lost or did not answer",
        None,
    );
    let util = b.gauge(
        "gpu_doctor_gpu_utilization",
        "Fraction of the last sample period a kernel ran (nvmlDeviceGetUtilizationRates)",
        Some(Unit::Other("ratio".into())),
    );
    let mem_util = b.gauge(
        "gpu_doctor_memory_utilization",
        "Fraction of the last sample period device memory was read or written",
        Some(Unit::Other("ratio".into())),
    );
    let mem_used = b.gauge(
        "gpu_doctor_memory_used",
        "Device memory in use (all processes)",
        Some(Unit::Bytes),
    );
    let mem_total = b.gauge(
        "gpu_doctor_memory_total",
        "Device memory in all",
        Some(Unit::Bytes),
    );
    let temp = b.gauge(
        "gpu_doctor_temperature",
        "GPU core temperature",
        Some(Unit::Celsius),
    );
    let power = b.gauge(
        "gpu_doctor_power_draw",
        "Power draw",
        Some(Unit::Other("watts".into())),
    );
    let power_limit = b.gauge(
        "gpu_doctor_power_limit",
        "Enforced power limit",
        Some(Unit::Other("watts".into())),
    );
    let sm_clock = b.gauge(
        "gpu_doctor_sm_clock",
        "SM clock",
        Some(Unit::Other("hertz".into())),
    );
    let mem_clock = b.gauge(
        "gpu_doctor_memory_clock",
        "Memory clock",
        Some(Unit::Other("hertz".into())),
    );
    let reasons_mask = b.gauge(
        "gpu_doctor_clock_event_reasons",
        "NVML clock-event (throttle) reason bitmask; test bits, never equality",
        None,
    );
    let reason = b.gauge(
        "gpu_doctor_clock_event_active",
        "1 while the clock-event reason in label `reason` holds the clocks, else 0",
        None,
    );
    let pcie_gen = b.gauge(
        "gpu_doctor_pcie_link_generation",
        "PCIe generation the link runs at now (drops at idle to save power)",
        None,
    );
    let pcie_gen_max = b.gauge(
        "gpu_doctor_pcie_link_generation_max",
        "Highest PCIe generation the GPU and slot allow",
        None,
    );
    let pcie_width = b.gauge(
        "gpu_doctor_pcie_link_width",
        "PCIe lanes the link trained to",
        None,
    );
    let pcie_width_max = b.gauge(
        "gpu_doctor_pcie_link_width_max",
        "PCIe lanes the link supports",
        None,
    );
    let replays = b.counter(
        "gpu_doctor_pcie_replays",
        "PCIe replays since the driver loaded (a rising rate means a marginal link)",
    );
    let nvlink_up = b.gauge(
        "gpu_doctor_nvlink_up",
        "1 when the NVLink in label `link` is active, else 0",
        None,
    );
    let nvlink_errors = b.counter(
        "gpu_doctor_nvlink_errors",
        "NVLink error counters by link and `counter` (replay, recovery, crc_flit, crc_data)",
    );
    let ecc = b.counter(
        "gpu_doctor_ecc_errors",
        "ECC errors since the driver loaded (volatile), by `type` (corrected, uncorrected)",
    );
    let ecc_agg = b.counter(
        "gpu_doctor_ecc_aggregate_errors",
        "ECC errors over the GPU's life (aggregate), by `type`",
    );
    let retired = b.gauge(
        "gpu_doctor_retired_pages",
        "Pages retired, by `cause` (sbe, dbe)",
        None,
    );
    let retired_pending = b.gauge(
        "gpu_doctor_retired_pages_pending",
        "1 while pages wait for a reset to be retired",
        None,
    );
    let remapped = b.gauge(
        "gpu_doctor_remapped_rows",
        "Rows remapped, by `type` (correctable, uncorrectable)",
        None,
    );
    let remap_pending = b.gauge(
        "gpu_doctor_row_remap_pending",
        "1 while a row remap waits for a reset",
        None,
    );
    let remap_failed = b.gauge(
        "gpu_doctor_row_remap_failed",
        "1 when a row remap failed",
        None,
    );
    let recovery = b.gauge(
        "gpu_doctor_recovery_action",
        "The driver's recommended recovery action: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset",
        None,
    );
    let processes = b.gauge(
        "gpu_doctor_processes",
        "Compute processes holding memory on the GPU",
        None,
    );
    let xids = b.counter(
        "gpu_doctor_xid_errors",
        "XIDs NVML delivered since the exporter started, by `xid` and the `action` NVIDIA's catalog gives",
    );
    let events = b.counter(
        "gpu_doctor_nvml_events",
        "NVML events since the exporter started, by `type` (xid, double_bit_ecc, single_bit_ecc, clock_change)",
    );
    let finding = b.gauge(
        "gpu_doctor_finding",
        "1 while gpu-doctor's finding `code` holds (docs/report.md), 0 once it has ended; `severity` info, warn or fail",
        None,
    );
    let scrape = b.gauge(
        "gpu_doctor_exporter_scrape_duration",
        "Time this scrape spent reading every GPU and judging the readings",
        Some(Unit::Seconds),
    );
    let scrapes = b.counter("gpu_doctor_exporter_scrapes", "Scrapes served");
    let nvml_errors = b.counter(
        "gpu_doctor_exporter_nvml_errors",
        "Reads of the GPU that failed (no answer in time, or an NVML error) and event waits that failed",
    );
    let last_read = b.gauge(
        "gpu_doctor_exporter_last_read_timestamp",
        "Unix time of the last read the GPU answered",
        Some(Unit::Seconds),
    );
    let read_time = b.gauge(
        "gpu_doctor_exporter_read_duration",
        "Time this scrape's read of the GPU took",
        Some(Unit::Seconds),
    );
    let watched = b.gauge(
        "gpu_doctor_exporter_events_watched",
        "1 when XID events of the GPU are watched (NVML event set registered), else 0",
        None,
    );

    let labels = |gpu: u32| -> Labels {
        let d = s.devices.iter().find(|d| d.index == gpu);
        let field = |f: fn(&DeviceInfo) -> &String| d.map(f).cloned().unwrap_or_default();
        vec![
            ("gpu".into(), gpu.to_string()),
            ("uuid".into(), field(|d| &d.uuid)),
            ("pci_bus_id".into(), field(|d| &d.pci_bus_id)),
            ("model_name".into(), field(|d| &d.name)),
            ("hostname".into(), hostname.clone()),
        ]
    };

    for d in s.devices {
        let l = with(
            &labels(d.index),
            &[(
                "compute_capability",
                d.compute_capability.clone().unwrap_or_default(),
            )],
        );
        gpu_info.get_or_create(&l).set(1.0);
    }
    for r in s.readings {
        let l = labels(r.index);
        up.get_or_create(&l)
            .set(if r.answered() { 1.0 } else { 0.0 });
        read_time.get_or_create(&l).set(r.read_ms / 1e3);
        if !r.answered() {
            continue;
        }
        let h = &r.health;
        let pct = |v: Option<u32>| v.map(|p| f64::from(p) / 100.0);
        let mhz = |v: Option<u32>| v.map(|m| f64::from(m) * 1e6);
        let n = |v: Option<u32>| v.map(f64::from);
        set(&util, &l, pct(r.utilization_gpu_pct));
        set(&mem_util, &l, pct(r.utilization_memory_pct));
        set(&mem_used, &l, h.memory_used_bytes.map(|v| v as f64));
        set(&mem_total, &l, h.memory_total_bytes.map(|v| v as f64));
        set(&temp, &l, n(h.temperature_c));
        set(&power, &l, h.power_draw_w);
        set(&power_limit, &l, h.power_limit_w);
        set(&sm_clock, &l, mhz(h.sm_clock_mhz));
        set(&mem_clock, &l, mhz(h.memory_clock_mhz));
        set(
            &reasons_mask,
            &l,
            h.clock_event_reasons_mask.map(|m| m as f64),
        );
        if h.clock_event_reasons_mask.is_some() {
            for name in CLOCK_EVENT_REASONS {
                let on = h.clock_event_reasons.iter().any(|r| r == name);
                reason
                    .get_or_create(&with(&l, &[("reason", name.to_string())]))
                    .set(if on { 1.0 } else { 0.0 });
            }
        }
        let p = &r.topo.pcie;
        set(&pcie_gen, &l, n(p.current_gen));
        set(&pcie_gen_max, &l, n(p.max_gen));
        set(&pcie_width, &l, n(p.current_width));
        set(&pcie_width_max, &l, n(p.max_width));
        count(&replays, &l, p.replay_counter);
        for link in &r.topo.nvlinks {
            let ll = with(&l, &[("link", link.link.to_string())]);
            nvlink_up
                .get_or_create(&ll)
                .set(if link.active { 1.0 } else { 0.0 });
        }
        for e in &r.nvlink_errors {
            for (name, v) in [
                ("replay", e.replay),
                ("recovery", e.recovery),
                ("crc_flit", e.crc_flit),
                ("crc_data", e.crc_data),
            ] {
                let ll = with(
                    &l,
                    &[("link", e.link.to_string()), ("counter", name.into())],
                );
                count(&nvlink_errors, &ll, v);
            }
        }
        for (ty, vol, agg) in [
            (
                "corrected",
                h.ecc_volatile_corrected,
                h.ecc_aggregate_corrected,
            ),
            (
                "uncorrected",
                h.ecc_volatile_uncorrected,
                h.ecc_aggregate_uncorrected,
            ),
        ] {
            let ll = with(&l, &[("type", ty.into())]);
            count(&ecc, &ll, vol);
            count(&ecc_agg, &ll, agg);
        }
        for (cause, v) in [("sbe", h.retired_pages_sbe), ("dbe", h.retired_pages_dbe)] {
            set(&retired, &with(&l, &[("cause", cause.into())]), n(v));
        }
        set(&retired_pending, &l, bit(h.retired_pages_pending));
        for (ty, v) in [
            ("correctable", h.remapped_rows_correctable),
            ("uncorrectable", h.remapped_rows_uncorrectable),
        ] {
            set(&remapped, &with(&l, &[("type", ty.into())]), n(v));
        }
        set(&remap_pending, &l, bit(h.remap_pending));
        set(&remap_failed, &l, bit(h.remap_failed));
        set(
            &recovery,
            &l,
            h.recovery_action
                .as_deref()
                .and_then(|a| RECOVERY_ACTIONS.iter().position(|x| *x == a))
                .map(|i| i as f64),
        );
        processes.get_or_create(&l).set(h.processes.len() as f64);
    }
    for t in s.xids {
        let info = t.info();
        let xid = t
            .xid
            .map(|x| x.to_string())
            .unwrap_or_else(|| "unknown".into());
        let l = with(
            &labels(t.gpu),
            &[("xid", xid), ("action", info.action.as_str().into())],
        );
        xids.get_or_create(&l).inc_by(t.count);
    }
    for (gpu, ty, n) in s.events {
        events
            .get_or_create(&with(&labels(*gpu), &[("type", ty.to_string())]))
            .inc_by(*n);
    }
    for f in s.findings {
        let l: Labels = vec![
            ("code".into(), f.finding.code.clone()),
            ("severity".into(), f.finding.severity.as_str().into()),
            (
                "gpu".into(),
                f.finding.device.map(|d| d.to_string()).unwrap_or_default(),
            ),
        ];
        finding
            .get_or_create(&l)
            .set(if f.holds { 1.0 } else { 0.0 });
    }
    scrape
        .get_or_create(&Vec::new())
        .set(s.health.scrape_seconds);
    scrapes.get_or_create(&Vec::new()).inc_by(s.health.scrapes);
    for (gpu, n) in &s.health.nvml_errors {
        nvml_errors.get_or_create(&labels(*gpu)).inc_by(*n);
    }
    for (gpu, t) in &s.health.last_read_unix_s {
        last_read.get_or_create(&labels(*gpu)).set(*t);
    }
    for w in s.event_watch {
        watched
            .get_or_create(&labels(w.gpu))
            .set(if w.watches_xids() { 1.0 } else { 0.0 });
    }

    let mut out = String::new();
    let done = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &b.registry),
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &b.registry),
    };
    done.expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Severity, codes};

    fn scrape_text(format: Format) -> String {
        let host = Host {
            hostname: "box".into(),
            driver_version: Some("580.159.04".into()),
            cuda_driver_version: Some("13.0".into()),
            ..Default::default()
        };
        let devices = vec![
            DeviceInfo {
                index: 0,
                uuid: "GPU-a".into(),
                name: "NVIDIA H200".into(),
                pci_bus_id: "00000000:18:00.0".into(),
                ..Default::default()
            },
            DeviceInfo {
                index: 1,
                uuid: "GPU-b".into(),
                name: "NVIDIA H200".into(),
                pci_bus_id: "00000000:2A:00.0".into(),
                ..Default::default()
            },
        ];
        let mut r0 = LiveGpu {
            index: 0,
            utilization_gpu_pct: Some(50),
            ..Default::default()
        };
        r0.health.temperature_c = Some(40);
        r0.health.sm_clock_mhz = Some(1980);
        r0.health.clock_event_reasons_mask = Some(0x41);
        r0.health.clock_event_reasons = vec!["GPU_IDLE".into(), "HW_THERMAL_SLOWDOWN".into()];
        r0.health.recovery_action = Some("gpu_reset".into());
        r0.topo.pcie.replay_counter = Some(3);
        r0.health.retired_pages_dbe = Some(0);
        r0.health.retired_pages_pending = Some(false);
        let mut r1 = LiveGpu {
            index: 1,
            ..Default::default()
        };
        r1.health.lost = Some("lost".into());
        let f = Finding::new(Severity::Fail, codes::GPU_LOST, "lost").device(1);
        let old = Finding::new(Severity::Fail, codes::NVLINK_INACTIVE, "x").device(0);
        let findings = [
            FindingSeries {
                finding: &f,
                holds: true,
            },
            FindingSeries {
                finding: &old,
                holds: false,
            },
        ];
        let xids = [XidTally {
            gpu: 1,
            xid: Some(79),
            count: 1,
            ..Default::default()
        }];
        let health = ExporterHealth {
            scrape_seconds: 0.004,
            scrapes: 7,
            nvml_errors: vec![(1, 2)],
            last_read_unix_s: vec![(0, 1.7e9)],
        };
        encode(
            &Scrape {
                host: &host,
                devices: &devices,
                readings: &[r0, r1],
                findings: &findings,
                xids: &xids,
                events: &[(1, "xid", 1)],
                event_watch: &[],
                health: &health,
            },
            format,
        )
    }

    #[test]
    fn metrics_have_conventional_names_units_and_the_gpu_labels() {
        let t = scrape_text(Format::Text);
        let labels = r#"gpu="0",uuid="GPU-a",pci_bus_id="00000000:18:00.0",model_name="NVIDIA H200",hostname="box""#;
        for line in [
            r#"gpu_doctor_info{version="#.to_string(),
            format!("gpu_doctor_temperature_celsius{{{labels}}} 40"),
            format!("gpu_doctor_gpu_utilization_ratio{{{labels}}} 0.5"),
            format!("gpu_doctor_sm_clock_hertz{{{labels}}} 1980000000"),
            format!("gpu_doctor_pcie_replays_total{{{labels}}} 3"),
            format!("gpu_doctor_recovery_action{{{labels}}} 1"),
            format!(r#"gpu_doctor_clock_event_active{{{labels},reason="HW_THERMAL_SLOWDOWN"}} 1"#),
            format!(r#"gpu_doctor_clock_event_active{{{labels},reason="SW_POWER_CAPPING"}} 0"#),
            r#"gpu_doctor_xid_errors_total{gpu="1",uuid="GPU-b",pci_bus_id="00000000:2A:00.0",model_name="NVIDIA H200",hostname="box",xid="79",action="reboot_node"} 1"#.to_string(),
            r#"gpu_doctor_finding{code="GPU_LOST",severity="fail",gpu="1"} 1"#.to_string(),
            r#"gpu_doctor_finding{code="NVLINK_INACTIVE",severity="fail",gpu="0"} 0"#.to_string(),
            r#"gpu_doctor_gpu_up{gpu="1",uuid="GPU-b",pci_bus_id="00000000:2A:00.0",model_name="NVIDIA H200",hostname="box"} 0"#.to_string(),
            "gpu_doctor_exporter_scrapes_total 7".to_string(),
            "# TYPE gpu_doctor_info gauge".to_string(),
        ] {
            assert!(t.lines().any(|l| l.starts_with(&line)), "no line {line} in\n{t}");
        }
        assert!(!t.contains("# EOF") && !t.contains("# UNIT"));
        assert!(
            !t.contains("gpu_doctor_temperature_celsius{gpu=\"1\""),
            "a lost GPU has no readings"
        );
    }

    #[test]
    fn openmetrics_ends_with_eof_and_carries_units() {
        let t = scrape_text(Format::OpenMetrics);
        assert!(t.ends_with("# EOF\n"));
        assert!(t.contains("# UNIT gpu_doctor_temperature_celsius celsius"));
        assert!(t.contains("# TYPE gpu_doctor info"));
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    #[test]
    fn every_metric_is_in_the_docs() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exporter.md"))
                .unwrap();
        let text = scrape_text(Format::Text);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert!(names.len() >= 20, "{names:?}");
        for n in names {
            assert!(
                docs.contains(&format!("| `{n}` |")),
                "docs/exporter.md has no row for {n}"
            );
        }
    }
}
