//! Builds the two libraries gpu-doctor embeds and hands their paths to the main crate, which
//! includes them with `include_bytes!`:
//! - `libgpu_doctor_shim.so` (workspace member `shim/`): the CUDA driver interposer of program
//!   mode (src/program/);
//! - `libgpu_doctor_nvml.so` (`nvml-shim/`): the NVML interposer and replay library
//!   (`--replay`, `--fault`, `inject nvml`, `replay`, `snapshot`; src/probe/nvml_shim.rs).
//!
//! Cargo cannot depend on a cdylib artifact on stable, so this runs one nested
//! `cargo build --release -p gpu-doctor-shim -p gpu-doctor-nvml-shim` with its own target
//! directory under OUT_DIR (the outer build holds the lock on the workspace's target/). If that
//! build fails (no network for a first fetch, an unusual toolchain setup), gpu-doctor still
//! builds: it embeds nothing and asks for `GPU_DOCTOR_SHIM` / `GPU_DOCTOR_NVML_SHIM` at run
//! time. `GPU_DOCTOR_SHIM_SKIP_BUILD=1` skips the nested build on purpose.
//!
//! It also records the commit gpu-doctor was built from (`--version`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, library file, environment variable the main crate reads its path from)
const LIBRARIES: [(&str, &str, &str); 2] = [
    (
        "gpu-doctor-shim",
        "libgpu_doctor_shim.so",
        "GPU_DOCTOR_SHIM_SO",
    ),
    (
        "gpu-doctor-nvml-shim",
        "libgpu_doctor_nvml.so",
        "GPU_DOCTOR_NVML_SO",
    ),
];

fn main() {
    for dir in ["shim", "nvml-shim", "shim-proto", "shim-rt"] {
        println!("cargo:rerun-if-changed={dir}/src");
        println!("cargo:rerun-if-changed={dir}/Cargo.toml");
    }
    println!("cargo:rerun-if-changed=build.rs");
    watch_commits();
    println!("cargo:rerun-if-env-changed=GPU_DOCTOR_SHIM_SKIP_BUILD");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let skip = env::var_os("GPU_DOCTOR_SHIM_SKIP_BUILD").is_some_and(|v| v == "1");
    let built = if skip {
        Err("GPU_DOCTOR_SHIM_SKIP_BUILD=1".to_string())
    } else {
        build_shims(&out)
    };
    for (package, file, var) in LIBRARIES {
        let dest = out.join(file);
        match &built {
            Ok(dir) => {
                std::fs::copy(dir.join(file), &dest).expect("copy the library into OUT_DIR");
            }
            Err(e) => {
                println!(
                    "cargo:warning={package} was not built ({e}); the commands that need it will ask for its path at run time"
                );
                std::fs::write(&dest, b"").expect("write an empty placeholder");
            }
        }
        println!("cargo:rustc-env={var}={}", dest.display());
    }
    println!("cargo:rustc-env=GPU_DOCTOR_GIT_COMMIT={}", commit());
}

/// A git command's output, trimmed; None outside git or when it fails.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Runs this script again when the commit changes: HEAD (another branch) and its reflog (a
/// commit, a reset on the branch), as git names them — a worktree's `.git` is a file, not a
/// directory. Only files that exist: cargo reruns the script on every build for a missing one.
fn watch_commits() {
    for file in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file])
            && Path::new(&path).is_file()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// The short commit hash, with `-dirty` when the tree had changes; "unknown" outside git.
fn commit() -> String {
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash}-dirty") } else { hash }
        }
        _ => "unknown".into(),
    }
}

/// Builds both libraries; returns the directory that holds them.
fn build_shims(out: &Path) -> Result<PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let host = env::var("HOST").map_err(|e| e.to_string())?;
    let target_dir = out.join("shim-target");
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--release");
    for (package, _, _) in LIBRARIES {
        cmd.arg("-p").arg(package);
    }
    cmd.arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Small and self-contained: no symbols, no unwinding (a panic in a hook aborts
        // rather than unwinding into C), one codegen unit with LTO for the hot path.
        .args(["--config", "profile.release.strip=true"])
        .args(["--config", "profile.release.panic=\"abort\""])
        .args(["--config", "profile.release.lto=true"])
        .args(["--config", "profile.release.codegen-units=1"]);
    if target != host {
        cmd.arg("--target").arg(&target);
    }
    // The outer build's settings that would redirect or wrap the nested one.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = err.lines().collect();
        return Err(format!(
            "the nested cargo build failed: {}",
            lines[lines.len().saturating_sub(15)..].join(" | ")
        ));
    }
    let mut dir = target_dir;
    if target != host {
        dir = dir.join(&target);
    }
    let dir = dir.join("release");
    for (_, file, _) in LIBRARIES {
        if !dir.join(file).is_file() {
            return Err(format!(
                "{} is missing after the build",
                dir.join(file).display()
            ));
        }
    }
    Ok(dir)
}
