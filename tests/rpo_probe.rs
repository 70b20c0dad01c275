//! `[rpo_probe]` (SPEC §10), end to end with the real binary: the loader's rules, the probe run
//! once a stateful service has recovered (`rpo.measured` / `rpo.probe_failed` in the journal),
//! the data-loss window in every report format, and the audit's `rpo-exceeded` finding from the
//! run history. The probes here are real commands printing fixed timestamps, so the windows are
//! exact; tests/lab.rs measures real replication.

mod common;
use common::{meeseeks, output, write};

use std::path::Path;
use std::process::Command;

/// stdout and stderr of `c`, which must exit with `code`.
fn stdout_of(c: &mut Command, code: i32) -> String {
    let (got, out, err) = output(c);
    assert_eq!(got, code, "{out}{err}");
    format!("{out}{err}")
}

/// A moment a few seconds ago (whole second + 250 ms, so that the formats are predictable), and
/// the disaster declared 2.5 s after it.
fn moments() -> (jiff::Timestamp, jiff::Timestamp) {
    let now = jiff::Timestamp::now().as_second();
    let newest = jiff::Timestamp::new(now - 4, 250_000_000).unwrap();
    (newest, newest + jiff::SignedDuration::from_millis(2500))
}

/// orders-db: RPO 1s, its probe prints `newest` (2.5 s before the declared disaster:
/// exceeded); sessions: RPO 5s, same probe (met); cache: its probe fails; web: not stateful.
fn dr_dir(dir: &Path, newest: jiff::Timestamp) {
    write(
        dir,
        "graph.toml",
        r#"
[services.orders-db]
tier = 0
rpo = "1s"
stateful = true
backup = { schedule = "1s" }
[services.sessions]
tier = 0
rpo = "5s"
stateful = true
backup = { schedule = "1s" }
[services.cache]
tier = 1
rpo = "5s"
stateful = true
backup = { schedule = "1s" }
[services.web]
tier = 1
depends_on = ["orders-db", "sessions", "cache"]
"#,
    );
    let probe = format!(
        "\n[[steps]]\nname = \"promote\"\ncmd = [\"true\"]\n\n[[checks]]\nname = \"up\"\ncmd = [\"true\"]\n\n[rpo_probe]\ncmd = [\"echo\", \"{newest}\"]\ntimeout = \"5s\"\n"
    );
    write(dir, "playbooks/orders-db.toml", &probe);
    write(dir, "playbooks/sessions.toml", &probe);
    write(
        dir,
        "playbooks/cache.toml",
        "[[steps]]\nname = \"promote\"\ncmd = [\"true\"]\n\n[[checks]]\nname = \"up\"\ncmd = [\"true\"]\n\n[rpo_probe]\nrun = \"echo 'no such table'; exit 3\"\n",
    );
    write(
        dir,
        "playbooks/web.toml",
        "[[steps]]\nname = \"start\"\ncmd = [\"true\"]\n\n[[checks]]\nname = \"up\"\ncmd = [\"true\"]\n",
    );
}

#[test]
fn the_probe_measures_the_window_reports_show_it_and_audit_flags_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (newest, declared) = moments();
    dr_dir(dir, newest);
    let ms = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string();

    // A dry run executes nothing, so it measures nothing.
    let text = stdout_of(
        meeseeks()
            .args(["run", "--dry-run", "--no-progress"])
            .arg(dir),
        0,
    );
    assert!(!text.contains("data-loss window"), "{text}");

    // Before any run, the audit has no measurement to judge.
    let text = stdout_of(meeseeks().arg("audit").arg(dir), 0);
    assert!(!text.contains("rpo-exceeded"), "{text}");

    let text = stdout_of(
        meeseeks()
            .args(["run", "--yes", "--no-progress", "--declared-at"])
            .arg(declared.to_string())
            .arg(dir),
        0,
    );
    assert!(
        text.contains(&format!(
            "orders-db: newest write on the recovered copy {newest}; data-loss window 2.500s (RPO 1s: EXCEEDED by 1.500s)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sessions: newest write on the recovered copy {newest}; data-loss window 2.500s (RPO 5s: met)"
        )),
        "{text}"
    );
    // A failed probe is reported; the service stays recovered, the run succeeds.
    assert!(
        text.contains("cache: RPO not measured: the rpo_probe failed: exit status 3"),
        "{text}"
    );
    assert!(text.contains("| no such table"), "{text}");
    assert!(text.contains("4/4 recovered"), "{text}");

    // The journal: one rpo.measured per probed service, after its checks, before it recovers.
    let runs = dir.join(".meeseeks/runs");
    let run = std::fs::read_dir(&runs).unwrap().flatten().next().unwrap();
    let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pos = |name: &str, svc: &str| {
        events
            .iter()
            .position(|e| e["event"] == name && e["service"] == svc)
            .unwrap_or_else(|| panic!("no {name} for {svc}:\n{journal}"))
    };
    assert!(pos("check.passed", "orders-db") < pos("rpo.measured", "orders-db"));
    assert!(pos("rpo.measured", "orders-db") < pos("service.recovered", "orders-db"));
    let m = &events[pos("rpo.measured", "orders-db")];
    assert_eq!(m["newest"], newest.to_string());
    assert_eq!(m["until"], declared.to_string());
    assert_eq!(m["window_s"], 2.5);
    assert_eq!(m["rpo_s"], 1.0);
    let f = &events[pos("rpo.probe_failed", "cache")];
    assert_eq!(f["error"], "exit status 3");
    assert!(!journal.contains("\"rpo.measured\",\"service\":\"web\""));

    // Reports: the data-loss table (text, markdown, html), the fields (json), a failure (junit).
    let report = |format: &str| {
        stdout_of(
            meeseeks()
                .args(["report", "--format", format, "--dir"])
                .arg(dir),
            0,
        )
    };
    let text = report("text");
    assert!(text.contains("1 RPO exceeded"), "{text}");
    assert!(text.contains("Data loss (measured RPO"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("orders-db") && l.contains("EXCEEDED"))
        .unwrap_or_else(|| panic!("{text}"));
    for cell in [
        &ms(newest),
        &ms(declared),
        "2.500s",
        "1s",
        "EXCEEDED by 1.500s",
    ] {
        assert!(row.contains(cell), "{cell} not in {row:?}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("cache") && l.contains("not measured: exit status 3")),
        "{text}"
    );
    let md = report("markdown");
    assert!(md.contains("## Data loss (measured RPO"), "{md}");
    assert!(
        md.contains(&format!("| sessions | {} |", ms(newest))),
        "{md}"
    );
    let html = report("html");
    assert!(
        html.lines().any(|l| l.starts_with(r#"<tr class="late">"#)
            && l.ends_with("<td>EXCEEDED by 1.500s</td></tr>")),
        "{html}"
    );
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    let svc = |n: &str| {
        json["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(svc("orders-db")["rpo"]["window_s"], 2.5);
    assert_eq!(svc("orders-db")["rpo"]["met"], false);
    assert_eq!(svc("sessions")["rpo"]["met"], true);
    assert_eq!(svc("cache")["rpo"]["error"], "exit status 3");
    assert!(svc("web").get("rpo").is_none());
    let junit = report("junit");
    assert!(
        junit.contains(r#"type="rpo_exceeded""#) && junit.contains("RPO 1s: EXCEEDED by 1.500s"),
        "{junit}"
    );

    // The audit judges the last measurement against the declared RPO.
    let text = stdout_of(meeseeks().arg("audit").arg(dir), 1);
    assert!(text.contains("rpo-exceeded"), "{text}");
    assert!(
        text.contains("the last measured data-loss window, 2.500s, exceeds its RPO of 1s"),
        "{text}"
    );
    let json = stdout_of(meeseeks().args(["audit", "--format", "json"]).arg(dir), 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let found: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "rpo-exceeded")
        .collect();
    assert_eq!(found.len(), 1, "{json}");
    assert_eq!(found[0]["service"], "orders-db");
    assert_eq!(found[0]["severity"], "error");

    // A later measurement within the RPO clears it (the graph now allows 3s).
    let graph = std::fs::read_to_string(dir.join("graph.toml")).unwrap();
    std::fs::write(
        dir.join("graph.toml"),
        graph.replacen("rpo = \"1s\"", "rpo = \"3s\"", 1),
    )
    .unwrap();
    stdout_of(meeseeks().arg("audit").arg(dir), 0);
}

#[test]
fn the_loader_checks_rpo_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "graph.toml",
        "[services.db]\ntier = 0\nstateful = true\nbackup = { schedule = \"1h\" }\n[services.web]\ntier = 1\n[services.cache]\ntier = 1\nstateful = true\nbackup = { schedule = \"1h\" }\n",
    );
    write(
        dir,
        "playbooks/web.toml",
        "[[steps]]\nname = \"s\"\ncmd = [\"true\"]\n\n[rpo_probe]\ncmd = [\"echo\", \"{{ nope }}\"]\n",
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"s\"\ncmd = [\"true\"]\n\n[rpo_probe]\ntimeout = \"5s\"\nretries = 2\n",
    );
    write(
        dir,
        "playbooks/cache.toml",
        "[[steps]]\nname = \"s\"\ncmd = [\"true\"]\n\n[rpo_probe]\nrun = \"echo\"\ncmd = [\"echo\"]\n",
    );
    let text = stdout_of(meeseeks().arg("validate").arg(dir), 2);
    for want in [
        "playbooks/web.toml:5:1: [rpo_probe] is for stateful services: this service is not `stateful = true`",
        "set `stateful = true` on the service in graph.toml",
        "playbooks/db.toml:5:1: [rpo_probe] has no command",
        "unknown key `retries` in [rpo_probe]",
        "playbooks/cache.toml:6:1: [rpo_probe] has several commands: cmd, run",
        "undefined template variable `nope`",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
