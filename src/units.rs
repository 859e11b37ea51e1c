//! Values as people write them, parsed by one rule each: sizes ("2MiB", "1GiB", "512k",
//! "4096"), durations ("500ms", "30s", "2m") and bounded numbers. [`Size`] and [`Span`] are the
//! types scenario params use: they are checked when the command line or a suite file is read,
//! and they serialise as the user wrote them, so a report's `params` read as given.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a byte size: the one rule for every size, shared with the shims (shim_proto::units):
/// binary units for `KiB`…`TiB` and the bare letters `K`, `M`, `G`, `T`; decimal for
/// `KB`…`TB`; plain bytes; fractions rounded to a whole byte.
pub use shim_proto::units::parse_size;

/// "1.50 GiB", "2.00 MiB", "512 B".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Parses a duration ("500ms", "30s", "2m", "1h 30m"): the one rule for every duration,
/// shared with the shims. Zero and negative durations are refused: every duration gpu-doctor
/// takes is a wait or a limit, and neither makes sense at zero.
pub use shim_proto::units::parse_duration;

/// "0.3 s", "42 s", "5.0 min", "3.2 h", "2.5 days".
pub fn format_span(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 2.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

/// Checks that `v` is a finite number within `[lo, hi]`; NaN and infinities are refused with
/// a plain message naming `what`.
pub fn check_range(what: &str, v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    if !v.is_finite() {
        return Err(format!(
            "{what}: {v} is not a number (give a value from {lo} to {hi})"
        ));
    }
    if v < lo || v > hi {
        return Err(format!(
            "{what}: {v} is out of range (give a value from {lo} to {hi})"
        ));
    }
    Ok(v)
}

/// Checks that `v` is a finite number above `lo` (not equal to it) and at most `hi`; NaN and
/// infinities are refused with a plain message naming `what`.
pub fn check_above(what: &str, v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    if !v.is_finite() {
        return Err(format!(
            "{what}: {v} is not a number (give a value above {lo} and at most {hi})"
        ));
    }
    if v <= lo || v > hi {
        return Err(format!(
            "{what}: {v} is out of range (give a value above {lo} and at most {hi})"
        ));
    }
    Ok(v)
}

/// A byte size as the user wrote it ("2MiB"), parsed once by [`parse_size`]. Suite files may
/// also give a plain number of bytes. Serialises as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    bytes: u64,
    text: String,
}

impl Size {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Size {
            bytes: parse_size(s)?,
            text: s.trim().to_string(),
        })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Bytes(u64),
            Text(String),
        }
        match Given::deserialize(d)? {
            Given::Bytes(bytes) => Ok(Size {
                bytes,
                text: bytes.to_string(),
            }),
            Given::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: bytes, or a number with a unit (2MiB, 1GiB; KB/MB/GB are powers of 1000).",
            "type": ["string", "integer"]
        })
    }
}

/// A duration as the user wrote it ("30s"), parsed once by [`parse_duration`] (never zero).
/// Serialises as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    duration: Duration,
    text: String,
}

impl Span {
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Span {
            duration: parse_duration(s)?,
            text: s.trim().to_string(),
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Span".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration longer than zero: 500ms, 30s, 2m, 1h.",
            "type": "string"
        })
    }
}

/// Large numbers with thousands separators, small ones with up to 3 decimals.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = format!("{}", v as i64);
        let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{v:.3}")
    }
}

/// The name of a Unix signal ("SIGSEGV"), "signal" for one without a common name.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_well() {
        assert_eq!(format_span(42.0), "42 s");
        assert_eq!(format_span(0.25), "0.2 s");
        assert_eq!(format_span(300.0), "5.0 min");
        assert_eq!(format_span(7200.0), "2.0 h");
        assert_eq!(format_span(3.0 * 86400.0), "3.0 days");
    }

    #[test]
    fn parses_binary_units_and_plain_bytes() {
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size(" 1g ").unwrap(), 1 << 30);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4096B").unwrap(), 4096);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000, "KB/MB/GB are SI");
        assert_eq!(parse_size("2 kib").unwrap(), 2048);
        assert_eq!(parse_size("2 MiB").unwrap(), 2 << 20);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_size("").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(
            parse_size("2 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("1.2.3M").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(2 << 20), "2.00 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
    }

    #[test]
    fn durations_are_positive_and_say_how_to_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        for bad in ["0", "0s", "-1s", "soon", ""] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("try 500ms"), "{bad}: {e}");
        }
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
    }

    #[test]
    fn ranges_refuse_nan_and_infinities() {
        assert_eq!(check_range("--f", 0.5, 0.0, 1.0), Ok(0.5));
        for bad in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1.5, -0.1] {
            let e = check_range("--f", bad, 0.0, 1.0).unwrap_err();
            assert!(e.starts_with("--f: "), "{e}");
        }
        assert_eq!(check_above("--f", 1.0, 0.0, 1.0), Ok(1.0));
        for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0, 1.5] {
            let e = check_above("--f", bad, 0.0, 1.0).unwrap_err();
            assert!(e.contains("above 0 and at most 1"), "{e}");
        }
    }

    #[test]
    fn size_and_span_keep_the_text_and_parse_once() {
        let s: Size = "2MiB".parse().unwrap();
        assert_eq!(s.bytes(), 2 << 20);
        assert_eq!(serde_json::to_value(&s).unwrap(), "2MiB");
        let s: Size = serde_json::from_value(serde_json::json!(4096)).unwrap();
        assert_eq!((s.bytes(), s.to_string()), (4096, "4096".to_string()));
        assert!(serde_json::from_value::<Size>(serde_json::json!("1.5.5GiB")).is_err());
        let d: Span = serde_json::from_value(serde_json::json!("30s")).unwrap();
        assert_eq!(d.duration(), Duration::from_secs(30));
        assert_eq!(serde_json::to_value(&d).unwrap(), "30s");
        assert!(serde_json::from_value::<Span>(serde_json::json!("-1s")).is_err());
    }
}
