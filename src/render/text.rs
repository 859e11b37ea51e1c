//! Text for a terminal: what came from a report or a program made harmless (control and
//! bidirectional-override characters shown escaped), and prose wrapped to a width without
//! breaking a word.

use std::borrow::Cow;

/// A character a terminal would act on rather than show: C0 and C1 controls (except newline),
/// DEL, and the Unicode bidirectional overrides, embeddings, isolates and marks that can make
/// text read differently from what it is (CVE-2021-42574, "Trojan Source").
pub fn is_hostile(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` with every hostile character written as a Rust-style escape (`\u{1b}`); a tab becomes
/// a space.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push(' '),
            c if is_hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Every string in `v` (keys too) made [`printable`].
pub fn make_printable(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(p) = printable(s) {
                *s = p;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(make_printable),
        Value::Object(o) => {
            if o.keys().any(|k| k.chars().any(is_hostile)) {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    make_printable(&mut x);
                    o.insert(printable(&k).into_owned(), x);
                }
            } else {
                o.values_mut().for_each(make_printable);
            }
        }
        _ => {}
    }
}

/// `report` with every string [`printable`] (a copy only when one needs it), for rendering.
pub fn printable_report(report: &crate::report::Report) -> Cow<'_, crate::report::Report> {
    match serde_json::to_vec(report) {
        Ok(json) if !json_has_hostile(&json) => return Cow::Borrowed(report),
        Err(_) => return Cow::Borrowed(report),
        Ok(_) => {}
    }
    let Ok(mut v) = serde_json::to_value(report) else {
        return Cow::Borrowed(report);
    };
    make_printable(&mut v);
    serde_json::from_value(v).map_or(Cow::Borrowed(report), Cow::Owned)
}

/// Whether compact JSON text holds a hostile character: raw (C1, DEL, bidirectional
/// controls) or as serde_json escapes it (`\u00XX`, `\b`, `\f`, `\r`, `\t`). One pass, no
/// copy: rendering a 100k-scenario suite report stays cheap.
fn json_has_hostile(json: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(json) else {
        return true;
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                match bytes.get(i + 1) {
                    Some(b'b' | b'f' | b'r' | b't') => return true,
                    Some(b'u') => {
                        let hex = text.get(i + 2..i + 6).unwrap_or("");
                        if u32::from_str_radix(hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .is_some_and(is_hostile)
                        {
                            return true;
                        }
                    }
                    _ => {}
                }
                i += 2;
            }
            b if b < 0x80 => {
                if b == 0x7f {
                    return true;
                }
                i += 1;
            }
            _ => {
                let c = text[i..].chars().next().expect("a char boundary");
                if is_hostile(c) {
                    return true;
                }
                i += c.len_utf8();
            }
        }
    }
    false
}

/// JSON text with the hostile characters JSON allows raw (C1 controls, DEL, bidirectional
/// controls) written as `\uXXXX` escapes: the same JSON value, safe on a terminal. (serde_json
/// already escapes C0 controls.)
pub fn json_printable(json: String) -> String {
    if !json.chars().any(is_hostile_in_json) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hostile_in_json(c) {
            // Outside the BMP none of these exist: one \u escape each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_hostile_in_json(c: char) -> bool {
    // Newlines and indentation are JSON's own whitespace, outside strings.
    is_hostile(c) && !matches!(c, '\t' | '\r')
}

/// "NVIDIA H100 80GB HBM3" → "H100 80GB HBM3": the vendor is the same on every row.
pub fn short_model(name: &str) -> &str {
    name.strip_prefix("NVIDIA ").unwrap_or(name)
}

/// Columns `s` takes on a terminal (one per character: what gpu-doctor prints has no wide
/// characters).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `width` columns, "…" marking the cut (a table cell, a line of the live view).
pub fn cut(s: &str, width: usize) -> String {
    if self::width(s) <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` cut to `width` columns by an ellipsis in the middle: both ends kept, where names
/// that differ at their end (node-0123, a file name) still tell apart.
pub fn cut_middle(s: &str, width: usize) -> String {
    if self::width(s) <= width {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let head = width.saturating_sub(1) / 2;
    let tail = width.saturating_sub(1) - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `text` wrapped to `width` columns at spaces: the first line as is, the following ones
/// indented by `indent` spaces. A word longer than a line stays whole; spaces inside a line
/// (alignment) are kept; existing line breaks are kept.
pub fn wrap(text: &str, width: Option<usize>, indent: usize) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    let mut out = String::new();
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut col = 0;
        let mut rest = line;
        let mut first = true;
        while !rest.is_empty() {
            // The spaces before the next word, and the word.
            let gap = rest.len() - rest.trim_start_matches(' ').len();
            let after = &rest[gap..];
            let word_len = after.find(' ').unwrap_or(after.len());
            let word = &after[..word_len];
            rest = &after[word_len..];
            if word.is_empty() {
                break;
            }
            let w = self::width(word);
            if !first && col + gap + w > width {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
            } else {
                out.push_str(&" ".repeat(gap));
                col += gap;
            }
            out.push_str(word);
            col += w;
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn cut_middle_keeps_both_ends() {
        assert_eq!(cut_middle("node-0123", 24), "node-0123");
        let c = cut_middle("vm (h100-suite-ci-derived-regressed.json)", 22);
        assert_eq!(width(&c), 22);
        assert!(
            c.starts_with("vm (h100-s") && c.ends_with("essed.json)"),
            "{c}"
        );
    }
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(printable("plain · µs → ok\nnext"), "plain · µs → ok\nnext");
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(printable("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
        assert_eq!(printable("bell\u{7}\u{9b}31m"), "bell\\u{7}\\u{9b}31m");
        assert_eq!(printable("a\tb\rc"), "a b\\u{d}c");
        let mut v = serde_json::json!({"k\u{1b}": ["x\u{2066}"], "n": 1});
        make_printable(&mut v);
        assert_eq!(v, serde_json::json!({"k\\u{1b}": ["x\\u{2066}"], "n": 1}));
    }

    #[test]
    fn hostile_text_is_found_in_json_escapes_and_raw() {
        for (s, hostile) in [
            ("plain \\b and \\u001b as text, µs → ok\n", false),
            ("esc \u{1b}", true),
            ("tab\t", true),
            ("bidi \u{202e}", true),
            ("c1 \u{9b}", true),
            ("del \u{7f}", true),
        ] {
            let json = serde_json::to_vec(&serde_json::json!({ "m": s })).unwrap();
            assert_eq!(json_has_hostile(&json), hostile, "{s:?}");
        }
    }

    #[test]
    fn json_stays_the_same_value() {
        let v = serde_json::json!({"m": "x\u{202e}y\u{9b}z\u{1b}"});
        let text = json_printable(serde_json::to_string_pretty(&v).unwrap());
        assert!(
            !text.chars().any(|c| is_hostile(c) && c != '\n'),
            "{text:?}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    #[test]
    fn wraps_at_spaces_and_keeps_words_whole() {
        assert_eq!(wrap("aaa bbb ccc", Some(7), 2), "aaa bbb\n  ccc");
        assert_eq!(
            wrap("GPU_0000:00:06.0 x", Some(5), 0),
            "GPU_0000:00:06.0\nx"
        );
        assert_eq!(wrap("a b\n  c d", Some(80), 0), "a b\n  c d");
        assert_eq!(wrap("  X     Self", Some(80), 8), "  X     Self");
        assert_eq!(wrap("  NV#   a b", Some(9), 8), "  NV#   a\n        b");
        assert_eq!(wrap("long line here", None, 0), "long line here");
    }
}
