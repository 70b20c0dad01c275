//! Markdown (with a Mermaid Gantt that renders on GitHub/GitLab).

use std::fmt::Write;

use super::*;
use crate::runstate::RunSummary;

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
    let rpo = rpo_rows(st);
    if !rpo.is_empty() {
        let _ = writeln!(o, "\n## {RPO_TITLE}\n");
        let _ = writeln!(
            o,
            "| {} |",
            RPO_HEADER.map(|h| h.to_lowercase()).join(" | ")
        );
        let _ = writeln!(o, "|{}", "---|".repeat(RPO_HEADER.len()));
        for r in rpo {
            let cells: Vec<String> = r.iter().map(|c| md(c)).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
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

pub fn runs_markdown(runs: &[RunSummary]) -> String {
    let mut o = String::from(
        "| run | mode | state | started | recovered | failed | breaches | cleanup |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {}/{} | {} | {} | {} |",
            md(&r.run_id),
            r.mode.map(|m| m.as_str()).unwrap_or("?"),
            r.state.as_str(),
            r.started_at.map(fmt_ts).unwrap_or_else(|| "-".into()),
            r.recovered,
            r.services,
            r.failed,
            r.breaches,
            r.cleanup.as_str()
        );
    }
    o
}
