//! `meeseeks init`: the real binary scaffolds a DR directory that fails validation exactly at
//! its TODO placeholders, validates once they are filled, and never overwrites a file.

mod common;

use std::path::Path;

use assert_cmd::Command;

/// The shared command builder, for assert_cmd's `.assert()`.
fn meeseeks() -> Command {
    Command::from_std(common::meeseeks())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn fill(p: &Path, pairs: &[(&str, &str)]) {
    let mut text = read(p);
    for (from, to) in pairs {
        assert!(text.contains(from), "{} lacks {from}:\n{text}", p.display());
        text = text.replace(from, to);
    }
    std::fs::write(p, text).unwrap();
}

#[test]
fn scaffold_validates_once_todos_are_filled_and_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dr");
    let out = meeseeks().arg("init").arg(&dir).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("created  graph.toml"), "{stdout}");
    insta::assert_snapshot!("init_app_db", read(&dir.join("playbooks/app-db.toml")));
    insta::assert_snapshot!("init_app", read(&dir.join("playbooks/app.toml")));

    // Unfilled: validation fails at each placeholder.
    let out = meeseeks().arg("validate").arg(&dir).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("placeholder `TODO_host` still to fill in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("placeholder `TODO_replicas` still to fill in"),
        "{stderr}"
    );
    assert!(stderr.contains("2 errors"), "{stderr}");

    fill(
        &dir.join("playbooks/app-db.toml"),
        &[("\"{{ TODO_host }}\"", "\"pg-dr.internal\"")],
    );
    fill(
        &dir.join("playbooks/app.toml"),
        &[("\"{{ TODO_replicas }}\"", "4")],
    );
    meeseeks().arg("validate").arg(&dir).assert().success();

    // Again: nothing is overwritten, the filled playbooks stay as they are.
    let before: Vec<String> = ["graph.toml", "playbooks/app.toml", "playbooks/app-db.toml"]
        .iter()
        .map(|p| read(&dir.join(p)))
        .collect();
    let out = meeseeks().arg("init").arg(&dir).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("kept     playbooks/app.toml  (exists; not overwritten)"),
        "{stdout}"
    );
    let after: Vec<String> = ["graph.toml", "playbooks/app.toml", "playbooks/app-db.toml"]
        .iter()
        .map(|p| read(&dir.join(p)))
        .collect();
    assert_eq!(before, after);
    meeseeks().arg("validate").arg(&dir).assert().success();
}

#[test]
fn from_an_existing_graph_adds_only_missing_playbooks() {
    let tmp = tempfile::tempdir().unwrap();
    let graph = tmp.path().join("graph.toml");
    std::fs::write(
        &graph,
        r#"
[vars]
dr_site = "dc2"

[services.cache]
tier = 0
tags = { engine = "redis" }

[services.billing]
tier = 1
depends_on = ["cache"]

[services.web]
tier = 1
tags = { platform = "kubernetes" }
"#,
    )
    .unwrap();
    let dir = tmp.path().join("dr");
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    let mine = "[[steps]]\nname = \"mine\"\nrun = \"true\"\n";
    std::fs::write(dir.join("playbooks/web.toml"), mine).unwrap();

    meeseeks()
        .arg("init")
        .arg(&dir)
        .arg("--from")
        .arg(&graph)
        .assert()
        .success();
    assert_eq!(read(&dir.join("graph.toml")), read(&graph));
    assert_eq!(read(&dir.join("playbooks/web.toml")), mine);
    let cache = read(&dir.join("playbooks/cache.toml"));
    assert!(
        cache.contains("uses = \"redis/promote-replica\""),
        "{cache}"
    );
    // No tag suggests a template: a TODO step that fails validation.
    let billing = read(&dir.join("playbooks/billing.toml"));
    assert!(billing.contains("{{ TODO_recovery_steps }}"), "{billing}");
    let out = meeseeks().arg("validate").arg(&dir).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("billing.toml"), "{stderr}");
    assert!(stderr.contains("1 error"), "{stderr}");
    fill(
        &dir.join("playbooks/billing.toml"),
        &[("{{ TODO_recovery_steps }}", "Restart billing workers")],
    );
    meeseeks().arg("validate").arg(&dir).assert().success();
}

#[test]
fn init_reports_an_invalid_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let graph = tmp.path().join("g.toml");
    std::fs::write(&graph, "[services.a]\ntier = 0\ndepends_on = [\"b\"]\n").unwrap();
    let out = meeseeks()
        .arg("init")
        .arg(tmp.path().join("dr"))
        .arg("--from")
        .arg(&graph)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("unknown service `b`"), "{stderr}");
}

#[test]
fn templates_lists_and_shows() {
    let out = meeseeks().arg("templates").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for (name, _) in meeseeks::load::library::builtin() {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
    let out = meeseeks()
        .args(["templates", "k8s/scale"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let head: String = stdout.split("\nsource:").next().unwrap().to_string();
    insta::assert_snapshot!("templates_show_k8s_scale", head);

    let out = meeseeks().args(["templates", "k8s/scal"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("did you mean `k8s/scale`?"), "{stderr}");
}
