//! Phase 2 of an evaluation: the probe jobs, run as tokio tasks, at most `parallel` at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::inspect::{Expect, Job, Program};
use super::{BackupSeen, JobResult, Options, Status, net};
use crate::exec::process;
use crate::model::{Model, fmt_duration};

/// What every job of one evaluation shares.
pub(super) struct Ctx {
    client: Result<reqwest::Client, String>,
    tls: net::Tls,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    cert_min_days: i64,
    kill: CancellationToken,
}

const INTERRUPTED: &str = "not evaluated: interrupted";

/// Between SIGTERM and SIGKILL for a probe command that overran its timeout.
const KILL_GRACE: Duration = Duration::from_secs(1);

impl Ctx {
    pub fn new(model: &Model, opts: &Options, kill: CancellationToken) -> Ctx {
        let dir = std::path::absolute(&model.dir).unwrap_or_else(|_| model.dir.clone());
        Ctx {
            client: crate::exec::probe::http_client(),
            tls: net::Tls::new(),
            cwd: model.dir.clone(),
            // What a probe command can tell its context by (a script shared with steps may
            // want to know it is not in a run).
            env: vec![
                ("MEESEEKS_PREFLIGHT".into(), "1".into()),
                ("MEESEEKS_MODE".into(), opts.mode.as_str().into()),
                ("MEESEEKS_DR_DIR".into(), dir.display().to_string()),
            ],
            cert_min_days: opts.cert_min_days,
            kill,
        }
    }

    /// Runs `job`; an interrupt abandons it at once (a probe command's process group is
    /// killed when its future is dropped).
    async fn run(&self, job: Job) -> JobResult {
        tokio::select! {
            r = self.run_job(job) => r,
            _ = self.kill.cancelled() => JobResult::problem(Status::Unknown, INTERRUPTED.into()),
        }
    }

    async fn run_job(&self, job: Job) -> JobResult {
        match job {
            Job::Connect {
                host,
                port,
                tls,
                timeout,
            } => net::connect(&self.tls, &host, port, tls, timeout, self.cert_min_days).await,
            Job::Http { spec, timeout } => {
                let client = match &self.client {
                    Ok(c) => c,
                    Err(e) => return JobResult::problem(Status::Unknown, e.clone()),
                };
                match crate::exec::probe::http(client, &spec, timeout).await {
                    Ok(_) => JobResult::default(),
                    Err((reason, body)) => {
                        let excerpt = process::last_lines(&body, 1);
                        let reason = if excerpt.is_empty() {
                            format!("{} {}: {reason}", spec.method, spec.url)
                        } else {
                            format!("{} {}: {reason}: {excerpt}", spec.method, spec.url)
                        };
                        JobResult::problem(Status::NotReady, reason)
                    }
                }
            }
            Job::Command {
                program,
                timeout,
                expect,
            } => self.command(program, timeout, expect).await,
        }
    }

    async fn command(&self, program: Program, timeout: Duration, expect: Expect) -> JobResult {
        let p = match &program {
            Program::Shell(line) => process::Program::Shell(line),
            Program::Argv(argv) => process::Program::Argv(argv),
        };
        let r = process::run(
            p, &self.cwd, &self.env, None, timeout, KILL_GRACE, &self.kill,
        )
        .await;
        if matches!(r.exit, process::Exit::Killed) {
            return JobResult::problem(Status::Unknown, INTERRUPTED.into());
        }
        let last = process::last_lines(&r.output, 1);
        if !r.success() {
            let why = r.error(timeout);
            return JobResult::problem(
                Status::NotReady,
                if last.is_empty() {
                    format!("probe failed: {why}")
                } else {
                    format!("probe failed: {why}: {last}")
                },
            );
        }
        match expect {
            Expect::Output { expect_body, max } => {
                output_verdict(&r.output, &last, expect_body, max)
            }
            Expect::Backup { rpo, schedule } => {
                backup_verdict(&last, rpo, schedule, jiff::Timestamp::now())
            }
        }
    }
}

fn output_verdict(
    output: &str,
    last: &str,
    expect_body: Option<String>,
    max: Option<f64>,
) -> JobResult {
    if let Some(want) = expect_body
        && !output.contains(&want)
    {
        return JobResult::problem(
            Status::NotReady,
            format!("output does not contain {want:?} (last line: {last:?})"),
        );
    }
    if let Some(max) = max {
        return match last.trim().parse::<f64>() {
            Ok(n) if n <= max => JobResult::default(),
            Ok(n) => JobResult::problem(Status::NotReady, format!("{n} is over the maximum {max}")),
            Err(_) => JobResult::problem(
                Status::Unknown,
                format!("expected a number to compare with max = {max}, got {last:?}"),
            ),
        };
    }
    JobResult::default()
}

/// Judges `backup.check`'s answer: the last backup must be younger than the RPO, and at most
/// two schedule periods old (an older one means at least one scheduled backup was missed).
fn backup_verdict(
    last: &str,
    rpo: Option<Duration>,
    schedule: Duration,
    now: jiff::Timestamp,
) -> JobResult {
    let Ok(at) = last.trim().parse::<jiff::Timestamp>() else {
        return JobResult::problem(
            Status::Unknown,
            format!(
                "cannot read the last backup time from {last:?}: expected RFC 3339, e.g. 2026-11-26T11:30:00Z"
            ),
        );
    };
    let age_s = (now.as_millisecond() - at.as_millisecond()) as f64 / 1000.0;
    // Clocks of two hosts disagree by a little; more is a problem of its own.
    if age_s < -60.0 {
        return JobResult::problem(
            Status::Unknown,
            format!("the last backup time {at} is in the future: is this host's clock right?"),
        );
    }
    let age = Duration::from_secs_f64(age_s.max(0.0));
    let mut out = JobResult {
        backup: Some(BackupSeen {
            last: at,
            age_s: age.as_secs_f64(),
        }),
        ..JobResult::default()
    };
    if let Some(rpo) = rpo
        && age > rpo
    {
        out.problems.push((
            Status::NotReady,
            format!(
                "last backup {} ago ({at}), older than the RPO of {}: a failover now would lose more data than allowed",
                super::age(age),
                fmt_duration(rpo)
            ),
        ));
    } else if age > schedule * 2 {
        out.problems.push((
            Status::NotReady,
            format!(
                "last backup {} ago ({at}), but backups run every {}: scheduled backups were missed",
                super::age(age),
                fmt_duration(schedule)
            ),
        ));
    }
    out
}

/// Runs every job with at most `parallel` in flight. A permit is taken before a task is
/// spawned, so no more than `parallel` tasks exist at once. Jobs not started when `cancel`
/// fires are `unknown`.
pub(super) async fn run_all(
    ctx: Arc<Ctx>,
    jobs: Vec<Job>,
    parallel: usize,
    cancel: &CancellationToken,
) -> Vec<JobResult> {
    let mut results: Vec<Option<JobResult>> = vec![None; jobs.len()];
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    let mut store = |r: Result<(usize, JobResult), tokio::task::JoinError>| match r {
        Ok((i, res)) => results[i] = Some(res),
        Err(e) => tracing::warn!("preflight probe task failed: {e}"),
    };
    for (i, job) in jobs.into_iter().enumerate() {
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let ctx = ctx.clone();
        set.spawn(async move {
            let _permit = permit;
            (i, ctx.run(job).await)
        });
        while let Some(r) = set.try_join_next() {
            store(r);
        }
    }
    while let Some(r) = set.join_next().await {
        store(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| JobResult::problem(Status::Unknown, INTERRUPTED.into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn backup_age_against_rpo_and_schedule() {
        let now = at("2026-11-26T12:00:00Z");
        let m = |x: u64| Duration::from_secs(60 * x);
        let ok = backup_verdict("2026-11-26T11:55:00Z", Some(m(15)), m(5), now);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.backup.unwrap().age_s, 300.0);
        let stale = backup_verdict("2026-11-26T11:30:00Z", Some(m(15)), m(5), now);
        assert!(stale.problems[0].1.contains("older than the RPO of 15m"));
        let missed = backup_verdict("2026-11-26T11:30:00+00:00", None, m(10), now);
        assert!(missed.problems[0].1.contains("backups run every 10m"));
        let junk = backup_verdict("yesterday", None, m(10), now);
        assert_eq!(junk.problems[0].0, Status::Unknown);
        let future = backup_verdict("2026-11-26T13:00:00Z", None, m(10), now);
        assert_eq!(future.problems[0].0, Status::Unknown);
    }

    #[test]
    fn output_max_and_body() {
        assert!(
            output_verdict("lag\n3\n", "3", None, Some(5.0))
                .problems
                .is_empty()
        );
        let over = output_verdict("42", "42", None, Some(5.0));
        assert_eq!(
            over.problems[0],
            (Status::NotReady, "42 is over the maximum 5".into())
        );
        let nan = output_verdict("n/a", "n/a", None, Some(5.0));
        assert_eq!(nan.problems[0].0, Status::Unknown);
        let body = output_verdict("t\n", "t", Some("f".into()), None);
        assert_eq!(body.problems[0].0, Status::NotReady);
    }
}
