//! A [`Comparison`] as terminal tables or as Markdown (CI step summary, pull-request comment).
//! Only what changed is listed; `--json` has everything.

use comfy_table::{Cell, Color};

use crate::analyze::compare::{
    Comparison, FindingDiff, MetricDiff, MetricVerdict, ScenarioDiff, StatusChange,
};
use crate::render::style::{Style, format_value};
use crate::report::Status;

/// Rows of one scenario's metrics / findings, flattened with the scenario they belong to.
fn changed_metrics(c: &Comparison) -> Vec<(&ScenarioDiff, &MetricDiff)> {
    let mut v: Vec<(&ScenarioDiff, &MetricDiff)> = c
        .scenarios
        .iter()
        .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
        .filter(|(_, m)| m.verdict != MetricVerdict::Within)
        .collect();
    // Regressions first, then improvements, added, removed; stable within each.
    v.sort_by_key(|(_, m)| verdict_rank(m.verdict));
    v
}

fn verdict_rank(v: MetricVerdict) -> u8 {
    match v {
        MetricVerdict::Regressed => 0,
        MetricVerdict::Improved => 1,
        MetricVerdict::Added => 2,
        MetricVerdict::Removed => 3,
        MetricVerdict::Within => 4,
    }
}

fn findings(c: &Comparison) -> Vec<(&ScenarioDiff, &FindingDiff, bool)> {
    let mut v: Vec<(&ScenarioDiff, &FindingDiff, bool)> = c
        .scenarios
        .iter()
        .flat_map(|s| {
            s.new_findings
                .iter()
                .map(move |f| (s, f, true))
                .chain(s.resolved_findings.iter().map(move |f| (s, f, false)))
        })
        .collect();
    v.sort_by_key(|(_, f, new)| (!f.regression, !new));
    v
}

pub fn status_str(s: Option<Status>) -> &'static str {
    s.map(|s| s.as_str()).unwrap_or("-")
}

pub fn change_str(s: StatusChange) -> &'static str {
    match s {
        StatusChange::Same => "same",
        StatusChange::Regressed => "REGRESSED",
        StatusChange::Improved => "improved",
        StatusChange::Added => "added",
        StatusChange::Removed => "removed",
    }
}

pub fn verdict_str(v: MetricVerdict) -> &'static str {
    match v {
        MetricVerdict::Within => "within",
        MetricVerdict::Regressed => "REGRESSED",
        MetricVerdict::Improved => "improved",
        MetricVerdict::Added => "added",
        MetricVerdict::Removed => "removed",
    }
}

pub fn pct(v: Option<f64>) -> String {
    match v {
        Some(p) => format!("{p:+.1}%"),
        None => "n/a".into(),
    }
}

fn value(v: Option<f64>) -> String {
    v.map(format_value).unwrap_or_else(|| "-".into())
}

fn metric_summary(s: &ScenarioDiff) -> String {
    let count = |v: MetricVerdict| s.metrics.iter().filter(|m| m.verdict == v).count();
    let mut parts = Vec::new();
    for v in [
        MetricVerdict::Regressed,
        MetricVerdict::Improved,
        MetricVerdict::Added,
        MetricVerdict::Removed,
        MetricVerdict::Within,
    ] {
        let n = count(v);
        if n > 0 {
            parts.push(format!("{n} {}", verdict_str(v).to_lowercase()));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn status_note(s: &ScenarioDiff) -> String {
    let mut note = format!("{} → {}", status_str(s.baseline), status_str(s.current));
    if let Some(r) = &s.skipped_reason {
        let first = r.lines().next().unwrap_or("");
        let short: String = first.chars().take(60).collect();
        let ell = if short.len() < first.len() { "…" } else { "" };
        note.push_str(&format!(" ({short}{ell})"));
    }
    note
}

fn headline(c: &Comparison) -> String {
    if c.regression {
        format!(
            "REGRESSION: {} regressed item{}",
            c.regressions,
            if c.regressions == 1 { "" } else { "s" }
        )
    } else {
        "no regression".into()
    }
}

fn more(n: usize, limit: usize) -> Option<String> {
    (limit > 0 && n > limit).then(|| {
        format!(
            "… and {} more (--limit 0 lists all, --json has everything)",
            n - limit
        )
    })
}

fn take<T>(v: Vec<T>, limit: usize) -> (Vec<T>, usize) {
    let n = v.len();
    let v = if limit > 0 {
        v.into_iter().take(limit).collect()
    } else {
        v
    };
    (v, n)
}

/// Terminal tables.
pub fn table(c: &Comparison, style: Style, limit: usize) -> String {
    let mut out = String::new();
    let red = |s: &str| {
        let cell = Cell::new(s);
        if style.color {
            cell.fg(Color::Red)
        } else {
            cell
        }
    };
    let green = |s: &str| {
        let cell = Cell::new(s);
        if style.color {
            cell.fg(Color::Green)
        } else {
            cell
        }
    };
    out.push_str(&format!(
        "gpu-doctor compare — {} (tolerance {}%)\n",
        headline(c),
        format_value(c.tolerance_pct)
    ));
    for (label, s) in [("baseline", &c.baseline), ("current ", &c.current)] {
        out.push_str(&format!(
            "{label}  {} {} · {} · {} · driver {} · gpu-doctor {}\n",
            s.scenario,
            s.status.as_str().to_uppercase(),
            s.started_at,
            s.hostname,
            s.driver_version.as_deref().unwrap_or("-"),
            s.tool_version
        ));
    }
    if !c.changes.is_empty() {
        let mut t = style.table();
        t.set_header(["changed (info)", "what"]);
        for ch in &c.changes {
            t.add_row([ch.what.clone(), ch.note.clone()]);
        }
        out.push_str(&format!("\nChanges\n{t}\n"));
    }
    let mut t = style.table();
    t.set_header(["scenario", "status", "change", "new", "resolved", "metrics"]);
    for s in &c.scenarios {
        let change = change_str(s.status);
        t.add_row(vec![
            Cell::new(&s.key),
            Cell::new(status_note(s)),
            match s.status {
                StatusChange::Regressed => red(change),
                StatusChange::Improved => green(change),
                StatusChange::Added if s.regression => red(change),
                _ => Cell::new(change),
            },
            Cell::new(s.new_findings.len()),
            Cell::new(s.resolved_findings.len()),
            Cell::new(metric_summary(s)),
        ]);
    }
    out.push_str(&format!("\nScenarios\n{t}\n"));

    let (rows, n) = take(findings(c), limit);
    if n > 0 {
        let mut t = style.table();
        t.set_header(["scenario", "", "severity", "code", "GPU", "finding"]);
        for (s, f, new) in rows {
            let tag = match (new, f.regression) {
                (true, true) => red("NEW"),
                (true, false) => Cell::new("new"),
                (false, _) => green("resolved"),
            };
            t.add_row(vec![
                Cell::new(&s.key),
                tag,
                style.severity_cell(f.severity),
                Cell::new(&f.code),
                Cell::new(gpu_label(f)),
                Cell::new(&f.message),
            ]);
        }
        out.push_str(&format!("\nFindings\n{t}\n"));
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("{m}\n"));
        }
    }

    let (rows, n) = take(changed_metrics(c), limit);
    if n > 0 {
        let mut t = style.table();
        t.set_header([
            "scenario",
            "metric",
            "baseline",
            "current",
            "unit",
            "change",
            "tolerance",
            "verdict",
        ]);
        for (s, m) in rows {
            let v = verdict_str(m.verdict);
            t.add_row(vec![
                Cell::new(&s.key),
                Cell::new(&m.name),
                Cell::new(value(m.baseline)),
                Cell::new(value(m.current)),
                Cell::new(&m.unit),
                Cell::new(pct(m.change_pct)),
                Cell::new(format!("{}%", format_value(m.tolerance_pct))),
                match m.verdict {
                    MetricVerdict::Regressed => red(v),
                    MetricVerdict::Improved => green(v),
                    _ => Cell::new(v),
                },
            ]);
        }
        out.push_str(&format!("\nMetrics beyond tolerance\n{t}\n"));
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("{m}\n"));
        }
    }
    out.push_str(&format!("\n{}\n", headline(c)));
    out
}

fn gpu_label(f: &FindingDiff) -> String {
    match (f.gpu, &f.device) {
        (Some(i), Some(u)) if u.starts_with("GPU-") || u.starts_with("MIG-") => {
            format!("{i} ({})", short_uuid(u))
        }
        (Some(i), _) => i.to_string(),
        _ => String::new(),
    }
}

fn short_uuid(u: &str) -> String {
    let cut: String = u.chars().take(12).collect();
    if cut.len() < u.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Escapes text for a Markdown table cell: pipes, line breaks and HTML-ish characters.
pub fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push_str("\\`"),
            '*' | '_' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// GitHub-flavoured Markdown: a headline, then only what changed.
pub fn markdown(c: &Comparison, limit: usize) -> String {
    let mut out = String::new();
    let icon = if c.regression { "❌" } else { "✅" };
    out.push_str(&format!(
        "### {icon} gpu-doctor compare: {}\n\n",
        headline(c)
    ));
    out.push_str(&format!(
        "Baseline `{}` **{}** ({}, {}, driver {}) → current `{}` **{}** ({}, {}, driver {}); tolerance {}%.\n\n",
        md_code(&c.baseline.scenario),
        c.baseline.status.as_str(),
        md_cell(&c.baseline.started_at),
        md_cell(&c.baseline.hostname),
        md_cell(c.baseline.driver_version.as_deref().unwrap_or("-")),
        md_code(&c.current.scenario),
        c.current.status.as_str(),
        md_cell(&c.current.started_at),
        md_cell(&c.current.hostname),
        md_cell(c.current.driver_version.as_deref().unwrap_or("-")),
        format_value(c.tolerance_pct),
    ));
    out.push_str("| scenario | status | change | new findings | resolved | metrics |\n");
    out.push_str("|---|---|---|---:|---:|---|\n");
    for s in &c.scenarios {
        let change = change_str(s.status);
        let change =
            if s.regression && matches!(s.status, StatusChange::Regressed | StatusChange::Added) {
                format!("**{change}**")
            } else {
                change.to_string()
            };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            md_cell(&s.key),
            md_cell(&status_note(s)),
            change,
            s.new_findings.len(),
            s.resolved_findings.len(),
            md_cell(&metric_summary(s)),
        ));
    }
    let (rows, n) = take(findings(c), limit);
    if n > 0 {
        out.push_str("\n#### Findings\n\n| scenario | | severity | code | GPU | finding |\n|---|---|---|---|---|---|\n");
        for (s, f, new) in rows {
            let tag = match (new, f.regression) {
                (true, true) => "**new**",
                (true, false) => "new",
                (false, _) => "resolved",
            };
            out.push_str(&format!(
                "| {} | {tag} | {} | `{}` | {} | {} |\n",
                md_cell(&s.key),
                f.severity.as_str(),
                md_code(&f.code),
                md_cell(&gpu_label(f)),
                md_cell(&f.message),
            ));
        }
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("\n{}\n", md_cell(&m)));
        }
    }
    let (rows, n) = take(changed_metrics(c), limit);
    if n > 0 {
        out.push_str("\n#### Metrics beyond tolerance\n\n| scenario | metric | baseline | current | change | tolerance | verdict |\n|---|---|---:|---:|---:|---:|---|\n");
        for (s, m) in rows {
            let v = verdict_str(m.verdict);
            out.push_str(&format!(
                "| {} | `{}` | {} {} | {} {} | {} | {}% | {} |\n",
                md_cell(&s.key),
                md_code(&m.name),
                value(m.baseline),
                md_cell(&m.unit),
                value(m.current),
                md_cell(&m.unit),
                pct(m.change_pct),
                format_value(m.tolerance_pct),
                if m.verdict == MetricVerdict::Regressed {
                    format!("**{v}**")
                } else {
                    v.to_string()
                },
            ));
        }
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("\n{}\n", md_cell(&m)));
        }
    }
    if !c.changes.is_empty() {
        out.push_str("\n#### Changes (info)\n\n");
        for ch in &c.changes {
            out.push_str(&format!("- {}\n", md_cell(&ch.note)));
        }
    }
    out
}

/// Text inside backticks: a backtick or a line break would end it.
fn md_code(s: &str) -> String {
    s.chars()
        .map(|c| if c == '`' || c.is_control() { '\'' } else { c })
        .collect::<String>()
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::compare::{Options, compare};
    use crate::report::{Better, Finding, Metric, Report, Severity};

    fn pair() -> (Report, Report) {
        let mut a = Report::begin("bandwidth", serde_json::json!({}));
        a.metrics
            .insert("h2d|x".into(), Metric::new(50.0, "GB/s", Better::Higher));
        let mut b = a.clone();
        b.metrics.get_mut("h2d|x").unwrap().value = 40.0;
        b.findings.push(Finding::new(
            Severity::Fail,
            "THRESHOLD",
            "a | b\nnext <tag>",
        ));
        b.status = Status::Fail;
        (a, b)
    }

    #[test]
    fn markdown_lists_regressions_with_escaped_cells() {
        let (a, b) = pair();
        let md = markdown(&compare(&a, &b, &Options::default()), 50);
        assert!(
            md.starts_with("### ❌ gpu-doctor compare: REGRESSION: 3 regressed items"),
            "{md}"
        );
        assert!(
            md.contains("| bandwidth | pass → fail | **REGRESSED** | 1 | 0 | 1 regressed |"),
            "{md}"
        );
        assert!(md.contains("a \\| b<br>next &lt;tag&gt;"), "{md}");
        assert!(
            md.contains("`h2d\\|x` | 50 GB/s | 40 GB/s | -20.0% | 5% | **REGRESSED** |"),
            "{md}"
        );
        // every table row has the same number of unescaped pipes as its header
        for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cols: Vec<usize> = block
                .lines()
                .map(|l| l.replace("\\|", "").matches('|').count())
                .collect();
            assert!(cols.windows(2).all(|w| w[0] == w[1]), "{block}");
        }
    }

    #[test]
    fn table_shows_only_changes_and_respects_the_limit() {
        let (a, mut b) = pair();
        for i in 0..30 {
            b.findings
                .push(Finding::new(Severity::Warn, &format!("CODE_{i}"), "m"));
        }
        let t = table(
            &compare(&a, &b, &Options::default()),
            Style::terminal(false),
            10,
        );
        assert!(t.contains("… and 21 more"), "{t}");
        assert!(t.contains("REGRESSION: 33 regressed items"), "{t}");
        let same = table(
            &compare(&a, &a, &Options::default()),
            Style::terminal(false),
            10,
        );
        assert!(!same.contains("Metrics beyond tolerance"));
        assert!(same.trim_end().ends_with("no regression"));
    }
}
