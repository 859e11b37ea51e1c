//! `health`'s own verdicts (the ones `info` and `topo` do not already make): the driver and
//! the GPU count a node must have, the quick GPU check, and which finding is the node's worst
//! (the one a scheduler is told about).

use std::collections::BTreeMap;

use crate::facts::gpu_check::GpuCheckRun;
use crate::report::{Better, Finding, Metric, MetricKind, Report, Severity, codes};

/// The driver did not load where GPUs are expected.
pub fn driver_not_loaded(why: &str, expected: u32) -> Finding {
    Finding::new(
        Severity::Fail,
        codes::DRIVER_NOT_LOADED,
        format!("the NVIDIA driver did not load on a node that should have {expected} GPU(s): {why}"),
    )
    .hint("Check `dmesg | grep -i nvrm`, that the nvidia kernel module matches the installed driver (a kernel update without DKMS rebuild is the usual cause), then reboot.")
}

/// The GPU count against `--expect-gpus`.
pub fn gpu_count(expected: Option<u32>, seen: u32) -> Option<Finding> {
    let expected = expected.filter(|&e| e != seen)?;
    Some(
        Finding::new(
            Severity::Fail,
            codes::GPU_COUNT_MISMATCH,
            format!("NVML sees {seen} GPU(s), this node should have {expected}"),
        )
        .hint(if seen < expected {
            "A GPU is missing: it fell off the bus before the driver loaded, or is not seated. `lspci | grep -i nvidia` shows whether the host still sees it; drain and reboot, then service the GPU."
        } else {
            "More GPUs than expected: check --expect-gpus for this node type."
        }),
    )
}

/// The quick check's findings and per-GPU metrics. Without CUDA (`unavailable`, or a GPU hidden
/// from CUDA) it is a warning, or a failure when `unavailable_fails` (`--on-error drain`).
pub fn gpu_check(
    run: &GpuCheckRun,
    unavailable_fails: bool,
) -> (Vec<Finding>, BTreeMap<String, Metric>) {
    let mut findings = Vec::new();
    let mut metrics = BTreeMap::new();
    let unavailable_severity = if unavailable_fails {
        Severity::Fail
    } else {
        Severity::Warn
    };
    if let Some(why) = &run.unavailable {
        findings.push(
            Finding::new(
                unavailable_severity,
                codes::GPU_CHECK_UNAVAILABLE,
                format!("the quick GPU check could not run: {why}"),
            )
            .hint("NVML's findings still stand; the GPUs were not given work. With --on-error drain this fails the node."),
        );
        return (findings, metrics);
    }
    let suffix = |i: u32| {
        if run.gpus.len() > 1 {
            format!(".gpu{i}")
        } else {
            String::new()
        }
    };
    for g in &run.gpus {
        let i = g.index;
        if let Some(who) = &g.busy {
            findings.push(
                Finding::new(Severity::Info, codes::GPU_CHECK_UNAVAILABLE, format!("GPU {i} is in use ({who}): the quick check left it alone"))
                    .device(i)
                    .hint("A context and an allocation would compete with the job for device memory; NVML's checks still ran. The Prolog/Epilog check it between jobs."),
            );
            continue;
        }
        if let Some(why) = &g.unavailable {
            findings.push(
                Finding::new(unavailable_severity, codes::GPU_CHECK_UNAVAILABLE, format!("GPU {i} could not be checked: {why}"))
                    .device(i)
                    .hint("A GPU NVML sees but CUDA does not: check CUDA_VISIBLE_DEVICES and the container's device list."),
            );
            continue;
        }
        if g.timed_out {
            let at = g.in_flight.as_deref().unwrap_or("setting up");
            findings.push(
                Finding::new(
                    Severity::Fail,
                    codes::GPU_CHECK_TIMEOUT,
                    format!("GPU {i} did not finish its quick check within {:.0} s (stuck in {at})", run.timeout_ms / 1e3),
                )
                .device(i)
                .hint("A GPU that does not finish a 1 MiB fill hangs: look for XIDs in `dmesg`; drain the node and reset the GPU (or reboot)."),
            );
            continue;
        }
        if let Some(c) = g.first_failure() {
            findings.push(
                Finding::new(
                    Severity::Fail,
                    codes::GPU_CHECK_FAILED,
                    format!("GPU {i}: {} answered {}", c.call, c.observed),
                )
                .device(i)
                .hint("The GPU cannot run work. Check `dmesg` for XIDs (NVIDIA's XID catalog gives the action); drain the node and reset the GPU, or reboot."),
            );
        } else if g.value_ok == Some(false) {
            findings.push(
                Finding::new(
                    Severity::Fail,
                    codes::GPU_CHECK_FAILED,
                    format!("GPU {i}: the kernel's result read back is wrong (every call succeeded)"),
                )
                .device(i)
                .hint("Silent data corruption: drain the node and run the vendor's diagnostics (dcgmi diag -r 3) on this GPU."),
            );
        }
        if g.passed() {
            metrics.insert(
                format!("gpu_check_ms{}", suffix(i)),
                Metric::new(g.elapsed_ms, "ms", Better::Lower)
                    .device(i)
                    .kind(MetricKind::SingleShot),
            );
        }
    }
    (findings, metrics)
}

/// Codes that say the node itself is unusable, worst first: they win over any per-GPU finding
/// of the same severity when one finding must speak for the node.
const NODE_FIRST: &[&str] = &[
    codes::HEALTH_CANNOT_RUN,
    codes::DRIVER_NOT_LOADED,
    codes::GPU_LOST,
    codes::GPU_COUNT_MISMATCH,
    codes::GPU_CHECK_TIMEOUT,
    codes::GPU_CHECK_FAILED,
    codes::ROW_REMAP_FAILED,
    codes::ECC_UNCORRECTABLE,
    codes::ROW_REMAP_PENDING,
    codes::RECOVERY_ACTION,
    codes::NVLINK_INACTIVE,
    codes::PCIE_WIDTH_DEGRADED,
];

/// The finding that speaks for the node: the most severe, and among those the first of
/// [`NODE_FIRST`], else the first reported. None when there is no finding above info.
/// `--thorough`'s findings and metrics: each GPU's `inject oom` report (its warnings and
/// failures, its metrics prefixed `oom_` with the GPU when there are several) and the parts
/// that could not run.
pub fn thorough(oom: &[Report], skipped: &[String]) -> (Vec<Finding>, BTreeMap<String, Metric>) {
    let mut findings = Vec::new();
    let mut metrics = BTreeMap::new();
    let several = oom.len() > 1;
    for r in oom {
        let gpu = r.devices.first().map(|d| d.index);
        if let Some(why) = r.data.get("skipped_reason").and_then(|v| v.as_str()) {
            findings.push(Finding::new(
                Severity::Warn,
                codes::GPU_CHECK_UNAVAILABLE,
                format!("--thorough: inject oom could not run: {why}"),
            ));
            continue;
        }
        findings.extend(
            r.findings
                .iter()
                .filter(|f| f.severity > Severity::Info)
                .cloned(),
        );
        for (name, m) in &r.metrics {
            let suffix = match (several, gpu) {
                (true, Some(i)) => format!(".gpu{i}"),
                _ => String::new(),
            };
            metrics.insert(format!("oom_{name}{suffix}"), m.clone());
        }
    }
    for why in skipped {
        findings.push(Finding::new(
            Severity::Warn,
            codes::GPU_CHECK_UNAVAILABLE,
            format!("--thorough: {why}"),
        ));
    }
    (findings, metrics)
}

pub fn worst(findings: &[Finding]) -> Option<&Finding> {
    let top = findings.iter().map(|f| f.severity).max()?;
    if top == Severity::Info {
        return None;
    }
    let rank = |f: &Finding| {
        NODE_FIRST
            .iter()
            .position(|c| *c == f.code)
            .unwrap_or(NODE_FIRST.len())
    };
    findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.severity == top)
        .min_by_key(|(i, f)| (rank(f), *i))
        .map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::gpu_check::{CheckCall, GpuCheck};
    use crate::report::Code;

    fn call(name: &str, code: i64, err: &str) -> CheckCall {
        CheckCall {
            call: name.into(),
            observed: Code {
                code,
                name: err.into(),
            },
            elapsed_ms: 1.0,
        }
    }

    fn healthy(i: u32) -> GpuCheck {
        GpuCheck {
            index: i,
            calls: vec![
                call("cuDevicePrimaryCtxRetain", 0, "CUDA_SUCCESS"),
                call("cuCtxSynchronize", 0, "CUDA_SUCCESS"),
            ],
            value_ok: Some(true),
            elapsed_ms: 120.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_check_is_one_metric_per_gpu_and_no_finding() {
        let run = GpuCheckRun {
            gpus: vec![healthy(0), healthy(1)],
            ..Default::default()
        };
        let (f, m) = gpu_check(&run, true);
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["gpu_check_ms.gpu0", "gpu_check_ms.gpu1"]
        );
        let one = GpuCheckRun {
            gpus: vec![healthy(0)],
            ..Default::default()
        };
        assert!(gpu_check(&one, false).1.contains_key("gpu_check_ms"));
    }

    #[test]
    fn failures_timeouts_and_wrong_values_fail_the_gpu_they_happened_on() {
        let mut failed = healthy(1);
        failed
            .calls
            .push(call("cuMemAlloc_v2", 999, "CUDA_ERROR_UNKNOWN"));
        failed.value_ok = None;
        let mut wrong = healthy(2);
        wrong.value_ok = Some(false);
        let stuck = GpuCheck {
            index: 3,
            timed_out: true,
            in_flight: Some("cuCtxSynchronize".into()),
            ..Default::default()
        };
        let run = GpuCheckRun {
            gpus: vec![healthy(0), failed, wrong, stuck],
            timeout_ms: 10_000.0,
            ..Default::default()
        };
        let (f, m) = gpu_check(&run, false);
        let got: Vec<(&str, Option<u32>)> = f.iter().map(|x| (x.code.as_str(), x.device)).collect();
        assert_eq!(
            got,
            [
                ("GPU_CHECK_FAILED", Some(1)),
                ("GPU_CHECK_FAILED", Some(2)),
                ("GPU_CHECK_TIMEOUT", Some(3))
            ]
        );
        assert!(
            f[0].message
                .contains("cuMemAlloc_v2 answered CUDA_ERROR_UNKNOWN (999)"),
            "{}",
            f[0].message
        );
        assert!(
            f[2].message
                .contains("within 10 s (stuck in cuCtxSynchronize)"),
            "{}",
            f[2].message
        );
        assert_eq!(m.len(), 1, "only the healthy GPU has a time");
    }

    #[test]
    fn a_busy_gpu_is_left_alone_and_only_noted() {
        let busy = GpuCheck {
            index: 1,
            busy: Some("1 process(es) holding 40960 MiB".into()),
            ..Default::default()
        };
        let run = GpuCheckRun {
            gpus: vec![healthy(0), busy],
            ..Default::default()
        };
        for drain in [false, true] {
            let (f, _) = gpu_check(&run, drain);
            assert_eq!(f.len(), 1);
            assert_eq!((f[0].severity, f[0].device), (Severity::Info, Some(1)));
        }
    }

    #[test]
    fn no_cuda_warns_unless_the_policy_says_drain() {
        let run = GpuCheckRun {
            unavailable: Some("no CUDA driver".into()),
            ..Default::default()
        };
        assert_eq!(gpu_check(&run, false).0[0].severity, Severity::Warn);
        assert_eq!(gpu_check(&run, true).0[0].severity, Severity::Fail);
    }

    #[test]
    fn the_worst_finding_is_the_most_severe_and_node_level_first() {
        let f = |sev, code: &str| Finding::new(sev, code, code.to_string());
        let list = vec![
            f(Severity::Warn, codes::THERMAL_THROTTLE),
            f(Severity::Fail, codes::PCIE_WIDTH_DEGRADED),
            f(Severity::Fail, codes::GPU_LOST),
            f(Severity::Info, codes::PERSISTENCE_OFF),
        ];
        assert_eq!(worst(&list).unwrap().code, codes::GPU_LOST);
        assert_eq!(worst(&list[..1]).unwrap().code, codes::THERMAL_THROTTLE);
        assert!(worst(&list[3..]).is_none(), "info is healthy");
        let two = vec![
            f(Severity::Fail, codes::STEP_MISMATCH),
            f(Severity::Fail, codes::THRESHOLD),
        ];
        assert_eq!(
            worst(&two).unwrap().code,
            codes::STEP_MISMATCH,
            "else the first"
        );
        assert_eq!(
            gpu_count(Some(8), 7).unwrap().code,
            codes::GPU_COUNT_MISMATCH
        );
        assert!(gpu_count(Some(8), 8).is_none() && gpu_count(None, 3).is_none());
    }
}
