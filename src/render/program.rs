//! Tables for the program mode reports (`inject oom --`, `inject error`, `trace ctx --`) and
//! the Chrome trace of `trace ctx --`. Reads only `report.data` (docs/shim.md).

use serde_json::{Value, json};

use crate::render::style::Style;

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

pub fn render(out: &mut String, d: &Value, style: Style) {
    if d.is_null() {
        return;
    }
    header(out, d);
    render_cuda(out, d, style);
}

/// The program line: its command, verdict against the expectation, how and when it ended.
pub fn header(out: &mut String, d: &Value) {
    let exit = &d["exit"];
    let how = match (exit["signal_name"].as_str(), exit["code"].as_i64()) {
        (Some(sig), _) => format!("killed by {sig}"),
        (None, Some(c)) => format!("exit status {c}"),
        _ => "-".into(),
    };
    out.push_str(&format!(
        "\nProgram: {}\n  verdict {} (expected: {}, {}) — {how}, {:.0} ms, pid {}\n",
        d["command"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        s(&d["verdict"]),
        s(&d["expect"]),
        if d["expectation_met"].as_bool() == Some(true) {
            "met"
        } else {
            "NOT met"
        },
        d["duration_ms"].as_f64().unwrap_or(0.0),
        s(&exit["pid"]),
    ));
}

fn render_cuda(out: &mut String, d: &Value, style: Style) {
    if let Some(limit) = d["limit_bytes"].as_u64() {
        let peaks: Vec<String> = d["peak"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "cuda{} {}",
                    s(&p["dev"]),
                    crate::units::format_bytes(p["bytes"].as_u64().unwrap_or(0))
                )
            })
            .collect();
        out.push_str(&format!(
            "  limit {} per device; peak held: {}\n",
            crate::units::format_bytes(limit),
            if peaks.is_empty() {
                "-".into()
            } else {
                peaks.join(", ")
            }
        ));
    }
    if let Some(pids) = d["shim"]["recovered"].as_array().filter(|r| !r.is_empty()) {
        let pids: Vec<String> = pids.iter().map(s).collect();
        out.push_str(&format!(
            "  pid {}: ended without exit handlers; figures read from the shim's ledger\n",
            pids.join(", ")
        ));
    }
    let injected = d["injected"].as_array().cloned().unwrap_or_default();
    if !injected.is_empty() {
        let mut t = style.table();
        t.set_header([
            "t (ms)", "pid", "thread", "call", "result", "size", "dev", "ctx",
        ]);
        for e in injected.iter().take(50) {
            t.add_row([
                format!("{:.1}", e["t_ms"].as_f64().unwrap_or(0.0)),
                s(&e["pid"]),
                s(&e["thread"]),
                s(&e["call"]),
                format!("{} ({})", s(&e["name"]), s(&e["code"])),
                e["size"]
                    .as_u64()
                    .map(crate::units::format_bytes)
                    .unwrap_or_else(|| "-".into()),
                s(&e["dev"]),
                s(&e["ctx"]),
            ]);
        }
        let more = if injected.len() > 50 {
            format!(" (first 50 of {})", injected.len())
        } else {
            String::new()
        };
        style.section(out, &format!("Injected faults{more}"), t);
    }
    if let Some(tl) = d["timeline"].as_array().filter(|t| !t.is_empty()) {
        let mut t = style.table();
        t.set_header([
            "t (µs)",
            "pid",
            "thread",
            "op",
            "ctx before",
            "ctx after",
            "result",
        ]);
        for e in tl.iter().take(200) {
            t.add_row([
                s(&e["t_us"]),
                s(&e["pid"]),
                s(&e["thread"]),
                s(&e["op"]),
                s(&e["ctx_before"]),
                s(&e["ctx_after"]),
                s(&e["result"]["name"]),
            ]);
        }
        style.section(out, "Context timeline", t);
        if let Some(threads) = d["threads"].as_array() {
            let mut t = style.table();
            t.set_header([
                "pid",
                "thread",
                "ctx ops",
                "failed calls",
                "contexts",
                "first failure",
            ]);
            for th in threads {
                let first = &th["first_failure"];
                t.add_row([
                    s(&th["pid"]),
                    s(&th["thread"]),
                    s(&th["ops"]),
                    s(&th["failed_calls"]),
                    th["contexts"]
                        .as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default(),
                    if first.is_null() {
                        "-".into()
                    } else {
                        format!("{} → {}", s(&first["op"]), s(&first["result"]["name"]))
                    },
                ]);
            }
            style.section(out, "Threads", t);
        }
    }
}

/// The `trace ctx --` timeline in Chrome trace format: one instant event per context
/// operation or failed call, per (pid, thread).
pub fn chrome_trace(data: &Value) -> Value {
    let events: Vec<Value> = data["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "name": e["op"],
                "cat": e["kind"],
                "ph": "i",
                "s": "t",
                "ts": e["t_us"],
                "pid": e["pid"],
                "tid": e["thread"],
                "args": {
                    "ctx": e["ctx"],
                    "ctx_before": e["ctx_before"],
                    "ctx_after": e["ctx_after"],
                    "result": e["result"]["name"],
                },
            })
        })
        .collect();
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}
