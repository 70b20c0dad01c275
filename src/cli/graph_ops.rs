//! `graph`, `deps`, `impact`, `audit`, `diff`, `verify`: thin wrappers that load the graph, call
//! one pure function of `crate::graph_ops` and print the report it returns.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{DirArg, DirFlag, Global, emit, load_model};
use crate::error::Result;
use crate::graph_ops::{
    Render, ReportFormat, audit, deps, diff,
    export::{self, Direction, ExportOptions, GraphFormat},
    impact, verify,
};
use crate::load::LoadOptions;
use crate::model::Model;

/// A clap `ValueEnum` of the formats one command accepts, mapped onto [`ReportFormat`], so
/// that `--help` and the error for a wrong value list exactly that command's formats.
macro_rules! formats {
    ($(#[$m:meta])* $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($v),* }

        impl From<$name> for $crate::graph_ops::ReportFormat {
            fn from(f: $name) -> $crate::graph_ops::ReportFormat {
                match f { $($name::$v => $crate::graph_ops::ReportFormat::$v),* }
            }
        }
    };
}

pub(crate) use formats;

formats!(
    /// `deps`, `impact`, `audit`, `verify`.
    FormatArg { Text, Json, Markdown }
);
formats!(
    /// `diff`: the reports plus drawings of what changed.
    DiffFormatArg { Text, Json, Markdown, Html, Mermaid, Dot }
);

/// `--format` and `--out`, shared by the report commands.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Writes a report in `format` to `out` (or stdout) and returns its exit code.
pub fn emit_report(
    r: &impl Render,
    format: impl Into<ReportFormat>,
    out: Option<&Path>,
) -> Result<i32> {
    emit(out, &r.render(format.into())?)?;
    Ok(r.exit_code())
}

/// Graph-only commands need no playbooks: a lone graph.toml is enough.
fn load_graph(g: &Global, path: &Path) -> Result<Model> {
    load_model(
        g,
        path,
        &LoadOptions {
            graph_only: true,
            ..Default::default()
        },
    )
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormatArg {
    Dot,
    Mermaid,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectionArg {
    /// Recovery order left to right.
    Lr,
    /// Recovery order top to bottom.
    Td,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// dot (Graphviz), mermaid (flowchart) or json (meeseeks.graph/v1, sorted).
    #[arg(long, value_enum, default_value_t = GraphFormatArg::Dot)]
    pub format: GraphFormatArg,
    /// Only this service's neighbourhood: its dependencies and dependents.
    #[arg(long, value_name = "SVC")]
    pub focus: Option<String>,
    /// Hops from --focus, in both directions (default: unlimited).
    #[arg(long, value_name = "N", requires = "focus")]
    pub depth: Option<usize>,
    /// Layout direction (dot, mermaid).
    #[arg(long, value_enum, default_value_t = DirectionArg::Lr)]
    pub direction: DirectionArg,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn graph(g: &Global, a: &GraphArgs) -> Result<i32> {
    let m = load_graph(g, &a.dir.path())?;
    let opts = ExportOptions {
        focus: a.focus.clone(),
        depth: a.depth,
        direction: match a.direction {
            DirectionArg::Lr => Direction::LeftRight,
            DirectionArg::Td => Direction::TopDown,
        },
    };
    let format = match a.format {
        GraphFormatArg::Dot => GraphFormat::Dot,
        GraphFormatArg::Mermaid => GraphFormat::Mermaid,
        GraphFormatArg::Json => GraphFormat::Json,
    };
    emit(a.out.as_deref(), &export::export(&m, &opts, format)?)?;
    Ok(crate::error::exit::OK)
}

#[derive(Args, Debug)]
pub struct DepsArgs {
    /// The service whose needs to list.
    pub service: String,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn deps(g: &Global, a: &DepsArgs) -> Result<i32> {
    let m = load_graph(g, &a.dir.path())?;
    let r = deps::deps(&m, &a.service)?;
    emit_report(&r, a.output.format, a.output.out.as_deref())
}

#[derive(Args, Debug)]
pub struct ImpactArgs {
    /// The service(s) lost.
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
    #[command(flatten)]
    pub dir: DirFlag,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn impact(g: &Global, a: &ImpactArgs) -> Result<i32> {
    let m = load_graph(g, &a.dir.path())?;
    let r = impact::impact(&m, &a.services)?;
    emit_report(&r, a.output.format, a.output.out.as_deref())
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub output: OutputArgs,
    /// A service not successfully drilled for longer than this is `drill-stale`.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub drill_max_age: std::time::Duration,
    /// `spof`: a service whose loss takes down at least this share of tier-0 services.
    #[arg(long, value_name = "SHARE", default_value_t = 0.30)]
    pub spof_share: f64,
    /// Accept a finding kind (repeatable or comma-separated): not reported, never fails.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// The run store with the run and preflight history (default: graph.toml's [state]
    /// store, else DIR/.meeseeks).
    #[command(flatten)]
    pub store: super::run::StoreArgs,
    /// A service whose last recorded `meeseeks preflight` is older than this is `preflight-stale`.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub preflight_max_age: std::time::Duration,
}

/// The run history `drill-stale` needs, replayed from the state directory's journals
/// (`journal::history`, which leaves dry runs out). `None` — the check is skipped with a note —
/// while no run was ever recorded there; unreadable runs are left out with a warning.
pub fn drill_history(spec: &crate::store::StoreSpec) -> Option<audit::DrillHistory> {
    match crate::store::history::History::read_spec(spec) {
        Ok(None) => None,
        Ok(Some(h)) => {
            for w in &h.warnings {
                tracing::warn!("drill-stale: {w}");
            }
            let mut d = audit::DrillHistory::new();
            for (svc, at) in h.last_drill {
                d.record(&svc, at);
            }
            for (svc, (m, run_id)) in h.last_rpo {
                let (window_s, newest, until) = (m.window_s, m.newest, m.until);
                let m = audit::MeasuredRpo {
                    window_s,
                    newest,
                    until,
                    run_id,
                };
                d.record_rpo(&svc, m);
            }
            Some(d)
        }
        Err(e) => {
            tracing::warn!("drill-stale: cannot read the run history: {e}");
            None
        }
    }
}

pub fn audit(g: &Global, a: &AuditArgs) -> Result<i32> {
    // Missing playbooks are audit findings: drop the loader's duplicate warnings about them.
    let loaded = crate::load::load(&a.dir.path(), &LoadOptions::default());
    let color = g.color_stderr();
    let (m, mut diags) = loaded.into_result(color)?;
    diags.items.retain(|d| d.code != "no-playbook");
    if !g.quiet && !diags.is_empty() {
        eprint!("{}", diags.render(color));
    }
    let mut opts = audit::AuditOptions::new(jiff::Timestamp::now());
    opts.drill_max_age = a.drill_max_age;
    opts.spof_share = a.spof_share;
    opts.allow = a.allow.clone();
    let spec = a.store.spec_for(&m)?;
    let history = drill_history(&spec);
    opts.preflight = super::preflight::audit_input(&spec);
    opts.preflight_max_age = a.preflight_max_age;
    let r = audit::audit(&m, &opts, history.as_ref())?;
    emit_report(&r, a.output.format, a.output.out.as_deref())
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The previous graph: a graph.toml file or a DR directory.
    pub old: PathBuf,
    /// The new graph: a graph.toml file or a DR directory.
    pub new: PathBuf,
    /// Also watch this service for new dependents (repeatable or comma-separated).
    #[arg(long, value_name = "SVC", value_delimiter = ',')]
    pub watch: Vec<String>,
    /// Do not send the `graph.new_dependents` webhooks of NEW.
    #[arg(long)]
    pub no_notify: bool,
    /// Output format; html, mermaid and dot draw what changed (added green, removed red,
    /// changed amber).
    #[arg(long, value_enum, default_value_t = DiffFormatArg::Text)]
    pub format: DiffFormatArg,
    /// Drawings: unchanged services within N hops of a change are drawn as context; `all`
    /// draws the whole graph.
    #[arg(long, value_name = "N|all", default_value = "1", value_parser = parse_context)]
    pub context: Context,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `--context N|all`: `None` is the whole graph.
#[derive(Debug, Clone, Copy)]
pub struct Context(pub Option<usize>);

fn parse_context(s: &str) -> std::result::Result<Context, String> {
    match s {
        "all" => Ok(Context(None)),
        n => n
            .parse()
            .map(|n| Context(Some(n)))
            .map_err(|_| format!("`{s}` is not a number of hops or `all`")),
    }
}

pub fn diff(g: &Global, a: &DiffArgs) -> Result<i32> {
    // The two loads dominate the command's time and are independent: run them side by side.
    let opts = LoadOptions {
        graph_only: true,
        ..Default::default()
    };
    let (old, new) = std::thread::scope(|s| {
        let old = s.spawn(|| crate::load::load(&a.old, &opts));
        let new = crate::load::load(&a.new, &opts);
        (old.join(), new)
    });
    let old = old.map_err(|_| crate::Error::Other("loading OLD panicked".into()))?;
    let color = g.color_stderr();
    let mut graphs = Vec::with_capacity(2);
    for loaded in [old, new] {
        let (m, diags) = loaded.into_result(color)?;
        if !g.quiet && !diags.is_empty() {
            eprint!("{}", diags.render(color));
        }
        graphs.push(m);
    }
    let new = graphs.pop().expect("two graphs");
    let old = graphs.pop().expect("two graphs");
    let r = diff::diff(
        &old,
        &new,
        &diff::DiffOptions {
            watch: a.watch.clone(),
        },
    )?;
    let picture = matches!(
        a.format,
        DiffFormatArg::Html | DiffFormatArg::Mermaid | DiffFormatArg::Dot
    )
    .then(|| crate::graph_ops::draw::picture(&old, &new, &r, a.context.0));
    let view = crate::graph_ops::draw::DiffView { report: r, picture };
    let code = emit_report(&view, a.format, a.out.as_deref())?;
    let r = view.report;
    if !a.no_notify {
        send_new_dependents(&new, &r, g.quiet);
    }
    Ok(code)
}

/// Sends `graph.new_dependents` once to each of NEW's webhooks that subscribe to it, waiting
/// at most 30 s in all. Delivery problems are warnings: the exit code already says "new
/// dependents", and a dead webhook must not turn a CI check into a usage error.
pub fn send_new_dependents(new: &Model, r: &diff::DiffReport, quiet: bool) {
    let Some(json) = r.notification() else {
        return;
    };
    if diff::new_dependents_webhooks(new).is_empty() {
        return;
    }
    let msg = crate::notify::Message {
        event: diff::NEW_DEPENDENTS_EVENT.to_string(),
        text: json["text"].as_str().unwrap_or_default().to_string(),
        json,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warning: cannot send webhooks: {e}");
            return;
        }
    };
    let deliveries = rt.block_on(crate::notify::send_once(
        &new.notify,
        &crate::mask::Masker::new(),
        &msg,
        std::time::Duration::from_secs(30),
    ));
    for d in deliveries {
        match d.result {
            Ok(()) if !quiet => eprintln!("notified {} ({})", d.endpoint, msg.event),
            Ok(()) => {}
            Err(e) => eprintln!("warning: webhook {} failed: {e}", d.endpoint),
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedFormatArg {
    /// By extension (.json / .csv), else by content.
    Auto,
    /// Jaeger dependencies JSON: [{"parent","child","callCount"}].
    Jaeger,
    /// caller,callee[,count]
    Csv,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Observed dependencies: Jaeger dependencies JSON or CSV `caller,callee[,count]`.
    #[arg(long, value_name = "FILE")]
    pub observed: PathBuf,
    #[arg(long, value_enum, default_value_t = ObservedFormatArg::Auto)]
    pub observed_format: ObservedFormatArg,
    /// Ignore observed edges with fewer calls (noise).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_calls: u64,
    /// Print the TOML that declares the undeclared dependencies (per service, merged with
    /// its declared ones) instead of the report.
    #[arg(long, conflicts_with = "format")]
    pub suggest: bool,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn verify(g: &Global, a: &VerifyArgs) -> Result<i32> {
    let m = load_graph(g, &a.dir.path())?;
    let format = match a.observed_format {
        ObservedFormatArg::Auto => verify::ObservedFormat::Auto,
        ObservedFormatArg::Jaeger => verify::ObservedFormat::Jaeger,
        ObservedFormatArg::Csv => verify::ObservedFormat::Csv,
    };
    let observed = verify::read_observed(&a.observed, format)?;
    let r = verify::verify(
        &m,
        &observed,
        &verify::VerifyOptions {
            min_calls: a.min_calls,
        },
    );
    if a.suggest {
        emit(a.output.out.as_deref(), &verify::suggest(&m, &r))?;
        return Ok(r.exit_code());
    }
    emit_report(&r, a.output.format, a.output.out.as_deref())
}
