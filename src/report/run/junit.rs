//! JUnit XML (nextest's quick-junit writes it): each service a test case; a failure, a block
//! or an RTO breach is a `<failure>`, so CI systems show drills natively.

use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::*;

/// Each service is a test case; a failure, a block or an RTO breach is a `<failure>` carrying
/// the last output lines, so CI systems show drills natively.
pub fn junit(st: &RunState) -> String {
    let h = human(st);
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("run");
    let live_or_over = st.state.is_terminal();
    let cases = st.services.iter().map(|s| {
        let time = actual_span(st, s).map(|(a, b)| b - a).unwrap_or(0.0);
        let mut body = String::new();
        for step in s.steps.iter().filter(|x| x.status == StepStatus::Failed) {
            let _ = writeln!(
                body,
                "step \"{}\" failed after {} attempt(s): {}",
                step.name,
                step.attempts,
                step.last_error.as_deref().unwrap_or("?")
            );
            for l in last_lines(&step.last_output, OUTPUT_LINES) {
                let _ = writeln!(body, "  {l}");
            }
        }
        let failure = match s.status {
            ServiceStatus::Failed => Some((
                "failed".to_string(),
                s.error.clone().unwrap_or_else(|| "service failed".into()),
                body.clone(),
            )),
            ServiceStatus::Blocked => Some((
                "blocked".to_string(),
                format!(
                    "blocked by {}",
                    s.blocked_by.as_deref().unwrap_or("a failed dependency")
                ),
                body.clone(),
            )),
            _ if s.rto_met() == Some(false) => Some((
                "rto_breached".to_string(),
                match (s.breached_by_s(), s.rto_s) {
                    (Some(by), Some(rto)) => {
                        format!("RTO {} breached by {}", h.secs(rto), h.secs(by))
                    }
                    (_, Some(rto)) => format!("RTO {} breached", h.secs(rto)),
                    _ => "RTO breached".to_string(),
                },
                body.clone(),
            )),
            _ if s.rpo.is_some_and(|r| r.met() == Some(false)) => s.rpo.map(|r| {
                (
                    "rpo_exceeded".to_string(),
                    format!(
                        "data-loss window {}",
                        crate::events::rpo_verdict(r.window_s, r.rpo_s)
                    ),
                    body.clone(),
                )
            }),
            ServiceStatus::Running | ServiceStatus::Verifying | ServiceStatus::Waiting
                if live_or_over =>
            {
                Some((
                    "interrupted".to_string(),
                    format!(
                        "run {} while the service was {}",
                        st.state.as_str(),
                        s.status.as_str()
                    ),
                    body.clone(),
                ))
            }
            _ => None,
        };
        let skipped = match s.status {
            ServiceStatus::Skipped => Some(
                s.skip_reason
                    .clone()
                    .unwrap_or_else(|| "skipped".to_string()),
            ),
            ServiceStatus::Pending => Some("not started".to_string()),
            ServiceStatus::Running | ServiceStatus::Verifying | ServiceStatus::Waiting
                if failure.is_none() =>
            {
                Some(format!("still {}", s.status.as_str()))
            }
            _ => None,
        };
        let mut out = String::new();
        for step in &s.steps {
            let _ = writeln!(
                out,
                "{} {} (attempts {}{})",
                step.status.as_str(),
                step.name,
                step.attempts,
                step.duration_s
                    .map(|d| format!(", {}", h.secs(d)))
                    .unwrap_or_default()
            );
        }
        if let Some(r) = s.recovered_s {
            let _ = writeln!(out, "recovered at {}", h.secs(r));
        }
        if let Some(r) = &s.rpo {
            let _ = writeln!(
                out,
                "newest write {}; data-loss window {}",
                r.newest,
                crate::events::rpo_verdict(r.window_s, r.rpo_s)
            );
        }
        // A failure outranks "not started": a service whose RTO passed while it waited is a
        // failure.
        let status = match (failure, skipped) {
            (Some((kind, msg, body)), _) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_type(kind).set_message(msg).set_description(body);
                s
            }
            (None, Some(msg)) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(msg);
                s
            }
            (None, None) => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(s.name.clone(), status);
        case.set_classname(format!("meeseeks.{mode}"))
            .set_time(Duration::from_secs_f64(time.max(0.0)));
        if !out.is_empty() {
            case.set_system_out(out);
        }
        case
    });
    let total_time = st.elapsed_s().unwrap_or(0.0).max(0.0);
    let mut suite = TestSuite::new(format!("meeseeks {mode} {}", st.run_id));
    suite.set_time(Duration::from_secs_f64(total_time));
    if let Some(t) = st.declared_at.and_then(chrono_ts) {
        suite.set_timestamp(t);
    }
    for (k, v) in [
        ("run_id", st.run_id.clone()),
        ("mode", mode.to_string()),
        ("state", st.state.as_str().to_string()),
        ("outcome", st.outcome.clone().unwrap_or_default()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    for a in &st.approvals {
        suite.add_property(Property::new(
            "approval",
            format!("{}/{} by {} at {}", a.service, a.step, a.by, fmt_ts(a.at)),
        ));
    }
    suite.add_test_cases(cases);
    let mut report = Report::new("meeseeks");
    report.set_time(Duration::from_secs_f64(total_time));
    report.add_test_suite(suite);
    // Writing to a String cannot fail but for a bug in the writer; say so rather than panic.
    let mut xml = report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit report could not be written: {e} -->"));
    xml.push('\n');
    xml
}

/// A journal timestamp as quick-junit takes it (UTC).
fn chrono_ts(t: jiff::Timestamp) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::from_timestamp_millis(t.as_millisecond()).map(|t| t.fixed_offset())
}
