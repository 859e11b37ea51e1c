//! device-mixup: memory allocated while another context was current (DEVICE_MIXUP), and memory
//! the driver placed outside the current context (STEP_MISMATCH).

use super::TraceData;
use crate::report::{Finding, Severity, codes};

/// Device mix-up: memory landed in a context other than the one the code meant.
pub fn memory_elsewhere(d: &TraceData) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(m) = &d.device_mixup {
        for c in &m.cases {
            if c.landed_ctx.is_some() && c.landed_ctx != c.current_ctx {
                out.push(
                    Finding::new(
                        Severity::Fail,
                        codes::STEP_MISMATCH,
                        format!(
                            "device-mixup ({}): cuMemAlloc_v2 with {} current returned memory that cuPointerGetAttribute places in {}",
                            c.case,
                            c.current_ctx.as_deref().unwrap_or("no context"),
                            c.landed_ctx.as_deref().unwrap_or("-")
                        ),
                    )
                    .hint("The driver documents that memory is allocated in the current context; compare the driver version with a known-good report."),
                );
            }
            let mismatch = c.landed_ctx.as_deref().is_some_and(|l| l != c.intended_ctx)
                || c.landed_device.is_some_and(|l| l != c.intended_device);
            if mismatch {
                let where_ = if m.mode == "two-gpus" {
                    format!(
                        "on CUDA device {} instead of device {}",
                        c.landed_device.map(|x| x.to_string()).unwrap_or("?".into()),
                        c.intended_device
                    )
                } else {
                    format!(
                        "in another context on the same GPU (device {})",
                        c.intended_device
                    )
                };
                out.push(
                    Finding::new(
                        if c.deliberate { Severity::Info } else { Severity::Warn },
                        codes::DEVICE_MIXUP,
                        format!(
                            "device-mixup ({}): memory meant for {} (device {}) was allocated while {} was current: cuPointerGetAttribute says it lives in {} {where_}; the allocation itself answered CUDA_SUCCESS, so nothing told the caller",
                            c.case,
                            c.intended_ctx,
                            c.intended_device,
                            c.current_ctx.as_deref().unwrap_or("no context"),
                            c.landed_ctx.as_deref().unwrap_or("?"),
                        ),
                    )
                    .hint("Make the intended context current before each unit of work (cuCtxSetCurrent / cudaSetDevice), not once at start-up; at API boundaries assert where a pointer lives with cuPointerGetAttribute(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL) or cudaPointerGetAttributes."),
                );
            } else if !c.deliberate && c.landed_ctx.is_none() {
                out.push(Finding::new(
                    Severity::Warn,
                    codes::DEVICE_MIXUP,
                    format!(
                        "device-mixup ({}): where the memory landed could not be read",
                        c.case
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trace_ctx::findings;
    use crate::analyze::trace_ctx::test_support::of_code;
    use crate::facts::trace::{MixupCase, MixupFacts};

    fn mixup(mode: &str, landed: &str, landed_dev: i32) -> TraceData {
        TraceData {
            device_mixup: Some(MixupFacts {
                mode: mode.into(),
                nvml: vec![0, 1],
                cases: vec![
                    MixupCase {
                        case: "B left current".into(),
                        deliberate: true,
                        intended_ctx: "ctx#2".into(),
                        intended_device: 0,
                        current_ctx: Some("ctx#3".into()),
                        current_device: Some(1),
                        landed_ctx: Some(landed.into()),
                        landed_device: Some(landed_dev),
                        pointer: "0x7f0000000000".into(),
                    },
                    MixupCase {
                        case: "A bound first".into(),
                        deliberate: false,
                        intended_ctx: "ctx#2".into(),
                        intended_device: 0,
                        current_ctx: Some("ctx#2".into()),
                        current_device: Some(0),
                        landed_ctx: Some("ctx#2".into()),
                        landed_device: Some(0),
                        pointer: "0x7f0000200000".into(),
                    },
                ],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn device_mixup_reports_meant_versus_landed() {
        let f = findings(&mixup("two-gpus", "ctx#3", 1));
        let m = of_code(&f, codes::DEVICE_MIXUP);
        assert_eq!(m.len(), 1, "{f:#?}");
        assert_eq!(m[0].severity, Severity::Info);
        assert!(
            m[0].message.contains("meant for ctx#2 (device 0)"),
            "{}",
            m[0].message
        );
        assert!(
            m[0].message
                .contains("on CUDA device 1 instead of device 0"),
            "{}",
            m[0].message
        );
        assert!(of_code(&f, codes::STEP_MISMATCH).is_empty());
        let f = findings(&mixup("two-contexts", "ctx#3", 0));
        assert!(
            of_code(&f, codes::DEVICE_MIXUP)[0]
                .message
                .contains("another context on the same GPU")
        );
        // memory outside the current context contradicts the driver's documentation
        let f = findings(&mixup("two-contexts", "ctx#2", 0));
        assert!(of_code(&f, codes::DEVICE_MIXUP).is_empty());
        assert_eq!(of_code(&f, codes::STEP_MISMATCH).len(), 1);
    }
}
