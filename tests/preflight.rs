//! `meeseeks preflight`, end to end: the real binary against real HTTP, TCP and TLS servers on
//! 127.0.0.1, real commands, real DNS resolution (of the reserved `.invalid` TLD), and a real
//! webhook receiver.

mod common;
use common::write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{any, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Bound on any wait in these tests (a hung child must fail the test, not CI).
const WAIT: Duration = Duration::from_secs(60);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn meeseeks(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = tokio::process::Command::from(common::meeseeks());
    c.args(args)
        .env_remove("MEESEEKS_PF_MISSING")
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = tokio::time::timeout(WAIT, c.output())
        .await
        .expect("meeseeks finished in time")
        .expect("meeseeks ran");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Every request an HTTP server received: (method, path).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server answering 200 `ok` to anything, recording what it was asked.
async fn http_server() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    async fn any_req(
        State(s): State<Seen>,
        m: axum::http::Method,
        u: axum::http::Uri,
    ) -> &'static str {
        s.lock()
            .unwrap()
            .push((m.to_string(), u.path().to_string()));
        "ok"
    }
    let app = Router::new()
        .route("/{*p}", any(any_req))
        .with_state(seen.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (port, seen)
}

/// A TCP server that accepts and closes; abort the handle to take it down.
async fn tcp_server(port: u16) -> tokio::task::JoinHandle<()> {
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }
    })
}

/// A port nothing listens on (bound by the OS, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port where connections are refused for as long as the returned socket lives: bound but
/// not listening. Unlike a port bound and released ([`closed_port`]), no other socket can take
/// it meanwhile: not another test's server started on a port it was given the same way, nor
/// a client whose own ephemeral port happens to be it (a TCP connection to a free local port
/// can connect to itself). Either made the `down` service below look ready, once in CI.
fn refused_port() -> (u16, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket calls on a socket this function owns; `addr` and `len` are
    // properly sized for AF_INET.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let sa = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
        assert_eq!(
            libc::bind(fd, sa, len),
            0,
            "bind: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::getsockname(fd, sa, &mut len), 0);
        (u16::from_be(addr.sin_port), owned)
    }
}

/// A self-signed certificate for localhost / 127.0.0.1 valid for `days` more whole days,
/// as (PEM, server config).
fn self_signed(days: i64) -> (String, rustls::ServerConfig) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let end = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(days + 1))
        .unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(end.year() as i32, end.month() as u8, end.day() as u8);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (cert.pem(), config)
}

/// An HTTPS server (TLS handshake, then a fixed `200 ok`) with `config`.
async fn tls_server(config: rustls::ServerConfig) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let a = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut t) = a.accept(s).await {
                    let _ = t
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = t.shutdown().await;
                }
            });
        }
    });
    port
}

fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {report:#}"))
}

/// The service's single problem (asserting there is exactly one).
fn only_problem<'a>(report: &'a Value, name: &str) -> &'a Value {
    let s = service(report, name);
    let p = s["problems"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{name}: {s:#}");
    &p[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_unreadiness_is_reported_with_its_reason_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (http, seen) = http_server().await;
    let tcp_port = closed_port();
    let _tcp = tcp_server(tcp_port).await;
    let (down, _down_socket) = refused_port();
    let (soon_pem, soon_cfg) = self_signed(3);
    let soon = tls_server(soon_cfg).await;
    let (_, untrusted_cfg) = self_signed(300);
    let untrusted = tls_server(untrusted_cfg).await;
    std::fs::write(d.join("trusted.pem"), soon_pem).unwrap();
    write(
        d,
        "graph.toml",
        r#"
[services.up]
tier = 0
[services.down]
tier = 0
[services.nobin]
tier = 1
[services.nosecret]
tier = 1
[services.nodns]
tier = 1
[services.after-failover]
tier = 1
[services.tls-soon]
tier = 1
[services.tls-untrusted]
tier = 1
[services.replica]
tier = 0
[services.leaky]
tier = 2

[services.orders-db]
tier = 0
rpo = "15m"
stateful = true
backup = { schedule = "5m", check = "echo 2020-01-01T00:00:00Z" }

[services.fresh-db]
tier = 0
rpo = "15m"
stateful = true
backup = { schedule = "5m", check = "date -u +%Y-%m-%dT%H:%M:%SZ" }
"#,
    );
    write(
        d,
        "playbooks/up.toml",
        &format!(
            r#"
[[steps]]
name = "promote"
cmd = ["sh", "-c", "exit 0"]

[[steps]]
name = "enable pool"
http = {{ method = "POST", url = "http://127.0.0.1:{http}/api/pools/up", body = "x" }}

[[checks]]
name = "healthz"
http = {{ url = "http://127.0.0.1:{http}/healthz" }}

[[checks]]
name = "port"
tcp = "127.0.0.1:{tcp_port}"

[[preflight]]
name = "replication lag"
run = "printf 'lag seconds\n1\n'"
max = 5
"#
        ),
    );
    write(
        d,
        "playbooks/down.toml",
        &format!(
            "[[steps]]\nname = \"s\"\nwait = \"1s\"\n\n[[checks]]\nname = \"db port\"\ntcp = \"127.0.0.1:{down}\"\n"
        ),
    );
    write(
        d,
        "playbooks/nobin.toml",
        "\n[[steps]]\nname = \"promote\"\ncmd = [\"meeseeks-test-no-such-tool\", \"promote\"]\n",
    );
    write(
        d,
        "playbooks/nosecret.toml",
        "[[steps]]\nname = \"flip dns\"\nrun = \"sh -c 'echo {{ secret.MEESEEKS_PF_MISSING }}'\"\n",
    );
    write(
        d,
        "playbooks/nodns.toml",
        "[[checks]]\nname = \"replica\"\ntcp = \"dr-db.meeseeks-test.invalid:5432\"\n",
    );
    write(
        d,
        "playbooks/after-failover.toml",
        "[[checks]]\nname = \"new primary\"\ntcp = \"only-after-failover.invalid:5432\"\npreflight = false\n",
    );
    write(
        d,
        "playbooks/tls-soon.toml",
        &format!(
            "[[checks]]\nname = \"healthz\"\nhttp = {{ url = \"https://localhost:{soon}/healthz\" }}\n"
        ),
    );
    write(
        d,
        "playbooks/tls-untrusted.toml",
        &format!(
            "[[checks]]\nname = \"healthz\"\nhttp = {{ url = \"https://127.0.0.1:{untrusted}/healthz\" }}\n"
        ),
    );
    write(
        d,
        "playbooks/replica.toml",
        "[[steps]]\nname = \"s\"\nwait = \"1s\"\n\n[[preflight]]\nname = \"replication lag\"\nrun = \"echo 42\"\nmax = 5\ntimeout = \"5s\"\n",
    );
    write(
        d,
        "playbooks/leaky.toml",
        "[[preflight]]\nname = \"login\"\nrun = \"echo 'token={{ secret.MEESEEKS_PF_TOKEN }}'; exit 3\"\n\n[[steps]]\nname = \"s\"\nwait = \"1s\"\n",
    );
    write(
        d,
        "playbooks/orders-db.toml",
        "[[steps]]\nname = \"s\"\nwait = \"1s\"\n",
    );
    write(
        d,
        "playbooks/fresh-db.toml",
        "[[steps]]\nname = \"s\"\nwait = \"1s\"\n",
    );
    let state = d.join("state");
    let dir = d.to_str().unwrap();
    let state_s = state.to_str().unwrap();
    let pem = d.join("trusted.pem");
    let env = [
        ("SSL_CERT_FILE", pem.to_str().unwrap()),
        ("MEESEEKS_PF_TOKEN", "s3cr3t-pf-value"),
    ];
    let o = meeseeks(
        &["preflight", dir, "--format", "json", "--state-dir", state_s],
        &env,
    )
    .await;
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(
        !o.stdout.contains("s3cr3t-pf-value"),
        "secret leaked: {}",
        o.stdout
    );
    let r: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(r["schema"], "meeseeks.preflight/v1");
    assert_eq!(r["ready"], false);

    for ready in ["up", "after-failover", "fresh-db"] {
        let s = service(&r, ready);
        assert_eq!(s["status"], "ready", "{s:#}");
        assert!(s["problems"].as_array().unwrap().is_empty());
    }
    assert!(service(&r, "fresh-db")["backup"]["age_s"].as_f64().unwrap() < 60.0);

    let problem = |svc: &str, check: &str, reason: &str, file: &str, line: u64| {
        let p = only_problem(&r, svc);
        assert_eq!(p["check"], check, "{p}");
        assert!(p["reason"].as_str().unwrap().contains(reason), "{p}");
        assert_eq!(
            (p["file"].as_str(), p["line"].as_u64()),
            (Some(file), Some(line)),
            "{p}"
        );
    };
    problem(
        "down",
        "check:db port",
        "does not accept connections",
        "playbooks/down.toml",
        5,
    );
    let nobin = "`meeseeks-test-no-such-tool` is not installed";
    problem("nobin", "step:promote", nobin, "playbooks/nobin.toml", 2);
    let nosecret = "secret `MEESEEKS_PF_MISSING` is not set";
    problem(
        "nosecret",
        "step:flip dns",
        nosecret,
        "playbooks/nosecret.toml",
        1,
    );
    let nodns = "`dr-db.meeseeks-test.invalid` does not resolve";
    problem("nodns", "check:replica", nodns, "playbooks/nodns.toml", 1);
    problem(
        "tls-soon",
        "check:healthz",
        "expires in 3 days",
        "playbooks/tls-soon.toml",
        1,
    );
    let untrusted = "would be rejected by a run";
    problem(
        "tls-untrusted",
        "check:healthz",
        untrusted,
        "playbooks/tls-untrusted.toml",
        1,
    );
    let lag = "preflight:replication lag";
    problem(
        "replica",
        lag,
        "42 is over the maximum 5",
        "playbooks/replica.toml",
        5,
    );
    let leak = "probe failed: exit status 3: token=***";
    problem("leaky", "preflight:login", leak, "playbooks/leaky.toml", 1);
    problem(
        "orders-db",
        "backup.check",
        "older than the RPO of 15m",
        "graph.toml",
        23,
    );
    let cert = &service(&r, "tls-soon")["certificates"][0];
    assert_eq!(
        (cert["days_left"].as_i64(), cert["trusted"].as_bool()),
        (Some(3), Some(true))
    );
    let cert = &service(&r, "tls-untrusted")["certificates"][0];
    assert_eq!(
        (cert["days_left"].as_i64(), cert["trusted"].as_bool()),
        (Some(300), Some(false))
    );

    assert_eq!(r["counts"]["ready"], 3);
    assert_eq!(r["counts"]["not_ready"], 9);

    // The step's endpoint saw a connection and nothing else; the check's neither.
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // Text: a table per service with the place to fix.
    let t = meeseeks(
        &["preflight", dir, "--state-dir", state_s, "--no-record"],
        &env,
    )
    .await;
    assert_eq!(t.code, 1);
    assert!(t.stdout.contains("9 of 12 not ready"), "{}", t.stdout);
    let line = t
        .stdout
        .lines()
        .find(|l| l.contains("check:db port"))
        .unwrap();
    assert!(
        line.contains("playbooks/down.toml:5") && line.contains("does not accept connections"),
        "{line}"
    );
    assert!(t.stdout.contains("READY      up  ("), "{}", t.stdout);

    // JUnit: a test case per service, not ready = failure.
    let j = meeseeks(
        &[
            "preflight",
            dir,
            "--state-dir",
            state_s,
            "--no-record",
            "--format",
            "junit",
        ],
        &env,
    )
    .await;
    let doc = roxmltree::Document::parse(&j.stdout).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 12);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed.len(), 9, "{failed:?}");
    assert!(failed.contains(&"replica") && !failed.contains(&"up"));

    let m = meeseeks(
        &[
            "preflight",
            dir,
            "--state-dir",
            state_s,
            "--no-record",
            "--format",
            "markdown",
        ],
        &env,
    )
    .await;
    assert!(
        m.stdout.contains("| replica | **not ready** | 1 |"),
        "{}",
        m.stdout
    );
    assert!(
        m.stdout.contains(
            "| preflight:replication lag | `playbooks/replica.toml:5` | 42 is over the maximum 5 |"
        ),
        "{}",
        m.stdout
    );

    // One evaluation was recorded (the others said --no-record), private.
    let files: Vec<PathBuf> = std::fs::read_dir(state.join("preflight"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_executed_but_the_preflight_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (http, seen) = http_server().await;
    write(d, "graph.toml", "[services.svc]\ntier = 0\n");
    write(
        d,
        "playbooks/svc.toml",
        &format!(
            r#"
[[steps]]
name = "argv step"
cmd = ["touch", "{{{{ dr_dir }}}}/STEP_CMD_RAN"]
[[steps]]
name = "shell step"
run = "touch {{{{ dr_dir }}}}/STEP_RUN_RAN"
[[steps]]
name = "post"
http = {{ method = "POST", url = "http://127.0.0.1:{http}/api/failover", body = "go" }}
[[checks]]
name = "shell check"
run = "touch {{{{ dr_dir }}}}/CHECK_RAN"
[[checks]]
name = "healthz"
http = {{ url = "http://127.0.0.1:{http}/healthz" }}
[[rollback]]
cmd = ["touch", "{{{{ dr_dir }}}}/ROLLBACK_RAN"]
[[cleanup]]
run = "touch {{{{ dr_dir }}}}/CLEANUP_RAN"
[[preflight]]
name = "read-only probe"
run = "touch {{{{ dr_dir }}}}/PROBE_RAN"
[[preflight]]
name = "replica answers"
http = {{ url = "http://127.0.0.1:{http}/probe", expect_body = "ok" }}
"#
        ),
    );
    let state = d.join("state");
    let o = meeseeks(
        &[
            "preflight",
            d.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("all 1 service ready"), "{}", o.stdout);
    let mut made: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_RAN"))
        .collect();
    made.sort();
    // The positive control ran; no step, check, rollback or cleanup did.
    assert_eq!(made, ["PROBE_RAN"]);
    assert_eq!(
        *seen.lock().unwrap(),
        [("GET".to_string(), "/probe".to_string())],
        "only the [[preflight]] probe may send a request"
    );
    assert!(!state.join("runs").exists(), "no run was started");
}

/// Shop stand-ins listen on 127.0.0.1:18100-18199.
fn shop_ports_listening() -> Vec<u16> {
    (18100..18200)
        .filter(|p| {
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], *p)),
                Duration::from_millis(200),
            )
            .is_ok()
        })
        .collect()
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

// Run under `flock /tmp/meeseeks-shop.lock`, like every test that touches examples/shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_of_the_shop_starts_no_stand_in() {
    assert_eq!(
        shop_ports_listening(),
        Vec::<u16>::new(),
        "a shop stand-in is already running: run the tests under `flock /tmp/meeseeks-shop.lock`"
    );
    let state = tempfile::tempdir().unwrap();
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let o = meeseeks(
        &[
            "preflight",
            shop.to_str().unwrap(),
            "--format",
            "json",
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    let r: Value = serde_json::from_str(&o.stdout).unwrap();
    let services = r["services"].as_array().unwrap();
    assert!(services.len() >= 20);
    // Every stand-in is down, and stays down: each service is not ready for a connection
    // that was refused, and nothing answers on the shop's ports afterwards.
    for s in services {
        assert_eq!(s["status"], "not_ready", "{s:#}");
        assert!(
            s["problems"].as_array().unwrap().iter().all(|p| p["reason"]
                .as_str()
                .unwrap()
                .contains("does not accept connections")),
            "{s:#}"
        );
    }
    assert_eq!(shop_ports_listening(), Vec::<u16>::new());
    // The steps would have written pidfiles under STATE/runs/preflight and started
    // `meeseeks stub ... --pidfile STATE/...`: neither exists.
    assert!(!state.path().join("runs").exists());
    assert_eq!(
        processes_mentioning(state.path().to_str().unwrap()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sends_exactly_one_webhook_per_transition() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (tx, mut hooks) = mpsc::unbounded_channel::<Value>();
    async fn hook(
        State(tx): State<mpsc::UnboundedSender<Value>>,
        body: axum::body::Bytes,
    ) -> &'static str {
        let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        "ok"
    }
    let app = Router::new().route("/hook", post(hook)).with_state(tx);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });

    let db_port = closed_port();
    let mut db = tcp_server(db_port).await;
    write(
        d,
        "graph.toml",
        &format!(
            r#"
[[notify]]
url = "http://127.0.0.1:{hook_port}/hook"
events = ["preflight.changed"]

[services.db]
tier = 0
[services.broken]
tier = 1
"#
        ),
    );
    write(
        d,
        "playbooks/db.toml",
        &format!("[[checks]]\nname = \"port\"\ntcp = \"127.0.0.1:{db_port}\"\n"),
    );
    write(
        d,
        "playbooks/broken.toml",
        "[[steps]]\nname = \"x\"\ncmd = [\"meeseeks-test-no-such-tool\"]\n",
    );
    let state = d.join("state");
    let mut child = tokio::process::Command::from(common::meeseeks())
        .args([
            "preflight",
            d.to_str().unwrap(),
            "--every",
            "150ms",
            "--format",
            "json",
        ])
        .args(["--state-dir", state.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut evaluations = 0;
    // Reads evaluations until `n` in a row found db in `status`.
    let mut until = async |status: &str, n: usize| {
        let mut streak = 0;
        while streak < n {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("an evaluation in time")
                .unwrap()
                .expect("still running");
            evaluations += 1;
            let r: Value = serde_json::from_str(&line).unwrap();
            if service(&r, "db")["status"] == status {
                streak += 1;
            } else {
                streak = 0;
            }
        }
    };
    until("ready", 2).await;
    db.abort();
    let _ = (&mut db).await;
    until("not_ready", 3).await;
    db = tcp_server(db_port).await;
    until("ready", 3).await;
    // SIGINT stops it cleanly.
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    while let Ok(Some(_)) = lines.next_line().await {
        evaluations += 1;
    }
    db.abort();

    let mut got = Vec::new();
    while let Ok(v) = hooks.try_recv() {
        got.push(v);
    }
    let summary: Vec<Vec<(String, Value, Value)>> = got
        .iter()
        .map(|h| {
            assert_eq!(h["event"], "preflight.changed");
            h["changed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["service"].as_str().unwrap().to_string(),
                        c["from"].clone(),
                        c["to"].clone(),
                    )
                })
                .collect()
        })
        .collect();
    let t = |s: &str, from: Value, to: &str| (s.to_string(), from, Value::from(to));
    assert_eq!(
        summary,
        [
            // First evaluation: what is broken is announced, what works is not.
            vec![t("broken", Value::Null, "not_ready")],
            vec![t("db", "ready".into(), "not_ready")],
            vec![t("db", "not_ready".into(), "ready")],
        ],
        "{got:#?}"
    );
    assert!(
        got[1]["changed"][0]["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not accept connections")
    );
    // Every evaluation was recorded.
    let recorded = std::fs::read_dir(state.join("preflight")).unwrap().count();
    assert_eq!(recorded, evaluations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_preflight_entries_exit_2_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "graph.toml",
        "[services.db]\ntier = 0\nbackup = { schedule = \"5m\", chek = \"x\" }\n",
    );
    write(
        d,
        "playbooks/db.toml",
        "[[steps]]\nname = \"s\"\nwait = \"1s\"\npreflight = \"no\"\n\n[[preflight]]\nname = \"lag\"\nrun = \"echo 1\"\nmax = \"five\"\n\n[[preflight]]\nname = \"port\"\ntcp = \"db:5432\"\nexpect_status = 200\n",
    );
    let o = meeseeks(&["preflight", d.to_str().unwrap()], &[]).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    for want in [
        "db.toml:4:13: `preflight` must be true or false",
        "db.toml:9:7: `max` must be a finite number",
        "db.toml:14:17: `expect_status` applies to http probes only",
        "graph.toml:3:29: unknown key `chek` in backup",
    ] {
        assert!(
            o.stderr.contains(want),
            "missing {want:?} in:\n{}",
            o.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_plan_read_the_recorded_preflight() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = closed_port();
    let _srv = tcp_server(port).await;
    write(
        d,
        "graph.toml",
        "[services.a]\ntier = 0\n[services.b]\ntier = 0\n[services.c]\ntier = 1\n",
    );
    write(
        d,
        "playbooks/a.toml",
        &format!("[[checks]]\nname = \"port\"\ntcp = \"127.0.0.1:{port}\"\n"),
    );
    write(
        d,
        "playbooks/b.toml",
        "[[steps]]\nname = \"promote\"\ncmd = [\"meeseeks-test-no-such-tool\"]\n",
    );
    write(
        d,
        "playbooks/c.toml",
        &format!("[[checks]]\nname = \"port\"\ntcp = \"127.0.0.1:{port}\"\n"),
    );
    let dir = d.to_str().unwrap();
    let o = meeseeks(&["preflight", dir, "--services", "a,b"], &[]).await;
    assert_eq!(o.code, 1, "{}", o.stderr);

    let a = meeseeks(&["audit", dir, "--format", "json"], &[]).await;
    let r: Value = serde_json::from_str(&a.stdout).unwrap();
    let findings: BTreeMap<(String, String), String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "not-ready" || f["id"] == "preflight-stale")
        .map(|f| {
            (
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["service"].as_str().unwrap().to_string(),
                ),
                format!(
                    "{} | {}",
                    f["message"].as_str().unwrap(),
                    f["evidence"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    let keys: Vec<_> = findings.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            ("not-ready".to_string(), "b".to_string()),
            ("preflight-stale".to_string(), "c".to_string()),
        ]
    );
    let b = &findings[&("not-ready".to_string(), "b".to_string())];
    assert!(
        b.contains("found it not ready") && b.contains("playbooks/b.toml:1"),
        "{b}"
    );
    assert_eq!(a.code, 1, "not-ready is an error finding");

    let p = meeseeks(&["plan", dir], &[]).await;
    assert_eq!(p.code, 0, "{}", p.stderr);
    let section = p.stdout.split("Last preflight:").nth(1).expect(&p.stdout);
    assert!(
        section.contains("1 of 3 services in scope ready, 1 not covered by it"),
        "{section}"
    );
    assert!(
        section.contains("not ready  b  step:promote (playbooks/b.toml:1)"),
        "{section}"
    );
    let md = meeseeks(&["plan", dir, "--format", "markdown"], &[]).await;
    assert!(md.stdout.contains("## Last preflight"), "{}", md.stdout);
}
