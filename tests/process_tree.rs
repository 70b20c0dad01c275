//! What a step starts, and what becomes of it (issue 12 items 9 and 11): a timed-out attempt
//! does not wait the kill grace for a zombie leader, `setsid` grandchildren do not escape the
//! timeout kill, `wait` honours its timeout and the first interrupt, and after the runner is
//! SIGKILLed its in-flight step neither goes on unnoticed nor runs twice on resume.

mod common;
use common::{meeseeks_in as meeseeks, write};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meeseeks::exec::executor::{Call, Executor, RealExecutor};
use meeseeks::exec::process::{self, Exit, Program};
use meeseeks::model::{Step, StepKind};
use tokio_util::sync::CancellationToken;

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| !s[i + 1..].trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// Live processes whose environment holds `entry` (`NAME=value`).
fn procs_with_env(entry: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|x| x == entry.as_bytes()) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_timed_out_attempt_does_not_wait_the_grace_for_its_zombie_leader() {
    let grace = Duration::from_secs(60);
    let started = Instant::now();
    let r = rt().block_on(process::run(
        // `exec`: the leader itself is the sleeping process and dies at the first SIGTERM.
        Program::Shell("exec sleep 30"),
        Path::new("/"),
        &[],
        None,
        Duration::from_millis(200),
        grace,
        &CancellationToken::new(),
    ));
    assert!(matches!(r.exit, Exit::TimedOut), "{:?}", r.exit);
    // Before the fix the leader stayed an unreaped zombie, its group "alive", and every
    // timed-out attempt took the whole grace.
    assert!(
        started.elapsed() < grace / 2,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn setsid_grandchildren_do_not_escape_the_timeout_kill() {
    if Command::new("setsid").arg("--version").output().is_err() {
        eprintln!("setsid(1) not installed; skipping");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pidfile = d.path().join("pid");
    let line = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 60' & sleep 60",
        pidfile.display()
    );
    let r = rt().block_on(process::run(
        Program::Shell(&line),
        d.path(),
        &[],
        None,
        Duration::from_millis(500),
        Duration::from_secs(2),
        &CancellationToken::new(),
    ));
    assert!(matches!(r.exit, Exit::TimedOut), "{:?}", r.exit);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The kill is synchronous with the attempt's end: SIGKILL was sent before `run` returned,
    // and a killed process leaves /proc (or turns zombie) as soon as the kernel reaps it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(pid),
        "the setsid grandchild {pid} escaped the timeout"
    );
}

fn wait_step(d: Duration, timeout: Option<Duration>) -> Step {
    Step {
        timeout,
        ..common::step("pause", StepKind::Wait(d))
    }
}

#[test]
fn wait_honours_its_timeout_and_the_first_interrupt() {
    let rt = rt();
    let ex = RealExecutor::new("/".into(), Vec::new(), Duration::from_secs(1));
    let (stop, kill) = (CancellationToken::new(), CancellationToken::new());
    let call = Call {
        service: "s",
        label: "pause",
        stop: &stop,
        kill: &kill,
    };
    let step = wait_step(Duration::from_secs(3600), Some(Duration::from_millis(100)));
    let a = rt.block_on(ex.step(&step, Duration::from_secs(3600), call));
    assert!(!a.ok && !a.killed, "{a:?}");
    assert!(a.error.contains("timed out"), "{a:?}");

    let step = wait_step(Duration::from_secs(3600), None);
    let stopper = stop.clone();
    let a = rt.block_on(async {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopper.cancel();
        });
        ex.step(&step, Duration::from_secs(3600), call).await
    });
    assert!(
        !a.ok && a.killed,
        "the first interrupt must end a wait: {a:?}"
    );

    // A wait shorter than its timeout succeeds.
    let step = wait_step(Duration::from_millis(10), Some(Duration::from_secs(5)));
    let fresh = CancellationToken::new();
    let call = Call {
        stop: &fresh,
        ..call
    };
    assert!(rt.block_on(ex.step(&step, Duration::from_secs(5), call)).ok);
}

fn run_dir(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir.join(".meeseeks/runs"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
}

/// Waits (bounded) until `f` holds.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A DR directory of one service `a` with `playbook`, and `meeseeks run` started on it.
fn start_run(dir: &Path, playbook: &str) -> std::process::Child {
    write(dir, "graph.toml", "[services.a]\ntier = 0\nrto = \"5m\"\n");
    write(dir, "playbooks/a.toml", playbook);
    meeseeks(dir)
        .args(["run", "."])
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn the_first_sigterm_ends_a_long_wait() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut child = start_run(dir, "[[steps]]\nname = \"pause\"\nwait = \"1h\"\n");
    until("step.started", || {
        run_dir(dir)
            .and_then(|r| std::fs::read_to_string(r.join("journal.jsonl")).ok())
            .is_some_and(|j| j.contains("step.started"))
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut code = None;
    until("the run to exit after one SIGTERM", || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    assert_eq!(code.unwrap(), Some(130));
}

#[test]
fn after_sigkill_the_step_does_not_go_on_and_resume_does_not_run_it_twice() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Slow until `fast` exists; logs each start and each end.
    let mut child = start_run(
        dir,
        r#"
[[steps]]
name = "slow"
run = "echo start >> log; if [ -f fast ]; then :; else sleep 60; sleep 1; fi; echo end >> log"
"#,
    );
    until("the step to start", || {
        std::fs::read_to_string(dir.join("log")).is_ok_and(|l| l.contains("start"))
    });
    let run = run_dir(dir).unwrap();
    let entry = format!(
        "MEESEEKS_RUN_ID={}",
        run.file_name().unwrap().to_str().unwrap()
    );
    let step_procs = || procs_with_env(&entry);
    let before = step_procs();
    assert!(before.len() >= 2, "sh and sleep expected: {before:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The step outlives the runner: resume must find it and stop it before running it again.
    let left = step_procs();
    assert!(
        !left.is_empty(),
        "the step is expected to outlive the runner"
    );

    std::fs::write(dir.join("fast"), "").unwrap();
    let out = meeseeks(dir).args(["resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("left running by the previous runner (a / slow)"),
        "{stderr}"
    );
    assert!(step_procs().is_empty(), "orphans left: {:?}", step_procs());
    // The first copy never finished: one `end`, from the resumed run.
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert_eq!(log, "start\nstart\nend\n");
}
