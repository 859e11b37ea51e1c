//! Builds the LD_PRELOAD shim (workspace member `shim/`, a cdylib, with `shim-proto/`) and hands
//! its path to the main crate, which embeds it with `include_bytes!` (src/program/mod.rs).
//!
//! Cargo cannot depend on a cdylib artifact on stable, so this runs a nested
//! `cargo build -p gpu-doctor-shim --release` with its own target directory under OUT_DIR
//! (the outer build holds the lock on the workspace's target/). If that build fails (no
//! network for a first fetch, an unusual toolchain setup), gpu-doctor still builds: it embeds
//! nothing and asks for `GPU_DOCTOR_SHIM=/path/to/libgpu_doctor_shim.so` at run time.
//! `GPU_DOCTOR_SHIM_SKIP_BUILD=1` skips the nested build on purpose.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/src");
    println!("cargo:rerun-if-changed=shim/Cargo.toml");
    // The shim links shim-proto: a change there must rebuild the embedded shim.
    println!("cargo:rerun-if-changed=shim-proto/src");
    println!("cargo:rerun-if-changed=shim-proto/Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GPU_DOCTOR_SHIM_SKIP_BUILD");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("libgpu_doctor_shim.so");
    let skip = env::var_os("GPU_DOCTOR_SHIM_SKIP_BUILD").is_some_and(|v| v == "1");
    let built = if skip {
        Err("GPU_DOCTOR_SHIM_SKIP_BUILD=1".to_string())
    } else {
        build_shim(&out)
    };
    match built {
        Ok(so) => {
            std::fs::copy(&so, &dest).expect("copy the shim into OUT_DIR");
        }
        Err(e) => {
            println!(
                "cargo:warning=the LD_PRELOAD shim was not built ({e}); program modes will need GPU_DOCTOR_SHIM=/path/to/libgpu_doctor_shim.so"
            );
            std::fs::write(&dest, b"").expect("write an empty placeholder");
        }
    }
    println!("cargo:rustc-env=GPU_DOCTOR_SHIM_SO={}", dest.display());
}

fn build_shim(out: &Path) -> Result<PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let host = env::var("HOST").map_err(|e| e.to_string())?;
    let target_dir = out.join("shim-target");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("-p")
        .arg("gpu-doctor-shim")
        .arg("--manifest-path")
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
            "cargo build -p gpu-doctor-shim failed: {}",
            lines[lines.len().saturating_sub(15)..].join(" | ")
        ));
    }
    let mut so = target_dir;
    if target != host {
        so = so.join(&target);
    }
    let so = so.join("release").join("libgpu_doctor_shim.so");
    if so.is_file() {
        Ok(so)
    } else {
        Err(format!("{} is missing after the build", so.display()))
    }
}
