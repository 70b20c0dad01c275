//! The one human duration formatter of the reports: `1h2m3s`, `45s`, `7.5s`, `-4m`, `0s`,
//! rounded to a precision that fits the scale of the report (a plan measured in minutes shows
//! whole seconds, not `22m0.2s`). Machine formats (JSON) keep full precision and do not use it.

use std::fmt::Write as _;

/// The finest unit a human report shows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision(u64);

impl Precision {
    /// Milliseconds (nothing rounded).
    pub const MS: Precision = Precision(1);
    pub const TENTH: Precision = Precision(100);
    pub const SECOND: Precision = Precision(1000);

    /// The precision for times spanning `span_ms`: whole seconds from a minute on, tenths
    /// from ten seconds on, milliseconds below.
    pub fn for_span(span_ms: u64) -> Precision {
        if span_ms >= 60_000 {
            Precision::SECOND
        } else if span_ms >= 10_000 {
            Precision::TENTH
        } else {
            Precision::MS
        }
    }

    /// `ms` rounded to this precision (halves away from zero).
    pub fn round(self, ms: i64) -> i64 {
        let u = self.0 as i64;
        let r = (ms.unsigned_abs() as i64 + u / 2) / u * u;
        if ms < 0 { -r } else { r }
    }
}

/// A duration in milliseconds for a person: `1h2m3s`, `45s`, `7.5s`, `-4m`, `0s`, rounded to
/// `p`.
pub fn fmt_ms(ms: i64, p: Precision) -> String {
    let ms = p.round(ms);
    let sign = if ms < 0 { "-" } else { "" };
    let mut rest = ms.unsigned_abs();
    let h = rest / 3_600_000;
    rest %= 3_600_000;
    let m = rest / 60_000;
    rest %= 60_000;
    let s = rest / 1000;
    let frac = rest % 1000;
    let mut out = String::from(sign);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if frac > 0 {
        let f = format!("{frac:03}");
        let _ = write!(out, "{s}.{}s", f.trim_end_matches('0'));
    } else if s > 0 || (h == 0 && m == 0) {
        let _ = write!(out, "{s}s");
    }
    if out == "-0s" {
        out.remove(0);
    }
    out
}

/// [`fmt_ms`] of seconds (rounded to the millisecond first).
pub fn fmt_secs(secs: f64, p: Precision) -> String {
    fmt_ms((secs * 1000.0).round() as i64, p)
}

/// A time on the RTO clock, as a wall clock reads: `MM:SS`, `H:MM:SS` (whole seconds; the
/// progress display and the end-of-run summary, where columns must line up).
pub fn fmt_clock(secs: f64) -> String {
    let t = secs.max(0.0).round() as u64;
    if t >= 3600 {
        format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
    } else {
        format!("{:02}:{:02}", t / 60, t % 60)
    }
}

/// One duration on its own (a countdown, a live page's cell), rounded to the precision that
/// fits its own size: `1h2m3s`, `4m5s`, `12.3s`, `1.25s`. The live page's script mirrors it.
pub fn fmt_secs_fit(secs: f64) -> String {
    fmt_secs(secs, Human::for_secs(secs.abs()).0)
}

/// The durations of one report (a plan, a run), for people: every one rounded to the precision
/// that fits the report's span, so that a table reads `22m`, not `22m0.2s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Precision);

impl Human {
    /// For a report spanning `span_ms` ([`Precision::for_span`]).
    pub fn for_span(span_ms: u64) -> Human {
        Human(Precision::for_span(span_ms))
    }

    /// For a report spanning `secs` seconds.
    pub fn for_secs(secs: f64) -> Human {
        Human::for_span((secs.max(0.0) * 1000.0).round() as u64)
    }

    pub fn ms(self, ms: u64) -> String {
        fmt_ms(ms as i64, self.0)
    }

    pub fn signed(self, ms: i64) -> String {
        fmt_ms(ms, self.0)
    }

    pub fn secs(self, secs: f64) -> String {
        fmt_secs(secs, self.0)
    }

    /// [`Human::secs`], or `-` for nothing.
    pub fn opt_secs(self, secs: Option<f64>) -> String {
        secs.map(|s| self.secs(s))
            .unwrap_or_else(|| "-".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_compactly() {
        let p = Precision::MS;
        assert_eq!(fmt_ms(0, p), "0s");
        assert_eq!(fmt_ms(45_000, p), "45s");
        assert_eq!(fmt_ms(7_500, p), "7.5s");
        assert_eq!(fmt_ms(750_000, p), "12m30s");
        assert_eq!(fmt_ms(3_600_000, p), "1h");
        assert_eq!(fmt_ms(3_723_000, p), "1h2m3s");
        assert_eq!(fmt_ms(-240_000, p), "-4m");
        assert_eq!(fmt_ms(1_320_200, p), "22m0.2s");
    }

    #[test]
    fn precision_fits_the_scale() {
        assert_eq!(Precision::for_span(1_800_000), Precision::SECOND);
        assert_eq!(Precision::for_span(30_000), Precision::TENTH);
        assert_eq!(Precision::for_span(5_000), Precision::MS);
        let s = Precision::SECOND;
        assert_eq!(fmt_ms(1_320_200, s), "22m");
        assert_eq!(fmt_ms(1_320_500, s), "22m1s");
        assert_eq!(fmt_ms(-1_320_500, s), "-22m1s");
        assert_eq!(fmt_ms(-400, s), "0s");
        assert_eq!(fmt_ms(59_960, Precision::TENTH), "1m");
        assert_eq!(fmt_ms(7_549, Precision::TENTH), "7.5s");
        assert_eq!(fmt_secs(12.3456, Precision::MS), "12.346s");
        assert_eq!(fmt_secs_fit(245.3), "4m5s");
        assert_eq!(fmt_clock(65.4), "01:05");
        assert_eq!(fmt_clock(3723.0), "1:02:03");
        assert_eq!(fmt_secs_fit(-12.34), "-12.3s");
        assert_eq!(fmt_secs_fit(1.25), "1.25s");
        assert_eq!(Human::for_secs(400.0).opt_secs(Some(59.96)), "1m");
        assert_eq!(Human::for_secs(400.0).opt_secs(None), "-");
    }
}
