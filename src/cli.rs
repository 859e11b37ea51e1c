//! The command line. Commands that are scenarios come from the registry
//! (crate::scenarios::registry): each scenario's `Params` are its flags, its name is its command
//! (`inject oom` is `inject` → `oom`), its `ABOUT` and `EXAMPLES` its help, and every one takes
//! `--from`. The other commands (run, compare, schema, …) are declared here. One clap command
//! tree serves parsing, `--help`, completions and the man page.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::context::RunOptions;
use crate::runner::{self, ChildArgs, Request};
use crate::scenarios::{self, DynScenario, Finished};

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  pass: no failing finding (warnings allowed)
  1  a failing finding, a failed scenario, or (compare) a regression
  2  usage, input or output error: bad flag or value, malformed suite or report, an output
     that would overwrite an input, stdout or -o FILE that cannot be written
  3  cannot run here: no NVIDIA driver library, no GPU, device not found, driver too old
  4  internal error (a bug in gpu-doctor)
  130 interrupted by Ctrl-C (the report is still written, marked interrupted)";

/// The version line: the package version, the commit it was built from and whether the
/// shims are inside the binary.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (commit {}; CUDA shim {}; NVML library {})",
        env!("CARGO_PKG_VERSION"),
        // build.rs records it when it can (`cargo:rustc-env=GPU_DOCTOR_GIT_COMMIT=…`).
        option_env!("GPU_DOCTOR_GIT_COMMIT").unwrap_or("unknown"),
        if SHIM_BYTES > 0 {
            "embedded"
        } else {
            "not embedded: program mode needs GPU_DOCTOR_SHIM"
        },
        if NVML_BYTES > 0 {
            "embedded"
        } else {
            "not embedded: --replay, --fault and inject nvml need GPU_DOCTOR_NVML_SHIM"
        }
    )
});

/// Sizes of the libraries build.rs embedded (0 when it could not build them). Only the
/// lengths are evaluated here, at compile time: the bytes are not stored a second time.
const SHIM_BYTES: usize = include_bytes!(env!("GPU_DOCTOR_SHIM_SO")).len();
const NVML_BYTES: usize = include_bytes!(env!("GPU_DOCTOR_NVML_SO")).len();

#[derive(Debug, Parser)]
#[command(
    name = "gpu-doctor",
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

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Also write the JSON report to FILE (atomically; an existing file keeps its mode and
    /// owner, a device or pipe is written through; never one of the inputs).
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Every row in tables (each NVLink, each P2P pair, each failed call, every metric)
    /// instead of summaries.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// No colours in tables (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Kill an isolated scenario's child process, or a program in program mode, after this
    /// long (e.g. 60s, 2m).
    #[arg(long, global = true, default_value = "60s", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// NVML for this run (`--replay`, `--fault` before the command), read from the top level.
    #[arg(skip)]
    pub nvml: NvmlOpts,
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

impl GlobalOpts {
    /// Colours in tables: only on a terminal, and not with --no-color or NO_COLOR.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal;
        !self.no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal()
    }

    /// How reports are rendered: Markdown, or terminal tables as wide as the terminal (or
    /// `COLUMNS` when stdout is not a terminal; 80 when nothing says).
    pub fn style(&self) -> crate::render::style::Style {
        use crate::render::style::Style;
        let style = if self.markdown {
            Style::markdown()
        } else {
            Style::terminal(self.color()).with_width(Some(crate::render::style::output_width()))
        };
        style.with_verbose(self.verbose)
    }

    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            devices: self.device.clone(),
            quiet: self.quiet,
            timeout: self.timeout,
            json: self.json,
            stream: false,
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

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        display_order = 23,
        after_help = "Examples:\n  gpu-doctor completions bash > ~/.local/share/bash-completion/completions/gpu-doctor\n  gpu-doctor completions zsh > ~/.zfunc/_gpu-doctor\n  gpu-doctor completions fish > ~/.config/fish/completions/gpu-doctor.fish"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff) of gpu-doctor or of one of its commands.
    #[command(
        display_order = 24,
        after_help = "Examples:\n  gpu-doctor man | man -l -\n  gpu-doctor man inject oom > gpu-doctor-inject-oom.1"
    )]
    Man {
        /// The command whose page to print (default: gpu-doctor itself).
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },

    /// Record every NVML answer of this machine into -o FILE, to replay it anywhere.
    #[command(
        display_order = 25,
        after_help = "Examples:\n  gpu-doctor snapshot -o box.nvml.json\n  gpu-doctor --replay box.nvml.json info   # on any machine, no GPU needed\n  gpu-doctor replay box.nvml.json -- python monitor.py\n\nThe list of queries is in docs/nvml.md."
    )]
    Snapshot,

    /// Serve Prometheus / OpenMetrics metrics where gpu-doctor's findings are metrics.
    #[command(
        display_order = 24,
        after_help = "Examples:\n  gpu-doctor exporter                                # http://127.0.0.1:9835/metrics\n  gpu-doctor exporter --listen 0.0.0.0:9835\n  gpu-doctor exporter --textfile /var/lib/node_exporter/textfile\n  gpu-doctor exporter --once | promtool check metrics\n  gpu-doctor --replay box.nvml.json --fault xid=79@gpu1+30s exporter\n\nMetrics, alerts and the DaemonSet: docs/exporter.md."
    )]
    Exporter(crate::exporter::ExporterArgs),

    /// Re-executed child of an isolated scenario (internal).
    #[command(name = "__child", hide = true)]
    Child(ChildArgs),
}

/// Help of the command groups that scenario names start with.
const GROUPS: &[(&str, &str, &str)] = &[
    (
        "inject",
        "Provoke a CUDA fault inside gpu-doctor's own processes (or, with -- COMMAND, in your program) and check the answers.",
        "Examples:\n  gpu-doctor inject oom\n  gpu-doctor inject all -o inject.json\n  gpu-doctor inject oom --limit 4GiB -- python train.py   # program mode: docs/shim.md\n  gpu-doctor inject error --call cuLaunchKernel --code CUDA_ERROR_LAUNCH_FAILED --nth 100 -- ./app\n  gpu-doctor inject oom --example   # a report recorded on an H100 box: no GPU needed",
    ),
    (
        "trace",
        "Trace CUDA context lifetimes per OS thread.",
        "Examples:\n  gpu-doctor trace ctx\n  gpu-doctor trace ctx thread-hop --chrome-trace hop.json\n  gpu-doctor trace ctx -- ./service   # program mode: docs/shim.md\n  gpu-doctor trace ctx --example   # a report recorded on an H100 box: no GPU needed",
    ),
];

const INJECT_ALL_ABOUT: &str = "All the built-in fault scenarios in sequence, one combined report.";

/// The whole command tree: the built-in commands and one command per scenario, in registry
/// order (a two-word name goes under its group's command).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .version(VERSION.as_str())
        .long_version(VERSION.as_str());
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
    let (about, examples) = GROUPS
        .iter()
        .find(|(g, ..)| *g == name)
        .map(|(_, a, e)| (*a, *e))
        .unwrap_or(("", ""));
    clap::Command::new(name.to_string())
        .about(about)
        .after_help(examples)
        .display_order(order)
        .subcommand_required(true)
        .arg_required_else_help(true)
}

fn scenario_command(s: &'static dyn DynScenario, leaf: &str) -> clap::Command {
    let has_example = crate::examples::SCENARIOS.contains(&s.name());
    let mut examples: Vec<String> = s.examples().lines().map(str::to_string).collect();
    examples.push(format!(
        "gpu-doctor {} --from saved.json   # a saved report, or a suite's: no GPU needed",
        s.name()
    ));
    if has_example {
        examples.push(format!(
            "gpu-doctor {} --example   # a report recorded on an H100 box",
            s.name()
        ));
    }
    let examples: Vec<String> = examples.iter().map(|e| format!("  {e}")).collect();
    // The params' doc comment would become the command's about: ours is set after them.
    let mut cmd = s
        .add_args(clap::Command::new(leaf.to_string()))
        .about(s.about())
        .long_about(None)
        .after_help(format!("Examples:\n{}", examples.join("\n")))
        // `--min-efficiency -0.5` reaches the range check, which says what is allowed.
        .allow_negative_numbers(true)
        .arg(
            Arg::new("from")
                .long("from")
                .value_name("REPORT.json")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Re-analyse and re-render a saved report of this scenario (or a suite report holding one) instead of probing: no GPU needed"),
        );
    // A saved report needs none of what a run needs (a COMMAND, inject error's call and code).
    let saved: &[&str] = if has_example {
        &["from", "example"]
    } else {
        &["from"]
    };
    cmd = cmd.mut_args(|a| {
        if a.is_required_set() {
            a.required(false).required_unless_present_any(saved)
        } else {
            a
        }
    });
    if has_example {
        cmd = cmd.arg(
            Arg::new("example")
                .long("example")
                .action(ArgAction::SetTrue)
                .conflicts_with("from")
                .help("Re-analyse the report of this scenario recorded on an H100 box that is built into gpu-doctor: see what it reports, anywhere, no GPU needed"),
        );
    }
    cmd
}

/// What the command line asks for.
pub enum Invocation {
    Scenario(Request),
    InjectAll,
    Run(crate::suite::RunArgs),
    Compare(crate::compare::CompareArgs),
    Fleet(crate::fleet::FleetArgs),
    Schema,
    Completions(clap_complete::Shell),
    Man(Vec<String>),
    Snapshot,
    Exporter(crate::exporter::ExporterArgs),
    Child(ChildArgs),
}

/// Parses the command line. Usage errors exit here (exit 2, on stderr, as clap does);
/// `--help` and `--version` come back as `Err(text)` for main.rs to print on stdout, where a
/// write error is reported like any other.
pub fn parse() -> Result<(GlobalOpts, Invocation), String> {
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| invocation(&matches));
    match parsed {
        Ok(parsed) => Ok(parsed),
        Err(e) if e.use_stderr() => e.exit(),
        Err(e) => {
            use std::io::IsTerminal;
            Err(if std::io::stdout().is_terminal() {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            })
        }
    }
}

/// Parses `args` (after the program name) as the command line would be.
#[cfg(test)]
pub(crate) fn parse_from(args: &[&str]) -> Result<(GlobalOpts, Invocation), clap::Error> {
    let matches = command()
        .try_get_matches_from(std::iter::once("gpu-doctor").chain(args.iter().copied()))?;
    invocation(&matches)
}

fn invocation(matches: &ArgMatches) -> Result<(GlobalOpts, Invocation), clap::Error> {
    // Global flags are propagated to the deepest subcommand: read them there.
    let mut leaf = matches;
    let mut path = Vec::new();
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let mut global = GlobalOpts::from_arg_matches(leaf)?;
    global.nvml = NvmlOpts::from_arg_matches(matches)?;
    let name = path.join(" ");
    if name == "inject all" {
        return Ok((global, Invocation::InjectAll));
    }
    if let Some(s) = scenarios::find(&name).filter(|s| s.in_cli()) {
        let served = s.params_from_matches(leaf)?;
        let target = scenarios::find(served.scenario).expect("redirects name registered scenarios");
        let mut request = Request::new(target, served.params);
        request.from = leaf.get_one::<PathBuf>("from").cloned();
        request.example = leaf.get_flag_or_false("example");
        let saved = request.from.is_some() || request.example;
        // The timeout limits a child process: an isolated scenario's or, in program mode
        // (params with a COMMAND), the user's program.
        let timed = target.isolated() || request.params.get("command").is_some();
        let not_applying: &[(&str, &str)] = match (saved, timed) {
            (true, _) => &[
                (
                    "device",
                    "a saved report is analysed with the devices it recorded",
                ),
                ("timeout", "nothing runs: a saved report is analysed"),
            ],
            (false, false) => &[(
                "timeout",
                "it limits isolated scenarios and program mode; this one runs in gpu-doctor's own process",
            )],
            (false, true) => &[],
        };
        let label = match (request.example, saved) {
            (true, _) => format!("{name} --example"),
            (false, true) => format!("{name} --from"),
            (false, false) => name.clone(),
        };
        refuse_globals(leaf, &label, not_applying)?;
        return Ok((global, Invocation::Scenario(request)));
    }
    let invocation = match Builtin::from_arg_matches(matches)? {
        Builtin::Run(a) => Invocation::Run(a),
        Builtin::Compare(mut a) => {
            refuse_globals(
                leaf,
                &name,
                &[
                    ("device", "compare reads reports"),
                    ("timeout", "compare runs nothing"),
                ],
            )?;
            if global.markdown {
                if given(leaf, "format") && a.format != crate::compare::Format::Markdown {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--markdown and --format say different things: give one\n",
                    ));
                }
                a.format = crate::compare::Format::Markdown;
            }
            if global.verbose {
                a.limit = 0;
            }
            if global.json {
                a.format = crate::compare::Format::Json;
            }
            Invocation::Compare(a)
        }
        Builtin::Schema => {
            refuse_globals(
                leaf,
                &name,
                &[
                    ("device", "the schema is the same for every GPU"),
                    ("timeout", "schema runs nothing"),
                    ("markdown", "the schema is JSON"),
                    ("verbose", "the schema is printed whole"),
                ],
            )?;
            // The schema is JSON either way.
            global.json = true;
            Invocation::Schema
        }
        Builtin::Completions { shell } => {
            refuse_all_globals(leaf, &name, "it prints a completion script")?;
            Invocation::Completions(shell)
        }
        Builtin::Man { command } => {
            refuse_all_globals(leaf, &name, "it prints a manual page")?;
            Invocation::Man(command)
        }
        Builtin::Fleet(a) => {
            refuse_globals(
                leaf,
                &name,
                &[
                    ("device", "fleet reads reports"),
                    ("timeout", "fleet runs nothing"),
                ],
            )?;
            Invocation::Fleet(a)
        }
        Builtin::Snapshot => Invocation::Snapshot,
        Builtin::Exporter(a) => Invocation::Exporter(a),
        Builtin::Child(a) => Invocation::Child(a),
    };
    Ok((global, invocation))
}

/// Global options, by id, with their flag.
const GLOBAL_FLAGS: &[(&str, &str)] = &[
    ("device", "--device"),
    ("json", "--json"),
    ("markdown", "--markdown"),
    ("output", "-o/--output"),
    ("verbose", "--verbose"),
    ("quiet", "--quiet"),
    ("no_color", "--no-color"),
    ("timeout", "--timeout"),
];

/// Whether the user gave `id` on the command line (not a default).
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.try_get_raw(id), Ok(Some(_))) && m.value_source(id) == Some(ValueSource::CommandLine)
}

/// A usage error (exit 2) for each global option in `ids` that was given: it does not apply to
/// `command`, for the reason given.
fn refuse_globals(m: &ArgMatches, command: &str, ids: &[(&str, &str)]) -> Result<(), clap::Error> {
    for (id, why) in ids {
        if given(m, id) {
            let flag = GLOBAL_FLAGS
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, f)| *f)
                .unwrap_or(id);
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{flag} does not apply to `{command}`: {why}\n"),
            ));
        }
    }
    Ok(())
}

/// [`refuse_globals`] for every global option but those that only quieten output.
fn refuse_all_globals(m: &ArgMatches, command: &str, why: &str) -> Result<(), clap::Error> {
    let ids: Vec<(&str, &str)> = GLOBAL_FLAGS
        .iter()
        .filter(|(id, _)| !matches!(*id, "quiet" | "no_color"))
        .map(|(id, _)| (*id, why))
        .collect();
    refuse_globals(m, command, &ids)
}

/// `get_flag` for a flag only some commands have.
trait FlagOrFalse {
    fn get_flag_or_false(&self, id: &str) -> bool;
}

impl FlagOrFalse for ArgMatches {
    fn get_flag_or_false(&self, id: &str) -> bool {
        matches!(self.try_get_one::<bool>(id), Ok(Some(true)))
    }
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

/// Runs what the command line asks for. Outputs are checked first: `-o` must be writable and
/// must not be one of the inputs (exit 2 before anything runs). Call it while the process has
/// one thread: with `--replay` or `--fault` it sets NVML's environment for this process.
pub fn execute(global: &GlobalOpts, invocation: Invocation) -> Result<Outcome> {
    let opts = global.run_options();
    let output = global.output.as_deref();
    if let Some(out) = output
        && !matches!(invocation, Invocation::Child(_))
    {
        crate::output::check_output(out, "the output")?;
    }
    let nvml = &global.nvml;
    if nvml.is_set()
        && !matches!(
            invocation,
            Invocation::Scenario(_)
                | Invocation::InjectAll
                | Invocation::Run(_)
                | Invocation::Exporter(_)
        )
    {
        return Err(crate::error::input(
            "--replay and --fault apply to scenarios, suites and the exporter (before the command: gpu-doctor --replay X topo)",
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
    let report = |r: crate::report::Report| Outcome::Report(Box::new(r));
    let mut outcome = match invocation {
        Invocation::Scenario(request) => {
            let request = request.checked()?;
            // Its outputs (`-o`, its own files) are neither its `--from` report nor each other.
            runner::check_paths(&[], std::slice::from_ref(&request), output)?;
            // The command itself may draw live (watch); in a suite it stays quiet.
            let opts = RunOptions {
                stream: true,
                ..opts.clone()
            };
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
        Invocation::InjectAll => report(runner::execute_inject_all(&opts)?),
        Invocation::Run(args) => report(crate::suite::run(&args, &opts, output)?),
        Invocation::Compare(args) => {
            let (text, code) = crate::compare::run(&args, output, global.json, global.style())?;
            Outcome::Text(text, code)
        }
        Invocation::Fleet(args) => {
            let (text, code) = crate::fleet::run(&args, output, global.json, global.style())?;
            Outcome::Text(text, code)
        }
        Invocation::Schema => {
            let schema = serde_json::to_string_pretty(&crate::report::json_schema())? + "\n";
            if let Some(out) = output {
                crate::output::write_atomic(out, schema.as_bytes(), "the schema")?;
            }
            Outcome::Text(schema, crate::error::exit::OK)
        }
        Invocation::Completions(shell) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut command(), "gpu-doctor", &mut buf);
            Outcome::Text(String::from_utf8(buf)?, crate::error::exit::OK)
        }
        Invocation::Man(words) => Outcome::Text(man_page(&words)?, crate::error::exit::OK),
        Invocation::Snapshot => snapshot(global)?,
        Invocation::Exporter(args) => {
            let (text, code) = crate::exporter::run(&args, &opts)?;
            Outcome::Text(text, code)
        }
        Invocation::Child(args) => Outcome::Text(String::new(), runner::child_main(&args)?),
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

/// The manual page of `gpu-doctor WORDS…` (roff), or an input error naming the commands.
fn man_page(words: &[String]) -> Result<String> {
    let mut cmd = command();
    cmd.build();
    let mut page = cmd;
    let mut name = "gpu-doctor".to_string();
    for w in words {
        let Some(sub) = page
            .get_subcommands()
            .find(|c| c.get_name() == w && !c.is_hide_set())
            .cloned()
        else {
            let known: Vec<&str> = page
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name())
                .collect();
            return Err(crate::error::input(format!(
                "`{name} {w}` is not a command; commands of `{name}`: {}",
                known.join(", ")
            )));
        };
        name = format!("{name}-{w}");
        page = sub.name(name.clone());
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    Ok(String::from_utf8(buf)?)
}

/// The report as text: terminal tables (width and colour as `global` says) or Markdown.
pub fn render_report(report: &crate::report::Report, global: &GlobalOpts) -> String {
    scenarios::render_report(report, global.style())
}

/// The report as JSON for stdout (characters a terminal would obey escaped: the same value):
/// pretty, or one line after a scenario's JSON lines (`watch --json`), so the whole stream
/// stays one object per line.
pub fn report_json(report: &crate::report::Report) -> Result<String> {
    let one_line = scenarios::find(&report.scenario).is_some_and(|s| s.json_lines());
    let json = if one_line {
        serde_json::to_string(report)?
    } else {
        serde_json::to_string_pretty(report)?
    };
    Ok(crate::render::text::json_printable(json + "\n"))
}

/// Text from a report, a file or a program, safe to print on a terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    crate::render::text::printable(s)
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
        match invocation(&matches).unwrap().1 {
            Invocation::Scenario(r) => (r.scenario.name().to_string(), r.params),
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
        let (global, _) =
            parse_from(&["--replay", "box.json", "--fault", "xid=79@gpu1", "topo"]).unwrap();
        assert_eq!(global.nvml.replay, Some(PathBuf::from("box.json")));
        assert_eq!(global.nvml.faults, ["xid=79@gpu1"]);
        let (global, inv) =
            parse_from(&["inject", "nvml", "--fault", "gpu-lost@gpu0", "--", "true"]).unwrap();
        assert!(
            !global.nvml.is_set(),
            "the program's faults are the scenario's"
        );
        match inv {
            Invocation::Scenario(r) => {
                assert_eq!(r.params["faults"], serde_json::json!(["gpu-lost@gpu0"]))
            }
            _ => panic!("a scenario"),
        }
    }
}
