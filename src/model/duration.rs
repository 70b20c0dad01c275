//! Durations as users write them (`"90s"`, `"5m"`, `"1h30m"`, `"250ms"`): parsed in this one
//! place, bounded, and formatted back the same way.
//!
//! The bound: a duration above [`MAX`] (10 years) is an error, wherever it is written. Nothing a
//! DR plan measures is longer (a backup retention of 7 years is the longest anyone writes), and
//! without a bound `timeout = "18446744073709551615s"` would pass validation and overflow the
//! run's clock arithmetic; 10 years keeps every sum the planner makes (100 000 services × the
//! bound, in milliseconds) far inside `u64`.

use std::time::Duration;

/// The longest duration accepted anywhere (humantime's `10y`, 10 × 365.25 days).
pub const MAX: Duration = Duration::from_secs(315_576_000);

/// [`MAX`] as users write it.
pub const MAX_TEXT: &str = "10y";

/// Why a duration string was refused. Its `Display` is the message shown after the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (humantime's explanation).
    #[error("{0}")]
    Invalid(String),
    /// A duration, but longer than [`MAX`].
    #[error("longer than the maximum of {MAX_TEXT}")]
    TooLong,
}

/// Parses a duration (surrounding whitespace ignored), at most [`MAX`]. Usable as a clap
/// `value_parser`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let d = match simple(s) {
        Some(d) => d,
        None => humantime::parse_duration(s).map_err(|e| DurationError::Invalid(e.to_string()))?,
    };
    if d > MAX {
        return Err(DurationError::TooLong);
    }
    Ok(d)
}

/// `humantime::parse_duration` for the forms nearly every duration is written in (`90s`, `5m`,
/// `4h`, `7d`), at a fraction of its cost (a 100 000-service graph has 100 000 RTOs); anything
/// else is left to humantime.
fn simple(s: &str) -> Option<Duration> {
    let (digits, unit) = s.split_at_checked(s.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * unit))
}

/// Formats a duration the way users write them in TOML (`1h30m`, `90s`), to the millisecond.
pub fn fmt_duration(d: Duration) -> String {
    let d = Duration::from_secs(d.as_secs()) + Duration::from_millis(d.subsec_millis() as u64);
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_durations_are_what_humantime_says() {
        let mut cases: Vec<String> = [
            "0s",
            "05m",
            "1d",
            "999999999h",
            "1000000000s",
            "",
            "s",
            "5",
            "5ms",
            "5 m",
            "1h30m",
            "+5m",
            "-5m",
            "5M",
            "٣s",
            "5é",
            "5w",
            "5y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [0u64, 1, 7, 59, 60, 90, 3599, 86_400, 123_456_789] {
            for u in ["s", "m", "h", "d", "x"] {
                cases.push(format!("{n}{u}"));
            }
        }
        let mut taken = 0;
        for c in &cases {
            if let Some(d) = simple(c) {
                taken += 1;
                assert_eq!(Some(d), humantime::parse_duration(c).ok(), "{c:?}");
            }
        }
        assert!(taken > 30, "{taken}");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10y"), Ok(MAX));
        assert_eq!(parse(MAX_TEXT), Ok(MAX));
        for long in ["18446744073709551615s", "99999999999h", "10y1s", "3653d"] {
            assert_eq!(parse(long), Err(DurationError::TooLong), "{long}");
        }
        assert!(matches!(parse("soon"), Err(DurationError::Invalid(_))));
        // Past u64 seconds: humantime's own overflow error, still not a panic.
        assert!(parse("99999999999999999999999s").is_err());
    }

    #[test]
    fn formats_as_written() {
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_nanos(1_500_000_001)), "1s500ms");
        assert_eq!(parse(&fmt_duration(MAX)), Ok(MAX));
    }
}
