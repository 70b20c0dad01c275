//! The audit report in Markdown: summary, breaches, a Mermaid gantt (renders on GitHub and
//! GitLab), the per-wave table and where every estimate came from.

use std::fmt::Write as _;

use super::{
    BREACH_HEADER, BREACH_NUMERIC, ESTIMATE_RULE, MAX_DRAWN, OBJECTIVE, UNACHIEVABLE_HEADER,
    UNACHIEVABLE_NUMERIC, breach_rows, breached_set, by_wave, chain_names, critical_set,
    estimates_line, held_line, human, makespan_line, optimality_line, rto_line, schedule_line,
    scope_line, search_line, unachievable_rows,
};
use crate::model::Model;
use crate::plan::{Plan, PlannedService};

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Mermaid task names may not contain `:` `#` `;` (they delimit the task syntax).
fn mermaid_name(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, ':' | '#' | ';') { '_' } else { c })
        .collect()
}

/// A table: the header, the alignment row (numbers right-aligned), one row per item. Cells
/// are escaped for a table cell.
fn table<const N: usize>(
    o: &mut String,
    header: &[&str; N],
    numeric: &[bool; N],
    rows: impl Iterator<Item = [String; N]>,
) {
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let align: Vec<&str> = numeric
        .iter()
        .map(|&n| if n { "---:" } else { "---" })
        .collect();
    let _ = writeln!(o, "|{}|", align.join("|"));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
}

pub fn render_markdown(plan: &Plan, model: &Model) -> String {
    let h = human(plan);
    let mut o = String::new();
    let _ = writeln!(o, "# Recovery plan\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| Scope | {} in {} waves |",
        scope_line(plan),
        plan.waves
    );
    let _ = writeln!(
        o,
        "| Schedule | {} mode, {}, parallel {} |",
        plan.mode,
        plan.strategy.as_str(),
        plan.parallel
    );
    let _ = writeln!(o, "| Makespan | {} |", makespan_line(plan, h));
    let _ = writeln!(o, "| RTOs | {} |", rto_line(plan, h));
    let _ = writeln!(o, "| Objective | {OBJECTIVE} |");
    let _ = writeln!(o, "| Order | {} |", md_cell(&schedule_line(plan)));
    let _ = writeln!(o, "| Search | {} |", md_cell(&search_line(plan)));
    let _ = writeln!(o, "| Optimal | {} |", md_cell(&optimality_line(plan)));
    if let Some(held) = held_line(plan, model) {
        let _ = writeln!(o, "| Held back | {} |", md_cell(&held));
    }
    let _ = writeln!(
        o,
        "| Critical path | {}: {} |",
        h.ms(plan.critical_path_len),
        md_cell(&chain_names(model, &plan.critical_path, " → "))
    );
    let _ = writeln!(
        o,
        "| Estimates | {} |",
        md_cell(&estimates_line(plan, model))
    );

    if !plan.breaches.is_empty() {
        let _ = writeln!(o, "\n## Predicted RTO breaches\n");
        table(
            &mut o,
            &BREACH_HEADER,
            &BREACH_NUMERIC,
            breach_rows(plan, model, h, " → "),
        );
    }
    if !plan.unachievable.is_empty() {
        let _ = writeln!(
            o,
            "\n## RTOs unachievable even with unlimited parallelism\n"
        );
        table(
            &mut o,
            &UNACHIEVABLE_HEADER,
            &UNACHIEVABLE_NUMERIC,
            unachievable_rows(plan, model, h, " → "),
        );
    }

    // Mermaid gantt. `dateFormat x` reads integer milliseconds, so the bars are exact; the axis
    // shows clock time from the epoch, i.e. elapsed time from the declaration.
    let _ = writeln!(o, "\n## Timeline\n");
    if plan.services.len() > MAX_DRAWN {
        let _ = writeln!(
            o,
            "The chart shows the first {MAX_DRAWN} of {} services by planned start.\n",
            plan.services.len()
        );
    }
    let crit = critical_set(plan, model.services.len());
    let breached = breached_set(plan, model.services.len());
    let _ = writeln!(o, "```mermaid\ngantt");
    let _ = writeln!(
        o,
        "    title Planned recovery ({} mode)",
        plan.strategy.as_str()
    );
    let _ = writeln!(o, "    dateFormat x");
    let _ = writeln!(o, "    axisFormat %H:%M:%S");
    let _ = writeln!(o, "    todayMarker off");
    let drawn: Vec<&PlannedService> = plan.services.iter().take(MAX_DRAWN).collect();
    let mut groups: Vec<Vec<&PlannedService>> = vec![Vec::new(); plan.waves as usize];
    for p in &drawn {
        groups[p.wave as usize].push(p);
    }
    for (k, g) in groups.iter().enumerate() {
        if g.is_empty() {
            continue;
        }
        let _ = writeln!(o, "    section Wave {k}");
        for p in g {
            let tag = if breached[p.id] {
                "crit, "
            } else if crit[p.id] {
                "active, "
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "    {} :{}{}, {}",
                mermaid_name(model.name(p.id)),
                tag,
                p.start,
                p.ready
            );
        }
    }
    let late: Vec<&PlannedService> = drawn.iter().copied().filter(|p| p.slack < 0).collect();
    if !late.is_empty() {
        let _ = writeln!(o, "    section RTO deadlines missed");
        for p in late {
            let _ = writeln!(
                o,
                "    {} RTO :milestone, crit, {}, {}",
                mermaid_name(model.name(p.id)),
                p.rto,
                p.rto
            );
        }
    }
    let _ = writeln!(o, "```");
    let _ = writeln!(
        o,
        "\nRed: predicted RTO breach. Highlighted: critical path. Times are elapsed from the \
         declaration of the disaster (the axis reads them as a clock from 00:00:00)."
    );

    let _ = writeln!(o, "\n## Schedule by wave\n");
    let _ = writeln!(
        o,
        "| Wave | Service | Tier | Start | Ready | RTO | Slack | Estimate | Source |"
    );
    let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (k, g) in by_wave(plan).iter().enumerate() {
        for p in g {
            let s = &model.services[p.id];
            let slack = if p.slack < 0 {
                format!("**{}**", h.signed(p.slack))
            } else {
                h.signed(p.slack)
            };
            let _ = writeln!(
                o,
                "| {k} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&s.name),
                s.tier,
                h.ms(p.start),
                h.ms(p.ready),
                h.ms(p.rto),
                slack,
                h.ms(p.dur),
                p.estimate.source.as_str()
            );
        }
    }

    let with_steps: Vec<&PlannedService> = plan
        .services
        .iter()
        .filter(|p| p.estimate.source == crate::plan::EstimateSource::Playbook)
        .collect();
    if !with_steps.is_empty() {
        let _ = writeln!(o, "\n## Where the playbook estimates come from\n");
        let _ = writeln!(o, "{ESTIMATE_RULE}\n");
        let _ = writeln!(o, "| Service | Step | Estimate | Rule |");
        let _ = writeln!(o, "|---|---|---:|---|");
        for p in with_steps {
            let name = md_cell(model.name(p.id));
            for st in &p.estimate.steps {
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | {} |",
                    md_cell(&st.name),
                    h.secs(st.secs),
                    st.rule
                );
            }
            let _ = writeln!(
                o,
                "| {name} | *checks* | {} | interval × (healthy_after − 1) |",
                h.secs(p.estimate.checks_secs)
            );
        }
    }
    o
}
