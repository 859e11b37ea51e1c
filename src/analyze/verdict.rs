//! Status of a report from its steps and findings.

use crate::report::{Finding, Report, Severity, Status, codes};

/// Turns failed steps into findings and sets the status from the worst finding. A status the
/// scenario set to `skipped` or `error` is kept: those are about whether it ran, not its result.
pub fn finalize(report: &mut Report) {
    for step in report.steps.iter().filter(|s| !s.ok) {
        let already = report.findings.iter().any(|f| {
            f.code == codes::STEP_MISMATCH && f.message.starts_with(&step_prefix(&step.name))
        });
        if already {
            continue;
        }
        let expected: Vec<String> = step.expected.iter().map(|c| c.to_string()).collect();
        let mut f = Finding::new(
            Severity::Fail,
            codes::STEP_MISMATCH,
            format!(
                "{}{} answered {} ({}), expected {}",
                step_prefix(&step.name),
                step.call,
                step.observed.name,
                step.observed.code,
                expected.join(" or ")
            ),
        );
        f.hint = Some(step.note.clone().unwrap_or_else(|| {
            "The driver behaved differently from what NVIDIA documents for this call; compare the driver version with a known-good report (`gpu-doctor compare`).".into()
        }));
        report.findings.push(f);
    }
    if report.interrupted && !report.findings.iter().any(|f| f.code == codes::INTERRUPTED) {
        report.findings.push(
            Finding::new(
                Severity::Warn,
                codes::INTERRUPTED,
                "interrupted: the report holds what was gathered until Ctrl-C",
            )
            .hint("Run it again to completion for a verdict."),
        );
    }
    if matches!(report.status, Status::Skipped | Status::Error) {
        return;
    }
    report.status = status_from_findings(&report.findings);
}

fn step_prefix(name: &str) -> String {
    format!("step '{name}': ")
}

pub fn status_from_findings(findings: &[Finding]) -> Status {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Fail) => Status::Fail,
        Some(Severity::Warn) => Status::Warn,
        _ => Status::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Code, Step};

    fn step(ok: bool) -> Step {
        Step {
            name: "alloc after OOM".into(),
            call: "cuMemAlloc_v2".into(),
            expected: vec![Code {
                code: 0,
                name: "CUDA_SUCCESS".into(),
            }],
            observed: Code {
                code: if ok { 0 } else { 2 },
                name: if ok {
                    "CUDA_SUCCESS"
                } else {
                    "CUDA_ERROR_OUT_OF_MEMORY"
                }
                .into(),
            },
            at_ms: 0.0,
            elapsed_ms: 0.0,
            thread: 1,
            ok,
            note: Some("OOM must not be sticky".into()),
        }
    }

    #[test]
    fn failed_step_becomes_a_fail_finding_once() {
        let mut r = Report::begin("inject oom", serde_json::json!({}));
        r.steps = vec![step(true), step(false)];
        finalize(&mut r);
        finalize(&mut r);
        assert_eq!(r.status, Status::Fail);
        let f: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.code == codes::STEP_MISMATCH)
            .collect();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .contains("CUDA_ERROR_OUT_OF_MEMORY (2), expected CUDA_SUCCESS (0)"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].hint.as_deref(), Some("OOM must not be sticky"));
    }

    #[test]
    fn all_ok_steps_pass_and_skipped_is_kept() {
        let mut r = Report::begin("x", serde_json::json!({}));
        r.steps = vec![step(true)];
        finalize(&mut r);
        assert_eq!(r.status, Status::Pass);
        r.status = Status::Skipped;
        r.findings.push(Finding::new(Severity::Warn, "X", "m"));
        finalize(&mut r);
        assert_eq!(r.status, Status::Skipped);
    }
}
