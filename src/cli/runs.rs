//! `status`, `runs`, `report`, `approve`: read-only views of a store's runs (plus the
//! approval drop), all built on the journal replay; and `cleanup`, which journals in the run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::run::StoreArgs;
use super::{DirArg, DirFlag, Global, emit};
use crate::error::{Error, Result, exit};
use crate::report::run::{self as report, ReportFormat};
use crate::store::{Store, StoreSpec};

/// Where the runs are: `-C DIR` / `--dir DIR` (its `.meeseeks/`), `--state-dir`, `--store`.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    #[command(flatten)]
    pub dir: DirFlag,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl StateArgs {
    pub fn spec(&self) -> Result<StoreSpec> {
        self.store.spec(&self.dir.path())
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_enum, default_value_t = RunsFormat::Text)]
    pub format: RunsFormat,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 when any RTO was breached (not only on failures).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    pub run_id: String,
    pub service: String,
    /// The manual step to approve (default: the one the service waits on).
    #[arg(long)]
    pub step: Option<String>,
    /// Who approves (default: $USER@host).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    /// Time between SIGTERM and SIGKILL when a cleanup step times out (default: the run's).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kill_grace: Option<Duration>,
}

/// Runs a read of the store on a small runtime of its own.
fn with_store<T>(spec: &StoreSpec, f: impl AsyncFnOnce(&Store) -> Result<T>) -> Result<T> {
    let rt = crate::exec::runtime(false)?;
    rt.block_on(async {
        let store = Store::open(spec, false).await?;
        f(&store).await
    })
}

fn print(text: &str, code: i32, out: Option<&std::path::Path>, g: &Global) -> Result<i32> {
    if !(g.quiet && out.is_none() && code == 0) {
        emit(out, text)?;
    }
    Ok(code)
}

/// `meeseeks status [RUN_ID]`: exit 0, or 1 when the run failed or has failed services.
pub fn status(g: &Global, a: &StatusArgs) -> Result<i32> {
    let st = with_store(&a.state.spec()?, async |s| {
        let id = s.resolve(a.run_id.as_deref()).await?;
        s.state(&id).await
    })?;
    let out = match a.format {
        StatusFormat::Json => report::status_json(&st).to_string() + "\n",
        StatusFormat::Text => report::status_text(&st),
        StatusFormat::Markdown => report::markdown(&st),
        StatusFormat::Html => report::html(&st),
    };
    let out = if a.format == StatusFormat::Json {
        let mut s = serde_json::to_string_pretty(&report::status_json(&st)).unwrap_or(out);
        s.push('\n');
        s
    } else {
        out
    };
    let code = if st.negative() {
        exit::NEGATIVE
    } else {
        exit::OK
    };
    print(&out, code, None, g)
}

/// `meeseeks runs [DIR]`: every run, oldest first. No store yet simply means no runs.
pub fn runs(g: &Global, a: &RunsArgs) -> Result<i32> {
    let spec = a.store.spec(&a.dir.path())?;
    let (runs, warnings) = match with_store(&spec, async |s| s.summaries().await) {
        Ok(r) => r,
        Err(Error::Usage(_)) => (Vec::new(), Vec::new()),
        Err(e) => return Err(e),
    };
    let out = match a.format {
        RunsFormat::Json => report::runs_json(&runs, &warnings),
        RunsFormat::Markdown => report::runs_markdown(&runs),
        RunsFormat::Text => report::runs_text(&runs, &warnings),
    };
    print(&out, exit::OK, None, g)
}

/// `meeseeks report [RUN_ID]`: exit 1 when a service failed or was blocked, or (with
/// `--strict`) when an RTO was breached.
pub fn report(g: &Global, a: &ReportArgs) -> Result<i32> {
    let st = with_store(&a.state.spec()?, async |s| {
        let id = s.resolve(a.run_id.as_deref()).await?;
        s.state(&id).await
    })?;
    let breached = st.services.iter().any(|s| s.rto_met() == Some(false));
    let code = if st.negative() || (a.strict && breached) {
        exit::NEGATIVE
    } else {
        exit::OK
    };
    print(&report::render(&st, a.format), code, a.out.as_deref(), g)
}

/// `meeseeks approve RUN_ID SERVICE [--step STEP] [--by WHO]`.
pub fn approve(g: &Global, a: &ApproveArgs) -> Result<i32> {
    let (id, ap) = with_store(&a.state.spec()?, async |s| {
        let id = s.resolve(Some(&a.run_id)).await?;
        let ap = s
            .approve(&id, &a.service, a.step.as_deref(), a.by.as_deref())
            .await?;
        Ok((id, ap))
    })?;
    print(
        &format!(
            "approved {}/{} of run {id} as {}; the runner continues within a second\n",
            ap.service, ap.step, ap.by
        ),
        exit::OK,
        None,
        g,
    )
}

/// `meeseeks cleanup [RUN_ID]`: the cleanup steps a drill left pending, dependents first.
pub fn cleanup(g: &Global, a: &CleanupArgs) -> Result<i32> {
    let fe = crate::session::Frontend {
        display: crate::progress::Display::pick(g.quiet, g.no_progress),
        yes: false,
        quiet: g.quiet,
    };
    let spec = a.state.spec()?;
    let rt = crate::exec::runtime(false)?;
    let st = rt.block_on(crate::session::cleanup(
        &spec,
        a.run_id.as_deref(),
        &fe,
        a.kill_grace,
        |dir| {
            super::load_model(
                g,
                dir,
                &crate::load::LoadOptions {
                    require_playbooks: false,
                    ..Default::default()
                },
            )
        },
    ))?;
    let failed = st.cleanup_failures.len();
    let mut text = format!(
        "cleanup of {}: {}, {} of {} steps succeeded\n",
        st.run_id,
        st.cleanup.as_str(),
        st.cleanup_steps.saturating_sub(failed),
        st.cleanup_steps
    );
    for f in &st.cleanup_failures {
        text.push_str(&format!("  failed: {f}\n"));
    }
    emit(None, &text)?;
    Ok(match st.cleanup {
        crate::runstate::CleanupStatus::Done => exit::OK,
        _ => exit::NEGATIVE,
    })
}
