//! A [`Comparison`] as terminal tables or as Markdown (CI step summary, pull-request comment).
//! Only what changed is listed; `--json` has everything.

use comfy_table::{Cell, Color};

use crate::analyze::compare::{
    Comparison, FindingDiff, MetricDiff, MetricVerdict, SUITE_ROW, ScenarioDiff, StatusChange,
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
        MetricVerdict::Worse => 1,
        MetricVerdict::Improved => 2,
        MetricVerdict::Added => 3,
        MetricVerdict::Removed => 4,
        MetricVerdict::Within => 5,
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
        StatusChange::Removed => "MISSING",
    }
}

/// A row's status change in words; a suite's worse status that its scenarios explain says so.
pub fn row_change_str(s: &ScenarioDiff) -> &'static str {
    if s.status == StatusChange::Regressed && !s.status_regression {
        "worse (see its scenarios)"
    } else {
        change_str(s.status)
    }
}

pub fn verdict_str(v: MetricVerdict) -> &'static str {
    match v {
        MetricVerdict::Within => "within",
        MetricVerdict::Regressed => "REGRESSED",
        MetricVerdict::Worse => "worse (info)",
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
        MetricVerdict::Worse,
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

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "no regression", or what regressed, named: each regressed scenario with its regressions (a
/// worse status, new warn/fail findings by code, metrics beyond their band), so the count is
/// of scenarios and each fault reads once.
pub fn headline(c: &Comparison) -> String {
    if !c.regression {
        return "no regression".into();
    }
    let rows = || c.scenarios.iter().filter(|s| s.key != SUITE_ROW);
    let regressed: Vec<String> = rows()
        .filter(|s| s.regression)
        .map(|s| format!("{} ({})", s.key, what_regressed(s)))
        .collect();
    let mut what = Vec::new();
    if !regressed.is_empty() {
        what.push(format!(
            "{} of {}: {}",
            regressed.len(),
            plural(rows().count(), "scenario", "scenarios"),
            regressed.join("; ")
        ));
    }
    if let Some(suite) = c
        .scenarios
        .iter()
        .find(|s| s.key == SUITE_ROW && s.regression)
    {
        what.push(format!(
            "the suite's own status or findings ({})",
            what_regressed(suite)
        ));
    }
    format!("REGRESSION in {}", what.join("; "))
}

/// "status pass → fail, new OOM_STICKY, h2d_pinned_gbps -20.0%".
fn what_regressed(s: &ScenarioDiff) -> String {
    let mut parts = Vec::new();
    if s.status_regression {
        parts.push(match s.status {
            StatusChange::Removed => "missing".to_string(),
            _ => format!(
                "status {} → {}",
                status_str(s.baseline),
                status_str(s.current)
            ),
        });
    }
    let mut codes: Vec<(&str, usize)> = Vec::new();
    for f in s.new_findings.iter().filter(|f| f.regression) {
        match codes.iter_mut().find(|(c, _)| *c == f.code) {
            Some((_, n)) => *n += 1,
            None => codes.push((&f.code, 1)),
        }
    }
    match codes.len() {
        0 => {}
        1..=3 => parts.extend(codes.iter().map(|(c, n)| match n {
            1 => format!("new {c}"),
            n => format!("new {c} ×{n}"),
        })),
        _ => parts.push(format!(
            "{} new warn/fail findings",
            codes.iter().map(|(_, n)| n).sum::<usize>()
        )),
    }
    let metrics: Vec<&MetricDiff> = s
        .metrics
        .iter()
        .filter(|m| m.verdict == MetricVerdict::Regressed)
        .collect();
    match metrics.len() {
        0 => {}
        1..=3 => parts.extend(
            metrics
                .iter()
                .map(|m| format!("{} {}", m.name, pct(m.change_pct))),
        ),
        n => parts.push(format!("{n} metrics beyond their band")),
    }
    parts.join(", ")
}

/// How the bands were set, for the header.
fn tolerance_note(c: &Comparison) -> String {
    let rule = match c.tolerance_pct {
        Some(t) => format!("tolerance {}% for every metric", format_value(t)),
        None => "tolerance per metric from its kind and spread".into(),
    };
    if c.baseline_reports > 1 {
        format!("{rule}, {} baselines", c.baseline_reports)
    } else {
        rule
    }
}

/// "5% (floor)": a metric's band and what set it.
fn band_str(m: &MetricDiff) -> String {
    format!(
        "{}% ({})",
        format_value(m.tolerance_pct),
        m.tolerance_from.as_str()
    )
}

/// The kind, with "gate" when a move beyond the band is a regression.
fn kind_str(m: &MetricDiff) -> String {
    let inferred = match m.kind_source {
        crate::analyze::metric_kind::KindSource::Recorded => "",
        _ => "*",
    };
    let gate = if m.gate { ", gate" } else { "" };
    format!("{}{inferred}{gate}", m.kind.as_str())
}

/// The baseline value, with `unit` after it, and the range of several baseline runs.
fn baseline_str(m: &MetricDiff, unit: &str) -> String {
    let v = format!("{}{unit}", value(m.baseline));
    match (m.baseline_min, m.baseline_max) {
        (Some(lo), Some(hi)) => format!(
            "{v} ({}–{}, {} runs)",
            format_value(lo),
            format_value(hi),
            m.baseline_runs
        ),
        _ => v,
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

/// What the metric table's band and kind columns mean (docs/compare.md).
const LEGEND: &str = "band: how far the metric may move in its bad direction, and what set it (floor of its kind, spread of its samples, history of the baselines, --tol, --tolerance); kind: * inferred for a report that records none; gate: a move beyond the band is a regression, otherwise information";

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
    style.para(
        &mut out,
        &format!(
            "gpu-doctor compare — {} · {}",
            headline(c),
            tolerance_note(c)
        ),
        2,
    );
    for (label, s) in [("baseline", &c.baseline), ("current ", &c.current)] {
        style.para(
            &mut out,
            &format!(
                "{label}  {} {} · {} · {} · driver {} · gpu-doctor {}",
                s.scenario,
                s.status.as_str().to_uppercase(),
                s.started_at,
                s.hostname,
                s.driver_version.as_deref().unwrap_or("-"),
                s.tool_version
            ),
            10,
        );
    }
    if !c.changes.is_empty() {
        let mut t = style.table();
        t.set_header(["changed (info)", "what"]);
        for ch in &c.changes {
            t.add_row([ch.what.clone(), ch.note.clone()]);
        }
        style.section(&mut out, "Changes", t);
    }
    let mut t = style.table();
    t.set_header([
        "scenario",
        "status",
        "change",
        "new findings",
        "resolved",
        "metrics",
    ]);
    for s in &c.scenarios {
        let change = row_change_str(s);
        t.add_row(vec![
            Cell::new(&s.key),
            Cell::new(status_note(s)),
            match s.status {
                _ if s.status_regression => red(change),
                StatusChange::Improved => green(change),
                _ => Cell::new(change),
            },
            Cell::new(s.new_findings.len()),
            Cell::new(s.resolved_findings.len()),
            Cell::new(metric_summary(s)),
        ]);
    }
    style.section(&mut out, "Scenarios", t);

    let (rows, n) = take(findings(c), limit);
    if n > 0 {
        let mut t = style.table();
        t.set_header(["change", "code\nwhere", "finding"]);
        for (s, f, new) in rows {
            let tag = match (new, f.regression) {
                (true, true) => red(&format!("NEW\n{}", f.severity.as_str())),
                (true, false) => Cell::new(format!("new\n{}", f.severity.as_str())),
                (false, _) => green(&format!("resolved\n{}", f.severity.as_str())),
            };
            let mut place = s.key.clone();
            if let Some(g) = f.gpu {
                place.push_str(&format!(" · GPU\u{a0}{g}"));
            }
            t.add_row(vec![
                tag,
                Cell::new(format!("{}\n{place}", f.code)),
                Cell::new(&f.message),
            ]);
        }
        style.section(&mut out, "Findings", t);
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("{m}\n"));
        }
    }

    let (rows, n) = take(changed_metrics(c), limit);
    if n > 0 {
        let mut t = style.table();
        t.set_header([
            "scenario: metric",
            "baseline → current",
            "change",
            "band",
            "kind",
            "verdict",
        ]);
        for (s, m) in rows {
            let v = verdict_str(m.verdict);
            let unit = crate::render::report::display_unit(&m.unit);
            t.add_row(vec![
                Cell::new(format!("{}:\n{}", s.key, m.name)),
                Cell::new(format!(
                    "{}\n→ {} {unit}",
                    baseline_str(m, ""),
                    value(m.current)
                )),
                Cell::new(pct(m.change_pct)),
                Cell::new(band_str(m)),
                Cell::new(kind_str(m)),
                match m.verdict {
                    MetricVerdict::Regressed => red(v),
                    MetricVerdict::Improved => green(v),
                    _ => Cell::new(v),
                },
            ]);
        }
        style.section(&mut out, "Metrics beyond their band", t);
        style.para(&mut out, LEGEND, 2);
        if let Some(m) = more(n, limit) {
            out.push_str(&format!("{m}\n"));
        }
    }
    out.push('\n');
    style.para(&mut out, &headline(c), 2);
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
        "Baseline{} `{}` **{}** ({}, {}, driver {}) → current `{}` **{}** ({}, {}, driver {}); {}.\n\n",
        if c.baseline_reports > 1 {
            " (newest)"
        } else {
            ""
        },
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
        md_cell(&tolerance_note(c)),
    ));
    out.push_str("| scenario | status | change | new findings | resolved | metrics |\n");
    out.push_str("|---|---|---|---:|---:|---|\n");
    for s in &c.scenarios {
        let change = row_change_str(s);
        let change = if s.status_regression {
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
        out.push_str("\n#### Findings\n\n| scenario | change | severity | code | GPU | finding |\n|---|---|---|---|---|---|\n");
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
        out.push_str("\n#### Metrics beyond their band\n\n| scenario | metric | baseline | current | change | band | kind | verdict |\n|---|---|---:|---:|---:|---:|---|---|\n");
        for (s, m) in rows {
            let v = verdict_str(m.verdict);
            out.push_str(&format!(
                "| {} | `{}` | {} | {} {} | {} | {} | {} | {} |\n",
                md_cell(&s.key),
                md_code(&m.name),
                md_cell(&baseline_str(m, &format!(" {}", m.unit))),
                value(m.current),
                md_cell(&m.unit),
                pct(m.change_pct),
                md_cell(&band_str(m)),
                md_cell(&kind_str(m)),
                if m.verdict == MetricVerdict::Regressed {
                    format!("**{v}**")
                } else {
                    v.to_string()
                },
            ));
        }
        out.push_str(&format!("\n{}\n", md_cell(LEGEND)));
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
            md.starts_with(
                "### ❌ gpu-doctor compare: REGRESSION in 1 of 1 scenario: bandwidth (status pass → fail, new THRESHOLD, h2d|x -20.0%)"
            ),
            "{md}"
        );
        assert!(
            md.contains("| bandwidth | pass → fail | **REGRESSED** | 1 | 0 | 1 regressed |"),
            "{md}"
        );
        assert!(md.contains("a \\| b<br>next &lt;tag&gt;"), "{md}");
        assert!(
            md.contains(
                "`h2d\\|x` | 50 GB/s | 40 GB/s | -20.0% | 5% (floor) | throughput\\*, gate | **REGRESSED** |"
            ),
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
        assert!(
            t.replace("\n  ", " ").contains("REGRESSION in 1 of 1 scenario: bandwidth (status pass → fail, 31 new warn/fail findings, h2d|x -20.0%)"),
            "{t}"
        );
        // every column has a label
        let findings = t
            .split(
                "Findings
",
            )
            .nth(1)
            .unwrap();
        let header = findings.lines().nth(1).unwrap();
        assert!(
            header
                .split('┆')
                .all(|h| !h.trim_matches(['│', ' ']).is_empty()),
            "{header}"
        );
        let same = table(
            &compare(&a, &a, &Options::default()),
            Style::terminal(false),
            10,
        );
        assert!(!same.contains("Metrics beyond"));
        assert!(same.trim_end().ends_with("no regression"));
    }

    #[test]
    fn history_shows_the_newest_baseline_and_the_range_of_the_runs() {
        let (a, b) = pair();
        let mut older = a.clone();
        older.started_at = "2000-01-01T00:00:00Z".into();
        older.metrics.get_mut("h2d|x").unwrap().value = 48.0;
        let c = crate::analyze::compare::compare_history(&[a, older], &b, &Options::default());
        let md = markdown(&c, 50);
        assert!(md.contains("Baseline (newest) `bandwidth`"), "{md}");
        assert!(md.contains("2 baselines"), "{md}");
        assert!(md.contains("| 49 GB/s (48–50, 2 runs) | 40 GB/s |"), "{md}");
    }
}
