//! One self-contained HTML file: no script, no external asset, an inline SVG Gantt with RTO
//! deadlines marked (the shared renderer of `report::html`), and the dependency graph drawn
//! by wave.

use std::fmt::Write as _;

use super::{
    BREACH_HEADER, BREACH_NUMERIC, Human, MAX_DRAWN, OBJECTIVE, UNACHIEVABLE_HEADER,
    UNACHIEVABLE_NUMERIC, breach_rows, breached_set, by_wave, chain_names, critical_set,
    estimates_line, held_line, human, makespan_line, optimality_line, rto_line, schedule_line,
    scope_line, search_line, unachievable_rows,
};
use crate::model::Model;
use crate::plan::Plan;
use crate::report::html::{self as kit, CSS, esc, truncate};

/// The planned timeline on the shared Gantt renderer: one bar per service (red when late, blue
/// on the critical path), its RTO marked.
fn gantt_svg(plan: &Plan, model: &Model, h: Human) -> String {
    let drawn = &plan.services[..plan.services.len().min(MAX_DRAWN)];
    let crit = critical_set(plan, model.services.len());
    let max_rto = drawn.iter().map(|p| p.rto).max().unwrap_or(0);
    let end = kit::axis_end(plan.makespan, max_rto);
    let rows = drawn
        .iter()
        .map(|p| {
            let name = model.name(p.id);
            let class = if p.slack < 0 {
                "bar late"
            } else if crit[p.id] {
                "bar crit"
            } else {
                "bar ok"
            };
            kit::Row {
                label: name.to_string(),
                bars: vec![kit::Bar {
                    start: p.start,
                    end: p.ready,
                    class,
                    title: format!(
                        "{name}: start {}, ready {}, RTO {}, slack {}",
                        h.ms(p.start),
                        h.ms(p.ready),
                        h.ms(p.rto),
                        h.signed(p.slack)
                    ),
                    lane: kit::Lane::Full,
                }],
                markers: vec![kit::Marker {
                    at: p.rto,
                    class: if p.slack < 0 { "rto missed" } else { "rto" },
                    title: format!("{name} RTO {}", h.ms(p.rto)),
                }],
            }
        })
        .collect();
    kit::Gantt {
        class: "gantt",
        aria_label: "planned recovery timeline",
        end,
        rows,
    }
    .svg()
}

fn graph_svg(plan: &Plan, model: &Model, human: Human) -> String {
    const COL_W: f64 = 210.0;
    const NODE_W: f64 = 170.0;
    const NODE_H: f64 = 22.0;
    const GAP: f64 = 8.0;
    let n = model.services.len();
    let crit = critical_set(plan, n);
    let breached = breached_set(plan, n);
    // Column per wave; within a column, planned start order. Only the first MAX_DRAWN
    // services by wave are drawn.
    let mut pos: Vec<Option<(f64, f64)>> = vec![None; n];
    let mut drawn = Vec::new();
    let mut rows_max = 0usize;
    for (k, g) in by_wave(plan).iter().enumerate() {
        for (r, p) in g.iter().enumerate() {
            if drawn.len() >= MAX_DRAWN {
                break;
            }
            pos[p.id] = Some((10.0 + COL_W * k as f64, 10.0 + (NODE_H + GAP) * r as f64));
            drawn.push(*p);
            rows_max = rows_max.max(r + 1);
        }
    }
    let cols = drawn.iter().map(|p| p.wave + 1).max().unwrap_or(0) as f64;
    let w = 20.0 + COL_W * cols;
    let h = 20.0 + (NODE_H + GAP) * rows_max as f64;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="dependency graph by wave">"#
    );
    for p in &drawn {
        let Some((x2, y2)) = pos[p.id] else { continue };
        for &d in &model.services[p.id].depends_on {
            if let Some((x1, y1)) = pos[d] {
                let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2.0);
                let (ex, ey) = (x2, y2 + NODE_H / 2.0);
                let mx = (sx + ex) / 2.0;
                let class = if crit[d] && crit[p.id] {
                    "edge crit"
                } else {
                    "edge"
                };
                let _ = writeln!(
                    o,
                    r#"<path d="M{sx:.1} {sy:.1} C{mx:.1} {sy:.1} {mx:.1} {ey:.1} {ex:.1} {ey:.1}" class="{class}"/>"#
                );
            }
        }
    }
    for p in &drawn {
        let Some((x, y)) = pos[p.id] else { continue };
        let name = model.name(p.id);
        let class = if breached[p.id] {
            "node late"
        } else if crit[p.id] {
            "node crit"
        } else {
            "node"
        };
        let _ = writeln!(
            o,
            r#"<g class="{class}"><title>{} (wave {}, tier {}, ready {}, RTO {})</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="4"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            esc(name),
            p.wave,
            model.services[p.id].tier,
            human.ms(p.ready),
            human.ms(p.rto),
            x + 6.0,
            y + 15.0,
            esc(&truncate(name, 24))
        );
    }
    o.push_str("</svg>\n");
    o
}

/// One self-contained HTML file: no script, no external asset, inline SVG Gantt with RTO
/// deadlines marked, and the dependency graph drawn by wave.
pub fn render_html(plan: &Plan, model: &Model) -> String {
    let h = human(plan);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>meeseeks recovery plan</title>\n<style>{CSS}</style>\n</head>\n<body>"
    );
    let _ = writeln!(o, "<h1>Recovery plan</h1>");
    let _ = writeln!(o, "<table class=\"summary\">");
    let rows = [
        (
            "Scope",
            format!("{} in {} waves", scope_line(plan), plan.waves),
        ),
        (
            "Schedule",
            format!(
                "{} mode, {}, parallel {}",
                plan.mode,
                plan.strategy.as_str(),
                plan.parallel
            ),
        ),
        ("Makespan", makespan_line(plan, h)),
        ("RTOs", rto_line(plan, h)),
        ("Objective", OBJECTIVE.to_string()),
        ("Order", schedule_line(plan)),
        ("Search", search_line(plan)),
        ("Optimal", optimality_line(plan)),
    ];
    let held = held_line(plan, model);
    let rows = rows
        .into_iter()
        .chain(held.map(|l| ("Held back", l)))
        .chain([
            (
                "Critical path",
                format!(
                    "{}: {}",
                    h.ms(plan.critical_path_len),
                    chain_names(model, &plan.critical_path, " → ")
                ),
            ),
            ("Estimates", estimates_line(plan, model)),
        ]);
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(o, "</table>");

    if !plan.breaches.is_empty() {
        let _ = writeln!(o, "<h2>Predicted RTO breaches</h2>");
        kit::table(
            &mut o,
            &BREACH_HEADER,
            &BREACH_NUMERIC,
            breach_rows(plan, model, h, " → ").map(|r| ("late", r)),
        );
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(
            o,
            "<h2>RTOs unachievable even with unlimited parallelism</h2>"
        );
        kit::table(
            &mut o,
            &UNACHIEVABLE_HEADER,
            &UNACHIEVABLE_NUMERIC,
            unachievable_rows(plan, model, h, " → ").map(|r| ("", r)),
        );
    }

    let _ = writeln!(o, "<h2>Timeline ({} schedule)</h2>", plan.strategy.as_str());
    let n = plan.services.len();
    let capped = |what: &str| {
        (n > MAX_DRAWN).then(|| format!("The {what} shows the first {MAX_DRAWN} of {n} services"))
    };
    kit::figure(
        &mut o,
        &[
            ("#4c9a6a", "meets its RTO"),
            ("#1f6feb", "critical path"),
            ("#cf222e", "predicted breach"),
            ("#8c959f", "RTO deadline"),
        ],
        capped("chart").map(|c| c + " by planned start."),
        &gantt_svg(plan, model, h),
    );
    let _ = writeln!(o, "<h2>Dependency graph by wave</h2>");
    kit::figure(
        &mut o,
        &[],
        capped("picture").map(|c| c + ", by wave."),
        &graph_svg(plan, model, h),
    );

    let _ = writeln!(o, "<h2>Schedule by wave</h2>\n<table>");
    let _ = writeln!(
        o,
        "<tr><th class=\"n\">Wave</th><th>Service</th><th class=\"n\">Tier</th><th class=\"n\">Start</th><th class=\"n\">Ready</th><th class=\"n\">RTO</th><th class=\"n\">Slack</th><th class=\"n\">Estimate</th><th>Source</th></tr>"
    );
    for (k, g) in by_wave(plan).iter().enumerate() {
        for p in g {
            let s = &model.services[p.id];
            let _ = writeln!(
                o,
                "<tr{}><td class=\"n\">{k}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                if p.slack < 0 { " class=\"late\"" } else { "" },
                esc(&s.name),
                s.tier,
                h.ms(p.start),
                h.ms(p.ready),
                h.ms(p.rto),
                h.signed(p.slack),
                h.ms(p.dur),
                p.estimate.source.as_str()
            );
        }
    }
    let _ = writeln!(o, "</table>\n</body>\n</html>");
    o
}
