//! Every shipped template, run for real: its steps and checks execute against fake CLIs put
//! first on PATH (small scripts that record their argv and answer like the real tool) and, for
//! the HTTP templates, against a real HTTP server on 127.0.0.1. The exact argv / request each
//! template produces is asserted.
//!
//! The executor (`src/exec/`) is not on main yet, so the expanded steps run through a tiny
//! runner here: rendered by the real `template::Renderer` (the run's rendering path), then
//! `cmd` via `std::process::Command` (no shell), `run` via `/bin/sh -c`, `http` via reqwest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use meeseeks::load::{LoadOptions, load};
use meeseeks::mask::Masker;
use meeseeks::model::{CheckKind, HttpSpec, Mode, Model, Step, StepKind};
use meeseeks::template::{Builtins, Renderer, describe_step};

/// Serialises the tests that read the environment (spawning a process does) with the one that
/// sets the secrets.
static ENV: Mutex<()> = Mutex::new(());

/// The fake tools: each appends `tool<TAB>arg<TAB>arg...` to $FAKE_LOG, then prints what the
/// real tool prints on success.
const FAKES: &[(&str, &str)] = &[
    (
        "kubectl",
        r#"case "$*" in
  *" scale "*) echo "deployment.apps/${7#deployment/} scaled" ;;
  *" rollout restart "*) echo "deployment.apps/${7#deployment/} restarted" ;;
  *" rollout status "*) echo "deployment \"${7#deployment/}\" successfully rolled out" ;;
esac"#,
    ),
    (
        "pg_ctl",
        r#"echo "waiting for server to promote.... done"; echo "server promoted""#,
    ),
    ("psql", "echo 1"),
    (
        "mysql",
        r#"case "$*" in *"SELECT @@global.read_only"*) echo 0 ;; esac"#,
    ),
    (
        "redis-cli",
        r#"case "$*" in *ROLE*) printf 'master\n0\n' ;; *) echo OK ;; esac"#,
    ),
    ("systemctl", "exit 0"),
    (
        "kafka-consumer-groups",
        r#"printf 'GROUP  TOPIC  PARTITION  NEW-OFFSET\nbilling  invoices  0  42\n'"#,
    ),
];

fn write_fakes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, body) in FAKES {
        let script = format!(
            "#!/bin/sh\n{{ printf '%s' \"$(basename \"$0\")\"; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; printf '\\n'; }} >> \"$FAKE_LOG\"\n{body}\n"
        );
        let p = dir.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// One request seen by the local HTTP server.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    content_type: String,
    body: String,
}

async fn serve(seen: Arc<Mutex<Vec<Seen>>>) -> std::net::SocketAddr {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let seen = seen.clone();
        async move {
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            seen.lock().unwrap().push(Seen {
                method: method.to_string(),
                path: uri.path().to_string(),
                authorization: h("authorization"),
                content_type: h("content-type"),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            if uri.path() == "/healthz" {
                (StatusCode::OK, "ok")
            } else {
                (StatusCode::NO_CONTENT, "")
            }
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Runs one service's steps, then each of its checks once; panics on the first failure.
/// Returns the rendered steps' descriptions, secrets masked.
async fn run_service(m: &Model, svc: &str, path: &str, log: &Path) -> Vec<String> {
    let id = m.id(svc).unwrap();
    let r = Renderer::new(
        m,
        BTreeMap::new(),
        Builtins::new("r1", Mode::Failover, m.dir.join("run"), m.dir.clone()),
        Masker::new(),
    );
    assert!(
        r.prepare_secrets(&[id]).is_empty(),
        "{svc}: secrets missing"
    );
    let pb = m.services[id].playbook.as_ref().unwrap();
    let client = reqwest::Client::new();
    let mut shown = Vec::new();
    for step in &pb.steps {
        let s = r.render_step(id, step).unwrap();
        shown.push(format!(
            "{}: {}",
            s.name,
            describe_step(&s.kind, r.masker())
        ));
        let ok = run_step(&client, &s, path, log).await;
        assert!(ok || s.optional, "{svc}: step `{}` failed", s.name);
    }
    for check in &pb.checks {
        let c = r.render_check(id, check).unwrap();
        let ok = match &c.kind {
            CheckKind::Cmd(argv) => exec(argv, path, log),
            CheckKind::Run(line) => exec(&["sh".into(), "-c".into(), line.clone()], path, log),
            CheckKind::Http(h) => http(&client, h).await,
            CheckKind::Tcp(a) => tokio::net::TcpStream::connect(a).await.is_ok(),
        };
        assert!(ok, "{svc}: check `{}` failed", c.name);
    }
    shown
}

/// One rendered step, with its retries (delay doubled after each failed attempt).
async fn run_step(client: &reqwest::Client, s: &Step, path: &str, log: &Path) -> bool {
    let mut delay = s.retry_delay;
    for attempt in 0..=s.retries {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let ok = match &s.kind {
            StepKind::Cmd(argv) => exec(argv, path, log),
            StepKind::Run(line) => exec(&["sh".into(), "-c".into(), line.clone()], path, log),
            StepKind::Http(h) => http(client, h).await,
            StepKind::Wait(d) => {
                tokio::time::sleep(*d).await;
                true
            }
            other => panic!("unexpected step kind {other:?}"),
        };
        if ok {
            return true;
        }
    }
    false
}

fn exec(argv: &[String], path: &str, log: &Path) -> bool {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("PATH", path)
        .env("FAKE_LOG", log)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    out.status.success()
}

async fn http(client: &reqwest::Client, h: &HttpSpec) -> bool {
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap();
    let mut req = client.request(method, &h.url);
    for (k, v) in &h.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &h.body {
        req = req.body(b.clone());
    }
    let Ok(resp) = req.send().await else {
        return false;
    };
    let st = resp.status().as_u16();
    if h.expect_status.is_empty() {
        (200..300).contains(&st)
    } else {
        h.expect_status.contains(&st)
    }
}

const GRAPH: &str = r#"
[vars]
dr_site = "dc2"

[services.web]
tier = 1
[services.orders-db]
tier = 0
[services.legacy-db]
tier = 0
[services.cache]
tier = 0
[services.dns]
tier = 0
[services.lb]
tier = 0
[services.nginx]
tier = 1
[services.billing]
tier = 1
"#;

fn playbooks(base: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "web",
            format!(
                r#"
[[steps]]
uses = "k8s/scale"
with = {{ deployment = "web", replicas = 6, context = "{{{{ dr_site }}}}", namespace = "shop", timeout = "2m" }}

[[steps]]
name = "restart"
uses = "k8s/rollout-restart"
with = {{ deployment = "web", context = "{{{{ dr_site }}}}" }}

[[steps]]
name = "web"
uses = "http/wait-healthy"
with = {{ url = "{base}/healthz", retries = 2, retry_delay = "100ms" }}
"#
            ),
        ),
        (
            "orders-db",
            r#"
[[steps]]
uses = "postgres/promote-replica"
with = { data_dir = "/var/lib/postgresql/16/main", host = "pg-dr", port = 5433 }
"#
            .into(),
        ),
        (
            "legacy-db",
            r#"
[[steps]]
uses = "mysql/promote-replica"
with = { host = "mysql-dr", user = "dr_admin" }
"#
            .into(),
        ),
        (
            "cache",
            r#"
[[steps]]
uses = "redis/promote-replica"
with = { host = "redis-dr" }
"#
            .into(),
        ),
        (
            "dns",
            format!(
                r#"
[[steps]]
uses = "dns/switch-record"
with = {{ url = "{base}/zones/z1/dns_records/r1", record = "shop.example.com", content = "203.0.113.10", ttl = 30, propagation = "0s" }}
"#
            ),
        ),
        (
            "lb",
            format!(
                r#"
[[steps]]
uses = "lb/enable-pool"
with = {{ url = "{base}/api/pools/shop-dr" }}
"#
            ),
        ),
        (
            "nginx",
            r#"
[[steps]]
uses = "systemd/start"
with = { unit = "nginx.service" }
"#
            .into(),
        ),
        (
            "billing",
            r#"
[[steps]]
uses = "kafka/failover-consumer-group"
with = { bootstrap_server = "kafka-dr:9092", group = "billing", topic = "invoices", reset = "--to-datetime=2026-11-26T10:00:00.000" }
"#
            .into(),
        ),
    ]
}

/// Every template of the library is exercised by `every_shipped_template_runs_for_real`.
#[test]
fn the_run_covers_the_whole_library() {
    let used: Vec<String> = playbooks("http://x")
        .iter()
        .flat_map(|(_, text)| {
            text.lines()
                .filter_map(|l| l.strip_prefix("uses = \""))
                .map(|l| l.trim_end_matches('"').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, _) in meeseeks::load::library::builtin() {
        assert!(used.iter().any(|u| u == name), "{name} is not exercised");
    }
}

#[test]
fn every_shipped_template_runs_for_real() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the tests of this binary that spawn processes or read the environment hold
    // `ENV`, so nothing reads the environment while it changes.
    unsafe {
        std::env::set_var("DNS_API_TOKEN", "dns-s3cret");
        std::env::set_var("LB_API_TOKEN", "lb-s3cret");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    write_fakes(&bin);
    let log = d.path().join("argv.log");
    std::fs::write(&log, "").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    rt.block_on(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = serve(seen.clone()).await;
        let base = format!("http://{addr}");
        let dr: PathBuf = d.path().join("dr");
        std::fs::create_dir_all(dr.join("playbooks")).unwrap();
        std::fs::write(dr.join("graph.toml"), GRAPH).unwrap();
        for (svc, text) in playbooks(&base) {
            std::fs::write(dr.join(format!("playbooks/{svc}.toml")), text).unwrap();
        }
        let l = load(&dr, &LoadOptions::default());
        assert!(!l.diags.has_errors(), "{}", l.diags.render(false));
        let m = l.model.unwrap();

        let mut argv_by_service = Vec::new();
        let mut shown = Vec::new();
        for svc in [
            "web",
            "orders-db",
            "legacy-db",
            "cache",
            "dns",
            "lb",
            "nginx",
            "billing",
        ] {
            let before = std::fs::read_to_string(&log).unwrap().lines().count();
            shown.extend(run_service(&m, svc, &path, &log).await);
            let lines: Vec<String> = std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .skip(before)
                .map(|l| l.replace('\t', " ⇥ "))
                .collect();
            argv_by_service.push((svc, lines));
        }

        let mut out = String::new();
        for (svc, lines) in &argv_by_service {
            out.push_str(&format!("[{svc}]\n"));
            for l in lines {
                out.push_str(&format!("{l}\n"));
            }
        }
        insta::assert_snapshot!("argv", out);

        // The HTTP templates: the exact requests, with the real token on the wire...
        let reqs: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path != "/healthz")
            .cloned()
            .collect();
        assert_eq!(
            reqs,
            vec![
                Seen {
                    method: "PUT".into(),
                    path: "/zones/z1/dns_records/r1".into(),
                    authorization: "Bearer dns-s3cret".into(),
                    content_type: "application/json".into(),
                    body: r#"{"type": "A", "name": "shop.example.com", "content": "203.0.113.10", "ttl": 30}"#.into(),
                },
                Seen {
                    method: "POST".into(),
                    path: "/api/pools/shop-dr".into(),
                    authorization: "Bearer lb-s3cret".into(),
                    content_type: "application/json".into(),
                    body: r#"{"enabled": true}"#.into(),
                },
            ]
        );
        assert!(seen.lock().unwrap().iter().any(|s| s.path == "/healthz"));
        // ...and masked in everything shown.
        let shown = shown.join("\n").replace(&base, "BASE");
        assert!(!shown.contains("s3cret"), "{shown}");
        insta::assert_snapshot!("rendered", shown);
    });
}

/// The shop demo's own template (`examples/shop/playbooks/_templates/shop/stand-in.toml`) and
/// `http/wait-healthy`, run for real: the expanded steps start a real `meeseeks stub`, wait
/// through its cold start, pass the service's checks, and the cleanup stops it.
#[test]
fn shop_stand_in_and_wait_healthy_run_for_real() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let l = load(&shop, &LoadOptions::default());
    assert!(!l.diags.has_errors(), "{}", l.diags.render(false));
    let m = l.model.unwrap();
    let id = m.id("api-gateway").unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let builtins = Builtins {
        run_id: "r1".into(),
        mode: Mode::Drill,
        run_dir: run_dir.path().to_path_buf(),
        dr_dir: shop.clone(),
        meeseeks: PathBuf::from(env!("CARGO_BIN_EXE_meeseeks")),
    };
    // A free port instead of the demo's 18101, so a concurrent drill of the demo elsewhere in
    // the test suite cannot collide with this one (`--var` beats the playbook's [vars]).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vars = BTreeMap::from([("port".to_string(), serde_json::json!(port))]);
    let r = Renderer::new(&m, vars, builtins, Masker::new());
    let pb = m.services[id].playbook.as_ref().unwrap();
    let names: Vec<&str> = pb.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names[..2],
        [
            "scale up the API gateway in the DR site/start stand-in",
            "wait until the API gateway answers/poll"
        ]
    );
    let log = run_dir.path().join("argv.log");
    let path = std::env::var("PATH").unwrap_or_default();
    rt.block_on(async {
        let client = reqwest::Client::new();
        // The first two steps (the third enables a pool on the edge LB, not running here).
        for step in &pb.steps[..2] {
            let s = r.render_step(id, step).unwrap();
            assert!(run_step(&client, &s, &path, &log).await, "{}", s.name);
        }
        for check in &pb.checks {
            let c = r.render_check(id, check).unwrap();
            let CheckKind::Http(h) = &c.kind else {
                panic!("{c:?}")
            };
            assert!(http(&client, h).await, "{}", c.name);
        }
        for step in &pb.cleanup {
            let s = r.render_step(id, step).unwrap();
            assert!(run_step(&client, &s, &path, &log).await, "{}", s.name);
        }
    });
}
