//! `meeseeks history`: the real binary on a git repository built in the test, commit by
//! commit (dates fixed through GIT_AUTHOR_DATE / GIT_COMMITTER_DATE), and the HTML page
//! opened in headless Chromium.

mod common;
use common::meeseeks;

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

#[path = "common/chromium.rs"]
mod chromium;

fn has(program: &str) -> bool {
    Proc::new(program).arg("--version").output().is_ok()
}

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    day: u32,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(root.join("dr")).unwrap();
        let r = Repo {
            _tmp: tmp,
            root,
            day: 0,
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    fn git(&self, args: &[&str]) {
        let date = format!("2026-10-{:02}T12:00:00Z", self.day.max(1));
        let out = Proc::new("git")
            .current_dir(&self.root)
            .args([
                "-c",
                "user.email=sre@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.root.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes `files` (paths under dr/) and commits them as `author`, one day after the last.
    fn commit(&mut self, author: &str, msg: &str, files: &[(&str, &str)]) {
        self.day += 1;
        for (p, text) in files {
            let path = self.root.join("dr").join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            &format!("user.name={author}"),
            "commit",
            "-q",
            "-m",
            msg,
        ]);
    }

    fn dr(&self) -> PathBuf {
        self.root.join("dr")
    }
}

const V1: &str = "[services.db]\ntier = 0\nrto = \"20m\"\n\n[services.api]\ntier = 1\nrto = \"30m\"\ndepends_on = [\"db\"]\n";

fn v2() -> String {
    V1.replace("rto = \"20m\"", "rto = \"15m\"\nwatch = true")
        + "\n[services.web]\ntier = 1\ndepends_on = [\"api\"]\nsoft_depends_on = [\"recs\"]\n\n[services.recs]\ntier = 3\n"
}

fn v3() -> String {
    v2().replace("tier = 3\n", "tier = 2\n")
        + "\n[services.fraud]\ntier = 2\ndepends_on = [\"db\"]\n"
}

/// graph created (Ada) · web and recs, db watched (Bea) · a playbook only · a broken graph ·
/// fixed, with fraud -> db and recs tier 3 → 2 (Cy).
fn repo() -> Repo {
    let mut r = Repo::new();
    r.commit("Ada", "graph created", &[("graph.toml", V1)]);
    r.commit("Bea", "web and recs", &[("graph.toml", &v2())]);
    r.commit(
        "Bea",
        "db playbook",
        &[(
            "playbooks/db.toml",
            "[[steps]]\nname = \"x\"\nrun = \"true\"\n",
        )],
    );
    r.commit(
        "Cy",
        "half-done edit",
        &[("graph.toml", &(v2() + "[services.oops\n"))],
    );
    r.commit("Cy", "fraud scoring", &[("graph.toml", &v3())]);
    r
}

fn history(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = meeseeks()
        .arg("history")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_commit_by_commit_oldest_first() {
    if !has("git") {
        eprintln!("skipped: no git on PATH");
        return;
    }
    let r = repo();
    let (code, out, err) = history(&r.dr(), &["--format", "json", "--watch", "api"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.history/v1");
    let c = v["commits"].as_array().unwrap();
    let summaries: Vec<&str> = c.iter().map(|c| c["summary"].as_str().unwrap()).collect();
    // The playbook-only commit changed no graph file: left out.
    assert_eq!(
        summaries,
        [
            "graph created",
            "web and recs",
            "half-done edit",
            "fraud scoring"
        ]
    );
    assert_eq!(c[0]["author"], "Ada");
    assert_eq!(c[0]["date"], "2026-10-01T12:00:00Z");
    assert_eq!(c[0]["commit"].as_str().unwrap().len(), 40);
    assert_eq!(
        (c[0]["services"].as_u64(), c[0]["edges"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(c[0]["services_added"], serde_json::json!(["api", "db"]));

    assert_eq!(c[1]["services_added"], serde_json::json!(["recs", "web"]));
    assert_eq!(
        c[1]["edges_added"],
        serde_json::json!([
            {"from": "web", "to": "api", "kind": "essential"},
            {"from": "web", "to": "recs", "kind": "optional"}
        ])
    );
    assert_eq!(c[1]["changed"][0]["service"], "db");
    assert_eq!(c[1]["changed"][0]["field"], "rto_s");
    assert_eq!(c[1]["changed"][0]["new"], 900.0);
    // db became watched in this commit: web is its new (transitive) dependent; api is
    // --watch'ed and gains web.
    assert_eq!(c[1]["new_dependents"]["db"], serde_json::json!(["web"]));
    assert_eq!(c[1]["new_dependents"]["api"], serde_json::json!(["web"]));
    assert_eq!(c[1]["dependents"]["api"], 1);

    // The broken commit is listed with its located error; the size stays the last valid one.
    let e = c[2]["error"].as_str().unwrap();
    assert!(e.starts_with("dr/graph.toml:"), "{e}");
    assert_eq!(c[2]["services"], 4);

    // Compared with the last valid graph.
    assert_eq!(c[3]["services_added"], serde_json::json!(["fraud"]));
    assert_eq!(c[3]["new_dependents"]["db"], serde_json::json!(["fraud"]));
    assert_eq!(c[3]["changed"][0]["service"], "recs");
    assert_eq!(c[3]["changed"][0]["field"], "tier");
    assert_eq!(
        (c[3]["services"].as_u64(), c[3]["edges"].as_u64()),
        (Some(5), Some(4))
    );
    assert!(c[3]["edges_removed"].as_array().unwrap().is_empty());
}

#[test]
fn since_text_and_markdown() {
    if !has("git") {
        eprintln!("skipped: no git on PATH");
        return;
    }
    let r = repo();
    // From the 3rd commit on: the window's first graph is compared with the one before it.
    let (code, out, err) = history(
        &r.dr(),
        &["--since", "2026-10-03T00:00:00Z", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = v["commits"].as_array().unwrap();
    assert_eq!(c.len(), 2, "{out}");
    assert_eq!(c[1]["services_added"], serde_json::json!(["fraud"]));
    assert_eq!(c[1]["new_dependents"]["db"], serde_json::json!(["fraud"]));

    let (code, out, _) = history(&r.dr(), &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("4 commit(s) changed the graph from 2026-10-01 to 2026-10-05: 0 → 5 services, 0 → 4 edges"), "{out}");
    assert!(
        out.contains("  + edges: web -> api, web ~> recs\n"),
        "{out}"
    );
    assert!(out.contains("  ~ db: RTO 20m → 15m\n"), "{out}");
    assert!(out.contains("  ! db gained dependents: fraud\n"), "{out}");
    let (_, md, _) = history(&r.dr(), &["--format", "markdown"]);
    assert!(
        md.contains("| date | commit | author | summary | services | edges | changes |"),
        "{md}"
    );
    assert!(md.contains("| Cy | fraud scoring | 5 | 4 |"), "{md}");
}

#[test]
fn bad_input() {
    if !has("git") {
        eprintln!("skipped: no git on PATH");
        return;
    }
    let r = repo();
    let (code, _, err) = history(&r.dr(), &["--watch", "dbb"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `db`"), "{err}");
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("graph.toml"), V1).unwrap();
    let (code, _, err) = history(plain.path(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("git rev-parse failed"), "{err}");
}

/// The HTML page: self-contained (no script, no external asset), and rendered by headless
/// Chromium with the size chart, one chart per --watch service and a row per commit.
#[test]
fn html_renders_in_headless_chromium() {
    if !has("git") {
        eprintln!("skipped: no git on PATH");
        return;
    }
    let r = repo();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("history.html");
    let (code, _, err) = history(
        &r.dr(),
        &[
            "--format",
            "html",
            "--watch",
            "db,api",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    for forbidden in ["<script", " src=", "href=", "url(", "@import", "<link"] {
        assert!(!page.contains(forbidden), "{forbidden} in the HTML");
    }
    let Some(dom) = chromium::dump_dom(&html) else {
        return;
    };
    // Size chart + one per watched service, each with its lines and a dot per commit.
    assert_eq!(dom.matches("<svg").count(), 3, "{dom}");
    assert_eq!(dom.matches("class=\"line services\"").count(), 1);
    assert_eq!(dom.matches("class=\"dot services\"").count(), 4);
    assert_eq!(dom.matches("class=\"line dependents\"").count(), 2);
    assert!(dom.contains("Dependents of <code>db</code>"), "{dom}");
    // db's dependents over time: api (1) → api, web (2) → unchanged → + fraud (3).
    assert!(dom.contains("db: 3 — "), "{dom}");
    assert_eq!(dom.matches("<tr").count(), 5, "a header and four commits");
    assert!(dom.contains("class=\"invalid\""));
    assert!(dom.contains("class=\"alert\""));
}
