//! Program mode without a GPU: the launcher against sh scripts (exits, crashes, hangs, never
//! loads CUDA), and the shim's interception paths against a fake libcuda.so.1 built here with
//! `cc` (tests/shim/fake_cuda.c) and a test program (tests/shim/cuda_prog.c) that reaches it
//! through dlsym, cuGetProcAddress (legacy and per-thread stream) and direct linking.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Ran, root, with_report};
use gpu_doctor::report::{Report, Status, codes};
use serde_json::Value;

const SHIM: &str = env!("GPU_DOCTOR_SHIM_SO");

fn shim_built() -> bool {
    let ok = std::fs::metadata(SHIM)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: the shim was not built (GPU_DOCTOR_SHIM_SKIP_BUILD?)");
    }
    ok
}

/// The built gpu-doctor as program mode runs it: the program inherits its environment.
fn gpu_doctor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
}

/// Runs `gpu-doctor --quiet --timeout TIMEOUT -o FILE ARGS…` with `env` added and reads the
/// report back.
fn doctor(timeout: &str, args: &[&str], env: &[(&str, &OsStr)]) -> Ran {
    let mut cmd = gpu_doctor();
    cmd.args(["--quiet", "--timeout", timeout])
        .envs(env.iter().copied());
    with_report(cmd, args)
}

/// `gpu-doctor inject oom --limit LIMIT [EXTRA…] -- sh -c SCRIPT`.
fn oom_sh(timeout: &str, limit: &str, extra: &[&str], script: &str) -> Ran {
    let mut args = vec!["inject", "oom", "--limit", limit];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", script]);
    doctor(timeout, &args, &[])
}

fn has_code(r: &Report, code: &str) -> bool {
    r.findings.iter().any(|f| f.code == code)
}

// --- launcher -------------------------------------------------------------------------------

#[test]
fn program_that_exits_0_without_cuda_survives_but_warns_nothing_was_injected() {
    if !shim_built() {
        return;
    }
    let run = oom_sh("20s", "1GiB", &[], "echo hello; exit 0");
    assert_eq!(run.code, 0, "warn exits 0: {}", run.stderr);
    assert!(run.stdout.contains("hello"), "{}", run.stdout);
    let r = run.report();
    assert_eq!(r.scenario, "inject oom --");
    assert_eq!(r.data["verdict"], "survived");
    assert_eq!(r.data["exit"]["code"], 0);
    assert!(has_code(r, codes::PROGRAM_SURVIVED));
    assert!(has_code(r, codes::FAULT_NOT_INJECTED));
    assert!(has_code(r, codes::CUDA_NOT_INTERCEPTED));
    assert!(
        !has_code(r, codes::SHIM_NOT_LOADED),
        "sh is dynamic: the shim loads"
    );
    assert_eq!(r.status, Status::Warn);
    assert_eq!(r.params["limit"], "1GiB");
}

#[test]
fn crashing_program_fails_unless_failure_is_expected() {
    if !shim_built() {
        return;
    }
    let run = oom_sh("20s", "1GiB", &[], "echo about to die >&2; kill -SEGV $$");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    assert_eq!(r.data["verdict"], "crashed");
    assert_eq!(r.data["exit"]["signal_name"], "SIGSEGV");
    assert_eq!(r.status, Status::Fail);
    assert!(has_code(r, codes::PROGRAM_CRASHED));

    let run = oom_sh("20s", "1GiB", &["--expect", "fail"], "exit 7");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.report();
    assert_eq!(r.data["verdict"], "crashed");
    assert_eq!(r.data["exit"]["code"], 7);
    assert_eq!(r.data["expectation_met"], true);
    assert!(!r.status.is_failure(), "{:?}", r.findings);
}

#[test]
fn hanging_program_is_killed_at_the_timeout() {
    if !shim_built() {
        return;
    }
    let t0 = Instant::now();
    let run = oom_sh("400ms", "1GiB", &[], "sleep 30");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = run.report();
    assert_eq!(r.data["verdict"], "hung");
    assert_eq!(r.data["exit"]["ended"], "timed_out");
    assert!(has_code(r, codes::PROGRAM_HUNG));
    assert_eq!(r.status, Status::Fail);
}

#[test]
fn program_still_running_at_survive_after_survived() {
    if !shim_built() {
        return;
    }
    let t0 = Instant::now();
    let run = oom_sh("20s", "1GiB", &["--survive-after", "300ms"], "sleep 30");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let r = run.report();
    assert_eq!(r.data["verdict"], "kept_running");
    assert_eq!(r.data["exit"]["ended"], "stopped");
    assert_eq!(r.data["expectation_met"], true);
}

#[test]
fn missing_command_and_bad_limit_are_input_errors() {
    if !shim_built() {
        return;
    }
    for args in [
        &[
            "inject",
            "oom",
            "--limit",
            "1GiB",
            "--",
            "/nonexistent/program",
        ][..],
        &["inject", "oom", "--limit", "lots", "--", "true"],
        &["inject", "oom", "--limit", "0", "--", "true"],
        &["inject", "oom", "--limit", "1GiB"],
        &["inject", "oom", "--", "true"],
    ] {
        let run = doctor("5s", args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.report.is_none(), "{args:?}: no report");
    }
}

#[test]
fn shim_env_reaches_the_program_and_ld_preload_is_appended() {
    if !shim_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let script = format!(
        "echo \"$LD_PRELOAD|$GPU_DOCTOR_SHIM_CONFIG\" > {}",
        out.display()
    );
    let run = oom_sh("20s", "2MiB", &[], &script);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    let (preload, config) = text.trim().split_once('|').unwrap();
    assert!(preload.ends_with("libgpu_doctor_shim.so"), "{preload}");
    assert_eq!(config, "limit=2097152");
    // The private copy is gone afterwards.
    assert!(!Path::new(preload).exists());
}

// --- interception against a fake libcuda ----------------------------------------------------

struct Fake {
    _dir: tempfile::TempDir,
    /// libcuda.so.1 linked -Bsymbolic: its pointers are its own (like the real driver).
    lib: PathBuf,
    /// libcuda.so.1 without -Bsymbolic: taking its own functions' addresses gets ours.
    interposed: PathBuf,
    prog: PathBuf,
    linked: PathBuf,
    /// tests/gpu/leak3.c and tests/gpu/service.c (the GPU checks' programs), linked against
    /// the fake driver with tests/shim/include/cuda.h.
    leak3: PathBuf,
    service: PathBuf,
}

/// Runs the C compiler: false when there is none (the tests that need it are skipped). A
/// source that does not compile fails the test: a broken test program must not skip them.
fn cc(args: &[&str]) -> bool {
    let Ok(out) = Command::new("cc").args(args).output() else {
        return false;
    };
    assert!(
        out.status.success(),
        "cc {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Builds the fake driver and the test program once; None (test skipped) without a C compiler.
fn fake() -> Option<&'static Fake> {
    static FAKE: OnceLock<Option<Fake>> = OnceLock::new();
    FAKE.get_or_init(|| {
        if !shim_built() {
            return None;
        }
        let src = root().join("tests/shim");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let lib = d.join("lib");
        let interposed = d.join("interposed");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&interposed).unwrap();
        let fake_c = src.join("fake_cuda.c");
        let prog_c = src.join("cuda_prog.c");
        let gpu = root().join("tests/gpu");
        let include = format!("-I{}", src.join("include").display());
        let link = format!("-L{}", lib.display());
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let ok = cc(&[
            "-shared",
            "-fPIC",
            "-Wl,-Bsymbolic",
            "-o",
            &s(&lib.join("libcuda.so.1")),
            &s(&fake_c),
        ]) && cc(&[
            "-shared",
            "-fPIC",
            "-o",
            &s(&interposed.join("libcuda.so.1")),
            &s(&fake_c),
        ]) && std::os::unix::fs::symlink("libcuda.so.1", lib.join("libcuda.so")).is_ok()
            && cc(&[
                "-g",
                "-o",
                &s(&d.join("prog")),
                &s(&prog_c),
                "-ldl",
                "-lpthread",
            ])
            && cc(&[
                "-g",
                "-DLINKED",
                "-o",
                &s(&d.join("prog_linked")),
                &s(&prog_c),
                &format!("-L{}", lib.display()),
                "-lcuda",
                "-ldl",
                "-lpthread",
            ])
            && ["leak3", "service"].iter().all(|name| {
                cc(&[
                    "-g",
                    &include,
                    "-o",
                    &s(&d.join(name)),
                    &s(&gpu.join(format!("{name}.c"))),
                    &link,
                    "-lcuda",
                ])
            });
        if !ok {
            eprintln!("skipped: no working C compiler (cc)");
            return None;
        }
        Some(Fake {
            prog: d.join("prog"),
            linked: d.join("prog_linked"),
            leak3: d.join("leak3"),
            service: d.join("service"),
            lib,
            interposed,
            _dir: dir,
        })
    })
    .as_ref()
}

/// Runs the test program directly with the shim preloaded; returns (exit code, stdout, events).
fn preload(
    libdir: &Path,
    prog: &Path,
    args: &[&str],
    config: &str,
    extra_env: &[(&str, &str)],
) -> (i32, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, b"").unwrap();
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("LD_LIBRARY_PATH", libdir)
        .env("LD_PRELOAD", SHIM)
        .env("GPU_DOCTOR_SHIM_CONFIG", config)
        .env("GPU_DOCTOR_SHIM_EVENTS", &events);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let ev = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        ev,
    )
}

fn injected(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["ev"] == "fail" && e["injected"] == true)
        .collect()
}

#[test]
fn oom_limit_through_every_path() {
    let Some(f) = fake() else { return };
    type Case<'a> = (&'a Path, &'a Path, Vec<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: Vec<Case> = vec![
        (&f.lib, &f.prog, vec!["dlsym", "alloc", "4", "1"], &[]),
        (
            &f.lib,
            &f.prog,
            vec!["proc", "legacy", "alloc", "4", "1"],
            &[],
        ),
        (
            &f.lib,
            &f.prog,
            vec!["proc", "ptds", "alloc", "4", "1"],
            &[],
        ),
        (
            &f.lib,
            &f.prog,
            vec!["proc", "legacy", "alloc", "4", "1"],
            &[("FAKE_CUDA_THUNKS", "1")],
        ),
        (
            &f.interposed,
            &f.prog,
            vec!["proc", "legacy", "alloc", "4", "1"],
            &[],
        ),
        (
            &f.interposed,
            &f.prog,
            vec!["proc", "legacy", "alloc", "4", "1"],
            &[("FAKE_CUDA_THUNKS", "1")],
        ),
        (&f.lib, &f.linked, vec!["link", "alloc", "4", "1"], &[]),
    ];
    for (libdir, prog, args, env) in cases {
        let what = format!("{} {args:?} {env:?}", libdir.display());
        let (code, out, ev) = preload(libdir, prog, &args, "limit=3145728", env);
        assert_eq!(code, 0, "{what}: {out}");
        // 3 MiB limit, four 1 MiB allocations: exactly the 4th is refused, once.
        assert!(out.contains("alloc 2: 0\nalloc 3: 2\n"), "{what}: {out}");
        assert!(
            out.contains("meminfo free=0 total=3145728"),
            "{what}: {out}"
        );
        assert!(
            out.contains("after free: free=3145728 total=3145728 ooms=1"),
            "{what}: {out}"
        );
        let inj = injected(&ev);
        assert_eq!(inj.len(), 1, "{what}: {ev:?}");
        assert_eq!(inj[0]["call"], "cuMemAlloc_v2");
        assert_eq!(inj[0]["size"], 1 << 20);
        assert_eq!(inj[0]["code"], 2);
        let stats = ev
            .iter()
            .find(|e| e["ev"] == "stats")
            .expect("stats at exit");
        assert_eq!(
            stats["calls"]["cuMemAlloc_v2"], 4,
            "{what}: counted once each"
        );
        let fin = ev
            .iter()
            .find(|e| e["ev"] == "peak" && e["final"] == true)
            .unwrap();
        assert_eq!(
            (fin["bytes"].as_u64(), fin["used"].as_u64()),
            (Some(3 << 20), Some(0))
        );
        assert!(
            ev.iter()
                .filter(|e| e["ev"] == "fail")
                .all(|e| e["injected"] == true),
            "{what}: no double wrap"
        );
    }
}

/// A program that ends without exit handlers (`_exit`, as Go's exit_group; SIGKILL) keeps its
/// calls, peak and the memory it still held: the shim's ledger has them.
#[test]
fn accounting_survives_an_exit_without_exit_handlers() {
    let Some(f) = fake() else { return };
    let env = [("LD_LIBRARY_PATH", f.lib.as_os_str())];
    let prog = f.prog.to_str().unwrap();
    for (how, signal) in [("exit-early", None), ("killed", Some("SIGKILL"))] {
        let run = doctor(
            "20s",
            &[
                "inject", "oom", "--limit", "1GiB", "--", prog, "dlsym", how, "3", "1",
            ],
            &env,
        );
        let r = run.report();
        assert!(
            run.stdout.contains("allocated 3 x 1048576"),
            "{how}: {}",
            run.stdout
        );
        assert_eq!(r.data["exit"]["signal_name"].as_str(), signal, "{how}");
        assert_eq!(
            r.data["calls"]["cuMemAlloc_v2"], 3,
            "{how}: {}",
            r.data["calls"]
        );
        assert_eq!(r.data["calls"]["cuLaunchKernel"], 3, "{how}");
        assert_eq!(
            r.data["peak"][0]["bytes"],
            3 << 20,
            "{how}: {}",
            r.data["peak"]
        );
        assert_eq!(r.data["peak"][0]["held_at_end_bytes"], 3 << 20, "{how}");
        assert_eq!(
            r.data["shim"]["recovered"][0], r.data["exit"]["pid"],
            "{how}"
        );
        assert!(!has_code(r, codes::CUDA_NOT_INTERCEPTED), "{how}");
    }
    // The same program exiting through its handlers: nothing to recover.
    let run = doctor(
        "20s",
        &[
            "inject", "oom", "--limit", "1GiB", "--", prog, "dlsym", "alloc", "2", "1",
        ],
        &env,
    );
    let r = run.report();
    assert_eq!(r.data["calls"]["cuMemAlloc_v2"], 2);
    assert_eq!(r.data["peak"][0]["held_at_end_bytes"], 0, "all freed");
    assert_eq!(r.data["shim"]["recovered"], serde_json::json!([]));
}

#[test]
fn per_thread_stream_entry_point_is_kept() {
    let Some(f) = fake() else { return };
    let (code, out, ev) = preload(
        &f.lib,
        &f.prog,
        &["proc", "ptds", "launch", "5"],
        "call=cuLaunchKernel;code=719;nth=9",
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("launched legacy=0 ptsz=5"),
        "the _ptsz function ran: {out}"
    );
    let hook = ev
        .iter()
        .find(|e| {
            e["ev"] == "hook"
                && e["via"] == "proc"
                && e["call"].as_str().unwrap().starts_with("cuLaunchKernel")
        })
        .unwrap();
    assert_eq!(hook["call"], "cuLaunchKernel_ptsz");
    let (_, out, _) = preload(&f.lib, &f.prog, &["proc", "legacy", "launch", "5"], "", &[]);
    assert!(out.contains("launched legacy=5 ptsz=0"), "{out}");
}

#[test]
fn failpoint_nth_and_every_reach_the_program() {
    let Some(f) = fake() else { return };
    let (code, out, ev) = preload(
        &f.lib,
        &f.prog,
        &["dlsym", "launch", "10"],
        "call=cuLaunchKernel;code=719;nth=4",
        &[],
    );
    assert_eq!(code, 3);
    assert!(out.contains("launch 4 failed: 719"), "{out}");
    assert_eq!(injected(&ev)[0]["index"], 4);
    // every: 2, 5, 8 …; the program stops at the first.
    let (_, out, _) = preload(
        &f.lib,
        &f.prog,
        &["proc", "ptds", "launch", "10"],
        "call=cuLaunchKernel;code=2;nth=2;every=3",
        &[],
    );
    assert!(out.contains("launch 2 failed: 2"), "{out}");
    // Thread-safe counting: 8 threads x 5000 launches, every 1000th fails: exactly 40.
    let (code, out, ev) = preload(
        &f.lib,
        &f.prog,
        &["dlsym", "mt", "8", "5000"],
        "call=cuLaunchKernel;code=719;nth=1000;every=1000",
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("mt failures=40"), "{out}");
    assert_eq!(injected(&ev).len(), 40);
    let stats = ev.iter().find(|e| e["ev"] == "stats").unwrap();
    assert_eq!(stats["calls"]["cuLaunchKernel"], 40_000);
    assert_eq!(stats["injected_total"], 40);
    // A failpoint on another call leaves launches alone.
    let (code, _, ev) = preload(
        &f.lib,
        &f.prog,
        &["dlsym", "launch", "10"],
        "call=cuStreamSynchronize;code=719;nth=1",
        &[],
    );
    assert_eq!(code, 0);
    assert!(injected(&ev).is_empty());
}

#[test]
fn inject_error_cli_end_to_end() {
    let Some(f) = fake() else { return };
    let mut cmd = gpu_doctor();
    cmd.env("LD_LIBRARY_PATH", &f.lib);
    let run = with_report(
        cmd,
        &[
            "inject",
            "error",
            "--call",
            "cuLaunchKernel",
            "--code",
            "CUDA_ERROR_LAUNCH_FAILED",
            "--nth",
            "3",
            "--",
            f.prog.to_str().unwrap(),
            "proc",
            "legacy",
            "launch",
            "5",
        ],
    );
    let stdout = &run.stdout;
    assert_eq!(run.code, 1, "crashed, expected to survive: {stdout}");
    assert!(
        stdout.contains("launch 3 failed: 719"),
        "the program's stdout passes through: {stdout}"
    );
    let r = run.report();
    assert_eq!(r.scenario, "inject error");
    assert_eq!(r.data["verdict"], "crashed");
    assert_eq!(r.data["exit"]["code"], 3);
    assert_eq!(r.data["injected"][0]["call"], "cuLaunchKernel");
    assert_eq!(r.data["injected"][0]["name"], "CUDA_ERROR_LAUNCH_FAILED");
    assert_eq!(r.data["injected"][0]["index"], 3);
    assert_eq!(r.data["calls"]["cuLaunchKernel"], 3);
    assert!(has_code(r, codes::FAULT_INJECTED));

    // The same with --expect fail: the program did fail, so gpu-doctor passes.
    let status = gpu_doctor()
        .env("LD_LIBRARY_PATH", &f.lib)
        .args([
            "inject",
            "error",
            "--call",
            "cuLaunchKernel",
            "--code",
            "719",
            "--nth",
            "3",
            "--expect",
            "fail",
            "-q",
            "--",
        ])
        .arg(&f.prog)
        .args(["dlsym", "launch", "5"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));

    // Unknown calls and codes are refused before anything runs.
    for bad in [
        ["--call", "cuDeviceGetName", "--code", "2"],
        ["--call", "cuLaunchKernel", "--code", "CUDA_ERROR_NOPE"],
    ] {
        let out = gpu_doctor()
            .args(["inject", "error"])
            .args(bad)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn trace_ctx_finds_the_thread_without_a_context() {
    let Some(f) = fake() else { return };
    // The fake driver is found through LD_LIBRARY_PATH, inherited by the program.
    let env = [("LD_LIBRARY_PATH", f.lib.as_os_str())];
    let prog = f.prog.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chrome = dir.path().join("trace.json");
    let run = doctor(
        "20s",
        &[
            "trace",
            "ctx",
            "--chrome-trace",
            chrome.to_str().unwrap(),
            "--",
            prog,
            "dlsym",
            "hop",
        ],
        &env,
    );
    let r = run.report();
    assert_eq!(r.scenario, "trace ctx --");
    let tl = r.data["timeline"].as_array().unwrap();
    let create = tl
        .iter()
        .find(|e| e["op"] == "cuCtxCreate_v2")
        .expect("context creation traced");
    assert_eq!(create["ctx_before"], "0x0");
    assert_ne!(create["ctx_after"], "0x0");
    assert_eq!(create["ctx_after"], create["ctx"]);
    let unbound = tl
        .iter()
        .find(|e| e["op"] == "cuLaunchKernel")
        .expect("failed launch traced");
    assert_eq!(unbound["result"]["code"], 201);
    assert_eq!(unbound["ctx_before"], "0x0");
    assert_ne!(unbound["thread"], create["thread"], "another OS thread");
    assert!(has_code(r, codes::CTX_UNBOUND_CALL));
    assert_eq!(r.data["threads"].as_array().unwrap().len(), 2);
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    assert_eq!(trace["traceEvents"].as_array().unwrap().len(), tl.len());

    // inject error with the same driver, the failpoint repeated from the 2nd launch on.
    let run = doctor(
        "20s",
        &[
            "inject",
            "error",
            "--call",
            "cuLaunchKernel",
            "--code",
            "700",
            "--nth",
            "2",
            "--every",
            "1",
            "--",
            prog,
            "dlsym",
            "launch",
            "3",
        ],
        &env,
    );
    let r = run.report();
    assert_eq!(
        r.data["injected"].as_array().unwrap().len(),
        1,
        "the program stops at the first"
    );
    assert_eq!(r.data["failpoint"]["name"], "CUDA_ERROR_ILLEGAL_ADDRESS");
}

#[test]
fn rtld_next_keeps_resolving_relative_to_the_caller() {
    // liba's next_foo() asks dlsym(RTLD_NEXT, "foo"): libb's foo (2) follows liba; resolved
    // relative to the shim (first in the search order) it would be liba's own foo (1).
    if !shim_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("a.c"),
        "#define _GNU_SOURCE\n#include <dlfcn.h>\nint foo(void) { return 1; }\nint next_foo(void) { int (*f)(void) = (int (*)(void))dlsym(RTLD_NEXT, \"foo\"); return f ? f() : -1; }\n",
    )
    .unwrap();
    std::fs::write(d.join("b.c"), "int foo(void) { return 2; }\n").unwrap();
    std::fs::write(
        d.join("m.c"),
        "#include <stdio.h>\nint next_foo(void);\nint main(void) { printf(\"%d\\n\", next_foo()); return 0; }\n",
    )
    .unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    let ok = cc(&["-shared", "-fPIC", "-o", &p("liba.so"), &p("a.c"), "-ldl"])
        && cc(&["-shared", "-fPIC", "-o", &p("libb.so"), &p("b.c")])
        && cc(&[
            "-o",
            &p("m"),
            &p("m.c"),
            "-Wl,--no-as-needed",
            &format!("-L{}", d.display()),
            "-la",
            "-lb",
            &format!("-Wl,-rpath,{}", d.display()),
        ]);
    if !ok {
        eprintln!("skipped: no working C compiler (cc)");
        return;
    }
    let out = Command::new(d.join("m"))
        .env("LD_PRELOAD", SHIM)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

// --- leak-check against the fake libcuda -----------------------------------------------------

/// `gpu-doctor leak-check [FLAGS…] -- prog dlsym ARGS…` against the fake driver.
fn leak_check(f: &Fake, flags: &[&str], args: &[&str]) -> Ran {
    let env = [("LD_LIBRARY_PATH", f.lib.as_os_str())];
    let mut a = vec!["leak-check"];
    a.extend_from_slice(flags);
    a.push("--");
    a.push(f.prog.to_str().unwrap());
    a.push("dlsym");
    a.extend_from_slice(args);
    doctor("20s", &a, &env)
}

fn leaks(r: &Report) -> &Value {
    &r.data["leaks"]
}

#[test]
fn leak_check_names_the_call_sites_and_bytes_left() {
    let Some(f) = fake() else { return };
    let run = leak_check(f, &[], &["leak"]);
    assert_eq!(run.code, 0, "a leak warns: {}", run.stderr);
    let r = run.report();
    assert_eq!(r.scenario, "leak-check");
    assert_eq!(r.status, Status::Warn);
    let s = &leaks(r)["summary"];
    assert_eq!(s["allocations"], 4);
    assert_eq!(s["frees"], 1);
    assert_eq!(s["at_exit_allocations"], 3);
    assert_eq!(s["at_exit_bytes"], 6 << 20);
    assert_eq!(s["peak_bytes"], 10 << 20);
    let sites = leaks(r)["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{sites:?}");
    let label = |i: usize| sites[i]["site"].as_str().unwrap().to_string();
    assert!(
        label(0).starts_with("leak_site_a (cuda_prog.c:"),
        "{}",
        label(0)
    );
    assert!(
        label(1).starts_with("leak_site_b (cuda_prog.c:"),
        "{}",
        label(1)
    );
    assert_eq!(
        (sites[0]["bytes"].as_u64(), sites[0]["allocations"].as_u64()),
        (Some(3 << 20), Some(2))
    );
    assert_eq!(
        (sites[1]["bytes"].as_u64(), sites[1]["allocations"].as_u64()),
        (Some(3 << 20), Some(1))
    );
    assert_eq!(sites[0]["calls"][0], "cuMemAlloc_v2");
    assert_eq!(sites[0]["fate"][0], "exit");
    let frames: Vec<&str> = sites[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(
        frames.contains(&"main"),
        "the caller is in the stack: {frames:?}"
    );
    let f0 = r
        .findings
        .iter()
        .find(|x| x.code == codes::LEAK_AT_EXIT)
        .unwrap();
    assert!(
        f0.message.contains("6.00 MiB in 3 allocation(s)"),
        "{}",
        f0.message
    );
    assert!(
        run.stdout.contains("Left allocated, by call site"),
        "{}",
        run.stdout
    );

    // Destroying the context frees them: what compute-sanitizer's leak check reports.
    let run = leak_check(f, &[], &["leak", "destroy"]);
    let r = run.report();
    let s = &leaks(r)["summary"];
    assert_eq!(s["ctx_destroy_allocations"], 3);
    assert_eq!(s["ctx_destroy_bytes"], 6 << 20);
    assert_eq!(s["at_exit_allocations"], 0);
    assert!(has_code(r, codes::LEAK_AT_CONTEXT_DESTROY));
    assert!(!has_code(r, codes::LEAK_AT_EXIT));

    // --fail-over: more than 1 MiB left is a failure (exit 1).
    let run = leak_check(f, &["--fail-over", "1MiB"], &["leak"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(has_code(run.report(), codes::LEAK_OVER_LIMIT));
    let run = leak_check(f, &["--fail-over", "6MiB"], &["leak"]);
    assert_eq!(run.code, 0);
}

#[test]
fn leak_check_of_a_clean_program_and_every_allocation_kind() {
    let Some(f) = fake() else { return };
    let r = leak_check(f, &[], &["alloc", "3", "1"]);
    let r = r.report();
    assert!(has_code(r, codes::LEAK_CHECK_CLEAN), "{:?}", r.findings);
    assert_eq!(r.status, Status::Pass);

    let run = leak_check(f, &[], &["kinds"]);
    let r = run.report();
    let s = &leaks(r)["summary"];
    assert_eq!(
        (s["allocations"].as_u64(), s["frees"].as_u64()),
        (Some(4), Some(1))
    );
    let calls: Vec<String> = leaks(r)["sites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
        })
        .collect();
    for c in ["cuMemAllocAsync", "cuMemAllocManaged", "cuMemAllocPitch_v2"] {
        assert!(calls.contains(&c.to_string()), "{c} in {calls:?}");
    }
    // 5 MiB async + 1 MiB managed + pitch 1024 x 1024 rows.
    assert_eq!(s["at_exit_bytes"], (5 << 20) + (1 << 20) + 1024 * 1024);
}

#[test]
fn leak_check_follows_the_virtual_memory_api() {
    let Some(f) = fake() else { return };
    let run = leak_check(f, &[], &["vmm"]);
    let r = run.report();
    let v = &leaks(r)["vmm"];
    assert_eq!(v["reserved_at_end_bytes"], 16 << 20);
    assert_eq!(v["mapped_peak_bytes"], 4 << 20);
    assert_eq!(v["mapped_at_end_bytes"], 2 << 20);
    assert_eq!(v["created_peak_bytes"], 4 << 20);
    assert_eq!(v["created_at_end_bytes"], 2 << 20);
    assert_eq!(
        (
            v["reservations_left"].as_u64(),
            v["mappings_left"].as_u64(),
            v["handles_left"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let sites = leaks(r)["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0]["calls"][0], "cuMemCreate");
    assert_eq!(sites[0]["bytes"], 2 << 20);
    assert!(run.stdout.contains("Virtual memory API"), "{}", run.stdout);
}

/// The events are written as the allocations happen: a program killed by SIGKILL or ending
/// with `_exit` is checked all the same.
#[test]
fn leak_check_survives_an_exit_without_exit_handlers() {
    let Some(f) = fake() else { return };
    for how in ["exit-early", "killed"] {
        let run = leak_check(f, &[], &[how, "3", "1"]);
        let r = run.report();
        let s = &leaks(r)["summary"];
        assert_eq!(s["at_exit_allocations"], 3, "{how}");
        assert_eq!(s["at_exit_bytes"], 3 << 20, "{how}");
        assert_eq!(r.data["calls"]["cuMemAlloc_v2"], 3, "{how}");
    }
}

#[test]
fn leak_check_sees_steady_growth_and_writes_snapshots() {
    let Some(f) = fake() else { return };
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots.jsonl");
    let run = leak_check(
        f,
        &[
            "--snapshot-every",
            "200ms",
            "--snapshot-file",
            snaps.to_str().unwrap(),
        ],
        &["grow", "40", "30", "16"],
    );
    let r = run.report();
    let g = &leaks(r)["timeline"]["growth"];
    assert!(g.is_object(), "growth found: {}", leaks(r)["timeline"]);
    let rate = g["rate_bytes_per_s"].as_f64().unwrap() / (1u64 << 20) as f64;
    // 16 MiB every 30 ms (plus the program's own pace): about 500 MiB/s.
    assert!(rate > 200.0 && rate < 600.0, "{rate} MiB/s");
    assert!(has_code(r, codes::DEVICE_MEMORY_GROWING));
    let lines: Vec<Value> = std::fs::read_to_string(&snaps)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let last = lines.last().unwrap();
    assert!(last["held_bytes"].as_u64().unwrap() > 0);
    assert!(last["allocations"].as_u64().unwrap() > 0);
    assert!(
        lines
            .windows(2)
            .all(|w| w[1]["t_s"].as_f64() > w[0]["t_s"].as_f64())
    );
}

/// The programs tests/gpu/memory.sh runs on a GPU, here against the fake driver (linked, so
/// through the shim's exported symbols): the sites and bytes it must find there, the primary
/// context's reset, and a leaking service stopped by --survive-after.
#[test]
fn leak_check_on_the_gpu_checks_programs() {
    let Some(f) = fake() else { return };
    let env = [("LD_LIBRARY_PATH", f.lib.as_os_str())];
    let leak3 = f.leak3.to_str().unwrap();
    let run = doctor("20s", &["leak-check", "--", leak3], &env);
    let r = run.report();
    let sites = leaks(r)["sites"].as_array().unwrap();
    let got: Vec<(String, u64, u64)> = sites
        .iter()
        .map(|g| {
            let site = g["site"].as_str().unwrap();
            (
                site.split(' ').next().unwrap().to_string(),
                g["bytes"].as_u64().unwrap(),
                g["allocations"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("leak_site_a".to_string(), 3 << 20, 2),
            ("leak_site_b".to_string(), 3 << 20, 1)
        ]
    );
    assert!(has_code(r, codes::LEAK_AT_EXIT));

    let run = doctor("20s", &["leak-check", "--", leak3, "destroy"], &env);
    let r = run.report();
    let s = &leaks(r)["summary"];
    assert_eq!(
        s["ctx_destroy_allocations"], 3,
        "the primary context's reset frees them"
    );
    assert_eq!(s["ctx_destroy_bytes"], 6 << 20);
    assert_eq!(s["at_exit_allocations"], 0);
    assert!(has_code(r, codes::LEAK_AT_CONTEXT_DESTROY));

    let run = doctor(
        "20s",
        &[
            "leak-check",
            "--survive-after",
            "1500ms",
            "--",
            f.service.to_str().unwrap(),
        ],
        &env,
    );
    let r = run.report();
    assert_eq!(r.data["verdict"], "kept_running");
    let g = &leaks(r)["timeline"]["growth"];
    let rate = g["rate_bytes_per_s"].as_f64().unwrap_or(0.0) / (1u64 << 20) as f64;
    assert!(
        rate > 40.0 && rate < 100.0,
        "8 MiB every 100 ms: {rate} MiB/s"
    );
    let held = r
        .findings
        .iter()
        .find(|x| x.code == codes::LEAK_AT_EXIT)
        .unwrap();
    assert_eq!(
        held.severity,
        gpu_doctor::report::Severity::Info,
        "stopped: in use"
    );
    assert!(
        leaks(r)["sites"][0]["site"]
            .as_str()
            .unwrap()
            .starts_with("handle_request")
    );
}
