//! Sizes and durations as people write them: the one rule for each, used by gpu-doctor's
//! options and suite files and by the NVML shim's fault values.

use std::time::Duration;

/// A byte size: binary units for `KiB`…`TiB` and the bare letters `K`, `M`, `G`, `T` (as
/// nvidia-smi and PyTorch mean them); decimal (SI) for `KB`…`TB`; plain bytes ("4096",
/// "4096B"). Fractions are rounded to a whole byte ("1.5GiB").
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size (try 2MiB, 1GiB, 4096)".into());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (try 70GiB, 512MiB, 4096)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "ki" | "kib" => 1024.0,
        "m" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gi" | "gib" => 1024.0f64.powi(3),
        "t" | "ti" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "'{s}': unknown unit '{other}' (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)"
            ));
        }
    };
    let bytes = (value * mult).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("'{s}' is too large"));
    }
    Ok(bytes as u64)
}

/// A duration: one or more terms of a number (fractions allowed) and a unit — `ms`, `s`, `m`
/// (`min`), `h` — such as `30s`, `1.5s`, `500ms`, `2m`, `1h 30m`. Every duration gpu-doctor
/// takes is a wait, a limit or a delay, so zero and negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const TRY: &str = "try 500ms, 30s, 2m";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("'{s}': a duration cannot be negative ({TRY})"));
    }
    if t.is_empty() {
        return Err(format!("empty duration ({TRY})"));
    }
    let mut secs = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a duration ({TRY})"))?;
        let tail = tail.trim_start();
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        secs += value
            * match unit {
                "ms" => 1e-3,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "" => {
                    return Err(format!(
                        "'{s}': a duration needs a unit: ms, s, m, h ({TRY})"
                    ));
                }
                other => {
                    return Err(format!(
                        "'{s}': unknown unit '{other}' (use ms, s, m, h; {TRY})"
                    ));
                }
            };
        rest = after.trim_start();
    }
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("'{s}' is too long"));
    }
    if secs <= 0.0 {
        return Err(format!(
            "'{s}': a duration must be longer than zero ({TRY})"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The shortest of `1500ms`, `30s`, `2m` that says `d` exactly (whole milliseconds).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `70GiB`, `512MiB`, `4096` (exact binary multiples only, else bytes).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes > 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("70GiB"), Ok(70 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert_eq!(format_size(70 << 30), "70GiB");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 2 min "), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err(), "a unit is required");
        assert!(parse_duration("3 weeks").is_err());
        for bad in ["0s", "0", "-1s", "", "soon", "1.2.3s"] {
            assert!(parse_duration(bad).unwrap_err().contains("500ms"), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
