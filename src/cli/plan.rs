//! `meeseeks plan [DIR]`: the recovery schedule and RTO analysis (SPEC §4).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{DirArg, Global, ScopeArgs, VarArgs, emit, emit_with, load_model};
use crate::error::{Result, exit};
use crate::load::LoadOptions;
use crate::model::Mode;
use crate::plan::{PlanOptions, build_plan};
use crate::report::plan as render;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimatesFrom {
    /// Step estimates from the playbooks.
    Playbook,
    /// p90 of measured durations in finished runs of the state directory.
    History,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// The run store with past runs (for --estimates history) and the last preflight
    /// (default: graph.toml's [state] store, else DIR/.meeseeks).
    #[command(flatten)]
    pub store: super::run::StoreArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Max services recovering at once (default: defaults.parallel of graph.toml).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Report the eager schedule (start each service as soon as its dependencies are ready).
    #[arg(long)]
    pub eager: bool,
    /// Plan a drill: steps marked `only = "failover"` do not count (and `only = "drill"` do).
    #[arg(long)]
    pub drill: bool,
    /// Where duration estimates come from.
    #[arg(long, value_enum, default_value_t = EstimatesFrom::Playbook)]
    pub estimates: EstimatesFrom,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 when an RTO breach is predicted.
    #[arg(long)]
    pub strict: bool,
    /// Most schedules the improvement search walks per mode (0: the best priority rule only).
    /// Default: 400 000 / services in scope, at most 2 000, off below 8 (from ~50 000 services).
    #[arg(long, value_name = "N")]
    pub search_budget: Option<usize>,
}

pub fn run(g: &Global, a: &PlanArgs) -> Result<i32> {
    let load = LoadOptions {
        cli_vars: a.vars.map(),
        // A service without a playbook is planned with defaults.estimate: a warning here.
        require_playbooks: false,
        graph_only: false,
        keep_sources: false,
    };
    let model = load_model(g, &a.dir.path(), &load)?;
    let spec = a.store.spec_for(&model)?;
    let history = match a.estimates {
        EstimatesFrom::Playbook => None,
        EstimatesFrom::History => {
            let h = crate::store::history::History::read_spec(&spec)?.unwrap_or_default();
            if !g.quiet {
                for w in &h.warnings {
                    eprintln!("warning: {w}");
                }
                if h.durations.is_empty() {
                    eprintln!(
                        "note: no finished run in {} measured any service; every estimate comes from the playbooks",
                        spec
                    );
                }
            }
            Some(h.p90())
        }
    };
    let opts = PlanOptions {
        scope: a.scope.spec(),
        parallel: a.parallel,
        eager: a.eager,
        mode: if a.drill { Mode::Drill } else { Mode::Failover },
        history,
        search_budget: a.search_budget,
        ..Default::default()
    };
    let plan = build_plan(&model, &opts)?;
    let mut text = match a.format {
        PlanFormat::Text => Some(render::render_text(&plan, &model)),
        PlanFormat::Json => None,
        PlanFormat::Markdown => Some(render::render_markdown(&plan, &model)),
        PlanFormat::Html => Some(render::render_html(&plan, &model)),
    };
    if let Some(t) = text.as_mut().filter(|_| a.format != PlanFormat::Html) {
        let md = a.format == PlanFormat::Markdown;
        crate::preflight::render::append_to_plan(t, &spec, &plan, &model, md);
    }
    match &text {
        Some(text) => emit(a.out.as_deref(), text)?,
        // JSON is rendered straight into the output: a large plan is written while the rest
        // of it is still being rendered.
        None => emit_with(a.out.as_deref(), |w| render::write_json(w, &plan, &model))?,
    }
    let breaches = plan.breaches.len();
    // The process ends right after this command: freeing a 100 000-service model and plan
    // piece by piece would only cost time (~5% of the run), so leave it to the OS.
    std::mem::forget(plan);
    std::mem::forget(model);
    std::mem::forget(text);
    if a.strict && breaches > 0 {
        if !g.quiet {
            eprintln!("error: {breaches} predicted RTO breach(es) (--strict)");
        }
        return Ok(exit::NEGATIVE);
    }
    Ok(exit::OK)
}
