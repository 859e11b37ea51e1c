//! `info`: per-GPU health as one table per GPU.

use crate::facts::GpuHealth;
use crate::render::style::Style;

/// One table per GPU: memory, modes, temperature, power, clocks, ECC and remapping.
pub fn info(out: &mut String, gpus: &[GpuHealth], style: Style) {
    let b = |v: Option<bool>| match v {
        Some(true) => "on".to_string(),
        Some(false) => "off".to_string(),
        None => "-".to_string(),
    };
    let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let n32 = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for g in gpus {
        let mut t = style.table();
        t.set_header(["GPU ".to_string() + &g.index.to_string(), g.name.clone()]);
        let mib = |v: Option<u64>| {
            v.map(|x| format!("{} MiB", x >> 20))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "memory used / total",
                format!(
                    "{} / {}",
                    mib(g.memory_used_bytes),
                    mib(g.memory_total_bytes)
                ),
            ),
            (
                "compute capability",
                g.compute_capability.clone().unwrap_or_default(),
            ),
            (
                "persistence / ECC / MIG",
                format!(
                    "{} / {} / {}",
                    b(g.persistence_mode),
                    b(g.ecc_mode_current),
                    b(g.mig_mode_current)
                ),
            ),
            (
                "compute mode",
                g.compute_mode.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "temperature",
                g.temperature_c
                    .map(|t| format!("{t} °C"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "power draw / limit",
                format!(
                    "{} / {}",
                    g.power_draw_w
                        .map(|w| format!("{w:.0} W"))
                        .unwrap_or_else(|| "-".into()),
                    g.power_limit_w
                        .map(|w| format!("{w:.0} W"))
                        .unwrap_or_else(|| "-".into())
                ),
            ),
            ("P-state", g.pstate.clone().unwrap_or_else(|| "-".into())),
            (
                "SM / memory clock",
                format!(
                    "{} / {} MHz (SM max {})",
                    n32(g.sm_clock_mhz),
                    n32(g.memory_clock_mhz),
                    n32(g.sm_clock_max_mhz)
                ),
            ),
            (
                "clock event reasons",
                if g.clock_event_reasons.is_empty() {
                    "none".into()
                } else {
                    g.clock_event_reasons.join(", ")
                },
            ),
            (
                "retired pages sbe / dbe / pending",
                format!(
                    "{} / {} / {}",
                    n32(g.retired_pages_sbe),
                    n32(g.retired_pages_dbe),
                    b(g.retired_pages_pending)
                ),
            ),
            (
                "remapped rows corr / uncorr",
                format!(
                    "{} / {}",
                    n32(g.remapped_rows_correctable),
                    n32(g.remapped_rows_uncorrectable)
                ),
            ),
            (
                "row remap pending / failed",
                format!("{} / {}", b(g.remap_pending), b(g.remap_failed)),
            ),
            (
                "ECC volatile corr / uncorr",
                format!(
                    "{} / {}",
                    n(g.ecc_volatile_corrected),
                    n(g.ecc_volatile_uncorrected)
                ),
            ),
            (
                "ECC aggregate corr / uncorr",
                format!(
                    "{} / {}",
                    n(g.ecc_aggregate_corrected),
                    n(g.ecc_aggregate_uncorrected)
                ),
            ),
            (
                "recovery action",
                g.recovery_action
                    .clone()
                    .unwrap_or_else(|| "- (not reported by this driver)".into()),
            ),
            ("VBIOS", g.vbios_version.clone().unwrap_or_default()),
            (
                "processes",
                if g.processes.is_empty() {
                    "none".into()
                } else {
                    g.processes
                        .iter()
                        .map(|p| format!("{} ({} MiB)", p.pid, p.used_bytes.unwrap_or(0) >> 20))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ];
        for (k, v) in rows {
            t.add_row([k.to_string(), v]);
        }
        if !g.unsupported.is_empty() {
            t.add_row(["not reported".to_string(), g.unsupported.join(", ")]);
        }
        style.section(out, "", t);
    }
}
