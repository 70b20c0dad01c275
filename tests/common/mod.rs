//! Helpers shared by the tests: the binary run in a temp dir (`cli`), hand-built models, real
//! HTTP servers on 127.0.0.1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

mod cli;
#[allow(unused_imports)]
pub use cli::*;

use meeseeks::approvals::AutoApprove;
use meeseeks::events::{ApprovalSource, Collector, Event, Record};
use meeseeks::exec::{Executor, RealExecutor, RunOptions, RunOutcome, Runner, RunnerInput};
use meeseeks::mask::Masker;
use meeseeks::model::{
    Check, CheckKind, Defaults, HttpSpec, Mode, Model, Playbook, Service, Step, StepKind,
};
use meeseeks::plan::Scope;
use meeseeks::runstate::{ServiceState, ServiceStatus};

pub fn step(name: &str, kind: StepKind) -> Step {
    Step {
        name: name.into(),
        kind,
        timeout: Some(Duration::from_secs(20)),
        retries: 0,
        retry_delay: Duration::from_millis(10),
        estimate: None,
        only: None,
        optional: false,
        idempotent: true,
        preflight: true,
        line: 1,
        env: Vec::new(),
    }
}

pub fn run(name: &str, line: &str) -> Step {
    step(name, StepKind::Run(line.into()))
}

pub fn check(name: &str, kind: CheckKind) -> Check {
    Check {
        name: name.into(),
        kind,
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(10),
        healthy_after: 1,
        preflight: true,
        line: 1,
    }
}

pub fn http_get(url: String) -> HttpSpec {
    HttpSpec {
        method: "GET".into(),
        url,
        headers: Default::default(),
        body: None,
        expect_status: vec![],
        expect_body: None,
    }
}

/// A service spec: name, RTO, deps, steps, checks.
pub struct Svc {
    pub name: &'static str,
    pub rto: Duration,
    pub deps: Vec<&'static str>,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    pub rollback: Vec<Step>,
}

pub fn svc(name: &'static str, deps: &[&'static str], steps: Vec<Step>) -> Svc {
    Svc {
        name,
        rto: Duration::from_secs(3600),
        deps: deps.to_vec(),
        steps,
        checks: vec![],
        rollback: vec![],
    }
}

pub fn model(dir: &Path, svcs: Vec<Svc>) -> Model {
    Model::from_parts(
        dir.to_path_buf(),
        Defaults::default(),
        svcs.into_iter()
            .map(|s| {
                let mut service = Service::new(s.name, 1, s.rto);
                service.playbook = Some(Box::new(Playbook {
                    file: PathBuf::from(format!("playbooks/{}.toml", s.name)),
                    steps: s.steps,
                    checks: s.checks,
                    rollback: s.rollback,
                    ..Default::default()
                }));
                (
                    service,
                    s.deps.iter().map(|d| d.to_string()).collect(),
                    vec![],
                )
            })
            .collect(),
    )
}

pub struct Outcome {
    pub report: RunOutcome,
    pub records: Vec<Record>,
}

impl Outcome {
    pub fn events(&self) -> Vec<&Event> {
        self.records.iter().map(|r| &r.event).collect()
    }

    pub fn status(&self, name: &str) -> ServiceStatus {
        self.svc(name).status
    }

    pub fn svc(&self, name: &str) -> &ServiceState {
        self.report
            .state
            .service(name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    pub fn find<F: Fn(&Event) -> bool>(&self, f: F) -> Option<&Event> {
        self.records.iter().map(|r| &r.event).find(|e| f(e))
    }
}

pub fn options(dir: &Path, parallel: usize) -> RunOptions {
    let mut o = RunOptions::new(
        Mode::Failover,
        "test-run",
        dir.join(".meeseeks/runs/test-run"),
    );
    o.config.parallel = parallel;
    o.config.kill_grace = Duration::from_millis(300);
    o.approval_poll = Duration::from_millis(20);
    o
}

/// Runs `model` for real with `opts`, returns the report and every record.
pub async fn execute(
    model: Model,
    opts: RunOptions,
    input: RunnerInput,
    approvals: Arc<dyn ApprovalSource>,
) -> Outcome {
    let exec: Arc<dyn Executor> = Arc::new(RealExecutor::new(
        model.dir.clone(),
        vec![],
        opts.config.kill_grace,
    ));
    execute_with(model, opts, input, approvals, exec, |_| {}).await
}

pub async fn execute_with(
    model: Model,
    opts: RunOptions,
    input: RunnerInput,
    approvals: Arc<dyn ApprovalSource>,
    exec: Arc<dyn Executor>,
    with: impl FnOnce(&Runner),
) -> Outcome {
    let scope = Scope::all(&model);
    let collector = Collector::default();
    let mut runner = Runner::new(
        Arc::new(model),
        scope,
        opts,
        input,
        exec,
        approvals,
        Masker::new(),
    );
    runner.subscribe(Box::new(collector.clone()));
    with(&runner);
    let report = runner.run().await;
    Outcome {
        report,
        records: collector.records(),
    }
}

pub fn auto() -> Arc<dyn ApprovalSource> {
    Arc::new(AutoApprove)
}

/// An HTTP server on 127.0.0.1 serving `router`; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A health endpoint that answers 503 `fails` times, then 200 "ok"; counts requests.
pub fn flaky_health(fails: u32) -> (axum::Router, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let router = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let h = h.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                if n < fails {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                } else {
                    (axum::http::StatusCode::OK, "ok")
                }
            }
        }),
    );
    (router, hits)
}

/// True when `pid` no longer runs (gone, or a zombie nobody reaped yet).
pub fn pid_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.trim_start().starts_with('Z') || rest.trim_start().starts_with('X')
            })
            .unwrap_or(false),
    }
}

/// `pid` dies within a couple of seconds (a signal is delivered asynchronously).
pub fn wait_dead(pid: i32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if pid_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pid_dead(pid)
}

/// Kills process `pid` when dropped: a test that fails half-way must not leave a runner
/// behind (it would hold ports, locks and inherited file descriptors).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid this test spawned; harmless if it is gone.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGKILL);
        }
    }
}
