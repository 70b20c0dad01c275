//! End-to-end: the real binary on DR directories and lone graph files in a temp dir.

use std::path::Path;

use assert_cmd::Command;

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

fn meeseeks() -> Command {
    let mut c = Command::cargo_bin("meeseeks").unwrap();
    c.env("NO_COLOR", "1");
    c
}

fn stdout(c: &mut Command) -> (i32, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
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
