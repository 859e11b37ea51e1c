//! Suites: TOML files listing scenarios with their params and thresholds (docs/suites.md).
//!
//! A suite is parsed from the spanned TOML tree (`toml::de::DeTable`) so every error names
//! `file:line:column`, what was found and what is allowed. Scenario params are validated by
//! the scenario's own `Params` type (`DynScenario::normalize_params`), the type the command
//! line uses, so suite files and the CLI cannot drift. Thresholds become `THRESHOLD` findings
//! inside the scenario's report and so count towards its status.

use std::io::IsTerminal;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::analyze::thresholds;
pub use crate::analyze::thresholds::{Bound, Thresholds, metric_matches};
use crate::context::RunOptions;
use crate::error;
use crate::report::{Report, Severity, Status};
use crate::runner::Request;
use crate::scenarios::{self, DynScenario};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Suite file (TOML), e.g. scenarios/quick.toml. Format: docs/suites.md.
    #[arg(value_name = "SUITE.toml")]
    pub suite: PathBuf,
    /// Only check the suite file and list what it would run (no GPU needed).
    #[arg(long)]
    pub check: bool,
}

/// A parsed, validated suite.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub file: String,
    pub scenarios: Vec<Entry>,
}

/// One `[[scenario]]` of a suite.
#[derive(Clone, Serialize)]
pub struct Entry {
    #[serde(rename = "name", serialize_with = "ser_scenario")]
    pub scenario: &'static dyn DynScenario,
    /// Line of the `[[scenario]]` header in the suite file.
    pub line: usize,
    /// Normalised params (every field, defaults filled in).
    pub params: serde_json::Value,
    /// A saved report to analyse instead of probing (`from = "x.json"`, also accepted under
    /// `[scenario.params]`, where earlier versions took it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// A skipped run of a required scenario is a failure.
    pub required: bool,
    #[serde(skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("scenario", &self.scenario.name())
            .field("line", &self.line)
            .field("params", &self.params)
            .field("required", &self.required)
            .field("thresholds", &self.thresholds)
            .finish()
    }
}

fn ser_scenario<S: serde::Serializer>(
    s: &&'static dyn DynScenario,
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

/// A problem in a suite file, located by line and column (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl SuiteError {
    pub fn display(&self, file: &str) -> String {
        format!("{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

const TOP_KEYS: &[&str] = &["name", "description", "scenario"];
const ENTRY_KEYS: &[&str] = &["name", "params", "from", "thresholds", "required"];
const THRESHOLD_KEYS: &[&str] = &["metrics", "max_duration_ms", "max_status", "severity"];
const BOUND_KEYS: &[&str] = &["min", "max"];

/// Reads and validates a suite file: every problem is an input error (exit 2) naming
/// `file:line:column`.
pub fn load(path: &Path) -> Result<Suite> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        error::input(format!(
            "{file}: cannot read suite file: {e} (shipped suites: scenarios/quick.toml, scenarios/full.toml, scenarios/ci.toml)"
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col_of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        error::input(format!(
            "{file}:{line}:{column}: the suite file is not UTF-8 text"
        ))
    })?;
    parse(&text, &file).map_err(|e| error::input(e.display(&file)))
}

/// Parses a suite from TOML text. `file` names it in the report (and is the default name).
pub fn parse(text: &str, file: &str) -> Result<Suite, SuiteError> {
    let p = Parser { text };
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
}

impl Parser<'_> {
    fn err(&self, span: Range<usize>, message: String) -> SuiteError {
        let (line, column) = line_col_of(self.text, span.start);
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
        let line = line_col_of(self.text, span.start).0;
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
        Ok(Entry {
            scenario,
            line,
            params,
            from,
            required,
            thresholds,
        })
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

fn scenario_names() -> String {
    scenarios::public()
        .map(|s| format!("\"{}\"", s.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// serde_json's messages end with " at line 1 column 2" for from_str, never for from_value;
/// keep them as they are but without a trailing period.
fn clean_serde(e: &str) -> String {
    e.trim_end_matches('.').to_string()
}

/// Names of a scenario's params, from its JSON schema.
pub fn param_names(scenario: &dyn DynScenario) -> Vec<String> {
    scenario
        .params_schema()
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// "params of `X`: a (integer): …; b (string or null): …" from the params' JSON schema.
pub fn params_help(scenario: &dyn DynScenario) -> String {
    let schema = scenario.params_schema();
    let props = schema.get("properties").and_then(|p| p.as_object());
    let Some(props) = props.filter(|p| !p.is_empty()) else {
        return format!("`{}` takes no params", scenario.name());
    };
    let list: Vec<String> = props
        .iter()
        .map(|(k, v)| {
            let mut s = format!("{k} ({})", describe_type(v, &schema));
            if let Some(d) = v.get("default").filter(|d| !d.is_null()) {
                s.push_str(&format!(", default {d}"));
            }
            if let Some(desc) = v.get("description").and_then(|d| d.as_str()) {
                s.push_str(&format!(": {}", first_sentence(desc)));
            }
            s
        })
        .collect();
    format!("params of `{}`: {}", scenario.name(), list.join("; "))
}

fn first_sentence(s: &str) -> &str {
    let s = s.lines().next().unwrap_or("");
    match s.find(". ") {
        Some(i) => &s[..i + 1],
        None => s,
    }
}

/// A short human name of a JSON schema type: "integer", "string or null", "one of "a", "b"".
fn describe_type(v: &serde_json::Value, root: &serde_json::Value) -> String {
    describe_type_depth(v, root, 0)
}

fn describe_type_depth(v: &serde_json::Value, root: &serde_json::Value, depth: usize) -> String {
    if depth > 8 {
        return "value".into();
    }
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str()) {
        let target = r
            .strip_prefix("#/")
            .and_then(|p| p.split('/').try_fold(root, |acc, seg| acc.get(seg)));
        return match target {
            Some(t) => describe_type_depth(t, root, depth + 1),
            None => "value".into(),
        };
    }
    if let Some(e) = v.get("enum").and_then(|e| e.as_array()) {
        let vals: Vec<String> = e.iter().map(|x| x.to_string()).collect();
        return format!("one of {}", vals.join(", "));
    }
    if let Some(c) = v.get("const") {
        return c.to_string();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = v.get(key).and_then(|a| a.as_array()) {
            let parts: Vec<String> = alts
                .iter()
                .map(|a| describe_type_depth(a, root, depth + 1))
                .collect();
            return parts.join(" or ");
        }
    }
    match v.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "value".into(),
    }
}

/// " (did you mean `x`?)" when a candidate is close to `word`.
fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks a scenario's report against the entry's thresholds (analyze::thresholds) and its
/// `required` flag.
pub fn apply_thresholds(report: &mut Report, entry: &Entry, file: &str) {
    thresholds::apply(
        report,
        &entry.thresholds,
        entry.required,
        &format!("{file}:{}", entry.line),
    );
}

/// `gpu-doctor run SUITE`: runs the suite's scenarios in order and returns the combined report.
pub fn run(args: &RunArgs, opts: &RunOptions) -> Result<Report> {
    let suite = load(&args.suite)?;
    // Everything `run` checks before a scenario starts, for every entry: `--check` is exactly
    // this, and a bad value in the last entry stops the run before the first one starts.
    let items = requests(&suite)?;
    if args.check {
        return Ok(plan_report(&suite));
    }
    let params = serde_json::json!({
        "suite": suite.name,
        "file": suite.file,
    });
    let progress = Progress::new(opts, suite.scenarios.len());
    let current = std::cell::Cell::new(0usize);
    let result = crate::runner::execute_list(
        "suite",
        params,
        &items,
        opts,
        |i, s| {
            current.set(i);
            progress.start(i, s.name());
        },
        |i, r| {
            apply_thresholds(r, &suite.scenarios[i], &suite.file);
            progress.done(i, r);
        },
    );
    progress.finish();
    let mut report = result.map_err(|e| {
        let entry = &suite.scenarios[current.get()];
        e.context(format!(
            "{}:{}: scenario `{}`",
            suite.file,
            entry.line,
            entry.scenario.name()
        ))
    })?;
    report.data = serde_json::json!({ "suite": suite });
    Ok(report)
}

/// Every entry as a checked request (params normalised, program modes followed, values
/// validated); the first error names the entry's line.
fn requests(suite: &Suite) -> Result<Vec<Request>> {
    suite
        .scenarios
        .iter()
        .map(|e| {
            let mut r = Request::new(e.scenario, e.params.clone());
            r.from = e.from.clone();
            r.checked().map_err(|err| {
                let code = error::exit_code_of(&err);
                let msg = format!(
                    "{}:{}: scenario `{}`: {err:#}",
                    suite.file,
                    e.line,
                    e.scenario.name()
                );
                if code == error::exit::UNAVAILABLE {
                    error::unavailable(msg)
                } else {
                    error::input(msg)
                }
            })
        })
        .collect()
}

/// What `run --check` prints: the suite's scenarios, none run (each `skipped`); the suite
/// itself passed the check.
fn plan_report(suite: &Suite) -> Report {
    let mut report = Report::begin(
        "suite",
        serde_json::json!({ "suite": suite.name, "file": suite.file, "check": true }),
    );
    for e in &suite.scenarios {
        let r = crate::runner::skipped(e.scenario.name(), &e.params, "not run: --check");
        report.reports.push(r);
    }
    report.status = Status::Pass;
    report.data = serde_json::json!({ "suite": suite });
    report
}

/// Suite progress on stderr: a bar on a terminal, one line per scenario otherwise, nothing
/// with --quiet.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    len: usize,
}

impl Progress {
    fn new(opts: &RunOptions, len: usize) -> Self {
        if opts.quiet {
            return Progress {
                bar: None,
                lines: false,
                len,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "suite [{bar:30}] {pos}/{len} {msg} {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            Progress {
                bar: Some(bar),
                lines: false,
                len,
            }
        } else {
            Progress {
                bar: None,
                lines: true,
                len,
            }
        }
    }

    fn start(&self, i: usize, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_string());
        } else if self.lines {
            eprintln!("[{}/{}] {name} …", i + 1, self.len);
        }
    }

    fn done(&self, i: usize, r: &Report) {
        let line = format!(
            "[{}/{}] {} {} ({:.0} ms)",
            i + 1,
            self.len,
            r.scenario,
            r.status.as_str(),
            r.duration_ms
        );
        if let Some(bar) = &self.bar {
            bar.println(line);
            bar.inc(1);
        } else if self.lines {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Finding, Metric, codes};

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
    fn per_device_metric_names_match_their_base() {
        assert!(metric_matches("bw", "bw"));
        assert!(metric_matches("bw", "bw.gpu12"));
        assert!(!metric_matches("bw", "bw.gpu"));
        assert!(!metric_matches("bw", "bw_x"));
        assert!(!metric_matches("bw", "bw.gpu1x"));
    }

    fn entry(thresholds: Thresholds, required: bool) -> Entry {
        Entry {
            scenario: scenarios::find("info").unwrap(),
            line: 7,
            params: serde_json::json!({}),
            from: None,
            required,
            thresholds,
        }
    }

    #[test]
    fn thresholds_become_findings_and_status() {
        let mut t = Thresholds {
            severity: Severity::Fail,
            max_duration_ms: Some(100.0),
            ..Default::default()
        };
        t.metrics.insert(
            "bw".into(),
            Bound {
                min: Some(20.0),
                max: None,
            },
        );
        t.metrics.insert(
            "missing".into(),
            Bound {
                min: None,
                max: Some(1.0),
            },
        );
        let mut r = Report::begin("bandwidth", serde_json::json!({}));
        r.duration_ms = 50.0;
        r.metrics.insert(
            "bw.gpu0".into(),
            Metric::new(25.0, "GB/s", crate::report::Better::Higher).device(0),
        );
        r.metrics.insert(
            "bw.gpu1".into(),
            Metric::new(12.5, "GB/s", crate::report::Better::Higher).device(1),
        );
        apply_thresholds(&mut r, &entry(t, false), "s.toml");
        assert_eq!(r.status, Status::Fail);
        let th: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.code == codes::THRESHOLD)
            .collect();
        assert_eq!(th.len(), 2, "{th:?}");
        assert_eq!(th[0].device, Some(1));
        assert_eq!(th[0].severity, Severity::Fail);
        assert!(
            th[0]
                .message
                .contains("bw.gpu1 = 12.500 GB/s, below the suite's min 20"),
            "{}",
            th[0].message
        );
        assert!(th[0].hint.as_deref().unwrap().contains("s.toml:7"));
        assert_eq!(th[1].severity, Severity::Warn);
        assert!(th[1].message.contains("no such metric"));
    }

    #[test]
    fn status_and_duration_limits() {
        let t = Thresholds {
            severity: Severity::Warn,
            max_duration_ms: Some(10.0),
            max_status: Some(Status::Pass),
            ..Default::default()
        };
        let mut r = Report::begin("info", serde_json::json!({}));
        r.duration_ms = 11.0;
        r.findings.push(Finding::new(Severity::Warn, "X", "w"));
        r.status = Status::Warn;
        apply_thresholds(&mut r, &entry(t.clone(), false), "s.toml");
        assert_eq!(r.findings.len(), 3);
        assert_eq!(r.status, Status::Warn);

        let mut ok = Report::begin("info", serde_json::json!({}));
        ok.duration_ms = 9.0;
        apply_thresholds(&mut ok, &entry(t, false), "s.toml");
        assert!(ok.findings.is_empty());
        assert_eq!(ok.status, Status::Pass);
    }

    #[test]
    fn a_required_skipped_scenario_fails_an_optional_one_stays_skipped() {
        let mut r = crate::runner::skipped("info", &serde_json::json!({}), "no GPU");
        apply_thresholds(&mut r, &entry(Thresholds::default(), false), "s.toml");
        assert_eq!(r.status, Status::Skipped);
        apply_thresholds(&mut r, &entry(Thresholds::default(), true), "s.toml");
        assert_eq!(r.status, Status::Fail);
        assert!(r.findings[0].message.contains("no GPU"));
    }

    #[test]
    fn shipped_suites_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for name in ["quick", "full", "ci"] {
            let s = load(&dir.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(s.name, name);
        }
        let full = load(&dir.join("full.toml")).unwrap();
        // Program mode runs the user's own COMMAND: a shipped suite cannot name one.
        let needs_program = ["inject oom --", "inject error", "trace ctx --"];
        for s in scenarios::registry()
            .iter()
            .filter(|s| !s.internal() && !needs_program.contains(&s.name()))
        {
            assert!(
                full.scenarios.iter().any(|e| e.scenario.name() == s.name()),
                "full.toml lacks {}",
                s.name()
            );
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col_of("ab\nçd", 5), (2, 2));
        assert_eq!(line_col_of("ab", 99), (1, 3));
    }
}
