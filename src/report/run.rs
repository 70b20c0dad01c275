//! Reports of a run (`meeseeks report`, `meeseeks status`), rendered from a `RunState`:
//! text, markdown (with a Mermaid Gantt), self-contained html (inline SVG Gantt, no external
//! assets), json and junit (each service a test case; failure or RTO breach = `<failure>`).
//!
//! Everything here reads the journal's contents, which the writer masked already; nothing
//! here has access to secret values.

use std::fmt::Write;

use crate::journal::state::{RunState, ServiceState, ServiceStatus, StepStatus};
use crate::journal::store::RunSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
    Junit,
}

impl ReportFormat {
    pub const ALL: &'static [ReportFormat] = &[
        ReportFormat::Text,
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Html,
        ReportFormat::Junit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Text => "text",
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Junit => "junit",
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
    }
}

// ---------------------------------------------------------------------------------------------
// Shared formatting

/// `12.3s`, `4m05s`, `1h02m03s`.
pub fn fmt_dur(secs: f64) -> String {
    let neg = secs < 0.0;
    let s = secs.abs();
    let body = if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let total = s.round() as u64;
        let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            format!("{h}h{m:02}m{sec:02}s")
        } else {
            format!("{m}m{sec:02}s")
        }
    };
    if neg { format!("-{body}") } else { body }
}

fn fmt_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn opt_dur(x: Option<f64>) -> String {
    x.map(fmt_dur).unwrap_or_else(|| "-".to_string())
}

/// What happened to the RTO, in words.
fn rto_result(s: &ServiceState) -> String {
    match (s.rto_met(), s.rto_s, s.recovered_s) {
        (Some(true), Some(rto), Some(r)) => format!("met ({} spare)", fmt_dur(rto - r)),
        (Some(false), _, _) => match (s.breached_by_s(), s.breached_at_s) {
            (Some(by), _) => format!("BREACHED by {}", fmt_dur(by)),
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

fn headline(st: &RunState) -> String {
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let mut s = format!("run {} ({mode}): {}", st.run_id, st.state.as_str());
    if let Some(h) = &st.holder {
        let _ = write!(s, " (pid {} on {})", h.pid, h.host);
    }
    s
}

fn summary_line(st: &RunState) -> String {
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
    s
}

fn clock_line(st: &RunState) -> String {
    let mut s = String::new();
    if let Some(d) = st.declared_at {
        let _ = write!(s, "RTO clock from {}", fmt_ts(d));
    }
    if let Some(e) = st.elapsed_s() {
        let _ = write!(s, ", elapsed {}", fmt_dur(e));
    }
    s
}

/// Aligned columns; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

fn service_rows(st: &RunState) -> Vec<Vec<String>> {
    st.services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.status.as_str().to_string(),
                opt_dur(s.started_s),
                opt_dur(s.recovered_s),
                opt_dur(s.planned.as_ref().and_then(|p| p.ready_s)),
                opt_dur(s.rto_s),
                rto_result(s),
                s.attempts().to_string(),
            ]
        })
        .collect()
}

const SERVICE_HEADER: [&str; 8] = [
    "SERVICE",
    "STATUS",
    "STARTED",
    "RECOVERED",
    "PLANNED",
    "RTO",
    "RESULT",
    "ATTEMPTS",
];

/// Failed steps and services: (service, title, output).
fn failures(st: &RunState) -> Vec<(String, String, String)> {
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

const OUTPUT_LINES: usize = 20;

// ---------------------------------------------------------------------------------------------
// Text

pub fn text(st: &RunState) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", headline(st));
    let _ = writeln!(o, "{}", clock_line(st));
    let _ = writeln!(o, "{}\n", summary_line(st));
    o.push_str(&table(&SERVICE_HEADER, &service_rows(st)));
    text_tail(st, &mut o);
    o
}

fn text_tail(st: &RunState, o: &mut String) {
    let f = failures(st);
    if !f.is_empty() {
        o.push_str("\nFailures\n");
        for (svc, title, output) in f {
            let _ = writeln!(o, "  {svc}: {}", printable(&title));
            for l in last_lines(&output, OUTPUT_LINES) {
                let _ = writeln!(o, "    | {}", printable(l));
            }
        }
    }
    if !st.approvals.is_empty() {
        o.push_str("\nApprovals\n");
        for a in &st.approvals {
            let _ = writeln!(
                o,
                "  {} / {}: approved by {} at {}",
                a.service,
                a.step,
                a.by,
                fmt_ts(a.at)
            );
        }
    }
    if !st.interruptions.is_empty() || !st.resumes.is_empty() {
        o.push_str("\nInterruptions\n");
        for i in &st.interruptions {
            let _ = writeln!(o, "  {} interrupted: {}", fmt_ts(i.at), i.reason);
        }
        for r in &st.resumes {
            let _ = write!(o, "  {} resumed", fmt_ts(r.at));
            if !r.changes.is_empty() {
                let _ = write!(o, " ({})", r.changes.join(", "));
            }
            o.push('\n');
        }
    }
    if !st.warnings.is_empty() {
        o.push_str("\nWarnings\n");
        for w in &st.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
}

/// `meeseeks status`: the report table plus the steps of every service still in progress.
pub fn status_text(st: &RunState) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", headline(st));
    let _ = writeln!(o, "{}", clock_line(st));
    let _ = writeln!(o, "{}\n", summary_line(st));
    o.push_str(&table(&SERVICE_HEADER, &service_rows(st)));
    let active: Vec<&ServiceState> = st
        .services
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                ServiceStatus::Running
                    | ServiceStatus::Verifying
                    | ServiceStatus::Waiting
                    | ServiceStatus::Failed
            )
        })
        .collect();
    for s in active {
        let _ = writeln!(o, "\n{} ({})", s.name, s.status.as_str());
        for step in &s.steps {
            let mut l = format!("  {:<9} {}", step.status.as_str(), step.name);
            if step.attempts > 1 {
                let _ = write!(l, " ({} attempts)", step.attempts);
            }
            if let Some(d) = step.duration_s {
                let _ = write!(l, " {}", fmt_dur(d));
            }
            if step.status == StepStatus::Waiting {
                let _ = write!(
                    l,
                    ": {} — `meeseeks approve {} {}`",
                    step.prompt.as_deref().unwrap_or(""),
                    st.run_id,
                    s.name
                );
            }
            let _ = writeln!(o, "{l}");
        }
        for c in &s.checks {
            let _ = writeln!(
                o,
                "  check {} {}",
                c.name,
                if c.passed {
                    "passed"
                } else {
                    "not yet passing"
                }
            );
        }
    }
    text_tail(st, &mut o);
    o
}

pub fn runs_text(runs: &[RunSummary], warnings: &[String]) -> String {
    if runs.is_empty() && warnings.is_empty() {
        return "no runs\n".to_string();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.mode.map(|m| m.as_str()).unwrap_or("?").to_string(),
                match &r.holder {
                    Some(h) => format!("{} (pid {})", r.state.as_str(), h.pid),
                    None => r.state.as_str().to_string(),
                },
                r.started_at.map(fmt_ts).unwrap_or_else(|| "-".into()),
                format!("{}/{}", r.recovered, r.services),
                r.failed.to_string(),
                r.breaches.to_string(),
            ]
        })
        .collect();
    let mut o = table(
        &[
            "RUN",
            "MODE",
            "STATE",
            "STARTED",
            "RECOVERED",
            "FAILED",
            "BREACHES",
        ],
        &rows,
    );
    for w in warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

pub fn runs_markdown(runs: &[RunSummary]) -> String {
    let mut o = String::from(
        "| run | mode | state | started | recovered | failed | breaches |\n|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {}/{} | {} | {} |",
            md(&r.run_id),
            r.mode.map(|m| m.as_str()).unwrap_or("?"),
            r.state.as_str(),
            r.started_at.map(fmt_ts).unwrap_or_else(|| "-".into()),
            r.recovered,
            r.services,
            r.failed,
            r.breaches
        );
    }
    o
}

// ---------------------------------------------------------------------------------------------
// JSON

pub fn json(st: &RunState) -> String {
    let mut s = serde_json::to_string_pretty(&st.to_report_json()).unwrap_or_default();
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// Escapes table-breaking characters in a markdown cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(st: &RunState) -> String {
    let mut o = String::new();
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let _ = writeln!(o, "# Run {} ({mode})\n", st.run_id);
    let _ = writeln!(o, "**State:** {}  ", st.state.as_str());
    let _ = writeln!(o, "{}  ", clock_line(st));
    let _ = writeln!(o, "{}\n", summary_line(st));
    let _ = writeln!(
        o,
        "| {} |",
        SERVICE_HEADER.map(|h| h.to_lowercase()).join(" | ")
    );
    let _ = writeln!(o, "|{}", "---|".repeat(SERVICE_HEADER.len()));
    for r in service_rows(st) {
        let cells: Vec<String> = r.iter().map(|c| md(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    let f = failures(st);
    if !f.is_empty() {
        o.push_str("\n## Failures\n\n");
        for (svc, title, output) in f {
            let _ = writeln!(o, "- **{}**: {}", md(&svc), md(&title));
            let lines = last_lines(&output, OUTPUT_LINES);
            if !lines.is_empty() {
                // A fence longer than any backtick run in the output cannot be closed by it.
                let fence = "`".repeat(3.max(longest_backtick_run(&output) + 1));
                let _ = writeln!(o, "\n  {fence}text");
                for l in lines {
                    let _ = writeln!(o, "  {}", printable(l));
                }
                let _ = writeln!(o, "  {fence}\n");
            }
        }
    }
    if !st.approvals.is_empty() {
        o.push_str("\n## Approvals\n\n| service | step | by | at |\n|---|---|---|---|\n");
        for a in &st.approvals {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                md(&a.service),
                md(&a.step),
                md(&a.by),
                fmt_ts(a.at)
            );
        }
    }
    o.push_str("\n## Timeline\n\n");
    o.push_str(&mermaid_gantt(st));
    if !st.warnings.is_empty() {
        o.push_str("\n## Warnings\n\n");
        for w in &st.warnings {
            let _ = writeln!(o, "- {}", md(w));
        }
    }
    o
}

fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut cur) = (0, 0);
    for c in s.chars() {
        if c == '`' {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// Where a service's actual bar ends: recovery, failure, or now for one still running.
fn actual_span(st: &RunState, s: &ServiceState) -> Option<(f64, f64)> {
    let start = s.started_s?;
    let end = s
        .recovered_s
        .or(s.ended_s)
        .or_else(|| st.elapsed_s())
        .unwrap_or(start);
    Some((start, end.max(start)))
}

/// Mermaid `gantt` (renders on GitHub/GitLab): per service, the planned bar (when the journal
/// has the plan) and the actual one, in absolute time from the RTO clock start.
pub fn mermaid_gantt(st: &RunState) -> String {
    let t0 = st
        .declared_at
        .or(st.first_at)
        .map(|t| t.as_second())
        .unwrap_or(0);
    let name = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if matches!(c, ':' | '#' | ';' | '\n') {
                    ' '
                } else {
                    c
                }
            })
            .collect()
    };
    let mut o = String::from("```mermaid\ngantt\n");
    let _ = writeln!(o, "  title Run {}: planned vs actual", name(&st.run_id));
    o.push_str("  dateFormat X\n  axisFormat %H:%M:%S\n");
    for (i, s) in st.services.iter().enumerate() {
        let _ = writeln!(o, "  section {}", name(&s.name));
        if let Some(p) = &s.planned
            && let (Some(a), Some(b)) = (p.start_s, p.ready_s)
        {
            let _ = writeln!(
                o,
                "  planned :p{i}, {}, {}",
                t0 + a.round() as i64,
                t0 + (b.round() as i64).max(a.round() as i64 + 1)
            );
        }
        if let Some((a, b)) = actual_span(st, s) {
            let tag = match s.status {
                ServiceStatus::Recovered if s.rto_met() != Some(false) => "done, ",
                ServiceStatus::Recovered | ServiceStatus::Failed | ServiceStatus::Blocked => {
                    "crit, "
                }
                _ => "active, ",
            };
            let _ = writeln!(
                o,
                "  {} :{tag}a{i}, {}, {}",
                s.status.as_str(),
                t0 + a.round() as i64,
                t0 + (b.round() as i64).max(a.round() as i64 + 1)
            );
        }
    }
    o.push_str("```\n");
    o
}

// ---------------------------------------------------------------------------------------------
// HTML

pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn status_color(s: &ServiceState) -> &'static str {
    match s.status {
        ServiceStatus::Recovered if s.rto_met() == Some(false) => "#e8a33d",
        ServiceStatus::Recovered => "#3b9b4b",
        ServiceStatus::Failed | ServiceStatus::Blocked => "#d04545",
        ServiceStatus::Skipped => "#9a9a9a",
        _ => "#4a7fd0",
    }
}

/// A round tick interval giving at most 8 ticks over `max_t` seconds.
fn nice_step(max_t: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 43200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| max_t / s <= 8.0)
        .unwrap_or_else(|| (max_t / 8.0 / 86400.0).ceil() * 86400.0)
}

/// Inline SVG Gantt: a grey planned bar above the actual bar, a red tick at the RTO.
pub fn svg_gantt(st: &RunState) -> String {
    let label_w = 170.0;
    let chart_w = 720.0;
    let row_h = 26.0;
    let top = 24.0;
    let mut max_t: f64 = 1.0;
    for s in &st.services {
        if let Some(p) = &s.planned {
            max_t = max_t.max(p.ready_s.unwrap_or(0.0));
        }
        if let Some((_, b)) = actual_span(st, s) {
            max_t = max_t.max(b);
        }
        max_t = max_t.max(s.rto_s.unwrap_or(0.0));
    }
    let max_t = max_t * 1.05;
    let x = |t: f64| label_w + (t.max(0.0) / max_t) * chart_w;
    let h = top + row_h * st.services.len() as f64 + 10.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12" role="img" aria-label="planned vs actual recovery timeline">"#,
        w = label_w + chart_w + 20.0
    );
    let step = nice_step(max_t);
    let mut k = 0;
    while step * k as f64 <= max_t {
        let t = step * k as f64;
        k += 1;
        let xx = x(t);
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{h:.1}" stroke="#e4e4e4"/><text x="{xx:.1}" y="14" text-anchor="middle" fill="#666">{}</text>"##,
            esc(&fmt_dur(t))
        );
    }
    for (i, s) in st.services.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            o,
            r##"<text x="4" y="{:.1}" fill="#222">{}</text>"##,
            y + 16.0,
            esc(&s.name)
        );
        if let Some(p) = &s.planned
            && let (Some(a), Some(b)) = (p.start_s, p.ready_s)
        {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="8" fill="#cfd6df"><title>planned {} – {}</title></rect>"##,
                x(a),
                y + 3.0,
                (x(b) - x(a)).max(1.0),
                esc(&fmt_dur(a)),
                esc(&fmt_dur(b))
            );
        }
        if let Some((a, b)) = actual_span(st, s) {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="11" fill="{}"><title>{} {} – {}</title></rect>"##,
                x(a),
                y + 12.0,
                (x(b) - x(a)).max(1.0),
                status_color(s),
                esc(s.status.as_str()),
                esc(&fmt_dur(a)),
                esc(&fmt_dur(b))
            );
        }
        if let Some(rto) = s.rto_s {
            let _ = writeln!(
                o,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#d04545" stroke-width="2"><title>RTO {}</title></line>"##,
                y + 1.0,
                y + 25.0,
                esc(&fmt_dur(rto)),
                xx = x(rto)
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

pub fn html(st: &RunState) -> String {
    let mut o = String::new();
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>meeseeks run {id}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f3f3f3; }}
.recovered {{ color: #2d7a3a; }} .failed, .blocked, .breached {{ color: #b52f2f; font-weight: bold; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
.legend span {{ display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Run {id} ({mode})</h1>
<p><b>State:</b> {state}<br>{clock}<br>{summary}</p>
"#,
        id = esc(&st.run_id),
        state = esc(st.state.as_str()),
        clock = esc(&clock_line(st)),
        summary = esc(&summary_line(st)),
    );
    o.push_str("<table><thead><tr>");
    for h in SERVICE_HEADER {
        let _ = write!(o, "<th>{}</th>", esc(&h.to_lowercase()));
    }
    o.push_str("</tr></thead><tbody>\n");
    for (s, row) in st.services.iter().zip(service_rows(st)) {
        o.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let class = match i {
                1 => s.status.as_str(),
                6 if s.rto_met() == Some(false) => "breached",
                _ => "",
            };
            if class.is_empty() {
                let _ = write!(o, "<td>{}</td>", esc(c));
            } else {
                let _ = write!(o, r#"<td class="{class}">{}</td>"#, esc(c));
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n<h2>Timeline</h2>\n");
    o.push_str(r##"<p class="legend"><span style="background:#cfd6df"></span>planned<span style="background:#3b9b4b"></span>recovered<span style="background:#e8a33d"></span>recovered late<span style="background:#d04545"></span>failed<span style="background:#4a7fd0"></span>in progress &nbsp;<b style="color:#d04545">|</b> RTO</p>"##);
    o.push('\n');
    o.push_str(&svg_gantt(st));
    let f = failures(st);
    if !f.is_empty() {
        o.push_str("<h2>Failures</h2>\n");
        for (svc, title, output) in f {
            let _ = writeln!(o, "<h3>{}</h3><p>{}</p>", esc(&svc), esc(&title));
            let lines = last_lines(&output, OUTPUT_LINES);
            if !lines.is_empty() {
                let _ = writeln!(o, "<pre>{}</pre>", esc(&printable(&lines.join("\n"))));
            }
        }
    }
    if !st.approvals.is_empty() {
        o.push_str("<h2>Approvals</h2>\n<table><thead><tr><th>service</th><th>step</th><th>by</th><th>at</th></tr></thead><tbody>\n");
        for a in &st.approvals {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.service),
                esc(&a.step),
                esc(&a.by),
                esc(&fmt_ts(a.at))
            );
        }
        o.push_str("</tbody></table>\n");
    }
    if !st.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &st.warnings {
            let _ = writeln!(o, "<li>{}</li>", esc(w));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body></html>\n");
    o
}

// ---------------------------------------------------------------------------------------------
// JUnit

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
                            format!("RTO {} breached by {}", fmt_dur(rto), fmt_dur(by))
                        }
                        (_, Some(rto)) => format!("RTO {} breached", fmt_dur(rto)),
                        _ => "RTO breached".to_string(),
                    },
                    body.clone(),
                )),
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
                        .map(|d| format!(", {}", fmt_dur(d)))
                        .unwrap_or_default()
                );
            }
            if let Some(r) = s.recovered_s {
                let _ = writeln!(out, "recovered at {}", fmt_dur(r));
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
