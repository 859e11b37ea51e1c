//! A suite file's TOML, read from the spanned tree so every error names the line and column,
//! what was found and what is allowed.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::hints::{did_you_mean, param_names, params_help, scenario_names};
use super::{Bound, Entry, Suite, SuiteError, Thresholds};
use crate::report::{Severity, Status};
use crate::scenarios::{self, DynScenario};

const TOP_KEYS: &[&str] = &["name", "description", "scenario"];
const ENTRY_KEYS: &[&str] = &[
    "name",
    "params",
    "from",
    "replay",
    "faults",
    "thresholds",
    "required",
];
const THRESHOLD_KEYS: &[&str] = &["metrics", "max_duration_ms", "max_status", "severity"];
const BOUND_KEYS: &[&str] = &["min", "max"];

/// Parses a suite from TOML text. `file` names it in the report (and is the default name).
pub fn parse(text: &str, file: &str) -> Result<Suite, SuiteError> {
    let p = Parser {
        text,
        lines: LineIndex::new(text),
    };
    let root = DeTable::parse(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        p.err(at..at, format!("TOML syntax: {}", e.message().trim()))
    })?;
    let root_span = root.span();
    let root = root.into_inner();
    for (k, _) in sorted(&root) {
        if !TOP_KEYS.contains(&k.get_ref().as_ref()) {
            return Err(p.err(
                k.span(),
                format!(
                    "unknown key `{}` at the top of a suite; allowed: {}",
                    k.get_ref(),
                    TOP_KEYS.join(", ")
                ),
            ));
        }
    }
    let name = match root.get("name") {
        Some(v) => p.string(v, "name")?,
        None => Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "suite".into()),
    };
    let description = root
        .get("description")
        .map(|v| p.string(v, "description"))
        .transpose()?;
    let Some(list) = root.get("scenario") else {
        return Err(p.err(
            root_span.start..root_span.start,
            format!(
                "the suite lists no scenarios: add one or more [[scenario]] tables with a name ({})",
                scenario_names()
            ),
        ));
    };
    let items = match list.get_ref() {
        DeValue::Array(a) if a.iter().all(|v| v.get_ref().is_table()) => a,
        DeValue::Table(_) => {
            return Err(p.err(
                list.span(),
                "`scenario` is a single table: write [[scenario]] (double brackets) for each scenario".into(),
            ));
        }
        other => {
            return Err(p.err(
                list.span(),
                format!(
                    "`scenario` must be an array of tables ([[scenario]]), found {}",
                    other.type_str()
                ),
            ));
        }
    };
    if items.is_empty() {
        return Err(p.err(
            list.span(),
            format!(
                "`scenario` is empty: list at least one ({})",
                scenario_names()
            ),
        ));
    }
    let mut scenarios = Vec::new();
    for item in items.iter() {
        scenarios.push(p.entry(item)?);
    }
    Ok(Suite {
        name,
        description,
        file: file.to_string(),
        scenarios,
    })
}

struct Parser<'a> {
    text: &'a str,
    lines: LineIndex,
}

/// Where each line starts: line and column of an offset in O(log lines), so locating every
/// entry of a suite of 100k scenarios stays linear overall.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of a byte offset, as [`line_col_of`].
    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, text[start..offset].chars().count() + 1)
    }
}

impl Parser<'_> {
    fn err(&self, span: Range<usize>, message: String) -> SuiteError {
        let (line, column) = self.lines.line_col(self.text, span.start);
        SuiteError {
            line,
            column,
            message,
        }
    }

    fn string(&self, v: &Spanned<DeValue<'_>>, what: &str) -> Result<String, SuiteError> {
        v.get_ref().as_str().map(str::to_string).ok_or_else(|| {
            self.err(
                v.span(),
                format!("`{what}` must be a string, found {}", found(v.get_ref())),
            )
        })
    }

    fn number(&self, v: &Spanned<DeValue<'_>>, what: &str) -> Result<f64, SuiteError> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|i| i as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() => Ok(n),
            _ => Err(self.err(
                v.span(),
                format!(
                    "`{what}` must be a finite number, found {}",
                    found(v.get_ref())
                ),
            )),
        }
    }

    fn entry(&self, item: &Spanned<DeValue<'_>>) -> Result<Entry, SuiteError> {
        let span = item.span();
        let table = item.get_ref().as_table().expect("checked: a table");
        // An array-of-tables entry's span is its `[[scenario]]` header.
        let line = self.lines.line_col(self.text, span.start).0;
        let Some(name_v) = table.get("name") else {
            return Err(self.err(
                span,
                format!(
                    "a [[scenario]] without `name`; scenarios: {}",
                    scenario_names()
                ),
            ));
        };
        let name = self.string(name_v, "name")?;
        let Some(scenario) = scenarios::find(&name).filter(|s| !s.internal()) else {
            return Err(self.err(
                name_v.span(),
                format!(
                    "unknown scenario `{name}`{}; scenarios: {}",
                    did_you_mean(&name, scenarios::public().map(|s| s.name())),
                    scenario_names()
                ),
            ));
        };
        for (k, _) in sorted(table) {
            let key = k.get_ref().as_ref();
            if ENTRY_KEYS.contains(&key) {
                continue;
            }
            let is_param = param_names(scenario).iter().any(|p| p == key);
            let hint = if is_param {
                format!(" (`{key}` is a param of `{name}`: put it under [scenario.params])")
            } else {
                did_you_mean(key, ENTRY_KEYS.iter().copied())
            };
            return Err(self.err(
                k.span(),
                format!(
                    "unknown key `{key}` in [[scenario]] `{name}`{hint}; allowed: {}",
                    ENTRY_KEYS.join(", ")
                ),
            ));
        }
        let required = match table.get("required") {
            None => false,
            Some(v) => v.get_ref().as_bool().ok_or_else(|| {
                self.err(
                    v.span(),
                    format!(
                        "`required` must be true or false, found {}",
                        found(v.get_ref())
                    ),
                )
            })?,
        };
        let (params, params_from) = match table.get("params") {
            None => (serde_json::Value::Null, None),
            Some(v) => self.params(scenario, v)?,
        };
        let from = match table.get("from") {
            Some(v) => Some(self.string(v, "from")?),
            None => params_from,
        }
        .map(PathBuf::from);
        let params = match scenario.normalize_params(params) {
            Ok(p) => p,
            // Located per key above; this only fires if the whole fails where each key passed.
            Err(e) => {
                let at = table.get("params").map(|v| v.span()).unwrap_or(span);
                return Err(self.err(
                    at,
                    format!("params of `{name}`: {e}; {}", params_help(scenario)),
                ));
            }
        };
        let thresholds = match table.get("thresholds") {
            None => Thresholds::default(),
            Some(v) => self.thresholds(v)?,
        };
        let replay = match table.get("replay") {
            Some(v) => Some(PathBuf::from(self.string(v, "replay")?)),
            None => None,
        };
        let faults = match table.get("faults") {
            Some(v) => self.faults(v)?,
            None => vec![],
        };
        Ok(Entry {
            scenario,
            line,
            params,
            from,
            replay,
            faults,
            required,
            thresholds,
        })
    }

    /// `faults = ["KIND[=VALUE][@gpuN][+DELAY]", …]`, each checked where it is written.
    fn faults(&self, v: &Spanned<DeValue<'_>>) -> Result<Vec<String>, SuiteError> {
        let Some(items) = v.get_ref().as_array() else {
            return Err(self.err(
                v.span(),
                format!(
                    "`faults` must be a list of faults, found {}",
                    found(v.get_ref())
                ),
            ));
        };
        let mut out = Vec::new();
        for item in items {
            let spec = self.string(item, "faults")?;
            if let Err(e) = shim_proto::nvml::fault::parse_faults(&[&spec]) {
                return Err(self.err(item.span(), format!("fault `{spec}`: {}", e.0)));
            }
            out.push(spec);
        }
        Ok(out)
    }

    /// Converts `[scenario.params]` to JSON and checks it against the scenario's Params type,
    /// key by key, so the error points at the key or value that is wrong. A `from` key is
    /// returned apart: it is the entry's, not a param.
    fn params(
        &self,
        scenario: &dyn DynScenario,
        v: &Spanned<DeValue<'_>>,
    ) -> Result<(serde_json::Value, Option<String>), SuiteError> {
        let name = scenario.name();
        let Some(table) = v.get_ref().as_table() else {
            return Err(self.err(
                v.span(),
                format!(
                    "`params` must be a table ([scenario.params] or {{ key = value }}), found {}; {}",
                    found(v.get_ref()),
                    params_help(scenario)
                ),
            ));
        };
        let mut obj = serde_json::Map::new();
        let mut from = None;
        for (k, val) in sorted(table) {
            let key = k.get_ref().to_string();
            if key == "from" {
                from = Some(self.string(val, "from")?);
                continue;
            }
            let json = self.to_json(val)?;
            if let Err(e) = scenario.normalize_params(serde_json::Value::Object(
                [(key.clone(), json.clone())].into_iter().collect(),
            )) {
                let known = param_names(scenario).contains(&key);
                let (at, what) = if known {
                    (
                        val.span(),
                        format!("param `{key}` of `{name}`: {}", clean_serde(&e)),
                    )
                } else {
                    (
                        k.span(),
                        format!(
                            "unknown param `{key}` for `{name}`{}",
                            did_you_mean(
                                &key,
                                param_names(scenario)
                                    .iter()
                                    .map(String::as_str)
                                    .chain(["from"])
                            )
                        ),
                    )
                };
                return Err(self.err(at, format!("{what}; {}", params_help(scenario))));
            }
            obj.insert(key, json);
        }
        Ok((serde_json::Value::Object(obj), from))
    }

    fn to_json(&self, v: &Spanned<DeValue<'_>>) -> Result<serde_json::Value, SuiteError> {
        use serde_json::Value as J;
        Ok(match v.get_ref() {
            DeValue::String(s) => J::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => J::from(n),
                Err(_) => match u64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => J::from(n),
                    Err(_) => {
                        return Err(self.err(v.span(), format!("integer {i} is out of range")));
                    }
                },
            },
            DeValue::Float(f) => match f
                .as_str()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => J::Number(n),
                None => {
                    return Err(self.err(v.span(), format!("{f} is not a finite number")));
                }
            },
            DeValue::Boolean(b) => J::Bool(*b),
            DeValue::Datetime(d) => J::String(d.to_string()),
            DeValue::Array(a) => J::Array(
                a.iter()
                    .map(|x| self.to_json(x))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => {
                let mut m = serde_json::Map::new();
                for (k, x) in sorted(t) {
                    m.insert(k.get_ref().to_string(), self.to_json(x)?);
                }
                J::Object(m)
            }
        })
    }

    fn thresholds(&self, v: &Spanned<DeValue<'_>>) -> Result<Thresholds, SuiteError> {
        let Some(table) = v.get_ref().as_table() else {
            return Err(self.err(
                v.span(),
                format!(
                    "`thresholds` must be a table, found {}; allowed keys: {}",
                    found(v.get_ref()),
                    THRESHOLD_KEYS.join(", ")
                ),
            ));
        };
        let mut t = Thresholds::default();
        for (k, val) in sorted(table) {
            match k.get_ref().as_ref() {
                "max_duration_ms" => {
                    let n = self.number(val, "max_duration_ms")?;
                    if n <= 0.0 {
                        return Err(self.err(
                            val.span(),
                            format!("`max_duration_ms` must be above 0, found {n}"),
                        ));
                    }
                    t.max_duration_ms = Some(n);
                }
                "max_status" => {
                    let s = self.string(val, "max_status")?;
                    t.max_status = Some(match s.as_str() {
                        "pass" => Status::Pass,
                        "warn" => Status::Warn,
                        _ => {
                            return Err(self.err(
                                val.span(),
                                format!("`max_status` must be \"pass\" or \"warn\", found \"{s}\" (fail and error always fail)"),
                            ));
                        }
                    });
                }
                "severity" => {
                    let s = self.string(val, "severity")?;
                    t.severity = match s.as_str() {
                        "warn" => Severity::Warn,
                        "fail" => Severity::Fail,
                        _ => {
                            return Err(self.err(
                                val.span(),
                                format!("`severity` must be \"warn\" or \"fail\", found \"{s}\""),
                            ));
                        }
                    };
                }
                "metrics" => {
                    let Some(m) = val.get_ref().as_table() else {
                        return Err(self.err(
                            val.span(),
                            format!(
                                "`metrics` must be a table of metric = {{ min = …, max = … }}, found {}",
                                found(val.get_ref())
                            ),
                        ));
                    };
                    for (mk, mv) in sorted(m) {
                        let metric = mk.get_ref().to_string();
                        t.metrics.insert(metric.clone(), self.bound(&metric, mv)?);
                    }
                }
                other => {
                    return Err(self.err(
                        k.span(),
                        format!(
                            "unknown threshold `{other}`{}; allowed: {}",
                            did_you_mean(other, THRESHOLD_KEYS.iter().copied()),
                            THRESHOLD_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(t)
    }

    fn bound(&self, metric: &str, v: &Spanned<DeValue<'_>>) -> Result<Bound, SuiteError> {
        let Some(table) = v.get_ref().as_table() else {
            return Err(self.err(
                v.span(),
                format!(
                    "threshold of metric `{metric}` must be a table like {{ min = 20.0 }} or {{ max = 5 }}, found {}",
                    found(v.get_ref())
                ),
            ));
        };
        let mut b = Bound::default();
        for (k, val) in sorted(table) {
            match k.get_ref().as_ref() {
                "min" => b.min = Some(self.number(val, "min")?),
                "max" => b.max = Some(self.number(val, "max")?),
                other => {
                    let dotted = if val.get_ref().is_table() {
                        format!(
                            " (a metric name with dots must be quoted: \"{metric}.{other}\" = {{ min = … }})"
                        )
                    } else {
                        String::new()
                    };
                    return Err(self.err(
                        k.span(),
                        format!(
                            "unknown key `{other}` in the threshold of metric `{metric}`{dotted}; allowed: {}",
                            BOUND_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        match (b.min, b.max) {
            (None, None) => Err(self.err(
                v.span(),
                format!("threshold of metric `{metric}` sets neither min nor max"),
            )),
            (Some(lo), Some(hi)) if lo > hi => Err(self.err(
                v.span(),
                format!("threshold of metric `{metric}`: min {lo} is above max {hi}"),
            )),
            _ => Ok(b),
        }
    }
}

/// Entries of a table in the order they appear in the file.
fn sorted<'t, 'i>(
    t: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn found(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string \"{s}\""),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// serde_json's messages end with " at line 1 column 2" for from_str, never for from_value;
/// keep them as they are but without a trailing period.
fn clean_serde(e: &str) -> String {
    e.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> SuiteError {
        parse(text, "t.toml").expect_err("should not parse")
    }

    #[test]
    fn parses_a_suite_with_params_and_thresholds() {
        let s = parse(
            r#"
name = "mine"
description = "d"

[[scenario]]
name = "info"

[[scenario]]
name = "topo"
required = true
[scenario.params]
from = "x.json"
[scenario.thresholds]
max_duration_ms = 500
max_status = "warn"
severity = "warn"
metrics.h2d_pinned_gbps = { min = 20 }
metrics."a.b" = { min = 1.5, max = 3 }
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(s.name, "mine");
        assert_eq!(s.scenarios.len(), 2);
        assert_eq!(s.scenarios[0].scenario.name(), "info");
        assert_eq!(s.scenarios[0].line, 5);
        let topo = &s.scenarios[1];
        assert_eq!(topo.line, 8);
        assert!(topo.required);
        assert_eq!(topo.from, Some(PathBuf::from("x.json")));
        assert_eq!(
            topo.params,
            serde_json::json!({}),
            "`from` is the entry's, not a param"
        );
        let s = parse(
            "[[scenario]]\nname = \"info\"\nfrom = \"i.json\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(s.scenarios[0].from, Some(PathBuf::from("i.json")));
        assert_eq!(topo.thresholds.max_duration_ms, Some(500.0));
        assert_eq!(topo.thresholds.max_status, Some(Status::Warn));
        assert_eq!(topo.thresholds.severity, Severity::Warn);
        assert_eq!(topo.thresholds.metrics["h2d_pinned_gbps"].min, Some(20.0));
        assert_eq!(topo.thresholds.metrics["a.b"].max, Some(3.0));
    }

    #[test]
    fn name_defaults_to_the_file_stem() {
        let s = parse("[[scenario]]\nname = \"info\"\n", "dir/nightly.toml").unwrap();
        assert_eq!(s.name, "nightly");
    }

    #[test]
    fn errors_point_at_the_offending_spot() {
        let e = err("[[scenario]]\nname = \"inject oon\"\n");
        assert_eq!((e.line, e.column), (2, 8));
        assert!(
            e.message.contains("unknown scenario `inject oon`"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("did you mean `inject oom`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("\"bandwidth\""), "{}", e.message);

        let e = err("[[scenario]]\nname = \"topo\"\n[scenario.params]\nfrom = 3\n");
        assert_eq!((e.line, e.column), (4, 8));
        assert!(
            e.message
                .contains("`from` must be a string, found integer 3"),
            "{}",
            e.message
        );

        let e = err("[[scenario]]\nname = \"topo\"\n[scenario.params]\nbandwidth = 3\n");
        assert_eq!((e.line, e.column), (4, 13));
        assert!(e.message.contains("param `bandwidth`"), "{}", e.message);
        assert!(e.message.contains("bandwidth (boolean"), "{}", e.message);

        let e = err("[[scenario]]\nname = \"topo\"\n[scenario.params]\n  form = \"x\"\n");
        assert_eq!((e.line, e.column), (4, 3));
        assert!(e.message.contains("unknown param `form`"), "{}", e.message);
        assert!(e.message.contains("did you mean `from`"), "{}", e.message);

        let e = err("[[scenario]]\nname = \"info\"\n[scenario.params]\nx = 1\n");
        assert!(
            e.message.contains("unknown param `x` for `info`"),
            "{}",
            e.message
        );

        let e = err("[[scenario]]\nname = \"topo\"\nbandwidth = true\n");
        assert_eq!((e.line, e.column), (3, 1));
        assert!(
            e.message.contains("put it under [scenario.params]"),
            "{}",
            e.message
        );

        let e = err("name = \"x\"\n[scenario]\nname = \"info\"\n");
        assert!(e.message.contains("double brackets"), "{}", e.message);

        let e = err("name = \"x\"\n");
        assert!(e.message.contains("no scenarios"), "{}", e.message);

        let e = err(
            "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmetrics.bw.gpu0 = { min = 1 }\n",
        );
        assert_eq!(e.line, 4);
        assert!(e.message.contains("must be quoted"), "{}", e.message);

        let e =
            err("[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmax_status = \"fail\"\n");
        assert_eq!((e.line, e.column), (4, 14));

        let e = err(
            "[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmetrics.x = { min = 3, max = 1 }\n",
        );
        assert!(e.message.contains("min 3 is above max 1"), "{}", e.message);

        let e =
            err("[[scenario]]\nname = \"info\"\n[scenario.thresholds]\nmax_duration_ms = \"1s\"\n");
        assert!(
            e.message
                .contains("must be a finite number, found string \"1s\""),
            "{}",
            e.message
        );

        let e = err("[[scenario]]\nname = \"info\"\nname = \"topo\"\n");
        assert_eq!(e.line, 3);
        assert!(e.message.starts_with("TOML syntax"), "{}", e.message);

        let e = err("[[scenario]]\nname = 3\n");
        assert!(
            e.message
                .contains("`name` must be a string, found integer 3"),
            "{}",
            e.message
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col_of("ab\nçd", 5), (2, 2));
        assert_eq!(line_col_of("ab", 99), (1, 3));
        for text in ["ab\nçd", "ab", "\n\nx\n", ""] {
            let index = LineIndex::new(text);
            for offset in 0..text.len() + 2 {
                assert_eq!(
                    index.line_col(text, offset),
                    line_col_of(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }
}
