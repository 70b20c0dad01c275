//! `meeseeks completions`, `meeseeks man` and `meeseeks schema`: generated from the real
//! definitions, checked by the real consumers (bash/zsh/fish parse the completions, groff
//! renders the page when installed) and the schemas checked against the real files.

mod common;

use std::path::{Path, PathBuf};

fn meeseeks(args: &[&str]) -> String {
    let out = common::meeseeks().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn completions_parse_in_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [
        ("bash", ["bash", "-n"]),
        ("zsh", ["zsh", "-n"]),
        ("fish", ["fish", "-n"]),
    ] {
        let script = meeseeks(&["completions", shell]);
        for sub in ["history", "import", "schema", "completions", "plan"] {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
        let f = dir.path().join(format!("meeseeks.{shell}"));
        std::fs::write(&f, &script).unwrap();
        match std::process::Command::new(check[0])
            .arg(check[1])
            .arg(&f)
            .output()
        {
            Ok(o) => assert!(
                o.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(_) => eprintln!("skipped the {shell} syntax check: no {shell} on PATH"),
        }
    }
    // bash: the function is registered for the command once sourced.
    let f = dir.path().join("meeseeks.bash");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p meeseeks", f.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("meeseeks"),
        "{o:?}"
    );
    for shell in ["elvish", "powershell"] {
        assert!(meeseeks(&["completions", shell]).contains("history"));
    }
}

#[test]
fn man_pages() {
    let page = meeseeks(&["man"]);
    assert!(page.contains(".TH meeseeks 1"), "{page}");
    assert!(page.contains("history") && page.contains("import"));
    let plan = meeseeks(&["man", "plan"]);
    assert!(plan.contains(".TH meeseeks-plan 1"), "{plan}");
    assert!(plan.contains("\\-\\-format"), "{plan}");
    let out = common::meeseeks().args(["man", "plam"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `plan`"));
    // groff renders it as man(1) would, through preconv (-k) for UTF-8 (skipped when absent).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("meeseeks.1");
    std::fs::write(&f, &page).unwrap();
    match std::process::Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww"])
        .arg(&f)
        .output()
    {
        Ok(o) => {
            assert!(o.status.success());
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("Disaster-recovery  orchestration"), "{text}");
            assert!(
                !String::from_utf8_lossy(&o.stderr).contains("warning"),
                "{o:?}"
            );
        }
        Err(_) => eprintln!("skipped the groff rendering: no groff on PATH"),
    }
}

fn schema(kind: &str) -> jsonschema::Validator {
    let s: serde_json::Value = serde_json::from_str(&meeseeks(&["schema", kind])).unwrap();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(&s).unwrap()
}

/// A TOML file as the JSON a TOML language server checks against the schema.
fn as_json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    v.iter_errors(&as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn schemas_accept_the_real_files() {
    let graph = schema("graph");
    let playbook = schema("playbook");
    let mut checked = 0;
    for dir in ["examples/shop", "tests/fixtures/plan-shop"] {
        let g = std::fs::read_to_string(root().join(dir).join("graph.toml")).unwrap();
        assert_eq!(errors(&graph, &g), Vec::<String>::new(), "{dir}/graph.toml");
        for p in toml_files(&root().join(dir).join("playbooks")) {
            let e = errors(&playbook, &std::fs::read_to_string(&p).unwrap());
            assert!(e.is_empty(), "{}: {e:?}", p.display());
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} playbooks checked");
}

#[test]
fn schemas_reject_typos_and_know_the_new_keys() {
    let graph = schema("graph");
    let e = errors(&graph, "[services.a]\ntier = 0\ndepend_on = [\"b\"]\n");
    assert!(e.iter().any(|e| e.contains("depend_on")), "{e:?}");
    assert!(
        !errors(&graph, "[services.a]\nrto = \"1h\"\n").is_empty(),
        "tier is required"
    );
    assert!(!errors(&graph, "[services.a]\ntier = 0\nrto = \"soon\"\n").is_empty());
    assert!(!errors(&graph, "[defaults]\nparalel = 4\n").is_empty());
    assert!(
        !errors(
            &graph,
            "[[notify]]\nurl = \"https://x\"\nevents = [\"run.start\"]\n"
        )
        .is_empty()
    );
    let ok = "include = [\"teams/*.toml\"]\n[state]\nstore = \"etcd://127.0.0.1:2379/dr\"\n[services.db]\ntier = 0\nstateful = true\nbackup = { schedule = \"5m\", check = \"pg-backup-age\" }\n";
    assert_eq!(errors(&graph, ok), Vec::<String>::new());

    let playbook = schema("playbook");
    let e = errors(
        &playbook,
        "[[steps]]\nname = \"x\"\nrun = \"true\"\nretires = 2\n",
    );
    assert!(e.iter().any(|e| e.contains("retires")), "{e:?}");
    assert!(
        !errors(
            &playbook,
            "[[steps]]\nname = \"x\"\nrun = \"a\"\ncmd = [\"b\"]\n"
        )
        .is_empty(),
        "two kinds"
    );
    assert!(
        !errors(&playbook, "[[steps]]\nname = \"x\"\n").is_empty(),
        "no kind"
    );
    assert!(
        !errors(
            &playbook,
            "[[checks]]\nhttp = { url = \"http://x\", expect_status = \"ok\" }\n"
        )
        .is_empty()
    );
    assert!(!errors(&playbook, "[[steps]]\nrun = \"x\"\nonly = \"drills\"\n").is_empty());
    let ok = "[[preflight]]\nname = \"replica reachable\"\ntcp = \"127.0.0.1:5432\"\ntimeout = \"2s\"\n\n[[preflight]]\nname = \"lag\"\ncmd = [\"lag\"]\nmax = \"30s\"\n\n[[preflight]]\nhttp = { url = \"http://x/healthz\" }\nexpect_status = 200\nexpect_body = \"ok\"\n\n[rpo_probe]\nrun = \"date -u\"\ntimeout = \"5s\"\n\n[[steps]]\nname = \"x\"\nrun = \"true\"\npreflight = false\n\n[[steps]]\nuses = \"k8s/scale\"\nwith = { deployment = \"x\", replicas = 2 }\n\n[[checks]]\ntcp = \"127.0.0.1:1\"\npreflight = false\n";
    assert_eq!(errors(&playbook, ok), Vec::<String>::new());
}
