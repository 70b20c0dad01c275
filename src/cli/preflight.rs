//! `meeseeks preflight [DIR]`: would a failover work now? (SPEC §10)

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::run::StoreArgs;
use super::{DirArg, Global, ScopeArgs, VarArgs, emit, load_model};
use crate::error::{Error, Result, exit};
use crate::load::LoadOptions;
use crate::mask::Masker;
use crate::model::{Mode, Model};
use crate::plan::Scope;
use crate::preflight::record::PreflightLog;
use crate::preflight::{Options, Report, Status, evaluate, render, watch};
use crate::store::StoreSpec;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightFormat {
    Text,
    Json,
    Markdown,
    Junit,
}

#[derive(Args, Debug)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Check what a drill would run (`only = "drill"` steps) rather than a failover.
    #[arg(long)]
    pub drill: bool,
    /// Output format (json: `meeseeks.preflight/v1`; junit: a test case per service).
    #[arg(long, value_enum, default_value_t = PreflightFormat::Text)]
    pub format: PreflightFormat,
    /// Write the report to FILE instead of stdout (with --every: rewritten after each
    /// evaluation).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Keep running: evaluate every DUR (e.g. 30m), record each evaluation and send the
    /// `preflight.changed` webhooks when a service's status changes. Ctrl-C stops it.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
    /// Probes in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub parallel: usize,
    /// Bound on reaching one step or check endpoint: resolve, connect, TLS handshake.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// A TLS certificate with fewer days left than this makes its service not ready.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub cert_min_days: i64,
    /// Where evaluations are recorded: the run store (default: graph.toml's [state] store,
    /// else DIR/.meeseeks).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Do not record this evaluation.
    #[arg(long, conflicts_with = "every")]
    pub no_record: bool,
}

fn load_opts(a: &PreflightArgs) -> LoadOptions {
    LoadOptions {
        cli_vars: a.vars.map(),
        // A service without a playbook is a finding of its own (not ready), not a load error.
        require_playbooks: false,
        graph_only: false,
        keep_sources: false,
    }
}

fn options(a: &PreflightArgs, state_dir: PathBuf) -> Options {
    let mut o = Options::new(state_dir);
    o.mode = if a.drill { Mode::Drill } else { Mode::Failover };
    o.cli_vars = a.vars.map();
    o.parallel = a.parallel;
    o.connect_timeout = a.connect_timeout;
    o.cert_min_days = a.cert_min_days;
    o
}

fn render(r: &Report, format: PreflightFormat, color: bool) -> String {
    match format {
        PreflightFormat::Text => render::text(r, color),
        PreflightFormat::Json => render::json(r),
        PreflightFormat::Markdown => render::markdown(r),
        PreflightFormat::Junit => render::junit(r),
    }
}

/// Cancels `cancel` on the first SIGINT or SIGTERM.
fn cancel_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        cancel.cancel();
    });
}

pub fn run(g: &Global, a: &PreflightArgs) -> Result<i32> {
    if a.parallel == 0 {
        return Err(Error::Usage("--parallel must be at least 1".into()));
    }
    if a.every.is_some_and(|d| d.is_zero()) {
        return Err(Error::Usage(
            "--every must be longer than zero (e.g. --every 30m)".into(),
        ));
    }
    if a.connect_timeout.is_zero() {
        return Err(Error::Usage(
            "--connect-timeout must be longer than zero".into(),
        ));
    }
    let model = load_model(g, &a.dir.path(), &load_opts(a))?;
    let scope = crate::plan::select_scope(&model, &a.scope.spec())?;
    let spec = a.store.spec_for(&model)?;
    let opts = options(a, spec.local().to_path_buf());
    let log = PreflightLog::new(&spec);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    let cancel = CancellationToken::new();
    match a.every {
        None => {
            let report = rt.block_on(async {
                cancel_on_signal(cancel.clone());
                evaluate(&model, &scope, &opts, &Masker::new(), &cancel).await
            });
            if cancel.is_cancelled() {
                eprintln!("preflight interrupted: nothing recorded");
                return Ok(exit::INTERRUPTED);
            }
            if !a.no_record
                && let Err(e) = rt.block_on(log.record(&report))
                && !g.quiet
            {
                eprintln!("warning: {e}");
            }
            let color = a.out.is_none() && g.color_stdout();
            emit(a.out.as_deref(), &render(&report, a.format, color))?;
            Ok(report.exit_code())
        }
        Some(every) => {
            rt.block_on(async {
                cancel_on_signal(cancel.clone());
                watch_loop(g, a, every, &opts, &log, &cancel, (model, scope)).await
            });
            if !g.quiet {
                eprintln!("preflight --every stopped");
            }
            Ok(exit::INTERRUPTED)
        }
    }
}

async fn watch_loop(
    g: &Global,
    a: &PreflightArgs,
    every: Duration,
    opts: &Options,
    log: &PreflightLog,
    cancel: &CancellationToken,
    first: (Model, Scope),
) {
    let mut first = Some(first);
    let dir = a.dir.path();
    let lo = load_opts(a);
    let color = g.color_stderr();
    // The first round uses the model loaded (and its warnings printed) already; later rounds
    // re-read the files quietly.
    let mut load = move || -> Result<(Model, Scope)> {
        if let Some(f) = first.take() {
            return Ok(f);
        }
        let (model, _) = crate::load::load(&dir, &lo).into_result(color)?;
        let scope = crate::plan::select_scope(&model, &a.scope.spec())?;
        Ok((model, scope))
    };
    let mut on_report = |e: watch::Evaluated<'_>| {
        for w in &e.warnings {
            eprintln!("warning: {w}");
        }
        if let Some(out) = &a.out {
            let text = render(e.report, a.format, false);
            if let Err(err) = write_atomic(out, text.as_bytes()) {
                eprintln!("warning: cannot write {}: {err}", out.display());
            }
        } else if a.format == PreflightFormat::Json {
            // JSON Lines: one evaluation per line, for a log shipper.
            if let Ok(line) = serde_json::to_string(e.report) {
                println!("{line}");
            }
        } else if a.format != PreflightFormat::Text {
            print!("{}", render(e.report, a.format, false));
        }
        if a.out.is_some() || a.format == PreflightFormat::Text {
            if g.quiet {
                return;
            }
            println!("{}", render::summary_line(e.report));
            for c in e.changes {
                let why = c
                    .problems
                    .first()
                    .map(|p| format!(": {} ({}:{}): {}", p.check, p.file, p.line, p.reason))
                    .unwrap_or_default();
                println!(
                    "  {} {} → {}{why}",
                    c.service,
                    c.from.map(Status::label).unwrap_or("new"),
                    c.to.label()
                );
            }
        }
    };
    let mut on_error = |e: &Error| {
        let msg = e.to_string();
        if matches!(e, Error::Invalid(_)) {
            eprint!("{msg}");
            eprintln!("preflight: graph or playbooks invalid, this round skipped");
        } else {
            eprintln!("warning: {msg}");
        }
    };
    watch::run(
        every,
        opts,
        log,
        cancel,
        &mut load,
        &mut on_report,
        &mut on_error,
    )
    .await;
}

/// Replaces `path` at once, so a reader (a dashboard, a status page) never sees half a report.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The last recorded preflight status of each service, for `audit`'s `not-ready` and
/// `preflight-stale` findings; `None` while no evaluation was ever recorded in `store`.
pub fn audit_input(store: &StoreSpec) -> Option<crate::graph_ops::audit::PreflightSeen> {
    let log = PreflightLog::new(store);
    let seen = match PreflightLog::blocking(log.last_seen()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("preflight findings skipped: {e}");
            return None;
        }
    };
    if seen.is_empty() {
        return None;
    }
    let mut out = crate::graph_ops::audit::PreflightSeen::new();
    for (name, s) in seen {
        let why = s
            .problem
            .map(|p| format!("{}: {} ({}:{})", p.check, p.reason, p.file, p.line))
            .unwrap_or_default();
        out.record(&name, s.at, s.status.label(), why);
    }
    Some(out)
}
