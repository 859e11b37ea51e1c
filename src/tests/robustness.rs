//! Property tests: suite parsing, report parsing, compare and its renderers never panic,
//! whatever the input. Case counts are set per test (CASES_* below). In the crate because
//! the suite parser and the comparison are not public.

use proptest::prelude::*;

use crate::analyze::compare::{Options, compare, compare_history};
use crate::compare::{Format, render};
use crate::report::{
    Better, DeviceInfo, Finding, Metric, MetricKind, Report, Severity, Spread, Status,
};

const CASES_TEXT: u32 = 4000;
const CASES_TOML: u32 = 4000;
const CASES_REPORTS: u32 = 1000;

/// TOML-ish fragments that reach deep into the suite parser: real keys and scenario names,
/// values of every type, tables, arrays of tables, dotted keys, broken syntax.
fn toml_fragment() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("name"),
        Just("description"),
        Just("scenario"),
        Just("params"),
        Just("thresholds"),
        Just("required"),
        Just("from"),
        Just("metrics"),
        Just("max_duration_ms"),
        Just("max_status"),
        Just("severity"),
        Just("min"),
        Just("max"),
        Just("metrics.bw"),
        Just("metrics.\"a.b\""),
        Just("x"),
        Just("\"\""),
        Just("metrics.bw.gpu0"),
    ];
    let value = prop_oneof![
        Just("\"info\"".to_string()),
        Just("\"topo\"".to_string()),
        Just("\"inject oom\"".to_string()),
        Just("\"pass\"".to_string()),
        Just("\"warn\"".to_string()),
        Just("\"fail\"".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        Just("1e400".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("{ min = 1 }".to_string()),
        Just("{ min = 3, max = 1 }".to_string()),
        Just("[{ name = \"info\" }]".to_string()),
        Just("\"\\u00e9\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[a-z \"{}=\\[\\].,]{0,12}",
    ];
    let line = prop_oneof![
        (key.clone(), value).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("[[scenario]]".to_string()),
        Just("[scenario]".to_string()),
        Just("[scenario.params]".to_string()),
        Just("[scenario.thresholds]".to_string()),
        Just("[scenario.thresholds.metrics]".to_string()),
        key.prop_map(|k| format!("[{k}]")),
        "[^\n]{0,20}",
    ];
    prop::collection::vec(line, 0..14).prop_map(|lines| lines.join("\n"))
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Skipped),
        Just(Status::Pass),
        Just(Status::Warn),
        Just(Status::Fail),
        Just(Status::Error)
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Info),
        Just(Severity::Warn),
        Just(Severity::Fail)
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_]{0,8}",
        ".{0,16}",
        Just("<&\"'|\n`]]>\u{1}".to_string())
    ]
}

fn report_strategy(depth: u32) -> BoxedStrategy<Report> {
    let device = (
        0u32..4,
        prop::sample::select(vec!["GPU-a", "GPU-b", "GPU-c", "", "MIG-x"]),
    )
        .prop_map(|(index, uuid)| DeviceInfo {
            index,
            uuid: uuid.into(),
            name: "H100".into(),
            ..Default::default()
        });
    let finding = (
        severity(),
        prop::sample::select(vec!["A", "B", "THRESHOLD"]),
        prop::option::of(0u32..5),
        text(),
    )
        .prop_map(|(s, c, d, m)| {
            let mut f = Finding::new(s, c, m);
            f.device = d;
            f
        });
    let metric = (
        prop::sample::select(vec!["bw", "bw.gpu0", "bw.gpu1", "lat", "x.gpu", "bw.gpu"]),
        any::<f64>(),
        prop_oneof![Just(Better::Higher), Just(Better::Lower)],
        prop::option::of(0u32..3),
        prop::option::of(prop::sample::select(MetricKind::ALL.to_vec())),
        prop::option::of(prop::collection::vec(any::<f64>(), 0..5)),
    );
    let leaf = (
        prop::sample::select(vec!["info", "topo", "bandwidth", "inject oom"]),
        status(),
        prop::collection::vec(device, 0..4),
        prop::collection::vec(finding, 0..6),
        prop::collection::vec(metric, 0..6),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(
            |(name, status, devices, findings, metrics, driver, reason)| {
                let mut r = Report::begin(name, serde_json::json!({}));
                r.status = status;
                r.devices = devices;
                r.findings = findings;
                for (n, v, b, d, kind, samples) in metrics {
                    let mut m = Metric::new(v, "GB/s", b);
                    m.device = d;
                    m.kind = kind;
                    m.spread = samples.and_then(|s| Spread::of(&s));
                    r.metrics.insert(n.to_string(), m);
                }
                r.host.driver_version = driver;
                if let Some(reason) = reason {
                    r.data = serde_json::json!({ "skipped_reason": reason });
                }
                r
            },
        );
    if depth == 0 {
        return leaf.boxed();
    }
    (
        leaf,
        prop::collection::vec(report_strategy(depth - 1), 0..5),
    )
        .prop_map(|(mut r, children)| {
            r.reports = children;
            r
        })
        .boxed()
}

fn tolerances() -> impl Strategy<Value = Options> {
    (
        prop::option::of(0.0f64..2.0),
        prop::collection::vec(
            (
                prop::sample::select(vec!["bw", "bw.gpu0", "lat"]),
                0.0f64..1.0,
            ),
            0..3,
        ),
    )
        .prop_map(|(t, per)| Options {
            tolerance: t,
            per_metric: per.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_TEXT))]

    #[test]
    fn suite_parse_never_panics_on_any_text(s in ".{0,200}") {
        let _ = crate::suite::parse(&s, "p.toml");
    }

    #[test]
    fn report_parse_never_panics_on_any_text(s in ".{0,200}") {
        let _ = crate::output::parse_report(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_TOML))]

    #[test]
    fn suite_parse_never_panics_on_suite_like_toml(s in toml_fragment()) {
        if let Err(e) = crate::suite::parse(&s, "p.toml") {
            // every error is located inside the text
            let lines = s.split('\n').count();
            prop_assert!(e.line >= 1 && e.line <= lines.max(1), "{e:?} for {s:?}");
            prop_assert!(e.column >= 1);
            prop_assert!(!e.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_REPORTS))]

    #[test]
    fn compare_and_render_never_panic(
        a in report_strategy(1),
        b in report_strategy(1),
        opts in tolerances(),
        limit in 0usize..4,
    ) {
        let c = compare(&a, &b, &opts);
        prop_assert_eq!(c.regression, c.scenarios.iter().any(|s| s.regression));
        for f in [Format::Table, Format::Json, Format::Markdown, Format::Junit] {
            let out = render(&c, f, crate::render::style::Style::terminal(true), limit).unwrap();
            prop_assert!(!out.is_empty());
        }
        // a report never regresses against itself
        prop_assert!(!compare(&a, &a, &opts).regression);
        // nor panics with a history
        let h = compare_history(&[a.clone(), b.clone(), a.clone()], &b, &opts);
        prop_assert_eq!(h.baseline_reports, 3);
    }

    #[test]
    fn mutated_reports_never_panic_the_reader(r in report_strategy(1), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let text = serde_json::to_string(&r).unwrap();
        let mut bytes = text.into_bytes();
        let i = cut.index(bytes.len());
        bytes[i] = byte;
        if let Ok(s) = String::from_utf8(bytes.clone()) {
            let _ = crate::output::parse_report(&s);
        }
        bytes.truncate(i);
        if let Ok(s) = String::from_utf8(bytes) {
            let _ = crate::output::parse_report(&s);
        }
    }
}
