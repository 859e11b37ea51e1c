//! A [`Comparison`] as JUnit XML for CI test reporters: one `<testsuite>` per scenario, one
//! `<testcase>` for its status and findings and one per metric. A regression is a
//! `<failure>`; a scenario the current run skipped is `<skipped>`.

use std::fmt::Write as _;

use crate::analyze::compare::{Comparison, MetricVerdict, ScenarioDiff};
use crate::render::compare::{change_str, pct, status_str};
use crate::report::Status;

/// Escapes text for XML content and attribute values. Characters XML 1.0 cannot hold at all
/// (most control characters, U+FFFE, U+FFFF) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Keep line breaks and tabs in attributes too.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(c as u32,
        0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

struct Case {
    name: String,
    failure: Option<(String, String)>,
    skipped: Option<String>,
}

fn cases(s: &ScenarioDiff) -> Vec<Case> {
    let mut v = Vec::new();
    let status_msg = format!(
        "status {} → {} ({})",
        status_str(s.baseline),
        status_str(s.current),
        change_str(s.status)
    );
    let bad: Vec<String> = s
        .new_findings
        .iter()
        .filter(|f| f.regression)
        .map(|f| {
            let gpu = f.gpu.map(|g| format!(" GPU {g}")).unwrap_or_default();
            format!("new {} {}{gpu}: {}", f.severity.as_str(), f.code, f.message)
        })
        .collect();
    let status_regressed = s.status_regressed();
    let failure = if status_regressed || !bad.is_empty() {
        let mut body = status_msg.clone();
        for b in &bad {
            body.push('\n');
            body.push_str(b);
        }
        let message = if status_regressed {
            status_msg.clone()
        } else {
            format!("{} new finding(s): {}", bad.len(), bad[0])
        };
        Some((message, body))
    } else {
        None
    };
    let skipped = match (s.current, failure.is_some()) {
        (Some(Status::Skipped), false) => {
            Some(s.skipped_reason.clone().unwrap_or_else(|| "skipped".into()))
        }
        (None, false) => Some("not in the current report".into()),
        _ => None,
    };
    v.push(Case {
        name: "status and findings".into(),
        failure,
        skipped,
    });
    for m in &s.metrics {
        let failure = (m.verdict == MetricVerdict::Regressed).then(|| {
            let msg = format!(
                "{} {} → {} {} ({}, band {}% from {}, {} is better)",
                m.name,
                m.baseline.map(|x| x.to_string()).unwrap_or_default(),
                m.current.map(|x| x.to_string()).unwrap_or_default(),
                m.unit,
                pct(m.change_pct),
                m.tolerance_pct,
                m.tolerance_from.as_str(),
                format!("{:?}", m.better).to_lowercase()
            );
            (msg.clone(), msg)
        });
        let skipped = match m.verdict {
            MetricVerdict::Removed => Some("not in the current report".to_string()),
            MetricVerdict::Added => Some("not in the baseline report".to_string()),
            _ => None,
        };
        v.push(Case {
            name: format!("metric {}", m.name),
            failure,
            skipped,
        });
    }
    v
}

/// The whole comparison as a JUnit XML document.
pub fn junit(c: &Comparison) -> String {
    let suites: Vec<(&ScenarioDiff, Vec<Case>)> =
        c.scenarios.iter().map(|s| (s, cases(s))).collect();
    let total: usize = suites.iter().map(|(_, cs)| cs.len()).sum();
    let failures: usize = suites
        .iter()
        .map(|(_, cs)| cs.iter().filter(|c| c.failure.is_some()).count())
        .sum();
    let skipped: usize = suites
        .iter()
        .map(|(_, cs)| cs.iter().filter(|c| c.skipped.is_some()).count())
        .sum();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"gpu-doctor compare\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    for (s, cs) in &suites {
        let f = cs.iter().filter(|c| c.failure.is_some()).count();
        let sk = cs.iter().filter(|c| c.skipped.is_some()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"0\" skipped=\"{sk}\" timestamp=\"{}\">",
            escape(&s.key),
            cs.len(),
            escape(&c.current.started_at)
        );
        let classname = escape(&format!("gpu-doctor.{}", s.key));
        for case in cs {
            let _ = write!(
                out,
                "    <testcase classname=\"{classname}\" name=\"{}\"",
                escape(&case.name)
            );
            match (&case.failure, &case.skipped) {
                (Some((msg, body)), _) => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"regression\">{}</failure>\n    </testcase>",
                        escape(msg),
                        escape(body)
                    );
                }
                (None, Some(why)) => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(why)
                    );
                }
                (None, None) => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::compare::{Options, compare};
    use crate::report::{Better, Finding, Metric, Report, Severity};

    #[test]
    fn escapes_everything_xml_cannot_hold_raw() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("x\u{1}y\u{FFFF}z\n"), "x\u{FFFD}y\u{FFFD}z&#10;");
        assert_eq!(escape("ü 🚀"), "ü 🚀");
    }

    #[test]
    fn one_case_per_scenario_and_metric_with_failures_counted() {
        let mut a = Report::begin("suite", serde_json::json!({}));
        let mut bw = Report::begin("bandwidth", serde_json::json!({}));
        bw.metrics
            .insert("h2d".into(), Metric::new(50.0, "GB/s", Better::Higher));
        bw.metrics
            .insert("d2h".into(), Metric::new(50.0, "GB/s", Better::Higher));
        a.reports = vec![Report::begin("info", serde_json::json!({})), bw];
        let mut b = a.clone();
        b.reports[1].metrics.get_mut("h2d").unwrap().value = 10.0;
        b.reports[0]
            .findings
            .push(Finding::new(Severity::Fail, "X<&>", "bad \"thing\""));
        b.reports[0].status = Status::Fail;
        let x = junit(&compare(&a, &b, &Options::default()));
        assert!(
            // info, bandwidth (status + 2 metrics), and the suites' own row, which the info
            // scenario's failure explains: not a second failure.
            x.contains("<testsuites name=\"gpu-doctor compare\" tests=\"5\" failures=\"2\""),
            "{x}"
        );
        assert!(
            x.contains("new fail X&lt;&amp;&gt;: bad &quot;thing&quot;"),
            "{x}"
        );
        assert!(x.contains("name=\"metric h2d\">\n      <failure"), "{x}");
        assert!(
            x.contains("<testcase classname=\"gpu-doctor.bandwidth\" name=\"metric d2h\"/>"),
            "{x}"
        );
        assert_eq!(
            x.matches("<testsuite ").count(),
            x.matches("</testsuite>").count()
        );
        assert_eq!(x.matches("<testcase ").count(), 5);
    }
}
