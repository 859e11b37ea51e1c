//! Writing reports and other outputs to files, and reading reports back, bounded.
//!
//! An output path is the user's: what is there is never destroyed. A regular file (or a link
//! to one) is replaced atomically and keeps its mode, owner and links; a character device or
//! a pipe (`/dev/null`, `/dev/stdout`, a FIFO) is written through; anything else (a directory,
//! a socket, a block device, a dangling link) is refused as an input error (exit 2).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::input;
use crate::report::Report;

/// The largest report (or suite file) gpu-doctor reads: far above any real report (a suite
/// report of every scenario is under 1 MiB), low enough that an endless input (a pipe, a
/// device) fails fast instead of filling memory. docs/report.md says it.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// The directory a file at `path` goes into ("." for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Where and how an output goes, decided from what is at the path now.
#[derive(Debug)]
enum Target {
    /// Nothing there yet: a new file, written atomically.
    New(PathBuf),
    /// A regular file (the link's target, for a link): replaced atomically, keeping its
    /// mode, owner and group; rewritten in place when it has several names (hard links).
    File(PathBuf, std::fs::Metadata),
    /// A character device or a pipe: written through, never replaced.
    Through,
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Decides how `path` is written, or why it cannot be (an input error naming `what`).
fn target(path: &Path, what: &str) -> Result<Target> {
    let refuse = |why: String| input(format!("cannot write {what} to {}: {why}", path.display()));
    match std::fs::metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            if t.is_file() {
                // Through links, to the file itself, so a link stays a link.
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                Ok(Target::File(real, m))
            } else if t.is_char_device() || t.is_fifo() {
                Ok(Target::Through)
            } else {
                Err(refuse(format!(
                    "it is {}; give a regular file, a pipe or a character device",
                    kind_of(&t)
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(refuse(
                    "it is a link to nothing; remove the link or give another path".into(),
                ));
            }
            let dir = dir_of(path);
            if !dir.is_dir() {
                return Err(refuse(format!(
                    "directory {} does not exist",
                    dir.display()
                )));
            }
            Ok(Target::New(path.to_path_buf()))
        }
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// Checks, before any work, that `path` can take an output (see the module doc): the same
/// rules the write applies, so a bad `-o` is exit 2 before a GPU is touched.
pub fn check_output(path: &Path, what: &str) -> Result<()> {
    target(path, what).map(|_| ())
}

/// Writes `bytes` to `path` (see the module doc). A regular file is written atomically: a
/// temp file in the same directory, synced, then renamed, so a reader (or a CI artifact
/// upload) never sees half a file. A failure is an input error (exit 2) naming `what` and the
/// path; no temp file is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let failed =
        |e: std::io::Error| input(format!("cannot write {what} to {}: {e}", path.display()));
    match target(path, what)? {
        Target::Through => {
            let mut f = OpenOptions::new().write(true).open(path).map_err(failed)?;
            f.write_all(bytes).and_then(|_| f.flush()).map_err(failed)
        }
        Target::New(p) => replace(&p, bytes, None).map_err(failed),
        Target::File(p, m) if m.nlink() > 1 => in_place(&p, bytes).map_err(failed),
        Target::File(p, m) => match replace(&p, bytes, Some(&m)) {
            Ok(()) => Ok(()),
            // The directory takes no new file, the file is a mount point, or its owner cannot
            // be kept: the file itself is still writable.
            Err(_) => in_place(&p, bytes).map_err(failed),
        },
    }
}

/// Temp file + rename; the temp file gets `keep`'s mode, owner and group first.
fn replace(path: &Path, bytes: &[u8], keep: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gpu-doctor".into());
    let tmp = dir_of(path).join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)?;
        if let Some(m) = keep {
            f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
            if (m.uid(), m.gid()) != (f.metadata()?.uid(), f.metadata()?.gid()) {
                std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
            }
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Truncates and rewrites the file itself (same inode, mode, owner, links).
fn in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What makes a file itself: its device and inode (None when nothing is there).
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How an output is told apart from another: the file that is there, or the path it will have.
#[derive(PartialEq, Eq, Hash)]
enum OutputKey {
    File(u64, u64),
    Path(PathBuf),
}

fn output_key(path: &Path) -> OutputKey {
    match identity(path) {
        Some((dev, ino)) => OutputKey::File(dev, ino),
        None => {
            let dir = std::fs::canonicalize(dir_of(path)).unwrap_or_else(|_| dir_of(path).into());
            OutputKey::Path(dir.join(path.file_name().unwrap_or_default()))
        }
    }
}

/// Refuses (exit 2) an output that would overwrite an input, or two outputs on one file:
/// `inputs` are files read, `outputs` are (flag, path) pairs written. Devices and pipes are
/// written through (nothing is destroyed) and pass. Linear in the number of paths.
pub fn check_distinct(inputs: &[&Path], outputs: &[(&str, &Path)]) -> Result<()> {
    let read: std::collections::HashMap<(u64, u64), &Path> = inputs
        .iter()
        .filter_map(|p| identity(p).map(|id| (id, *p)))
        .collect();
    let mut written: std::collections::HashMap<OutputKey, &str> = Default::default();
    for (flag, out) in outputs {
        let through = std::fs::metadata(out)
            .map(|m| m.file_type().is_char_device() || m.file_type().is_fifo())
            .unwrap_or(false);
        if through {
            continue;
        }
        if let Some(inp) = identity(out).and_then(|id| read.get(&id)) {
            return Err(input(format!(
                "{flag} {}: that file is an input ({}); write the output to another file",
                out.display(),
                inp.display()
            )));
        }
        if let Some(other) = written.insert(output_key(out), flag) {
            return Err(input(format!(
                "{flag} {}: {other} writes that file too; give each output its own",
                out.display()
            )));
        }
    }
    Ok(())
}

/// The `*.json` files directly in `dir`, sorted by name (compare's baselines, fleet's
/// reports); an unreadable folder is an input error.
pub fn json_files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| input(format!("{}: cannot read the folder: {e}", dir.display())))?;
    let mut found: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    found.sort();
    Ok(found)
}

/// Reads at most [`MAX_INPUT_BYTES`] of `path`: a bigger (or endless) input is an input error
/// (exit 2) naming `what`.
pub fn read_bounded(path: &Path, what: &str) -> Result<Vec<u8>> {
    let fail = |why: String| input(format!("{}: cannot read {what}: {why}", path.display()));
    let f = File::open(path).map_err(|e| fail(e.to_string()))?;
    if let Ok(m) = f.metadata()
        && m.is_dir()
    {
        return Err(fail("it is a directory".into()));
    }
    let mut bytes = Vec::new();
    f.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(fail(format!(
            "it is larger than {} MiB, the most {what} can be",
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Writes the report as pretty JSON to `path` atomically (see [`write_atomic`]).
pub fn write_json_atomic(path: &Path, report: &Report) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(report)?;
    text.push(b'\n');
    write_atomic(path, &text, "the report")
}

/// Reads a saved report; malformed input is an input error (exit 2) naming line and column.
pub fn read_report(path: &Path) -> Result<Report> {
    let bytes = read_bounded(path, "a report")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        input(format!(
            "{}: cannot read a report: it is not UTF-8 text ({e})",
            path.display()
        ))
    })?;
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
    let bytes = read_bounded(path, "a report")?;
    let bad = |e: String| crate::error::input(format!("{}: {e}", path.display()));
    let text = String::from_utf8(bytes)
        .map_err(|e| bad(format!("cannot read a report: it is not UTF-8 text ({e})")))?;
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
