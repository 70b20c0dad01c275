//! `meeseeks plan` end to end: the real binary on fixture directories, snapshots of what a
//! person reads, the JSON contract, `--strict`, and the HTML report rendered by a real
//! headless browser when one is installed.

mod common;
use common::{copy_dir, fixture};

use std::path::{Path, PathBuf};

fn plan(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::meeseeks()
        .arg("plan")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop")
}

/// The bundled demo: what `meeseeks plan examples/shop` shows a person.
#[test]
fn shop_text_snapshot() {
    let (code, out, err) = plan(&shop(), &["-q"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("shop_text", out);
}

/// A plan measured in minutes shows whole seconds (its 100 ms check intervals once printed
/// `22m0.4s`); the JSON keeps the milliseconds.
#[test]
fn human_times_fit_the_scale_json_keeps_milliseconds() {
    for format in ["text", "markdown", "html"] {
        let (code, out, err) = plan(&shop(), &["--format", format, "-q"]);
        assert_eq!(code, 0, "{err}");
        let fractional = out
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .filter(|w| {
                w.ends_with('s') && w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit())
            })
            .filter(|w| {
                w.trim_end_matches('s')
                    .split(['h', 'm'])
                    .all(|p| p.chars().all(|c| c.is_ascii_digit() || c == '.'))
            })
            .collect::<Vec<_>>();
        assert!(fractional.is_empty(), "{format}: {fractional:?}");
    }
    let (_, json, _) = plan(&shop(), &["--format", "json", "-q"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let fractional = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ready_s"].as_f64().unwrap().fract() != 0.0)
        .count();
    assert!(fractional > 0, "the JSON keeps sub-second times");
}

#[test]
fn shop_markdown_snapshot() {
    let (code, out, err) = plan(&shop(), &["--format", "markdown", "-q"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("shop_markdown", out);
}

#[test]
fn text_report_snapshot() {
    let (code, out, err) = plan(&fixture("plan-shop"), &[]);
    assert_eq!(code, 0, "{err}");
    // The missing playbook is a warning for `plan`, not an error.
    assert!(err.contains("no-playbook"), "{err}");
    insta::assert_snapshot!("plan_shop_text", out);
}

#[test]
fn text_report_eager_snapshot() {
    let (code, out, err) = plan(&fixture("plan-shop"), &["--eager", "-q"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("plan_shop_text_eager", out);
}

#[test]
fn markdown_report_snapshot() {
    let (code, out, err) = plan(&fixture("plan-shop"), &["--format", "markdown", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("```mermaid\ngantt\n"));
    insta::assert_snapshot!("plan_shop_markdown", out);
}

#[test]
fn json_follows_the_schema() {
    let (code, out, err) = plan(&fixture("plan-shop"), &["--format", "json", "-q"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "meeseeks.plan/v1");
    assert_eq!(v["mode"], "waves");
    assert_eq!(v["parallel"], 2);
    assert_eq!(v["makespan_s"], 1590.0);
    assert_eq!(v["makespan_eager_s"], 1530.0);
    assert_eq!(
        v["critical_path"],
        serde_json::json!(["es-cluster", "search", "recommendations"])
    );
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 10);
    for s in services {
        for k in [
            "name",
            "tier",
            "wave",
            "depends_on",
            "start_s",
            "ready_s",
            "rto_s",
            "slack_s",
            "estimate_s",
            "estimate_source",
        ] {
            assert!(s.get(k).is_some(), "{k} missing in {s}");
        }
    }
    let search = services.iter().find(|s| s["name"] == "search").unwrap();
    assert_eq!(search["slack_s"], -30.0);
    assert_eq!(
        v["breaches"],
        serde_json::json!([{ "service": "search", "by_s": 30.0, "chain": ["es-cluster", "search"],
                             "chain_length": 2, "chain_root": "es-cluster",
                             "queued_s": 0.0, "unachievable": true }])
    );
    assert_eq!(search["waited_for"], "es-cluster");
    assert_eq!(search["held"], false);
    // The objective, how good the plan is and how it was found.
    assert_eq!(
        v["objective"],
        serde_json::json!(["rto_breaches", "total_lateness", "makespan"])
    );
    assert_eq!(v["total_lateness_s"], 30.0);
    assert_eq!(v["makespan_lower_bound_s"], 1590.0);
    assert_eq!(v["optimal"], true);
    assert_eq!(v["optimality"], "lower-bound");
    assert_eq!(v["search"]["chosen_by"], "modified-deadline");
    assert_eq!(v["search"]["best_rule"], "modified-deadline");
    assert_eq!(v["search"]["best_rule_breaches"], 1);
    assert_eq!(v["search"]["rules"].as_array().unwrap().len(), 8);
    assert_eq!(v["unachievable"][0]["service"], "search");
    // Same input, byte-identical output.
    let (_, again, _) = plan(&fixture("plan-shop"), &["--format", "json", "-q"]);
    assert_eq!(out, again);
}

#[test]
fn scope_options_select_services_and_their_dependencies() {
    let (code, out, err) = plan(
        &fixture("plan-shop"),
        &["--services", "checkout", "--format", "json", "-q"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "checkout",
            "dns",
            "orders",
            "orders-db",
            "payments",
            "payments-db"
        ]
    );
    assert_eq!(v["services_total"], 10);
    // Tier 0 only: `frontend` still pulls in `search` and `es-cluster` (its essential
    // dependencies), so the breach stays; `recommendations` (tier 2) drops out.
    let (code, out, _) = plan(
        &fixture("plan-shop"),
        &["--max-tier", "0", "--strict", "-q", "--format", "json"],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services_in_scope"], 9);
    let (code, _, err) = plan(&fixture("plan-shop"), &["--services", "chekout", "-q"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `checkout`"), "{err}");
}

#[test]
fn strict_turns_a_predicted_breach_into_exit_1() {
    let (code, _, err) = plan(&fixture("plan-shop"), &["--strict"]);
    assert_eq!(code, 1);
    assert!(err.contains("1 predicted RTO breach"), "{err}");
    // More time for search: es-cluster + search fit in 25m, so --strict passes.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("plan-shop"), dir.path());
    let g = std::fs::read_to_string(dir.path().join("graph.toml")).unwrap();
    let g = g.replace("tier = 1\nrto = \"20m\"", "tier = 1\nrto = \"25m\"");
    std::fs::write(dir.path().join("graph.toml"), g).unwrap();
    let (code, out, err) = plan(dir.path(), &["--strict", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("10 met · 0 breached"), "{out}");
    // --parallel 0 is bad usage.
    let (code, _, _) = plan(dir.path(), &["--parallel", "0", "-q"]);
    assert_eq!(code, 2);
}

#[test]
fn html_is_self_contained() {
    let (code, out, err) = plan(&fixture("plan-shop"), &["--format", "html", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        out.matches("<svg").count(),
        2,
        "a Gantt and a dependency graph"
    );
    for forbidden in ["<script", " src=", "href=", "url(", "@import", "<link"] {
        assert!(!out.contains(forbidden), "{forbidden} in the HTML");
    }
    // RTO deadlines are marked (one per row, `search`'s as missed).
    assert!(out.contains("class=\"rto missed\""));
}

fn browser() -> Option<PathBuf> {
    let names = ["chromium", "chromium-browser", "google-chrome", "chrome"];
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Opens the HTML report in headless Chromium: the DOM it renders holds both SVGs, and the
/// screenshot is a real picture (a blank page compresses to a few KiB). Skipped (with a note)
/// when no browser is installed.
#[test]
fn html_renders_in_a_headless_browser() {
    let Some(chrome) = browser() else {
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("plan.html");
    let (code, _, err) = plan(
        &fixture("plan-shop"),
        &["--format", "html", "--out", html.to_str().unwrap(), "-q"],
    );
    assert_eq!(code, 0, "{err}");
    let flags = |profile: &Path| -> Vec<String> {
        [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,1400",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect()
    };
    let url = format!("file://{}", html.display());
    let dom = std::process::Command::new(&chrome)
        .args(flags(&dir.path().join("p1")))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 2, "{dom}");
    assert!(dom.contains("class=\"bar late\""));
    let png = dir.path().join("plan.png");
    let status = std::process::Command::new(&chrome)
        .args(flags(&dir.path().join("p2")))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(status.status.success());
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(bytes.len() > 30_000, "screenshot of {} bytes", bytes.len());
}

/// What `meeseeks run --dry-run` does is what `meeseeks plan` predicts: every service of the
/// bundled example starts and is ready at its planned time, in both modes, with the default
/// and a smaller parallel cap (the binary plans once and hands the runner the plan's priority
/// list).
#[test]
fn dry_run_follows_the_plan() {
    let times = |v: &serde_json::Value, start: &str, ready: &str| {
        let mut t: Vec<(String, i64, i64)> = v["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let ms = |k: &str| (s[k].as_f64().unwrap() * 1000.0).round() as i64;
                (
                    s["name"].as_str().unwrap().to_string(),
                    ms(start),
                    ms(ready),
                )
            })
            .collect();
        t.sort();
        t
    };
    for flags in [
        &[][..],
        &["--eager"][..],
        &["--parallel", "2"][..],
        &["--eager", "--parallel", "3"][..],
    ] {
        let (code, planned, err) =
            plan(&shop(), &[&["--format", "json", "-q"][..], flags].concat());
        assert_eq!(code, 0, "{err}");
        let (code, ran, err) = common::output(
            common::meeseeks()
                .args([
                    "run",
                    "--dry-run",
                    "--format",
                    "json",
                    "-q",
                    "--no-progress",
                ])
                .arg(shop())
                .args(flags),
        );
        assert_eq!(code, 0, "{err}");
        let planned: serde_json::Value = serde_json::from_str(&planned).unwrap();
        let ran: serde_json::Value = serde_json::from_str(&ran).unwrap();
        assert_eq!(
            times(&planned, "start_s", "ready_s"),
            times(&ran, "started_s", "ready_s"),
            "{flags:?}"
        );
        assert_eq!(planned["makespan_s"], ran["makespan_s"], "{flags:?}");
    }
}
