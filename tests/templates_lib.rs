//! Every shipped template, run for real by the real binary: `meeseeks run DIR --yes` on a
//! temp DR directory whose playbooks use each template, with fake CLIs put first on PATH
//! (small scripts that record their argv and answer like the real tool) and, for the HTTP
//! templates, a real HTTP server on 127.0.0.1. The exact argv / request each template
//! produces is asserted, and the secrets they send never appear in any output or journal.
//! (tests/lab.rs runs the database, HAProxy and DNS templates against the real servers.)

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
        // MySQL 8's field names (the lab's MariaDB says Master_ instead).
        "mysql",
        r#"case "$*" in
  *"SHOW REPLICA STATUS"*) printf '*** 1. row ***\n  Source_Log_File: binlog.000002\n  Read_Source_Log_Pos: 1234\n  Relay_Source_Log_File: binlog.000002\n  Exec_Source_Log_Pos: 1234\n  Replica_SQL_Running: Yes\n  Last_SQL_Error: \n' ;;
  *"SELECT @@global.read_only"*) echo 0 ;;
esac"#,
    ),
    (
        "redis-cli",
        r#"case "$*" in *ROLE*) printf 'master\n0\n' ;; *) echo OK ;; esac"#,
    ),
    (
        // HAProxy's runtime API: what it reads on stdin is logged too; `set server` answers
        // nothing on success.
        "socat",
        r#"cmd=$(cat); printf 'stdin: %s\n' "$cmd" >> "$FAKE_LOG"
case "$cmd" in "show servers state"*)
  printf '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n3 app 1 primary 10.0.0.1 0 1 1 1\n3 app 2 dr 10.0.0.2 2 4 1 1\n' ;;
esac"#,
    ),
    // The update (with the TSIG secret) arrives on stdin: kept apart from the argv log.
    ("nsupdate", r#"cat > "$FAKE_LOG.nsupdate""#),
    ("dig", "echo 203.0.113.10"),
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
[services.edge]
tier = 0
[services.zone]
tier = 0
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
uses = "postgres/replication-lag"
with = { host = "pg-dr", port = 5433, max_lag_seconds = 10 }

[[steps]]
uses = "postgres/promote-replica"
with = { host = "pg-dr", port = 5433 }
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
            "edge",
            format!(
                r#"
[[steps]]
uses = "haproxy/set-server-state"
with = {{ socket = "/run/haproxy/admin.sock", backend = "app", from = "primary", to = "dr", url = "{base}/healthz", expect_body = "ok" }}
"#
            ),
        ),
        (
            "zone",
            r#"
[[steps]]
uses = "dns/nsupdate"
with = { server = "ns1.example.com", zone = "example.com", record = "shop.example.com", address = "203.0.113.10", key_name = "dr-key" }
"#
            .into(),
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

/// Collects the files under `dir` (the state directory: journals, reports) as text.
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

#[test]
fn every_shipped_template_runs_for_real() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = rt.block_on(serve(seen.clone()));
    let base = format!("http://{addr}");

    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    write_fakes(&bin);
    let log = d.path().join("argv.log");
    std::fs::write(&log, "").unwrap();
    let dr: PathBuf = d.path().join("dr");
    std::fs::create_dir_all(dr.join("playbooks")).unwrap();
    std::fs::write(dr.join("graph.toml"), GRAPH).unwrap();
    for (svc, text) in playbooks(&base) {
        std::fs::write(dr.join(format!("playbooks/{svc}.toml")), text).unwrap();
    }
    let state = d.path().join("state");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let meeseeks = |args: &[&str]| {
        common::meeseeks()
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .arg(&dr)
            .env("PATH", &path)
            .env("FAKE_LOG", &log)
            .env("DNS_API_TOKEN", "dns-s3cret")
            .env("LB_API_TOKEN", "lb-s3cret")
            .env("TSIG_SECRET", "tsig-s3cret")
            .output()
            .unwrap()
    };

    // One service at a time (`--parallel 1`), so the argv log has a stable order.
    let out = meeseeks(&["run", "--yes", "--no-progress", "--parallel", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("10/10 recovered"), "{stdout}");

    // The run id (redis/promote-replica writes it) varies from run to run.
    let run_id = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .unwrap();
    let argv = std::fs::read_to_string(&log)
        .unwrap()
        .replace('\t', " ⇥ ")
        .replace(&run_id, "RUN_ID");
    insta::assert_snapshot!("argv", argv);
    // The TSIG secret reached nsupdate on its standard input, in the key line, and no argv.
    let update = std::fs::read_to_string(format!("{}.nsupdate", log.display())).unwrap();
    assert_eq!(
        update,
        "server ns1.example.com 53\nkey hmac-sha256:dr-key tsig-s3cret\nzone example.com\n\
         update delete shop.example.com A\nupdate add shop.example.com 60 A 203.0.113.10\n\
         send\nanswer\n"
    );
    assert!(!argv.contains("s3cret"), "{argv}");

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

    // ...and never in what meeseeks prints or writes.
    let mut written = String::new();
    all_text(&state, &mut written);
    for (what, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("state", &written),
    ] {
        assert!(!text.contains("s3cret"), "secret in {what}:\n{text}");
    }

    // The dry-run shows the same expanded steps, fully rendered, secrets masked.
    let out = meeseeks(&["run", "--dry-run", "--no-progress", "--parallel", "1"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    for want in [
        "step \"k8s/scale/scale\": cmd: kubectl --context dc2 --namespace shop scale deployment/web --replicas=6",
        "step \"dns/switch-record/update record\": http: PUT",
        "-H 'Authorization: Bearer ***'",
        "step \"kafka/failover-consumer-group/reset offsets\": cmd: kafka-consumer-groups --bootstrap-server kafka-dr:9092 --group billing --topic invoices --reset-offsets --to-datetime=2026-11-26T10:00:00.000 --execute",
    ] {
        assert!(text.contains(want), "dry-run lacks {want:?}:\n{text}");
    }
}
