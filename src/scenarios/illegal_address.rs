//! `gpu-doctor inject illegal-address`: sticky errors (700 from a store through an unmapped
//! pointer, 719 from a trap), each in a process of its own, then recovery in a fresh process.
//!
//! The isolated child of this scenario orchestrates: it never touches CUDA; it runs the
//! variants `illegal-address`, `trap` and `recover` as processes of their own (the isolation
//! protocol again, one level down), merges their steps (prefixed `[variant]`), and watches NVML
//! for the XIDs the faults raise.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::Ctx;
use crate::facts::faults::{IllegalAddressFacts, SubRun};
use crate::probe::faults::illegal_address::{self as ia, Variant, XidWatch};
use crate::probe::faults::{self as probe, Steps};
use crate::report::{Report, codes};
use crate::scenarios::Scenario;

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IllegalAddressParams {
    /// Internal: run one variant (illegal-address, trap, recover) in this process.
    #[arg(long, value_enum, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
}

pub struct IllegalAddress;

/// How long the orchestrator waits after the last variant for late XID events.
const XID_LINGER: Duration = Duration::from_millis(500);

impl Scenario for IllegalAddress {
    type Params = IllegalAddressParams;
    const NAME: &'static str = "inject illegal-address";
    const ABOUT: &'static str =
        "sticky 700/719 errors in their own processes, recovery in a fresh one, XIDs";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;

    fn run(params: &IllegalAddressParams, ctx: &mut Ctx) -> Result<Report> {
        let mut report = Report::begin(Self::NAME, serde_json::to_value(params)?);
        if let Some(v) = params.variant {
            let t = probe::target(ctx)?;
            report.host = t.nvml.host();
            report.devices.push(t.info.clone());
            let steps = Steps::new(ctx);
            let facts = ia::run_variant(&steps, &t, v)?;
            report.steps = steps.into_vec();
            report.data = serde_json::json!({ "facts": facts });
            return Ok(report);
        }

        let (nvml, index, info) = probe::nvml_target(ctx)?;
        report.host = nvml.host();
        report.devices.push(info.clone());
        let mut facts = IllegalAddressFacts {
            device: index,
            memory: probe::memory_baseline(&nvml, index, &[std::process::id()]),
            ..Default::default()
        };
        let watch = XidWatch::start(ctx.started, &info.pci_bus_id);
        let mut sub_opts = ctx.opts.clone();
        sub_opts.timeout = (ctx.opts.timeout / 4).max(Duration::from_secs(5));
        for v in Variant::ALL {
            if ctx.interrupted() {
                break;
            }
            watch.set_during(v.as_str());
            let started_at_ms = ctx.now_ms();
            let sub = ia::run_variant_process(Self::NAME, v, &sub_opts)?;
            if let Some(d) = sub.devices.first()
                && d.cuda_ordinal.is_some()
            {
                report.devices = vec![d.clone()];
            }
            let tag = v.as_str();
            for s in faults::merge_sub_steps(sub.steps, &format!("[{tag}] "), started_at_ms) {
                ctx.record(&mut report, s);
            }
            for mut f in sub.findings {
                if f.code == codes::STEP_MISMATCH || f.code == codes::INTERRUPTED {
                    continue; // regenerated from the merged steps
                }
                f.message = format!("[{tag}] {}", f.message);
                report.findings.push(f);
            }
            let vf = sub
                .data
                .get("facts")
                .and_then(|x| serde_json::from_value(x.clone()).ok())
                .unwrap_or_default();
            report.interrupted |= sub.interrupted;
            facts.runs.push(SubRun {
                variant: tag.into(),
                status: sub.status.as_str().into(),
                duration_ms: sub.duration_ms,
                started_at_ms,
                facts: vf,
            });
        }
        facts.xid = watch.finish(XID_LINGER);
        facts
            .memory
            .own_pids
            .extend(facts.runs.iter().map(|r| r.facts.pid).filter(|&p| p != 0));
        probe::memory_after(&mut facts.memory, &nvml, index);
        let a = faults::illegal_address(&facts, &report.steps);
        report.findings.extend(a.findings);
        report.metrics.extend(a.metrics);
        report.interrupted |= ctx.interrupted();
        report.data = serde_json::json!({ "facts": facts });
        Ok(report)
    }
}
