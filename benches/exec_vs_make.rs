//! Execution benchmarks (run with `bench/exec_vs_make.sh` or `cargo bench --bench exec_vs_make`).
//!
//! 1. Scheduling overhead against make: 2 000 services, each one `cmd = ["true"]` step, on a
//!    random DAG; `meeseeks run --eager --parallel 16` (the real binary, loading included)
//!    against `make -j16` on the same DAG with `@true` recipes, in the same run.
//! 2. Fidelity to the plan: with unlimited parallelism and `wait` steps, the measured makespan
//!    against the planner's critical path (longest path over estimates).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meeseeks::approvals::AutoApprove;
use meeseeks::exec::{RealExecutor, RunOptions, Runner, RunnerInput};
use meeseeks::mask::Masker;
use meeseeks::model::{Defaults, Mode, Model, Playbook, Service, Step, StepKind};
use meeseeks::plan::{self, Scope};

/// Deterministic pseudo-random numbers (no dependency, same DAG every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// deps[i] ⊂ [0, i): up to 3 dependencies among the 200 previous services.
fn dag(n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|i| {
            if i == 0 {
                return vec![];
            }
            let k = (r.next() % 4) as usize;
            let mut d: Vec<usize> = (0..k)
                .map(|_| i - 1 - (r.next() as usize % i.min(200)))
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect()
}

fn name(i: usize) -> String {
    format!("s{i:05}")
}

fn write_dr_dir(dir: &Path, deps: &[Vec<usize>]) {
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    let mut g = String::from("[defaults]\nrto = \"1h\"\nparallel = 16\n\n");
    for (i, d) in deps.iter().enumerate() {
        let _ = writeln!(g, "[services.{}]\ntier = 1", name(i));
        if !d.is_empty() {
            let list: Vec<String> = d.iter().map(|&j| format!("\"{}\"", name(j))).collect();
            let _ = writeln!(g, "depends_on = [{}]", list.join(", "));
        }
        g.push('\n');
        std::fs::write(
            dir.join("playbooks").join(format!("{}.toml", name(i))),
            "[[steps]]\nname = \"noop\"\ncmd = [\"true\"]\n",
        )
        .unwrap();
    }
    std::fs::write(dir.join("graph.toml"), g).unwrap();
}

fn write_makefile(path: &Path, deps: &[Vec<usize>]) {
    let mut m = String::from(".PHONY: all");
    for i in 0..deps.len() {
        let _ = write!(m, " {}", name(i));
    }
    m.push_str("\nall:");
    for i in 0..deps.len() {
        let _ = write!(m, " {}", name(i));
    }
    m.push('\n');
    for (i, d) in deps.iter().enumerate() {
        let list: Vec<String> = d.iter().map(|&j| name(j)).collect();
        let _ = writeln!(m, "{}: {}\n\t@true", name(i), list.join(" "));
    }
    std::fs::write(path, m).unwrap();
}

fn time(mut c: Command) -> Duration {
    let t = Instant::now();
    let out = c.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        out.status.success() || out.status.code() == Some(0),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn bench_against_make() {
    let n = 2000;
    let deps = dag(n, 42);
    let tmp = tempfile::tempdir().unwrap();
    let dr = tmp.path().join("dr");
    write_dr_dir(&dr, &deps);
    let mk = tmp.path().join("Makefile");
    write_makefile(&mk, &deps);
    let edges: usize = deps.iter().map(Vec::len).sum();
    println!("DAG: {n} services, {edges} dependencies; each service one `true` process");
    let bin = env!("CARGO_BIN_EXE_meeseeks");
    // Paired rounds: make and meeseeks back to back, the first of the two alternating, so that
    // a busy moment of this shared machine slows both of a pair alike; the median of the
    // per-round ratios is the figure, the ratio of the best runs is printed beside it.
    let rounds: usize = std::env::var("EXEC_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(11);
    let mut makes = Vec::new();
    let mut ours = Vec::new();
    for round in 0..rounds {
        let make = || {
            let mut c = Command::new("make");
            c.arg("-j16").arg("-s").arg("-f").arg(&mk).arg("all");
            time(c)
        };
        let meeseeks = || {
            let mut c = Command::new(bin);
            c.args(["run", "--eager", "--parallel", "16", "-q", "--state-dir"])
                .arg(tmp.path().join(format!("state{round}")))
                .arg(&dr);
            time(c)
        };
        if round % 2 == 0 {
            makes.push(make());
            ours.push(meeseeks());
        } else {
            ours.push(meeseeks());
            makes.push(make());
        }
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let (m, o) = (best(&makes), best(&ours));
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(&makes)
        .map(|(o, m)| o.as_secs_f64() / m.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("make -j16                          : {makes:.3?} (best {m:.3?})");
    println!("meeseeks run --eager --parallel 16 : {ours:.3?} (best {o:.3?})");
    println!(
        "ratio meeseeks / make              : median of {rounds} paired rounds {median:.2}, \
         best against best {:.2}  (goal ≤ 1.0)",
        o.as_secs_f64() / m.as_secs_f64()
    );
}

fn bench_critical_path() {
    let n = 400;
    let deps = dag(n, 7);
    let mut r = Lcg(99);
    let services = deps
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut s = Service::new(name(i), 1, Duration::from_secs(3600));
            let ms = 50 + r.next() % 250;
            s.playbook = Some(Box::new(Playbook {
                steps: vec![Step {
                    name: "wait".into(),
                    kind: StepKind::Wait(Duration::from_millis(ms)),
                    timeout: None,
                    retries: 0,
                    retry_delay: Duration::from_secs(1),
                    estimate: None,
                    only: None,
                    optional: false,
                    idempotent: true,
                    preflight: true,
                    line: 1,
                    env: Vec::new(),
                }],
                ..Default::default()
            }));
            (s, d.iter().map(|&j| name(j)).collect(), vec![])
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let model = Model::from_parts(tmp.path().into(), Defaults::default(), services);
    let scope = Scope::all(&model);
    let ord = plan::ordering(&model, &scope, Mode::Failover);
    let mut finish = vec![0.0f64; n];
    for &id in &ord.topo {
        let start = model.services[id]
            .depends_on
            .iter()
            .map(|&d| finish[d])
            .fold(0.0, f64::max);
        finish[id] = start + ord.dur[id];
    }
    let critical = finish.iter().copied().fold(0.0, f64::max);
    let mut opts = RunOptions::new(Mode::Failover, "bench", tmp.path().join("run"));
    opts.config.parallel = 0;
    opts.config.eager = true;
    let runner = Runner::new(
        Arc::new(model.clone()),
        scope,
        opts,
        RunnerInput::default(),
        Arc::new(RealExecutor::new(
            tmp.path().into(),
            vec![],
            Duration::from_secs(1),
        )),
        Arc::new(AutoApprove),
        Masker::new(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(runner.run());
    assert_eq!(report.exit_code, 0);
    let measured = report.state.makespan_s();
    println!(
        "\n{n} services with `wait` steps (50–300 ms), --eager, unlimited parallelism:\n\
         planner critical path : {critical:.3} s\n\
         measured makespan     : {measured:.3} s\n\
         overhead              : {:+.2} %  (target within 5 %)",
        (measured / critical - 1.0) * 100.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    bench_against_make();
    bench_critical_path();
}
