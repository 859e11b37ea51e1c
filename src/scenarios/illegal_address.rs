//! `gpu-doctor inject illegal-address`: sticky errors (700 from a store through an unmapped
//! pointer, 719 from a trap), each in a process of its own, then recovery in a fresh process.
//!
//! The isolated child of this scenario orchestrates: it never touches CUDA; it runs the
//! variants `illegal-address`, `trap` and `recover` as [`IllegalAddressVariant`], an internal
//! scenario, in processes of their own (the isolation protocol again, one level down), merges
//! their steps (prefixed `[variant]`), and watches NVML for the XIDs the faults raise.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::RunCtx;
use crate::facts::faults::{IllegalAddressFacts, SubRun, VariantFacts};
use crate::probe::faults::illegal_address::{self as ia, Variant, XidWatch};
use crate::probe::faults::{self as probe, Steps};
use crate::probe::memory;
use crate::render::faults as render;
use crate::render::style::Style;
use crate::report::{Analysis, Report, codes};
use crate::scenarios::{Probed, Scenario};

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IllegalAddressParams {}

/// What an `inject illegal-address` report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IllegalAddressData {
    pub facts: IllegalAddressFacts,
}

pub struct IllegalAddress;

/// How long the orchestrator waits after the last variant for late XID events.
const XID_LINGER: Duration = Duration::from_millis(500);

impl Scenario for IllegalAddress {
    type Params = IllegalAddressParams;
    type Data = IllegalAddressData;
    const NAME: &'static str = "inject illegal-address";
    const ABOUT: &'static str =
        "A kernel writes through a bad pointer: the sticky error, and recovery in a new process.";
    const EXAMPLES: &'static str = "gpu-doctor inject illegal-address";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const IN_INJECT_ALL: bool = true;

    fn probe(_params: &IllegalAddressParams, ctx: &RunCtx) -> Result<Probed<IllegalAddressData>> {
        let (nvml, index, info) = probe::nvml_target(ctx)?;
        let mut devices = vec![info.clone()];
        let mut findings = Vec::new();
        let (memory, memory_watch) = memory::begin(ctx, &nvml, index);
        let mut facts = IllegalAddressFacts {
            device: index,
            memory,
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
            let params = serde_json::json!({ "variant": v.as_str() });
            let sub =
                crate::isolate::run_isolated(IllegalAddressVariant::NAME, &params, &sub_opts)?;
            if let Some(d) = sub.devices.first()
                && d.cuda_ordinal.is_some()
            {
                devices = vec![d.clone()];
            }
            let tag = v.as_str();
            for s in faults::merge_sub_steps(sub.steps, &format!("[{tag}] "), started_at_ms) {
                ctx.record(s);
            }
            for mut f in sub.findings {
                if f.code == codes::STEP_MISMATCH || f.code == codes::INTERRUPTED {
                    continue; // regenerated from the merged steps
                }
                f.message = format!("[{tag}] {}", f.message);
                findings.push(f);
            }
            let vf = sub
                .data
                .get("facts")
                .and_then(|x| serde_json::from_value(x.clone()).ok())
                .unwrap_or_default();
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
        memory::end(&mut facts.memory, memory_watch, &nvml, index);
        let mut probed = Probed::new(IllegalAddressData { facts }, nvml.host(), devices);
        probed.findings = findings;
        Ok(probed)
    }

    fn analyze(
        _params: &IllegalAddressParams,
        data: &mut IllegalAddressData,
        run: &Report,
    ) -> Analysis {
        faults::illegal_address(&data.facts, &run.steps)
    }

    fn render(data: &IllegalAddressData, _report: &Report, out: &mut String, style: Style) {
        let mut rows = render::illegal_address_rows(&data.facts);
        rows.extend(render::memory_rows(&data.facts.memory));
        render::facts_table(out, rows, style);
    }
}

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VariantParams {
    /// The variant to run in this process.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
}

/// What one variant's report carries back to the orchestrator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VariantData {
    pub facts: VariantFacts,
}

/// One variant of `inject illegal-address`, in the process the orchestrator started for it.
pub struct IllegalAddressVariant;

impl Scenario for IllegalAddressVariant {
    type Params = VariantParams;
    type Data = VariantData;
    const NAME: &'static str = "inject illegal-address (variant)";
    const ABOUT: &'static str = "One variant of inject illegal-address, in a process of its own.";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const INTERNAL: bool = true;

    fn probe(params: &VariantParams, ctx: &RunCtx) -> Result<Probed<VariantData>> {
        let v = params.variant.ok_or_else(|| {
            crate::error::input("inject illegal-address (variant): no variant given")
        })?;
        let t = probe::target(ctx)?;
        let facts = ia::run_variant(&Steps::new(ctx), &t, v)?;
        Ok(Probed::new(
            VariantData { facts },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(_: &VariantParams, _: &mut VariantData, _: &Report) -> Analysis {
        Analysis::default()
    }

    fn render(_: &VariantData, _: &Report, _: &mut String, _: Style) {}
}
