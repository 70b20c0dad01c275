//! Generates a large service graph for benchmarks, with a fixed seed, in one of two shapes:
//!
//! - `layered` (default): a layered random DAG, ~4 edges per service, RTOs drawn around each
//!   layer's rough ready time so that most are met and some are breached;
//! - `breachy`: the shape of issue 10 — each service depends on ~Exp(mean 4) random services
//!   among the previous 5 000, default estimate 2m, parallel 8, RTOs uniform in 15m–4h, so
//!   that nearly every service breaches and every breach has a long chain behind it.
//!
//! `cargo run --release --example gen_graph -- N OUTDIR [SEED] [layered|breachy]` writes
//! `OUTDIR/graph.toml` and `OUTDIR/edges.txt` (the same edges as `dependency dependent`
//! pairs, the input format of `tsort`). The benches include this file to build the same
//! graphs in memory.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use meeseeks::model::{Defaults, Model, Service};

/// splitmix64, seeded (the planner's): the same graph on every machine.
pub use meeseeks::plan::Rng;

pub struct Generated {
    pub names: Vec<String>,
    pub tiers: Vec<u32>,
    pub rto_secs: Vec<u64>,
    /// Essential dependencies by index (always to a lower layer, so acyclic).
    pub deps: Vec<Vec<usize>>,
    pub parallel: usize,
    pub estimate_secs: u64,
}

impl Generated {
    pub fn edges(&self) -> usize {
        self.deps.iter().map(Vec::len).sum()
    }
}

pub fn generate(n: usize, seed: u64) -> Generated {
    let mut rng = Rng::new(seed);
    let layers = ((n.max(2) as f64).log2().round() as usize).max(4);
    let parallel = 64;
    let estimate_secs = 120;
    // Layer boundaries: equal-sized layers, services numbered layer by layer.
    let start_of = |k: usize| k * n / layers;
    let names: Vec<String> = (0..n).map(|i| format!("svc-{i:06}")).collect();
    let mut deps = vec![Vec::new(); n];
    let mut tiers = vec![0; n];
    let mut rto_secs = vec![0; n];
    // Rough waves-mode ready time of each layer, to draw RTOs around it so that most are met
    // and some are breached (the analysis has work to do).
    let mut layer_end = 0u64;
    for k in 0..layers {
        let (lo, hi) = (start_of(k), start_of(k + 1));
        layer_end += (hi - lo).div_ceil(parallel) as u64 * estimate_secs;
        for i in lo..hi {
            tiers[i] = (rng.below(4)) as u32;
            // 0.9× to 2.5× the layer's rough ready time, in whole minutes.
            let f = 0.9 + (rng.below(1600) as f64) / 1000.0;
            rto_secs[i] = (((layer_end as f64 * f) / 60.0).ceil() as u64).max(1) * 60;
            if k == 0 {
                continue;
            }
            let want = 2 + rng.below(6);
            let prev = start_of(k - 1);
            let d = &mut deps[i];
            for _ in 0..want {
                // Mostly the previous layer (deep chains), sometimes any earlier one.
                let j = if rng.below(10) < 6 {
                    prev + rng.below(lo - prev)
                } else {
                    rng.below(lo)
                };
                d.push(j);
            }
            d.sort_unstable();
            d.dedup();
        }
    }
    Generated {
        names,
        tiers,
        rto_secs,
        deps,
        parallel,
        estimate_secs,
    }
}

/// The breach-heavy shape (issue 10): service i depends on round(Exp(mean 4)) services drawn
/// uniformly among the previous 5 000 (fewer near the start), default estimate 2m, parallel 8,
/// RTOs uniform in 15m–4h (whole minutes).
pub fn generate_breachy(n: usize, seed: u64) -> Generated {
    const WINDOW: usize = 5000;
    let mut rng = Rng::new(seed);
    let names: Vec<String> = (0..n).map(|i| format!("svc-{i:06}")).collect();
    let mut deps = vec![Vec::new(); n];
    let mut tiers = vec![0; n];
    let mut rto_secs = vec![0; n];
    for i in 0..n {
        tiers[i] = rng.below(4) as u32;
        rto_secs[i] = (15 + rng.below(4 * 60 - 15 + 1)) as u64 * 60;
        if i == 0 {
            continue;
        }
        // Inverse transform: -mean · ln(U), U in (0, 1].
        let u = (rng.below(1 << 30) as f64 + 1.0) / (1u64 << 30) as f64;
        let want = (-4.0 * u.ln()).round() as usize;
        let lo = i.saturating_sub(WINDOW);
        let d = &mut deps[i];
        for _ in 0..want {
            d.push(lo + rng.below(i - lo));
        }
        d.sort_unstable();
        d.dedup();
    }
    Generated {
        names,
        tiers,
        rto_secs,
        deps,
        parallel: 8,
        estimate_secs: 120,
    }
}

/// The generator of a shape by name (`layered` or `breachy`).
pub fn generate_shape(shape: &str, n: usize, seed: u64) -> Option<Generated> {
    match shape {
        "layered" => Some(generate(n, seed)),
        "breachy" => Some(generate_breachy(n, seed)),
        _ => None,
    }
}

pub fn to_model(g: &Generated) -> Model {
    let defaults = Defaults {
        rto: Duration::from_secs(4 * 3600),
        parallel: g.parallel,
        estimate: Duration::from_secs(g.estimate_secs),
    };
    let services = (0..g.names.len())
        .map(|i| {
            (
                Service::new(
                    g.names[i].clone(),
                    g.tiers[i],
                    Duration::from_secs(g.rto_secs[i]),
                ),
                g.deps[i].iter().map(|&d| g.names[d].clone()).collect(),
                Vec::new(),
            )
        })
        .collect();
    Model::from_parts(PathBuf::from("."), defaults, services)
}

pub fn graph_toml(g: &Generated) -> String {
    let mut o = String::with_capacity(g.names.len() * 120);
    let _ = writeln!(
        o,
        "# Generated by `cargo run --example gen_graph`: {} services, {} edges.\n",
        g.names.len(),
        g.edges()
    );
    let _ = writeln!(
        o,
        "[defaults]\nrto = \"4h\"\nparallel = {}\nestimate = \"{}s\"\n",
        g.parallel, g.estimate_secs
    );
    for i in 0..g.names.len() {
        let _ = writeln!(o, "[services.{}]", g.names[i]);
        let _ = writeln!(o, "tier = {}", g.tiers[i]);
        let _ = writeln!(o, "rto = \"{}m\"", g.rto_secs[i] / 60);
        if !g.deps[i].is_empty() {
            o.push_str("depends_on = [");
            for (k, &d) in g.deps[i].iter().enumerate() {
                if k > 0 {
                    o.push_str(", ");
                }
                let _ = write!(o, "\"{}\"", g.names[d]);
            }
            o.push_str("]\n");
        }
        o.push('\n');
    }
    o
}

pub fn edges_txt(g: &Generated) -> String {
    let mut o = String::with_capacity(g.edges() * 24);
    for (i, ds) in g.deps.iter().enumerate() {
        for &d in ds {
            let _ = writeln!(o, "{} {}", g.names[d], g.names[i]);
        }
    }
    o
}

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen_graph N OUTDIR [SEED] [layered|breachy]";
    let (Some(n), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    let shape = args.get(3).map_or("layered", String::as_str);
    let Some(g) = generate_shape(shape, n, seed) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let write = |name: &str, text: String| {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            eprintln!("gen_graph: writing {}: {e}", dir.join(name).display());
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gen_graph: {}: {e}", dir.display());
        std::process::exit(2);
    }
    write("graph.toml", graph_toml(&g));
    write("edges.txt", edges_txt(&g));
    eprintln!(
        "gen_graph: {} services ({shape}), {} edges in {}",
        n,
        g.edges(),
        dir.display()
    );
}
