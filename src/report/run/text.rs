//! Human text: the report, `status`, `runs`, and the end-of-run summary a runner prints.

use std::fmt::Write;

use super::*;
use crate::report::fmt::fmt_clock;
use crate::runstate::{RunStatus, RunSummary};

pub fn text(st: &RunState) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", headline(st));
    let _ = writeln!(o, "{}", clock_line(st));
    let _ = writeln!(o, "{}\n", summary_line(st));
    o.push_str(&table(&SERVICE_HEADER, &service_rows(st)));
    let rpo = rpo_rows(st);
    if !rpo.is_empty() {
        let _ = writeln!(o, "\n{RPO_TITLE}");
        o.push_str(&table(&RPO_HEADER, &rpo));
    }
    cleanup_lines(st, &mut o);
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
    let h = human(st);
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
                let _ = write!(l, " {}", h.secs(d));
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
                r.cleanup.as_str().to_string(),
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
            "CLEANUP",
        ],
        &rows,
    );
    for w in warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

/// The end-of-run summary a runner prints (a view of the run's live `RunState`, the same
/// state `status` and `report` fold from the journal): a headline with the verdict, one row
/// per service (ready time vs RTO), the failures with their last output lines, the cleanup,
/// and for a dry-run the simulated timeline.
pub fn summary(st: &RunState, exit_code: i32) -> String {
    let mut o = String::new();
    let verdict = match st.state {
        RunStatus::Interrupted => "INTERRUPTED (resumable)",
        _ if exit_code == 0 => "SUCCEEDED",
        _ => "FAILED",
    };
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("run");
    let kind = if st.dry_run() {
        format!("dry-run ({mode})")
    } else {
        mode.to_string()
    };
    let pending = st.count(ServiceStatus::Pending)
        + st.count(ServiceStatus::Running)
        + st.count(ServiceStatus::Verifying)
        + st.count(ServiceStatus::Waiting);
    let _ = writeln!(
        o,
        "{kind} {}: {verdict} — {}/{} recovered, {} failed, {} blocked, {pending} not started; makespan {}",
        st.run_id,
        st.count(ServiceStatus::Recovered) + st.count(ServiceStatus::Skipped),
        st.services.len(),
        st.count(ServiceStatus::Failed),
        st.count(ServiceStatus::Blocked),
        clock(Some(st.makespan_s())),
    );
    let w = st
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        o,
        "\n{:w$}  {:>4}  {:<19}  {:>8}  {:>8}  {:>8}  RESULT",
        "SERVICE", "TIER", "STATUS", "STARTED", "READY", "RTO"
    );
    let (mut met, mut breached) = (0, 0);
    // In the order services started, then the others by name.
    let mut rows: Vec<&ServiceState> = st.services.iter().collect();
    rows.sort_by(|a, b| {
        let key = |s: &ServiceState| s.started_s.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
    for s in rows {
        let verdict = match (s.rto_met(), s.recovered_s, s.rto_s) {
            (Some(true), Some(r), Some(rto)) => {
                met += 1;
                format!("met ({} to spare)", clock(Some(rto - r)))
            }
            (Some(false), Some(r), Some(rto)) => {
                breached += 1;
                format!("BREACHED by {}", clock(Some(r - rto)))
            }
            (Some(false), _, _) => {
                breached += 1;
                "BREACHED (not recovered)".into()
            }
            _ => "-".into(),
        };
        let status = if s.cleaned_up {
            format!("{}, cleaned up", s.status.as_str())
        } else {
            s.status.as_str().to_string()
        };
        let _ = writeln!(
            o,
            "{:w$}  {:>4}  {:<19}  {:>8}  {:>8}  {:>8}  {verdict}",
            s.name,
            s.planned
                .as_ref()
                .map(|p| p.tier.to_string())
                .unwrap_or_default(),
            status,
            clock(s.started_s),
            clock(s.recovered_s),
            clock(s.rto_s),
        );
    }
    let _ = writeln!(o, "\nRTO: {met} met, {breached} breached");
    let failures: Vec<&ServiceState> = st
        .services
        .iter()
        .filter(|s| s.error.is_some() || s.blocked_by.is_some())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(o, "\nFailures:");
        for s in failures {
            if let Some(e) = &s.error {
                let _ = writeln!(o, "  {}: {}", s.name, printable(e));
                let output = s
                    .steps
                    .iter()
                    .rev()
                    .find(|st| st.status == StepStatus::Failed && !st.optional)
                    .map(|st| st.last_output.as_str())
                    .unwrap_or("");
                for l in last_lines(output, OUTPUT_LINES) {
                    let _ = writeln!(o, "    | {}", printable(l));
                }
            } else if let Some(b) = &s.blocked_by {
                let _ = writeln!(o, "  {}: blocked by {b}", s.name);
            }
        }
    }
    cleanup_lines(st, &mut o);
    if st.dry_run() {
        o.push_str(&timeline(st));
    }
    o
}

/// Where a drill stands with tearing down what it started, and what to do about it.
fn cleanup_lines(st: &RunState, o: &mut String) {
    match st.cleanup {
        CleanupStatus::NotApplicable => {}
        CleanupStatus::Done => {
            let _ = writeln!(
                o,
                "Cleanup: done, {n} of {n} steps succeeded",
                n = st.cleanup_steps
            );
        }
        CleanupStatus::Failed => {
            let _ = writeln!(
                o,
                "\nCleanup: {} of {} steps FAILED (check what is still running; `meeseeks cleanup {}` retries them):",
                st.cleanup_failures.len(),
                st.cleanup_steps,
                st.run_id
            );
            for f in &st.cleanup_failures {
                let _ = writeln!(o, "  {}", printable(f));
            }
        }
        CleanupStatus::Pending if st.dry_run() => {}
        CleanupStatus::Pending => {
            let up = st
                .services
                .iter()
                .filter(|s| s.starts > 0 && !s.cleaned_up)
                .count();
            let why = match st.state {
                RunStatus::Finished => "--no-cleanup",
                RunStatus::Running => "the drill is still running",
                _ => {
                    "the drill did not succeed: what it started is left up so that it can be resumed"
                }
            };
            let _ = writeln!(
                o,
                "\nCleanup: pending ({why}); {up} services still up.\n  `meeseeks resume {id}` continues the drill, `meeseeks cleanup {id}` tears it down.",
                id = st.run_id
            );
        }
    }
}

/// `MM:SS` or `H:MM:SS` from the RTO clock's start, or `-`.
fn clock(s: Option<f64>) -> String {
    s.map(fmt_clock).unwrap_or_else(|| "-".into())
}

/// A text Gantt chart of start → ready per service, scaled to 50 columns.
fn timeline(st: &RunState) -> String {
    let mut o = String::from("\nSimulated timeline (from the RTO clock start):\n");
    let span = st.makespan_s().max(1e-9);
    let cols = 50.0;
    let w = st.services.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &st.services {
        let (Some(a), Some(b)) = (s.started_s, s.recovered_s) else {
            continue;
        };
        let start = ((a / span) * cols).round() as usize;
        let end = (((b / span) * cols).round() as usize).max(start + 1);
        let mut bar = " ".repeat(start);
        bar.push_str(&"#".repeat(end - start));
        let rto_mark = if s.rto_s.is_some_and(|r| b > r) {
            "  RTO BREACHED"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {:w$} |{bar:<51}| {} → {}{rto_mark}",
            s.name,
            clock(Some(a)),
            clock(Some(b)),
        );
    }
    o
}
