//! Secrets end to end (issue 12 items 3 and 4): every value derived from a secret is masked in
//! dry-run output, logs, the journal and reports; a secret in a URL does not leak through an
//! HTTP error; steps get secrets through their environment, not their arguments; a missing
//! secret stops `run` before anything executes.

mod common;
use common::write;

use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "Tok3n/Value with space";

/// The binary in `dir`, with the secret in its environment.
fn meeseeks(dir: &Path) -> Command {
    let mut c = common::meeseeks_in(dir);
    c.env("MS_TOKEN", SECRET);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every form the templates below derive from `SECRET`, and the encodings they leave in.
fn derived() -> Vec<String> {
    let rev: String = SECRET.chars().rev().collect();
    vec![
        SECRET.to_string(),
        SECRET.to_uppercase(),
        SECRET[4..].to_string(),
        rev,
        SECRET.replace('o', "0"),
        "Tok3n%2FValue%20with%20space".into(),
        "Tok3n/Value%20with%20space".into(),
        "Tok3n".into(),
        "with space".into(),
    ]
}

/// The journal of the only run in `dir`.
fn journal(dir: &Path) -> String {
    let run = std::fs::read_dir(dir.join(".meeseeks/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_to_string(run.join("journal.jsonl")).unwrap()
}

fn assert_clean(what: &str, s: &str) {
    for d in derived() {
        assert!(!s.contains(&d), "{what} leaks `{d}`:\n{s}");
    }
}

const FILTERS: &str = r#"
[[steps]]
name = "derived"
run = "echo U={{ secret.MS_TOKEN | upper }} S={{ secret.MS_TOKEN[4:] }} R={{ secret.MS_TOKEN | reverse }} P={{ secret.MS_TOKEN | replace('o', '0') }} C={{ 'pre-' ~ secret.MS_TOKEN ~ '-post' }} E={{ secret.MS_TOKEN | urlencode }} J={{ secret.MS_TOKEN | tojson }}; exit 3"
"#;

fn graph(dir: &Path, extra: &str) {
    write(
        dir,
        "graph.toml",
        &format!(
            r#"
[services.api]
tier = 0
rto = "5m"
{extra}"#
        ),
    );
}

#[test]
fn derived_values_are_masked_in_dry_run_journal_logs_and_reports() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    graph(dir, "");
    write(dir, "playbooks/api.toml", FILTERS);

    let dry = meeseeks(dir)
        .args(["run", "--dry-run", "."])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("U=***"), "{}", text(&dry));
    assert_clean("dry-run output", &text(&dry));

    // A real run: the step echoes every derived form and fails, so its output is journaled.
    let run = meeseeks(dir)
        .args(["--log-format", "json", "-v", "run", "."])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_clean("run output and logs", &text(&run));
    let journal = journal(dir);
    assert!(journal.contains("U=***"), "{journal}");
    assert_clean("journal", &journal);
    for format in ["text", "json", "markdown", "html", "junit"] {
        let r = meeseeks(dir)
            .args(["report", "--format", format])
            .output()
            .unwrap();
        // 1: the run failed (on purpose).
        assert_eq!(r.status.code(), Some(1), "{}", text(&r));
        assert_clean(&format!("report --format {format}"), &text(&r));
    }
}

#[test]
fn a_secret_in_a_url_does_not_leak_through_the_http_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // A port nobody listens on: the request fails with a connection error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    graph(dir, "");
    write(
        dir,
        "playbooks/api.toml",
        &format!(
            r#"
[[steps]]
name = "call"
http = {{ url = "http://127.0.0.1:{port}/v1/{{{{ secret.MS_TOKEN }}}}?t={{{{ secret.MS_TOKEN }}}}" }}
"#
        ),
    );
    let run = meeseeks(dir).args(["run", "."]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_clean("run output", &text(&run));
    let journal = journal(dir);
    assert!(journal.contains("step.failed"), "{journal}");
    assert_clean("journal", &journal);
}

#[test]
fn steps_get_secrets_through_env_not_argv() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    graph(dir, "");
    write(
        dir,
        "playbooks/api.toml",
        r#"
[[steps]]
name = "use the password"
cmd = ["sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline > argv.txt; printf %s \"$PGPASSWORD\" > pw.txt"]
env = { PGPASSWORD = "{{ secret.MS_TOKEN }}", PGHOST = "db1" }
"#,
    );
    let dry = meeseeks(dir)
        .args(["run", "--dry-run", "."])
        .output()
        .unwrap();
    assert!(
        text(&dry).contains("(env PGHOST=db1 PGPASSWORD='***')"),
        "{}",
        text(&dry)
    );
    let run = meeseeks(dir).args(["run", "."]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(std::fs::read_to_string(dir.join("pw.txt")).unwrap(), SECRET);
    let argv = std::fs::read_to_string(dir.join("argv.txt")).unwrap();
    assert!(argv.contains("printf"), "{argv}");
    assert!(
        !argv.contains("Tok3n"),
        "the secret is visible in ps: {argv}"
    );
}

#[test]
fn env_on_a_step_is_validated() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    graph(dir, "");
    write(
        dir,
        "playbooks/api.toml",
        r#"
[[steps]]
name = "bad name"
run = "true"
env = { "1X" = "a" }

[[steps]]
name = "no process"
wait = "1s"
env = { A = "b" }

[[steps]]
name = "undefined"
run = "true"
env = { A = "{{ nope }}" }
"#,
    );
    let v = meeseeks(dir).args(["validate", "."]).output().unwrap();
    let t = text(&v);
    assert_eq!(v.status.code(), Some(2), "{t}");
    assert!(
        t.contains("`1X` is not an environment variable name"),
        "{t}"
    );
    assert!(t.contains("`env` has no effect on a `wait` step"), "{t}");
    assert!(t.contains("undefined template variable `nope`"), "{t}");
}

#[test]
fn a_missing_secret_stops_run_and_resume_before_anything_executes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "graph.toml",
        r#"
[[notify]]
url = "http://127.0.0.1:9/hook/{{ secret.MS_HOOK }}"

[services.db]
tier = 0
rto = "5m"

[services.api]
tier = 1
rto = "5m"
depends_on = ["db"]
"#,
    );
    write(
        dir,
        "playbooks/db.toml",
        "[[steps]]\nname = \"first\"\nrun = \"touch ran-db\"\n",
    );
    write(
        dir,
        "playbooks/api.toml",
        r#"
[[steps]]
name = "call"
run = "touch ran-api; echo {{ secret.MS_MISSING }}"

[[checks]]
name = "up"
cmd = ["test", "{{ env.MS_MISSING_ENV }}"]
"#,
    );
    let run = meeseeks(dir).args(["run", "."]).output().unwrap();
    let t = text(&run);
    assert_eq!(run.status.code(), Some(2), "{t}");
    assert!(!dir.join("ran-db").exists(), "a step ran: {t}");
    assert!(
        !dir.join(".meeseeks/runs").exists(),
        "a run was started: {t}"
    );
    assert!(
        t.contains("secret.MS_MISSING: used at playbooks/api.toml:2 (api, step \"call\")"),
        "{t}"
    );
    assert!(
        t.contains("env.MS_MISSING_ENV: used at playbooks/api.toml:6 (api, check \"up\")"),
        "{t}"
    );
    assert!(
        t.contains("secret.MS_HOOK: used at graph.toml:2 ([[notify]] #1)"),
        "{t}"
    );
    // Dry-run and validate only warn (the dry-run's step that needs the secret cannot be
    // rendered, and says so).
    let dry = meeseeks(dir)
        .args(["run", "--dry-run", "."])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(
        text(&dry).contains("not set in the environment: api: secret.MS_MISSING"),
        "{}",
        text(&dry)
    );
    let v = meeseeks(dir).args(["validate", "."]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));

    // Resume too: a run that failed for another reason, resumed in a shell without the secret.
    write(
        dir,
        "playbooks/api.toml",
        "[[steps]]\nname = \"call\"\nrun = \"touch ran-api; exit 1\"\n",
    );
    let run = meeseeks(dir)
        .env("MS_HOOK", "h00k")
        .args(["run", "."])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    write(
        dir,
        "playbooks/api.toml",
        "[[steps]]\nname = \"call\"\nrun = \"touch ran-again; echo {{ secret.MS_MISSING }}\"\n",
    );
    let resume = meeseeks(dir).args(["resume"]).output().unwrap();
    let t = text(&resume);
    assert_eq!(resume.status.code(), Some(2), "{t}");
    assert!(t.contains("secret.MS_MISSING: used at"), "{t}");
    assert!(t.contains("secret.MS_HOOK: used at graph.toml:2"), "{t}");
    assert!(!dir.join("ran-again").exists(), "{t}");
}
