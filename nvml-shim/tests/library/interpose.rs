//! Interpose without a driver: the library preloaded over a replayed copy that plays the real
//! libnvidia-ml. The preloaded copy forwards every call and applies the faults; the replayed
//! copy leaves them to it (each fault applies once).

use std::time::Duration;

use serde_json::json;

use crate::common::{Machine, c_client, child, library, run, synthetic};
use crate::proto::event::Mode;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_interposer_forwards_and_rewrites_only_what_the_faults_change() {
    let Some(client) = c_client() else { return };
    let m = Machine::replay(&synthetic())
        .faults("pcie-width=8@gpu0;ecc-uncorrectable=3;nvlink-down=0@gpu1")
        .interposed();
    let out = run(m.command(client).arg("info"), LIMIT);
    let lines = out.json();
    assert_eq!(lines[0]["width"], 8);
    assert_eq!(lines[1]["width"], 16, "forwarded untouched");
    assert_eq!(
        lines[0]["ecc_unc_volatile"], 3,
        "applied once, not by both copies"
    );
    assert_eq!(
        (lines[0]["link0"].clone(), lines[1]["link0"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(
        lines[0]["fan_rc"], 3,
        "the real library's error comes through"
    );
    assert_eq!(lines[0]["name"], "NVIDIA H200");
    let faults: Vec<String> = [
        "pcie-width=8@gpu0",
        "ecc-uncorrectable=3",
        "nvlink-down=0@gpu1",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        m.starts(),
        vec![(Mode::Interpose, faults), (Mode::Replay, vec![])],
        "the preloaded copy applies the faults"
    );
    let delivered = m.delivered();
    assert!(delivered.contains(&(
        "pcie-width=8@gpu0".into(),
        Some(0),
        "nvmlDeviceGetCurrPcieLinkWidth".into()
    )));
}

#[test]
fn dlsym_hands_out_wrappers_for_nvml_functions_it_knows_and_the_rest_untouched() {
    let Some(client) = c_client() else { return };
    let m = Machine::replay(&synthetic()).interposed();
    let out = run(
        m.command(client).args([
            "where",
            "nvmlDeviceGetCurrPcieLinkWidth",
            "nvmlErrorString",
            "nvmlDeviceGetMaxCustomerBoostClock",
        ]),
        LIMIT,
    );
    let lines = out.json();
    let preloaded = library().display().to_string();
    let replayed = m.nvml().display().to_string();
    assert_eq!(
        lines[0]["in"], preloaded,
        "a wrapped function: the interposer's"
    );
    assert_eq!(
        lines[1]["in"], replayed,
        "an unwrapped one: the real library's own"
    );
    assert_eq!(
        lines[2]["found"], 0,
        "what the real library lacks stays missing"
    );
}

#[test]
fn nvml_wrapper_sees_the_faults_through_dlsym() {
    let m = Machine::replay(&synthetic())
        .faults("pcie-width=4@gpu1;gpu-lost@gpu0")
        .interposed();
    let f = run(&mut child(&m, "child::nvml_wrapper_facts"), LIMIT).tagged("FACTS");
    assert_eq!(f["gpus"][0]["lookup"], "GpuLost");
    assert_eq!(f["gpus"][1]["width"], 4);
    assert_eq!(f["gpus"][1]["gen"], 5);
    assert_eq!(f["pair"], serde_json::Value::Null, "GPU 0 cannot be opened");
}

#[test]
fn rtld_next_keeps_resolving_relative_to_the_caller() {
    // The exported dlsym is shim_rt's trampoline, as the CUDA shim's (tests/program_mode.rs):
    // liba's next_foo() asks dlsym(RTLD_NEXT, "foo"), which is libb's foo (2) after liba;
    // resolved relative to the preloaded library it would be liba's own foo (1).
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
    let cc = |args: &[&str]| {
        std::process::Command::new("cc")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
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
    let out = run(
        std::process::Command::new(d.join("m")).env("LD_PRELOAD", library()),
        LIMIT,
    );
    assert_eq!(out.stdout.trim(), "2");
}
