//! The terminal report: a summary readable in ten seconds, then the per-wave table.

use std::fmt::Write as _;

use super::{
    ESTIMATE_RULE, MAX_TEXT_BREACHES, OBJECTIVE, by_wave, chain_names, chain_text, estimates_line,
    held_line, human, makespan_line, optimality_line, plural, rto_line, schedule_line, scope_line,
    search_line,
};
use crate::model::Model;
use crate::plan::Plan;

pub fn render_text(plan: &Plan, model: &Model) -> String {
    let h = human(plan);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Recovery plan: {}, {} waves, {} mode, parallel {}, {} schedule",
        scope_line(plan),
        plan.waves,
        plan.mode,
        plan.parallel,
        plan.strategy.as_str()
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "  makespan       {}", makespan_line(plan, h));
    let _ = writeln!(o, "  RTOs           {}", rto_line(plan, h));
    let _ = writeln!(o, "  objective      {OBJECTIVE}");
    let _ = writeln!(o, "  schedule       {}", schedule_line(plan));
    let _ = writeln!(o, "  search         {}", search_line(plan));
    let _ = writeln!(o, "  optimal        {}", optimality_line(plan));
    if let Some(held) = held_line(plan, model) {
        let _ = writeln!(o, "  held back      {held}");
    }
    let _ = writeln!(
        o,
        "  critical path  {}: {}",
        h.ms(plan.critical_path_len),
        chain_names(model, &plan.critical_path, " -> ")
    );
    let _ = writeln!(o, "  estimates      {}", estimates_line(plan, model));

    if !plan.breaches.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Predicted RTO breaches (worst first):");
        let shown = &plan.breaches[..plan.breaches.len().min(MAX_TEXT_BREACHES)];
        let w = shown
            .iter()
            .map(|b| model.name(b.id).len())
            .max()
            .unwrap_or(0);
        for b in shown {
            let mut why = String::new();
            if b.unachievable {
                why.push_str("; the chain alone exceeds the RTO");
            } else if b.queued > 0 {
                let _ = write!(why, "; {} of waiting for slots/waves", h.ms(b.queued));
            }
            let _ = writeln!(
                o,
                "  {:<w$}  late by {:<8}  chain: {}{}",
                model.name(b.id),
                h.ms(b.by),
                chain_text(model, &b.chain, b.chain_len, b.chain_root, " -> "),
                why,
            );
        }
        if plan.breaches.len() > MAX_TEXT_BREACHES {
            let _ = writeln!(
                o,
                "  ... and {} more (see --format json)",
                plan.breaches.len() - MAX_TEXT_BREACHES
            );
        }
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "RTO unachievable even with unlimited parallelism ({}):",
            plan.unachievable.len()
        );
        for u in plan.unachievable.iter().take(MAX_TEXT_BREACHES) {
            let _ = writeln!(
                o,
                "  {}  needs {}, RTO {}: {}",
                model.name(u.id),
                h.ms(u.earliest_ready),
                h.ms(u.rto),
                chain_text(model, &u.chain, u.chain_len, u.chain_root, " -> ")
            );
        }
        if plan.unachievable.len() > MAX_TEXT_BREACHES {
            let _ = writeln!(
                o,
                "  ... and {} more (see --format json)",
                plan.unachievable.len() - MAX_TEXT_BREACHES
            );
        }
    }

    // The table: all columns aligned across waves.
    let header = [
        "SERVICE", "TIER", "START", "READY", "RTO", "SLACK", "ESTIMATE", "SOURCE",
    ];
    let groups = by_wave(plan);
    let rows: Vec<Vec<[String; 8]>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|p| {
                    let s = &model.services[p.id];
                    [
                        s.name.clone(),
                        s.tier.to_string(),
                        h.ms(p.start),
                        h.ms(p.ready),
                        h.ms(p.rto),
                        if p.slack < 0 {
                            format!("{} BREACH", h.signed(p.slack))
                        } else {
                            h.signed(p.slack)
                        },
                        h.ms(p.dur),
                        p.estimate.source.as_str().to_string(),
                    ]
                })
                .collect()
        })
        .collect();
    let mut width = header.map(str::len);
    for r in rows.iter().flatten() {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |o: &mut String, cells: &[&str]| {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            // Numbers right-aligned, names left-aligned.
            let right = (1..=6).contains(&i);
            let pad = width[i] - c.chars().count();
            if right {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.extend(std::iter::repeat_n(' ', pad));
            }
            l.push_str("  ");
        }
        let _ = writeln!(o, "{}", l.trim_end());
    };
    for (k, (g, r)) in groups.iter().zip(rows.iter()).enumerate() {
        let first = g.iter().map(|p| p.start).min().unwrap_or(0);
        let last = g.iter().map(|p| p.ready).max().unwrap_or(0);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Wave {k} ({}, {} -> {})",
            plural(g.len(), "service", "services"),
            h.ms(first),
            h.ms(last)
        );
        line(&mut o, &header);
        for row in r {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut o, &cells);
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{ESTIMATE_RULE}");
    o
}
