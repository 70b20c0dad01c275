//! `meeseeks resume` end to end: the real binary, temp DR directories, real processes killed
//! with SIGKILL at arbitrary moments.

mod common;
use common::{meeseeks, output as out, write};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Lines of a side-effect log.
fn log_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn counts(lines: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.clone()).or_insert(0) += 1;
    }
    m
}

/// The journal of the only run in `state`, as JSON values; a torn last line (a kill in the
/// middle of a write) is left out, as the reader does.
fn journal(state: &Path) -> Vec<Value> {
    let Some(run) = run_dir(state) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(l) {
            Ok(v) => out.push(v),
            Err(e) => assert!(
                i + 1 == lines.len() && !text.ends_with('\n'),
                "journal line {} is damaged: {e}: {l}",
                i + 1
            ),
        }
    }
    out
}

fn run_dir(state: &Path) -> Option<PathBuf> {
    let runs = std::fs::read_dir(state.join("runs")).ok()?;
    let mut dirs: Vec<PathBuf> = runs
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn ev<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

/// Steps with `step.started` and no outcome in the journal: in flight when the process died.
fn in_flight(records: &[Value]) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    for r in records {
        let key = format!("{}/{}", ev(r, "service"), ev(r, "step"));
        match ev(r, "event") {
            "step.started" => {
                open.insert(key);
            }
            "step.succeeded" | "step.failed" | "step.skipped" => {
                open.remove(&key);
            }
            _ => {}
        }
    }
    open
}

fn finished_ok(records: &[Value]) -> bool {
    records
        .iter()
        .rev()
        .find(|r| {
            matches!(
                ev(r, "event"),
                "run.finished" | "run.resumed" | "run.started"
            )
        })
        .is_some_and(|r| ev(r, "event") == "run.finished" && ev(r, "outcome") == "succeeded")
}

/// A small deterministic generator (the tests must not depend on a crate's RNG stream).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// ~30 services in 4 layers, each depending on one or two of the layer before; 3 steps each
/// that append `service/step` to `log`.
fn generate(dir: &Path, log: &Path, rng: &mut Lcg) -> Vec<String> {
    let layers = [8usize, 8, 7, 7];
    let mut graph = String::new();
    let mut prev: Vec<String> = Vec::new();
    let mut expected = Vec::new();
    let mut k = 0;
    for (tier, &n) in layers.iter().enumerate() {
        let mut this = Vec::new();
        for _ in 0..n {
            let name = format!("s{k:02}");
            k += 1;
            graph.push_str(&format!("[services.{name}]\ntier = {tier}\nrto = \"1h\"\n"));
            if !prev.is_empty() {
                let mut deps = BTreeSet::new();
                for _ in 0..=rng.below(2) {
                    deps.insert(prev[rng.below(prev.len() as u64) as usize].clone());
                }
                let deps: Vec<String> = deps.into_iter().map(|d| format!("\"{d}\"")).collect();
                graph.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
            }
            graph.push('\n');
            let mut pb = String::new();
            for step in ["stop", "promote", "start"] {
                let ms = 5 + rng.below(40);
                pb.push_str(&format!(
                    "[[steps]]\nname = \"{step}\"\nrun = \"echo {{{{ service }}}}/{step} >> {}; sleep 0.{ms:03}\"\n\n",
                    log.display()
                ));
                expected.push(format!("{name}/{step}"));
            }
            write(dir, &format!("playbooks/{name}.toml"), &pb);
            this.push(name);
        }
        prev = this;
    }
    write(dir, "graph.toml", &graph);
    expected
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits up to `delay` for the child; kills it (SIGKILL) if it is still running. Returns its
/// exit code, or `None` when it was killed.
fn kill_after(mut child: Child, delay: Duration) -> Option<i32> {
    let step = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    while waited < delay {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(step);
        waited += step;
    }
    if let Some(st) = child.try_wait().unwrap() {
        return st.code();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

fn crash_and_resume(seed: u64) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("side-effects.log");
    let state = dir.join(".meeseeks");
    let mut rng = Lcg(seed.wrapping_mul(0x9e3779b97f4a7c15) ^ 0xdead_beef);
    let expected = generate(dir, &log, &mut rng);
    // Per step: at how many kills it was in flight (started, no outcome journaled).
    let mut in_flight_at_kill: BTreeMap<String, usize> = BTreeMap::new();
    let mut kills = 0;
    let mut done = false;
    for attempt in 0..40 {
        let mut c = meeseeks();
        if run_dir(&state).is_none() {
            // Killed before the run's directory existed (or the first attempt): start it.
            c.args(["run", "--yes", "--no-progress", "--parallel", "6"])
                .arg(dir);
        } else {
            c.args(["resume", "--yes", "--no-progress", "-C"]).arg(dir);
        }
        let child = spawn(&mut c);
        // Kill the first attempts at seed-derived moments; later ones may finish.
        let delay = if attempt < 5 {
            Duration::from_millis(20 + rng.below(400))
        } else {
            Duration::from_secs(3600)
        };
        match kill_after(child, delay) {
            Some(0) => {
                done = true;
                break;
            }
            Some(code) => {
                // A kill just after `run.finished` was durable leaves nothing to resume.
                if finished_ok(&journal(&state)) {
                    done = true;
                    break;
                }
                panic!("seed {seed}: attempt {attempt} exited {code}");
            }
            None => {
                kills += 1;
                let records = journal(&state);
                if finished_ok(&records) {
                    done = true;
                    break;
                }
                // The journal as the crash left it replays (status exits 0 or 1, never 2).
                if run_dir(&state).is_some() {
                    let (code, so, se) = out(meeseeks()
                        .args(["status", "--format", "json", "-C"])
                        .arg(dir));
                    assert!(
                        code == 0 || code == 1,
                        "seed {seed}: status after a kill: {so}{se}"
                    );
                    serde_json::from_str::<Value>(&so).unwrap();
                }
                for k in in_flight(&records) {
                    *in_flight_at_kill.entry(k).or_default() += 1;
                }
            }
        }
    }
    assert!(done, "seed {seed}: never finished");
    let lines = log_lines(&log);
    let counts = counts(&lines);
    for e in &expected {
        assert!(counts.contains_key(e), "seed {seed}: {e} never ran");
    }
    for (k, n) in &counts {
        assert!(
            expected.contains(k),
            "seed {seed}: unexpected side effect {k}"
        );
        let allowed = 1 + in_flight_at_kill.get(k).copied().unwrap_or(0);
        assert!(
            *n <= allowed,
            "seed {seed}: {k} ran {n} times but was in flight at only {} of {kills} kills",
            allowed - 1
        );
    }
    // The final journal replays: all recovered, and the JUnit report parses.
    let (code, so, se) = out(meeseeks()
        .args(["status", "--format", "json", "-C"])
        .arg(dir));
    assert_eq!(code, 0, "seed {seed}: {so}{se}");
    let st: Value = serde_json::from_str(&so).unwrap();
    assert_eq!(st["state"], "finished", "seed {seed}: {so}");
    let svcs = st["services"].as_array().unwrap();
    assert_eq!(svcs.len(), 30);
    assert!(
        svcs.iter().all(|s| s["status"] == "recovered"),
        "seed {seed}: {so}"
    );
    let (code, so, se) = out(meeseeks()
        .args(["report", "--format", "junit", "-C"])
        .arg(dir));
    assert_eq!(code, 0, "seed {seed}: {so}{se}");
    assert_eq!(so.matches("<testcase").count(), 30, "{so}");
    assert!(!so.contains("<failure"), "{so}");
    assert_eq!(so.matches('<').count(), so.matches('>').count());
    eprintln!(
        "seed {seed}: {kills} kills, {} side effects for {} steps",
        lines.len(),
        expected.len()
    );
}

#[test]
fn sigkill_at_random_moments_then_resume_until_done() {
    for seed in 1..=5 {
        crash_and_resume(seed);
    }
}

/// Three services in a chain plus an independent one.
fn chain(dir: &Path, log: &Path, api_two: &str) {
    write(
        dir,
        "graph.toml",
        r#"
[services.db]
tier = 0
rto = "30m"
[services.api]
tier = 1
rto = "30m"
depends_on = ["db"]
[services.web]
tier = 2
rto = "30m"
depends_on = ["api"]
[services.cache]
tier = 1
rto = "30m"
"#,
    );
    let l = log.display();
    for (svc, steps) in [
        ("db", vec![("promote", format!("echo db/promote >> {l}"))]),
        ("cache", vec![("warm", format!("echo cache/warm >> {l}"))]),
        (
            "api",
            vec![
                ("one", format!("echo api/one >> {l}")),
                ("two", format!("echo api/two >> {l}; {api_two}")),
            ],
        ),
        ("web", vec![("up", format!("echo web/up >> {l}"))]),
    ] {
        let mut pb = String::new();
        for (n, r) in steps {
            pb.push_str(&format!("[[steps]]\nname = \"{n}\"\nrun = \"{r}\"\n\n"));
        }
        write(dir, &format!("playbooks/{svc}.toml"), &pb);
    }
}

fn status_json(dir: &Path) -> Value {
    let (_, so, se) = out(meeseeks()
        .args(["status", "--format", "json", "-C"])
        .arg(dir));
    serde_json::from_str(&so).unwrap_or_else(|e| panic!("{e}: {so}{se}"))
}

fn service<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[test]
fn resume_after_a_fix_runs_only_the_failed_service_and_its_dependents() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("log");
    chain(dir, &log, "exit 3");
    let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    let (code, so, se) = out(meeseeks()
        .args(["run", "--yes", "--no-progress", "--declared-at"])
        .arg(hour_ago.to_string())
        .arg(dir));
    assert_eq!(code, 1, "{so}{se}");
    let st = status_json(dir);
    assert_eq!(service(&st, "api")["status"], "failed");
    assert_eq!(service(&st, "web")["status"], "blocked");
    let before = log_lines(&log);
    assert_eq!(before.len(), 4, "{before:?}");

    // The operator fixes the step on disk.
    chain(dir, &log, "true");
    let (code, so, se) = out(meeseeks().args(["resume", "--no-progress", "-C"]).arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    assert!(se.contains("playbooks/api.toml changed"), "{se}");
    let after = log_lines(&log);
    assert_eq!(
        &after[before.len()..],
        ["api/two", "web/up"],
        "only the failed step and the blocked dependent ran: {after:?}"
    );
    let st = status_json(dir);
    assert_eq!(st["state"], "finished");
    assert_eq!(st["resumes"][0]["changes"][0], "playbooks/api.toml changed");
    for s in ["db", "cache", "api", "web"] {
        assert_eq!(service(&st, s)["status"], "recovered", "{s}: {st:#}");
    }
    // The RTO clock kept the original start: an hour ago, so a 30m RTO is breached.
    let api = service(&st, "api");
    assert!(api["recovered_s"].as_f64().unwrap() > 3600.0, "{api:#}");
    assert_eq!(api["rto_met"], false, "{api:#}");
    let (_, rep, _) = out(meeseeks()
        .args(["report", "--format", "json", "-C"])
        .arg(dir));
    let rep: Value = serde_json::from_str(&rep).unwrap();
    let text = rep.to_string();
    assert!(text.contains("api"), "{text}");
    // One rto.breached per service, even across the resume.
    let breaches = journal(&dir.join(".meeseeks"))
        .iter()
        .filter(|r| ev(r, "event") == "rto.breached" && ev(r, "service") == "api")
        .count();
    assert_eq!(breaches, 1);
    // Nothing left to resume.
    let (code, _, se) = out(meeseeks().args(["resume", "-C"]).arg(dir));
    assert_eq!(code, 2);
    assert!(se.contains("nothing to resume"), "{se}");
}

/// Waits (bounded) until the journal has an event named `name`.
fn wait_for_event(state: &Path, name: &str) {
    for _ in 0..2000 {
        if journal(state).iter().any(|r| ev(r, "event") == name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no {name} in the journal");
}

#[test]
fn one_process_per_run_and_abandon() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join(".meeseeks");
    write(
        dir,
        "graph.toml",
        "[services.db]\ntier = 0\nrto = \"30m\"\n",
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"confirm\"\nmanual = \"Is the replica caught up?\"\n",
    );
    // No TTY, no --yes: the run waits for `meeseeks approve`, holding its lock.
    let mut live = meeseeks()
        .args(["run", "--no-progress"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = common::KillOnDrop(live.id());
    wait_for_event(&state, "manual.waiting");
    let pid = live.id();
    let (code, so, se) = out(meeseeks().args(["resume", "-C"]).arg(dir));
    assert_eq!(code, 3, "{so}{se}");
    assert!(se.contains(&format!("pid {pid}")), "{se}");
    assert!(se.contains("host"), "{se}");
    let (code, _, se) = out(meeseeks().args(["run"]).arg(dir));
    assert_eq!(code, 3, "{se}");
    assert!(se.contains(&format!("running (pid {pid}")), "{se}");
    let (code, _, se) = out(meeseeks().arg("run").arg(dir).arg("--abandon"));
    assert_eq!(code, 3, "a live run cannot be abandoned: {se}");

    // The process dies without a word.
    live.kill().unwrap();
    live.wait().unwrap();
    let (code, _, se) = out(meeseeks().args(["run"]).arg(dir));
    assert_eq!(code, 3, "{se}");
    assert!(se.contains("meeseeks resume"), "{se}");
    assert!(se.contains("--abandon"), "{se}");
    let (code, so, se) = out(meeseeks().arg("run").arg(dir).arg("--abandon"));
    assert_eq!(code, 0, "{so}{se}");
    assert!(so.contains("abandoned run"), "{so}");
    let (code, so, se) = out(meeseeks().args(["run", "--yes", "--no-progress"]).arg(dir));
    assert_eq!(code, 0, "{so}{se}");
}

#[test]
fn skip_a_step_or_a_service_done_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("log");
    chain(dir, &log, "exit 3");
    let (code, _, se) = out(meeseeks().args(["run", "--no-progress"]).arg(dir));
    assert_eq!(code, 1, "{se}");
    // Unknown targets: exit 2 with a suggestion.
    let (code, _, se) = out(meeseeks()
        .args(["resume", "--skip", "apj/two", "-C"])
        .arg(dir));
    assert_eq!(code, 2, "{se}");
    assert!(se.contains("did you mean `api`"), "{se}");
    let (code, _, se) = out(meeseeks()
        .args(["resume", "--skip", "api/tow", "-C"])
        .arg(dir));
    assert_eq!(code, 2, "{se}");
    assert!(se.contains("did you mean `two`"), "{se}");
    // api/two was done by hand.
    let n = log_lines(&log).len();
    let (code, so, se) = out(meeseeks()
        .args(["resume", "--no-progress", "--skip", "api/two", "-C"])
        .arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(&log_lines(&log)[n..], ["web/up"]);
    let st = status_json(dir);
    let two = &service(&st, "api")["steps"][1];
    assert_eq!(two["status"], "skipped", "{two:#}");
    let (_, rep, _) = out(meeseeks().args(["report", "-C"]).arg(dir));
    let (_, js, _) = out(meeseeks()
        .args(["status", "--format", "json", "-C"])
        .arg(dir));
    assert!(
        rep.contains("skipped by operator (--skip)") || js.contains("skipped by operator (--skip)"),
        "{rep}\n{js}"
    );

    // A whole service done by hand.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("log");
    chain(dir, &log, "exit 3");
    let (code, _, se) = out(meeseeks().args(["run", "--no-progress"]).arg(dir));
    assert_eq!(code, 1, "{se}");
    let n = log_lines(&log).len();
    let (code, so, se) = out(meeseeks()
        .args(["resume", "--no-progress", "--skip", "api", "-C"])
        .arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(&log_lines(&log)[n..], ["web/up"]);
    let st = status_json(dir);
    assert_eq!(service(&st, "api")["status"], "skipped", "{st:#}");
    assert_eq!(service(&st, "web")["status"], "recovered");
}

#[test]
fn an_in_flight_step_that_is_not_idempotent_needs_a_decision() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join(".meeseeks");
    let log = dir.join("log");
    let pids = dir.join("pids");
    let fast = dir.join("fast");
    write(
        dir,
        "graph.toml",
        "[services.db]\ntier = 0\nrto = \"30m\"\n",
    );
    write(
        dir,
        "playbooks/db.toml",
        &format!(
            "[[steps]]\nname = \"flip\"\nidempotent = false\nrun = \"echo $$ >> {}; echo db/flip >> {}; test -e {} || sleep 30\"\n",
            pids.display(),
            log.display(),
            fast.display()
        ),
    );
    let mut live = meeseeks()
        .args(["run", "--no-progress"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = common::KillOnDrop(live.id());
    wait_for_event(&state, "step.started");
    while log_lines(&log).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    live.kill().unwrap();
    live.wait().unwrap();
    // The orphaned step (its own process group) is killed too, as an operator would.
    for p in log_lines(&pids) {
        let pid: i32 = p.trim().parse().unwrap();
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    std::fs::write(&fast, "").unwrap();
    // No TTY, no --yes: refused, with what to do.
    let (code, _, se) = out(meeseeks().args(["resume", "--no-progress", "-C"]).arg(dir));
    assert_eq!(code, 2, "{se}");
    assert!(se.contains("flip of db was in flight"), "{se}");
    assert!(se.contains("--skip db/flip"), "{se}");
    assert!(se.contains("--yes"), "{se}");
    assert_eq!(log_lines(&log).len(), 1, "nothing ran");
    // --yes: run it again.
    let (code, so, se) = out(meeseeks()
        .args(["resume", "--yes", "--no-progress", "-C"])
        .arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(log_lines(&log), ["db/flip", "db/flip"]);
}

/// A drill of a (up, cleanup down) ← b (up, cleanup down) whose step `slow` ("b/up" or
/// "a/down") hangs until told otherwise: SIGKILLed once `slow` runs, its step's processes killed
/// too, then resumed with `slow` fast. Returns the directory and the log of every step run.
fn drill_killed_at(slow: &str) -> (tempfile::TempDir, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let log = dir.join("log");
    let pids = dir.join("pids");
    let fast = dir.join("fast");
    write(
        dir,
        "graph.toml",
        "[services.a]\ntier = 0\nrto = \"30m\"\n[services.b]\ntier = 1\nrto = \"30m\"\ndepends_on = [\"a\"]\n",
    );
    let l = log.display();
    let cmd = |what: &str| {
        if what == slow {
            format!(
                "echo $$ >> {}; echo {what} >> {l}; test -e {} || sleep 30",
                pids.display(),
                fast.display()
            )
        } else {
            format!("echo {what} >> {l}")
        }
    };
    for s in ["a", "b"] {
        write(
            dir,
            &format!("playbooks/{s}.toml"),
            &format!(
                "[[steps]]\nname = \"up\"\nrun = \"{}\"\n[[cleanup]]\nname = \"down\"\nrun = \"{}\"\n",
                cmd(&format!("{s}/up")),
                cmd(&format!("{s}/down"))
            ),
        );
    }
    let mut live = meeseeks()
        .args(["drill", "--no-progress"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = common::KillOnDrop(live.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log_lines(&log).iter().any(|l| l == slow) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            log_lines(&log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    live.kill().unwrap();
    live.wait().unwrap();
    for p in log_lines(&pids) {
        let pid: i32 = p.trim().parse().unwrap();
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    std::fs::write(&fast, "").unwrap();
    let (code, so, se) = out(meeseeks().args(["resume", "--no-progress", "-C"]).arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    let lines = log_lines(&log);
    (d, lines)
}

/// A drill killed midway, then resumed: the cleanup at its end covers the services recovered
/// before the kill too.
#[test]
fn a_resumed_drill_cleans_up_what_the_first_attempt_started() {
    let (_d, lines) = drill_killed_at("b/up");
    assert_eq!(lines[..3], ["a/up", "b/up", "b/up"], "{lines:?}");
    // Dependents first.
    assert_eq!(lines[3..], ["b/down", "a/down"], "{lines:?}");
}

/// A failed run does not block a new one; once it is being resumed, it does.
#[test]
fn a_failed_run_being_resumed_blocks_a_new_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join(".meeseeks");
    write(
        dir,
        "graph.toml",
        "[services.db]\ntier = 0\nrto = \"30m\"\n",
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"promote\"\nrun = \"exit 3\"\n",
    );
    let (code, _, se) = out(meeseeks().args(["run", "--no-progress"]).arg(dir));
    assert_eq!(code, 1, "{se}");
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"promote\"\nmanual = \"Promote db by hand, then approve\"\n",
    );
    let mut live = meeseeks()
        .args(["resume", "--no-progress", "-C"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = common::KillOnDrop(live.id());
    wait_for_event(&state, "manual.waiting");
    let (code, _, se) = out(meeseeks().args(["run"]).arg(dir));
    assert_eq!(code, 3, "{se}");
    assert!(se.contains(&format!("running (pid {}", live.id())), "{se}");
    let run_id = run_dir(&state)
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (code, so, se) = out(meeseeks().args(["approve", &run_id, "db", "-C"]).arg(dir));
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(live.wait().unwrap().code(), Some(0));
}

/// A drill killed during its own closing cleanup (everything recovered, b already torn down, a's
/// cleanup in flight): `resume` finishes the cleanup — a's cleanup runs again (it was in flight),
/// b's does not, and no recovery step runs a second time. (`meeseeks cleanup` is different: what
/// it tears down, a later resume recovers again.)
#[test]
fn a_drill_killed_in_its_closing_cleanup_resumes_the_cleanup_only() {
    let (d, lines) = drill_killed_at("a/down");
    assert_eq!(
        lines,
        ["a/up", "b/up", "b/down", "a/down", "a/down"],
        "recovered once, b torn down once, a's in-flight cleanup run again"
    );
    let st = status_json(d.path());
    assert_eq!(st["state"], "finished", "{st:#}");
    assert_eq!(st["cleanup"]["status"], "done", "{st:#}");
}
