//! Help in suite errors: "did you mean", the scenarios there are, and a scenario's params as
//! its JSON schema describes them.

use crate::scenarios::{self, DynScenario};

pub(super) fn scenario_names() -> String {
    scenarios::public()
        .map(|s| format!("\"{}\"", s.name()))
        .collect::<Vec<_>>()
        .join(", ")
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
pub(super) fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
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
