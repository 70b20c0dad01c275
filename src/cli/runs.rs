//! `status`, `runs`, `report`, `approve`: read-only views of the state directory (plus the
//! approval file), all built on the journal replay.

use std::path::PathBuf;

use clap::Args;

use super::{Global, emit};
use crate::error::Result;
use crate::journal::cmd;

/// Where the runs are: `--state-dir`, else `DIR/.meeseeks` (`-C DIR` / `--dir DIR`).
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// State directory (default: DIR/.meeseeks).
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub dir: super::DirFlag,
}

impl StateArgs {
    pub fn path(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join(".meeseeks"))
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    /// text | json | markdown | html
    #[arg(long, default_value = "text")]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub dir: super::DirArg,
    /// State directory (default: DIR/.meeseeks).
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    /// text | json | markdown
    #[arg(long, default_value = "text")]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    /// text | markdown | html | json | junit | otlp (OpenTelemetry spans, OTLP/JSON)
    #[arg(long, default_value = "text")]
    pub format: String,
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
    /// Who approves (default: $USER@host).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

fn print((text, code): (String, i32), out: Option<&std::path::Path>, g: &Global) -> Result<i32> {
    if !(g.quiet && out.is_none() && code == 0) {
        emit(out, &text)?;
    }
    Ok(code)
}

pub fn status(g: &Global, a: &StatusArgs) -> Result<i32> {
    print(
        cmd::cmd_status(&a.state.path(), a.run_id.as_deref(), &a.format)?,
        None,
        g,
    )
}

pub fn runs(g: &Global, a: &RunsArgs) -> Result<i32> {
    let state = a
        .state_dir
        .clone()
        .unwrap_or_else(|| a.dir.path().join(".meeseeks"));
    print(cmd::cmd_runs(&state, &a.format)?, None, g)
}

pub fn report(g: &Global, a: &ReportArgs) -> Result<i32> {
    if a.format.eq_ignore_ascii_case("otlp") {
        let r = crate::report::otlp::report(&a.state.path(), a.run_id.as_deref(), a.strict)?;
        return print(r, a.out.as_deref(), g);
    }
    let r = cmd::cmd_report(&a.state.path(), a.run_id.as_deref(), &a.format, a.strict)?;
    print(r, a.out.as_deref(), g)
}

pub fn approve(g: &Global, a: &ApproveArgs) -> Result<i32> {
    print(
        cmd::cmd_approve(&a.state.path(), &a.run_id, &a.service, a.by.as_deref())?,
        None,
        g,
    )
}
