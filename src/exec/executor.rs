//! One trait that runs one attempt of a (rendered) step or one probe of a check, with two
//! implementations: `RealExecutor` (processes, HTTP, TCP) and `SimExecutor` (virtual time, for
//! dry-run). Retries, backoff, polling and manual approvals live in the runner and are shared by
//! both, so a dry-run walks exactly the code path of a real run.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{probe, process};
use crate::model::{Check, CheckKind, Step, StepKind};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Result of one attempt or one probe.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub ok: bool,
    /// One line: why it failed (empty on success).
    pub error: String,
    /// Captured output (processes) or response excerpt (HTTP), unmasked: the bus masks it.
    pub output: String,
    /// The attempt was cut short by a kill request, not by its own failure.
    pub killed: bool,
}

impl Attempt {
    fn ok() -> Attempt {
        Attempt {
            ok: true,
            ..Default::default()
        }
    }

    fn fail(error: String, output: String) -> Attempt {
        Attempt {
            ok: false,
            error,
            output,
            killed: false,
        }
    }
}

/// Whom an attempt is for, and how it may be cut short.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub service: &'a str,
    /// The step's label in the journal (`rollback/NAME`, `cleanup/NAME` in those sections).
    pub label: &'a str,
    /// The operator's first interrupt: running commands finish, but a `wait` ends (it has no
    /// effect to complete; it runs again on resume).
    pub stop: &'a CancellationToken,
    /// The second interrupt: abort at once.
    pub kill: &'a CancellationToken,
}

pub trait Executor: Send + Sync + 'static {
    /// One attempt of `step` (never `manual`, which the runner handles), bounded by `timeout`.
    fn step<'a>(
        &'a self,
        step: &'a Step,
        timeout: Duration,
        call: Call<'a>,
    ) -> BoxFuture<'a, Attempt>;

    /// One probe of `check`, bounded by `timeout`.
    fn probe<'a>(
        &'a self,
        check: &'a Check,
        timeout: Duration,
        kill: &'a CancellationToken,
    ) -> BoxFuture<'a, Attempt>;

    /// True for the simulated executor: manual steps are approved at once (after their
    /// estimate), nothing touches the outside world.
    fn is_simulated(&self) -> bool;
}

/// Executes for real: `/bin/sh -c`, argv, reqwest, TCP connects, real sleeps.
pub struct RealExecutor {
    /// Built on the first HTTP step or check: building it reads and parses the system's CA
    /// certificates (~300 files here), which a run of commands only never needs.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    grace: Duration,
}

impl RealExecutor {
    /// `cwd`: working directory of commands (the DR directory); `env`: added to every command's
    /// environment; `grace`: time between SIGTERM and SIGKILL on timeout.
    pub fn new(cwd: PathBuf, env: Vec<(String, String)>, grace: Duration) -> RealExecutor {
        RealExecutor {
            client: std::sync::OnceLock::new(),
            cwd,
            env,
            grace,
        }
    }

    async fn process(
        &self,
        program: process::Program<'_>,
        extra_env: &[(String, String)],
        tag: process::Tag<'_>,
        timeout: Duration,
        kill: &CancellationToken,
    ) -> Attempt {
        let env: std::borrow::Cow<'_, [(String, String)]> = if extra_env.is_empty() {
            self.env.as_slice().into()
        } else {
            [self.env.as_slice(), extra_env].concat().into()
        };
        let r = process::run(
            program,
            &self.cwd,
            &env,
            Some(tag),
            timeout,
            self.grace,
            kill,
        )
        .await;
        Attempt {
            ok: r.success(),
            error: if r.success() {
                String::new()
            } else {
                r.error(timeout)
            },
            killed: matches!(r.exit, process::Exit::Killed),
            output: r.output,
        }
    }

    async fn net<F: Future<Output = Attempt>>(&self, f: F, kill: &CancellationToken) -> Attempt {
        tokio::select! {
            a = f => a,
            _ = kill.cancelled() => Attempt { killed: true, ..Attempt::fail("killed (interrupted)".into(), String::new()) },
        }
    }
}

fn http_attempt(r: Result<String, (String, String)>) -> Attempt {
    match r {
        Ok(_) => Attempt::ok(),
        Err((e, body)) => Attempt::fail(e, body),
    }
}

/// The actions steps and checks have in common, executed one way for both.
enum Action<'a> {
    Shell(&'a str),
    Argv(&'a [String]),
    Http(&'a crate::model::HttpSpec),
    Tcp(&'a str),
}

impl RealExecutor {
    async fn act(
        &self,
        action: Action<'_>,
        env: &[(String, String)],
        tag: process::Tag<'_>,
        timeout: Duration,
        kill: &CancellationToken,
    ) -> Attempt {
        match action {
            Action::Shell(line) => {
                self.process(process::Program::Shell(line), env, tag, timeout, kill)
                    .await
            }
            Action::Argv(argv) => {
                self.process(process::Program::Argv(argv), env, tag, timeout, kill)
                    .await
            }
            Action::Http(h) => match self.client.get_or_init(probe::http_client) {
                Ok(client) => {
                    self.net(
                        async { http_attempt(probe::http(client, h, timeout).await) },
                        kill,
                    )
                    .await
                }
                Err(e) => Attempt::fail(e.clone(), String::new()),
            },
            Action::Tcp(addr) => {
                self.net(
                    async {
                        match probe::tcp(addr, timeout).await {
                            Ok(()) => Attempt::ok(),
                            Err(e) => Attempt::fail(e, String::new()),
                        }
                    },
                    kill,
                )
                .await
            }
        }
    }
}

impl Executor for RealExecutor {
    fn step<'a>(
        &'a self,
        step: &'a Step,
        timeout: Duration,
        call: Call<'a>,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let kill = call.kill;
            let action = match &step.kind {
                StepKind::Run(line) => Action::Shell(line),
                StepKind::Cmd(argv) => Action::Argv(argv),
                StepKind::Http(h) => Action::Http(h),
                StepKind::Tcp(addr) => Action::Tcp(addr),
                StepKind::Wait(d) => return wait(*d, step.timeout, call).await,
                StepKind::Manual(_) => {
                    return Attempt::fail(
                        "manual steps are handled by the runner".into(),
                        String::new(),
                    );
                }
            };
            let tag = process::Tag {
                service: call.service,
                step: call.label,
            };
            self.act(action, &step.env, tag, timeout, kill).await
        })
    }

    fn probe<'a>(
        &'a self,
        check: &'a Check,
        timeout: Duration,
        kill: &'a CancellationToken,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let action = match &check.kind {
                CheckKind::Run(line) => Action::Shell(line),
                CheckKind::Cmd(argv) => Action::Argv(argv),
                CheckKind::Http(h) => Action::Http(h),
                CheckKind::Tcp(addr) => Action::Tcp(addr),
            };
            let label = format!("check:{}", check.name);
            let tag = process::Tag {
                service: "",
                step: &label,
            };
            self.act(action, &[], tag, timeout, kill).await
        })
    }

    fn is_simulated(&self) -> bool {
        false
    }
}

/// A `wait` step: its duration, cut short by an explicit `timeout` (a failure) or by the
/// operator's first interrupt (an interruption: the wait runs again on resume).
async fn wait(d: Duration, timeout: Option<Duration>, call: Call<'_>) -> Attempt {
    let limit = timeout.map_or(d, |t| t.min(d));
    let interrupted = Attempt {
        killed: true,
        ..Attempt::fail("interrupted".into(), String::new())
    };
    tokio::select! {
        _ = tokio::time::sleep(limit) => {}
        _ = call.stop.cancelled() => return interrupted,
        _ = call.kill.cancelled() => return interrupted,
    }
    if limit < d {
        return Attempt::fail(
            format!("timed out after {}", crate::model::fmt_duration(limit)),
            String::new(),
        );
    }
    Attempt::ok()
}

/// Simulates in virtual time: every step succeeds after its planning estimate, every probe
/// succeeds at once (so checks take `interval × (healthy_after − 1)`, as the planner assumes).
/// Run it on a runtime with paused time (`tokio::time::pause`) so that the whole walk takes
/// virtual, not real, time.
#[derive(Debug, Default)]
pub struct SimExecutor;

impl Executor for SimExecutor {
    fn step<'a>(
        &'a self,
        step: &'a Step,
        _timeout: Duration,
        _call: Call<'a>,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let secs = crate::plan::step_estimate(step).secs;
            tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
            Attempt::ok()
        })
    }

    fn probe<'a>(
        &'a self,
        _check: &'a Check,
        _timeout: Duration,
        _kill: &'a CancellationToken,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async { Attempt::ok() })
    }

    fn is_simulated(&self) -> bool {
        true
    }
}
