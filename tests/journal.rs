//! Journal, replay, store, lock, approvals and run reports working together on real files.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::bin;
use meeseeks::events::{Approval as Answer, ApprovalSource, Event, PlannedService, Record};
use meeseeks::mask::Masker;
use meeseeks::model::Mode;
use meeseeks::report::run::{self as report, ReportFormat};
use meeseeks::runconfig::RunConfig;
use meeseeks::runstate::{RunState, RunStatus, ServiceStatus, StepStatus};
use meeseeks::store::file::{DropBoxApprovals, RunDir, RunLock, StateDir, take_approval};
use meeseeks::store::{
    InputDigest, RunMeta, Store, StoreSpec, input_digests, input_hash, new_run_id,
};

const T0: i64 = 1_795_680_600; // 2026-11-26T08:10:00Z

fn ts(secs: f64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(T0 * 1000 + (secs * 1000.0) as i64).unwrap()
}

fn planned(name: &str, rto: f64, start: f64, ready: f64, steps: &[&str]) -> Arc<PlannedService> {
    Arc::new(PlannedService {
        name: name.into(),
        tier: 0,
        rto_s: Some(rto),
        wave: Some(0),
        start_s: Some(start),
        ready_s: Some(ready),
        depends_on: vec![],
        steps: steps.iter().map(|s| s.to_string()).collect(),
    })
}

/// A drill in which orders-db recovers after a retry and a manual approval, payments recovers
/// late (RTO breach), checkout fails, search is blocked.
fn scenario(run_id: &str) -> Vec<Record> {
    let evs: Vec<(f64, Event)> = vec![
        (
            0.0,
            Event::RunStarted {
                run_id: run_id.into(),
                mode: Mode::Drill,
                dir: "/dr".into(),
                declared_at: ts(0.0),
                services: vec![
                    "checkout".into(),
                    "orders-db".into(),
                    "payments".into(),
                    "search".into(),
                ],
                options: Box::new(RunConfig::new(Mode::Drill)),
                input_hash: "abc".into(),
                holder: None,
                plan: vec![
                    planned("checkout", 1800.0, 120.0, 300.0, &["enable traffic"]),
                    planned(
                        "orders-db",
                        1200.0,
                        0.0,
                        120.0,
                        &["promote", "DBA confirms"],
                    ),
                    planned("payments", 300.0, 0.0, 200.0, &["scale"]),
                    planned("search", 600.0, 300.0, 400.0, &["reindex"]),
                ],
            },
        ),
        (
            1.0,
            Event::ServiceStarted {
                service: "orders-db".into(),
            },
        ),
        (
            1.0,
            Event::ServiceStarted {
                service: "payments".into(),
            },
        ),
        (
            1.0,
            Event::StepStarted {
                service: "orders-db".into(),
                step: "promote".into(),
                attempt: 1,
                action: Some("pg_ctl promote".into()),
            },
        ),
        (
            11.0,
            Event::StepAttemptFailed {
                service: "orders-db".into(),
                step: "promote".into(),
                attempt: 1,
                error: "exit status 1".into(),
                output: "lag 12s".into(),
            },
        ),
        (
            12.0,
            Event::StepStarted {
                service: "orders-db".into(),
                step: "promote".into(),
                attempt: 2,
                action: None,
            },
        ),
        (
            21.0,
            Event::StepSucceeded {
                service: "orders-db".into(),
                step: "promote".into(),
                attempts: 2,
                duration_s: 20.0,
            },
        ),
        (
            21.0,
            Event::StepStarted {
                service: "orders-db".into(),
                step: "DBA confirms".into(),
                attempt: 1,
                action: None,
            },
        ),
        (
            21.0,
            Event::ManualWaiting {
                service: "orders-db".into(),
                step: "DBA confirms".into(),
                prompt: "Confirm lag < 5s".into(),
            },
        ),
        (
            80.0,
            Event::ManualApproved {
                service: "orders-db".into(),
                step: "DBA confirms".into(),
                by: "alice@ops".into(),
            },
        ),
        (
            80.0,
            Event::StepSucceeded {
                service: "orders-db".into(),
                step: "DBA confirms".into(),
                attempts: 1,
                duration_s: 59.0,
            },
        ),
        (
            90.0,
            Event::CheckPassed {
                service: "orders-db".into(),
                check: "healthz".into(),
                polls: 3,
            },
        ),
        (
            90.0,
            Event::ServiceRecovered {
                service: "orders-db".into(),
                recovered_s: 90.0,
            },
        ),
        (
            91.0,
            Event::ServiceStarted {
                service: "checkout".into(),
            },
        ),
        (
            91.0,
            Event::StepStarted {
                service: "checkout".into(),
                step: "enable traffic".into(),
                attempt: 1,
                action: None,
            },
        ),
        (
            150.0,
            Event::StepFailed {
                service: "checkout".into(),
                step: "enable traffic".into(),
                attempts: 1,
                error: "HTTP 503".into(),
                output: "first line\n<b>&\u{1b}[31m red ]]> \"quoted\"".into(),
                optional: false,
            },
        ),
        (
            150.0,
            Event::ServiceFailed {
                service: "checkout".into(),
                error: "step \"enable traffic\" failed".into(),
            },
        ),
        (
            150.0,
            Event::ServiceBlocked {
                service: "search".into(),
                because: "checkout".into(),
            },
        ),
        (
            300.0,
            Event::RtoBreached {
                service: "payments".into(),
                rto_s: 300.0,
            },
        ),
        (
            400.0,
            Event::ServiceRecovered {
                service: "payments".into(),
                recovered_s: 400.0,
            },
        ),
        (
            401.0,
            Event::RunFinished {
                outcome: "failed".into(),
                recovered: 2,
                failed: 1,
                blocked: 1,
            },
        ),
    ];
    evs.into_iter()
        .enumerate()
        .map(|(i, (t, event))| Record {
            seq: i as u64 + 1,
            ts: ts(t),
            event,
        })
        .collect()
}

fn meta(run_id: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        mode: Mode::Drill,
        dir: "/dr".into(),
        created_at: jiff::Timestamp::now(),
        declared_at: ts(0.0),
        dry_run: false,
        config: RunConfig::new(Mode::Drill),
        input_hash: "abc".into(),
        inputs: vec![],
        version: "test".into(),
    }
}

fn write_journal(run: &RunDir, records: &[Record]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.journal_path())
        .unwrap();
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r).unwrap()).unwrap();
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn fold_gives_statuses_rto_attempts_and_approvals() {
    let st = RunState::fold(&scenario("r1"));
    assert_eq!(st.state, RunStatus::Failed);
    assert_eq!(st.mode, Some(Mode::Drill));
    let db = st.service("orders-db").unwrap();
    assert_eq!(db.status, ServiceStatus::Recovered);
    assert_eq!(db.rto_met(), Some(true));
    assert_eq!(db.step("promote").unwrap().attempts, 2);
    assert_eq!(db.step("promote").unwrap().status, StepStatus::Succeeded);
    assert_eq!(db.attempts(), 3);
    assert!(db.step_done("DBA confirms"));
    let pay = st.service("payments").unwrap();
    assert_eq!(pay.rto_met(), Some(false));
    assert_eq!(pay.breached_by_s(), Some(100.0));
    // Planned steps that never ran are still listed, pending.
    assert_eq!(pay.step("scale").unwrap().status, StepStatus::Pending);
    let co = st.service("checkout").unwrap();
    assert_eq!(co.status, ServiceStatus::Failed);
    assert_eq!(co.failed_step().unwrap().name, "enable traffic");
    assert_eq!(co.rto_met(), Some(false));
    assert_eq!(st.service("search").unwrap().status, ServiceStatus::Blocked);
    assert_eq!(st.approvals.len(), 1);
    assert_eq!(st.approvals[0].by, "alice@ops");
    assert_eq!(st.approvals[0].at, ts(80.0));
    assert_eq!(st.breaches.len(), 1);

    // Incremental apply gives the same state as the fold.
    let mut inc = RunState::default();
    for r in scenario("r1") {
        inc.apply(&r);
    }
    assert_eq!(report::status_json(&inc), report::status_json(&st));
}

#[test]
fn fold_tells_resume_what_is_done_unfinished_and_failed() {
    let mut recs = scenario("r1");
    recs.truncate(9); // orders-db is waiting on its manual step
    let st = RunState::fold(&recs);
    assert_eq!(st.state, RunStatus::Running);
    let db = st.service("orders-db").unwrap();
    assert_eq!(db.status, ServiceStatus::Waiting);
    assert!(db.step_done("promote"));
    assert!(!db.step_done("DBA confirms"));
    assert_eq!(db.unfinished_step().unwrap().name, "DBA confirms");
    assert!(!db.is_done(st.closing_cleanup));

    // Interrupted, then resumed: the run is running again; a retried service starts clean.
    let mut recs = scenario("r1");
    let n = recs.len() as u64;
    recs.pop();
    recs.push(Record {
        seq: n,
        ts: ts(402.0),
        event: Event::RunInterrupted {
            reason: "SIGINT".into(),
        },
    });
    recs.push(Record {
        seq: n + 1,
        ts: ts(500.0),
        event: Event::RunResumed {
            changes: vec!["playbooks/checkout.toml changed".into()],
            input_hash: "def".into(),
            holder: None,
        },
    });
    recs.push(Record {
        seq: n + 2,
        ts: ts(501.0),
        event: Event::ServiceStarted {
            service: "checkout".into(),
        },
    });
    let st = RunState::fold(&recs);
    assert_eq!(st.state, RunStatus::Running);
    assert_eq!(st.interruptions.len(), 1);
    assert_eq!(st.resumes[0].changes.len(), 1);
    let co = st.service("checkout").unwrap();
    assert_eq!(co.status, ServiceStatus::Running);
    assert_eq!(co.starts, 2);
    assert!(co.error.is_none());
    // The failed step is where the retry starts.
    assert_eq!(co.failed_step().unwrap().name, "enable traffic");
}

#[test]
fn status_json_has_the_v1_shape() {
    let v = report::status_json(&RunState::fold(&scenario("r1")));
    assert_eq!(v["schema"], "meeseeks.status/v1");
    assert_eq!(v["run_id"], "r1");
    assert_eq!(v["mode"], "drill");
    assert_eq!(v["state"], "failed");
    let svcs = v["services"].as_array().unwrap();
    assert_eq!(svcs.len(), 4);
    let db = &svcs[1];
    assert_eq!(db["name"], "orders-db");
    assert_eq!(db["status"], "recovered");
    assert_eq!(db["recovered_s"], 90.0);
    assert_eq!(db["rto_s"], 1200.0);
    assert_eq!(db["rto_met"], true);
    assert_eq!(db["steps"][0]["name"], "promote");
    assert_eq!(db["steps"][0]["status"], "succeeded");
    assert_eq!(db["steps"][0]["attempts"], 2);
    assert_eq!(svcs[2]["rto_met"], false);
    assert_eq!(svcs[2]["breached_by_s"], 100.0);
    assert!(svcs[0]["recovered_s"].is_null());
    assert_eq!(v["approvals"][0]["by"], "alice@ops");
}

#[test]
fn state_dir_is_private_and_runs_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(".meeseeks");
    let sd = StateDir::open(&root).unwrap();
    assert_eq!(mode_of(&root), 0o700);
    assert_eq!(mode_of(&root.join("runs")), 0o700);

    let ids = [
        "20261126T081000Z-aaaa",
        "20261126T091000Z-bbbb",
        "20261127T081000Z-cccc",
    ];
    for id in ids.iter().rev() {
        let run = sd.create_run(id, &meta(id)).unwrap();
        assert_eq!(mode_of(&run.path), 0o700);
        assert_eq!(mode_of(&run.meta_path()), 0o600);
        assert_eq!(run.read_meta().unwrap().run_id, *id);
    }
    assert_eq!(sd.list_runs().unwrap(), ids);
    assert_eq!(sd.latest().unwrap().unwrap().id, ids[2]);
    assert_eq!(sd.resolve(None).unwrap().id, ids[2]);
    // A unique prefix is enough.
    assert_eq!(sd.open_run("20261126T09").unwrap().id, ids[1]);
    let err = sd
        .open_run("20261126T081000Z-aaab")
        .unwrap_err()
        .to_string();
    assert!(err.contains("closest: 20261126T081000Z-aaaa"), "{err}");
    let err = sd.open_run("20261126").unwrap_err().to_string();
    assert!(err.contains("matches 2 runs"), "{err}");
    assert!(sd.create_run(ids[0], &meta(ids[0])).is_err());
    assert!(sd.create_run("../evil", &meta("x")).is_err());

    // A looser existing directory is tightened.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    StateDir::open(&root).unwrap();
    assert_eq!(mode_of(&root), 0o700);
}

#[test]
fn run_ids_sort_by_time() {
    let a = new_run_id(ts(0.0));
    let b = new_run_id(ts(1.0));
    let c = new_run_id(ts(86_400.0));
    assert_eq!(a.len(), "20261126T081000Z-3f2a".len());
    assert!(a.starts_with("20261126T081000Z-"), "{a}");
    assert!(a < b && b < c);
}

#[test]
fn input_hash_is_order_independent_and_changes_are_described() {
    let a = [
        ("graph.toml", b"x".to_vec()),
        ("playbooks/a.toml", b"y".to_vec()),
    ];
    let b = [
        ("playbooks/a.toml", b"y".to_vec()),
        ("graph.toml", b"x".to_vec()),
    ];
    assert_eq!(input_hash(&a), input_hash(&b));
    assert_eq!(input_hash(&a).len(), 64);
    // Moving bytes between files changes the hash.
    let c = [
        ("graph.toml", b"xy".to_vec()),
        ("playbooks/a.toml", b"".to_vec()),
    ];
    assert_ne!(input_hash(&a), input_hash(&c));

    let m = RunMeta::new(
        "r",
        &RunConfig::new(Mode::Drill),
        Path::new("/dr"),
        ts(0.0),
        &a,
    );
    assert_eq!(m.input_hash, input_hash(&a));
    assert_eq!(m.inputs, input_digests(&a));
    let now: Vec<InputDigest> = input_digests(&[
        ("graph.toml", b"x".to_vec()),
        ("playbooks/a.toml", b"z".to_vec()),
        ("playbooks/b.toml", b"".to_vec()),
    ]);
    assert_eq!(
        m.input_changes(&now),
        vec!["playbooks/a.toml changed", "playbooks/b.toml added"]
    );
}

#[tokio::test]
async fn run_refuses_while_an_unfinished_run_exists_until_abandoned() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let sd = StateDir::open(&root).unwrap();
    let id1 = "20261126T081000Z-0001";
    let (run, lock) = sd.begin_run(&meta(id1)).unwrap();
    let (j, _) =
        meeseeks::store::file::JournalWriter::append_existing(&run.path, Masker::new()).unwrap();
    let mut first = scenario(id1);
    first.truncate(3);
    for r in first {
        j.emit(r.event);
    }
    j.close().await.unwrap();
    assert_eq!(mode_of(&run.journal_path()), 0o600);

    // Live: status says running with the holder; a second run and abandon are refused (3).
    let st = run.load_state().unwrap();
    assert_eq!(st.state, RunStatus::Running);
    assert_eq!(st.holder.as_ref().unwrap().pid, std::process::id());
    let err = sd.begin_run(&meta("20261126T081001Z-0002")).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("running (pid"), "{err}");
    let spec = StoreSpec::File(root.clone());
    let err = meeseeks::session::abandon(&spec, Some(id1))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("is locked by pid"), "{err}");

    // The process "dies": no terminal event, lock free → interrupted (crashed), still blocks.
    drop(lock);
    let st = run.load_state().unwrap();
    assert_eq!(st.state, RunStatus::Interrupted);
    assert!(st.crashed);
    let err = sd.begin_run(&meta("20261126T081001Z-0002")).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("meeseeks resume {id1}"))
            && msg.contains(&format!("--abandon {id1}")),
        "{msg}"
    );

    // Abandoned: journaled with who, and a new run may start.
    let out = meeseeks::session::abandon(&spec, None).await.unwrap();
    assert!(out.contains(id1), "{out}");
    let st = run.load_state().unwrap();
    assert_eq!(st.state, RunStatus::Abandoned);
    assert!(st.abandoned_by.is_some());
    assert!(meeseeks::session::abandon(&spec, Some(id1)).await.is_err());
    let (run2, _lock2) = sd.begin_run(&meta("20261126T081001Z-0002")).unwrap();
    assert_eq!(sd.latest().unwrap().unwrap(), run2);
}

#[test]
fn finished_runs_do_not_block_and_list_in_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    write_journal(&run, &scenario(id));
    assert!(sd.unfinished_runs().unwrap().is_empty());
    let state = tmp.path().to_str().unwrap();
    let (code, out, _) = bin(&["runs", "--state-dir", state]);
    assert_eq!(code, 0);
    assert!(out.starts_with("RUN "), "{out}");
    assert!(
        out.contains(id) && out.contains("failed") && out.contains("2/4"),
        "{out}"
    );
    let (_, out, _) = bin(&["runs", "--state-dir", state, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.runs/v1");
    assert_eq!(v["runs"][0]["state"], "failed");
    let nothing = tmp.path().join("nothing");
    let (_, out, _) = bin(&["runs", "--state-dir", nothing.to_str().unwrap()]);
    assert_eq!(out, "no runs\n");
}

#[test]
fn status_and_report_commands_exit_codes_and_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    write_journal(&run, &scenario(id));
    let state = tmp.path().to_str().unwrap();
    let (code, out, _) = bin(&["status", "--state-dir", state, "--format", "json"]);
    assert_eq!(code, 1, "a failed run is a negative outcome");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.status/v1");
    let (_, out, _) = bin(&["status", id, "--state-dir", state]);
    assert!(out.contains("enable traffic"), "{out}");
    let (code, _, err) = bin(&["status", "--state-dir", state, "--format", "junit"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = bin(&["status", "nope", "--state-dir", state]);
    assert_eq!(code, 2, "{err}");
    for f in ["text", "json", "markdown", "html", "junit"] {
        let (code, out, _) = bin(&["report", "--state-dir", state, "--format", f]);
        assert_eq!(code, 1);
        assert!(!out.is_empty());
    }
    let (_, out, _) = bin(&["report", "--state-dir", state, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.report/v1");
    assert_eq!(
        v["services"][0]["steps"][0]["output"],
        "first line\n<b>&\u{1b}[31m red ]]> \"quoted\""
    );
}

#[test]
fn torn_journal_reads_with_a_warning_in_status() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    let recs = scenario(id);
    write_journal(&run, &recs[..5]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run.journal_path())
        .unwrap();
    f.write_all(br#"{"seq":6,"ts":"2026-11-26T08:1"#).unwrap();
    let st = run.load_state().unwrap();
    assert_eq!(st.last_seq, 5);
    assert!(
        st.warnings
            .iter()
            .any(|w| w.contains("incomplete last line")),
        "{:?}",
        st.warnings
    );
    // Corrupt in the middle: an error naming the line, not a silent partial replay.
    f.write_all(b"\n").unwrap();
    write_journal(&run, &recs[6..8]);
    let err = run.load_state().unwrap_err().to_string();
    assert!(err.contains("journal.jsonl:6:"), "{err}");
}

fn waiting_run(sd: &StateDir, id: &str) -> RunDir {
    let run = sd.create_run(id, &meta(id)).unwrap();
    let mut recs = scenario(id);
    recs.truncate(9);
    write_journal(&run, &recs);
    run
}

#[test]
fn approve_drops_a_private_file_the_runner_takes_for_the_waiting_step_only() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = waiting_run(&sd, id);

    // Not live: nobody would see the approval.
    let err = run
        .approve("orders-db", None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no runner is waiting"), "{err}");

    let _lock = RunLock::acquire(&run.path).unwrap();
    let err = run.approve("orders-dbb", None, None).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `orders-db`"),
        "{err}"
    );
    let err = run.approve("payments", None, None).unwrap_err().to_string();
    assert!(err.contains("no manual step waiting"), "{err}");
    let err = run
        .approve("orders-db", Some("promote"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("waits on step `DBA confirms`"), "{err}");

    let (code, out, err) = bin(&[
        "approve",
        id,
        "orders-db",
        "--by",
        "bob@ops",
        "--state-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("DBA confirms") && out.contains("bob@ops"),
        "{out}"
    );
    let file = run.approvals_dir().join("orders-db.json");
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(&run.approvals_dir()), 0o700);

    // An approval for another step is discarded, never applied.
    assert!(
        take_approval(&run.path, "orders-db", "other")
            .unwrap()
            .is_none()
    );
    assert!(!file.exists());

    let a = run
        .approve("orders-db", Some("DBA confirms"), None)
        .unwrap();
    assert!(a.by.contains('@'));
    let got = take_approval(&run.path, "orders-db", "DBA confirms")
        .unwrap()
        .unwrap();
    assert_eq!(got, a);
    assert!(
        take_approval(&run.path, "orders-db", "DBA confirms")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn waiting_runner_notices_an_approval_from_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let run = waiting_run(&sd, "20261126T081000Z-0001");
    let _lock = RunLock::acquire(&run.path).unwrap();
    // What the runner polls while the step waits.
    let source = DropBoxApprovals {
        run_dir: run.path.clone(),
    };
    assert_eq!(
        source.check("orders-db", "DBA confirms", ""),
        Answer::Pending
    );
    let waiter = tokio::spawn(async move {
        loop {
            match source.check("orders-db", "DBA confirms", "") {
                Answer::Pending => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => return other,
            }
        }
    });
    let r2 = run.clone();
    std::thread::spawn(move || r2.approve("orders-db", None, Some("carol@ops")).unwrap())
        .join()
        .unwrap();
    assert_eq!(waiter.await.unwrap(), Answer::Approved("carol@ops".into()));
}

#[test]
fn junit_parses_back_with_failures_and_escaped_output() {
    let st = RunState::fold(&scenario("r1"));
    let xml = report::junit(&st);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("3"));
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap()
    };
    let failure = |name: &str| case(name).children().find(|n| n.has_tag_name("failure"));
    assert!(failure("orders-db").is_none());
    assert_eq!(
        failure("payments").unwrap().attribute("type"),
        Some("rto_breached")
    );
    assert!(
        failure("payments")
            .unwrap()
            .attribute("message")
            .unwrap()
            .contains("breached by 1m40s")
    );
    let co = failure("checkout").unwrap();
    assert_eq!(co.attribute("type"), Some("failed"));
    let text = co.text().unwrap();
    // Markup escaped and read back whole; the terminal escape (`ESC[31m`) is stripped, as
    // XML 1.0 cannot carry it.
    assert!(text.contains("<b>& red ]]> \"quoted\""), "{text}");
    assert_eq!(
        failure("search").unwrap().attribute("type"),
        Some("blocked")
    );
    let approval = doc
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("approval"))
        .unwrap();
    assert!(approval.attribute("value").unwrap().contains("alice@ops"));
}

#[test]
fn html_is_self_contained_with_an_svg_gantt() {
    let st = RunState::fold(&scenario("r1"));
    let html = report::html(&st);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"));
    for external in ["<script", "<link", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "found {external}");
    }
    // Output is escaped, never injected.
    assert!(html.contains("&lt;b&gt;&amp;"));
    assert!(!html.contains("<b>&"));
    // Planned bars from the journal's plan, actual bars, RTO ticks.
    assert_eq!(html.matches("<title>planned").count(), 4);
    assert_eq!(html.matches("<title>RTO").count(), 4);
}

#[test]
fn markdown_has_tables_failures_and_a_mermaid_gantt() {
    let st = RunState::fold(&scenario("r1"));
    let md = report::markdown(&st);
    assert!(md.contains("```mermaid\ngantt\n"));
    assert!(md.contains(&format!("  planned :p1, {}, {}", T0, T0 + 120)));
    assert!(md.contains(&format!("  recovered :done, a1, {}, {}", T0 + 1, T0 + 90)));
    assert!(md.contains("| orders-db | recovered |"));
    assert!(md.contains("## Approvals"));
    assert!(md.contains("alice@ops"));
}

#[test]
fn text_report_snapshot() {
    let st = RunState::fold(&scenario("20261126T081000Z-3f2a"));
    insta::assert_snapshot!(report::render(&st, ReportFormat::Text));
}

#[tokio::test]
async fn a_resumed_run_continues_its_journal_under_its_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = waiting_run(&sd, id);
    let store = Store::open(&StoreSpec::File(tmp.path().to_path_buf()), false)
        .await
        .unwrap();
    let lease = store.acquire(id, false, false).await.unwrap();
    assert_eq!(lease.run_dir(), run.path);
    assert_eq!(lease.meta().await.unwrap().run_id, id);
    let state = lease.state().await.unwrap();
    assert_eq!(state.last_seq, 9);
    assert!(state.service("orders-db").unwrap().step_done("promote"));
    // While it is held, nobody else can take it.
    let err = store.acquire(id, false, false).await.err().unwrap();
    assert_eq!(err.exit_code(), 3);
    let journal = lease.journal(Masker::new()).await.unwrap();
    let rec = journal.emit(Event::RunResumed {
        changes: vec![],
        input_hash: "abc".into(),
        holder: None,
    });
    assert_eq!(rec.seq, 10);
    journal.emit(Event::RunFinished {
        outcome: "succeeded".into(),
        recovered: 4,
        failed: 0,
        blocked: 0,
    });
    journal.close().await.unwrap();
    drop(lease);
    assert_eq!(run.load_state().unwrap().state, RunStatus::Finished);
}

/// The child of `sigkill_mid_run_leaves_a_replayable_journal` is `examples/journal_writer.rs`
/// (built by `cargo test` with the other examples): it journals events forever, printing each
/// sequence number once it is durable.
fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo test` (which builds the examples) or `cargo build --examples`",
        p.display()
    );
    p
}

#[test]
fn sigkill_mid_run_leaves_a_replayable_journal() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    let mut child = std::process::Command::new(example_bin("journal_writer"))
        .arg(&run.path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while acked < 400 {
        let line = lines.next().expect("child stopped early").unwrap();
        if let Some(n) = line.strip_prefix("durable ") {
            acked = n.parse().unwrap();
            if acked >= 16 {
                // While it runs: live, held by the child.
                let st = run.load_state().unwrap();
                assert_eq!(st.state, RunStatus::Running);
                assert_eq!(st.holder.as_ref().unwrap().pid, child.id());
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to journal anything more
    child.wait().unwrap();
    let st = run.load_state().unwrap();
    assert!(st.last_seq >= acked, "{} < {acked}", st.last_seq);
    assert_eq!(st.state, RunStatus::Interrupted);
    assert!(st.crashed);
    // And the run can be taken over and continued.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&StoreSpec::File(tmp.path().to_path_buf()), false)
            .await
            .unwrap();
        let lease = store.acquire(id, false, false).await.unwrap();
        let journal = lease.journal(Masker::new()).await.unwrap();
        let rec = journal.emit(Event::RunResumed {
            changes: vec![],
            input_hash: "abc".into(),
            holder: None,
        });
        assert_eq!(rec.seq, st.last_seq + 1);
        journal.close().await.unwrap();
    });
    let replay = meeseeks::store::file::read_journal(&run.journal_path()).unwrap();
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
}

/// A journal deleted, or emptied after the run began, is an error everywhere: never "nothing
/// happened" (a resume would run the whole failover again).
#[test]
fn a_missing_or_emptied_journal_is_an_error_not_a_blank_slate() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    // Created empty with the run: a run that never began reads as such.
    assert_eq!(run.load_state().unwrap().last_seq, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (j, _) =
            meeseeks::store::file::JournalWriter::append_existing(&run.path, Masker::new())
                .unwrap();
        let rec = j.emit(scenario(id).remove(0).event);
        j.durable(rec.seq).await.unwrap();
        j.close().await.unwrap();
    });
    assert_eq!(run.load_state().unwrap().last_seq, 1);
    std::fs::write(run.journal_path(), "").unwrap();
    let err = run.load_state().unwrap_err().to_string();
    assert!(err.contains("is empty although the run had begun"), "{err}");
    std::fs::remove_file(run.journal_path()).unwrap();
    let err = run.load_state().unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
    let state = tmp.path().to_str().unwrap();
    for args in [
        &["status", "--state-dir", state][..],
        &["resume", "--state-dir", state][..],
    ] {
        let (code, _, stderr) = bin(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("is missing"), "{stderr}");
    }
    // ... and it blocks a new run rather than being forgotten.
    let err = sd.begin_run(&meta("20261126T081001Z-0002")).unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
}

#[test]
fn markdown_junit_and_status_snapshots() {
    let st = RunState::fold(&scenario("20261126T081000Z-3f2a"));
    insta::assert_snapshot!("markdown", report::markdown(&st));
    insta::assert_snapshot!("junit", report::junit(&st));
    let mut recs = scenario("20261126T081000Z-3f2a");
    recs.truncate(16);
    insta::assert_snapshot!(
        "status_in_progress",
        report::status_text(&RunState::fold(&recs))
    );
}

#[test]
fn a_damaged_journal_blocks_new_runs_with_a_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = StateDir::open(tmp.path()).unwrap();
    let id = "20261126T081000Z-0001";
    let run = sd.create_run(id, &meta(id)).unwrap();
    let recs = scenario(id);
    write_journal(&run, &recs[..2]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(run.journal_path())
        .unwrap()
        .write_all(b"garbage\n")
        .unwrap();
    write_journal(&run, &recs[2..4]);
    let err = sd.begin_run(&meta("20261126T081001Z-0002")).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert!(
        msg.contains("cannot be read") && msg.contains("journal.jsonl:3:"),
        "{msg}"
    );
    assert!(msg.contains("move its directory"), "{msg}");
}

#[test]
fn cleanup_steps_after_recovery_keep_the_service_recovered() {
    let mut recs = scenario("r1");
    let st = RunState::fold(&recs);
    let recovered: Vec<String> = st
        .services
        .iter()
        .filter(|s| s.status == ServiceStatus::Recovered)
        .map(|s| s.name.clone())
        .collect();
    assert!(!recovered.is_empty());
    let svc = recovered[0].clone();
    let n = recs.last().unwrap().seq;
    for (i, event) in [
        Event::StepStarted {
            service: svc.clone(),
            step: "cleanup/stop".into(),
            attempt: 1,
            action: None,
        },
        Event::StepSucceeded {
            service: svc.clone(),
            step: "cleanup/stop".into(),
            attempts: 1,
            duration_s: 0.1,
        },
    ]
    .into_iter()
    .enumerate()
    {
        recs.push(Record {
            seq: n + 1 + i as u64,
            ts: ts(900.0 + i as f64),
            event,
        });
    }
    let st = RunState::fold(&recs);
    assert_eq!(st.service(&svc).unwrap().status, ServiceStatus::Recovered);
}
