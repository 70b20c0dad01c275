//! The failover lab (examples/lab) for real: PostgreSQL, Redis, MariaDB, BIND 9 and HAProxy
//! started from the Debian packages on 127.0.0.1 by `examples/lab/lab.sh`, failed over by the
//! real binary with the shipped templates, every outcome checked with the servers' own clients
//! (psql, redis-cli, mariadb, dig) and HAProxy's runtime API (a Rust UnixStream).
//!
//! One test, in order: `lab.sh up` → a drill without a disaster (copies of the standbys, a drill
//! zone, a drill backend; production keeps taking writes) → `meeseeks cleanup` (nothing of the
//! drill is left) → `lab.sh disaster` → `meeseeks run --yes` → `lab.sh verify` → `lab.sh down`.
//! The lab's ports are fixed, so the test holds /tmp/meeseeks-lab.lock, refuses to run over a
//! lab someone left up, and a guard runs `lab.sh down` however the test ends. Skipped (with a
//! line saying so) when the servers are not installed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// lab.sh's default directory: `meeseeks cleanup` renders the playbooks with the graph's
/// `lab_dir`, so the test uses the default rather than `--var lab_dir=...`.
const LAB: &str = "/tmp/meeseeks-lab";
const PORTS: &[u16] = &[
    25432, 25433, 25434, 26379, 26380, 26381, 23306, 23307, 23308, 25353, 28080, 28081, 28091,
    28092,
];
const TOOLS: &[&str] = &[
    "psql",
    "redis-server",
    "redis-cli",
    "mariadbd",
    "mariadb",
    "mariadb-install-db",
    "haproxy",
    "named",
    "nsupdate",
    "dig",
    "tsig-keygen",
    "socat",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dr_dir() -> PathBuf {
    repo().join("examples/lab")
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn missing_tools() -> Vec<String> {
    let mut m: Vec<String> = TOOLS
        .iter()
        .filter(|t| !which(t))
        .map(|t| t.to_string())
        .collect();
    // PostgreSQL refuses to run as root: lab.sh switches to the postgres user with runuser.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && !which("runuser") {
        m.push("runuser".into());
    }
    let initdb = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !initdb && !which("initdb") {
        m.push("initdb".into());
    }
    m
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// Output of a finished command.
struct Out {
    code: Option<i32>,
    text: String,
}

/// Runs `cmd` to completion or kills it after `limit` (every wait in this test is bounded);
/// stdout and stderr go through a file, so a chatty child never blocks on a full pipe.
fn run(mut cmd: Command, limit: Duration) -> Out {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = log.reopen().unwrap();
    // One open file for both: they share its offset, so neither overwrites the other.
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(s) => Out {
            code: s.code(),
            text,
        },
        None => panic!("{what} still running after {limit:?}; killed. Output:\n{text}"),
    }
}

fn lab_sh(arg: &str, limit: Duration) -> Out {
    let mut c = Command::new(dr_dir().join("lab.sh"));
    c.arg(arg)
        .env("MEESEEKS", env!("CARGO_BIN_EXE_meeseeks"))
        .env("MEESEEKS_LAB_DIR", LAB);
    run(c, limit)
}

fn meeseeks(args: &[&str], state: &Path) -> Out {
    let mut c = common::meeseeks();
    c.args(args)
        .arg("--state-dir")
        .arg(state)
        .env("LAB_TSIG_SECRET", tsig_secret());
    run(c, Duration::from_secs(300))
}

fn tsig_secret() -> String {
    std::fs::read_to_string(format!("{LAB}/tsig.secret"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `lab.sh down` however the test ends, so a failure leaves nothing running.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let mut c = Command::new(dr_dir().join("lab.sh"));
        c.arg("down").env("MEESEEKS_LAB_DIR", LAB);
        let _ = c.stdin(Stdio::null()).status();
    }
}

// ---------------------------------------------------------------------------------------------
// The servers' own clients

fn client(program: &str, args: &[&str]) -> String {
    let mut c = Command::new(program);
    c.args(args).env("PGCONNECT_TIMEOUT", "5");
    let o = run(c, Duration::from_secs(30));
    assert_eq!(o.code, Some(0), "{program} {args:?}:\n{}", o.text);
    o.text.trim().to_string()
}

fn psql(port: u16, sql: &str) -> String {
    client(
        "psql",
        &[
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--username=postgres",
            "--dbname=postgres",
            "--no-psqlrc",
            "--no-password",
            "--tuples-only",
            "--no-align",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            &format!("--command={sql}"),
        ],
    )
}

fn redis(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut a = vec!["-h", "127.0.0.1", "-p", &p];
    a.extend_from_slice(args);
    client("redis-cli", &a)
}

fn mariadb(port: u16, sql: &str) -> String {
    client(
        "mariadb",
        &[
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--user=root",
            "--batch",
            "--skip-column-names",
            &format!("--execute={sql}"),
        ],
    )
}

fn dig(name: &str) -> String {
    client(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            "25353",
            "+short",
            "+norecurse",
            "+time=2",
            "+tries=1",
            name,
            "A",
        ],
    )
}

/// One command on HAProxy's runtime API (it answers and closes the connection).
fn haproxy(cmd: &str) -> String {
    let mut s = UnixStream::connect(format!("{LAB}/haproxy/admin.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// (srv_op_state, srv_admin_state) of `server` in `backend` from `show servers state`.
fn server_state(backend: &str, server: &str) -> (u32, u32) {
    let out = haproxy(&format!("show servers state {backend}"));
    let f: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 6 && f[1] == backend && f[3] == server)
        .unwrap_or_else(|| panic!("no {backend}/{server} in:\n{out}"));
    (f[5].parse().unwrap(), f[6].parse().unwrap())
}
const MAINT: u32 = 0x01 | 0x02 | 0x20;

/// The body of GET / through an HAProxy frontend.
fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: shop.lab.test\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Writes and timestamps

fn ts(s: &str) -> jiff::Timestamp {
    s.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a timestamp: {e}"))
}

const PG_NEWEST: &str = "SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM lab_writes";
const MARIADB_NEWEST: &str = "SELECT DATE_FORMAT(MAX(at), '%Y-%m-%dT%H:%i:%s.%fZ') FROM lab.writes";

/// The newest write each DR-side database holds, read with its own client.
fn newest_on(pg: u16, rd: u16, my: u16) -> [jiff::Timestamp; 3] {
    [
        ts(&psql(pg, PG_NEWEST)),
        ts(&redis(rd, &["GET", "lab:last_write"])),
        ts(&mariadb(my, MARIADB_NEWEST)),
    ]
}

/// The writer's last acknowledged write per database (postgres, redis, mariadb).
fn last_acked() -> [Option<jiff::Timestamp>; 3] {
    let log = std::fs::read_to_string(format!("{LAB}/writer/acked.log")).unwrap_or_default();
    let last = |db: &str| {
        log.lines()
            .filter_map(|l| l.split_once(' '))
            .rfind(|(d, _)| *d == db)
            .map(|(_, t)| ts(t))
    };
    [last("postgres"), last("redis"), last("mariadb")]
}

/// Appends the text of every file under `dir` (journals, meta, reports).
fn all_text(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_text(&p, out);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push_str(&t);
        }
    }
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn latest_report(state: &Path) -> Value {
    let o = meeseeks(&["report", "--format", "json"], state);
    assert_eq!(o.code, Some(0), "{}", o.text);
    serde_json::from_str(&o.text).unwrap_or_else(|e| panic!("{e}:\n{}", o.text))
}

fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// The report's measured RPO of `svc`: (newest, until, window_s).
fn measured(report: &Value, svc: &str) -> (jiff::Timestamp, jiff::Timestamp, f64) {
    let r = &service(report, svc)["rpo"];
    (
        ts(r["newest"].as_str().unwrap_or_else(|| panic!("{svc}: {r}"))),
        ts(r["until"].as_str().unwrap()),
        r["window_s"].as_f64().unwrap(),
    )
}

/// The DR side took over, checked with the servers' own clients: the PostgreSQL, Redis and
/// MariaDB servers on `ports` are promoted and take writes, HAProxy's `backend` is served by
/// its `dr` server (the `primary` one out of rotation) through `frontend`, and `record`
/// answers the DR site's address.
fn took_over([pg, rd, my]: [u16; 3], (backend, frontend): (&str, u16), record: &str) {
    assert_eq!(psql(pg, "SELECT pg_is_in_recovery()"), "f");
    psql(pg, "INSERT INTO lab_writes (at) VALUES (now())");
    assert!(redis(rd, &["ROLE"]).starts_with("master"));
    assert_eq!(redis(rd, &["SET", "lab:after", "1"]), "OK");
    assert_eq!(mariadb(my, "SELECT @@global.read_only"), "0");
    assert_eq!(mariadb(my, "SHOW SLAVE STATUS"), "");
    mariadb(my, "INSERT INTO lab.writes (at) VALUES (NOW(6))");
    assert_eq!(dig(record), "127.0.0.2");
    let (op, admin) = server_state(backend, "dr");
    assert!(
        op == 2 && admin & MAINT == 0,
        "{backend}/dr: op {op} admin {admin}"
    );
    assert!(server_state(backend, "primary").1 & MAINT != 0);
    assert!(http_get(frontend).contains("app-dr"));
}

const DBS: [(&str, &str); 3] = [
    ("orders-db", "postgres"),
    ("sessions", "redis"),
    ("catalog-db", "mariadb"),
];

// ---------------------------------------------------------------------------------------------

#[test]
fn the_lab_fails_over_real_servers() {
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!(
            "skipped: the lab needs {} (apt-get install -y postgresql redis-server mariadb-server haproxy bind9 bind9-dnsutils socat)",
            missing.join(", ")
        );
        return;
    }
    // One lab per machine (fixed ports): wait for another test run's lab, bounded.
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/meeseeks-lab.lock")
        .unwrap();
    let mut lock = fd_lock::RwLock::new(lock_file);
    let deadline = Instant::now() + Duration::from_secs(900);
    let _held = loop {
        match lock.try_write() {
            Ok(g) => break g,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "/tmp/meeseeks-lab.lock held for 15 min"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    assert!(
        !Path::new(LAB).join("up").exists(),
        "a lab is up in {LAB}: `examples/lab/lab.sh down` first"
    );
    let busy: Vec<u16> = PORTS.iter().copied().filter(|&p| port_open(p)).collect();
    assert!(busy.is_empty(), "the lab's ports are in use: {busy:?}");
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let dr = dr_dir();
    let dr = dr.to_str().unwrap();
    let _down = Down;

    // up
    let t_all = Instant::now();
    let t = Instant::now();
    let o = lab_sh("up", Duration::from_secs(300));
    let up_s = t.elapsed().as_secs_f64();
    assert_eq!(o.code, Some(0), "lab.sh up:\n{}", o.text);
    assert_eq!(psql(25432, "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(psql(25433, "SELECT pg_is_in_recovery()"), "t");
    assert!(redis(26380, &["ROLE"]).starts_with("slave"));
    assert_eq!(mariadb(23307, "SELECT @@global.read_only"), "1");
    assert_eq!(dig("shop.lab.test"), "127.0.0.1");
    assert!(http_get(28080).contains("app-primary"));

    // ---- A drill: the DR site exercised in isolation while production keeps writing.
    let before_drill = jiff::Timestamp::now();
    let t = Instant::now();
    let o = meeseeks(&["drill", dr, "--no-progress", "--no-cleanup"], state);
    let drill_s = t.elapsed().as_secs_f64();
    assert_eq!(o.code, Some(0), "drill:\n{}", o.text);
    let drill = latest_report(state);
    // The drill copies, promoted on their own ports, took over the drill's routing and name...
    took_over(
        [25434, 26381, 23308],
        ("app_drill", 28081),
        "shop.drill.lab.test",
    );
    // ...while production is untouched: primaries primary, standbys standbys, routing and DNS
    // unchanged.
    assert_eq!(psql(25432, "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(psql(25433, "SELECT pg_is_in_recovery()"), "t");
    assert!(redis(26379, &["ROLE"]).starts_with("master"));
    assert!(redis(26380, &["ROLE"]).starts_with("slave"));
    assert_eq!(mariadb(23306, "SELECT @@global.read_only"), "0");
    assert_eq!(mariadb(23307, "SELECT @@global.read_only"), "1");
    assert_eq!(dig("shop.lab.test"), "127.0.0.1");
    assert!(http_get(28080).contains("app-primary"));
    assert!(server_state("app", "dr").1 & MAINT != 0);
    // The drill measured each copy's data-loss window: the copies replicated until they were
    // promoted, so they hold writes made during the drill.
    let mut drill_rpo = Vec::new();
    for (svc, _) in DBS {
        let (newest, until, window) = measured(&drill, svc);
        assert!(
            newest > before_drill,
            "{svc}: newest write {newest} predates the drill"
        );
        assert!(
            until >= newest && window >= 0.0,
            "{svc}: {newest} .. {until}"
        );
        drill_rpo.push((svc, window));
    }

    // Cleanup removes every drill artefact.
    let t = Instant::now();
    let o = meeseeks(&["cleanup", "-C", dr, "--no-progress"], state);
    let cleanup_s = t.elapsed().as_secs_f64();
    assert_eq!(o.code, Some(0), "cleanup:\n{}", o.text);
    for port in [25434, 26381, 23308] {
        assert!(!port_open(port), "a drill copy still listens on {port}");
    }
    for d in ["pg/drill", "redis/drill", "mariadb/drill"] {
        assert!(!Path::new(LAB).join(d).exists(), "{d} left behind");
    }
    assert_eq!(dig("shop.drill.lab.test"), "");
    assert!(server_state("app_drill", "dr").1 & MAINT != 0);
    assert_eq!(server_state("app_drill", "primary").1 & MAINT, 0);
    eventually(
        "the drill frontend serves the primary app again",
        Duration::from_secs(30),
        || http_get(28081).contains("app-primary"),
    );
    // Production took writes throughout, and its standbys kept replicating them.
    let after_cleanup = jiff::Timestamp::now();
    eventually(
        "writes acknowledged after the drill",
        Duration::from_secs(30),
        || {
            last_acked()
                .iter()
                .all(|t| t.is_some_and(|t| t > after_cleanup))
        },
    );
    eventually(
        "the standbys replicate writes made after the drill",
        Duration::from_secs(30),
        || {
            newest_on(25433, 26380, 23307)
                .iter()
                .all(|t| *t > after_cleanup)
        },
    );
    let writes_during = std::fs::read_to_string(format!("{LAB}/writer/acked.log"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, t)| {
            let t = ts(t);
            t > before_drill && t < after_cleanup
        })
        .count();
    assert!(
        writes_during >= 3,
        "only {writes_during} writes during the drill"
    );

    eprintln!(
        "lab: drill checked after {:.1}s",
        t_all.elapsed().as_secs_f64()
    );
    // ---- The disaster: the whole primary site SIGKILLed.
    let o = lab_sh("disaster", Duration::from_secs(60));
    assert_eq!(o.code, Some(0), "lab.sh disaster:\n{}", o.text);
    let declared = std::fs::read_to_string(format!("{LAB}/disaster-at")).unwrap();
    let declared = declared.trim();
    for port in [25432, 26379, 23306, 28091] {
        assert!(!port_open(port), "the primary site still listens on {port}");
    }
    let acked = last_acked();

    let plan = meeseeks(&["plan", dr, "--format", "json"], state);
    let plan: Value = serde_json::from_str(&plan.text).unwrap();
    let estimate_s = plan["makespan_s"].as_f64().unwrap();
    let t = Instant::now();
    let o = meeseeks(
        &[
            "run",
            dr,
            "--yes",
            "--no-progress",
            "--declared-at",
            declared,
        ],
        state,
    );
    let run_wall_s = t.elapsed().as_secs_f64();
    assert_eq!(o.code, Some(0), "failover:\n{}", o.text);
    let report = latest_report(state);
    assert_eq!(report["mode"], "failover");
    let first_start = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["started_s"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let last_ready = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["recovered_s"].as_f64())
        .fold(0.0, f64::max);

    // Measured RPO: the newest write meeseeks saw on each promoted database is the one its own
    // client sees (the templates' checks write to other tables and keys), and the window runs
    // from there to the declared disaster.
    let mut rpo = Vec::new();
    let declared_ts = ts(declared);
    let newest = newest_on(25433, 26380, 23307);
    for (i, (svc, db)) in DBS.iter().enumerate() {
        let (seen, until, window) = measured(&report, svc);
        assert_eq!(
            seen, newest[i],
            "{svc}: meeseeks saw {seen}, {db} holds {}",
            newest[i]
        );
        let newest = seen;
        assert_eq!(until, declared_ts, "{svc}");
        assert!(
            newest <= declared_ts,
            "{svc}: newest {newest} after the disaster"
        );
        let expect = declared_ts.duration_since(newest).as_secs_f64();
        assert!(
            (window - expect).abs() < 0.002,
            "{svc}: window {window} vs {expect}"
        );
        let acked = acked[i].unwrap_or_else(|| panic!("no acknowledged {db} write"));
        let lost = acked.duration_since(newest).as_secs_f64();
        // Nothing newer than the last acknowledged write can be on the replica, and the
        // window (to the disaster) is never shorter than what was really lost.
        assert!(
            lost >= 0.0,
            "{db}: replica has {newest}, newer than acked {acked}"
        );
        assert!(window >= lost, "{db}: window {window} < lost {lost}");
        rpo.push((*svc, *db, window, lost));
    }

    // Every outcome, with the servers' own clients.
    took_over([25433, 26380, 23307], ("app", 28080), "shop.lab.test");

    // The text report shows the data-loss table; the TSIG secret is nowhere in what meeseeks
    // printed or wrote.
    let o = meeseeks(&["report"], state);
    assert!(o.text.contains("Data loss (measured RPO"), "{}", o.text);
    let secret = tsig_secret();
    assert!(secret.len() > 20);
    let mut written = o.text.clone();
    all_text(state, &mut written);
    assert!(
        !written.contains(&secret),
        "the TSIG secret leaked into the state directory"
    );

    eprintln!(
        "lab: failover checked after {:.1}s",
        t_all.elapsed().as_secs_f64()
    );
    // lab.sh verify agrees, independently of meeseeks.
    let o = lab_sh("verify", Duration::from_secs(60));
    assert_eq!(o.code, Some(0), "lab.sh verify:\n{}", o.text);
    assert!(
        o.text.contains("the DR site serves everything"),
        "{}",
        o.text
    );

    // postgres/replication-lag on a server that is no longer a standby fails with its reason.
    let probe = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(probe.path().join("playbooks")).unwrap();
    std::fs::write(probe.path().join("graph.toml"), "[services.db]\ntier = 0\n").unwrap();
    std::fs::write(
        probe.path().join("playbooks/db.toml"),
        "[[steps]]\nuses = \"postgres/replication-lag\"\nwith = { host = \"127.0.0.1\", port = 25433 }\nretries = 0\n",
    )
    .unwrap();
    let o = meeseeks(
        &[
            "run",
            probe.path().to_str().unwrap(),
            "--yes",
            "--no-progress",
        ],
        &probe.path().join("state"),
    );
    assert_eq!(o.code, Some(1), "{}", o.text);
    assert!(
        o.text
            .contains("not a standby: the server is not in recovery"),
        "{}",
        o.text
    );

    // down: nothing left.
    let t = Instant::now();
    let o = lab_sh("down", Duration::from_secs(120));
    let down_s = t.elapsed().as_secs_f64();
    assert_eq!(o.code, Some(0), "lab.sh down:\n{}", o.text);
    for &port in PORTS {
        assert!(
            !port_open(port),
            "something still listens on {port} after down"
        );
    }
    assert!(!Path::new(LAB).join("pids").exists());

    eprintln!(
        "lab timings: up {up_s:.1}s; drill {drill_s:.1}s, cleanup {cleanup_s:.1}s; down {down_s:.1}s; failover makespan {:.1}s (services' first start to last recovery; plan estimate {estimate_s:.1}s), `meeseeks run` wall {run_wall_s:.1}s",
        last_ready - first_start
    );
    for (svc, w) in drill_rpo {
        eprintln!("  drill RPO {svc}: window {w:.3}s");
    }
    for (svc, db, window, lost) in rpo {
        eprintln!(
            "  failover RPO {svc} ({db}): window to the disaster {window:.3}s, lost after the last acknowledged write {lost:.3}s"
        );
    }
}
