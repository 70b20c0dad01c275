//! `meeseeks validate`: one test per validation rule (library level), plus end-to-end runs of
//! the binary on fixture directories with snapshots of what a person reads.

mod common;

use std::path::Path;

use assert_cmd::Command;
use meeseeks::load::{LoadOptions, Severity, load};

/// Writes a DR directory and returns the (code, line, col) of every diagnostic.
fn problems(graph: &str, playbooks: &[(&str, &str)]) -> Vec<(String, Severity, u32, u32)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("graph.toml"), graph).unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    for (name, text) in playbooks {
        std::fs::write(
            dir.path().join("playbooks").join(format!("{name}.toml")),
            text,
        )
        .unwrap();
    }
    let opts = LoadOptions {
        require_playbooks: true,
        ..Default::default()
    };
    let loaded = load(dir.path(), &opts);
    loaded
        .diags
        .items
        .iter()
        .map(|d| {
            let (l, c) = d
                .file
                .as_ref()
                .map(|f| f.line_col(d.span.start))
                .unwrap_or((0, 0));
            (d.code.to_string(), d.severity, l, c)
        })
        .collect()
}

fn codes(graph: &str, playbooks: &[(&str, &str)]) -> Vec<String> {
    problems(graph, playbooks)
        .into_iter()
        .map(|p| p.0)
        .collect()
}

const OK_PLAYBOOK: &str =
    "[[steps]]\nname = \"start\"\nrun = \"true\"\n\n[[checks]]\ntcp = \"127.0.0.1:1\"\n";

#[test]
fn clean_directory_has_no_problems() {
    let g = "[services.db]\ntier = 0\n\n[services.api]\ntier = 1\ndepends_on = [\"db\"]\n";
    assert!(codes(g, &[("db", OK_PLAYBOOK), ("api", OK_PLAYBOOK)]).is_empty());
}

#[test]
fn toml_syntax_error_is_located() {
    let p = problems("[services.db\ntier = 0\n", &[]);
    assert!(p.iter().any(|x| x.0 == "syntax" && x.2 == 1), "{p:?}");
}

#[test]
fn unknown_keys_in_graph_and_playbook() {
    let g = "[services.db]\ntier = 0\nwath = true\n";
    let pb = "[[steps]]\nname = \"a\"\nrun = \"true\"\ntimeot = \"1m\"\n";
    let p = problems(g, &[("db", pb)]);
    assert!(
        p.contains(&("unknown-key".into(), Severity::Error, 3, 1)),
        "{p:?}"
    );
    assert!(
        p.contains(&("unknown-key".into(), Severity::Error, 4, 1)),
        "{p:?}"
    );
}

#[test]
fn bad_durations() {
    let g = "[services.db]\ntier = 0\nrto = \"soon\"\n";
    let pb = "[[steps]]\nname = \"a\"\nwait = 30\n";
    let c = codes(g, &[("db", pb)]);
    assert_eq!(c.iter().filter(|c| *c == "duration").count(), 2, "{c:?}");
}

#[test]
fn unknown_dependency_and_self_dependency() {
    let g = "[services.db]\ntier = 0\ndepends_on = [\"db\", \"cache\"]\n";
    let c = codes(g, &[("db", OK_PLAYBOOK)]);
    assert!(c.contains(&"self-dependency".to_string()), "{c:?}");
    assert!(c.contains(&"unknown-dependency".to_string()), "{c:?}");
}

#[test]
fn cycles_are_printed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let g = "[services.a]\ntier = 1\ndepends_on = [\"b\"]\n[services.b]\ntier = 1\ndepends_on = [\"c\"]\n[services.c]\ntier = 1\ndepends_on = [\"a\"]\n[services.d]\ntier = 1\n";
    std::fs::write(dir.path().join("graph.toml"), g).unwrap();
    let loaded = load(dir.path(), &LoadOptions::default());
    let cycle: Vec<_> = loaded
        .diags
        .items
        .iter()
        .filter(|d| d.code == "cycle")
        .collect();
    assert_eq!(cycle.len(), 1);
    assert_eq!(cycle[0].message, "dependency cycle: a -> b -> c -> a");
}

#[test]
fn playbook_for_unknown_service_and_service_without_playbook() {
    let g = "[services.db]\ntier = 0\n";
    let c = codes(g, &[("dbb", OK_PLAYBOOK)]);
    assert!(c.contains(&"unknown-playbook".to_string()), "{c:?}");
    assert!(c.contains(&"no-playbook".to_string()), "{c:?}");
}

#[test]
fn missing_playbook_is_a_warning_for_planning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("graph.toml"), "[services.db]\ntier = 0\n").unwrap();
    let loaded = load(dir.path(), &LoadOptions::default());
    assert_eq!(loaded.diags.errors(), 0);
    assert_eq!(loaded.diags.warnings(), 1);
    assert!(loaded.model.is_some());
}

#[test]
fn duplicate_step_names() {
    let pb = "[[steps]]\nname = \"a\"\nrun = \"true\"\n[[steps]]\nname = \"a\"\nrun = \"false\"\n";
    let p = problems("[services.db]\ntier = 0\n", &[("db", pb)]);
    assert!(
        p.contains(&("duplicate-name".into(), Severity::Error, 5, 8)),
        "{p:?}"
    );
}

#[test]
fn step_with_zero_or_several_kinds() {
    let pb = "[[steps]]\nname = \"a\"\n[[steps]]\nname = \"b\"\nrun = \"x\"\ncmd = [\"y\"]\n";
    let c = codes("[services.db]\ntier = 0\n", &[("db", pb)]);
    assert_eq!(c.iter().filter(|c| *c == "step-kind").count(), 2, "{c:?}");
}

#[test]
fn undefined_template_variables() {
    let g = "[vars]\nsite = \"dc2\"\n[services.db]\ntier = 0\n";
    let pb = "[vars]\nn = 3\n[[steps]]\nname = \"a\"\nrun = \"echo {{ site }} {{ n }} {{ service }} {{ env.HOME }} {{ secret.X }} {{ nope }}\"\n";
    let p = problems(g, &[("db", pb)]);
    let undefined: Vec<_> = p.iter().filter(|x| x.0 == "undefined-var").collect();
    assert_eq!(undefined.len(), 1, "{p:?}");
    assert_eq!(undefined[0].2, 5);
}

#[test]
fn nonsense_values() {
    let g = "[defaults]\nparallel = 0\n[services.db]\ntier = -1\nrto = \"0s\"\n";
    let pb = "[[steps]]\nname = \"a\"\ncmd = []\ntimeout = \"0s\"\nretries = -2\nonly = \"sometimes\"\n[[checks]]\ntcp = \"nohost\"\nhealthy_after = 0\n";
    let c = codes(g, &[("db", pb)]);
    // parallel, tier, rto, cmd, timeout, retries, only, tcp, healthy_after
    assert!(c.iter().filter(|c| *c == "value").count() >= 8, "{c:?}");
}

#[test]
fn one_broken_service_does_not_hide_the_next() {
    let g = "[services.a]\ntier = \"zero\"\n[services.b]\ntier = 0\nrto = \"1 fortnight\"\n[services.c]\ntier = 0\nbogus = 1\n";
    let c = codes(
        g,
        &[("a", OK_PLAYBOOK), ("b", OK_PLAYBOOK), ("c", OK_PLAYBOOK)],
    );
    assert!(c.contains(&"type".to_string()));
    assert!(c.contains(&"duration".to_string()));
    assert!(c.contains(&"unknown-key".to_string()));
}

fn bin() -> Command {
    let mut c = Command::from_std(common::meeseeks());
    c.env_remove("TOKEN");
    c
}

#[test]
fn broken_fixture_reports_everything_at_once() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = bin()
        .current_dir(&fixtures)
        .args(["validate", "broken"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"));
    // Several kinds of mistakes in several files, each with file:line:col.
    for needle in [
        "broken/graph.toml:3:12",
        "dependency cycle: a -> b -> c -> a",
        "broken/playbooks/checkout.toml:3:7: undefined template variable `replica`",
        "broken/playbooks/orders-db.toml:7:11",
        "broken/playbooks/ghost.toml:1:1",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    insta::assert_snapshot!("validate_broken", stderr);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let out = bin()
        .args(["validate", "/nonexistent/dr"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot read /nonexistent/dr/graph.toml"),
        "{stderr}"
    );
}

/// Loads a DR directory (graph + playbooks) and returns the load result.
fn load_dir(
    graph: &str,
    playbooks: &[(&str, &str)],
) -> (tempfile::TempDir, meeseeks::load::Loaded) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("graph.toml"), graph).unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    for (name, text) in playbooks {
        let path = dir.path().join("playbooks").join(format!("{name}.toml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let loaded = load(dir.path(), &LoadOptions::default());
    (dir, loaded)
}

#[test]
fn preflight_probes_and_flags_are_read() {
    use meeseeks::model::CheckKind;
    let pb = r#"
[[steps]]
name = "promote"
cmd = ["pg_ctl", "promote"]
preflight = false

[[steps]]
name = "scale"
run = "kubectl scale"

[[checks]]
name = "up"
tcp = "127.0.0.1:5432"
preflight = false

[[preflight]]
name = "replica lag"
cmd = ["sh", "-c", "echo 3"]
max = 5
timeout = "3s"

[[preflight]]
http = { url = "http://127.0.0.1:1/ready", expect_status = 200, expect_body = "ok" }

[[preflight]]
name = "dr site reachable"
tcp = "127.0.0.1:1"
"#;
    let (_d, l) = load_dir("[services.db]\ntier = 0\n", &[("db", pb)]);
    assert!(!l.diags.has_errors(), "{}", l.diags.render(false));
    let m = l.model.unwrap();
    let pb = m.services[0].playbook.as_ref().unwrap();
    assert_eq!(
        pb.steps.iter().map(|s| s.preflight).collect::<Vec<_>>(),
        [false, true]
    );
    assert!(!pb.checks[0].preflight);
    assert_eq!(pb.preflight.len(), 3);
    let lag = &pb.preflight[0];
    assert_eq!(lag.name, "replica lag");
    assert_eq!(lag.max, Some(5.0));
    assert_eq!(lag.timeout, std::time::Duration::from_secs(3));
    assert_eq!(lag.line, 16);
    assert!(matches!(lag.kind, CheckKind::Cmd(_)));
    assert_eq!(pb.preflight[1].name, "http preflight #2");
    assert_eq!(
        pb.preflight[1].timeout,
        meeseeks::model::Preflight::DEFAULT_TIMEOUT
    );
    assert!(matches!(&pb.preflight[1].kind, CheckKind::Http(h) if h.expect_status == [200]));
}

#[test]
fn preflight_mistakes_are_located() {
    let pb = r#"
[[preflight]]
name = "a"
cmd = ["true"]
max = "five"

[[preflight]]
name = "a"
http = { url = "http://x/" }
max = 3

[[preflight]]
name = "c"
wait = "5s"

[[steps]]
name = "s"
run = "true"
preflight = "no"
"#;
    let p = problems("[services.db]\ntier = 0\n", &[("db", pb)]);
    for want in [
        ("type", 5, 7),
        ("duplicate-name", 7, 1),
        ("value", 10, 7),
        ("unknown-key", 14, 1),
        ("check-kind", 12, 1),
        ("type", 19, 13),
    ] {
        assert!(
            p.iter().any(|x| (x.0.as_str(), x.2, x.3) == want),
            "{want:?} not in {p:?}"
        );
    }
}

#[test]
fn backup_check_and_rpo_probe() {
    let g = r#"
[services.db]
tier = 0
stateful = true
backup = { schedule = "15m", retention = "7d", check = "pgbackrest info --output=json | jq -r .last" }

[services.cache]
tier = 1
backup = { schedule = "1h", check = "  " }
"#;
    let db = "[rpo_probe]\ncmd = [\"psql\", \"-Atc\", \"select now()\"]\ntimeout = \"5s\"\n";
    let cache = "[rpo_probe]\nrun = \"redis-cli info\"\n";
    let (_d, l) = load_dir(g, &[("db", db), ("cache", cache)]);
    let p: Vec<(String, u32, u32)> = l
        .diags
        .items
        .iter()
        .map(|d| {
            let (line, col) = d.file.as_ref().unwrap().line_col(d.span.start);
            (d.code.to_string(), line, col)
        })
        .collect();
    assert!(p.contains(&("value".into(), 9, 37)), "{p:?}");
    assert!(p.contains(&("rpo-probe".into(), 1, 1)), "{p:?}");
    let m = l.model.unwrap();
    let db = &m.services[m.id("db").unwrap()];
    assert_eq!(
        db.backup.as_ref().unwrap().check.as_deref(),
        Some("pgbackrest info --output=json | jq -r .last")
    );
    let probe = db.playbook.as_ref().unwrap().rpo_probe.as_ref().unwrap();
    assert_eq!(probe.timeout, std::time::Duration::from_secs(5));
    assert_eq!(probe.line, 1);
}

#[test]
fn preflight_false_on_a_uses_step_applies_to_its_steps() {
    let tmpl = "description = \"d\"\n[[steps]]\nname = \"a\"\nrun = \"true\"\n[[steps]]\nname = \"b\"\nrun = \"true\"\npreflight = true\n";
    let pb = "[[steps]]\nuses = \"mine\"\npreflight = false\n";
    let (_d, l) = load_dir(
        "[services.db]\ntier = 0\n",
        &[("db", pb), ("_templates/mine", tmpl)],
    );
    assert!(!l.diags.has_errors(), "{}", l.diags.render(false));
    let m = l.model.unwrap();
    let steps = &m.services[0].playbook.as_ref().unwrap().steps;
    let flags: Vec<(&str, bool)> = steps
        .iter()
        .map(|s| (s.name.as_str(), s.preflight))
        .collect();
    assert_eq!(flags, [("mine/a", false), ("mine/b", true)]);
}

#[test]
fn notify_accepts_every_event_name() {
    let g = "[[notify]]\nurl = \"https://hooks.example/dr\"\nevents = [\"service.skipped\", \"preflight.changed\", \"graph.new_dependents\", \"servce.skipped\"]\n[services.db]\ntier = 0\n";
    let (_d, l) = load_dir(g, &[]);
    let errors: Vec<_> = l.diags.items.iter().filter(|d| d.code == "value").collect();
    assert_eq!(errors.len(), 1, "{}", l.diags.render(false));
    assert_eq!(errors[0].message, "unknown event `servce.skipped`");
    assert_eq!(
        errors[0].help.as_deref(),
        Some("did you mean `service.skipped`?")
    );
}

/// Thousands of unknown dependencies (a half-imported graph) must not each cost a pass over
/// every service name: only the hints that are printed (the first five of the kind, in file
/// order) are looked for.
#[test]
fn did_you_mean_only_for_the_printed_unknown_dependencies() {
    let mut g = String::new();
    for i in 0..50 {
        g.push_str(&format!("[services.svc-{i:03}]\ntier = 1\n"));
    }
    g.push_str("[services.app]\ntier = 1\ndepends_on = [");
    for i in 0..30 {
        g.push_str(&format!("\"svc-{i:03}x\", "));
    }
    g.push_str("]\n");
    let (_d, l) = load_dir(&g, &[]);
    let helps: Vec<&str> = l
        .diags
        .items
        .iter()
        .filter(|d| d.code == "unknown-dependency")
        .map(|d| d.help.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(helps.len(), 30);
    assert_eq!(helps[0], "did you mean `svc-000`?");
    assert_eq!(helps[4], "did you mean `svc-004`?");
    assert_eq!(helps[5], "declare it with a [services.svc-005x] table");
    assert!(
        helps[5..].iter().all(|h| h.starts_with("declare it")),
        "{helps:?}"
    );
    let shown = l.diags.render(false);
    assert_eq!(shown.matches("did you mean").count(), 5, "{shown}");
    assert!(
        shown.contains("... and 25 more errors of kind [unknown-dependency]"),
        "{shown}"
    );
}

// --- Hostile and mistaken inputs (issue 12): each is a located error, never a panic, a hang
// or a surprise at run time. ---

/// Runs `meeseeks validate DIR` (bounded: a hang is a failure, not a stuck test).
fn validate_dir(dir: &Path) -> (i32, String) {
    let out = bin()
        .args(["validate"])
        .arg(dir)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_problem_past_column_65536_is_shown_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(70_000);
    std::fs::write(
        dir.path().join("graph.toml"),
        format!("[services.a]\ntier = 0\ntags = {{ a = \"{long}\", b = [1] }}\n"),
    )
    .unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("graph.toml:3:70022: `tags.b` must be a string"),
        "{stderr}"
    );
    // The line is shown as a window around the problem, at its real line and column.
    assert!(stderr.contains("graph.toml:3:70022]"), "{stderr}");
    assert!(stderr.contains("…xxx"), "{stderr}");
    assert!(stderr.len() < 4_000, "{} bytes", stderr.len());
}

#[test]
fn an_unterminated_multi_megabyte_string_is_one_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[services.a]\ntier = 0\nowner = \"{}\n[services.b]\ntier = 1\nnote = \"{}",
        "x".repeat(2_000_000),
        "y\n".repeat(50_000)
    );
    std::fs::write(dir.path().join("graph.toml"), text).unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("graph.toml:3:2000010: TOML syntax error"),
        "{stderr}"
    );
    assert!(stderr.len() < 8_000, "{} bytes", stderr.len());
}

#[test]
fn durations_beyond_ten_years_are_errors() {
    let g = "[services.db]\ntier = 0\nrto = \"99999999999h\"\n";
    let pb = "[[steps]]\nname = \"a\"\nrun = \"true\"\n[[checks]]\ntcp = \"127.0.0.1:1\"\ntimeout = \"18446744073709551615s\"\n";
    let p = problems(g, &[("db", pb)]);
    assert!(
        p.contains(&("duration".into(), Severity::Error, 3, 7)),
        "{p:?}"
    );
    assert!(
        p.contains(&("duration".into(), Severity::Error, 6, 11)),
        "{p:?}"
    );
    let (_d, l) = load_dir(g, &[("db", pb)]);
    let shown = l.diags.render(false);
    assert!(
        shown.contains("`rto` = \"99999999999h\" is too long: longer than the maximum of 10y"),
        "{shown}"
    );
}

#[test]
fn urls_that_cannot_be_fetched_are_errors() {
    let g =
        "[vars]\nhost = \"h\"\n[[notify]]\nurl = \"file:///tmp/hook\"\n[services.db]\ntier = 0\n";
    let pb = r#"[[steps]]
name = "a"
http = { url = "not a url" }
[[steps]]
name = "b"
http = { url = "ftp://files.example/x" }
[[steps]]
name = "c"
http = { url = "https://{{ host }}/ok" }
[[steps]]
name = "d"
http = { url = "{{ host }}/unknown-until-rendered" }
[[steps]]
name = "e"
http = { url = "https://" }
[[checks]]
http = { url = "file:///etc/passwd" }
"#;
    let p = problems(g, &[("db", pb)]);
    let urls: Vec<(u32, u32)> = p
        .iter()
        .filter(|x| x.0 == "value")
        .map(|x| (x.2, x.3))
        .collect();
    assert_eq!(
        urls,
        [(4, 7), (3, 16), (6, 16), (15, 16), (17, 16)],
        "{p:?}"
    );
}

#[test]
fn templates_that_only_rendering_would_reject_are_errors() {
    let pb = r#"[vars]
x = "a"
[[steps]]
name = "a"
run = "echo {{ x | uper }}"
[[steps]]
name = "b"
run = "{% include 'other.j2' %}"
[[steps]]
name = "c"
run = "{% if x is flying %}y{% endif %}"
[[steps]]
name = "d"
run = "{{ x | upper | replace('A', 'B') }}{% if x is not defined %}{% endif %}{% filter lower %}X{% endfilter %}"
"#;
    let (_d, l) = load_dir("[services.db]\ntier = 0\n", &[("db", pb)]);
    let msgs: Vec<(String, u32)> = l
        .diags
        .items
        .iter()
        .filter(|d| d.code == "template")
        .map(|d| {
            (
                d.message.clone(),
                d.file.as_ref().unwrap().line_col(d.span.start).0,
            )
        })
        .collect();
    assert_eq!(
        msgs,
        [
            ("unknown template filter `uper`".to_string(), 5),
            (
                "`{% include %}` cannot be used in a playbook".to_string(),
                8
            ),
            ("unknown template test `flying`".to_string(), 11),
        ],
        "{}",
        l.diags.render(false)
    );
}

#[test]
fn commands_that_cannot_run_are_errors() {
    let pb = "[[steps]]\nname = \"a\"\nrun = \"\"\n[[steps]]\nname = \"b\"\ncmd = [\"echo\", \"a\\u0000b\"]\n[[steps]]\nname = \"c\"\ncmd = [\" \"]\n[[steps]]\nname = \"d\"\nrun = \"echo \\u0000\"\n[[checks]]\nrun = \"  \"\n";
    let p = problems("[services.db]\ntier = 0\n", &[("db", pb)]);
    let values: Vec<(u32, u32)> = p
        .iter()
        .filter(|x| x.0 == "value")
        .map(|x| (x.2, x.3))
        .collect();
    assert_eq!(values, [(3, 7), (6, 16), (9, 8), (12, 7), (14, 7)], "{p:?}");
}

#[test]
fn an_empty_playbook_is_an_error() {
    let p = problems(
        "[services.db]\ntier = 0\n[services.web]\ntier = 1\n",
        &[("db", "# to do\n[vars]\nx = 1\n"), ("web", "steps = []\n")],
    );
    let empty: Vec<_> = p.iter().filter(|x| x.0 == "empty-playbook").collect();
    assert_eq!(empty.len(), 2, "{p:?}");
}

#[test]
fn invalid_utf8_is_located_with_the_right_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("graph.toml"),
        b"[services.db]\ntier = 0\nowner = \"caf\xe9\"\n",
    )
    .unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("graph.toml:3:13: invalid UTF-8 (byte 0xE9)"),
        "{stderr}"
    );
    assert!(stderr.contains("re-save this file as UTF-8"), "{stderr}");
    assert!(!stderr.contains("permissions"), "{stderr}");
}

#[test]
fn fifos_devices_and_huge_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.toml");
    let c = std::ffi::CString::new(graph.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("it is a FIFO, not a regular file"),
        "{stderr}"
    );

    std::fs::remove_file(&graph).unwrap();
    std::fs::write(&graph, "[services.db]\ntier = 0\n").unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("playbooks/db.toml")).unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("playbooks/db.toml: it is a device"),
        "{stderr}"
    );

    // A sparse file: its size is refused before anything is read.
    std::fs::remove_file(dir.path().join("playbooks/db.toml")).unwrap();
    let huge = std::fs::File::create(&graph).unwrap();
    huge.set_len(300 << 20).unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("larger than 256 MiB"), "{stderr}");
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(dir.path().join("graph.toml"), deep).unwrap();
    let (code, stderr) = validate_dir(dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("TOML syntax error"), "{stderr}");
    assert!(stderr.len() < 20_000, "{} bytes", stderr.len());
}

#[test]
fn validate_counts_essential_and_optional_dependencies_apart() {
    let dir = tempfile::tempdir().unwrap();
    let g = "[services.db]\ntier = 0\n[services.cache]\ntier = 1\n[services.api]\ntier = 1\ndepends_on = [\"db\"]\nsoft_depends_on = [\"cache\"]\n[services.web]\ntier = 2\ndepends_on = [\"api\", \"db\"]\n";
    std::fs::write(dir.path().join("graph.toml"), g).unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    for s in ["db", "cache", "api", "web"] {
        std::fs::write(dir.path().join(format!("playbooks/{s}.toml")), OK_PLAYBOOK).unwrap();
    }
    let out = bin().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: 4 services, 3 essential + 1 optional dependencies, 4 playbooks"),
        "{stdout}"
    );
}

/// A directory with many playbooks is read on two threads: problems in both halves are still
/// each reported once, where they are, and every good playbook is loaded.
#[test]
fn many_playbooks_read_side_by_side_report_every_problem_in_place() {
    let n = 100;
    let graph: String = (0..n)
        .map(|i| format!("[services.s{i:03}]\ntier = 1\n"))
        .collect();
    let mut books: Vec<(String, String)> = (0..n)
        .map(|i| (format!("s{i:03}"), OK_PLAYBOOK.to_string()))
        .collect();
    books[3].1 = "[[steps]\nname = \"x\"\n".into();
    books[90].1 = "[[steps]]\nname = \"start\"\nrun = \"true\"\nbogus = 1\n".into();
    books.push(("stray".into(), OK_PLAYBOOK.into()));
    let refs: Vec<(&str, &str)> = books
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let found = problems(&graph, &refs);
    let codes: Vec<&str> = found.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "syntax").count(),
        1,
        "{found:?}"
    );
    assert!(codes.contains(&"unknown-key"), "{found:?}");
    assert!(codes.contains(&"unknown-playbook"), "{found:?}");
    // s090's unknown key, at its line 4.
    assert!(
        found.contains(&("unknown-key".into(), Severity::Error, 4, 1)),
        "{found:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("graph.toml"), &graph).unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("playbooks/s{i:03}.toml")),
            OK_PLAYBOOK,
        )
        .unwrap();
    }
    let m = load(dir.path(), &LoadOptions::default()).model.unwrap();
    assert!(m.services.iter().all(|s| s.playbook.is_some()));
}

/// From 64 playbooks on, they are read and parsed on two threads, in blocks of 4 096: each
/// file's diagnostics are still exactly those it gets loaded alone (one thread), in file
/// order, each once.
#[test]
fn many_playbooks_report_as_one_by_one() {
    let n = 4200;
    let broken = |i: usize| match i {
        10 | 4150 => Some("[[steps]\nname = \"a\"\n".to_string()),
        2100 => Some(format!("{OK_PLAYBOOK}bogus = 1\n")),
        4096 => Some("color = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\nx = = 1\n".to_string()),
        _ => None,
    };
    // (file, code, line, col, message) of each diagnostic of a file in `dir`.
    let diags = |dir: &Path| -> Vec<(String, String, u32, u32, String)> {
        let opts = LoadOptions {
            require_playbooks: true,
            ..Default::default()
        };
        load(dir, &opts)
            .diags
            .items
            .iter()
            .filter_map(|d| {
                let f = d.file.as_ref()?;
                let (l, c) = f.line_col(d.span.start);
                let name = f.path.file_name()?.to_string_lossy().to_string();
                Some((name, d.code.to_string(), l, c, d.message.clone()))
            })
            .collect()
    };
    let write_dir = |ids: &[usize]| {
        let dir = tempfile::tempdir().unwrap();
        let g: String = ids
            .iter()
            .map(|i| format!("[services.s{i:04}]\ntier = 1\n"))
            .collect();
        std::fs::write(dir.path().join("graph.toml"), g).unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        for &i in ids {
            let text = broken(i).unwrap_or_else(|| OK_PLAYBOOK.to_string());
            std::fs::write(dir.path().join(format!("playbooks/s{i:04}.toml")), text).unwrap();
        }
        dir
    };
    let all: Vec<usize> = (0..n).collect();
    let got = diags(write_dir(&all).path());
    let mut want = Vec::new();
    for i in (0..n).filter(|&i| broken(i).is_some()) {
        want.extend(diags(write_dir(&[i]).path()));
    }
    assert_eq!(
        want.iter()
            .map(|d| &d.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        4,
        "{want:?}"
    );
    assert_eq!(got, want);
}
