//! `gpu-doctor inject ctx-destroy`: destroy a context with memory, a stream and a kernel in
//! flight (from its thread and from another), reset the primary context under a holder, and
//! check that a fresh context works and the memory came back.
//!
//! Each use of a destroyed context's handles may crash the driver, so each runs as
//! [`CtxDestroyPart`], an internal scenario, in a process of its own.

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analyze::faults;
use crate::context::RunCtx;
use crate::facts::faults::{CtxDestroyFacts, DestroyVariant};
use crate::probe::faults::ctx_destroy::DestroyPart;
use crate::probe::faults::{self as probe, Steps};
use crate::render::faults as render;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::{Probed, Scenario, run_crash_prone_part};

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CtxDestroyParams {}

/// What an `inject ctx-destroy` report stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CtxDestroyData {
    pub facts: CtxDestroyFacts,
}

pub struct CtxDestroy;

impl Scenario for CtxDestroy {
    type Params = CtxDestroyParams;
    type Data = CtxDestroyData;
    const NAME: &'static str = "inject ctx-destroy";
    const ABOUT: &'static str =
        "Destroy contexts with work in flight, reset the primary context, use stale handles.";
    const EXAMPLES: &'static str = "gpu-doctor inject ctx-destroy --json";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const IN_INJECT_ALL: bool = true;

    fn probe(_params: &CtxDestroyParams, ctx: &RunCtx) -> Result<Probed<CtxDestroyData>> {
        let t = probe::target(ctx)?;
        let (mut facts, watch) = probe::ctx_destroy::begin(ctx, &t)?;
        for part in DestroyPart::ALL {
            if ctx.interrupted() {
                break;
            }
            let params = serde_json::json!({ "part": part });
            let sub = run_crash_prone_part(ctx, CtxDestroyPart::NAME, &params)?;
            if let Some(v) = sub
                .data
                .get("variant")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
            {
                facts.variants.push(v);
            }
        }
        probe::ctx_destroy::finish(&Steps::new(ctx), &t, &mut facts, watch);
        Ok(Probed::new(
            CtxDestroyData { facts },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(_params: &CtxDestroyParams, data: &mut CtxDestroyData, run: &Report) -> Analysis {
        let mut a = Analysis {
            findings: faults::crashed_calls(&run.steps, run.host.driver_version.as_deref()),
            ..Default::default()
        };
        let own = faults::ctx_destroy(&data.facts, &run.steps);
        a.findings.extend(own.findings);
        a.metrics.extend(own.metrics);
        a
    }

    fn render(data: &CtxDestroyData, _report: &Report, out: &mut String, style: Style) {
        let mut rows = render::ctx_destroy_rows(&data.facts);
        rows.extend(render::memory_rows(&data.facts.memory));
        render::facts_table(out, rows, style);
    }
}

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CtxDestroyPartParams {
    /// The part to run in this process.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<DestroyPart>,
}

/// What one part's report carries back to its parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CtxDestroyPartData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<DestroyVariant>,
}

/// One crash-prone part of `inject ctx-destroy`, in the process its parent started for it.
pub struct CtxDestroyPart;

impl Scenario for CtxDestroyPart {
    type Params = CtxDestroyPartParams;
    type Data = CtxDestroyPartData;
    const NAME: &'static str = "inject ctx-destroy (part)";
    const ABOUT: &'static str = "One part of inject ctx-destroy, in a process of its own.";
    const ISOLATED: bool = true;
    const NEEDS_CUDA: bool = true;
    const INTERNAL: bool = true;

    fn probe(params: &CtxDestroyPartParams, ctx: &RunCtx) -> Result<Probed<CtxDestroyPartData>> {
        let part = params
            .part
            .ok_or_else(|| crate::error::input("inject ctx-destroy (part): no part given"))?;
        let t = probe::target(ctx)?;
        let variant = probe::ctx_destroy::run_part(ctx, &Steps::new(ctx), &t, part)?;
        Ok(Probed::new(
            CtxDestroyPartData { variant },
            t.nvml.host(),
            vec![t.info],
        ))
    }

    fn analyze(_: &CtxDestroyPartParams, _: &mut CtxDestroyPartData, _: &Report) -> Analysis {
        Analysis::default()
    }

    fn render(_: &CtxDestroyPartData, _: &Report, _: &mut String, _: Style) {}
}
