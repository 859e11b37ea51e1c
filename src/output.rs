//! Writing reports to files.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::report::Report;

/// Writes the report as pretty JSON to `path` atomically: a temp file in the same directory,
/// then rename, so a reader (or a CI artifact upload) never sees half a report.
pub fn write_json_atomic(path: &Path, report: &Report) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, report)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::error::input(format!("cannot write report to {}: {e:#}", path.display()))
    })
}

/// Reads a saved report; malformed input is an input error (exit 2) naming line and column.
pub fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::input(format!("{}: cannot read: {e}", path.display())))?;
    parse_report(&text).map_err(|e| crate::error::input(format!("{}: {e}", path.display())))
}

/// Parses a report, checking its schema major version first so an incompatible report gets a
/// clear message rather than a field error.
pub fn parse_report(text: &str) -> Result<Report, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON: {e} (line {}, column {})", e.line(), e.column()))?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| "not a gpu-doctor report: no schema_version field".to_string())?;
    if version != u64::from(crate::report::SCHEMA_VERSION) {
        return Err(format!(
            "report schema_version {version} is not supported: this gpu-doctor reads version {}",
            crate::report::SCHEMA_VERSION
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("not a gpu-doctor report: {e}"))
}
