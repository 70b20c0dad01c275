//! Graph fragments (`include = [GLOB, ...]` in graph.toml, SPEC §10): load order, duplicates,
//! diagnostics in the right file, `[vars]` scoping, includes refused where they would loop,
//! and every command giving the same answer on one file or on fragments.

mod common;
use common::{dr, meeseeks};

use std::path::{Path, PathBuf};

use meeseeks::load::{LoadOptions, Loaded, load};

fn loaded(d: &Path) -> Loaded {
    load(d, &LoadOptions::default())
}

/// (code, file relative to the DR directory, line, col) of every diagnostic.
fn located(d: &Path, l: &Loaded) -> Vec<(String, String, u32, u32)> {
    l.diags
        .items
        .iter()
        .map(|x| {
            let (file, (line, col)) = match &x.file {
                Some(f) => (
                    f.path
                        .strip_prefix(d)
                        .unwrap_or(&f.path)
                        .display()
                        .to_string(),
                    f.line_col(x.span.start),
                ),
                None => (String::new(), (0, 0)),
            };
            (x.code.to_string(), file, line, col)
        })
        .collect()
}

#[test]
fn fragments_load_in_a_fixed_order() {
    let d = dr(&[
        (
            "graph.toml",
            "include = [\"teams/*.toml\", \"generated/**/*.toml\", \"teams/a.toml\"]\n[services.core]\ntier = 0\n",
        ),
        (
            "teams/b.toml",
            "[services.b1]\ntier = 1\ndepends_on = [\"a1\"]\n",
        ),
        (
            "teams/a.toml",
            "[services.a1]\ntier = 1\ndepends_on = [\"core\"]\n",
        ),
        ("teams/.a.toml.swp", "not toml"),
        ("generated/x/y/deep.toml", "\n\n[services.deep]\ntier = 2\n"),
        ("generated/top.toml", "[services.gen]\ntier = 2\n"),
    ]);
    let l = loaded(d.path());
    assert!(!l.diags.has_errors(), "{}", l.diags.render(false));
    let m = l.model.unwrap();
    let files: Vec<String> = m.files.iter().map(|f| f.display().to_string()).collect();
    // Globs in the order written, each one's matches sorted; teams/a.toml matched twice,
    // read once; hidden files left out.
    assert_eq!(
        files,
        [
            "graph.toml",
            "teams/a.toml",
            "teams/b.toml",
            "generated/top.toml",
            "generated/x/y/deep.toml"
        ]
    );
    let at = |name: &str| {
        let s = &m.services[m.id(name).unwrap()];
        (files[s.file].as_str(), s.line)
    };
    assert_eq!(at("core"), ("graph.toml", 2));
    assert_eq!(at("a1"), ("teams/a.toml", 1));
    assert_eq!(at("b1"), ("teams/b.toml", 1));
    assert_eq!(at("deep"), ("generated/x/y/deep.toml", 3));
    // Services are in name order whatever file they came from.
    let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a1", "b1", "core", "deep", "gen"]);
    assert_eq!(
        m.services[m.id("b1").unwrap()].depends_on,
        [m.id("a1").unwrap()]
    );
}

#[test]
fn a_service_defined_twice_is_located_in_both_files() {
    let d = dr(&[
        (
            "graph.toml",
            "include = [\"teams/*.toml\"]\n[services.db]\ntier = 0\n",
        ),
        (
            "teams/a.toml",
            "[services.api]\ntier = 1\n\n[services.db]\ntier = 1\n",
        ),
    ]);
    let l = loaded(d.path());
    let dup: Vec<_> = l
        .diags
        .items
        .iter()
        .filter(|x| x.code == "duplicate-service")
        .collect();
    assert_eq!(dup.len(), 1, "{}", l.diags.render(false));
    assert_eq!(
        dup[0].message,
        "service `db` is defined twice: in graph.toml and in teams/a.toml"
    );
    assert!(
        dup[0]
            .help
            .as_deref()
            .unwrap()
            .starts_with("the first definition is at graph.toml:2;"),
        "{:?}",
        dup[0].help
    );
    assert!(
        located(d.path(), &l).contains(&("duplicate-service".into(), "teams/a.toml".into(), 4, 11)),
        "{:?}",
        located(d.path(), &l)
    );
}

#[test]
fn diagnostics_point_into_the_right_fragment() {
    let d = dr(&[
        (
            "graph.toml",
            "include = [\"teams/*.toml\"]\n[services.db]\ntier = 0\ndepends_on = [\"b\"]\n",
        ),
        (
            "teams/a.toml",
            "[services.a]\ntier = 1\ncolour = \"red\"\ndepends_on = [\"db\", \"nope\"]\n",
        ),
        (
            "teams/b.toml",
            "\n[services.b]\ntier = 1\ndepends_on = [\"a\"]\n",
        ),
    ]);
    let l = loaded(d.path());
    let p = located(d.path(), &l);
    for want in [
        ("unknown-key", "teams/a.toml", 3, 1),
        ("unknown-dependency", "teams/a.toml", 4, 21),
        // db -> b -> a -> db: the cycle is reported where its first edge is written.
        ("cycle", "teams/a.toml", 4, 15),
        ("no-playbook", "teams/b.toml", 2, 11),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2, want.3);
        assert!(p.contains(&want), "{want:?} not in {p:?}");
    }
    let shown = l.diags.render(false);
    assert!(
        shown.contains("teams/a.toml:3:1: unknown key `colour`"),
        "{shown}"
    );
}

#[test]
fn fragment_vars_reach_only_their_services() {
    let d = dr(&[
        (
            "graph.toml",
            "include = [\"teams/*.toml\"]\n[vars]\nsite = \"dc2\"\nregion = \"eu\"\n[services.db]\ntier = 0\n",
        ),
        (
            "teams/pay.toml",
            "[vars]\nregion = \"us\"\nteam = \"payments\"\nns = \"pay\"\n[services.pay]\ntier = 1\n",
        ),
        (
            "playbooks/pay.toml",
            "[vars]\nns = \"payments-prod\"\n[[steps]]\nname = \"s\"\nrun = \"echo {{ site }} {{ region }} {{ team }} {{ ns }}\"\n",
        ),
        (
            "playbooks/db.toml",
            "[[steps]]\nname = \"s\"\nrun = \"echo {{ team }}\"\n",
        ),
    ]);
    let l = loaded(d.path());
    let p = located(d.path(), &l);
    // `team` is the payments fragment's: the db playbook (graph.toml's service) cannot see it.
    assert_eq!(
        p,
        [(
            "undefined-var".to_string(),
            "playbooks/db.toml".to_string(),
            3,
            7
        )],
        "{}",
        l.diags.render(false)
    );
    let m = l.model.unwrap();
    let vars = &m.services[m.id("pay").unwrap()]
        .playbook
        .as_ref()
        .unwrap()
        .vars;
    // Fragment above graph.toml, the playbook above the fragment.
    assert_eq!(vars["region"], "us");
    assert_eq!(vars["team"], "payments");
    assert_eq!(vars["ns"], "payments-prod");
    assert!(!vars.contains_key("site"), "graph vars stay in Model::vars");
    assert_eq!(m.vars["region"], "eu");
}

#[test]
fn includes_cannot_loop_or_include_graph_toml() {
    let d = dr(&[
        (
            "graph.toml",
            "include = [\"*.toml\", \"teams/*.toml\"]\n[services.db]\ntier = 0\n",
        ),
        ("extra.toml", "[services.x]\ntier = 1\n"),
        (
            "teams/a.toml",
            "include = [\"../graph.toml\"]\n[defaults]\nrto = \"1h\"\n[services.a]\ntier = 1\n",
        ),
    ]);
    let l = loaded(d.path());
    let p = located(d.path(), &l);
    for want in [
        ("include", "graph.toml", 1, 12),
        ("unknown-key", "teams/a.toml", 1, 1),
        ("unknown-key", "teams/a.toml", 2, 2),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2, want.3);
        assert!(p.contains(&want), "{want:?} not in {p:?}");
    }
    let shown = l.diags.render(false);
    assert!(shown.contains("matches"), "{shown}");
    assert!(
        shown.contains("graph.toml cannot include itself"),
        "{shown}"
    );
    assert!(
        shown.contains("fragments cannot include other files"),
        "{shown}"
    );
    // The other match of the glob still loads.
    let m = l.model.unwrap();
    assert!(m.id("x").is_some() && m.id("a").is_some());
}

#[test]
fn a_glob_matching_nothing_is_a_warning() {
    let d = dr(&[(
        "graph.toml",
        "include = [\"teams/*.toml\", \"/etc/*.toml\", \"[z\"]\n[services.db]\ntier = 0\n",
    )]);
    let l = loaded(d.path());
    let p = located(d.path(), &l);
    assert!(
        l.diags.items.iter().any(|x| x.code == "include"
            && x.severity == meeseeks::load::Severity::Warning
            && x.message == "`teams/*.toml` matches no file"),
        "{p:?}"
    );
    // An absolute glob and an invalid one are errors at their place.
    assert!(
        p.contains(&("include".into(), "graph.toml".into(), 1, 28)),
        "{p:?}"
    );
    assert!(
        p.contains(&("include".into(), "graph.toml".into(), 1, 43)),
        "{p:?}"
    );
}

/// The same graph as one file and as fragments: every command answers the same.
#[test]
fn commands_answer_the_same_on_one_file_or_many() {
    let mut one = String::from("[defaults]\nrto = \"2h\"\n[vars]\nsite = \"dc2\"\n");
    let mut split = vec![(
        "graph.toml".to_string(),
        "include = [\"teams/**/*.toml\"]\n[defaults]\nrto = \"2h\"\n[vars]\nsite = \"dc2\"\n"
            .to_string(),
    )];
    let mut playbooks = Vec::new();
    for t in 0..4 {
        let mut frag = String::new();
        for i in 0..6 {
            let name = format!("t{t}-s{i}");
            let mut table = format!(
                "[services.{name}]\ntier = {}\nrto = \"{}m\"\n",
                t % 3,
                20 + i * 7
            );
            if t > 0 {
                table.push_str(&format!("depends_on = [\"t{}-s{}\"]\n", t - 1, (i + t) % 6));
            }
            if i == 3 {
                table.push_str(&format!(
                    "soft_depends_on = [\"t{}-s0\"]\nwatch = true\n",
                    (t + 1) % 4
                ));
            }
            one.push_str(&table);
            frag.push_str(&table);
            playbooks.push((
                format!("playbooks/{name}.toml"),
                format!("[[steps]]\nname = \"go\"\nrun = \"echo {{{{ site }}}}\"\nestimate = \"{}m\"\n[[checks]]\ntcp = \"127.0.0.1:1\"\n", 1 + i),
            ));
        }
        split.push((format!("teams/t{t}/services.toml"), frag));
    }
    let files = |graph: Vec<(String, String)>| {
        let mut all = graph;
        all.extend(playbooks.iter().cloned());
        all
    };
    let one_dir = dr(&files(vec![("graph.toml".into(), one)])
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect::<Vec<_>>());
    let split_dir = dr(&files(split)
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect::<Vec<_>>());
    let run = |dir: &Path, args: &[&str]| {
        let out = meeseeks().current_dir(dir).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let mut compared = 0;
    for args in [
        &["validate", "."][..],
        &["plan", ".", "--format", "json"],
        &["plan", ".", "--format", "text"],
        &["graph", ".", "--format", "json"],
        &["graph", ".", "--format", "dot"],
        &["audit", ".", "--format", "json"],
        &["deps", "t3-s2", "-C", "."],
        &["impact", "t0-s1", "-C", ".", "--format", "json"],
        &["run", ".", "--dry-run", "--no-progress"],
    ] {
        let a = run(one_dir.path(), args);
        let b = run(split_dir.path(), args);
        assert_eq!(a.0, b.0, "{args:?}: exit codes\n{}\n{}", a.1, b.1);
        // Dry-run output carries a new run id each time: compare without it.
        let clean = |s: &str| -> String {
            s.split(' ')
                .map(|w| {
                    let b = w.as_bytes();
                    if b.len() >= 20 && b[8] == b'T' && w.contains("Z-") {
                        "RUN_ID"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(clean(&a.1), clean(&b.1), "{args:?} differs");
        assert!(!a.1.is_empty(), "{args:?} printed nothing");
        compared += 1;
    }
    assert_eq!(compared, 9);
    let m = loaded(split_dir.path()).model.unwrap();
    assert_eq!(m.files.len(), 5);
    assert_eq!(
        m.files[4],
        PathBuf::from("teams/t3/services.toml"),
        "fragment paths are relative to the DR directory"
    );
}
