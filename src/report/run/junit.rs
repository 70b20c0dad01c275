//! JUnit XML: each service a test case; a failure or an RTO breach is a `<failure>`, so CI
//! systems show drills natively.

use std::fmt::Write;

use super::*;

/// XML text/attribute escaping; characters XML 1.0 cannot carry at all (most C0 controls,
/// e.g. ANSI colour escapes in command output) become U+FFFD.
fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Each service is a test case; a failure, a block or an RTO breach is a `<failure>` carrying
/// the last output lines, so CI systems show drills natively.
pub fn junit(st: &RunState) -> String {
    let h = human(st);
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("run");
    let live_or_over = st.state.is_terminal();
    struct Case {
        name: String,
        time: f64,
        failure: Option<(String, String, String)>,
        skipped: Option<String>,
        out: String,
    }
    let cases: Vec<Case> = st
        .services
        .iter()
        .map(|s| {
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
            Case {
                name: s.name.clone(),
                time,
                failure,
                skipped,
                out,
            }
        })
        .collect();
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    let total_time = st.elapsed_s().unwrap_or(0.0).max(0.0);
    let suite = format!("meeseeks {mode} {}", st.run_id);
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        r#"<testsuites name="meeseeks" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="{total_time:.3}">"#,
        cases.len()
    );
    let _ = writeln!(
        o,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="{total_time:.3}"{}>"#,
        xml(&suite),
        cases.len(),
        st.declared_at
            .map(|t| format!(r#" timestamp="{}""#, t.strftime("%Y-%m-%dT%H:%M:%S")))
            .unwrap_or_default()
    );
    o.push_str("    <properties>\n");
    for (k, v) in [
        ("run_id", st.run_id.clone()),
        ("mode", mode.to_string()),
        ("state", st.state.as_str().to_string()),
        ("outcome", st.outcome.clone().unwrap_or_default()),
    ] {
        let _ = writeln!(
            o,
            r#"      <property name="{}" value="{}"/>"#,
            xml(k),
            xml(&v)
        );
    }
    for a in &st.approvals {
        let _ = writeln!(
            o,
            r#"      <property name="approval" value="{}"/>"#,
            xml(&format!(
                "{}/{} by {} at {}",
                a.service,
                a.step,
                a.by,
                fmt_ts(a.at)
            ))
        );
    }
    o.push_str("    </properties>\n");
    for c in &cases {
        let _ = write!(
            o,
            r#"    <testcase name="{}" classname="meeseeks.{mode}" time="{:.3}""#,
            xml(&c.name),
            c.time.max(0.0)
        );
        if c.failure.is_none() && c.skipped.is_none() && c.out.is_empty() {
            o.push_str("/>\n");
            continue;
        }
        o.push_str(">\n");
        if let Some((kind, msg, body)) = &c.failure {
            let _ = writeln!(
                o,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                xml(kind),
                xml(msg),
                xml(body)
            );
        }
        if let Some(msg) = &c.skipped {
            let _ = writeln!(o, r#"      <skipped message="{}"/>"#, xml(msg));
        }
        if !c.out.is_empty() {
            let _ = writeln!(o, "      <system-out>{}</system-out>", xml(&c.out));
        }
        o.push_str("    </testcase>\n");
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}
