//! Reports of a run (`meeseeks report`, `meeseeks status`), rendered from a `RunState`:
//! text, markdown (with a Mermaid Gantt), self-contained html (inline SVG Gantt, no external
//! assets), json and junit (each service a test case; failure or RTO breach = `<failure>`).
//!
//! Everything here reads the journal's contents, which the writer masked already; nothing
//! here has access to secret values.

use std::fmt::Write;

use crate::report::fmt::Human;
use crate::runstate::{CleanupStatus, RunState, ServiceState, ServiceStatus, StepStatus};

mod html;
mod json;
mod junit;
mod markdown;
mod text;

pub use html::{html, svg_gantt};
pub use json::{json, report_json, run_json, runs_json, status_json};
pub use junit::junit;
pub use markdown::{markdown, mermaid_gantt, runs_markdown};
pub use text::{runs_text, status_text, summary, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
    Junit,
    /// OpenTelemetry spans (OTLP/JSON): one trace per run, a span per service and step.
    Otlp,
}

impl ReportFormat {
    pub const ALL: &'static [ReportFormat] = &[
        ReportFormat::Text,
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Html,
        ReportFormat::Junit,
        ReportFormat::Otlp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Text => "text",
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Junit => "junit",
            ReportFormat::Otlp => "otlp",
        }
    }
}

impl std::str::FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(ReportFormat::Text),
            "json" => Ok(ReportFormat::Json),
            "markdown" | "md" => Ok(ReportFormat::Markdown),
            "html" => Ok(ReportFormat::Html),
            "junit" | "xml" => Ok(ReportFormat::Junit),
            "otlp" => Ok(ReportFormat::Otlp),
            other => Err(format!(
                "unknown format `{other}` (expected text, json, markdown, html or junit)"
            )),
        }
    }
}

pub fn render(st: &RunState, format: ReportFormat) -> String {
    match format {
        ReportFormat::Text => text(st),
        ReportFormat::Json => json(st),
        ReportFormat::Markdown => markdown(st),
        ReportFormat::Html => html(st),
        ReportFormat::Junit => junit(st),
        ReportFormat::Otlp => json::pretty(&super::otlp::render(st)),
    }
}

// Shared formatting

/// Durations of one run, for people (the toolkit's one formatter): rounded to the precision
/// that fits how long the run has lasted.
pub(super) fn human(st: &RunState) -> Human {
    Human::for_secs(st.elapsed_s().unwrap_or(0.0))
}

/// The plan's times (planned ready), rounded to the plan's own scale: a plan is measured in
/// minutes even when the drill took seconds (no `17m0.2s`).
pub(super) fn planned_human(st: &RunState) -> Human {
    let span = st
        .services
        .iter()
        .filter_map(|s| s.planned.as_ref().and_then(|p| p.ready_s))
        .fold(0.0, f64::max);
    Human::for_secs(span)
}

/// One amount at the precision its own size calls for (spare time, lateness): hours to spare
/// are not worth milliseconds.
fn amount(secs: f64) -> String {
    Human::for_secs(secs.abs()).secs(secs)
}

pub(super) fn fmt_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// What happened to the RTO, in words.
pub(super) fn rto_result(s: &ServiceState) -> String {
    match (s.rto_met(), s.rto_s, s.recovered_s) {
        (Some(true), Some(rto), Some(r)) => format!("met ({} spare)", amount(rto - r)),
        (Some(false), _, _) => match (s.breached_by_s(), s.breached_at_s) {
            (Some(by), _) => format!("BREACHED by {}", amount(by)),
            (None, Some(_)) => "BREACHED (not recovered)".to_string(),
            (None, None) => format!("not met ({})", s.status.as_str()),
        },
        (None, None, _) => "-".to_string(),
        _ => match s.status {
            ServiceStatus::Skipped => "skipped".to_string(),
            _ => "pending".to_string(),
        },
    }
}

pub(super) fn headline(st: &RunState) -> String {
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let mut s = format!("run {} ({mode}): {}", st.run_id, st.state.as_str());
    if let Some(h) = &st.holder {
        let _ = write!(s, " (pid {} on {})", h.pid, h.host);
    }
    s
}

pub(super) fn summary_line(st: &RunState) -> String {
    let count = |x: ServiceStatus| st.services.iter().filter(|s| s.status == x).count();
    let breached = st
        .services
        .iter()
        .filter(|s| s.rto_met() == Some(false))
        .count();
    let mut parts = vec![format!("{} services", st.services.len())];
    for (n, label) in [
        (count(ServiceStatus::Recovered), "recovered"),
        (count(ServiceStatus::Failed), "failed"),
        (count(ServiceStatus::Blocked), "blocked"),
        (count(ServiceStatus::Skipped), "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    let mut s = parts.join(", ");
    if breached > 0 {
        let _ = write!(s, "; {breached} RTO not met");
    }
    let rpo_over = st
        .services
        .iter()
        .filter(|x| x.rpo.is_some_and(|r| r.met() == Some(false)))
        .count();
    if rpo_over > 0 {
        let _ = write!(s, "; {rpo_over} RPO exceeded");
    }
    s
}

pub(super) fn clock_line(st: &RunState) -> String {
    let mut s = String::new();
    if let Some(d) = st.declared_at {
        let _ = write!(s, "RTO clock from {}", fmt_ts(d));
    }
    if let Some(e) = st.elapsed_s() {
        let _ = write!(s, ", elapsed {}", human(st).secs(e));
    }
    s
}

/// Aligned columns; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 < cells.len() {
                let pad = w[i] - c.chars().count();
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            } else {
                l.push_str(c);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub(super) fn service_rows(st: &RunState) -> Vec<Vec<String>> {
    let h = human(st);
    let ph = planned_human(st);
    st.services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.status.as_str().to_string(),
                h.opt_secs(s.started_s),
                h.opt_secs(s.recovered_s),
                ph.opt_secs(s.planned.as_ref().and_then(|p| p.ready_s)),
                ph.opt_secs(s.rto_s),
                rto_result(s),
                s.attempts().to_string(),
            ]
        })
        .collect()
}

pub(super) const SERVICE_HEADER: [&str; 8] = [
    "SERVICE",
    "STATUS",
    "STARTED",
    "RECOVERED",
    "PLANNED",
    "RTO",
    "RESULT",
    "ATTEMPTS",
];

pub(super) const RPO_HEADER: [&str; 6] = [
    "SERVICE",
    "NEWEST WRITE",
    "UNTIL",
    "WINDOW",
    "RPO",
    "RESULT",
];

/// The data-loss rows (`rpo.measured` / `rpo.probe_failed`), one per service that has one.
pub(super) fn rpo_rows(st: &RunState) -> Vec<Vec<String>> {
    let ms = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string();
    let h = human(st);
    st.services
        .iter()
        .filter_map(|s| {
            if let Some(r) = &s.rpo {
                let result = match r.met() {
                    _ if r.window_s < 0.0 => "none lost".to_string(),
                    Some(true) => "met".to_string(),
                    Some(false) => format!(
                        "EXCEEDED by {}",
                        crate::events::fmt_rpo_window(r.window_s - r.rpo_s.unwrap_or(0.0))
                    ),
                    None => "no RPO declared".to_string(),
                };
                Some(vec![
                    s.name.clone(),
                    ms(r.newest),
                    ms(r.until),
                    crate::events::fmt_rpo_window(r.window_s.max(0.0)),
                    h.opt_secs(r.rpo_s),
                    result,
                ])
            } else {
                s.rpo_error.as_ref().map(|e| {
                    let dash = || "-".to_string();
                    vec![
                        s.name.clone(),
                        dash(),
                        dash(),
                        dash(),
                        dash(),
                        format!("not measured: {e}"),
                    ]
                })
            }
        })
        .collect()
}

pub(super) const RPO_TITLE: &str = "Data loss (measured RPO): newest write on the recovered copy, \
                                    until the disaster (a drill: until it was read)";

/// Failed steps and services: (service, title, output).
pub(super) fn failures(st: &RunState) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in &st.services {
        for step in &s.steps {
            if step.status == StepStatus::Failed {
                let kind = if step.optional {
                    "optional step"
                } else {
                    "step"
                };
                out.push((
                    s.name.clone(),
                    format!(
                        "{kind} \"{}\" failed after {} attempt{}: {}",
                        step.name,
                        step.attempts,
                        if step.attempts == 1 { "" } else { "s" },
                        step.last_error.as_deref().unwrap_or("?")
                    ),
                    step.last_output.clone(),
                ));
            }
        }
        match s.status {
            ServiceStatus::Failed => {
                let e = s.error.as_deref().unwrap_or("failed");
                if !out.iter().any(|(n, t, _)| n == &s.name && t.contains(e)) {
                    out.push((
                        s.name.clone(),
                        format!("service failed: {e}"),
                        String::new(),
                    ));
                }
            }
            ServiceStatus::Blocked => out.push((
                s.name.clone(),
                format!(
                    "blocked by {}",
                    s.blocked_by.as_deref().unwrap_or("a failed dependency")
                ),
                String::new(),
            )),
            _ => {}
        }
    }
    out
}

/// Command output may carry terminal escapes (colours, cursor moves); a report printed to a
/// terminal must not replay them.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// The last `n` lines of captured output.
pub(crate) fn last_lines(output: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// When a service ran, actually: from its start to its recovery (or end, or now).
pub(super) fn actual_span(st: &RunState, s: &ServiceState) -> Option<(f64, f64)> {
    let start = s.started_s?;
    let end = s
        .recovered_s
        .or(s.ended_s)
        .or_else(|| st.elapsed_s())
        .unwrap_or(start);
    Some((start, end.max(start)))
}

pub(super) const OUTPUT_LINES: usize = 20;
