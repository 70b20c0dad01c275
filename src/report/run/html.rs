//! One self-contained HTML file in the plan report's style (the shared `report::html` toolkit):
//! no script, no external asset; the services, the data loss, planned vs actual on one SVG
//! Gantt, and the failures with their last output lines.

use std::fmt::Write;

use super::*;
use crate::plan::to_ms;
use crate::report::html::{self as kit, CSS, esc};
use crate::report::plan::MAX_DRAWN;

/// What the run report draws beyond the plan report's classes: the planned bar and the
/// actual bar's outcomes.
const RUN_CSS: &str = ".bar.planned{fill:#afb8c1}.bar.failed{fill:#82071e}.bar.active{fill:#1f6feb}\
.bar.skipped{fill:#d0d7de}pre{background:#f6f8fa;padding:8px;overflow-x:auto}";

/// The actual bar's class: green on time, red late, dark red failed or blocked.
fn bar_class(s: &ServiceState) -> &'static str {
    match s.status {
        _ if s.rto_met() == Some(false) && s.status == ServiceStatus::Recovered => "bar late",
        ServiceStatus::Recovered => "bar ok",
        ServiceStatus::Failed | ServiceStatus::Blocked => "bar failed",
        ServiceStatus::Skipped => "bar skipped",
        _ => "bar active",
    }
}

/// Planned vs actual on the shared Gantt renderer: per service a thin planned bar above the
/// actual one and its RTO marked, in the order services started (then planned to), the axis
/// scaled to the run (its actual and planned times); farther RTOs get an arrow at the edge.
pub fn svg_gantt(st: &RunState) -> String {
    let h = human(st);
    let ph = planned_human(st);
    let planned = |s: &ServiceState| {
        s.planned
            .as_ref()
            .and_then(|p| Some((p.start_s?, p.ready_s?)))
    };
    let mut order: Vec<&ServiceState> = st.services.iter().collect();
    let start_key = |s: &ServiceState| {
        s.started_s
            .or_else(|| planned(s).map(|p| p.0))
            .unwrap_or(f64::INFINITY)
    };
    order.sort_by(|a, b| {
        start_key(a)
            .total_cmp(&start_key(b))
            .then_with(|| a.name.cmp(&b.name))
    });
    order.truncate(MAX_DRAWN);
    let mut span = 0;
    let mut max_rto = 0;
    let rows = order
        .iter()
        .map(|s| {
            let mut bars = Vec::with_capacity(2);
            if let Some((a, b)) = planned(s) {
                span = span.max(to_ms(b));
                bars.push(kit::Bar {
                    start: to_ms(a),
                    end: to_ms(b),
                    class: "bar planned",
                    title: format!("planned {} – {}", ph.secs(a), ph.secs(b)),
                    lane: kit::Lane::Upper,
                });
            }
            if let Some((a, b)) = actual_span(st, s) {
                span = span.max(to_ms(b));
                bars.push(kit::Bar {
                    start: to_ms(a),
                    end: to_ms(b),
                    class: bar_class(s),
                    title: format!("{} {} – {}", s.status.as_str(), h.secs(a), h.secs(b)),
                    lane: kit::Lane::Lower,
                });
            }
            let markers = s
                .rto_s
                .map(|rto| {
                    max_rto = max_rto.max(to_ms(rto));
                    kit::Marker {
                        at: to_ms(rto),
                        class: if s.rto_met() == Some(false) {
                            "rto missed"
                        } else {
                            "rto"
                        },
                        title: format!("RTO {}", ph.secs(rto)),
                    }
                })
                .into_iter()
                .collect();
            kit::Row {
                label: s.name.clone(),
                bars,
                markers,
            }
        })
        .collect();
    kit::Gantt {
        class: "gantt",
        aria_label: "planned vs actual recovery timeline",
        end: kit::axis_end(span, max_rto),
        rows,
    }
    .svg()
}

const SERVICE_NUMERIC: [bool; 8] = [false, false, true, true, true, true, false, true];
const RPO_NUMERIC: [bool; 6] = [false, false, false, true, true, false];

pub fn html(st: &RunState) -> String {
    let mut o = String::new();
    let mode = st.mode.map(|m| m.as_str()).unwrap_or("?");
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>meeseeks run {}</title>\n<style>{CSS}{RUN_CSS}</style>\n</head>\n<body>",
        esc(&st.run_id)
    );
    let _ = writeln!(o, "<h1>Run {} ({mode})</h1>", esc(&st.run_id));
    let _ = writeln!(o, "<table class=\"summary\">");
    for (k, v) in [
        ("State", st.state.as_str().to_string()),
        ("Clock", clock_line(st)),
        ("Services", summary_line(st)),
    ] {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(o, "</table>");
    let late = |s: &ServiceState| {
        if s.rto_met() == Some(false) {
            "late"
        } else {
            ""
        }
    };
    let rows = st.services.iter().zip(service_rows(st)).map(|(s, r)| {
        let r: [String; 8] = r.try_into().expect("service rows have 8 cells");
        (late(s), r)
    });
    kit::table(
        &mut o,
        &lower(&SERVICE_HEADER).each_ref().map(String::as_str),
        &SERVICE_NUMERIC,
        rows,
    );
    let rpo = rpo_rows(st);
    if !rpo.is_empty() {
        let _ = writeln!(o, "<h2>{}</h2>", esc(RPO_TITLE));
        let rows = rpo.into_iter().map(|r| {
            let r: [String; 6] = r.try_into().expect("RPO rows have 6 cells");
            (
                if r[5].starts_with("EXCEEDED") {
                    "late"
                } else {
                    ""
                },
                r,
            )
        });
        kit::table(
            &mut o,
            &lower(&RPO_HEADER).each_ref().map(String::as_str),
            &RPO_NUMERIC,
            rows,
        );
    }
    let _ = writeln!(o, "<h2>Timeline: planned vs actual</h2>");
    let n = st.services.len();
    kit::figure(
        &mut o,
        &[
            ("#afb8c1", "planned"),
            ("#4c9a6a", "recovered"),
            ("#cf222e", "recovered late"),
            ("#82071e", "failed or blocked"),
            ("#1f6feb", "in progress"),
            ("#8c959f", "RTO deadline"),
        ],
        (n > MAX_DRAWN)
            .then(|| format!("The chart shows the first {MAX_DRAWN} of {n} services by start.")),
        &svg_gantt(st),
    );
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
        o.push_str("<h2>Approvals</h2>\n");
        let rows = st.approvals.iter().map(|a| {
            (
                "",
                [
                    a.service.clone(),
                    a.step.clone(),
                    a.by.clone(),
                    fmt_ts(a.at),
                ],
            )
        });
        kit::table(&mut o, &["service", "step", "by", "at"], &[false; 4], rows);
    }
    if !st.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &st.warnings {
            let _ = writeln!(o, "<li>{}</li>", esc(w));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// Headers as the markdown report writes them.
fn lower<const N: usize>(h: &[&str; N]) -> [String; N] {
    h.map(str::to_lowercase)
}
