//! Writing reports to files.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

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

#[cfg(test)]
mod tests {
    use super::*;

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
