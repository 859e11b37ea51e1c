//! Outputs never destroy what is at the path: special files are written through (or refused),
//! an existing file keeps its mode, owner and links, an output is never one of the inputs, and
//! a write error is one line and exit 2. Inputs are bounded.
//!
//! Devices are only ever reached through links made in a temporary directory: were the code to
//! replace what is at the path again, it would replace the link, never the device.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::assert::Assert;
use assert_cmd::prelude::*;
use common::{doctor, fixture};
use predicates::prelude::*;

fn link(dir: &Path, name: &str, to: &str) -> PathBuf {
    let p = dir.join(name);
    std::os::unix::fs::symlink(to, &p).unwrap();
    p
}

fn stderr_of(a: &Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).unwrap()
}

/// `gpu-doctor SCENARIO --example -o TO`: the built-in example report written to `to`.
fn example_to(scenario: &str, to: &Path) -> Assert {
    doctor()
        .args([scenario, "--example", "-o"])
        .arg(to)
        .assert()
}

#[test]
fn devices_and_pipes_are_written_through_and_stay_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let null = link(dir.path(), "null", "/dev/null");
    example_to("topo", &null).success();
    assert!(std::fs::symlink_metadata(&null).unwrap().is_symlink());
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // -o through /dev/stdout: the report arrives on stdout, after the tables.
    let stdout = link(dir.path(), "stdout", "/dev/stdout");
    let out = example_to("topo", &stdout).success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("\"schema_version\": 1"), "{text}");
    assert!(std::fs::symlink_metadata(&stdout).unwrap().is_symlink());

    // A FIFO: written through to its reader.
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    example_to("topo", &fifo).success();
    assert!(reader.join().unwrap().contains("\"scenario\": \"topo\""));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn what_cannot_take_a_report_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = link(dir.path(), "dangling", "nowhere");
    for (target, why) in [
        (dir.path().to_path_buf(), "it is a directory"),
        (dangling.clone(), "a link to nothing"),
        (dir.path().join("no/such/dir/r.json"), "does not exist"),
    ] {
        let a = example_to("topo", &target).code(2);
        let err = stderr_of(&a);
        assert!(err.contains(why), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(a.get_output().stdout.is_empty(), "nothing ran");
    }
    assert!(std::fs::symlink_metadata(&dangling).unwrap().is_symlink());
}

#[test]
fn an_existing_file_keeps_its_mode_its_links_and_the_link_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o604)).unwrap();
    example_to("topo", &file).success();
    let m = std::fs::metadata(&file).unwrap();
    assert_eq!(m.mode() & 0o777, 0o604);
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"topo\""));

    // A second name (hard link) sees the new report: the file itself was rewritten.
    let other = dir.path().join("other-name.json");
    std::fs::hard_link(&file, &other).unwrap();
    let ino = m.ino();
    example_to("info", &file).success();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
    assert!(
        std::fs::read_to_string(&other)
            .unwrap()
            .contains("\"info\"")
    );

    // A link to a file: the file gets the report, the link stays a link.
    let l = link(dir.path(), "latest.json", "r.json");
    example_to("topo", &l).success();
    assert!(std::fs::symlink_metadata(&l).unwrap().is_symlink());
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"topo\""));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_output_is_never_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let topo = dir.path().join("topo.json");
    std::fs::copy(fixture("h100-topo.json"), &topo).unwrap();
    let trace = dir.path().join("trace.json");
    std::fs::copy(fixture("h100-trace-ctx.json"), &trace).unwrap();
    let base = dir.path().join("base.json");
    std::fs::copy(fixture("h100-suite-ci.json"), &base).unwrap();
    let cur = dir.path().join("cur.json");
    std::fs::copy(fixture("h100-suite-ci-derived-rerun.json"), &cur).unwrap();
    // The same file by another name counts too.
    let alias = link(dir.path(), "alias.json", "cur.json");
    let suite = dir.path().join("s.toml");
    std::fs::write(
        &suite,
        format!(
            "[[scenario]]\nname = \"topo\"\nfrom = \"{}\"\n",
            topo.display()
        ),
    )
    .unwrap();
    let d = |p: &Path| p.to_str().unwrap().to_string();
    let fresh = dir.path().join("fresh.json");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "topo".into(),
            "--from".into(),
            d(&topo),
            "-o".into(),
            d(&topo),
        ],
        vec![
            "trace".into(),
            "ctx".into(),
            "--from".into(),
            d(&trace),
            "--chrome-trace".into(),
            d(&trace),
        ],
        vec![
            "trace".into(),
            "ctx".into(),
            "--from".into(),
            d(&trace),
            "--chrome-trace".into(),
            d(&fresh),
            "-o".into(),
            d(&fresh),
        ],
        vec!["compare".into(), d(&base), d(&cur), "-o".into(), d(&cur)],
        vec!["compare".into(), d(&base), d(&cur), "-o".into(), d(&alias)],
        vec!["compare".into(), d(&base), d(&cur), "-o".into(), d(&base)],
        vec!["run".into(), d(&suite), "-o".into(), d(&suite)],
        vec!["run".into(), d(&suite), "-o".into(), d(&topo)],
    ];
    let before: Vec<Vec<u8>> = [&topo, &trace, &base, &cur, &suite]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for args in cases {
        let a = doctor().args(&args).assert().code(2);
        let err = stderr_of(&a);
        assert!(
            err.contains("is an input") || err.contains("writes that file too"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let after: Vec<Vec<u8>> = [&topo, &trace, &base, &cur, &suite]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "an input was modified");
    assert!(!fresh.exists());
}

#[test]
fn write_errors_are_one_line_and_exit_2() {
    // stdout on a full device, for a report and for plain text.
    for args in [
        &["topo", "--example"][..],
        &["schema"],
        &["compare", "--help"],
        &["--version"],
        &["completions", "bash"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = doctor().args(args).stdout(full).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("cannot write to standard output"), "{err}");
    }
    // -o on a full device.
    let dir = tempfile::tempdir().unwrap();
    let full = link(dir.path(), "full", "/dev/full");
    let a = example_to("topo", &full).code(2);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("No space left"), "{err}");
    // A closed pipe is not an error: `gpu-doctor … | head -1`.
    let mut child = doctor()
        .args(["schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_writes_its_output_and_refuses_what_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("schema.json");
    doctor().args(["schema", "-o"]).arg(&out).assert().success();
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(schema.get("$defs").is_some());
    for args in [
        &["schema", "--markdown"][..],
        &["schema", "--device", "0"],
        &["schema", "--timeout", "5s"],
        &["compare", "a.json", "b.json", "--device", "1"],
        &["info", "--timeout", "5s"],
        &["topo", "--example", "--device", "5"],
        &["completions", "bash", "-o", "x"],
        &["man", "--json"],
    ] {
        doctor()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("does not apply to"));
    }
}

#[test]
fn an_endless_or_oversized_input_fails_fast_with_exit_2() {
    for cmd in [&["topo", "--from", "/dev/zero"][..], &["run", "/dev/zero"]] {
        let started = std::time::Instant::now();
        let a = doctor().args(cmd).assert().code(2);
        let err = stderr_of(&a);
        assert!(err.contains("larger than 64 MiB"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
    doctor()
        .args(["compare", "/dev/zero", &fixture("h100-topo.json")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("larger than 64 MiB"));
}
