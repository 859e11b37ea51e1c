//! Command-line interface (clap derive). Scenario parameters are the scenarios' own `Params`
//! types, flattened in, so the command line and suite files share one definition.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::scenarios;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  pass: no failing finding (warnings allowed)
  1  a failing finding, a failed scenario, or (compare) a regression
  2  usage or input error: bad flag, bad device list, malformed suite or report
  3  cannot run here: no NVIDIA driver library, no GPU, device not found, driver too old
  4  internal error (a bug in gpu-doctor)
  130 interrupted by Ctrl-C (the report is still written, marked interrupted)";

#[derive(Debug, Parser)]
#[command(
    name = "gpu-doctor",
    version,
    about = "Tells what is wrong with a GPU box and proves how the CUDA stack behaves under faults.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// GPUs to use: NVML indices or UUIDs, comma-separated (default: all).
    #[arg(long, short = 'd', global = true, value_delimiter = ',', value_name = "LIST", value_parser = parse_device)]
    pub device: Vec<String>,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also write the JSON report to FILE (atomically: temp file + rename).
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// No colours in tables (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Kill an isolated scenario's child process after this long (e.g. 60s, 2m).
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// A `--device` entry: an NVML index or a GPU/MIG UUID (whether it exists is checked later).
pub fn parse_device(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<u32>().is_ok() || s.starts_with("GPU-") || s.starts_with("MIG-") {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is neither a GPU index (0, 1, …) nor a UUID (GPU-…)"
        ))
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 500ms, 30s, 2m)"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Driver, CUDA and NVML versions and per-GPU health: memory, clocks, throttling, ECC, row remapping.
    #[command(
        after_help = "Examples:\n  gpu-doctor info\n  gpu-doctor info --device 0 --json\n  gpu-doctor info --from tests/fixtures/h100-info.json   # re-analyse a saved report, no GPU needed"
    )]
    Info(scenarios::info::InfoParams),

    /// Interconnect matrix (like `nvidia-smi topo -m`), PCIe and NVLink state, P2P, GPU groups.
    #[command(
        after_help = "Examples:\n  gpu-doctor topo\n  gpu-doctor topo --json -o topo.json\n  gpu-doctor topo --from tests/fixtures/h100-topo.json   # re-analyse a saved report, no GPU needed"
    )]
    Topo(scenarios::topo::TopoParams),

    /// Provoke a CUDA fault inside gpu-doctor's own processes and check the driver's answers.
    #[command(subcommand)]
    Inject(InjectCommand),

    /// Trace CUDA context lifetimes per OS thread.
    #[command(subcommand)]
    Trace(TraceCommand),

    /// Measure host<->device, device-local and peer-to-peer copy bandwidth.
    #[command(
        after_help = "Examples:\n  gpu-doctor bandwidth\n  gpu-doctor bandwidth --size 256MiB --json -o bw.json"
    )]
    Bandwidth(scenarios::bandwidth::BandwidthParams),

    /// Run a suite of scenarios (TOML) and write one combined report.
    #[command(
        after_help = "Examples:\n  gpu-doctor run scenarios/quick.toml\n  gpu-doctor run scenarios/ci.toml -o report.json"
    )]
    Run(crate::suite::RunArgs),

    /// Compare a report with one or several baselines (scenario or suite) and flag regressions.
    #[command(
        after_help = "Examples:\n  gpu-doctor compare baseline.json current.json\n  gpu-doctor compare baselines/ current.json --format markdown\n  gpu-doctor compare a.json b.json c.json current.json --tol h2d_pinned_gbps=10% --tol time_to_edge_ms=100%"
    )]
    Compare(crate::compare::CompareArgs),

    /// Print the JSON Schema of the report format.
    #[command(after_help = "Example:\n  gpu-doctor schema > report.schema.json")]
    Schema,

    /// Re-executed child of an isolated scenario (internal).
    #[command(name = "__child", hide = true)]
    Child(ChildArgs),
}

#[derive(Debug, Subcommand)]
pub enum InjectCommand {
    /// Fill device memory to CUDA_ERROR_OUT_OF_MEMORY, prove the context survives, free, check.
    #[command(
        after_help = "Examples:\n  gpu-doctor inject oom\n  gpu-doctor inject oom --allocator async\n  gpu-doctor inject oom --fraction 0.9 --hold 5m   # memory pressure for another program"
    )]
    Oom(scenarios::oom::OomParams),
    /// Destroy a context that still has memory, a stream and a kernel in flight.
    #[command(
        name = "ctx-destroy",
        after_help = "Example:\n  gpu-doctor inject ctx-destroy --json"
    )]
    CtxDestroy(scenarios::ctx_destroy::CtxDestroyParams),
    /// Streams used after destroy, from the wrong context, without ordering events, in capture.
    #[command(
        name = "stream-misuse",
        after_help = "Example:\n  gpu-doctor inject stream-misuse --iterations 200"
    )]
    StreamMisuse(scenarios::stream_misuse::StreamMisuseParams),
    /// A kernel writes through a bad pointer: the sticky error, and recovery in a new process.
    #[command(
        name = "illegal-address",
        after_help = "Example:\n  gpu-doctor inject illegal-address"
    )]
    IllegalAddress(scenarios::illegal_address::IllegalAddressParams),
    /// Run COMMAND with a failpoint on a CUDA driver call (LD_PRELOAD shim): does it cope?
    #[command(
        after_help = "Examples:\n  gpu-doctor inject error --call cuLaunchKernel --code CUDA_ERROR_LAUNCH_FAILED --nth 100 -- python train.py\n  gpu-doctor inject error --call cuMemAlloc --code 2 --nth 1 --every 10 -- ./app\n  gpu-doctor inject error --call cuStreamSynchronize --delay 30s --nth 5 -- ./server\n  gpu-doctor inject error --call cuLaunchKernel --code 719 --probability 0.001 --seed 7 --expect fail -- ./app\n\nExit code: 0 when COMMAND did what --expect says (survive: exit 0), 1 otherwise. See docs/shim.md."
    )]
    Error(scenarios::program::InjectErrorParams),
    /// All four in sequence, one combined report.
    #[command(after_help = "Example:\n  gpu-doctor inject all -o inject.json")]
    All,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Context lifetime per OS thread: thread hops, device mix-ups, push/pop, primary context.
    #[command(
        after_help = "Examples:\n  gpu-doctor trace ctx\n  gpu-doctor trace ctx thread-hop --chrome-trace hop.json"
    )]
    Ctx(scenarios::trace_ctx::TraceCtxParams),
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub scenario: String,
    #[arg(long)]
    pub params: String,
    #[arg(long)]
    pub options: String,
}
