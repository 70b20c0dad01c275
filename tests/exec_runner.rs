//! The runner through the library API with the real executor: real processes, real HTTP and
//! TCP servers on 127.0.0.1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use meeseeks::events::{Approval, ApprovalSource, Event};
use meeseeks::exec::{RunnerInput, SimExecutor};
use meeseeks::model::{CheckKind, Mode, StepKind};
use meeseeks::runconfig::OnFailure;
use meeseeks::runstate::ServiceStatus;

fn log_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_parallel_limit_from_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Each step appends "start X" and "end X" around a short piece of work (O_APPEND lines
    // are atomic), so the log tells both the order and how many ran at once.
    let work = |name: &str| {
        run(
            "work",
            &format!(
                "echo start {name} >> {l}; sleep 0.2; echo end {name} >> {l}",
                l = log.display()
            ),
        )
    };
    let m = model(
        dir.path(),
        vec![
            svc("a", &[], vec![work("a")]),
            svc("b", &[], vec![work("b")]),
            svc("c", &[], vec![work("c")]),
            svc("d", &[], vec![work("d")]),
            svc("e", &["a", "b"], vec![work("e")]),
            svc("f", &["e"], vec![work("f")]),
        ],
    );
    let mut opts = options(dir.path(), 2);
    opts.config.eager = true;
    let out = execute(m, opts, RunnerInput::default(), auto()).await;
    assert_eq!(out.report.exit_code, 0);
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 12, "{lines:?}");
    let mut running = 0i32;
    let mut max = 0;
    for l in &lines {
        if l.starts_with("start") {
            running += 1;
        } else {
            running -= 1;
        }
        max = max.max(running);
    }
    assert_eq!(
        max, 2,
        "the parallel limit is 2 and 4 services are ready: {lines:?}"
    );
    let pos = |s: &str| lines.iter().position(|l| l == s).unwrap();
    assert!(pos("end a") < pos("start e"));
    assert!(pos("end b") < pos("start e"));
    assert!(pos("end e") < pos("start f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_a_grandchild_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("gc.pid");
    // The grandchild ignores SIGTERM (an ignored disposition survives exec).
    let mut s = run(
        "stubborn",
        &format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; exec sleep 30' & wait",
            pidfile.display()
        ),
    );
    s.timeout = Some(Duration::from_millis(700));
    let m = model(dir.path(), vec![svc("a", &[], vec![s])]);
    let out = execute(m, options(dir.path(), 1), RunnerInput::default(), auto()).await;
    assert_eq!(out.status("a"), ServiceStatus::Failed);
    let err = out.svc("a").error.clone().unwrap();
    assert!(err.contains("timed out"), "{err}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_dead(pid), "grandchild {pid} survived the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_503_twice_then_200() {
    let dir = tempfile::tempdir().unwrap();
    let (router, hits) = flaky_health(2);
    let base = serve(router).await;
    let mut s = svc("api", &[], vec![]);
    let mut c = check(
        "healthz",
        CheckKind::Http(http_get(format!("{base}/healthz"))),
    );
    if let CheckKind::Http(h) = &mut c.kind {
        h.expect_status = vec![200];
        h.expect_body = Some("ok".into());
    }
    s.checks = vec![c];
    let m = model(dir.path(), vec![s]);
    let out = execute(m, options(dir.path(), 1), RunnerInput::default(), auto()).await;
    assert_eq!(out.status("api"), ServiceStatus::Recovered);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        out.find(|e| matches!(e, Event::CheckPassed { polls: 3, .. }))
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_after_needs_consecutive_successes() {
    let dir = tempfile::tempdir().unwrap();
    let (router, hits) = flaky_health(1);
    let base = serve(router).await;
    let mut s = svc("api", &[], vec![]);
    let mut c = check(
        "healthz",
        CheckKind::Http(http_get(format!("{base}/healthz"))),
    );
    c.healthy_after = 3;
    s.checks = vec![c];
    let out = execute(
        model(dir.path(), vec![s]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("api"), ServiceStatus::Recovered);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_health_endpoint_fails_at_the_check_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let router = axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async {
            std::future::pending::<()>().await;
            "never"
        }),
    );
    let base = serve(router).await;
    let mut s = svc("api", &[], vec![]);
    let mut c = check(
        "healthz",
        CheckKind::Http(http_get(format!("{base}/healthz"))),
    );
    c.timeout = Duration::from_millis(600);
    s.checks = vec![c];
    let out = execute(
        model(dir.path(), vec![s]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("api"), ServiceStatus::Failed);
    let err = out.svc("api").error.clone().unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(out.report.exit_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_fails_the_check_and_the_tcp_step() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = svc("db", &[], vec![]);
    let mut c = check("port", CheckKind::Tcp(format!("127.0.0.1:{port}")));
    c.timeout = Duration::from_millis(200);
    s.checks = vec![c];
    let t = svc(
        "cache",
        &[],
        vec![step("connect", StepKind::Tcp(format!("127.0.0.1:{port}")))],
    );
    let out = execute(
        model(dir.path(), vec![s, t]),
        options(dir.path(), 2),
        RunnerInput::default(),
        auto(),
    )
    .await;
    for name in ["db", "cache"] {
        assert_eq!(out.status(name), ServiceStatus::Failed);
        let err = out.svc(name).error.as_deref().unwrap().to_lowercase();
        assert!(err.contains("refused"), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_and_http_step_succeed_against_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let got = Arc::new(std::sync::Mutex::new(String::new()));
    let g = got.clone();
    let router = axum::Router::new().route(
        "/pools",
        axum::routing::post(move |body: String| {
            let g = g.clone();
            async move {
                *g.lock().unwrap() = body;
                (axum::http::StatusCode::NO_CONTENT, "")
            }
        }),
    );
    let base = serve(router).await;
    let addr = base.trim_start_matches("http://").to_string();
    let mut spec = http_get(format!("{base}/pools"));
    spec.method = "POST".into();
    spec.body = Some(r#"{"active":"dr"}"#.into());
    spec.expect_status = vec![200, 204];
    let mut s = svc("lb", &[], vec![step("enable", StepKind::Http(spec))]);
    s.checks = vec![check("port", CheckKind::Tcp(addr))];
    let out = execute(
        model(dir.path(), vec![s]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("lb"), ServiceStatus::Recovered);
    assert_eq!(*got.lock().unwrap(), r#"{"active":"dr"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_command_is_retried_to_success() {
    let dir = tempfile::tempdir().unwrap();
    let n = dir.path().join("n");
    // Fails twice, succeeds the third time.
    let mut s = step(
        "flaky",
        StepKind::Cmd(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo x >> {f}; test $(wc -l < {f}) -ge 3 || {{ echo not yet >&2; exit 1; }}",
                f = n.display()
            ),
        ]),
    );
    s.retries = 3;
    let out = execute(
        model(dir.path(), vec![svc("a", &[], vec![s])]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("a"), ServiceStatus::Recovered);
    let failed: Vec<_> = out
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepAttemptFailed {
                attempt, output, ..
            } => Some((*attempt, output.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].1, "not yet");
    assert!(
        out.find(|e| matches!(e, Event::StepSucceeded { attempts: 3, .. }))
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_blocks_dependents_while_independent_services_recover() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(
        dir.path(),
        vec![
            svc("db", &[], vec![run("promote", "echo boom; exit 7")]),
            svc("api", &["db"], vec![run("x", "true")]),
            svc("web", &["api"], vec![run("x", "true")]),
            svc("cache", &[], vec![run("x", "true")]),
            svc("search", &["cache"], vec![run("x", "true")]),
        ],
    );
    let out = execute(m, options(dir.path(), 4), RunnerInput::default(), auto()).await;
    assert_eq!(out.status("db"), ServiceStatus::Failed);
    assert_eq!(out.status("api"), ServiceStatus::Blocked);
    assert_eq!(out.status("web"), ServiceStatus::Blocked);
    assert_eq!(out.status("cache"), ServiceStatus::Recovered);
    assert_eq!(out.status("search"), ServiceStatus::Recovered);
    assert_eq!(out.report.exit_code, 1);
    let db = out.svc("db");
    assert_eq!(db.steps[0].last_output, "boom");
    assert!(
        out.find(|e| matches!(e, Event::ServiceBlocked { service, because } if service == "web" && because == "api"))
            .is_some()
    );
    assert!(matches!(
        out.records.last().unwrap().event,
        Event::RunFinished { outcome: ref o, recovered: 2, failed: 1, blocked: 2 } if o == "failed"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_stop_starts_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(
        dir.path(),
        vec![
            svc("a", &[], vec![run("x", "exit 1")]),
            svc("b", &[], vec![run("x", "true")]),
        ],
    );
    let mut opts = options(dir.path(), 1);
    opts.config.on_failure = OnFailure::Stop;
    let out = execute(m, opts, RunnerInput::default(), auto()).await;
    assert_eq!(out.status("a"), ServiceStatus::Failed);
    assert_eq!(out.status("b"), ServiceStatus::Pending);
    assert_eq!(out.report.exit_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_only_rollback_and_templates() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display().to_string();
    let mut opt = run("optional", "exit 1");
    opt.optional = true;
    let mut drill_only = run("drill only", &format!("echo drill >> {l}"));
    drill_only.only = Some(Mode::Drill);
    let mut s = svc(
        "a",
        &[],
        vec![
            opt,
            drill_only,
            run(
                "templated",
                &format!("echo {{{{ service }}}}-{{{{ mode }}}} >> {l}"),
            ),
            run("breaks", "exit 2"),
            run("never", &format!("echo never >> {l}")),
        ],
    );
    s.rollback = vec![run("undo", &format!("echo undo >> {l}"))];
    let mut opts = options(dir.path(), 1);
    opts.config.rollback = true;
    let out = execute(
        model(dir.path(), vec![s]),
        opts,
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("a"), ServiceStatus::Failed);
    assert_eq!(log_lines(&log), ["a-failover", "undo"]);
    assert!(
        out.find(|e| matches!(e, Event::StepFailed { optional: true, .. }))
            .is_some()
    );
    assert!(
        out.find(|e| matches!(e, Event::RollbackStarted { .. }))
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_steps_and_recovered_services_are_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display().to_string();
    let m = model(
        dir.path(),
        vec![
            svc("db", &[], vec![run("s", &format!("echo db >> {l}"))]),
            svc(
                "api",
                &["db"],
                vec![
                    run("one", &format!("echo one >> {l}")),
                    run("two", &format!("echo two >> {l}")),
                ],
            ),
        ],
    );
    let input = RunnerInput {
        already_recovered: BTreeSet::from(["db".to_string()]),
        done_steps: BTreeMap::from([("api".to_string(), BTreeSet::from(["one".to_string()]))]),
        first_seq: 41,
        resumed: Some(Default::default()),
        input_hash: String::new(),
        ..Default::default()
    };
    let out = execute(m, options(dir.path(), 2), input, auto()).await;
    assert_eq!(out.report.exit_code, 0);
    assert_eq!(log_lines(&log), ["two"]);
    assert_eq!(out.records[0].seq, 41);
    assert!(matches!(out.records[0].event, Event::RunResumed { .. }));
    // Recovered by the earlier attempt: never started again.
    assert!(
        out.find(|e| matches!(e, Event::ServiceStarted { service } if service == "db"))
            .is_none()
    );
}

/// Pending for the first polls, then approved.
struct ApproveAfter(std::sync::atomic::AtomicU32);

impl ApprovalSource for ApproveAfter {
    fn check(&self, service: &str, _: &str, _: &str) -> Approval {
        assert_eq!(service, "db");
        if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
            Approval::Pending
        } else {
            Approval::Approved("dba".into())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_step_waits_only_for_its_own_service() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(
        dir.path(),
        vec![
            svc(
                "db",
                &[],
                vec![step("confirm", StepKind::Manual("lag < 5s?".into()))],
            ),
            svc("cache", &[], vec![run("x", "true")]),
        ],
    );
    let out = execute(
        m,
        options(dir.path(), 2),
        RunnerInput::default(),
        Arc::new(ApproveAfter(Default::default())),
    )
    .await;
    assert_eq!(out.report.exit_code, 0);
    let names: Vec<&str> = out.events().iter().map(|e| e.name()).collect();
    let waiting = names.iter().position(|n| *n == "manual.waiting").unwrap();
    let cache_done = out
        .records
        .iter()
        .position(
            |r| matches!(&r.event, Event::ServiceRecovered { service, .. } if service == "cache"),
        )
        .unwrap();
    let approved = names.iter().position(|n| *n == "manual.approved").unwrap();
    assert!(waiting < approved && cache_done < approved, "{names:?}");
    assert!(
        out.find(|e| matches!(e, Event::ManualApproved { by, .. } if by == "dba"))
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rto_breach_is_emitted_when_it_elapses_not_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = svc(
        "slow",
        &[],
        vec![step("w", StepKind::Wait(Duration::from_millis(600)))],
    );
    s.rto = Duration::from_millis(100);
    let out = execute(
        model(dir.path(), vec![s]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    let names: Vec<&str> = out.events().iter().map(|e| e.name()).collect();
    let breach = names.iter().position(|n| *n == "rto.breached").unwrap();
    let done = names.iter().position(|n| *n == "step.succeeded").unwrap();
    assert!(breach < done, "{names:?}");
    assert_eq!(out.report.state.services[0].rto_met(), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_interrupts_kill_running_steps() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let m = model(
        dir.path(),
        vec![
            svc(
                "a",
                &[],
                vec![run(
                    "long",
                    &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
                )],
            ),
            svc("b", &["a"], vec![run("x", "true")]),
        ],
    );
    let pf = pidfile.clone();
    let out = execute_with(
        m,
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
        Arc::new(meeseeks::exec::RealExecutor::new(
            dir.path().into(),
            vec![],
            Duration::from_secs(5),
        )),
        move |r| {
            let int = r.interrupter();
            tokio::spawn(async move {
                // Wait until the step really runs, then interrupt twice.
                while !std::fs::read_to_string(&pf).is_ok_and(|s| s.ends_with('\n')) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                int.interrupt();
                int.interrupt();
            });
        },
    )
    .await;
    assert_eq!(out.report.exit_code, 130);
    assert_eq!(out.status("a"), ServiceStatus::Running);
    assert_eq!(out.status("b"), ServiceStatus::Pending);
    assert!(matches!(
        out.records.last().unwrap().event,
        Event::RunInterrupted { .. }
    ));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_dead(pid));
}

/// The simulated executor on a paused clock: the walk takes virtual time, and its makespan is
/// the planner's critical path with unlimited parallelism.
#[test]
fn simulated_walk_runs_in_virtual_time() {
    let dir = tempfile::tempdir().unwrap();
    let w = |s: u64| step("w", StepKind::Wait(Duration::from_secs(s)));
    let m = model(
        dir.path(),
        vec![
            svc("a", &[], vec![w(600)]),
            svc("b", &["a"], vec![w(300)]),
            svc("c", &[], vec![w(100)]),
            svc("d", &["c", "b"], vec![w(60)]),
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let mut opts = options(dir.path(), 0);
    opts.config.dry_run = true;
    opts.config.eager = true;
    let started = std::time::Instant::now();
    let out = rt.block_on(execute_with(
        m,
        opts,
        RunnerInput::default(),
        auto(),
        Arc::new(SimExecutor),
        |_| {},
    ));
    // Simulated time ran ahead of the real clock: the walk took 960 virtual seconds.
    let makespan = out.report.state.makespan_s();
    assert!(started.elapsed().as_secs_f64() < makespan);
    assert_eq!(out.report.exit_code, 0);
    assert!((makespan - 960.0).abs() < 0.5, "{makespan}");
    let d = out.svc("d");
    assert!((d.started_s.unwrap() - 900.0).abs() < 0.5);
}

/// A drill that fails keeps what it started (so that `resume` can continue it); its cleanup
/// then tears it down, dependents first, and journals that each service was cleaned up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_drill_keeps_its_services_until_cleanup_tears_them_down_dependents_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display().to_string();
    let mut m = model(
        dir.path(),
        vec![
            // "db" leaves a stand-in running in the background, like a daemon.
            svc(
                "db",
                &[],
                vec![run("start", "sleep 60 >/dev/null 2>&1 & echo $! > db.pid")],
            ),
            svc("api", &["db"], vec![run("start", "true")]),
            svc("bad", &[], vec![run("start", "exit 1")]),
            svc("never", &["bad"], vec![run("start", "true")]),
        ],
    );
    for (name, line) in [
        ("db", format!("kill $(cat db.pid) && echo db >> {l}")),
        ("api", format!("echo api >> {l}")),
        ("bad", format!("echo bad >> {l}")),
        ("never", format!("echo never >> {l}")),
    ] {
        let id = m.id(name).unwrap();
        m.services[id].playbook.as_mut().unwrap().cleanup = vec![run("stop", &line)];
    }
    let model = m.clone();
    let mut opts = options(dir.path(), 4);
    opts.config.mode = Mode::Drill;
    let out = execute(m, opts.clone(), RunnerInput::default(), auto()).await;
    assert_eq!(out.report.exit_code, 1);
    let pid: i32 = std::fs::read_to_string(dir.path().join("db.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Failed: nothing was torn down, and the state says so.
    assert!(log_lines(&log).is_empty());
    assert!(!pid_dead(pid));
    assert_eq!(
        out.report.state.cleanup,
        meeseeks::runstate::CleanupStatus::Pending
    );
    assert!(out.find(|e| e.name() == "cleanup.started").is_none());

    let collector = meeseeks::events::Collector::default();
    let exec: Arc<dyn meeseeks::exec::Executor> = Arc::new(meeseeks::exec::RealExecutor::new(
        dir.path().to_path_buf(),
        vec![],
        opts.config.kill_grace,
    ));
    let model = Arc::new(model);
    let state = meeseeks::exec::cleanup_run(
        model.clone(),
        out.report.state.clone(),
        &opts,
        exec,
        meeseeks::mask::Masker::new(),
        vec![Box::new(collector.clone())],
        None,
    )
    .await;
    let lines = log_lines(&log);
    let pos = |s: &str| lines.iter().position(|x| x == s);
    assert!(
        pos("never").is_none(),
        "never started, nothing to clean: {lines:?}"
    );
    assert!(
        pos("api").unwrap() < pos("db").unwrap(),
        "dependents first: {lines:?}"
    );
    assert!(pos("bad").is_some());
    assert!(wait_dead(pid));
    assert_eq!(state.cleanup, meeseeks::runstate::CleanupStatus::Done);
    for name in ["db", "api", "bad"] {
        let s = state.service(name).unwrap();
        assert!(s.cleaned_up, "{name}");
        // Torn down: a resume must recover it again.
        assert!(!s.is_done(state.closing_cleanup), "{name}");
    }
    // Records continue the run's numbering.
    let recs = collector.records();
    assert_eq!(recs[0].seq, out.records.last().unwrap().seq + 1);
    assert!(
        recs.iter().any(
            |r| matches!(&r.event, Event::StepSucceeded { step, .. } if step == "cleanup/stop")
        )
    );
    // A second cleanup has nothing left to do: no cleanup step runs twice.
    assert!(meeseeks::exec::pending_cleanup(&model, &state).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_at_in_the_past_counts_against_the_rto() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = svc("db", &[], vec![run("x", "true")]);
    s.rto = Duration::from_secs(3600);
    let mut opts = options(dir.path(), 1);
    let declared = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    opts.declared_at = Some(declared);
    let out = execute(
        model(dir.path(), vec![s]),
        opts,
        RunnerInput::default(),
        auto(),
    )
    .await;
    // The RTO elapsed an hour before the run started: breached at once, recovered late.
    let names: Vec<&str> = out.events().iter().map(|e| e.name()).collect();
    assert_eq!(names[1], "rto.breached", "{names:?}");
    let db = out.svc("db");
    assert!(db.recovered_s.unwrap() >= 7200.0);
    assert_eq!(db.rto_met(), Some(false));
    assert!(
        matches!(&out.records[0].event, Event::RunStarted { declared_at, .. } if *declared_at == declared)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_cancels_a_retry_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("attempted");
    let mut s = run("flaky", &format!("echo x >> {}; exit 1", marker.display()));
    s.retries = 5;
    s.retry_delay = Duration::from_secs(3600);
    let mk = marker.clone();
    let out = execute_with(
        model(dir.path(), vec![svc("a", &[], vec![s])]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
        Arc::new(meeseeks::exec::RealExecutor::new(
            dir.path().into(),
            vec![],
            Duration::from_secs(1),
        )),
        move |r| {
            let int = r.interrupter();
            tokio::spawn(async move {
                while !mk.exists() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                int.interrupt();
            });
        },
    )
    .await;
    assert_eq!(out.report.exit_code, 130);
    assert_eq!(out.status("a"), ServiceStatus::Running);
    // (Had the hour-long backoff not been cancelled, this test would never end.)
    assert_eq!(
        log_lines(&marker).len(),
        1,
        "no new attempt after the interrupt"
    );
}

/// Resume: a journal of an interrupted run, folded into `RunState`, fed back to the runner —
/// nothing that succeeded runs again, numbering continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_journal_feeds_the_resumed_runner() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let l = log.display().to_string();
    let build = || {
        model(
            dir.path(),
            vec![
                svc("db", &[], vec![run("s", &format!("echo db >> {l}"))]),
                svc(
                    "api",
                    &["db"],
                    vec![
                        run("one", &format!("echo one >> {l}")),
                        run("two", &format!("echo two >> {l}; test -e {l}.ok")),
                    ],
                ),
            ],
        )
    };
    // First attempt: api's second step fails.
    let first = execute(
        build(),
        options(dir.path(), 2),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(first.status("api"), ServiceStatus::Failed);
    assert_eq!(log_lines(&log), ["db", "one", "two"]);
    std::fs::write(format!("{l}.ok"), "").unwrap();
    // Resume from the folded journal.
    let state = meeseeks::runstate::RunState::fold(&first.records);
    let input = RunnerInput::from_state(&state);
    assert_eq!(input.first_seq, first.records.last().unwrap().seq + 1);
    let second = execute(build(), options(dir.path(), 2), input, auto()).await;
    assert_eq!(second.report.exit_code, 0);
    assert_eq!(log_lines(&log), ["db", "one", "two", "two"]);
    assert!(matches!(second.records[0].event, Event::RunResumed { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_stops_the_others_and_their_process_groups() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("probe.pid");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = svc("a", &[], vec![]);
    let mut refused = check("port", CheckKind::Tcp(format!("127.0.0.1:{port}")));
    refused.timeout = Duration::from_millis(100);
    // A probe that hangs with a grandchild; it must not outlive the decision.
    let probe = check(
        "slow probe",
        CheckKind::Run(format!("sleep 60 & echo $! > {}; wait", pidfile.display())),
    );
    s.checks = vec![probe, refused];
    let out = execute(
        model(dir.path(), vec![s]),
        options(dir.path(), 1),
        RunnerInput::default(),
        auto(),
    )
    .await;
    assert_eq!(out.status("a"), ServiceStatus::Failed);
    // The probe may not even have written its pid before it was stopped.
    if let Ok(t) = std::fs::read_to_string(&pidfile)
        && let Ok(pid) = t.trim().parse::<i32>()
    {
        // SIGKILL is delivered asynchronously: give the kernel a moment (bounded).
        let mut dead = pid_dead(pid);
        for _ in 0..100 {
            if dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            dead = pid_dead(pid);
        }
        assert!(dead, "the aborted probe's grandchild {pid} survived");
    }
}
