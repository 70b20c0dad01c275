//! Command-line interface: every flag defined once (clap), validated into options before any
//! work starts; one small module per command. `main.rs` only maps the result to an exit code.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::load::{LoadOptions, Loaded};
use crate::model::{Model, VarValue};

pub mod completions;
pub mod graph_ops;
pub mod history;
pub mod import;
pub mod init;
pub mod plan;
pub mod preflight;
pub mod run;
pub mod runs;
pub mod schema;
pub mod serve;
pub mod templates;
pub mod validate;

#[derive(Parser, Debug)]
#[command(
    name = "meeseeks",
    version,
    about = "Disaster-recovery orchestration: plan, drill and execute service failovers in dependency order, within their RTOs",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only the result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Plain timestamped lines instead of progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Global {
    /// Colour on stdout: only on a terminal and never with NO_COLOR.
    pub fn color_stdout(&self) -> bool {
        std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
    }

    pub fn color_stderr(&self) -> bool {
        std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load and check graph + playbooks; report every problem at once.
    Validate(validate::ValidateArgs),
    /// List the playbook template library, or show one template's parameters.
    Templates(templates::TemplatesArgs),
    /// Scaffold a DR directory: a commented graph.toml and one playbook per service.
    Init(init::InitArgs),
    /// The recovery schedule and RTO analysis (the audit/planning report).
    Plan(plan::PlanArgs),
    /// Execute a failover (`--drill` for a drill, `--dry-run` to execute nothing).
    Run(run::RunArgs),
    /// A drill: same as `run --drill`.
    Drill(run::RunArgs),
    /// Continue an interrupted, crashed or failed run from its journal.
    Resume(run::ResumeArgs),
    /// Would a failover work now? Read-only readiness checks of every service in scope.
    Preflight(preflight::PreflightArgs),
    /// Run the cleanup steps of a drill's services, dependents first.
    Cleanup(runs::CleanupArgs),
    /// State of a run, per service and step, from its journal.
    Status(runs::StatusArgs),
    /// List runs in the state directory.
    Runs(runs::RunsArgs),
    /// Report of a run or drill: text, markdown, html, json or junit.
    Report(runs::ReportArgs),
    /// Approve a pending manual step from another terminal.
    Approve(runs::ApproveArgs),
    /// A stand-in HTTP/TCP service for rehearsals, demos and tests.
    Stub(crate::stub::StubArgs),
    /// The war room: a live web page of every run, approvals, Prometheus metrics.
    Serve(serve::ServeArgs),
    /// Export the graph: --format dot|mermaid|json, --focus SVC --depth N.
    Graph(graph_ops::GraphArgs),
    /// What SERVICE needs, transitively, with the paths.
    Deps(graph_ops::DepsArgs),
    /// Blast radius: who goes down (essential) or degrades (optional).
    Impact(graph_ops::ImpactArgs),
    /// Compliance findings; exit 1 on any error finding.
    Audit(graph_ops::AuditArgs),
    /// Graph evolution between OLD and NEW; exit 1 when watched services gained dependents.
    Diff(graph_ops::DiffArgs),
    /// Declared graph vs dependencies observed in traffic; exit 1 on undeclared ones.
    Verify(graph_ops::VerifyArgs),
    /// How the graph evolved in git: per commit, services and edges added/removed, tier/RTO
    /// changes, new dependents of watched services.
    History(history::HistoryArgs),
    /// Shell completions generated from the command definitions (bash, zsh, fish, …).
    Completions(completions::CompletionsArgs),
    /// The man page (roff) on stdout; `meeseeks man COMMAND` for one command's page.
    Man(completions::ManArgs),
    /// JSON Schema (draft 2020-12) of graph.toml or playbooks, for TOML language servers.
    Schema(schema::SchemaArgs),
    /// Import services from where the graph already lives (a Backstage catalog) as a fragment.
    Import(import::ImportArgs),
}

/// The DR directory of a command with no other positional argument: `meeseeks plan DIR`,
/// or `-C DIR` / `--dir DIR` (one form for every command, SPEC §10). Default: `.`.
#[derive(Args, Debug, Clone, Default)]
pub struct DirArg {
    /// DR directory holding graph.toml and playbooks/ (default: the current directory).
    #[arg(value_name = "DIR", conflicts_with = "dir_flag")]
    pub dir_pos: Option<PathBuf>,
    /// The DR directory, as an option (same as the positional DIR).
    #[arg(short = 'C', long = "dir", id = "dir_flag", value_name = "DIR")]
    pub dir_flag: Option<PathBuf>,
}

impl DirArg {
    pub fn path(&self) -> PathBuf {
        self.dir_pos
            .clone()
            .or_else(|| self.dir_flag.clone())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Whether the user named a directory (commands that can find it elsewhere, such as a
    /// run's recorded DR directory, only override that when one was given).
    pub fn given(&self) -> Option<PathBuf> {
        self.dir_pos.clone().or_else(|| self.dir_flag.clone())
    }
}

/// The DR directory of a command whose positional arguments are something else (`impact
/// SERVICE...`, `status RUN_ID`): `-C DIR` / `--dir DIR` only. Default: `.`.
#[derive(Args, Debug, Clone, Default)]
pub struct DirFlag {
    /// DR directory holding graph.toml and playbooks/ (default: the current directory).
    #[arg(short = 'C', long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl DirFlag {
    pub fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn given(&self) -> Option<PathBuf> {
        self.dir.clone()
    }
}

/// `--var k=v`, repeatable.
#[derive(Args, Debug, Clone, Default)]
pub struct VarArgs {
    /// Template variable, highest precedence (repeatable): --var dr_site=dc2
    #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

impl VarArgs {
    pub fn map(&self) -> BTreeMap<String, VarValue> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), VarValue::String(v.clone())))
            .collect()
    }
}

fn parse_var(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not K=V (e.g. --var dr_site=dc2)")),
    }
}

/// Scope selection shared by plan / run / drill.
#[derive(Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Recover only these services (comma-separated) and their essential dependencies.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub services: Vec<String>,
    /// Only services with this tag (repeatable, all must match), plus their dependencies.
    #[arg(long = "tag", value_name = "K=V", value_parser = parse_var)]
    pub tags: Vec<(String, String)>,
    /// Only services of tier <= N, plus their dependencies.
    #[arg(long, value_name = "N")]
    pub max_tier: Option<u32>,
}

impl ScopeArgs {
    pub fn spec(&self) -> crate::plan::ScopeSpec {
        crate::plan::ScopeSpec {
            services: self.services.clone(),
            tags: self.tags.iter().cloned().collect(),
            max_tier: self.max_tier,
        }
    }
}

/// Loads a DR directory (or a lone graph file), printing warnings to stderr unless quiet.
/// Invalid input becomes `Error::Invalid` with every diagnostic rendered (exit 2).
pub fn load_model(global: &Global, path: &std::path::Path, opts: &LoadOptions) -> Result<Model> {
    let loaded: Loaded = crate::load::load(path, opts);
    let color = global.color_stderr();
    let (model, diags) = loaded.into_result(color)?;
    if !global.quiet && !diags.is_empty() {
        eprint!("{}", diags.render(color));
    }
    Ok(model)
}

/// Writes command output to `--out FILE` or stdout.
pub fn emit(out: Option<&std::path::Path>, text: &str) -> Result<()> {
    emit_with(out, |w| w.write_all(text.as_bytes()))
}

/// [`emit`] for output that `write` renders straight into the destination (`--out FILE` or
/// stdout), rather than into a string first.
pub fn emit_with(
    out: Option<&std::path::Path>,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    match out {
        Some(p) => std::fs::File::create(p)
            .and_then(|mut f| write(&mut f))
            .map_err(|e| Error::io(format!("cannot write {}", p.display()), e)),
        None => {
            use std::io::Write;
            let mut so = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a stack trace.
            let _ = write(&mut so);
            let _ = so.flush();
            Ok(())
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Validate(a) => validate::run(g, &a),
        Command::Templates(a) => templates::run(g, &a),
        Command::Init(a) => init::run(g, &a),
        Command::Plan(a) => plan::run(g, &a),
        Command::Run(a) => run::run(g, &a, false),
        Command::Drill(a) => run::run(g, &a, true),
        Command::Resume(a) => run::resume(g, &a),
        Command::Cleanup(a) => runs::cleanup(g, &a),
        Command::Preflight(a) => preflight::run(g, &a),
        Command::Status(a) => runs::status(g, &a),
        Command::Runs(a) => runs::runs(g, &a),
        Command::Report(a) => runs::report(g, &a),
        Command::Approve(a) => runs::approve(g, &a),
        Command::Stub(a) => crate::stub::run(&a),
        Command::Serve(a) => serve::run(g, &a),
        Command::Graph(a) => graph_ops::graph(g, &a),
        Command::Deps(a) => graph_ops::deps(g, &a),
        Command::Impact(a) => graph_ops::impact(g, &a),
        Command::Audit(a) => graph_ops::audit(g, &a),
        Command::Diff(a) => graph_ops::diff(g, &a),
        Command::Verify(a) => graph_ops::verify(g, &a),
        Command::Import(a) => import::run(g, &a),
        Command::History(a) => history::run(g, &a),
        Command::Completions(a) => completions::completions(&a),
        Command::Man(a) => completions::man(&a),
        Command::Schema(a) => schema::run(g, &a),
    }
}

/// Sets up `tracing` on stderr: RUST_LOG wins, else -v/-q pick the level.
pub fn init_tracing(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(g.color_stderr());
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
