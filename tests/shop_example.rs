//! The bundled demo (`examples/shop`) stays loadable, runnable anywhere and audit-clean: these
//! are the properties its README promises, checked on the real files.

use std::collections::{BTreeMap, BTreeSet};

use meeseeks::load::{LoadOptions, load};
use meeseeks::model::{CheckKind, Model, StepKind};

fn shop() -> Model {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let loaded = load(
        &dir,
        &LoadOptions {
            require_playbooks: true,
            ..Default::default()
        },
    );
    assert!(
        loaded.diags.is_empty(),
        "examples/shop must validate without any diagnostic:\n{}",
        loaded.diags.render(false)
    );
    loaded.model.expect("a model")
}

/// Transitive essential dependencies of every service (the graph is small).
fn closure(m: &Model) -> Vec<BTreeSet<usize>> {
    fn visit(m: &Model, id: usize, memo: &mut Vec<Option<BTreeSet<usize>>>) -> BTreeSet<usize> {
        if let Some(s) = &memo[id] {
            return s.clone();
        }
        let mut s = BTreeSet::new();
        for &d in &m.services[id].depends_on {
            s.insert(d);
            s.extend(visit(m, d, memo));
        }
        memo[id] = Some(s.clone());
        s
    }
    let mut memo = vec![None; m.services.len()];
    (0..m.services.len())
        .map(|i| visit(m, i, &mut memo))
        .collect()
}

#[test]
fn validates_cleanly_with_a_playbook_and_a_check_per_service() {
    let m = shop();
    assert!((20..=30).contains(&m.services.len()));
    assert_eq!(m.defaults.parallel, 8);
    for s in &m.services {
        let pb = s.playbook.as_ref().unwrap();
        assert!(!pb.checks.is_empty(), "{} has no check", s.name);
        assert!(
            !pb.cleanup.is_empty(),
            "{} leaves its stand-in running",
            s.name
        );
        // CI has no secrets: the demo must run with an empty environment.
        assert!(pb.secrets.is_empty() && pb.envs.is_empty(), "{}", s.name);
    }
}

#[test]
fn no_rto_inversion_and_backups_within_rpo() {
    let m = shop();
    let deps = closure(&m);
    for (i, s) in m.services.iter().enumerate() {
        for &d in &deps[i] {
            let dep = &m.services[d];
            assert!(
                dep.rto <= s.rto,
                "RTO inversion: {} ({:?}) needs {} ({:?})",
                s.name,
                s.rto,
                dep.name,
                dep.rto
            );
        }
        if s.stateful {
            let b = s
                .backup
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no backup", s.name));
            let rpo = s.rpo.unwrap_or_else(|| panic!("{} has no rpo", s.name));
            assert!(
                b.schedule <= rpo,
                "{}: backup every {:?} > rpo {:?}",
                s.name,
                b.schedule,
                rpo
            );
        }
    }
}

#[test]
fn no_single_service_takes_down_30_percent_of_tier_0() {
    let m = shop();
    let deps = closure(&m);
    let tier0: Vec<usize> = (0..m.services.len())
        .filter(|&i| m.services[i].tier == 0)
        .collect();
    assert!(tier0.len() >= 3);
    for x in 0..m.services.len() {
        let down = tier0
            .iter()
            .filter(|&&t| t == x || deps[t].contains(&x))
            .count();
        assert!(
            (down as f64) < 0.3 * tier0.len() as f64,
            "losing {} takes down {down} of {} tier-0 services",
            m.services[x].name,
            tier0.len()
        );
    }
}

#[test]
fn stand_ins_use_distinct_local_ports_and_are_watched_where_promised() {
    let m = shop();
    let mut owner: BTreeMap<i64, String> = BTreeMap::new();
    for s in &m.services {
        let pb = s.playbook.as_ref().unwrap();
        for key in ["port", "db_port"] {
            if let Some(p) = pb.vars.get(key) {
                let p = p.as_i64().unwrap();
                assert!((18100..=18199).contains(&p), "{}: {key} {p}", s.name);
                if let Some(other) = owner.insert(p, s.name.clone()) {
                    panic!("port {p} used by {other} and {}", s.name);
                }
            }
        }
        let pb_text = format!("{:?}{:?}", pb.steps, pb.checks);
        assert!(
            pb_text.contains("127.0.0.1"),
            "{} must stay on localhost",
            s.name
        );
        // Every check probes the stand-in (no external network in CI).
        for c in &pb.checks {
            assert!(
                matches!(c.kind, CheckKind::Http(_) | CheckKind::Tcp(_)),
                "{}",
                s.name
            );
        }
    }
    let edge = m.vars.get("edge_lb").and_then(|v| v.as_str()).unwrap();
    let edge_port = m.services[m.id("edge-lb").unwrap()]
        .playbook
        .as_ref()
        .unwrap()
        .vars["port"]
        .as_i64()
        .unwrap();
    assert_eq!(
        edge,
        format!("127.0.0.1:{edge_port}"),
        "graph [vars] edge_lb must match"
    );
    let watched: Vec<&str> = m
        .services
        .iter()
        .filter(|s| s.watch)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(watched, ["orders-db", "payments"]);
}

#[test]
fn shows_every_step_kind_and_option() {
    let m = shop();
    let steps: Vec<_> = m
        .services
        .iter()
        .flat_map(|s| s.playbook.as_ref().unwrap().steps.iter())
        .collect();
    let kinds: BTreeSet<&str> = steps.iter().map(|s| s.kind.kind_name()).collect();
    assert_eq!(kinds, BTreeSet::from(["cmd", "http", "manual", "wait"]));
    // Manual steps only in real failovers, so drills never wait for a human.
    for s in &steps {
        if matches!(s.kind, StepKind::Manual(_)) {
            assert_eq!(s.only, Some(meeseeks::model::Mode::Failover), "{}", s.name);
        }
    }
    assert!(
        steps
            .iter()
            .any(|s| s.only == Some(meeseeks::model::Mode::Drill))
    );
    assert!(steps.iter().any(|s| s.optional));
    assert!(steps.iter().any(|s| s.retries > 0));
    assert!(steps.iter().any(|s| !s.idempotent));
}

/// Copies a directory tree (the shop's files are small).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A run hashes the bytes the loader read (kept in `Model::sources`) rather than reading every
/// file again: the same files as a fresh reading, the local template included, with the
/// directory named relatively (as the README's command does); and a file changed on disk
/// after the load is hashed as it was loaded.
#[test]
fn a_runs_inputs_are_the_bytes_the_loader_read() {
    let opts = |keep_sources| LoadOptions {
        require_playbooks: true,
        keep_sources,
        ..Default::default()
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("shop");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop"),
        &dir,
    );
    // The same directory, named relative to the working directory the test runs in.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = std::path::PathBuf::from(up).join(dir.strip_prefix("/").unwrap());
    let kept = load(&relative, &opts(true)).model.unwrap();
    let fresh = load(&dir, &opts(false)).model.unwrap();
    assert!(fresh.sources.0.is_empty());
    let view = |v: &[(std::path::PathBuf, meeseeks::model::Source)]| {
        v.iter()
            .map(|(p, b)| (p.display().to_string(), b.as_ref().to_vec()))
            .collect::<Vec<_>>()
    };
    let from_disk = view(&meeseeks::session::input_files(&fresh));
    let names: Vec<&str> = from_disk.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&"graph.toml"), "{names:?}");
    assert!(
        names.contains(&"playbooks/_templates/shop/stand-in.toml"),
        "{names:?}"
    );
    assert_eq!(names.len(), 1 + 27 + 1, "{names:?}");
    // Changed on disk after the load: the kept bytes are what the run was loaded from.
    for (p, _) in &from_disk {
        std::fs::write(dir.join(p), "# changed after the load\n").unwrap();
    }
    assert_eq!(view(&meeseeks::session::input_files(&kept)), from_disk);
}
