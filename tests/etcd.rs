//! The etcd store against a real three-member etcd cluster on 127.0.0.1 (Debian's
//! `etcd-server`; the tests skip only when `etcd` is not installed): a drill whose status and
//! report from another process match the file store's, a leader killed mid-run, a runner
//! killed and taken over by a second one, a runner paused past its lease while another takes
//! over (fencing), and approvals from another process.

mod common;
use common::write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{KillOnDrop, meeseeks, output};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have_etcd() -> bool {
    let ok = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("etcd is not installed (Debian: etcd-server); skipping");
    }
    ok
}

/// A three-member etcd cluster on 127.0.0.1 with fast elections, its members killed when it
/// is dropped — or, for the cluster shared by this test binary, by a watchdog when the binary
/// exits (statics are never dropped).
struct Cluster {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

struct Member {
    name: String,
    client: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls".into(),
                format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{peer}"),
                "--initial-cluster".into(),
                initial.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                "meeseeks-test".into(),
                "--heartbeat-interval".into(),
                "50".into(),
                "--election-timeout".into(),
                "500".into(),
            ];
            let mut m = Member {
                name,
                client: *client,
                child: None,
                args,
            };
            m.spawn();
            members.push(m);
        }
        let c = Cluster { members, _dir: dir };
        c.wait_healthy();
        c
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn url(&self, prefix: &str, ttl: &str) -> String {
        format!("etcd://{}/{prefix}?ttl={ttl}", self.endpoints())
    }

    fn etcdctl(&self) -> Command {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(
                self.members
                    .iter()
                    .filter(|m| m.child.is_some())
                    .map(|m| format!("127.0.0.1:{}", m.client))
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=5s");
        c
    }

    /// Every member answers (bounded).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .etcdctl()
                .args(["endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "etcd cluster not healthy in 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the member that leads the cluster now.
    fn leader(&self) -> usize {
        let out = self
            .etcdctl()
            .args(["endpoint", "status", "--write-out=json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for s in v.as_array().unwrap() {
            let header = &s["Status"]["header"];
            if header["member_id"] == s["Status"]["leader"] {
                let ep = s["Endpoint"].as_str().unwrap();
                return self
                    .members
                    .iter()
                    .position(|m| ep.ends_with(&format!(":{}", m.client)))
                    .unwrap();
            }
        }
        panic!("no leader in {v}");
    }

    /// Every key under `prefix` with its version (how many times it was written).
    fn versions(&self, prefix: &str) -> BTreeMap<String, i64> {
        let out = self
            .etcdctl()
            .args(["get", "--prefix", prefix, "--write-out=json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let decode = |s: &str| {
            String::from_utf8(data_encoding::BASE64.decode(s.as_bytes()).unwrap()).unwrap()
        };
        v["kvs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|kv| {
                        (
                            decode(kv["key"].as_str().unwrap()),
                            kv["version"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Member {
    fn spawn(&mut self) {
        self.child = Some(
            Command::new("etcd")
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}

/// The cluster shared by the tests that do not break it, with a watchdog that kills its
/// members when this test binary exits.
fn shared() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let c = Cluster::start();
        let pids: Vec<String> = c
            .members
            .iter()
            .map(|m| m.child.as_ref().unwrap().id().to_string())
            .collect();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pids} 2>/dev/null",
                me = std::process::id(),
                pids = pids.join(" ")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let _ = &c.members[0].name;
        c
    })
}

/// A DR directory of `n` services in a few chains; each step logs `service runner-pid` to
/// `log` and sleeps `secs`; service `s00` waits on a manual step when `manual`.
fn chains(dir: &Path, n: usize, secs: &str, manual: bool) {
    let mut graph = String::from("[defaults]\nparallel = 4\n");
    for i in 0..n {
        graph.push_str(&format!("[services.s{i:02}]\ntier = 1\nrto = \"1h\"\n"));
        if i >= 4 {
            graph.push_str(&format!("depends_on = [\"s{:02}\"]\n", i - 4));
        }
        let gate = if manual && i == 0 {
            "[[steps]]\nname = \"go\"\nmanual = \"Go?\"\n"
        } else {
            ""
        };
        write(
            dir,
            &format!("playbooks/s{i:02}.toml"),
            &format!(
                "{gate}[[steps]]\nname = \"work\"\nrun = \"echo {{{{ service }}}} $PPID >> log; sleep {secs}\"\ntimeout = \"30s\"\n"
            ),
        );
    }
    write(dir, "graph.toml", &graph);
}

fn log_lines(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (s, p) = l.split_once(' ')?;
            Some((s.to_string(), p.to_string()))
        })
        .collect()
}

fn json(c: &mut Command) -> Value {
    let out = c.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn status(dir: &Path, store: &str) -> Value {
    json(
        meeseeks()
            .args(["status", "--format", "json", "-C"])
            .arg(dir)
            .args(["--store", store]),
    )
}

/// `status`, or `Null` while there is no run yet.
fn try_status(dir: &Path, store: &str) -> Value {
    let out = meeseeks()
        .args(["status", "--format", "json", "-C"])
        .arg(dir)
        .args(["--store", store])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Waits (bounded) until `f` holds, polling.
fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn records(status: &Value) -> u64 {
    status["services"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| x["attempts"].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .unwrap_or(0)
}

/// The outcome of a status, without what differs between two runs (ids, times).
fn outcome(v: &Value) -> Value {
    let services: Vec<Value> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s["name"],
                "status": s["status"],
                "rto_met": s["rto_met"],
                "cleaned_up": s["cleaned_up"],
                "steps": s["steps"].as_array().unwrap().iter()
                    .map(|st| serde_json::json!([st["name"], st["status"]]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "state": v["state"], "outcome": v["outcome"], "summary": v["summary"],
        "cleanup": v["cleanup"]["status"], "services": services,
    })
}

/// The shop drill on etcd: status and report from a second process equal the file store's.
#[test]
fn a_shop_drill_on_etcd_reads_the_same_as_on_files() {
    if !have_etcd() {
        return;
    }
    let c = shared();
    let shop = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop");
    let files = tempfile::tempdir().unwrap();
    let store = c.url("shop-drill", "5s");
    // examples/shop uses fixed ports: this is the only test of this binary that drills it
    // (and `flock` keeps other test runs of this machine apart).
    let (code, _, err) = output(
        meeseeks()
            .args(["drill", shop, "--no-progress", "--state-dir"])
            .arg(files.path()),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        output(meeseeks().args(["drill", shop, "--no-progress", "--store", &store]));
    assert_eq!(code, 0, "{err}");
    let on_files = json(
        meeseeks()
            .args(["status", "--format", "json", "--state-dir"])
            .arg(files.path()),
    );
    let on_etcd = json(meeseeks().args(["status", "--format", "json", "--store", &store]));
    assert_eq!(outcome(&on_etcd), outcome(&on_files));
    assert_eq!(on_etcd["summary"]["recovered"], 27);
    let report = |args: &[&str]| {
        let out = meeseeks()
            .args(["report", "--format", "junit"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let x = String::from_utf8_lossy(&out.stdout).into_owned();
        // Same test cases and verdicts; times differ.
        x.lines()
            .filter(|l| l.contains("<testcase") || l.contains("<failure"))
            .map(|l| l.split(" time=").next().unwrap_or(l).to_string())
            .collect::<Vec<_>>()
    };
    let fs = files.path().to_str().unwrap().to_string();
    assert_eq!(report(&["--store", &store]), report(&["--state-dir", &fs]));
    let runs = meeseeks()
        .args(["runs", "--store", &store])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&runs.stdout);
    assert!(text.contains("finished") && text.contains("done"), "{text}");
}

/// Approvals from another process reach the runner through the store (a watch).
#[test]
fn an_approval_from_another_process_reaches_the_runner() {
    if !have_etcd() {
        return;
    }
    let c = shared();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    chains(dir, 2, "0", true);
    let store = c.url("approve", "5s");
    let child = meeseeks()
        .args(["run", "--no-progress", "--store", &store])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    until("the manual step to wait", Duration::from_secs(30), || {
        try_status(dir, &store)["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["status"] == "waiting"))
    });
    let st = status(dir, &store);
    let id = st["run_id"].as_str().unwrap().to_string();
    assert_eq!(st["holder"]["pid"], child.id());
    let asked = Instant::now();
    let (code, _, err) =
        output(meeseeks().args(["approve", &id, "s00", "--by", "carol", "--store", &store]));
    assert_eq!(code, 0, "{err}");
    until(
        "the approval to be journaled",
        Duration::from_secs(5),
        || {
            status(dir, &store)["approvals"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    eprintln!("approval seen by the runner after {:?}", asked.elapsed());
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(status(dir, &store)["approvals"][0]["by"], "carol");
}

/// The cluster's leader is SIGKILLed mid-run: the run goes on and loses nothing.
#[test]
fn the_etcd_leader_dies_mid_run_and_nothing_is_lost() {
    if !have_etcd() {
        return;
    }
    let mut c = Cluster::start();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    chains(dir, 24, "0.1", false);
    let store = c.url("leader", "10s");
    let mut child = meeseeks()
        .args(["run", "--no-progress", "--store", &store])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    until("the run to be under way", Duration::from_secs(30), || {
        log_lines(dir).len() >= 6
    });
    let leader = c.leader();
    c.members[leader].kill();
    let code = child.wait().unwrap().code();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(0), "{err}");
    let st = status(dir, &store);
    assert_eq!(st["state"], "finished", "{st}");
    assert_eq!(st["summary"]["recovered"], 24);
    // Every step ran exactly once: nothing lost, nothing repeated.
    let log = log_lines(dir);
    assert_eq!(log.len(), 24, "{log:?}");
    // The journal has no hole: records 1..N, each written once.
    let versions = c.versions("/leader/runs/");
    let journal: Vec<&String> = versions
        .keys()
        .filter(|k| k.contains("/journal/"))
        .collect();
    assert!(journal.len() > 24 * 4, "{}", journal.len());
    for (i, k) in journal.iter().enumerate() {
        assert!(k.ends_with(&format!("{:020}", i + 1)), "{k} at {i}");
    }
    let _ = records(&st);
}

/// Runs a DR directory on `store` in the background, logging its stderr.
fn spawn_run(dir: &Path, store: &str, args: &[&str]) -> (Child, PathBuf) {
    let errlog = dir.join(format!("runner-{}.err", args.len()));
    let child = meeseeks()
        .args(args)
        .args(["--no-progress", "--store", store])
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    (child, errlog)
}

/// A `run` of 16 chained services (each step `secs` long) on store prefix `name` with lease
/// `ttl`, once at least `at_least` steps have started: (its DR directory, the store URL, the
/// runner and its stderr log, the run id).
fn run_under_way(
    name: &str,
    ttl: &str,
    secs: &str,
    at_least: usize,
) -> (tempfile::TempDir, String, Child, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    chains(dir, 16, secs, false);
    let store = shared().url(name, ttl);
    let (first, errlog) = spawn_run(dir, &store, &["run"]);
    until("the run to be under way", Duration::from_secs(30), || {
        log_lines(dir).len() >= at_least
    });
    let id = status(dir, &store)["run_id"].as_str().unwrap().to_string();
    (t, store, first, errlog, id)
}

/// The runner is SIGKILLed mid-run; a second runner (`resume --wait`, from the start a
/// standby) takes over once the lease expires, and every service ends recovered without any
/// succeeded step running again.
#[test]
fn a_killed_runner_is_taken_over_by_a_standby_after_its_lease_expires() {
    if !have_etcd() {
        return;
    }
    let (t, store, mut first, _, id) = run_under_way("takeover", "3s", "0.2", 5);
    let _k1 = KillOnDrop(first.id());
    let dir = t.path();
    // A standby: refused while the lease lives, so it waits.
    let (mut standby, errlog) = spawn_run(dir, &store, &["resume", &id, "--wait"]);
    let _k2 = KillOnDrop(standby.id());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        standby.try_wait().unwrap().is_none(),
        "the standby must wait"
    );
    let killed_at = Instant::now();
    let first_pid = first.id();
    first.kill().unwrap();
    first.wait().unwrap();
    let code = standby.wait().unwrap().code();
    let took = killed_at.elapsed();
    let err = std::fs::read_to_string(&errlog).unwrap_or_default();
    assert_eq!(code, Some(0), "{err}");
    // Not before the lease (3 s) could expire.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let st = status(dir, &store);
    assert_eq!(st["state"], "finished", "{st}");
    assert_eq!(st["summary"]["recovered"], 16);
    let owners: Vec<u64> = st["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(owners, [first_pid as u64, standby.id() as u64]);
    // Each service's step ran once, but one in flight at the kill may have run twice.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (s, _) in log_lines(dir) {
        *count.entry(s).or_default() += 1;
    }
    assert_eq!(count.len(), 16);
    let again: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        again.len() <= 4 && again.iter().all(|(_, n)| **n == 2),
        "{again:?}"
    );
    eprintln!("standby took over {took:?} after the kill; re-run in flight: {again:?}");
}

/// The runner is paused (SIGSTOP) past its lease while a second runner takes over; continued
/// (SIGCONT), it appends nothing, starts nothing, and exits 3 saying why. The journal shows one
/// owner at a time: the first until the second's `run.resumed`, every record written once.
#[test]
fn a_paused_runner_loses_its_lease_and_is_fenced_out() {
    if !have_etcd() {
        return;
    }
    let c = shared();
    let (t, store, mut first, errlog1, id) = run_under_way("fencing", "2s", "0.3", 4);
    let _k1 = KillOnDrop(first.id());
    let dir = t.path();
    let pid = first.id() as i32;
    // SAFETY: signals to a child this test spawned.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let (mut second, errlog2) = spawn_run(dir, &store, &["resume", &id, "--wait"]);
    let _k2 = KillOnDrop(second.id());
    let code2 = second.wait().unwrap().code();
    let err2 = std::fs::read_to_string(&errlog2).unwrap_or_default();
    assert_eq!(code2, Some(0), "{err2}");
    let before_cont = log_lines(dir);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let code1 = first.wait().unwrap().code();
    let err1 = std::fs::read_to_string(&errlog1).unwrap_or_default();
    assert_eq!(code1, Some(3), "{err1}");
    assert!(err1.contains("lost the run's lock"), "{err1}");
    // The first runner started nothing after it was continued.
    let after = log_lines(dir);
    let first_pid = pid.to_string();
    assert!(
        after[before_cont.len()..]
            .iter()
            .all(|(_, p)| *p != first_pid),
        "the fenced runner started a step: {:?}",
        &after[before_cont.len()..]
    );
    // Every journal record written exactly once, numbered without a hole.
    let versions = c.versions(&format!("/fencing/runs/{id}/journal/"));
    assert!(versions.values().all(|v| *v == 1), "{versions:?}");
    let keys: Vec<&String> = versions.keys().collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(k.ends_with(&format!("{:020}", i + 1)), "{k} at {i}");
    }
    // One owner at a time: the first, then the second from its run.resumed on.
    let st = status(dir, &store);
    assert_eq!(st["state"], "finished", "{st}");
    let owners: Vec<u64> = st["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(owners, [pid as u64, second.id() as u64]);
}

/// `preflight` records in the store graph.toml names; `audit` and `plan` on another host (here
/// another working directory, nothing local shared) read the evaluation back from etcd.
#[test]
fn preflight_history_lives_in_the_declared_etcd_store() {
    if !have_etcd() {
        return;
    }
    let c = shared();
    let store = c.url("preflight", "5s");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "graph.toml",
        &format!(
            "[state]\nstore = \"{store}\"\n[services.db]\ntier = 0\nrto = \"1m\"\n\
             [services.api]\ntier = 1\nrto = \"2m\"\ndepends_on = [\"db\"]\n"
        ),
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"up\"\nrun = \"true\"\n",
    );
    write(
        dir,
        "playbooks/api.toml",
        "[[steps]]\nname = \"up\"\ncmd = [\"no-such-program-xyz\"]\n",
    );
    for round in 1..=2 {
        let out = meeseeks().arg("preflight").arg(dir).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "one service is not ready");
        let keys = c.versions(&format!("{}/preflight/", store_prefix(&store)));
        assert_eq!(keys.len(), round, "{keys:?}");
    }
    assert!(
        !dir.join(".meeseeks/preflight").exists(),
        "nothing recorded in the local state directory"
    );
    let audit = json(meeseeks().args(["audit", "--format", "json"]).arg(dir));
    let not_ready: Vec<&Value> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "not-ready")
        .collect();
    assert_eq!(not_ready.len(), 1, "{audit}");
    assert_eq!(not_ready[0]["service"], "api");
    assert!(
        not_ready[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("no-such-program-xyz"),
        "{audit}"
    );
    let plan = meeseeks().arg("plan").arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("Last preflight:") && text.contains("1 of 2 services in scope ready"),
        "{text}"
    );
}

/// The key prefix of an `etcd://HOSTS/PREFIX?…` URL, as etcdctl sees it.
fn store_prefix(url: &str) -> String {
    let rest = url.trim_start_matches("etcd://");
    let path = &rest[rest.find('/').unwrap()..];
    path.split('?').next().unwrap().to_string()
}
