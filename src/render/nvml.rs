//! `inject nvml` and `replay`: the program line, each fault and whether it reached the
//! program, and what a snapshot could not answer. Reads only the report's data (docs/nvml.md).

use serde_json::Value;

use crate::render::style::Style;

pub fn render(out: &mut String, d: &Value, style: Style) {
    if d.is_null() {
        return;
    }
    super::program::header(out, d);
    if let Some(snapshot) = d["snapshot"].as_str() {
        out.push_str(&format!("  NVML replayed from {snapshot}\n"));
    }
    let faults = d["faults"].as_array().cloned().unwrap_or_default();
    if !faults.is_empty() {
        let mut t = style.table();
        t.set_header(["fault", "answers read", "first faulted answer"]);
        for f in &faults {
            let first = f["delivered"]
                .as_array()
                .and_then(|a| a.first())
                .map(|d| {
                    format!(
                        "{} → {} at {:.0} ms",
                        d["call"].as_str().unwrap_or("?"),
                        d["value"].as_str().unwrap_or("?"),
                        d["t_ms"].as_f64().unwrap_or(0.0)
                    )
                })
                .unwrap_or_else(|| "never reached the program".into());
            t.add_row([
                f["spec"].as_str().unwrap_or("?").to_string(),
                f["reads"].to_string(),
                first,
            ]);
        }
        style.section(out, "NVML faults", t);
    }
    let missing = d["missing"].as_array().map(Vec::len).unwrap_or(0);
    let calls: u64 = d["calls"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let missing = if d["snapshot"].is_string() {
        format!("; queries the snapshot could not answer: {missing}")
    } else {
        String::new()
    };
    out.push_str(&format!("  NVML calls counted: {calls}{missing}\n"));
}
