//! Writing reports to files.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::report::Report;

/// The directory a file at `path` goes into ("." for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, synced, then
/// renamed, so a reader (or a CI artifact upload) never sees half a file. A failure is an
/// input error (exit 2) naming `what` and the path; no temp file is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let dir = dir_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gpu-doctor".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::error::input(format!("cannot write {what} to {}: {e}", path.display()))
    })
}

/// Writes the report as pretty JSON to `path` atomically (see [`write_atomic`]).
pub fn write_json_atomic(path: &Path, report: &Report) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(report)?;
    text.push(b'\n');
    write_atomic(path, &text, "the report")
}

/// Reads a saved report; malformed input is an input error (exit 2) naming line and column.
pub fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::input(format!("{}: cannot read: {e}", path.display())))?;
    parse_report(&text).map_err(|e| crate::error::input(format!("{}: {e}", path.display())))
}

/// Reads a saved report into `T`, a partial view of it: the parser fills `T`'s fields and
/// skips the rest without building it (`fleet` reads thousands of reports this way).
/// `version` gives the view's `schema_version`. A file that is not a report of this schema
/// major gets [`read_report`]'s message.
pub fn read_report_as<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: impl Fn(&T) -> u32,
) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::input(format!("{}: cannot read: {e}", path.display())))?;
    let bad = |e: String| crate::error::input(format!("{}: {e}", path.display()));
    match serde_json::from_str::<T>(&text) {
        Ok(v) if version(&v) == crate::report::SCHEMA_VERSION => Ok(v),
        Ok(v) => Err(bad(version_error(u64::from(version(&v))))),
        Err(e) => Err(bad(match parse_report(&text) {
            Err(why) => why,
            Ok(_) => format!("{e}"),
        })),
    }
}

/// Schema versions (majors) this build reads, for error messages.
pub fn supported_versions() -> String {
    format!("{}", crate::report::SCHEMA_VERSION)
}

/// Parses a report. An incompatible schema major gets a clear message rather than a field
/// error; a JSON or field error names line and column.
pub fn parse_report(text: &str) -> Result<Report, String> {
    // The common case in one pass (large reports: compare must stay fast).
    let typed_err = match serde_json::from_str::<Report>(text) {
        Ok(r) if r.schema_version == crate::report::SCHEMA_VERSION => return Ok(r),
        Ok(r) => return Err(version_error(u64::from(r.schema_version))),
        Err(e) => e,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "not valid JSON at line {}, column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "not a gpu-doctor report: the JSON is {}, a report is an object with schema_version, tool, scenario, status…",
            json_kind(&value)
        ));
    };
    let version = match obj.get("schema_version") {
        None => {
            return Err(
                "not a gpu-doctor report: no schema_version field (write one with `gpu-doctor … -o FILE`)".into(),
            );
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            format!(
                "not a gpu-doctor report: schema_version is {v}, expected a whole number (supported: {})",
                supported_versions()
            )
        })?,
    };
    if version != u64::from(crate::report::SCHEMA_VERSION) {
        return Err(version_error(version));
    }
    Err(format!(
        "not a gpu-doctor report (schema_version {version}): {} at line {}, column {}",
        strip_position(&typed_err.to_string()),
        typed_err.line(),
        typed_err.column()
    ))
}

fn version_error(version: u64) -> String {
    format!(
        "report schema_version {version} is not supported: this gpu-doctor {} reads schema_version {} (compare reports written by gpu-doctor versions of the same major)",
        env!("CARGO_PKG_VERSION"),
        supported_versions()
    )
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde_json appends " at line L column C"; we say it our way.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// A private directory (0700) for a shim library copy and its events file, removed on drop.
/// Its path holds no space or colon (LD_PRELOAD and LD_LIBRARY_PATH split on them).
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    pub fn create() -> Result<PrivateDir> {
        let mut base = std::env::temp_dir();
        // LD_PRELOAD splits on spaces and colons: the path must not contain them.
        if base.to_string_lossy().contains([' ', ':']) {
            base = PathBuf::from("/tmp");
        }
        let mut last_err = None;
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!(
                "gpu-doctor-{}-{:08x}{attempt}",
                std::process::id(),
                nanos
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(PrivateDir(dir)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("attempted")).context("cannot create a private temporary directory")
    }
}

impl PrivateDir {
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to a new file `name` in the directory with `mode` (never over an existing
    /// file) and returns its path.
    pub fn write_file(&self, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The library to load into a process: the file `override_var` names when set (it must be a
/// 64-bit ELF shared object for this machine), else the `embedded` copy written into `dir` as
/// `name`. Returns its path and where it came from ("embedded" or the override's path).
pub fn library_copy(
    dir: &PrivateDir,
    name: &str,
    embedded: &[u8],
    override_var: &str,
) -> Result<(PathBuf, String)> {
    if let Some(p) = std::env::var_os(override_var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        check_library(&p)
            .map_err(|e| crate::error::input(format!("{override_var}={}: {e}", p.display())))?;
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        if p.to_string_lossy().contains([' ', ':']) {
            return Err(crate::error::input(format!(
                "{override_var}={}: LD_PRELOAD cannot hold a path with spaces or colons",
                p.display()
            )));
        }
        let source = p.display().to_string();
        return Ok((p, source));
    }
    if embedded.is_empty() {
        return Err(crate::error::unavailable(format!(
            "this gpu-doctor was built without {name}; build the workspace with `cargo build --release` or set {override_var}=/path/to/{name}"
        )));
    }
    Ok((dir.write_file(name, embedded, 0o700)?, "embedded".into()))
}

/// A shared library the dynamic loader of this machine can load: an ELF file of this
/// architecture's class and machine type.
fn check_library(p: &Path) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory, not a shared library".into());
    }
    let mut head = [0u8; 20];
    use std::io::Read;
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if n < 20 || &head[..4] != b"\x7fELF" {
        return Err("is not a shared library (no ELF header)".into());
    }
    // e_ident[EI_CLASS] = 2 (64-bit); e_machine (little-endian) at offset 18.
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let expected: u16 = if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else {
        machine
    };
    if head[4] != 2 || machine != expected {
        return Err(format!(
            "is a shared library for another architecture (ELF machine {machine}, this is {})",
            std::env::consts::ARCH
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_override_must_be_a_library_of_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello, not a library").unwrap();
        assert!(check_library(&text).unwrap_err().contains("no ELF header"));
        assert!(check_library(dir.path()).unwrap_err().contains("directory"));
        assert!(check_library(&dir.path().join("absent")).is_err());
        let mut other = b"\x7fELF\x02\x01\x01".to_vec();
        other.resize(18, 0);
        other.extend(40u16.to_le_bytes()); // ARM32
        let arm = dir.path().join("arm.so");
        std::fs::write(&arm, other).unwrap();
        assert!(
            check_library(&arm)
                .unwrap_err()
                .contains("another architecture")
        );
        let own = std::env::current_exe().unwrap();
        assert_eq!(check_library(&own), Ok(()), "an ELF of this machine");
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let e = parse_report("{\n  \"a\": 1,,\n}").unwrap_err();
        assert!(e.starts_with("not valid JSON at line 2, column 10"), "{e}");
        let e = parse_report("[1, 2]").unwrap_err();
        assert!(e.contains("the JSON is an array"), "{e}");
        let e = parse_report("{\"x\": 1}").unwrap_err();
        assert!(e.contains("no schema_version"), "{e}");
        let e = parse_report("{\"schema_version\": 2}").unwrap_err();
        assert!(
            e.contains("schema_version 2 is not supported") && e.contains("reads schema_version 1"),
            "{e}"
        );
        let e = parse_report("{\"schema_version\": \"1\"}").unwrap_err();
        assert!(e.contains("expected a whole number"), "{e}");
        let mut r = Report::begin("x", serde_json::json!({}));
        r.schema_version = 1;
        let mut text = serde_json::to_string_pretty(&r).unwrap();
        text = text.replace("\"status\": \"pass\"", "\"status\": \"great\"");
        let e = parse_report(&text).unwrap_err();
        assert!(
            e.starts_with("not a gpu-doctor report (schema_version 1): unknown variant `great`"),
            "{e}"
        );
        assert!(e.contains(", at line ") || e.contains(" at line "), "{e}");
        assert_eq!(
            parse_report(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );
    }
}
