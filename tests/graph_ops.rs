//! End-to-end: the real binary on DR directories and lone graph files in a temp dir.

mod common;
use common::meeseeks;

use std::path::Path;

use std::process::Command;

#[path = "common/chromium.rs"]
mod chromium;

const OLD: &str = r#"
[defaults]
rto = "1h"

[services.orders-db]
tier = 0
rto = "20m"
stateful = true
backup = { schedule = "5m" }

[services.orders]
tier = 0
rto = "30m"
depends_on = ["orders-db"]

[services.payments]
tier = 0
rto = "30m"
watch = true

[services.checkout]
tier = 0
rto = "45m"
depends_on = ["orders", "payments"]
soft_depends_on = ["recs"]

[services.recs]
tier = 2
rto = "4h"
"#;

/// OLD plus `fraud -> payments` and a tighter RTO for orders.
fn new_graph() -> String {
    OLD.replace(
        "rto = \"30m\"\ndepends_on = [\"orders-db\"]",
        "rto = \"25m\"\ndepends_on = [\"orders-db\"]",
    ) + "\n[services.fraud]\ntier = 1\nrto = \"1h\"\ndepends_on = [\"payments\"]\n"
}

const PLAYBOOK: &str = r#"
[[steps]]
name = "recover"
run = "true"
estimate = "1m"

[[checks]]
name = "up"
tcp = "127.0.0.1:1"
"#;

fn dr_dir(root: &Path, name: &str, graph: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(d.join("playbooks")).unwrap();
    std::fs::write(d.join("graph.toml"), graph).unwrap();
    for s in [
        "orders-db",
        "orders",
        "payments",
        "checkout",
        "recs",
        "fraud",
    ] {
        if graph.contains(&format!("[services.{s}]")) {
            std::fs::write(d.join("playbooks").join(format!("{s}.toml")), PLAYBOOK).unwrap();
        }
    }
    d
}

fn stdout(c: &mut Command) -> (i32, String) {
    let (code, out, _) = common::output(c);
    (code, out)
}

#[test]
fn diff_between_dirs_and_between_files() {
    let t = tempfile::tempdir().unwrap();
    let old = dr_dir(t.path(), "old", OLD);
    let new = dr_dir(t.path(), "new", &new_graph());
    // Files alone, as in CI: `git show HEAD~1:graph.toml > old.toml`.
    let old_file = t.path().join("old.toml");
    std::fs::write(&old_file, OLD).unwrap();
    let new_file = t.path().join("graph.toml");
    std::fs::write(&new_file, new_graph()).unwrap();
    for (a, b) in [(&old, &new), (&old_file, &new_file), (&old_file, &new)] {
        let (code, out) = stdout(
            meeseeks()
                .arg("diff")
                .arg(a)
                .arg(b)
                .args(["--format", "json"]),
        );
        assert_eq!(code, 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["schema"], "meeseeks.diff/v1");
        assert_eq!(
            v["new_dependents"]["payments"],
            serde_json::json!(["fraud"])
        );
        assert_eq!(v["added_services"], serde_json::json!(["fraud"]));
        assert_eq!(v["changed_services"][0]["name"], "orders");
    }
    // Nothing new: exit 0, and --watch on a service nobody new depends on.
    let (code, out) = stdout(
        meeseeks()
            .arg("diff")
            .arg(&new_file)
            .arg(&new)
            .args(["--watch", "orders-db"]),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no new dependents of the 2 watched service(s)"),
        "{out}"
    );
    // Unknown --watch: usage error.
    let out = meeseeks()
        .arg("diff")
        .arg(&old_file)
        .arg(&new_file)
        .args(["--watch", "paymnts"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `payments`"));
}

#[test]
fn verify_jaeger_and_csv() {
    let t = tempfile::tempdir().unwrap();
    let dir = dr_dir(t.path(), "dr", OLD);
    let json = t.path().join("deps.json");
    std::fs::write(
        &json,
        r#"[{"parent":"checkout","child":"orders","callCount":10},
            {"parent":"checkout","child":"payments","callCount":10},
            {"parent":"checkout","child":"recs","callCount":10},
            {"parent":"orders","child":"orders-db","callCount":10},
            {"parent":"payments","child":"orders-db","callCount":3}]"#,
    )
    .unwrap();
    let csv = t.path().join("deps.csv");
    std::fs::write(
        &csv,
        "caller,callee,count\ncheckout,orders,10\ncheckout,payments,10\ncheckout,recs,10\norders,orders-db,10\npayments,orders-db,3\n",
    )
    .unwrap();
    for f in [&json, &csv] {
        let (code, out) = stdout(meeseeks().arg("verify").arg("--observed").arg(f).arg(&dir));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("payments  orders-db  3"), "{out}");
        // Noise filter: 3 calls < 5.
        let (code, out) = stdout(
            meeseeks()
                .arg("verify")
                .arg("--observed")
                .arg(f)
                .args(["--min-calls", "5", "--format", "json"])
                .arg(&dir),
        );
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["undeclared"], serde_json::json!([]));
        assert_eq!(v["below_min_calls"], 1);
    }
    let bad = t.path().join("bad.csv");
    std::fs::write(&bad, "a,b,1\na,b,lots\n").unwrap();
    let out = meeseeks()
        .arg("verify")
        .arg("--observed")
        .arg(&bad)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:2: call count `lots`"), "{err}");
}

#[test]
fn audit_graph_deps_impact() {
    let t = tempfile::tempdir().unwrap();
    let dir = dr_dir(t.path(), "dr", OLD);
    // orders-db takes down orders and checkout: 2 of 4 tier-0 services.
    let (code, out) = stdout(meeseeks().arg("audit").arg(&dir));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spof"), "{out}");
    let (code, out) = stdout(
        meeseeks()
            .arg("audit")
            .arg(&dir)
            .args(["--allow", "spof", "--format", "json"]),
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.audit/v1");
    assert_eq!(v["counts"]["error"], 0);

    let (code, out) = stdout(meeseeks().arg("graph").arg(&dir).args(["--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.graph/v1");
    let (_, out) = stdout(
        meeseeks()
            .arg("graph")
            .arg(&dir)
            .args(["--focus", "orders", "--depth", "1"]),
    );
    assert!(out.starts_with("digraph meeseeks {"), "{out}");
    assert!(!out.contains("\"payments\" ["), "{out}");

    let (code, out) = stdout(meeseeks().args(["deps", "checkout"]).arg(&dir));
    assert_eq!(code, 0);
    assert!(out.contains("checkout -> orders -> orders-db"), "{out}");

    let (code, out) = stdout(
        meeseeks()
            .args(["impact", "orders-db", "recs", "--format", "json", "--dir"])
            .arg(&dir),
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["down"], serde_json::json!(["checkout", "orders"]));
    let out = meeseeks()
        .args(["impact", "ordersdb", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Graph whose only possible findings are about drills: every service has a playbook with a
/// check, no stateful service, RTOs consistent, no tier-0 service shared.
const DRILLED: &str = r#"
[services.api]
tier = 1
rto = "1h"
depends_on = ["db"]

[services.db]
tier = 1
rto = "30m"
stateful = true
backup = { schedule = "5m" }
"#;

#[test]
fn audit_drill_stale_from_the_run_history() {
    use meeseeks::events::Event;
    use meeseeks::model::Mode;
    use meeseeks::runconfig::RunConfig;
    use meeseeks::store::RunMeta;
    use meeseeks::store::file::{StateDir, writer::append_sync};

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("dr");
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    std::fs::write(dir.join("graph.toml"), DRILLED).unwrap();
    for s in ["api", "db"] {
        std::fs::write(dir.join("playbooks").join(format!("{s}.toml")), PLAYBOOK).unwrap();
    }
    // No run history yet: one note, exit 0.
    let (code, out) = stdout(meeseeks().arg("audit").arg(&dir).args(["--format", "json"]));
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(v["findings"][0]["severity"], "info");

    // A drill, 10 days ago, in which db recovered and api failed.
    let when = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(240);
    let sd = StateDir::open(&dir.join(".meeseeks")).unwrap();
    let meta = RunMeta::new::<&str, &[u8]>(
        "20261116T000000Z-abcd",
        &RunConfig::new(Mode::Drill),
        &dir,
        when,
        &[],
    );
    let (rd, lock) = sd.begin_run(&meta).unwrap();
    let masker = meeseeks::mask::Masker::new();
    for ev in [
        Event::RunStarted {
            run_id: meta.run_id.clone(),
            mode: Mode::Drill,
            dir: dir.display().to_string(),
            declared_at: when,
            services: vec!["api".into(), "db".into()],
            options: Box::new(RunConfig::new(Mode::Drill)),
            input_hash: String::new(),
            plan: Vec::new(),
            holder: None,
        },
        Event::ServiceRecovered {
            service: "db".into(),
            recovered_s: 60.0,
        },
        Event::ServiceFailed {
            service: "api".into(),
            error: "boom".into(),
        },
    ] {
        append_sync(&rd.path, &lock, ev, &masker).unwrap();
    }
    drop(lock);
    let (code, out) = stdout(meeseeks().arg("audit").arg(&dir).args(["--format", "json"]));
    assert_eq!(code, 0, "warnings only: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{out}");
    assert_eq!(f[0]["id"], "drill-stale");
    assert_eq!(f[0]["service"], "api");
    assert_eq!(f[0]["message"], "never successfully drilled");
    // With a 5-day limit the db drill is stale too.
    let (_, out) = stdout(meeseeks().arg("audit").arg(&dir).args([
        "--drill-max-age",
        "5d",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_sends_new_dependents_to_subscribed_webhooks() {
    use axum::{Router, extract::State, routing::post};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, serde_json::Value)>();
    let app = Router::new()
        .route(
            "/{name}",
            post(
                |State(tx): State<
                    tokio::sync::mpsc::UnboundedSender<(String, serde_json::Value)>,
                >,
                 axum::extract::Path(name): axum::extract::Path<String>,
                 body: axum::body::Bytes| async move {
                    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let _ = tx.send((name, v));
                    "ok"
                },
            ),
        )
        .with_state(tx);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });

    let t = tempfile::tempdir().unwrap();
    let old = t.path().join("old.toml");
    std::fs::write(&old, OLD).unwrap();
    let hooks = format!(
        "[[notify]]\nurl = \"http://{addr}/wanted\"\nevents = [\"graph.new_dependents\"]\n\n\
         [[notify]]\nurl = \"http://{addr}/unrelated\"\nevents = [\"run.started\"]\n\n\
         [[notify]]\nurl = \"http://{addr}/slack\"\nevents = [\"graph.new_dependents\"]\nformat = \"slack\"\n"
    );
    let new = t.path().join("graph.toml");
    std::fs::write(&new, format!("{hooks}{}", new_graph())).unwrap();
    let mut cmd = meeseeks();
    cmd.arg("diff").arg(&old).arg(&new);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The binary has exited: every delivery it made is already in the channel.
    let mut got = Vec::new();
    while let Ok(x) = rx.try_recv() {
        got.push(x);
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["slack", "wanted"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        got[0].1["text"]
            .as_str()
            .unwrap()
            .contains("payments gained 1 dependent(s): fraud")
    );
    assert_eq!(got[1].1["event"], "graph.new_dependents");
    assert_eq!(
        got[1].1["new_dependents"]["payments"],
        serde_json::json!(["fraud"])
    );

    // --no-notify: nothing sent.
    let mut cmd = meeseeks();
    cmd.arg("diff").arg(&old).arg(&new).arg("--no-notify");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(rx.try_recv().is_err());
}

/// The DOT export is accepted by Graphviz (skipped when `dot` is not installed).
#[test]
fn dot_export_renders_with_graphviz() {
    let Ok(probe) = std::process::Command::new("dot").arg("-V").output() else {
        eprintln!("skipped: Graphviz `dot` not installed");
        return;
    };
    assert!(probe.status.success());
    let t = tempfile::tempdir().unwrap();
    let dir = dr_dir(t.path(), "dr", &new_graph());
    for direction in ["lr", "td"] {
        let (code, out) = stdout(
            meeseeks()
                .arg("graph")
                .arg(&dir)
                .args(["--direction", direction]),
        );
        assert_eq!(code, 0);
        let svg = render_dot(&t.path().join("g.dot"), &out);
        assert!(
            svg.contains("<svg") && svg.contains("orders&#45;db"),
            "{svg}"
        );
    }
}

/// Graphviz renders `dot` (written to `file`) as SVG without complaint; the SVG.
fn render_dot(file: &Path, dot: &str) -> String {
    std::fs::write(file, dot).unwrap();
    let svg = Command::new("dot").arg("-Tsvg").arg(file).output().unwrap();
    assert!(
        svg.status.success(),
        "{}",
        String::from_utf8_lossy(&svg.stderr)
    );
    String::from_utf8_lossy(&svg.stdout).into_owned()
}

/// `diff --format dot|mermaid|html` draws the change: Graphviz renders the DOT with the
/// colours, headless Chromium the HTML (each skipped when absent).
#[test]
fn diff_drawings_render() {
    let t = tempfile::tempdir().unwrap();
    let old = dr_dir(t.path(), "old", OLD);
    let new = dr_dir(t.path(), "new", &new_graph());
    let draw = |format: &str, extra: &[&str]| {
        let (code, out) = stdout(
            meeseeks()
                .arg("diff")
                .arg(&old)
                .arg(&new)
                .args(["--no-notify", "--format", format])
                .args(extra),
        );
        assert_eq!(code, 1, "new dependents: exit 1 whatever the format");
        out
    };
    let mermaid = draw("mermaid", &[]);
    assert!(mermaid.contains("classDef added fill:#dafbe1"), "{mermaid}");
    assert!(
        mermaid.contains("fraud<br/>tier 1 · RTO 1h\"]:::added"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("orders<br/>RTO 30m → 25m\"]:::changed"),
        "{mermaid}"
    );

    let dot = draw("dot", &["--context", "0"]);
    assert!(
        !dot.contains("\"recs\""),
        "context 0: only what changed\n{dot}"
    );
    let dot = draw("dot", &["--context", "all"]);
    assert!(dot.contains("\"recs\""), "{dot}");
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        let svg = render_dot(&t.path().join("diff.dot"), &dot);
        // The added edge is green, the changed service amber.
        assert!(svg.contains("stroke=\"#1a7f37\""), "{svg}");
        assert!(svg.contains("fill=\"#fff8c5\""), "{svg}");
    } else {
        eprintln!("skipped the Graphviz rendering: `dot` not installed");
    }

    let html_path = t.path().join("diff.html");
    let (code, _) = stdout(
        meeseeks()
            .arg("diff")
            .arg(&old)
            .arg(&new)
            .args(["--no-notify", "--format", "html", "--out"])
            .arg(&html_path),
    );
    assert_eq!(code, 1);
    let Some(dom) = chromium::dump_dom(&html_path) else {
        return;
    };
    assert_eq!(dom.matches("<svg").count(), 1, "{dom}");
    assert_eq!(dom.matches("class=\"node added\"").count(), 1, "{dom}");
    assert_eq!(dom.matches("class=\"node changed\"").count(), 1, "{dom}");
    assert!(dom.contains("class=\"edge added essential\""), "{dom}");
    assert!(dom.contains("<code>payments</code>: fraud"), "{dom}");
}

/// `verify --suggest` prints TOML that, applied, declares what traffic showed.
#[test]
fn verify_suggest_prints_toml() {
    let t = tempfile::tempdir().unwrap();
    let dir = dr_dir(t.path(), "dr", OLD);
    let obs = t.path().join("obs.csv");
    std::fs::write(
        &obs,
        "checkout,orders,10\ncheckout,recs,3\norders,payments,7\n",
    )
    .unwrap();
    let (code, out) = stdout(
        meeseeks()
            .arg("verify")
            .arg("--observed")
            .arg(&obs)
            .arg(&dir)
            .arg("--suggest"),
    );
    assert_eq!(code, 1, "{out}");
    let doc: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(
        doc["services"]["orders"]["depends_on"],
        toml::Value::Array(vec!["orders-db".into(), "payments".into()])
    );
    assert_eq!(doc["services"].as_table().unwrap().len(), 1, "{out}");
}

/// The bundled shop has one ZooKeeper ensemble under Kafka: its loss is exactly the default
/// 30 % share of the graph, and a share equal to the threshold is a SPOF (README, "Keeping the
/// graph honest"). `--allow spof` accepts it.
#[test]
fn audit_shop_reports_zookeeper_as_spof_at_the_threshold() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let (code, out) = stdout(
        meeseeks()
            .arg("audit")
            .arg(&shop)
            .args(["--format", "json"]),
    );
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let spofs: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "spof")
        .map(|f| f["service"].as_str().unwrap())
        .collect();
    assert_eq!(spofs, ["zookeeper"], "{out}");
    let (code, out) = stdout(meeseeks().arg("audit").arg(&shop).args(["--allow", "spof"]));
    assert_eq!(code, 0, "{out}");
}
