//! Renderers of a [`Plan`], one module per format: text (terminal), json
//! (`meeseeks.plan/v1`), markdown (audit file with a Mermaid gantt) and html (one
//! self-contained file with inline SVG).
//!
//! All of them are pure functions of the plan and the model, and print times from integer
//! milliseconds, so the same input always gives byte-identical output. Human formats round
//! times to a precision that fits the plan's scale (`report::fmt`); JSON keeps milliseconds.
//! Pictures (Mermaid, SVG) are capped in size so that a 100 000-service plan stays readable;
//! tables are complete, and everything is linear in services + edges (long dependency chains
//! are carried whole only for the worst breaches).

use std::fmt::Write as _;

use crate::model::{Model, SvcId, fmt_duration};
use crate::plan::{Ms, Optimality, Plan, PlannedService, Source};
use crate::report::fmt::Human;

mod html;
mod json;
mod markdown;
mod text;

pub use html::render_html;
pub use json::{render_json, write_json};
pub use markdown::render_markdown;
pub use text::render_text;

/// Most services drawn in a Mermaid gantt or an SVG picture.
pub const MAX_DRAWN: usize = 300;
/// Most breaches (and unachievable RTOs) listed in the text summary (json/markdown/html list
/// them all).
const MAX_TEXT_BREACHES: usize = 20;
/// Longest chain printed whole; longer ones keep their root and their end.
const MAX_CHAIN_SHOWN: usize = 12;

/// Durations of one plan, for people: rounded to the precision that fits its makespan.
fn human(plan: &Plan) -> Human {
    Human::for_span(plan.makespan)
}

fn chain_names(model: &Model, chain: &[SvcId], sep: &str) -> String {
    chain
        .iter()
        .map(|&c| model.name(c))
        .collect::<Vec<_>>()
        .join(sep)
}

/// A dependency chain for people, root first. A chain the plan carries only the end of
/// (`chain_len` longer than `chain`) starts with its root and the number left out; a long one
/// keeps its root and its last services.
fn chain_text(model: &Model, chain: &[SvcId], chain_len: usize, root: SvcId, sep: &str) -> String {
    let left_out = chain_len - chain.len();
    let (head, tail): (&[SvcId], &[SvcId]) = if left_out > 0 {
        (&[], chain)
    } else if chain.len() > MAX_CHAIN_SHOWN {
        (&chain[..1], &chain[chain.len() - (MAX_CHAIN_SHOWN - 2)..])
    } else {
        return chain_names(model, chain, sep);
    };
    let skipped = chain_len - head.len() - tail.len();
    let head = if left_out > 0 {
        model.name(root).to_string()
    } else {
        chain_names(model, head, sep)
    };
    // The root was counted as left out when the plan carries only the end.
    let skipped = skipped - usize::from(left_out > 0);
    format!(
        "{head}{sep}… {skipped} more …{sep}{}",
        chain_names(model, tail, sep)
    )
}

/// The breach table's columns, and which are numbers (right-aligned).
const BREACH_HEADER: [&str; 5] = [
    "Service",
    "Late by",
    "Dependency chain",
    "Waiting on the chain",
    "Unachievable",
];
const BREACH_NUMERIC: [bool; 5] = [false, true, false, true, false];

/// The breach table's cells, worst breach first; chains joined with `sep`.
fn breach_rows<'a>(
    plan: &'a Plan,
    model: &'a Model,
    h: Human,
    sep: &'a str,
) -> impl Iterator<Item = [String; 5]> + 'a {
    plan.breaches.iter().map(move |b| {
        [
            model.name(b.id).to_string(),
            h.ms(b.by),
            chain_text(model, &b.chain, b.chain_len, b.chain_root, sep),
            h.ms(b.queued),
            if b.unachievable { "yes" } else { "no" }.to_string(),
        ]
    })
}

/// The unachievable-RTO table's columns, and which are numbers.
const UNACHIEVABLE_HEADER: [&str; 4] = ["Service", "Needs at least", "RTO", "Dependency chain"];
const UNACHIEVABLE_NUMERIC: [bool; 4] = [false, true, true, false];

/// The unachievable-RTO table's cells, by name; chains joined with `sep`.
fn unachievable_rows<'a>(
    plan: &'a Plan,
    model: &'a Model,
    h: Human,
    sep: &'a str,
) -> impl Iterator<Item = [String; 4]> + 'a {
    plan.unachievable.iter().map(move |u| {
        [
            model.name(u.id).to_string(),
            h.ms(u.earliest_ready),
            h.ms(u.rto),
            chain_text(model, &u.chain, u.chain_len, u.chain_root, sep),
        ]
    })
}

/// Services grouped by wave, each group in planned start order.
fn by_wave(plan: &Plan) -> Vec<Vec<&PlannedService>> {
    let mut groups: Vec<Vec<&PlannedService>> = vec![Vec::new(); plan.waves as usize];
    for p in &plan.services {
        groups[p.wave as usize].push(p);
    }
    groups
}

fn critical_set(plan: &Plan, n: usize) -> Vec<bool> {
    let mut on = vec![false; n];
    for &c in &plan.critical_path {
        on[c] = true;
    }
    on
}

fn breached_set(plan: &Plan, n: usize) -> Vec<bool> {
    let mut on = vec![false; n];
    for b in &plan.breaches {
        on[b.id] = true;
    }
    on
}

fn estimates_line(plan: &Plan, model: &Model) -> String {
    let (mut pb, mut def, mut hist) = (0, 0, 0);
    for p in &plan.services {
        match p.estimate.source {
            crate::plan::EstimateSource::Playbook => pb += 1,
            crate::plan::EstimateSource::Default => def += 1,
            crate::plan::EstimateSource::History => hist += 1,
        }
    }
    let mut parts = Vec::new();
    if hist > 0 {
        parts.push(format!("{hist} from history (p90 of finished runs)"));
    }
    if pb > 0 {
        parts.push(format!("{pb} from playbooks"));
    }
    if def > 0 {
        parts.push(format!(
            "{def} defaults.estimate {} (no playbook)",
            fmt_duration(model.defaults.estimate)
        ));
    }
    parts.join(", ")
}

/// How a playbook estimate is made (SPEC §4), printed under the tables.
const ESTIMATE_RULE: &str = "A playbook estimate is the sum of its steps (each step's `estimate`, else its `wait`, \
else its timeout/4, else 30s) plus its checks (interval × (healthy_after − 1), the slowest check).";

/// The objective, as the plan's header states it.
const OBJECTIVE: &str = "fewest RTO breaches, then least total lateness, then shortest makespan";

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn scope_line(plan: &Plan) -> String {
    if plan.services.len() == plan.total_services {
        format!("{} services", plan.services.len())
    } else {
        format!(
            "{} of {} services (scope)",
            plan.services.len(),
            plan.total_services
        )
    }
}

fn makespan_line(plan: &Plan, h: Human) -> String {
    let mut s = format!(
        "waves {} · eager {} · lower bound {}",
        h.ms(plan.makespan_waves),
        h.ms(plan.makespan_eager),
        h.ms(plan.makespan_lower_bound)
    );
    if plan.eager_fallback {
        s.push_str(" (eager walks the waves plan's order: nothing better was found for eager)");
    }
    s
}

fn rto_line(plan: &Plan, h: Human) -> String {
    let mut s = format!(
        "{} met · {} breached (predicted",
        plan.met(),
        plan.breaches.len()
    );
    if plan.lateness() > 0 {
        let _ = write!(s, ", {} late in total", h.ms(plan.lateness()));
    }
    s.push(')');
    if !plan.unachievable.is_empty() {
        let _ = write!(
            s,
            " · {} unachievable even with unlimited parallelism",
            plan.unachievable.len()
        );
    }
    s
}

/// How the schedule was chosen, and the best single rule when something else won.
fn schedule_line(plan: &Plan) -> String {
    let s = &plan.search;
    let by = match s.chosen_by {
        Source::Rule(r) => format!("the priority rule {}", r.as_str()),
        Source::Search => "the improvement search".to_string(),
        Source::Exact => "the exact search".to_string(),
        Source::WavesOrder => "the waves plan's order, without its barriers".to_string(),
    };
    let mut line = format!("chosen by {by}");
    if !matches!(s.chosen_by, Source::Rule(_))
        && let Some((rule, o)) = s.best_rule()
    {
        let _ = write!(
            line,
            "; the best single rule, {}, has {}",
            rule.as_str(),
            plural(o.breaches, "breach", "breaches")
        );
    }
    line
}

/// The search done: rules, improvement walks, exact search.
fn search_line(plan: &Plan) -> String {
    let s = &plan.search;
    let mut line = plural(s.rules.len(), "priority rule", "priority rules");
    if s.rules.len() < crate::plan::Rule::ALL.len() {
        let _ = write!(
            line,
            " (of {}: the portfolio is sampled from {} services on)",
            crate::plan::Rule::ALL.len(),
            crate::plan::LARGE_SCOPE
        );
    }
    if s.budget == 0 {
        line.push_str("; improvement search off (--search-budget N turns it on)");
    } else if s.optimality == Optimality::Exact {
        line.push_str("; exact search over every order");
    } else if s.evaluations > 0 {
        let _ = write!(
            line,
            "; {} of improvement search (budget {}, seed {:#x})",
            plural(s.evaluations, "walk", "walks"),
            s.budget,
            s.seed
        );
    } else {
        line.push_str("; no improvement search needed");
    }
    line
}

/// Whether the plan is proven optimal, and why.
fn optimality_line(plan: &Plan) -> String {
    let n = plan.services.len();
    match plan.search.optimality {
        Optimality::Exact => format!(
            "proven: no order of these {} does better (exact search)",
            plural(n, "service", "services")
        ),
        Optimality::LowerBound => {
            "proven: it meets the lower bounds (unachievable RTOs, makespan bound)".to_string()
        }
        Optimality::NoContention => {
            "proven: a slot for every service, each starts as soon as it may".to_string()
        }
        Optimality::Unknown => format!(
            "not proven (exact search covers scopes of up to {} services)",
            crate::plan::EXACT_MAX_SERVICES
        ),
    }
}

/// The services the plan holds back on purpose, if any.
fn held_line(plan: &Plan, model: &Model) -> Option<String> {
    let held: Vec<&str> = plan
        .services
        .iter()
        .filter(|s| s.held)
        .map(|s| model.name(s.id))
        .collect();
    if held.is_empty() {
        return None;
    }
    let shown = held.len().min(MAX_TEXT_BREACHES);
    let mut line = format!(
        "{} after every service planned before {} has started (a slot stays free meanwhile): {}",
        plural(held.len(), "service starts", "services start"),
        if held.len() == 1 { "it" } else { "them" },
        held[..shown].join(", ")
    );
    if held.len() > shown {
        let _ = write!(line, ", ... and {} more", held.len() - shown);
    }
    Some(line)
}

fn secs(ms: Ms) -> f64 {
    ms as f64 / 1000.0
}
