//! A preflight [`Report`] as text (a table per service), JSON (`meeseeks.preflight/v1`),
//! Markdown, or JUnit XML (a test case per service, so CI shows readiness natively); and the
//! last recorded one as a closing section of the plan report (`append_to_plan`).

use std::fmt::Write as _;

use std::time::Duration;

use super::record::PreflightLog;
use super::{Report, ServiceResult, Status};
use crate::graph_ops::md_cell;
use crate::model::Model;
use crate::plan::Plan;
use crate::report::fmt::fmt_secs_fit;

/// Services shown first: what needs attention.
fn by_urgency(r: &Report) -> Vec<&ServiceResult> {
    let rank = |s: Status| match s {
        Status::NotReady => 0,
        Status::Unknown => 1,
        Status::Ready => 2,
    };
    let mut v: Vec<&ServiceResult> = r.services.iter().collect();
    // Stable: name order within a status.
    v.sort_by_key(|s| rank(s.status));
    v
}

fn headline(r: &Report) -> String {
    let c = &r.counts;
    let total = r.services.len();
    if r.ready {
        format!(
            "all {total} service{} ready",
            if total == 1 { "" } else { "s" }
        )
    } else {
        let mut parts = vec![format!("{} of {total} not ready", c.not_ready)];
        if c.unknown > 0 {
            parts.push(format!("{} unknown", c.unknown));
        }
        parts.push(format!("{} ready", c.ready));
        parts.join(", ")
    }
}

/// The evaluation's time to the second (the nanoseconds are noise to a reader).
fn when(r: &Report) -> jiff::Timestamp {
    r.evaluated_at
        .round(jiff::Unit::Second)
        .unwrap_or(r.evaluated_at)
}

/// `where` of a problem: `file:line`.
fn at(file: &str, line: u32) -> String {
    if line > 0 {
        format!("{file}:{line}")
    } else {
        file.to_string()
    }
}

/// A short note on what was seen on a ready (or any) service: checked items, certificates,
/// backup age.
fn notes(s: &ServiceResult) -> String {
    let mut parts = vec![format!("{} checked", s.checked)];
    for c in &s.certificates {
        parts.push(format!("TLS {} {} days left", c.target, c.days_left));
    }
    if let Some(b) = &s.backup {
        parts.push(format!(
            "last backup {} ago",
            super::age(std::time::Duration::from_secs_f64(b.age_s.max(0.0)))
        ));
    }
    parts.join("; ")
}

pub fn text(r: &Report, color: bool) -> String {
    let paint = |s: Status| {
        let label = s.label().to_uppercase();
        if !color {
            return format!("{label:<9}");
        }
        let code = match s {
            Status::Ready => "32",
            Status::NotReady => "31;1",
            Status::Unknown => "33",
        };
        format!("\x1b[{code}m{label:<9}\x1b[0m")
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Preflight of {} ({} mode): {} ({}, {})",
        r.dir,
        r.mode,
        headline(r),
        when(r),
        fmt_secs_fit(r.duration_s)
    );
    for s in by_urgency(r) {
        if s.problems.is_empty() {
            let _ = writeln!(o, "{}  {}  ({})", paint(s.status), s.name, notes(s));
            continue;
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "{}  {}  ({})", paint(s.status), s.name, notes(s));
        let rows: Vec<(&str, String, &str)> = s
            .problems
            .iter()
            .map(|p| (p.check.as_str(), at(&p.file, p.line), p.reason.as_str()))
            .collect();
        let w0 = rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let w1 = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let _ = writeln!(o, "  {:<w0$}  {:<w1$}  REASON", "CHECK", "WHERE");
        for (check, place, reason) in rows {
            let _ = writeln!(o, "  {check:<w0$}  {place:<w1$}  {reason}");
        }
    }
    o
}

pub fn json(r: &Report) -> String {
    crate::graph_ops::to_json(r)
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Preflight: {}", headline(r));
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Evaluated {} in {} mode, {:.1} s, for `{}`.",
        when(r),
        r.mode,
        r.duration_s,
        r.dir
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "| service | status | problems | notes |");
    let _ = writeln!(o, "|---|---|---:|---|");
    for s in by_urgency(r) {
        let status = match s.status {
            Status::Ready => "ready".to_string(),
            other => format!("**{}**", other.label()),
        };
        let _ = writeln!(
            o,
            "| {} | {status} | {} | {} |",
            md_cell(&s.name),
            s.problems.len(),
            md_cell(&notes(s))
        );
    }
    for s in by_urgency(r).into_iter().filter(|s| !s.problems.is_empty()) {
        let _ = writeln!(o);
        let _ = writeln!(o, "## {}: {}", s.name, s.status.label());
        let _ = writeln!(o);
        let _ = writeln!(o, "| check | where | reason |");
        let _ = writeln!(o, "|---|---|---|");
        for p in &s.problems {
            let _ = writeln!(
                o,
                "| {} | `{}` | {} |",
                md_cell(&p.check),
                at(&p.file, p.line),
                md_cell(&p.reason)
            );
        }
    }
    o
}

/// JUnit XML: one test suite, one test case per service (failure = not ready, error =
/// unknown), the problems as the failure's message and description.
pub fn junit(r: &Report) -> String {
    use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("preflight");
    suite.set_time(std::time::Duration::from_secs_f64(r.duration_s.max(0.0)));
    for s in &r.services {
        let status = match s.status {
            Status::Ready => TestCaseStatus::success(),
            other => {
                let kind = if other == Status::NotReady {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut st = TestCaseStatus::non_success(kind);
                if let Some(first) = s.problems.first() {
                    st.set_message(format!("{}: {}", first.check, first.reason));
                }
                st.set_type(other.as_str());
                let mut d = String::new();
                for p in &s.problems {
                    let _ = writeln!(d, "{} ({}): {}", p.check, at(&p.file, p.line), p.reason);
                }
                st.set_description(d);
                st
            }
        };
        let mut case = TestCase::new(s.name.clone(), status);
        case.set_classname("preflight");
        case.set_assertions(s.checked);
        suite.add_test_case(case);
    }
    let mut report = JReport::new("meeseeks preflight");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->\n"))
}

/// One line for `--every`: when, how many ready, and what changed.
pub fn summary_line(r: &Report) -> String {
    format!("{}  {}", when(r), headline(r))
}

// ------------------------------------------------------------------------------------------
// The plan report's section: a plan that assumes a service recovers is only as good as that
// service's readiness. Only the newest evaluation is read (one file), so `plan` stays fast.

/// Services listed by name at most in the plan's section.
const PLAN_SHOWN: usize = 10;

/// Appends the section to `text` when a preflight was recorded in `store`.
pub fn append_to_plan(
    text: &mut String,
    store: &crate::store::StoreSpec,
    plan: &Plan,
    model: &Model,
    markdown: bool,
) {
    let log = PreflightLog::new(store);
    let latest = match PreflightLog::blocking(log.latest()) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("plan: cannot read the last preflight: {e}");
            return;
        }
    };
    let names: Vec<&str> = plan.services.iter().map(|p| model.name(p.id)).collect();
    text.push_str(&plan_section(
        &latest,
        &names,
        jiff::Timestamp::now(),
        markdown,
    ));
}

/// The section for the services `names` (the plan's scope).
pub fn plan_section(r: &Report, names: &[&str], now: jiff::Timestamp, markdown: bool) -> String {
    let covered: Vec<&ServiceResult> = names.iter().filter_map(|n| r.service(n)).collect();
    let ready = covered.iter().filter(|s| s.status == Status::Ready).count();
    let bad: Vec<&&ServiceResult> = covered
        .iter()
        .filter(|s| s.status != Status::Ready)
        .collect();
    let age = Duration::from_secs((now.as_second() - r.evaluated_at.as_second()).max(0) as u64);
    let when = format!(
        "{} ({} ago)",
        r.evaluated_at
            .round(jiff::Unit::Second)
            .unwrap_or(r.evaluated_at),
        crate::preflight::age(age)
    );
    let summary = format!(
        "{ready} of {} services in scope ready{}",
        names.len(),
        match names.len() - covered.len() {
            0 => String::new(),
            n => format!(", {n} not covered by it"),
        }
    );
    let first = |s: &ServiceResult| {
        s.problems
            .first()
            .map(|p| {
                (
                    p.check.clone(),
                    format!("{}:{}", p.file, p.line),
                    p.reason.clone(),
                )
            })
            .unwrap_or_default()
    };
    let mut o = String::new();
    if markdown {
        let _ = writeln!(o, "\n## Last preflight\n");
        let _ = writeln!(o, "Evaluated {when}: {summary}.");
        if !bad.is_empty() {
            let _ = writeln!(o, "\n| service | status | first problem | where |");
            let _ = writeln!(o, "|---|---|---|---|");
            for s in bad.iter().take(PLAN_SHOWN) {
                let (check, place, reason) = first(s);
                let _ = writeln!(
                    o,
                    "| {} | **{}** | {} | `{place}` |",
                    crate::graph_ops::md_cell(&s.name),
                    s.status.label(),
                    crate::graph_ops::md_cell(&format!("{check}: {reason}"))
                );
            }
        }
    } else {
        let _ = writeln!(o, "\nLast preflight: {when}, {summary}");
        for s in bad.iter().take(PLAN_SHOWN) {
            let (check, place, reason) = first(s);
            let _ = writeln!(
                o,
                "  {:<9}  {}  {check} ({place}): {reason}",
                s.status.label(),
                s.name
            );
        }
    }
    if bad.len() > PLAN_SHOWN {
        let _ = writeln!(
            o,
            "{}... and {} more (see `meeseeks preflight`)",
            if markdown { "\n" } else { "  " },
            bad.len() - PLAN_SHOWN
        );
    }
    o
}
