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

pub trait Executor: Send + Sync + 'static {
    /// One attempt of `step` (never `manual`, which the runner handles), bounded by `timeout`.
    /// `kill` asks to abort at once (the operator's second interrupt).
    fn step<'a>(
        &'a self,
        step: &'a Step,
        timeout: Duration,
        kill: &'a CancellationToken,
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
    client: reqwest::Client,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    grace: Duration,
}

impl RealExecutor {
    /// `cwd`: working directory of commands (the DR directory); `env`: added to every command's
    /// environment; `grace`: time between SIGTERM and SIGKILL on timeout.
    pub fn new(
        cwd: PathBuf,
        env: Vec<(String, String)>,
        grace: Duration,
    ) -> Result<RealExecutor, String> {
        Ok(RealExecutor {
            client: probe::http_client()?,
            cwd,
            env,
            grace,
        })
    }

    async fn process(
        &self,
        program: process::Program<'_>,
        timeout: Duration,
        kill: &CancellationToken,
    ) -> Attempt {
        let r = process::run(program, &self.cwd, &self.env, timeout, self.grace, kill).await;
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
        timeout: Duration,
        kill: &CancellationToken,
    ) -> Attempt {
        match action {
            Action::Shell(line) => {
                self.process(process::Program::Shell(line), timeout, kill)
                    .await
            }
            Action::Argv(argv) => {
                self.process(process::Program::Argv(argv), timeout, kill)
                    .await
            }
            Action::Http(h) => {
                self.net(
                    async { http_attempt(probe::http(&self.client, h, timeout).await) },
                    kill,
                )
                .await
            }
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
        kill: &'a CancellationToken,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let action = match &step.kind {
                StepKind::Run(line) => Action::Shell(line),
                StepKind::Cmd(argv) => Action::Argv(argv),
                StepKind::Http(h) => Action::Http(h),
                StepKind::Tcp(addr) => Action::Tcp(addr),
                StepKind::Wait(d) => {
                    let d = *d;
                    return self
                        .net(
                            async move {
                                tokio::time::sleep(d).await;
                                Attempt::ok()
                            },
                            kill,
                        )
                        .await;
                }
                StepKind::Manual(_) => {
                    return Attempt::fail(
                        "manual steps are handled by the runner".into(),
                        String::new(),
                    );
                }
            };
            self.act(action, timeout, kill).await
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
            self.act(action, timeout, kill).await
        })
    }

    fn is_simulated(&self) -> bool {
        false
    }
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
        _kill: &'a CancellationToken,
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
