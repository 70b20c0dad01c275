//! A run's life as an operator lives it, through the real binary: relative DR directories
//! from other working directories, a failed drill resumed (with or without a cleanup in
//! between) until its services really answer, a journal that cannot be written, and the locks
//! that keep two failovers of one DR directory apart. Stand-ins are real `meeseeks stub`
//! processes on ports chosen by the OS; health is checked over real HTTP.

mod common;
use common::{meeseeks, output as run, write};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /healthz` answered `200 ok` right now.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") && buf.ends_with("ok")
}

/// Nothing accepts connections on `port` any more (bounded wait: a stopped stand-in's socket
/// closes as its process exits).
fn closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(200),
        )
        .is_err()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A DR directory: `db` and `cache` stand-ins, and `api` (needs both) whose first step fails
/// until the file `fixed` exists in the DR directory. Every step start is logged to `log`.
/// Returns the ports of db, cache, api.
fn dr_dir(dir: &Path) -> [u16; 3] {
    let ports = [free_port(), free_port(), free_port()];
    write(
        dir,
        "graph.toml",
        r#"
[defaults]
parallel = 4
[services.db]
tier = 0
rto = "10m"
[services.cache]
tier = 0
rto = "10m"
[services.api]
tier = 1
rto = "20m"
depends_on = ["db", "cache"]
"#,
    );
    for (name, port) in ["db", "cache", "api"].iter().zip(ports) {
        let gate = if *name == "api" {
            "[[steps]]\nname = \"preflight\"\nrun = \"echo api-gate >> log; test -e fixed\"\ntimeout = \"10s\"\n"
        } else {
            ""
        };
        write(
            dir,
            &format!("playbooks/{name}.toml"),
            &format!(
                r#"{gate}
[[steps]]
name = "paths"
run = "echo {{{{ service }}}} >> log; echo '{{{{ run_dir }}}} {{{{ dr_dir }}}}' > {{{{ service }}}}.paths"
[[steps]]
name = "start"
cmd = ["{{{{ meeseeks }}}}", "stub", "--name", "{{{{ service }}}}", "--listen", "127.0.0.1:{port}", "--ready-after", "100ms", "--ttl", "5m", "--detach", "--pidfile", "{{{{ run_dir }}}}/{{{{ service }}}}.pid"]
timeout = "30s"
[[checks]]
name = "healthz"
http = {{ url = "http://127.0.0.1:{port}/healthz", expect_status = 200, expect_body = "ok" }}
interval = "50ms"
timeout = "20s"
[[cleanup]]
name = "stop"
cmd = ["{{{{ meeseeks }}}}", "stub", "--stop", "--pidfile", "{{{{ run_dir }}}}/{{{{ service }}}}.pid"]
"#
            ),
        );
    }
    ports
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn status_json(dir: &Path) -> serde_json::Value {
    let (code, out, err) = run(meeseeks()
        .args(["status", "--format", "json", "-C"])
        .arg(dir));
    assert!(code == 0 || code == 1, "{code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

/// Leaves nothing running whatever happens to the test.
struct StopAll(Vec<u16>, PathBuf);

impl Drop for StopAll {
    fn drop(&mut self) {
        for pid in std::fs::read_dir(self.1.join(".meeseeks/runs"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|run| {
                std::fs::read_dir(run.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter(|f| f.path().extension().is_some_and(|e| e == "pid"))
        {
            let _ = meeseeks()
                .args(["stub", "--stop", "--pidfile"])
                .arg(pid.path())
                .output();
        }
        let _ = &self.0;
    }
}

/// #10 bug 1: a relative DR directory given from another working directory. Every path a
/// step sees is absolute, so pidfiles land in the run's directory, not in DIR/DIR/...; and
/// the dry-run prints the same absolute paths.
#[test]
fn a_relative_dr_directory_gives_steps_absolute_paths() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("dr");
    let ports = dr_dir(&dir);
    write(&dir, "fixed", "");
    let _stop = StopAll(ports.to_vec(), dir.clone());
    let (code, out, err) = run(meeseeks().current_dir(t.path()).args([
        "drill",
        "dr",
        "--no-cleanup",
        "--no-progress",
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    let canonical = std::fs::canonicalize(&dir).unwrap();
    let paths = std::fs::read_to_string(dir.join("db.paths")).unwrap();
    let (run_dir, dr) = paths.trim().split_once(' ').unwrap();
    assert_eq!(Path::new(dr), canonical);
    assert!(Path::new(run_dir).is_absolute(), "{run_dir}");
    assert!(run_dir.starts_with(&*canonical.join(".meeseeks/runs").to_string_lossy()));
    assert!(Path::new(run_dir).join("db.pid").is_file());
    assert!(
        !dir.join("dr").exists(),
        "paths doubled under the DR directory"
    );
    // meta.json names the DR directory canonically.
    let id = status_json(&dir)["run_id"].as_str().unwrap().to_string();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(".meeseeks/runs").join(&id).join("meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["dir"], canonical.to_string_lossy().as_ref());

    // #10 bug 2: cleaned up from inside the directory, no -C needed.
    let (code, out, err) = run(meeseeks().current_dir(&dir).arg("cleanup"));
    assert_eq!(code, 0, "{out}\n{err}");
    for p in ports {
        assert!(closed(p), "port {p} still open after cleanup");
    }
    assert_eq!(status_json(&dir)["cleanup"]["status"], "done");

    // The dry-run renders the same absolute paths.
    let (code, out, err) =
        run(meeseeks()
            .current_dir(t.path())
            .args(["run", "--dry-run", "dr", "--drill"]));
    assert_eq!(code, 0, "{err}");
    let pid_arg = format!("--pidfile {}", canonical.join(".meeseeks/runs").display());
    assert!(out.contains(&pid_arg), "{out}");
}

/// #10 bug 3, first half: a failed drill keeps its stand-ins up, so `resume` (from inside the
/// DR directory) continues it and every service really answers afterwards.
#[test]
fn a_failed_drill_resumed_after_a_fix_leaves_every_service_answering() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("dr");
    let [db, cache, api] = dr_dir(&dir);
    let _stop = StopAll(vec![db, cache, api], dir.clone());
    let (code, out, err) =
        run(meeseeks()
            .current_dir(t.path())
            .args(["drill", "dr", "--no-progress"]));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("Cleanup: pending"), "{out}");
    // Failed, and not torn down: what recovered still answers.
    assert!(healthy(db) && healthy(cache));
    assert!(!healthy(api));
    let st = status_json(&dir);
    assert_eq!(st["cleanup"]["status"], "pending");
    let (_, runs, _) = run(meeseeks().arg("runs").arg(&dir));
    assert!(
        runs.contains("CLEANUP") && runs.contains("pending"),
        "{runs}"
    );

    write(&dir, "fixed", "");
    let (code, out, err) =
        run(meeseeks()
            .current_dir(&dir)
            .args(["resume", "--no-cleanup", "--no-progress"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("SUCCEEDED — 3/3 recovered"), "{out}");
    // What the report calls recovered is recovered now.
    assert!(healthy(db) && healthy(cache) && healthy(api));
    // db and cache were not started again.
    let log = log_lines(&dir);
    assert_eq!(log.iter().filter(|l| *l == "db").count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "cache").count(), 1, "{log:?}");
    let (code, _, err) = run(meeseeks().current_dir(&dir).arg("cleanup"));
    assert_eq!(code, 0, "{err}");
    assert!(closed(db) && closed(cache) && closed(api));
}

/// #10 bug 3, second half: cleaned up after failing, then resumed: what the cleanup tore down
/// is recovered again (its steps run again), journaled so that status and report agree.
#[test]
fn a_resume_after_cleanup_recovers_again_what_was_torn_down() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("dr");
    let [db, cache, api] = dr_dir(&dir);
    let _stop = StopAll(vec![db, cache, api], dir.clone());
    let (code, _, _) = run(meeseeks().args(["drill", "--no-progress"]).arg(&dir));
    assert_eq!(code, 1);
    let (code, _, err) = run(meeseeks().args(["cleanup", "-C"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    assert!(closed(db) && closed(cache));
    let st = status_json(&dir);
    let cleaned: Vec<&str> = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cleaned_up"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(cleaned, ["api", "cache", "db"]);

    write(&dir, "fixed", "");
    let (code, out, err) = run(meeseeks()
        .args(["resume", "--no-cleanup", "--no-progress", "-C"])
        .arg(&dir));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(healthy(db) && healthy(cache) && healthy(api), "{out}");
    let log = log_lines(&dir);
    assert_eq!(log.iter().filter(|l| *l == "db").count(), 2, "{log:?}");
    let st = status_json(&dir);
    assert_eq!(st["state"], "finished");
    for s in st["services"].as_array().unwrap() {
        assert_eq!(s["status"], "recovered", "{s}");
        assert!(s["cleaned_up"].is_null(), "{s}");
    }
    let (code, _, err) = run(meeseeks().args(["cleanup", "-C"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    assert!(closed(db) && closed(cache) && closed(api));
}

/// #12 finding 1: the journal cannot be written (here: a file-size limit, which makes write(2)
/// fail as a full disk does, without needing root to mount a tiny file system). The run starts
/// nothing more, says why, exits non-zero, and resumes once the cause is gone; nothing that
/// succeeded runs again.
#[test]
fn a_journal_that_cannot_be_written_stops_the_run_which_resumes_later() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let n = 40;
    let mut graph = String::from("[defaults]\nparallel = 1\n");
    for i in 0..n {
        graph.push_str(&format!("[services.s{i:02}]\ntier = 1\nrto = \"1h\"\n"));
        if i > 0 {
            graph.push_str(&format!("depends_on = [\"s{:02}\"]\n", i - 1));
        }
        write(
            dir,
            &format!("playbooks/s{i:02}.toml"),
            "[[steps]]\nname = \"work\"\nrun = \"echo {{ service }} >> log\"\n",
        );
    }
    write(dir, "graph.toml", &graph);
    // bash's `ulimit -f` counts 1024-byte blocks; SIGXFSZ ignored so write(2) fails (EFBIG).
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 24; exec {} run --no-progress {}",
            env!("CARGO_BIN_EXE_meeseeks"),
            dir.display()
        ))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the journal cannot be written") && stderr.contains("meeseeks resume"),
        "{stderr}"
    );
    let first = log_lines(dir);
    assert!(!first.is_empty() && first.len() < n, "{}", first.len());
    // Readable (a torn tail is tolerated), and resumable.
    let st = status_json(dir);
    assert_eq!(st["state"], "interrupted", "{st}");
    let (code, out, err) = run(meeseeks().args(["resume", "--no-progress", "-C"]).arg(dir));
    assert_eq!(code, 0, "{out}\n{err}");
    let all = log_lines(dir);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for l in &all {
        *seen.entry(l).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every service ran");
    // At most the one step in flight when the journal failed ran twice.
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.len() <= 1 && twice.iter().all(|(_, c)| **c == 2),
        "{twice:?}"
    );
    if let Some((svc, _)) = twice.first() {
        assert_eq!(first.last().map(String::as_str), Some(**svc));
    }
}

/// #12 finding 10: `cleanup` takes the run's lock (refused while the drill is live), and two
/// runs of one DR directory with different state directories cannot run at once.
#[test]
fn cleanup_and_a_second_store_are_refused_while_a_drill_is_live() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("dr");
    let ports = dr_dir(&dir);
    write(&dir, "fixed", "");
    let _stop = StopAll(ports.to_vec(), dir.clone());
    // A manual step keeps the drill live until approved.
    let pb = std::fs::read_to_string(dir.join("playbooks/api.toml")).unwrap();
    write(
        &dir,
        "playbooks/api.toml",
        &format!("[[steps]]\nname = \"go\"\nmanual = \"Go?\"\n{pb}"),
    );
    let child = meeseeks()
        .args(["drill", "--no-progress"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(Instant::now() < deadline, "the drill never waited");
        let (_, out, _) = run(meeseeks()
            .args(["status", "--format", "json", "-C"])
            .arg(&dir));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out)
            && v["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["status"] == "waiting"))
        {
            break v["run_id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, _, err) = run(meeseeks().args(["cleanup", "-C"]).arg(&dir));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is live"), "{err}");
    let other = t.path().join("other-state");
    let (code, _, err) = run(meeseeks()
        .args(["drill", "--no-progress", "--state-dir"])
        .arg(&other)
        .arg(&dir));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("DR directory"), "{err}");
    let (code, _, err) = run(meeseeks().args(["approve", &id, "api", "-C"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ports {
        assert!(closed(p));
    }
}

#[test]
fn graph_toml_names_the_store_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dr");
    write(
        &dir,
        "graph.toml",
        "[state]\nstore = \"../team-state\"\n[services.db]\ntier = 0\nrto = \"1m\"\n",
    );
    write(
        &dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"up\"\nrun = \"true\"\n",
    );
    let (code, _, err) = run(meeseeks().current_dir(tmp.path()).args(["drill", "dr"]));
    assert_eq!(code, 0, "{err}");
    // The DR directory keeps only its lock (two state directories must not fail over the same
    // services at once); the runs are in the declared store.
    assert!(
        !dir.join(".meeseeks/runs").exists(),
        "the declared store is used"
    );
    let runs = tmp.path().join("team-state/runs");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 1);

    // Commands that do not load the model find the same store.
    let (code, out, err) = run(meeseeks()
        .current_dir(tmp.path())
        .args(["runs", "-C", "dr", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{out}");
    // A flag wins over the file.
    let (code, out, _) = run(meeseeks().current_dir(tmp.path()).args([
        "runs",
        "-C",
        "dr",
        "--state-dir",
        "scratch",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 0, "{out}");

    // A store the tool does not know is an error at its line, for every command.
    write(
        &dir,
        "graph.toml",
        "[state]\nstore = \"s3://bucket/dr\"\n[services.db]\ntier = 0\nrto = \"1m\"\n",
    );
    for args in [&["validate", "dr"][..], &["runs", "-C", "dr"]] {
        let (code, _, err) = run(meeseeks().current_dir(tmp.path()).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("unknown store `s3://bucket/dr`"), "{err}");
        assert!(err.contains("graph.toml:2:"), "{err}");
    }
}
