//! The journal-side halves of `status`, `runs`, `report`, `approve` and `run --abandon`: each
//! returns the text to print and the exit code, so the CLI wiring is a few lines.

use std::path::Path;

use serde_json::json;

use super::approve;
use super::lock::RunLock;
use super::state::{RunStatus, ServiceStatus};
use super::store::{RunSummary, StateDir};
use crate::error::{Error, Result, exit};
use crate::events::Event;
use crate::mask::Masker;
use crate::report::run::{self as report, ReportFormat};

fn parse_format(format: &str, allowed: &[ReportFormat]) -> Result<ReportFormat> {
    let f: ReportFormat = format.parse().map_err(Error::Usage)?;
    if !allowed.contains(&f) {
        return Err(Error::Usage(format!(
            "--format {format} is not available here (use {})",
            allowed
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(f)
}

/// `meeseeks status [RUN_ID]`: exit 0, or 1 when the run failed or has failed services.
pub fn cmd_status(state_dir: &Path, run_id: Option<&str>, format: &str) -> Result<(String, i32)> {
    use ReportFormat::*;
    let f = parse_format(format, &[Text, Json, Markdown, Html])?;
    let run = StateDir::open_existing(state_dir)?.resolve(run_id)?;
    let st = run.load_state()?;
    let out = match f {
        Json => pretty(&st.to_status_json()),
        Text => report::status_text(&st),
        other => report::render(&st, other),
    };
    Ok((
        out,
        if st.negative() {
            exit::NEGATIVE
        } else {
            exit::OK
        },
    ))
}

/// `meeseeks report [RUN_ID]`: exit 1 when a service failed or was blocked, or (with
/// `strict`) when an RTO was breached.
pub fn cmd_report(
    state_dir: &Path,
    run_id: Option<&str>,
    format: &str,
    strict: bool,
) -> Result<(String, i32)> {
    let f = parse_format(format, ReportFormat::ALL)?;
    let run = StateDir::open_existing(state_dir)?.resolve(run_id)?;
    let st = run.load_state()?;
    let breached = st.services.iter().any(|s| s.rto_met() == Some(false));
    let code = if st.negative() || (strict && breached) {
        exit::NEGATIVE
    } else {
        exit::OK
    };
    Ok((report::render(&st, f), code))
}

/// `meeseeks runs`: every run, oldest first.
pub fn cmd_runs(state_dir: &Path, format: &str) -> Result<(String, i32)> {
    use ReportFormat::*;
    let f = parse_format(format, &[Text, Json, Markdown])?;
    let (runs, warnings) = match StateDir::open_existing(state_dir) {
        Ok(sd) => sd.summaries()?,
        // No state directory yet simply means no runs.
        Err(Error::Usage(_)) => (Vec::new(), Vec::new()),
        Err(e) => return Err(e),
    };
    let out = match f {
        Json => pretty(&json!({
            "schema": "meeseeks.runs/v1",
            "runs": runs,
            "warnings": warnings,
        })),
        Markdown => report::runs_markdown(&runs),
        _ => report::runs_text(&runs, &warnings),
    };
    Ok((out, exit::OK))
}

/// `meeseeks approve RUN_ID SERVICE [--by WHO]`.
pub fn cmd_approve(
    state_dir: &Path,
    run_id: &str,
    service: &str,
    by: Option<&str>,
) -> Result<(String, i32)> {
    let run = StateDir::open_existing(state_dir)?.open_run(run_id)?;
    let a = approve::approve(&run, service, by)?;
    Ok((
        format!(
            "approved {}/{} of run {} as {}; the runner continues within a second\n",
            a.service, a.step, run.id, a.by
        ),
        exit::OK,
    ))
}

/// `meeseeks run --abandon [RUN_ID]` (default: the latest unfinished run): journals
/// `run.abandoned` so that a new run may start. Refused (exit 3) while a process runs it.
pub fn cmd_abandon(state_dir: &Path, run_id: Option<&str>) -> Result<(String, i32)> {
    let sd = StateDir::open_existing(state_dir)?;
    let run = match run_id {
        Some(id) => sd.open_run(id)?,
        None => {
            let unfinished: Vec<RunSummary> = sd.unfinished_runs()?;
            match unfinished.last() {
                Some(r) => sd.open_run(&r.run_id)?,
                None => {
                    return Err(Error::Usage(format!(
                        "no unfinished run in {} to abandon",
                        state_dir.display()
                    )));
                }
            }
        }
    };
    let lock = RunLock::acquire(&run.path)
        .map_err(|e| Error::Locked(format!("cannot abandon run {}: it is live ({e})", run.id)))?;
    let st = run.load_state_locked()?;
    if matches!(
        st.state,
        RunStatus::Finished | RunStatus::Failed | RunStatus::Abandoned
    ) {
        return Err(Error::Usage(format!(
            "run {} is {} already; nothing to abandon",
            run.id,
            st.state.as_str()
        )));
    }
    let by = super::whoami();
    super::writer::append_sync(
        &run.path,
        &lock,
        Event::RunAbandoned { by: by.clone() },
        &Masker::new(),
    )?;
    let done = st
        .services
        .iter()
        .filter(|s| s.status == ServiceStatus::Recovered)
        .count();
    Ok((
        format!(
            "abandoned run {} ({done}/{} services recovered); a new run may start\n",
            run.id,
            st.services.len()
        ),
        exit::OK,
    ))
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
