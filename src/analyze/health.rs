//! `info` findings: what an operator must act on, from [`GpuHealth`].

use crate::facts::GpuHealth;
use crate::report::{Finding, Severity, codes};

/// Clock-event reasons that mean the GPU is being slowed by heat or power delivery (names as
/// nvml-wrapper gives them). Tested as set intersection: the mask has many bits at once.
pub const SLOWDOWN_REASONS: &[&str] = &[
    "HW_SLOWDOWN",
    "SW_THERMAL_SLOWDOWN",
    "HW_THERMAL_SLOWDOWN",
    "HW_POWER_BRAKE_SLOWDOWN",
];

/// A GPU NVML calls lost: the one verdict that matters for it.
pub fn lost_finding(index: u32, why: &str) -> Finding {
    Finding::new(
        Severity::Fail,
        codes::GPU_LOST,
        format!("GPU {index} is lost: {why}"),
    )
    .device(index)
    .hint("NVIDIA's action for a GPU fallen off the bus (XID 79): drain the node and reboot it; if it happens again, reseat or replace the GPU and check its power and PCIe slot.")
}

pub fn findings(gpus: &[GpuHealth]) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in gpus {
        let i = g.index;
        if let Some(why) = &g.lost {
            out.push(lost_finding(i, why));
            continue;
        }
        if g.persistence_mode == Some(false) {
            out.push(
                Finding::new(Severity::Info, codes::PERSISTENCE_OFF, format!("GPU {i} persistence mode is off"))
                    .device(i)
                    .hint("Each CUDA start-up re-initialises the GPU when no client holds it; servers usually run nvidia-persistenced."),
            );
        }
        if g.ecc_mode_current == Some(false) {
            out.push(
                Finding::new(
                    Severity::Info,
                    codes::ECC_DISABLED,
                    format!("GPU {i} ECC is disabled"),
                )
                .device(i)
                .hint("Memory errors go undetected; data-centre GPUs normally run with ECC on."),
            );
        }
        if g.remap_failed == Some(true) {
            out.push(
                Finding::new(Severity::Fail, codes::ROW_REMAP_FAILED, format!("GPU {i} row remapping failed"))
                    .device(i)
                    .hint("The GPU has run out of spare rows or hit an error while remapping: drain the node and RMA the GPU."),
            );
        }
        if g.remap_pending == Some(true) {
            out.push(
                Finding::new(Severity::Fail, codes::ROW_REMAP_PENDING, format!("GPU {i} has a row remap pending"))
                    .device(i)
                    .hint("Drain the GPU and reset it (or reboot the node) to apply the remap; until then the bad row stays in use."),
            );
        }
        if g.retired_pages_pending == Some(true) {
            out.push(
                Finding::new(
                    Severity::Warn,
                    codes::RETIRED_PAGES_PENDING,
                    format!("GPU {i} has pages pending retirement"),
                )
                .device(i)
                .hint("Reset the GPU when it is idle to retire them."),
            );
        }
        if let Some(n) = g.ecc_volatile_uncorrected.filter(|&n| n > 0) {
            out.push(
                Finding::new(Severity::Fail, codes::ECC_UNCORRECTABLE, format!("GPU {i} counted {n} uncorrectable ECC error(s) since the driver loaded"))
                    .device(i)
                    .hint("Applications on this GPU may have been killed (XID 48/94/95). Check `dmesg` for XIDs and the recovery action; drain if they recur."),
            );
        } else if let Some(n) = g.ecc_aggregate_uncorrected.filter(|&n| n > 0) {
            out.push(
                Finding::new(Severity::Warn, codes::ECC_UNCORRECTABLE, format!("GPU {i} has {n} uncorrectable ECC error(s) over its lifetime (none since the driver loaded)"))
                    .device(i)
                    .hint("Past errors; watch for new ones and for row remap status."),
            );
        }
        if let Some(action) = g.recovery_action.as_deref().filter(|a| *a != "none") {
            out.push(
                Finding::new(
                    Severity::Fail,
                    codes::RECOVERY_ACTION,
                    format!("GPU {i}: the driver recommends recovery action '{action}'"),
                )
                .device(i)
                .hint(match action {
                    "gpu_reset" => "Drain the GPU's work and reset it (nvidia-smi -r) once idle.",
                    "node_reboot" => "Drain the node and reboot it.",
                    "drain_p2p" => "Stop peer-to-peer traffic to this GPU, then reset it.",
                    "drain_and_reset" => "Drain the GPU and reset it.",
                    _ => "See NVIDIA's XID catalog for this action.",
                }),
            );
        }
        let slow: Vec<&str> = g
            .clock_event_reasons
            .iter()
            .map(String::as_str)
            .filter(|r| SLOWDOWN_REASONS.contains(r))
            .collect();
        if !slow.is_empty() {
            out.push(
                Finding::new(Severity::Warn, codes::THERMAL_THROTTLE, format!("GPU {i} clocks are held down by {}", slow.join(", ")))
                    .device(i)
                    .hint("Check cooling, airflow and power delivery (temperature and power draw above); HW_POWER_BRAKE means the chassis asserted the brake."),
            );
        }
        if !g.processes.is_empty() {
            let total: u64 = g.processes.iter().filter_map(|p| p.used_bytes).sum();
            out.push(
                Finding::new(
                    Severity::Info,
                    codes::FOREIGN_PROCESSES,
                    format!(
                        "GPU {i} has {} process(es) holding {} MiB",
                        g.processes.len(),
                        total >> 20
                    ),
                )
                .device(i),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> GpuHealth {
        GpuHealth {
            persistence_mode: Some(true),
            ecc_mode_current: Some(true),
            remap_pending: Some(false),
            remap_failed: Some(false),
            ecc_volatile_uncorrected: Some(0),
            recovery_action: Some("none".into()),
            clock_event_reasons: vec!["GPU_IDLE".into()],
            ..Default::default()
        }
    }

    #[test]
    fn healthy_gpu_has_no_findings() {
        assert!(findings(&[healthy()]).is_empty());
    }

    #[test]
    fn operator_actions_are_failures() {
        let mut g = healthy();
        g.remap_pending = Some(true);
        g.ecc_volatile_uncorrected = Some(2);
        g.recovery_action = Some("gpu_reset".into());
        let f = findings(&[g]);
        for code in [
            codes::ROW_REMAP_PENDING,
            codes::ECC_UNCORRECTABLE,
            codes::RECOVERY_ACTION,
        ] {
            assert!(
                f.iter()
                    .any(|x| x.code == code && x.severity == Severity::Fail),
                "{code}"
            );
        }
    }

    #[test]
    fn slowdown_reasons_are_found_among_other_bits() {
        let mut g = healthy();
        g.clock_event_reasons = vec![
            "GPU_IDLE".into(),
            "SW_POWER_CAP".into(),
            "HW_THERMAL_SLOWDOWN".into(),
        ];
        let f = findings(&[g]);
        let t: Vec<_> = f
            .iter()
            .filter(|x| x.code == codes::THERMAL_THROTTLE)
            .collect();
        assert_eq!(t.len(), 1);
        assert!(
            t[0].message.contains("HW_THERMAL_SLOWDOWN") && !t[0].message.contains("SW_POWER_CAP")
        );
    }

    #[test]
    fn persistence_off_is_info() {
        let mut g = healthy();
        g.persistence_mode = Some(false);
        let f = findings(&[g]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
    }
}
