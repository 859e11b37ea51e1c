//! Every value is checked before work starts, the same way from the command line and from a
//! suite: each float param of each scenario refuses NaN, infinities and values out of its
//! range, each duration param refuses zero and negative durations. The params are found in
//! the scenarios' own schemas, so a new param is covered without touching this file.

use crate::cli::{Invocation, parse_from};
use crate::context::RunOptions;
use crate::error::{exit, exit_code_of};
use crate::scenarios::{DynScenario, registry};
use crate::suite::RunArgs;

/// Params of `s` whose schema says `kind` (a JSON type such as "number", or a `$defs` name
/// such as "Span"), by name.
fn params_of(s: &dyn DynScenario, kind: &str) -> Vec<String> {
    let schema = s.params_schema();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(_, p)| {
            let text = p.to_string();
            match kind {
                "number" => text.contains("\"number\""),
                other => text.contains(&format!("#/$defs/{other}\"")),
            }
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// The words of `s`'s command and what it needs besides (inject error needs a call, a code and
/// a COMMAND).
fn command_line(s: &dyn DynScenario, flag: &str, value: &str) -> Vec<String> {
    let mut args: Vec<String> = s.name().split(' ').map(str::to_string).collect();
    args.push(format!("--{}={value}", flag.replace('_', "-")));
    if s.name() == "inject error" {
        args.extend(["--call", "cuMemAlloc", "--code", "2", "--", "true"].map(String::from));
    }
    if s.name() == "health" {
        // Its thresholds apply only with --thorough (given without it, they are refused).
        args.push("--thorough".into());
    }
    args
}

/// The command line's verdict on `args`: Ok when it parses and the request passes every check
/// made before a GPU is touched; the message otherwise.
fn verdict(args: &[String]) -> Result<(), String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, invocation) = parse_from(&args).map_err(|e| e.to_string())?;
    let Invocation::Scenario(request) = invocation else {
        panic!("{args:?} is not a scenario");
    };
    match request.checked() {
        Ok(_) => Ok(()),
        Err(e) => {
            assert_eq!(exit_code_of(&e), exit::USAGE, "{args:?}: {e:#}");
            Err(format!("{e:#}"))
        }
    }
}

/// A suite with one entry of `s` whose param `key` is `value` (TOML), checked as `run --check`.
fn suite_verdict(s: &dyn DynScenario, key: &str, value: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let mut params = format!("{key} = {value}");
    if s.name() == "inject error" {
        params.push_str(", call = \"cuMemAlloc\", code = \"2\", command = [\"true\"]");
    }
    if s.name() == "health" {
        params.push_str(", thorough = true");
    }
    std::fs::write(
        &path,
        format!(
            "[[scenario]]\nname = \"{}\"\nparams = {{ {params} }}\n",
            s.name()
        ),
    )
    .unwrap();
    let args = RunArgs {
        suite: path,
        check: true,
    };
    match crate::suite::run(&args, &RunOptions::default(), None) {
        Ok(_) => Ok(()),
        Err(e) => {
            assert_eq!(exit_code_of(&e), exit::USAGE, "{e:#}");
            Err(format!("{e:#}"))
        }
    }
}

#[test]
fn every_float_param_refuses_nan_infinities_and_values_out_of_range() {
    let mut checked = 0;
    for s in registry().iter().filter(|s| s.in_cli()) {
        for p in params_of(*s, "number") {
            for bad in ["nan", "NaN", "inf", "-inf", "infinity"] {
                let e = verdict(&command_line(*s, &p, bad))
                    .expect_err(&format!("{} --{p}={bad} was accepted", s.name()));
                assert!(e.contains("not a finite number"), "{e}");
            }
            for bad in ["-1", "1e12"] {
                let e = verdict(&command_line(*s, &p, bad))
                    .expect_err(&format!("{} --{p}={bad} was accepted", s.name()));
                assert!(e.contains("out of range") || e.contains("not in"), "{e}");
                suite_verdict(*s, &p, bad)
                    .expect_err(&format!("suite: {} {p} = {bad} was accepted", s.name()));
            }
            for bad in ["nan", "inf", "-inf"] {
                let e = suite_verdict(*s, &p, bad)
                    .expect_err(&format!("suite: {} {p} = {bad} was accepted", s.name()));
                assert!(e.contains("not a finite number"), "{e}");
            }
            checked += 1;
        }
    }
    // bandwidth's thresholds, inject oom --fraction, inject error --probability at least.
    assert!(checked >= 9, "only {checked} float params found");
}

#[test]
fn every_duration_param_refuses_zero_and_negative_durations() {
    let mut checked = 0;
    for s in registry().iter().filter(|s| s.in_cli()) {
        for p in params_of(*s, "Span") {
            for bad in ["0", "0s", "-1s", "soon"] {
                let e = verdict(&command_line(*s, &p, bad))
                    .expect_err(&format!("{} --{p}={bad} was accepted", s.name()));
                assert!(e.contains("try 500ms"), "{e}");
                suite_verdict(*s, &p, &format!("\"{bad}\""))
                    .expect_err(&format!("suite: {} {p} = {bad} was accepted", s.name()));
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} duration params found");
    for bad in ["0", "-1s"] {
        assert!(parse_from(&["--timeout", bad, "inject", "oom"]).is_err());
    }
}
