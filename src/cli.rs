//! The command line. Commands that are scenarios come from the registry
//! (crate::scenarios::registry): each scenario's `Params` are its flags, its name is its command
//! (`inject oom` is `inject` → `oom`), its `ABOUT` and `EXAMPLES` its help, and every one takes
//! `--from`. The other commands (run, compare, schema, …) are declared here. One clap command
//! tree serves parsing, `--help`, completions and the man page.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::context::RunOptions;
use crate::runner::{self, ChildArgs, Request};
use crate::scenarios::{self, DynScenario, Finished};

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
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(flatten)]
    nvml: NvmlOpts,
    #[command(subcommand)]
    command: Builtin,
}

/// NVML for gpu-doctor's own run, given before the command (`gpu-doctor --replay X topo`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "NVML (before the command; docs/nvml.md)")]
pub struct NvmlOpts {
    /// Run on a recorded machine: gpu-doctor's NVML library serves this snapshot (written by
    /// `gpu-doctor snapshot`); no GPU or driver needed. NVML-only commands (info, topo) replay.
    #[arg(long, value_name = "SNAPSHOT.nvml.json")]
    pub replay: Option<PathBuf>,
    /// An NVML fault on top of the real driver or the replay: KIND[=VALUE][@gpuN][+DELAY],
    /// repeatable (xid=79@gpu1, gpu-lost@gpu0+5s, pcie-width=8, nvlink-down=3, …).
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<String>,
}

impl NvmlOpts {
    fn is_set(&self) -> bool {
        self.replay.is_some() || !self.faults.is_empty()
    }
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// GPUs to use: NVML indices or UUIDs, comma-separated (default: all).
    #[arg(long, short = 'd', global = true, value_delimiter = ',', value_name = "LIST", value_parser = parse_device)]
    pub device: Vec<String>,
    /// Print the report as JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print the report as Markdown tables (a CI job summary) instead of terminal tables.
    #[arg(long, global = true, conflicts_with = "json")]
    pub markdown: bool,
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
    #[arg(long, global = true, default_value = "60s", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

impl GlobalOpts {
    /// Colours in tables: only on a terminal, and not with --no-color or NO_COLOR.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal;
        !self.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal()
    }

    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            devices: self.device.clone(),
            quiet: self.quiet,
            timeout: self.timeout,
        }
    }
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

/// Commands that are not scenarios.
#[derive(Debug, Subcommand)]
enum Builtin {
    /// Run a suite of scenarios (TOML) and write one combined report.
    #[command(
        display_order = 20,
        after_help = "Examples:\n  gpu-doctor run scenarios/quick.toml\n  gpu-doctor run scenarios/ci.toml -o report.json\n  gpu-doctor run --check my.toml   # validate only"
    )]
    Run(crate::suite::RunArgs),

    /// Compare a report with one or several baselines (scenario or suite) and flag regressions.
    #[command(
        display_order = 21,
        after_help = "Examples:\n  gpu-doctor compare baseline.json current.json\n  gpu-doctor compare baselines/ current.json --format markdown\n  gpu-doctor compare a.json b.json c.json current.json --tol h2d_pinned_gbps=10% --tol time_to_edge_ms=100%"
    )]
    Compare(crate::compare::CompareArgs),

    /// Many nodes' reports: group identical nodes and flag the ones that stand out (failing
    /// findings, missing scenarios, metric outliers).
    #[command(
        display_order = 22,
        after_help = "Examples:\n  gpu-doctor fleet /shared/reports/\n  gpu-doctor fleet reports/*.json --format markdown >> \"$GITHUB_STEP_SUMMARY\"\n  gpu-doctor fleet reports/ --json -o fleet.json\n\nExit 0: no node stands out; 1: a node is flagged; 2: input error. docs/fleet.md."
    )]
    Fleet(crate::fleet::FleetArgs),

    /// Print the JSON Schema of the report format.
    #[command(
        display_order = 22,
        after_help = "Example:\n  gpu-doctor schema > report.schema.json"
    )]
    Schema,

    /// Record every NVML answer of this machine into -o FILE, to replay it anywhere.
    #[command(
        display_order = 23,
        after_help = "Examples:\n  gpu-doctor snapshot -o box.nvml.json\n  gpu-doctor --replay box.nvml.json info              # on any machine, no GPU needed\n  gpu-doctor replay box.nvml.json -- python monitor.py\n\nThe list of queries is in docs/nvml.md."
    )]
    Snapshot,

    /// Re-executed child of an isolated scenario (internal).
    #[command(name = "__child", hide = true)]
    Child(ChildArgs),
}

/// Help of the command groups that scenario names start with.
const GROUPS: &[(&str, &str)] = &[
    (
        "inject",
        "Provoke a CUDA fault inside gpu-doctor's own processes (or, with -- COMMAND, in your program) and check the answers.",
    ),
    ("trace", "Trace CUDA context lifetimes per OS thread."),
];

const INJECT_ALL_ABOUT: &str = "All the built-in fault scenarios in sequence, one combined report.";

/// The whole command tree: the built-in commands and one command per scenario, in registry
/// order (a two-word name goes under its group's command).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let mut groups: Vec<(&str, clap::Command)> = Vec::new();
    for (order, s) in scenarios::registry()
        .iter()
        .filter(|s| s.in_cli())
        .enumerate()
    {
        match s.name().split(' ').collect::<Vec<_>>().as_slice() {
            [name] => cmd = cmd.subcommand(scenario_command(*s, name).display_order(order)),
            [group, name] => {
                let leaf = scenario_command(*s, name).display_order(order);
                match groups.iter_mut().find(|(g, _)| g == group) {
                    Some((_, g)) => *g = g.clone().subcommand(leaf),
                    None => groups.push((group, group_command(group, order).subcommand(leaf))),
                }
            }
            _ => unreachable!("scenario names have one or two words: {}", s.name()),
        }
    }
    for (name, mut group) in groups {
        if name == "inject" {
            group = group.subcommand(
                clap::Command::new("all")
                    .about(INJECT_ALL_ABOUT)
                    .display_order(usize::MAX)
                    .after_help("Example:\n  gpu-doctor inject all -o inject.json"),
            );
        }
        cmd = cmd.subcommand(group);
    }
    cmd
}

fn group_command(name: &str, order: usize) -> clap::Command {
    let about = GROUPS
        .iter()
        .find(|(g, _)| *g == name)
        .map(|(_, a)| *a)
        .unwrap_or("");
    clap::Command::new(name.to_string())
        .about(about)
        .display_order(order)
        .subcommand_required(true)
        .arg_required_else_help(true)
}

fn scenario_command(s: &'static dyn DynScenario, leaf: &str) -> clap::Command {
    let mut examples: Vec<String> = s.examples().lines().map(str::to_string).collect();
    examples.push(format!(
        "gpu-doctor {} --from saved.json   # re-analyse a saved report (or a suite's): no GPU needed",
        s.name()
    ));
    let examples: Vec<String> = examples.iter().map(|e| format!("  {e}")).collect();
    // The params' doc comment would become the command's about: ours is set after them.
    s.add_args(clap::Command::new(leaf.to_string()))
        .about(s.about())
        .long_about(None)
        .after_help(format!("Examples:\n{}", examples.join("\n")))
        .arg(
            Arg::new("from")
                .long("from")
                .value_name("REPORT.json")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Re-analyse and re-render a saved report of this scenario (or a suite report holding one) instead of probing: no GPU needed"),
        )
}

/// What the command line asks for.
pub struct Invocation {
    kind: Kind,
    nvml: NvmlOpts,
}

enum Kind {
    Scenario(Request),
    InjectAll,
    Run(crate::suite::RunArgs),
    Compare(crate::compare::CompareArgs),
    Fleet(crate::fleet::FleetArgs),
    Schema,
    Snapshot,
    Child(ChildArgs),
}

/// Parses the command line (`--help`, `--version` and usage errors exit here, as clap does).
pub fn parse() -> (GlobalOpts, Invocation) {
    let matches = command().get_matches();
    match invocation(&matches) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    }
}

fn invocation(matches: &ArgMatches) -> Result<(GlobalOpts, Invocation), clap::Error> {
    // Global flags are propagated to the deepest subcommand: read them there.
    let mut leaf = matches;
    let mut path = Vec::new();
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let global = GlobalOpts::from_arg_matches(leaf)?;
    let nvml = NvmlOpts::from_arg_matches(matches)?;
    let kind = kind(matches, leaf, &path.join(" "))?;
    Ok((global, Invocation { kind, nvml }))
}

fn kind(matches: &ArgMatches, leaf: &ArgMatches, name: &str) -> Result<Kind, clap::Error> {
    if name == "inject all" {
        return Ok(Kind::InjectAll);
    }
    if let Some(s) = scenarios::find(name).filter(|s| s.in_cli()) {
        let served = s.params_from_matches(leaf)?;
        let target = scenarios::find(served.scenario).expect("redirects name registered scenarios");
        let mut request = Request::new(target, served.params);
        request.from = leaf.get_one::<PathBuf>("from").cloned();
        return Ok(Kind::Scenario(request));
    }
    Ok(match Builtin::from_arg_matches(matches)? {
        Builtin::Run(a) => Kind::Run(a),
        Builtin::Compare(a) => Kind::Compare(a),
        Builtin::Fleet(a) => Kind::Fleet(a),
        Builtin::Schema => Kind::Schema,
        Builtin::Snapshot => Kind::Snapshot,
        Builtin::Child(a) => Kind::Child(a),
    })
}

/// What a command produced, for main.rs to print and turn into an exit code.
pub enum Outcome {
    /// A report to print (and write with `-o`); its status decides the exit code.
    Report(Box<crate::report::Report>),
    /// Text for stdout and the exit code.
    Text(String, i32),
    /// One line for another program (node-problem-detector) instead of the report, the exit
    /// code that program expects, and the report for `-o` when there is one.
    Line {
        report: Option<Box<crate::report::Report>>,
        text: String,
        code: i32,
    },
}

/// Runs what the command line asks for. Call it while the process has one thread: with
/// `--replay` or `--fault` it sets NVML's environment for this process first.
pub fn execute(global: &GlobalOpts, invocation: Invocation) -> Result<Outcome> {
    let opts = global.run_options();
    let report = |r: crate::report::Report| Outcome::Report(Box::new(r));
    let Invocation { kind, nvml } = invocation;
    if nvml.is_set() && !matches!(kind, Kind::Scenario(_) | Kind::InjectAll | Kind::Run(_)) {
        return Err(crate::error::input(
            "--replay and --fault apply to scenarios and suites (before the command: gpu-doctor --replay X topo)",
        ));
    }
    // The library stays in place until the report is complete.
    let session = if nvml.is_set() {
        let setup = crate::probe::nvml_library::Setup {
            snapshot: nvml.replay.clone(),
            faults: crate::scenarios::nvml::parse_faults(&nvml.faults)?,
        };
        let session = runner::NvmlSession::new(&setup)?;
        // SAFETY: `execute`'s caller runs it while the process has one thread (main, before
        // any scenario starts threads).
        unsafe { session.apply_to_self() };
        Some(session)
    } else {
        None
    };
    let mut outcome = match kind {
        Kind::Scenario(request) => {
            // The scenario has the last word on how its run ends (health: a scheduler's line,
            // a drain), once the report is complete.
            let (scenario, params) = (request.scenario, request.params.clone());
            let result = runner::execute(request, &opts).map(|mut r| {
                if let Some(session) = &session {
                    session.finish(&mut r);
                }
                r
            });
            return Ok(match scenario.finish(&params, result)? {
                Finished::Report(r) => report(r),
                Finished::Line { report, text, code } => Outcome::Line {
                    report: report.map(Box::new),
                    text,
                    code,
                },
            });
        }
        Kind::InjectAll => report(runner::execute_inject_all(&opts)?),
        Kind::Run(args) => report(crate::suite::run(&args, &opts)?),
        Kind::Compare(args) => {
            let (text, code) =
                crate::compare::run(&args, global.output.as_deref(), global.json, global.color())?;
            Outcome::Text(text, code)
        }
        Kind::Fleet(args) => {
            let (text, code) =
                crate::fleet::run(&args, global.output.as_deref(), global.json, global.color())?;
            Outcome::Text(text, code)
        }
        Kind::Schema => {
            let schema = crate::report::json_schema();
            Outcome::Text(
                serde_json::to_string_pretty(&schema)? + "\n",
                crate::error::exit::OK,
            )
        }
        Kind::Snapshot => snapshot(global)?,
        Kind::Child(args) => Outcome::Text(String::new(), runner::child_main(&args)?),
    };
    if let (Some(session), Outcome::Report(r)) = (&session, &mut outcome) {
        session.finish(r);
    }
    Ok(outcome)
}

/// `gpu-doctor snapshot -o FILE`.
fn snapshot(global: &GlobalOpts) -> Result<Outcome> {
    let Some(path) = &global.output else {
        return Err(crate::error::input(
            "snapshot: give -o FILE (where to write the recorded machine)",
        ));
    };
    // SAFETY: `execute` runs while the process has one thread.
    let rec = unsafe { crate::probe::nvml_library::record_snapshot(path)? };
    let s = &rec.snapshot;
    let answers: usize = s.devices.iter().map(|d| d.answers.len()).sum::<usize>()
        + s.system.len()
        + s.pairs.iter().map(|p| p.answers.len()).sum::<usize>();
    let unsupported = s
        .devices
        .iter()
        .flat_map(|d| d.answers.values())
        .filter(|a| matches!(a, shim_proto::nvml::snapshot::Answer::Error(_)))
        .count();
    Ok(Outcome::Text(
        format!(
            "snapshot of {} GPU(s) on {}: {answers} answers ({unsupported} per-GPU queries unsupported) → {} ({} bytes)\n",
            s.gpu_count(),
            s.recorded.hostname.as_deref().unwrap_or("this host"),
            path.display(),
            rec.bytes
        ),
        crate::error::exit::OK,
    ))
}

/// The report as terminal tables (colour as `global` says).
pub fn render_report(report: &crate::report::Report, global: &GlobalOpts) -> String {
    let style = if global.markdown {
        crate::render::style::Style::markdown()
    } else {
        crate::render::style::Style::terminal(global.color())
    };
    scenarios::render_report(report, style)
}

/// Why a report that could not run was skipped.
pub fn skipped_reason(report: &crate::report::Report) -> String {
    runner::skipped_reason(report)
}

/// Ctrl-C and SIGTERM set a flag that running scenarios check (see crate::context).
pub fn install_interrupt_handler() {
    crate::context::install_interrupt_handler();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario and params a command line asks for.
    fn request_of(args: &[&str]) -> (String, serde_json::Value) {
        let matches = command()
            .try_get_matches_from(std::iter::once("gpu-doctor").chain(args.iter().copied()))
            .unwrap();
        match invocation(&matches).unwrap().1.kind {
            Kind::Scenario(r) => (r.scenario.name().to_string(), r.params),
            _ => panic!("{args:?} is not a scenario"),
        }
    }

    #[test]
    fn program_mode_command_lines_reach_the_program_scenarios() {
        let (name, params) =
            request_of(&["inject", "oom", "--limit", "4GiB", "--", "python", "x.py"]);
        assert_eq!(name, "inject oom --");
        assert_eq!(params["limit"], "4GiB");
        assert_eq!(params["command"], serde_json::json!(["python", "x.py"]));
        let (name, _) = request_of(&["inject", "oom", "--fraction", "0.5"]);
        assert_eq!(name, "inject oom", "no COMMAND: the built-in scenario");

        let (name, params) = request_of(&[
            "trace",
            "ctx",
            "--chrome-trace",
            "t.json",
            "--expect",
            "fail",
            "--",
            "./app",
        ]);
        assert_eq!(name, "trace ctx --");
        assert_eq!(params["chrome_trace"], "t.json");
        assert_eq!(params["expect"], "fail");
        let (name, _) = request_of(&["trace", "ctx", "thread-hop"]);
        assert_eq!(name, "trace ctx");

        let (name, params) = request_of(&[
            "inject",
            "error",
            "--call",
            "cuMemAlloc",
            "--code",
            "2",
            "--",
            "./app",
        ]);
        assert_eq!(name, "inject error");
        assert_eq!(params["command"], serde_json::json!(["./app"]));
    }
}

#[cfg(test)]
mod nvml_tests {
    use super::*;

    #[test]
    fn replay_and_faults_come_before_the_command_and_faults_also_after_inject_nvml() {
        let m = command()
            .try_get_matches_from([
                "gpu-doctor",
                "--replay",
                "box.json",
                "--fault",
                "xid=79@gpu1",
                "topo",
            ])
            .unwrap();
        let (_, inv) = invocation(&m).unwrap();
        assert_eq!(inv.nvml.replay, Some(PathBuf::from("box.json")));
        assert_eq!(inv.nvml.faults, ["xid=79@gpu1"]);
        let m = command()
            .try_get_matches_from([
                "gpu-doctor",
                "inject",
                "nvml",
                "--fault",
                "gpu-lost@gpu0",
                "--",
                "true",
            ])
            .unwrap();
        let (_, inv) = invocation(&m).unwrap();
        assert!(
            !inv.nvml.is_set(),
            "the program's faults are the scenario's"
        );
        match inv.kind {
            Kind::Scenario(r) => {
                assert_eq!(r.params["faults"], serde_json::json!(["gpu-lost@gpu0"]))
            }
            _ => panic!("a scenario"),
        }
    }
}
