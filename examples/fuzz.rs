//! Fuzzes one target for N minutes and prints its figures; crashing inputs are saved.
//!
//! ```text
//! cargo run --release --example fuzz -- TARGET [--minutes N] [--seed S] [--out DIR]
//! cargo run --release --example fuzz -- all --minutes 2
//! ```
//!
//! TARGET: graph, playbook, journal, observed, duration, or all (N minutes each). Crashes go
//! to DIR/TARGET/<hash>.bin (the input) and .txt (the panic); default DIR: target/fuzz.
//! Turn each into a regression input under fuzz/regressions/TARGET/ (replayed by
//! `cargo test --test fuzz_smoke`). See fuzz/README.md.

#[path = "../fuzz/engine.rs"]
mod engine;

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut target = None;
    let (mut minutes, mut seed, mut out) = (1.0f64, 0x5eed_u64, PathBuf::from("target/fuzz"));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => minutes = args.next().and_then(|v| v.parse().ok()).unwrap_or(minutes),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            t if target.is_none() && !t.starts_with('-') => target = Some(t.to_string()),
            other => {
                eprintln!("unknown argument `{other}`");
                std::process::exit(2);
            }
        }
    }
    let Some(target) = target else {
        eprintln!(
            "usage: fuzz TARGET [--minutes N] [--seed S] [--out DIR]; targets: {}, all",
            engine::TARGETS.join(", ")
        );
        std::process::exit(2);
    };
    let targets: Vec<&str> = if target == "all" {
        engine::TARGETS.to_vec()
    } else if engine::TARGETS.contains(&target.as_str()) {
        vec![
            engine::TARGETS
                .iter()
                .find(|t| **t == target)
                .copied()
                .unwrap_or("graph"),
        ]
    } else {
        eprintln!(
            "unknown target `{target}`; targets: {}, all",
            engine::TARGETS.join(", ")
        );
        std::process::exit(2);
    };
    if std::env::var_os("FUZZ_LOUD").is_none() {
        engine::quiet_panics();
    }
    println!(
        "{:<10} {:>12} {:>8} {:>10} {:>8}",
        "target", "executions", "minutes", "execs/s", "crashes"
    );
    let mut total_crashes = 0;
    for t in targets {
        let dir = out.join(t);
        std::fs::create_dir_all(&dir).expect("create the crash directory");
        let f = engine::fuzz(
            t,
            seed,
            Duration::from_secs_f64(minutes * 60.0),
            u64::MAX,
            Some(&dir),
        );
        let mins = f.elapsed.as_secs_f64() / 60.0;
        println!(
            "{:<10} {:>12} {:>8.2} {:>10.0} {:>8}   (corpus {})",
            t,
            f.executions,
            mins,
            f.executions as f64 / f.elapsed.as_secs_f64().max(1e-9),
            f.crashes.len(),
            f.corpus
        );
        for site in f.crashes.keys() {
            println!("    crash: {site}");
        }
        total_crashes += f.crashes.len();
    }
    if total_crashes > 0 {
        println!("crashing inputs saved under {}", out.display());
        std::process::exit(1);
    }
}
