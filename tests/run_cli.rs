//! `meeseeks run` / `drill` / `run --dry-run` end to end: the real binary on a temp DR directory.

mod common;
use common::{meeseeks, write};

use std::process::Stdio;
use std::time::Duration;

#[test]
fn dry_run_executes_nothing_and_masks_secrets() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        r#"
[vars]
site = "dc2"
[services.db]
tier = 0
rto = "5m"
[services.api]
tier = 1
rto = "10m"
depends_on = ["db"]
"#,
    );
    write(
        dir,
        "playbooks/db.toml",
        r#"
[[steps]]
name = "promote"
run = "touch executed-db; echo {{ secret.DB_TOKEN }}"
estimate = "90s"
"#,
    );
    write(
        dir,
        "playbooks/api.toml",
        r#"
[[steps]]
name = "enable"
http = { method = "POST", url = "http://127.0.0.1:9/{{ site }}/pools", body = '{"token":"{{ secret.DB_TOKEN }}"}', expect_status = [200] }
estimate = "30s"
[[steps]]
name = "argv"
cmd = ["touch", "executed-api"]
estimate = "10s"
"#,
    );
    let out = meeseeks()
        .args(["run", "--dry-run"])
        .arg(dir)
        .env("DB_TOKEN", "hunter2-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!dir.join("executed-db").exists());
    assert!(!dir.join("executed-api").exists());
    assert!(!dir.join(".meeseeks").exists(), "a dry-run writes no state");
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
    // Every action, rendered, in order, in virtual time.
    let promote = stdout
        .find("db: step \"promote\": run: touch executed-db; echo ***")
        .expect(&stdout);
    let enable = stdout
        .find(r#"api: step "enable": http: POST http://127.0.0.1:9/dc2/pools body={"token":"***"}"#)
        .expect(&stdout);
    let argv = stdout
        .find("api: step \"argv\": cmd: touch executed-api")
        .expect(&stdout);
    assert!(promote < enable && enable < argv);
    assert!(stdout.contains("T+01:30 api: started"), "{stdout}");
    assert!(stdout.contains("Simulated timeline"), "{stdout}");
    assert!(stdout.contains("makespan 02:10"), "{stdout}");
}

#[test]
fn drill_summary_and_exit_code_on_failure() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        r#"
[services.db]
tier = 0
rto = "5m"
[services.api]
tier = 1
depends_on = ["db"]
[services.cache]
tier = 1
"#,
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"promote\"\nrun = \"echo replica lag too high; exit 4\"\n",
    );
    write(
        dir,
        "playbooks/api.toml",
        "[[steps]]\nname = \"s\"\nrun = \"true\"\n",
    );
    write(
        dir,
        "playbooks/cache.toml",
        "[[steps]]\nname = \"drill only\"\nrun = \"touch drilled\"\nonly = \"drill\"\n",
    );
    let out = meeseeks()
        .args(["drill", "--no-progress"])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(dir.join("drilled").exists());
    assert!(stdout.contains("drill "), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("api: blocked by db"), "{stdout}");
    assert!(stdout.contains("| replica lag too high"), "{stdout}");
    // Plain timestamped progress lines on stderr (not a TTY).
    assert!(
        stderr.contains("db: step \"promote\" FAILED after 1 attempt(s): exit status 4"),
        "{stderr}"
    );
    // -q: only the result.
    let out = meeseeks().args(["drill", "-q"]).arg(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty());
}

#[test]
fn two_sigints_exit_130_and_leave_no_process_behind() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        "[services.a]\ntier = 0\n[services.b]\ntier = 0\n[services.c]\ntier = 1\ndepends_on = [\"a\"]\n",
    );
    // Each step leaves a grandchild (sleep) in its process group and records its pid.
    for s in ["a", "b", "c"] {
        write(
            dir,
            &format!("playbooks/{s}.toml"),
            &format!(
                "[[steps]]\nname = \"long\"\nrun = \"sleep 60 & echo $! > {s}.pid; wait\"\ntimeout = \"2m\"\n"
            ),
        );
    }
    let mut child = meeseeks()
        .args(["run", "--no-progress"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_of = |s: &str| -> Option<i32> {
        std::fs::read_to_string(dir.join(format!("{s}.pid")))
            .ok()
            .filter(|t| t.ends_with('\n'))
            .and_then(|t| t.trim().parse().ok())
    };
    // Wait (bounded by the test harness, not a timer) until both wave-0 steps run.
    while pid_of("a").is_none() || pid_of("b").is_none() {
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpid = child.id() as i32;
    // SAFETY: plain kill(2) on our own child.
    let sig = |s| unsafe { libc::kill(cpid, s) };
    sig(libc::SIGINT);
    // The first interrupt lets running steps go on: the run must still be alive.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "first SIGINT must not kill steps"
    );
    sig(libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run interrupted"), "{stderr}");
    for s in ["a", "b"] {
        let pid = pid_of(s).unwrap();
        assert!(common::pid_dead(pid), "{s}'s grandchild {pid} survived");
    }
    assert!(
        pid_of("c").is_none(),
        "nothing new starts after an interrupt"
    );
}

#[test]
fn manual_step_without_tty_waits_for_meeseeks_approve_and_the_run_is_journaled() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join("state");
    write(
        dir,
        "graph.toml",
        "[services.db]\ntier = 0\n[services.cache]\ntier = 0\n",
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"confirm\"\nmanual = \"Replica lag below 5s?\"\n[[steps]]\nname = \"after\"\nrun = \"touch approved-and-went-on\"\n",
    );
    write(
        dir,
        "playbooks/cache.toml",
        "[[steps]]\nname = \"s\"\nrun = \"true\"\n",
    );
    let child = meeseeks()
        .args(["run", "--no-progress", "--state-dir"])
        .arg(&state)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the journal says the manual step waits (the runner's own record).
    let journal = || -> Option<(String, String)> {
        let runs = std::fs::read_dir(state.join("runs")).ok()?;
        for e in runs.flatten() {
            let text = std::fs::read_to_string(e.path().join("journal.jsonl")).ok()?;
            if text.contains("\"manual.waiting\"") {
                return Some((e.file_name().to_string_lossy().into_owned(), text));
            }
        }
        None
    };
    let run_id = loop {
        if let Some((id, _)) = journal() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ok = meeseeks()
        .args(["approve", &run_id, "db", "--by", "dba@site", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("meeseeks approve"),
        "the operator is told how: {stderr}"
    );
    assert!(dir.join("approved-and-went-on").exists());
    let text =
        std::fs::read_to_string(state.join("runs").join(&run_id).join("journal.jsonl")).unwrap();
    assert!(text.contains(r#""by":"dba@site""#), "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.contains("\"run.finished\""), "{last}");
    // `status` reads the same journal.
    let st = meeseeks()
        .args(["status", "--format", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("\"recovered\""), "{st}");
}

#[test]
fn webhooks_receive_run_events() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let base = rt.block_on(common::serve(router));
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        &format!(
            "[[notify]]\nurl = \"{base}/hook\"\nevents = [\"run.started\", \"service.failed\", \"run.finished\"]\n\n[services.a]\ntier = 0\n"
        ),
    );
    write(
        dir,
        "playbooks/a.toml",
        "[[steps]]\nname = \"s\"\nrun = \"echo {{ secret.HOOK_SECRET }}; exit 1\"\n",
    );
    let out = meeseeks()
        .args(["run", "-q"])
        .arg(dir)
        .env("HOOK_SECRET", "s3cr3t-hook")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let bodies = got.lock().unwrap().clone();
    let all = bodies.join("\n");
    assert_eq!(bodies.len(), 3, "{all}");
    assert!(
        all.contains("run.started")
            && all.contains("service.failed")
            && all.contains("run.finished")
    );
    assert!(!all.contains("s3cr3t-hook"), "{all}");
}

/// The dry-run walks with the simulated executor; the planner schedules by list scheduling.
/// Same ordering core, so they must agree to the millisecond, service by service.
#[test]
fn dry_run_timeline_equals_the_plan_for_the_shop_demo() {
    let shop = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop");
    let json = |args: &[&str]| -> serde_json::Value {
        let out = meeseeks().args(args).output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    for extra in [
        &[][..],
        &["--eager"][..],
        &["--drill"][..],
        &["--drill", "--eager"][..],
    ] {
        let mut p = vec!["plan", shop, "--format", "json"];
        p.extend_from_slice(extra);
        let mut d = vec!["run", shop, "--dry-run", "-q", "--format", "json"];
        d.extend_from_slice(extra);
        let (plan, dry) = (json(&p), json(&d));
        assert_eq!(plan["makespan_s"], dry["makespan_s"], "{extra:?}");
        let ready = |v: &serde_json::Value| -> std::collections::BTreeMap<String, f64> {
            v["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_string(),
                        s["ready_s"].as_f64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(ready(&plan), ready(&dry), "{extra:?}");
    }
}
