//! `meeseeks import backstage`: the real binary on a catalog written in the format of
//! Backstage's published example catalog (Locations, Systems, APIs, Groups, multi-document
//! files), re-import idempotence and hand edits kept.

mod common;
use common::{copy_dir, meeseeks};

use std::path::{Path, PathBuf};

fn catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backstage")
}

/// Runs `import backstage ARGS... -C dir`; (exit code, stdout, stderr).
fn import(dir: &Path, args: &[&Path]) -> (i32, String, String) {
    let out = meeseeks()
        .arg("import")
        .arg("backstage")
        .args(args)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GRAPH: &str =
    "# Our DR graph.\n\n[defaults]\nrto = \"1h\" # company default\n\n[services.web]\ntier = 1\n";

fn dr_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("graph.toml"), GRAPH).unwrap();
    d
}

fn fragment(dir: &Path) -> toml::Table {
    let text = std::fs::read_to_string(dir.join("imported/backstage.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn svc<'a>(t: &'a toml::Table, name: &str) -> &'a toml::Table {
    t["services"][name].as_table().unwrap()
}

#[test]
fn components_and_resources_become_a_fragment() {
    let d = dr_dir();
    let (code, out, err) = import(d.path(), &[&catalog().join("all.yaml")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("6 service(s) from 10 catalog file(s)"),
        "{out}"
    );
    assert!(
        out.contains("ignored (not services): API ×1, Group ×1, System ×1"),
        "{out}"
    );
    // The default tier is said, with the component that got it.
    assert!(
        err.contains("1 without the meeseeks.io/tier annotation got tier 3"),
        "{err}"
    );
    assert!(err.contains("artist-lookup"), "{err}");

    let f = fragment(d.path());
    let names: Vec<&String> = f["services"].as_table().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "artist-lookup",
            "artists-db",
            "playback-db",
            "playback-lib",
            "playback-order",
            "queue-proxy"
        ]
    );
    let po = svc(&f, "playback-order");
    assert_eq!(po["tier"].as_integer(), Some(1));
    assert_eq!(po["rto"].as_str(), Some("30m"));
    // group:default/team-c → team-c; component:default/x and resource:default/x → x.
    assert_eq!(po["owner"].as_str(), Some("team-c"));
    assert_eq!(po["depends_on"].as_array().unwrap().len(), 2);
    assert_eq!(po["tags"]["lifecycle"].as_str(), Some("production"));
    assert_eq!(po["tags"]["system"].as_str(), Some("audio-playback"));
    let al = svc(&f, "artist-lookup");
    assert_eq!(al["tier"].as_integer(), Some(3));
    assert!(
        al.get("rto").is_none(),
        "no annotation: the graph's default applies"
    );
    assert_eq!(al["depends_on"][0].as_str(), Some("artists-db"));
    let qp = svc(&f, "queue-proxy");
    assert_eq!(
        qp["depends_on"],
        toml::Value::Array(vec!["playback-lib".into(), "playback-order".into()])
    );

    // graph.toml: included once, its comments and layout kept.
    let g = std::fs::read_to_string(d.path().join("graph.toml")).unwrap();
    assert_eq!(
        g,
        "# Our DR graph.\ninclude = [\"imported/backstage.toml\"]\n\n[defaults]\nrto = \"1h\" # company default\n\n[services.web]\ntier = 1\n"
    );

    // The fragment is a valid graph on its own (loaded directly as a graph file).
    let out = meeseeks()
        .args(["graph", "--format", "json"])
        .arg(d.path().join("imported/backstage.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 6);
    assert_eq!(v["edges"].as_array().unwrap().len(), 5);
}

#[test]
fn a_directory_reads_the_same_catalog_as_its_locations() {
    let (a, b) = (dr_dir(), dr_dir());
    assert_eq!(import(a.path(), &[&catalog().join("all.yaml")]).0, 0);
    assert_eq!(import(b.path(), &[&catalog()]).0, 0);
    let read = |d: &Path| std::fs::read_to_string(d.join("imported/backstage.toml")).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
}

#[test]
fn reimport_is_idempotent() {
    let d = dr_dir();
    assert_eq!(import(d.path(), &[&catalog()]).0, 0);
    let snapshot = |d: &Path| {
        [
            "graph.toml",
            "imported/backstage.toml",
            "imported/backstage.catalog.json",
        ]
        .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
    };
    let first = snapshot(d.path());
    let (code, out, _) = import(d.path(), &[&catalog()]);
    assert_eq!(code, 0);
    assert!(out.contains("0 added, 0 updated, 0 removed"), "{out}");
    assert!(!out.contains("include"), "{out}");
    assert_eq!(snapshot(d.path()), first);
}

#[test]
fn reimport_keeps_hand_edits_and_follows_the_catalog() {
    let d = dr_dir();
    let cat = tempfile::tempdir().unwrap();
    copy_dir(&catalog(), cat.path());
    assert_eq!(import(d.path(), &[cat.path()]).0, 0);

    // By hand: a tier raised, an RPO and a watch added, a comment.
    let path = d.path().join("imported/backstage.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "[services.artist-lookup]\ntier = 3",
            "[services.artist-lookup]\ntier = 1 # critical for the tour, says SRE",
        )
        .replace(
            "[services.playback-db]\n",
            "[services.playback-db]\nrpo = \"5m\"\nstateful = true\nbackup = { schedule = \"5m\" }\n",
        )
        .replace("[services.queue-proxy]\n", "[services.queue-proxy]\nwatch = true\n");
    std::fs::write(&path, &text).unwrap();

    // In the catalog: playback-order's RTO tightened, artist-lookup gets a tier annotation,
    // queue-proxy loses a dependency, playback-lib disappears.
    let po = cat.path().join("components/playback-order-component.yaml");
    let s = std::fs::read_to_string(&po)
        .unwrap()
        .replace("\"30m\"", "\"15m\"");
    std::fs::write(&po, s).unwrap();
    let al = cat.path().join("components/artist-lookup-component.yaml");
    let s = std::fs::read_to_string(&al).unwrap().replace(
        "    backstage.io/techdocs-ref: dir:.",
        "    backstage.io/techdocs-ref: dir:.\n    meeseeks.io/tier: \"2\"",
    );
    std::fs::write(&al, s).unwrap();
    let ps = cat.path().join("components/playback-services.yaml");
    let s = std::fs::read_to_string(&ps).unwrap();
    let (_, rest) = s.split_once("---\n").unwrap();
    let s = rest.replace("    - Component:default/playback-lib\n", "");
    std::fs::write(&ps, s).unwrap();
    let po_text = std::fs::read_to_string(&po)
        .unwrap()
        .replace("    - component:default/playback-lib\n", "");
    std::fs::write(&po, po_text).unwrap();

    let (code, out, err) = import(d.path(), &[cat.path()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kept as edited by hand: artist-lookup.tier"),
        "{out}"
    );
    assert!(out.contains("1 removed"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("tier = 1 # critical for the tour, says SRE"),
        "{text}"
    );
    let f = fragment(d.path());
    assert!(f["services"].get("playback-lib").is_none(), "{text}");
    let pdb = svc(&f, "playback-db");
    assert_eq!(pdb["rpo"].as_str(), Some("5m"));
    assert_eq!(pdb["stateful"].as_bool(), Some(true));
    let po = svc(&f, "playback-order");
    assert_eq!(po["rto"].as_str(), Some("15m"));
    assert_eq!(
        po["depends_on"],
        toml::Value::Array(vec!["playback-db".into()])
    );
    let qp = svc(&f, "queue-proxy");
    assert_eq!(qp["watch"].as_bool(), Some(true));
    assert_eq!(
        qp["depends_on"],
        toml::Value::Array(vec!["playback-order".into()])
    );

    // And again: nothing moves, the hand edit stays a hand edit.
    let before = std::fs::read_to_string(&path).unwrap();
    let (code, out, _) = import(d.path(), &[cat.path()]);
    assert_eq!(code, 0);
    assert!(out.contains("0 added, 0 updated, 0 removed"), "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn bad_catalog_is_a_located_error_and_writes_nothing() {
    let d = dr_dir();
    let bad = d.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n  annotations:\n    meeseeks.io/tier: high\n---\nkind: Component\nmetadata:\n  name: b\n  annotations:\n    meeseeks.io/rto: soon\n---\nkind: Component\nmetadata: [oops\n",
    )
    .unwrap();
    let (code, _, err) = import(d.path(), &[&bad]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "(document 1), Component a: annotation meeseeks.io/tier: \"high\" is not a tier"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "(document 2), Component b: annotation meeseeks.io/rto: \"soon\" is not a duration"
        ),
        "{err}"
    );
    assert!(err.contains("bad.yaml:16:1"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!d.path().join("imported").exists());
    assert_eq!(
        std::fs::read_to_string(d.path().join("graph.toml")).unwrap(),
        GRAPH
    );
}
