//! `meeseeks stub`: the serve loop through the library API, and detach/stop through the real
//! binary (real processes, real HTTP and TCP on 127.0.0.1).

mod common;
use common::meeseeks as bin;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use meeseeks::stub::{Bound, StubArgs};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn args(ready_after: Duration, fail_checks: u64) -> StubArgs {
    StubArgs {
        name: "orders".into(),
        listen: Some("127.0.0.1:0".into()),
        ready_after,
        fail_checks,
        ..Default::default()
    }
}

/// Binds a stub in this process and serves it until the returned sender is dropped.
async fn start(
    a: StubArgs,
) -> (
    String,
    Option<std::net::SocketAddr>,
    tokio::sync::oneshot::Sender<()>,
) {
    let bound = Bound::bind(&a).await.expect("bind");
    let base = format!("http://{}", bound.http_addr());
    let tcp = bound.tcp_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    (base, tcp, tx)
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.expect("request");
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

#[tokio::test]
async fn healthz_is_503_until_ready() {
    let c = client();
    // Far in the future: every answer in this test is "not yet".
    let (base, _, _stop) = start(args(Duration::from_secs(3600), 0)).await;
    let (s, body) = get(&c, &format!("{base}/healthz")).await;
    assert_eq!((s, body.as_str()), (503, "starting"));
    let (s, body) = get(&c, &format!("{base}/")).await;
    assert_eq!(s, 200);
    assert!(
        body.starts_with("meeseeks stub orders on 127.0.0.1:"),
        "{body}"
    );
}

#[tokio::test]
async fn becomes_ready_after_the_delay() {
    let c = client();
    let (base, _, _stop) = start(args(Duration::from_millis(300), 0)).await;
    let mut seen = Vec::new();
    loop {
        let (s, body) = get(&c, &format!("{base}/healthz")).await;
        seen.push((s, body.clone()));
        if s == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (last, before) = seen.split_last().unwrap();
    assert_eq!(last, &(200, "ok".to_string()));
    // Only "starting" answers before readiness, and ready means ready from then on.
    assert!(
        before.iter().all(|(s, b)| *s == 503 && b == "starting"),
        "{seen:?}"
    );
    assert_eq!(
        get(&c, &format!("{base}/healthz")).await,
        (200, "ok".into())
    );
}

#[tokio::test]
async fn fail_checks_counts_answers_after_readiness() {
    let c = client();
    let (base, _, _stop) = start(args(Duration::ZERO, 3)).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&c, &format!("{base}/healthz")).await.0);
    }
    assert_eq!(statuses, [503, 503, 503, 200, 200]);
    // Five /healthz, this one included: 6.
    assert_eq!(
        get(&c, &format!("{base}/requests")).await,
        (200, "6\n".into())
    );
}

#[tokio::test]
async fn other_requests_succeed_so_http_steps_can_target_a_stub() {
    let c = client();
    let (base, _, _stop) = start(args(Duration::ZERO, 0)).await;
    let r = c
        .post(format!("{base}/api/pools/checkout"))
        .body(r#"{"active":"dr"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "orders POST /api/pools/checkout: ok\n"
    );
}

#[tokio::test]
async fn tcp_listener_accepts_and_closes() {
    use tokio::io::AsyncReadExt;
    let mut a = args(Duration::ZERO, 0);
    a.tcp_listen = Some("127.0.0.1:0".into());
    let (_, tcp, _stop) = start(a).await;
    let mut s = tokio::net::TcpStream::connect(tcp.unwrap()).await.unwrap();
    let mut buf = [0u8; 8];
    // The stub closes at once: EOF, not a hang.
    assert_eq!(s.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = args(Duration::ZERO, 0);
    a.listen = Some(taken.local_addr().unwrap().to_string());
    let err = Bound::bind(&a).await.err().expect("must fail");
    assert!(err.starts_with("cannot listen on 127.0.0.1:"), "{err}");
    assert!(err.ends_with("Address already in use"), "{err}");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let c = client();
    let bound = Bound::bind(&args(Duration::ZERO, 0)).await.unwrap();
    let addr = bound.http_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    assert_eq!(get(&c, &format!("http://{addr}/healthz")).await.0, 200);
    tx.send(()).unwrap();
    task.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------------------
// The real binary: detach, pidfile lifecycle, stop.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pid_in(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn process_exists(pid: i32) -> bool {
    // A zombie (exited, not yet reaped by init) runs nothing: count only live processes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            state != Some(Some('Z'))
        }
        Err(_) => false,
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{cmd:?} failed: {stdout}\n{stderr}");
    stdout
}

#[test]
fn detach_then_stop_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("run/orders.pid");
    let port = free_port();
    let tcp_port = free_port();
    let out = run_ok(bin().args([
        "stub",
        "--name",
        "orders",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--tcp-listen",
        &format!("127.0.0.1:{tcp_port}"),
        "--ttl",
        "5m",
        "--detach",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]));
    assert!(out.contains("meeseeks stub orders started (pid "), "{out}");
    // Returned only once listening: the pidfile exists and both ports answer right away.
    let pid = pid_in(&pidfile);
    assert!(process_exists(pid));
    let body = blocking_get(&format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!(body, (200, "ok".to_string()));
    std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();

    // Starting it again with the same pidfile and address is a no-op (resume re-runs steps).
    let again = run_ok(bin().args([
        "stub",
        "--name",
        "orders",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--detach",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]));
    assert!(again.contains("already running"), "{again}");
    assert_eq!(pid_in(&pidfile), pid);

    let out = run_ok(bin().args(["stub", "--stop", "--pidfile", pidfile.to_str().unwrap()]));
    assert!(out.contains(&format!("stub pid {pid} stopped")), "{out}");
    assert!(!pidfile.exists());
    assert!(
        !process_exists(pid),
        "stub {pid} still running after --stop"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Idempotent cleanup: stopping again is fine and says why.
    let out = run_ok(bin().args(["stub", "--stop", "--pidfile", pidfile.to_str().unwrap()]));
    assert!(out.contains("nothing to stop"), "{out}");
}

#[test]
fn detach_fails_clearly_when_the_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("x.pid");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args([
            "stub",
            "--name",
            "x",
            "--listen",
            &addr,
            "--detach",
            "--pidfile",
        ])
        .arg(&pidfile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{stderr}"
    );
    assert!(!pidfile.exists());
}

#[test]
fn stop_with_a_stale_pidfile_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("stale.pid");
    // A pid that existed and is gone: a child we ran and reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let out = run_ok(bin().args(["stub", "--stop", "--pidfile", pidfile.to_str().unwrap()]));
    assert!(out.contains("not running"), "{out}");
    assert!(!pidfile.exists());
}

#[test]
fn stop_never_signals_a_process_that_is_not_a_stub() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("reused.pid");
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(&pidfile, format!("{}\n", sleeper.id())).unwrap();
    let out = run_ok(bin().args(["stub", "--stop", "--pidfile", pidfile.to_str().unwrap()]));
    assert!(out.contains("is not a meeseeks stub"), "{out}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the unrelated process was killed"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn ttl_ends_a_forgotten_stub() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("ttl.pid");
    let port = free_port();
    // Foreground, so we can wait for it to exit by itself.
    let out = bin()
        .args([
            "stub",
            "--name",
            "t",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ttl",
            "200ms",
            "--pidfile",
        ])
        .arg(&pidfile)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "meeseeks stub t listening on http://127.0.0.1:{port}"
        )),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping (ttl elapsed)"));
    assert!(
        !pidfile.exists(),
        "the stub removes its own pidfile on exit"
    );
}

/// One GET on a throwaway runtime (the detach tests are synchronous).
fn blocking_get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(get(&client(), url))
}
