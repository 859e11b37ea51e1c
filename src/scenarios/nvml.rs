//! NVML faults in a user's program, through gpu-doctor's NVML library (nvml-shim/):
//! - `inject nvml --fault … -- COMMAND`: the library is preloaded over the program's real
//!   libnvidia-ml and rewrites the answers the faults change (an XID 79, a lost GPU, a link
//!   trained down …);
//! - `replay SNAPSHOT [--fault …] -- COMMAND`: the library *is* libnvidia-ml for the program,
//!   serving a machine recorded with `gpu-doctor snapshot`; no GPU or driver needed.
//!
//! Both judge how the program ended against `--expect`, which faults reached it and when, and
//! which it never read (FAULT_NOT_INJECTED). docs/nvml.md.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shim_proto::nvml::fault::{self, Fault};

use crate::analyze::program::Expect;
use crate::context::RunCtx;
use crate::error::input;
use crate::probe::nvml::NvmlProbe;
use crate::probe::nvml_library::Setup;
use crate::program::Shim;
use crate::render::style::Style;
use crate::report::{Analysis, Report};
use crate::scenarios::program::{ProgramData, probe_program};
use crate::scenarios::{Probed, Scenario};
use crate::units::Span;

/// The faults of a command line, parsed: an unknown kind or a bad value is exit 2, listing
/// what is allowed.
pub(crate) fn parse_faults(specs: &[String]) -> Result<Vec<Fault>> {
    fault::parse_faults(specs).map_err(|e| input(format!("--fault: {}", e.0)))
}

/// Faults for a GPU the real driver lacks would never fire: an input error before anything
/// runs (a replayed machine's GPUs are checked by `Setup::check`).
pub(crate) fn check_fault_gpus(faults: &[Fault], nvml: &NvmlProbe) -> Result<()> {
    fault::check_gpus(faults, nvml.device_count()?).map_err(|e| input(format!("--fault: {}", e.0)))
}

const FAULT_HELP: &str = "A fault: KIND[=VALUE][@gpuN][+DELAY], repeatable. Kinds: xid=CODE, gpu-lost, ecc-uncorrectable=N, row-remap=pending|failed, recovery-action=…, pcie-width=N, pcie-gen=N, pcie-replays=N/s, nvlink-down=LINK[,LINK], throttle=…, temperature=C, memory-used=SIZE (docs/nvml.md)";

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InjectNvmlParams {
    #[arg(long = "fault", value_name = "FAULT", required = true, help = FAULT_HELP)]
    pub faults: Vec<String>,
    /// What COMMAND should do under the faults: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION")]
    pub survive_after: Option<Span>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub struct InjectNvml;

impl Scenario for InjectNvml {
    type Params = InjectNvmlParams;
    type Data = ProgramData;
    const NAME: &'static str = "inject nvml";
    const ABOUT: &'static str = "Run COMMAND with NVML faults on top of the real driver (an XID, a lost GPU, a link trained down): does it notice?";
    const EXAMPLES: &'static str = "gpu-doctor inject nvml --fault xid=79@gpu0+5s -- python monitor.py\ngpu-doctor inject nvml --fault gpu-lost@gpu1+10s --expect fail -- ./health-check\ngpu-doctor inject nvml --fault pcie-width=8@gpu0 --fault throttle=thermal -- ./exporter";
    const REANALYSABLE: bool = false;

    fn validate(p: &InjectNvmlParams) -> Result<()> {
        parse_faults(&p.faults).map(|_| ())
    }

    fn probe(p: &InjectNvmlParams, ctx: &RunCtx) -> Result<Probed<ProgramData>> {
        let faults = parse_faults(&p.faults)?;
        // Faults for a GPU this machine lacks would never fire: say so before the program runs.
        let nvml = NvmlProbe::open()?;
        check_fault_gpus(&faults, &nvml)?;
        let setup = Setup {
            snapshot: None,
            faults,
        };
        probe_program(
            ctx,
            Self::NAME,
            Shim::Nvml(setup),
            &p.survive_after,
            &p.command,
            Some(&nvml),
        )
    }

    fn analyze(p: &InjectNvmlParams, data: &mut ProgramData, _run: &Report) -> Analysis {
        analyze_run(p.expect, &p.command, None, &p.faults, data)
    }

    fn render(data: &ProgramData, _report: &Report, out: &mut String, style: Style) {
        crate::render::nvml::render(out, &serde_json::Value::Object(data.digest.clone()), style);
    }
}

fn analyze_run(
    expect: Expect,
    command: &[String],
    snapshot: Option<&str>,
    faults: &[String],
    data: &mut ProgramData,
) -> Analysis {
    let Some(outcome) = &data.outcome else {
        return Analysis::default();
    };
    // The faults as the library writes them (canonical syntax).
    let faults: Vec<String> = fault::parse_faults(faults)
        .map(|f| f.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let (findings, digest) =
        crate::analyze::nvml::analyze_program(expect, command, snapshot, &faults, outcome);
    if let serde_json::Value::Object(d) = digest {
        data.digest = d;
    }
    Analysis {
        findings,
        ..Default::default()
    }
}

#[derive(Debug, Clone, Default, Args, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayParams {
    /// The recorded machine (`gpu-doctor snapshot -o FILE` on the real one).
    #[arg(value_name = "SNAPSHOT.nvml.json", required = true)]
    pub snapshot: PathBuf,
    #[arg(long = "fault", value_name = "FAULT", help = FAULT_HELP)]
    pub faults: Vec<String>,
    /// What COMMAND should do: survive (exit 0) or fail (non-zero, signal).
    #[arg(long, value_enum, default_value_t = Expect::Survive)]
    pub expect: Expect,
    /// Stop COMMAND after this long and count it as survived (long-running services).
    #[arg(long, value_name = "DURATION")]
    pub survive_after: Option<Span>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl ReplayParams {
    fn setup(&self) -> Result<Setup> {
        let setup = Setup {
            snapshot: Some(self.snapshot.clone()),
            faults: parse_faults(&self.faults)?,
        };
        setup.check()?;
        Ok(setup)
    }
}

pub struct Replay;

impl Scenario for Replay {
    type Params = ReplayParams;
    type Data = ProgramData;
    const NAME: &'static str = "replay";
    const ABOUT: &'static str = "Run COMMAND on a recorded machine: gpu-doctor's NVML library serves the snapshot as libnvidia-ml, faults on top.";
    const EXAMPLES: &'static str = "gpu-doctor replay tests/fixtures/h200x2.nvml.json -- python -c 'import pynvml; pynvml.nvmlInit()'\ngpu-doctor replay box.nvml.json --fault nvlink-down=3@gpu1 --fault xid=74@gpu1+2s -- ./exporter";
    const REANALYSABLE: bool = false;

    fn validate(p: &ReplayParams) -> Result<()> {
        p.setup().map(|_| ())
    }

    fn probe(p: &ReplayParams, ctx: &RunCtx) -> Result<Probed<ProgramData>> {
        probe_program(
            ctx,
            Self::NAME,
            Shim::Nvml(p.setup()?),
            &p.survive_after,
            &p.command,
            None,
        )
    }

    fn analyze(p: &ReplayParams, data: &mut ProgramData, _run: &Report) -> Analysis {
        let snapshot = p.snapshot.display().to_string();
        analyze_run(p.expect, &p.command, Some(&snapshot), &p.faults, data)
    }

    fn render(data: &ProgramData, _report: &Report, out: &mut String, style: Style) {
        crate::render::nvml::render(out, &serde_json::Value::Object(data.digest.clone()), style);
    }
}
