//! primary-lifetime: the primary context's retain count replayed from the calls, a release to
//! zero under another user (PRIMARY_CTX_RELEASED), and setting flags while it is active
//! (PRIMARY_CTX_FLAGS).

use super::{TraceData, severity};
use crate::facts::trace::{SUCCESS, TraceEvent};
use crate::report::{Finding, Severity, codes};

/// Primary-context retain count after each successful retain/release, as (seq, count): one
/// count for the whole timeline (primary-lifetime works on one device). The driver does not
/// expose the count; this replays the calls.
pub fn primary_retain_counts(timeline: &[TraceEvent]) -> Vec<(u32, i64)> {
    let mut count = 0i64;
    let mut out = Vec::new();
    for e in timeline {
        if e.failed() {
            continue;
        }
        match e.op.as_str() {
            "cuDevicePrimaryCtxRetain" => count += 1,
            "cuDevicePrimaryCtxRelease_v2" | "cuDevicePrimaryCtxRelease" => count -= 1,
            _ => continue,
        }
        out.push((e.seq, count));
    }
    out
}

/// Primary context: released to zero under another user, and the flags question.
pub fn lifetime_and_flags(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(p) = &d.primary {
        if let Some(used) = &p.use_after_release {
            let over = p
                .over_release
                .as_ref()
                .map(|c| format!("; its own release afterwards answered {}", c))
                .unwrap_or_default();
            let fixed = p
                .fixed_use
                .as_ref()
                .map(|c| {
                    format!(
                        ". With one retain for the whole process the same work answered {}",
                        c
                    )
                })
                .unwrap_or_default();
            out.push(
                Finding::new(
                    severity(used.code != SUCCESS),
                    codes::PRIMARY_CTX_RELEASED,
                    format!(
                        "primary context of CUDA device {}: one user released it to a retain count of zero while another still held memory in it; the driver reset the context ({}), and the other user's next {} on its old pointer answered {}{over}{fixed}",
                        p.device,
                        match &p.state_after_release_to_zero {
                            Some(s) => format!("cuDevicePrimaryCtxGetState: active={}", s.active as u8),
                            None => "state not read".into(),
                        },
                        p.use_after_release_call,
                        used,
                    ),
                )
                .device(p.nvml)
                .hint("Retain the primary context once per process (one owner, at start-up) and release it once at exit; a library must release only the retains it took itself — never to 'clean up' someone else's."),
            );
        }
        if let Some(rc) = &p.set_flags_while_active {
            let driver = format!(
                "CUDA {}.{}",
                p.driver_version / 1000,
                (p.driver_version % 1000) / 10
            );
            let state = p
                .state_after_set_flags
                .map(|s| {
                    format!(
                        "cuDevicePrimaryCtxGetState then reports flags 0x{:x}",
                        s.flags
                    )
                })
                .unwrap_or_else(|| "the state could not be read".into());
            let ctx_flags = p
                .ctx_flags_after_set
                .map(|f| format!(", cuCtxGetFlags in the running context 0x{f:x}"))
                .unwrap_or_default();
            let (sev, msg, hint) = if rc.code == SUCCESS {
                (
                    Severity::Info,
                    format!(
                        "cuDevicePrimaryCtxSetFlags_v2(0x{:x}, CU_CTX_SCHED_BLOCKING_SYNC) on an ACTIVE primary context answered CUDA_SUCCESS on this driver ({driver}); {state}{ctx_flags}. The often repeated rule that scheduling flags must be set before the primary context exists does not hold here",
                        p.requested_flags
                    ),
                    "Flags can be changed on an active primary context with this driver; still set them before first use if you must support old drivers, where the call answered CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE (708), and check cuCtxGetFlags for what the running context uses.",
                )
            } else {
                (
                    Severity::Info,
                    format!(
                        "cuDevicePrimaryCtxSetFlags_v2(0x{:x}) on an active primary context answered {} on this driver ({driver}); {state}{ctx_flags}",
                        p.requested_flags, rc
                    ),
                    "Set the primary context's flags before anything retains it (cuDevicePrimaryCtxSetFlags / cudaSetDeviceFlags first thing in the process).",
                )
            };
            out.push(
                Finding::new(sev, codes::PRIMARY_CTX_FLAGS, msg)
                    .device(p.nvml)
                    .hint(hint),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::{Row, Tl, code, of_code};
    use crate::facts::trace::{PRIMARY_LIFETIME, PrimaryFacts, PrimaryState};

    fn primary(set_flags: i64, used: i64) -> TraceData {
        TraceData {
            primary: Some(PrimaryFacts {
                device: 0,
                nvml: 0,
                driver_version: 13000,
                initial: Some(PrimaryState {
                    flags: 0,
                    active: false,
                }),
                after_retain: Some(PrimaryState {
                    flags: 0,
                    active: true,
                }),
                same_handle: Some(true),
                requested_flags: 4,
                set_flags_while_active: Some(code(set_flags)),
                state_after_set_flags: Some(PrimaryState {
                    flags: 4,
                    active: true,
                }),
                ctx_flags_after_set: Some(4),
                state_after_release_to_zero: Some(PrimaryState {
                    flags: 4,
                    active: false,
                }),
                use_after_release_call: "cuMemcpyDtoH_v2".into(),
                use_after_release: Some(code(used)),
                over_release: Some(code(201)),
                fixed_use: Some(code(0)),
                final_state: Some(PrimaryState {
                    flags: 0,
                    active: false,
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn primary_release_and_flags_findings_tell_the_truth() {
        let f = findings(&primary(0, 709));
        let r = of_code(&f, codes::PRIMARY_CTX_RELEASED);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].severity, Severity::Info);
        assert!(
            r[0].message
                .contains("answered CUDA_ERROR_CONTEXT_IS_DESTROYED (709)"),
            "{}",
            r[0].message
        );
        assert!(r[0].message.contains("active=0"));
        assert!(r[0].hint.as_deref().unwrap().contains("once per process"));
        let fl = of_code(&f, codes::PRIMARY_CTX_FLAGS);
        assert!(
            fl[0]
                .message
                .contains("ACTIVE primary context answered CUDA_SUCCESS")
        );
        assert!(fl[0].message.contains("CUDA 13.0"));
        assert!(fl[0].message.contains("does not hold"));
        let f = findings(&primary(708, 0));
        assert!(
            of_code(&f, codes::PRIMARY_CTX_FLAGS)[0]
                .message
                .contains("CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE (708)")
        );
        // a pointer that still works after the reset is not what the documentation says
        assert_eq!(
            of_code(&f, codes::PRIMARY_CTX_RELEASED)[0].severity,
            Severity::Warn
        );
    }

    #[test]
    fn retain_counts_replay_the_calls() {
        let mut tl = Tl::default();
        let (retain, release) = ("cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2");
        #[rustfmt::skip]
        let rows: &[Row] = &[
            (1, retain, None, None, None, 0, &[0]),
            (2, retain, None, None, None, 0, &[0]),
            (1, release, None, None, None, 0, &[0]),
            (1, release, None, None, None, 0, &[0]),
            (2, release, None, None, None, 201, &[201, 0]),
        ];
        tl.calls(PRIMARY_LIFETIME, rows);
        let counts: Vec<i64> = primary_retain_counts(&tl.events)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(counts, vec![1, 2, 1, 0]);
    }
}
