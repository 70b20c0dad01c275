//! Timing of the graph operations on a large generated graph, against the planning core.
//!
//! `cargo run --release --example graph_ops_speed -- [N] [OUTDIR]`
//!
//! The graph is the planner's `examples/gen_graph.rs` graph (seed 42: log2(N) layers, 2–7
//! essential dependencies per service, tiers uniform in 0..=3) plus ~5% optional edges, stateful
//! services with backups in the bottom layer and 1% watched services. The baseline is
//! `plan::build_plan` on the same graph (the computation behind `meeseeks plan`). With OUTDIR,
//! it also writes OUTDIR/{old,new}/graph.toml and observed.{csv,json} to time the real binary
//! end to end.

#[allow(dead_code)]
#[path = "gen_graph.rs"]
mod gen_graph;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meeseeks::graph_ops::{Render, audit, diff, export, impact, verify};
use meeseeks::model::{Backup, Defaults, Mode, Model, Service};
use meeseeks::plan::{PlanOptions, Scope, build_plan, ordering};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Parts = Vec<(Service, Vec<String>, Vec<String>)>;

/// The gen_graph graph, plus optional edges (to lower ids: acyclic), backups, watch flags.
fn generate(n: usize, seed: u64) -> Parts {
    let g = gen_graph::generate(n, seed);
    let mut rng = Rng(seed ^ 0x5eed);
    (0..n)
        .map(|i| {
            let mut s = Service::new(
                g.names[i].clone(),
                g.tiers[i],
                Duration::from_secs(g.rto_secs[i]),
            );
            if g.deps[i].is_empty() && rng.below(4) == 0 {
                s.stateful = true;
                s.rpo = Some(Duration::from_secs(900));
                s.backup = Some(Backup {
                    schedule: Duration::from_secs(300 * (1 + rng.below(4) as u64)),
                    retention: None,
                    check: None,
                });
            }
            s.watch = rng.below(100) == 0;
            let deps = g.deps[i].iter().map(|&d| g.names[d].clone()).collect();
            let soft = if i > 0 && rng.below(20) == 0 {
                vec![g.names[rng.below(i)].clone()]
            } else {
                Vec::new()
            };
            (s, deps, soft)
        })
        .collect()
}

fn model(parts: Parts) -> Model {
    let d = Defaults {
        rto: Duration::from_secs(4 * 3600),
        parallel: 64,
        estimate: Duration::from_secs(120),
    };
    // Same defaults as gen_graph's graph.toml.
    Model::from_parts(PathBuf::from("."), d, parts)
}

/// NEW = OLD + 200 services each depending on 3 random existing services, + 500 new edges
/// from the upper half down to the lower half (still acyclic: layers only point down).
fn evolve(mut parts: Parts, seed: u64) -> Parts {
    let mut rng = Rng(seed);
    let n = parts.len();
    for i in 0..500 {
        let from = n / 2 + rng.below(n / 2);
        let to = rng.below(n / 4);
        let _ = i;
        let to = parts[to].0.name.clone();
        parts[from].1.push(to);
    }
    for i in 0..200 {
        let deps = (0..3).map(|_| parts[rng.below(n)].0.name.clone()).collect();
        parts.push((
            Service::new(format!("new-{i:04}"), 1, Duration::from_secs(7200)),
            deps,
            Vec::new(),
        ));
    }
    parts
}

fn time<T>(label: &str, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    println!("{label:<44} {:>9.1} ms", best.as_secs_f64() * 1000.0);
    (best, out.expect("ran"))
}

fn graph_toml(m: &Model) -> String {
    let mut o = String::from("[defaults]\nrto = \"4h\"\nparallel = 64\nestimate = \"2m\"\n\n");
    for s in &m.services {
        let _ = writeln!(
            o,
            "[services.{}]\ntier = {}\nrto = \"{}s\"",
            s.name,
            s.tier,
            s.rto.as_secs()
        );
        if s.stateful {
            let _ = writeln!(o, "stateful = true");
        }
        if let (Some(b), Some(rpo)) = (&s.backup, s.rpo) {
            let _ = writeln!(
                o,
                "rpo = \"{}s\"\nbackup = {{ schedule = \"{}s\" }}",
                rpo.as_secs(),
                b.schedule.as_secs()
            );
        }
        if s.watch {
            o.push_str("watch = true\n");
        }
        for (key, list) in [
            ("depends_on", &s.depends_on),
            ("soft_depends_on", &s.soft_depends_on),
        ] {
            if !list.is_empty() {
                let names: Vec<String> =
                    list.iter().map(|&d| format!("\"{}\"", m.name(d))).collect();
                let _ = writeln!(o, "{key} = [{}]", names.join(", "));
            }
        }
        o.push('\n');
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let outdir = args.get(1).map(PathBuf::from);
    let old_parts = generate(n, 42);
    let new_parts = evolve(old_parts.clone(), 7);
    let old = model(old_parts);
    let new = model(new_parts);
    let edges: usize = old.services.iter().map(|s| s.depends_on.len()).sum();
    let tier0 = old.services.iter().filter(|s| s.tier == 0).count();
    println!("{n} services, {edges} essential edges, {tier0} tier-0 services\n");

    time("plan::ordering (topo, waves, estimates)", || {
        ordering(&old, &Scope::all(&old), Mode::Failover)
    });
    let (t_plan, _) = time("baseline: plan::build_plan", || {
        build_plan(&old, &PlanOptions::default()).expect("plan")
    });

    let now = jiff::Timestamp::now();
    let (t_audit, r) = time("audit (all checks)", || {
        audit::audit(&old, &audit::AuditOptions::new(now), None).expect("audit")
    });
    let by_kind =
        |r: &audit::AuditReport, id: &str| r.findings.iter().filter(|f| f.id == id).count();
    println!(
        "  findings: {} (spof {}, rto-inversion {}, rto-unachievable {}, backup-exceeds-rpo {})",
        r.findings.len(),
        by_kind(&r, "spof"),
        by_kind(&r, "rto-inversion"),
        by_kind(&r, "rto-unachievable"),
        by_kind(&r, "backup-exceeds-rpo")
    );
    let (t_audit_json, _) = time("audit render json", || r.json().len());
    time("audit render text", || r.text().len());

    let (t_diff, d) = time("diff (OLD vs NEW, watched: 1%)", || {
        diff::diff(&old, &new, &diff::DiffOptions::default()).expect("diff")
    });
    println!(
        "  added edges {}, added services {}, watched {}, with new dependents {}",
        d.added_edges.len(),
        d.added_services.len(),
        d.watched.len(),
        d.new_dependents.len()
    );
    time("diff render json", || d.json().len());

    // Observed traffic: every declared edge but 1%, plus 1 000 undeclared calls.
    let mut rng = Rng(99);
    let mut csv = String::from("caller,callee,count\n");
    let mut json = String::from("[");
    for s in &old.services {
        for &d in &s.depends_on {
            if rng.below(100) == 0 {
                continue;
            }
            let c = 1 + rng.below(1000);
            let _ = writeln!(csv, "{},{},{c}", s.name, old.name(d));
            let _ = write!(
                json,
                "{}{{\"parent\":\"{}\",\"child\":\"{}\",\"callCount\":{c}}}",
                if json.len() > 1 { ",\n" } else { "" },
                s.name,
                old.name(d)
            );
        }
    }
    for _ in 0..1000 {
        let (a, b) = (rng.below(n), rng.below(n));
        let _ = writeln!(csv, "{},{},5", old.name(a), old.name(b));
        let _ = write!(
            json,
            ",\n{{\"parent\":\"{}\",\"child\":\"{}\",\"callCount\":5}}",
            old.name(a),
            old.name(b)
        );
    }
    json.push(']');
    let (t_parse_csv, obs) = time("verify: parse CSV", || {
        verify::parse_observed(&csv, "observed.csv", verify::ObservedFormat::Csv).expect("csv")
    });
    let (t_parse_json, _) = time("verify: parse Jaeger JSON", || {
        verify::parse_observed(&json, "observed.json", verify::ObservedFormat::Jaeger)
            .expect("json")
    });
    let (t_verify, v) = time("verify (compare)", || {
        verify::verify(&old, &obs, &verify::VerifyOptions::default())
    });
    println!(
        "  undeclared {}, unobserved {}",
        v.undeclared.len(),
        v.unobserved.len()
    );
    time("export json", || {
        export::export(
            &old,
            &export::ExportOptions::default(),
            export::GraphFormat::Json,
        )
        .expect("export")
        .len()
    });
    time("export dot", || {
        export::export(
            &old,
            &export::ExportOptions::default(),
            export::GraphFormat::Dot,
        )
        .expect("export")
        .len()
    });
    let first = old.services[0].name.clone();
    time("impact of the first service", || {
        impact::impact(&old, &[first.as_str()]).expect("impact")
    });
    time("deps of the last service", || {
        meeseeks::graph_ops::deps::deps(&old, &old.services[n - 1].name.clone()).expect("deps")
    });
    let ratio = |t: Duration| t.as_secs_f64() / t_plan.as_secs_f64();
    println!(
        "\nratios to plan::build_plan: audit {:.2} (+json {:.2}), diff {:.2}, verify {:.2} (+parse csv {:.2}, json {:.2})",
        ratio(t_audit),
        ratio(t_audit + t_audit_json),
        ratio(t_diff),
        ratio(t_verify),
        ratio(t_verify + t_parse_csv),
        ratio(t_verify + t_parse_json)
    );

    if let Some(dir) = outdir {
        for (sub, m) in [("old", &old), ("new", &new)] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("graph.toml"), graph_toml(m)).expect("write");
        }
        std::fs::write(dir.join("observed.csv"), csv).expect("write");
        std::fs::write(dir.join("observed.json"), json).expect("write");
        println!(
            "wrote {}/{{old,new}}/graph.toml, observed.csv, observed.json",
            dir.display()
        );
    }
}
