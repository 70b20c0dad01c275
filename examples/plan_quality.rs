//! Quality benchmark of the planner's schedules (run it with `bench/plan_quality.sh`).
//!
//! Small instances (6–10 services) are solved exactly by an independent solver — a dynamic
//! program over event times that, at time 0 and at every completion, tries every set of
//! released services to start (including none: idle time) — and compared with the plan, with
//! the plan without its exact search (rules + improvement search only) and with every single
//! rule of the portfolio. Large instances (200 and 2 000 services) compare the plan's breaches
//! with each rule's. Every instance is generated from a fixed seed.
//!
//! `cargo run --release --example plan_quality -- [SMALL_INSTANCES] [LARGE_INSTANCES]`
//! (`PLAN_QUALITY_MISSES=1` lists the small instances the plan without exact search misses).
//! The tests include this file for its exact solver and generators.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meeseeks::model::{Defaults, Model, Service};
use meeseeks::plan::{Objective, Plan, PlanOptions, build_plan};

/// splitmix64, seeded (the planner's): the same instances on every machine.
pub use meeseeks::plan::Rng;

/// Uniform in `[lo, hi)`.
fn unit(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (rng.below(1 << 30) as f64 / (1u64 << 30) as f64)
}

/// A planning instance: service i may depend on services j < i. Times in seconds.
#[derive(Debug, Clone)]
pub struct Inst {
    pub deps: Vec<Vec<usize>>,
    pub dur: Vec<u64>,
    pub rto: Vec<u64>,
    pub tier: Vec<u32>,
    pub parallel: usize,
    /// How the RTOs were drawn (for the report).
    pub kind: &'static str,
}

impl Inst {
    pub fn n(&self) -> usize {
        self.deps.len()
    }

    /// Service names sort like their indices, so ids equal indices.
    pub fn name(i: usize) -> String {
        format!("s{i:05}")
    }

    /// The model and the durations (as history p90s, so every service has its own).
    pub fn model(&self) -> (Model, HashMap<String, f64>) {
        let services = (0..self.n())
            .map(|i| {
                (
                    Service::new(
                        Inst::name(i),
                        self.tier[i],
                        Duration::from_secs(self.rto[i]),
                    ),
                    self.deps[i].iter().map(|&j| Inst::name(j)).collect(),
                    Vec::new(),
                )
            })
            .collect();
        let h = (0..self.n())
            .map(|i| (Inst::name(i), self.dur[i] as f64))
            .collect();
        (
            Model::from_parts(PathBuf::from("."), Defaults::default(), services),
            h,
        )
    }

    pub fn plan(&self, eager: bool, exact: bool, budget: Option<usize>) -> Plan {
        let (m, h) = self.model();
        build_plan(
            &m,
            &PlanOptions {
                parallel: Some(self.parallel),
                eager,
                history: Some(h),
                search_budget: budget,
                exact,
                ..Default::default()
            },
        )
        .expect("valid instance")
    }

    /// Earliest finish of every service with unlimited slots (seconds).
    pub fn earliest(&self) -> Vec<u64> {
        let mut ef = vec![0; self.n()];
        for i in 0..self.n() {
            ef[i] = self.deps[i].iter().map(|&j| ef[j]).max().unwrap_or(0) + self.dur[i];
        }
        ef
    }

    /// wave(i) = 0 without dependencies, else 1 + the largest wave of its dependencies.
    pub fn waves(&self) -> Vec<u32> {
        let mut w = vec![0u32; self.n()];
        for i in 0..self.n() {
            w[i] = self.deps[i].iter().map(|&j| w[j] + 1).max().unwrap_or(0);
        }
        w
    }
}

/// A random DAG of `n` services with `kind` RTOs: "tight" (0.7–1.3 × the earliest finish
/// with the cap's share of the work), "loose" (1.2–3 ×), "mixed", or "planted" (every RTO at
/// or after its finish in a random feasible schedule, so that a plan without breach exists).
pub fn generate(rng: &mut Rng, n: usize, parallel: usize, kind: &'static str) -> Inst {
    let density = unit(rng, 0.08, 0.35);
    let max_deps = 1 + rng.below(3);
    let mut deps = vec![Vec::new(); n];
    for (i, d) in deps.iter_mut().enumerate().skip(1) {
        // Mostly recent services (chains), sometimes any earlier one.
        for _ in 0..max_deps {
            if unit(rng, 0.0, 1.0) < density * 2.5 {
                let j = if rng.below(3) > 0 {
                    i - 1 - rng.below(i.min(8))
                } else {
                    rng.below(i)
                };
                d.push(j);
            }
        }
        d.sort_unstable();
        d.dedup();
    }
    let dur: Vec<u64> = (0..n).map(|_| 10 * (1 + rng.below(30) as u64)).collect();
    let tier: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
    let mut inst = Inst {
        deps,
        dur,
        rto: vec![0; n],
        tier,
        parallel,
        kind,
    };
    let ef = inst.earliest();
    let total: u64 = inst.dur.iter().sum();
    let share = total / parallel as u64;
    let base = |i: usize| ef[i].max(share * (i as u64 + 1) / n as u64);
    match kind {
        "planted" => {
            let finish = random_schedule(rng, &inst);
            for (i, f) in finish.into_iter().enumerate() {
                inst.rto[i] = f + 10 * rng.below(6) as u64;
            }
        }
        _ => {
            for i in 0..n {
                let (lo, hi) = match kind {
                    "tight" => (0.7, 1.3),
                    "loose" => (1.2, 3.0),
                    _ if rng.below(2) == 0 => (0.7, 1.3),
                    _ => (1.2, 3.0),
                };
                inst.rto[i] = ((base(i) as f64 * unit(rng, lo, hi)) as u64 / 10).max(1) * 10;
            }
        }
    }
    inst
}

/// Finish times of a random feasible eager schedule: services in a random topological order,
/// each at the earliest time its dependencies and a slot allow, sometimes a little later.
fn random_schedule(rng: &mut Rng, inst: &Inst) -> Vec<u64> {
    let n = inst.n();
    let mut done = vec![false; n];
    let mut finish = vec![0u64; n];
    let mut slots = vec![0u64; inst.parallel];
    let mut last = 0;
    for _ in 0..n {
        let ready: Vec<usize> = (0..n)
            .filter(|&i| !done[i] && inst.deps[i].iter().all(|&j| done[j]))
            .collect();
        let i = ready[rng.below(ready.len())];
        slots.sort_unstable();
        let rel = inst.deps[i].iter().map(|&j| finish[j]).max().unwrap_or(0);
        let start = slots[0].max(rel).max(last) + 10 * rng.below(2) as u64;
        last = start;
        finish[i] = start + inst.dur[i];
        slots[0] = finish[i];
        done[i] = true;
    }
    finish
}

const INF: Objective = Objective {
    breaches: usize::MAX,
    lateness: u64::MAX,
    makespan: u64::MAX,
};

/// The optimum of `inst` (times in ms), by dynamic programming over event times: at time 0
/// and at every completion, any set of released services that fits in the free slots may
/// start (none included); every schedule whose starts are at event times is reached, and an
/// optimal schedule has its starts at event times (moving a start earlier to the last event
/// before it never makes any service later).
pub fn optimum(inst: &Inst, eager: bool) -> Objective {
    assert!(inst.n() <= 16);
    let mut dp = Dp {
        inst,
        eager,
        wave: inst.waves(),
        memo: HashMap::new(),
    };
    dp.solve(0, 0, &[])
}

/// A state of the dynamic program: time, services done, services running (finish, service).
type State = (u64, u32, Vec<(u64, u8)>);

struct Dp<'a> {
    inst: &'a Inst,
    eager: bool,
    wave: Vec<u32>,
    /// Best objective of what is still to start, by state.
    memo: HashMap<State, Objective>,
}

impl Dp<'_> {
    fn solve(&mut self, t: u64, done: u32, running: &[(u64, u8)]) -> Objective {
        let n = self.inst.n();
        if done.count_ones() as usize == n {
            return Objective::default();
        }
        let key = (t, done, running.to_vec());
        if let Some(&o) = self.memo.get(&key) {
            return o;
        }
        let started = running.iter().fold(done, |m, &(_, i)| m | 1 << i);
        let open_wave = (0..n)
            .filter(|&i| done & (1 << i) == 0)
            .map(|i| self.wave[i])
            .min()
            .unwrap_or(0);
        let released: Vec<usize> = (0..n)
            .filter(|&i| started & (1 << i) == 0)
            .filter(|&i| {
                if self.eager {
                    self.inst.deps[i].iter().all(|&j| done & (1 << j) != 0)
                } else {
                    self.wave[i] <= open_wave
                }
            })
            .collect();
        let free = self.inst.parallel.saturating_sub(running.len());
        let mut best = INF;
        // Every subset of the released services that fits (bit k = released[k]).
        for set in 0u32..(1 << released.len()) {
            let k = set.count_ones() as usize;
            if k > free || (k == 0 && running.is_empty()) {
                continue;
            }
            let mut now = Objective::default();
            let mut run = running.to_vec();
            for (b, &i) in released.iter().enumerate() {
                if set & (1 << b) != 0 {
                    let f = t + 1000 * self.inst.dur[i];
                    let rto = 1000 * self.inst.rto[i];
                    if f > rto {
                        now.breaches += 1;
                        now.lateness += f - rto;
                    }
                    now.makespan = now.makespan.max(f);
                    run.push((f, i as u8));
                }
            }
            // The next event: every completion at the earliest finish time.
            let next = run.iter().map(|&(f, _)| f).min().unwrap_or(t);
            let mut d = done;
            run.retain(|&(f, i)| {
                if f == next {
                    d |= 1 << i;
                }
                f != next
            });
            run.sort_unstable();
            let rest = self.solve(next, d, &run);
            if rest == INF {
                continue;
            }
            let total = Objective {
                breaches: now.breaches + rest.breaches,
                lateness: now.lateness + rest.lateness,
                makespan: now.makespan.max(rest.makespan),
            };
            best = best.min(total);
        }
        self.memo.insert(key, best);
        best
    }
}

#[derive(Default)]
struct Tally {
    instances: usize,
    at_optimum: usize,
    breaches_optimal: usize,
    gap_breaches: f64,
    gap_lateness: f64,
}

impl Tally {
    fn add(&mut self, got: Objective, opt: Objective) {
        self.instances += 1;
        self.at_optimum += (got == opt) as usize;
        self.breaches_optimal += (got.breaches == opt.breaches) as usize;
        self.gap_breaches += (got.breaches - opt.breaches) as f64;
        // Relative lateness gap once the breaches are equal (0 when both are 0).
        if got.breaches == opt.breaches && got.lateness > 0 {
            self.gap_lateness += (got.lateness - opt.lateness) as f64 / got.lateness as f64;
        }
    }

    fn row(&self, name: &str) -> String {
        let k = self.instances.max(1) as f64;
        format!(
            "{name:<28} {:>7.1} % {:>9.1} % {:>12.3} {:>11.2} %",
            100.0 * self.at_optimum as f64 / k,
            100.0 * self.breaches_optimal as f64 / k,
            self.gap_breaches / k,
            100.0 * self.gap_lateness / k
        )
    }
}

#[allow(dead_code)]
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: plan_quality [SMALL] [LARGE]"))
        .collect();
    let misses = std::env::var_os("PLAN_QUALITY_MISSES").is_some();
    let small = args.first().copied().unwrap_or(480);
    let large = args.get(1).copied().unwrap_or(24);
    let kinds = ["tight", "loose", "mixed", "planted"];
    let rule_names: Vec<&str> = meeseeks::plan::Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();

    // Small instances against the exact optimum.
    let mut rng = Rng::new(17);
    let mut plan = Tally::default();
    let mut heuristic = Tally::default();
    let mut rules: Vec<Tally> = rule_names.iter().map(|_| Tally::default()).collect();
    let mut rule_beats_plan = vec![0usize; rule_names.len()];
    let mut proven = 0usize;
    let mut plan_time = Duration::ZERO;
    let mut dp_time = Duration::ZERO;
    for k in 0..small {
        let n = 6 + (k % 5);
        let parallel = 1 + rng.below(4);
        let inst = generate(&mut rng, n, parallel, kinds[k / 5 % kinds.len()]);
        for eager in [false, true] {
            let t = Instant::now();
            let opt = optimum(&inst, eager);
            dp_time += t.elapsed();
            let t = Instant::now();
            let p = inst.plan(eager, true, None);
            plan_time += t.elapsed();
            let h = inst.plan(eager, false, None);
            plan.add(p.objective, opt);
            heuristic.add(h.objective, opt);
            if misses && h.objective != opt {
                eprintln!(
                    "not optimal without exact search: instance {k} (n {n}, parallel {parallel}, \
                     eager {eager}, {} RTOs): {:?}, optimum {:?}",
                    inst.kind, h.objective, opt
                );
            }
            proven += (p.search.optimality != meeseeks::plan::Optimality::Unknown) as usize;
            for (i, &(_, o)) in h.search.rules.iter().enumerate() {
                rules[i].add(o, opt);
                rule_beats_plan[i] += (o < h.objective) as usize;
            }
        }
    }
    let cases = plan.instances;
    println!(
        "small instances: {cases} ({} DAGs of 6–10 services × waves and eager; parallel 1–4; \
         RTOs tight, loose, mixed and planted)",
        cases / 2
    );
    println!(
        "exact solver (event-time DP) {:.1} s, plan {:.1} ms per instance; plan proven optimal \
         on {:.1} %",
        dp_time.as_secs_f64(),
        plan_time.as_secs_f64() * 1000.0 / cases as f64,
        100.0 * proven as f64 / cases as f64
    );
    println!();
    println!(
        "{:<28} {:>9} {:>11} {:>12} {:>13}",
        "", "optimal", "breaches", "mean breach", "mean lateness"
    );
    println!(
        "{:<28} {:>9} {:>11} {:>12} {:>13}",
        "schedule", "(all 3)", "optimal", "gap", "gap (rel.)"
    );
    println!("{}", plan.row("plan (default)"));
    println!("{}", heuristic.row("plan without exact search"));
    for (i, name) in rule_names.iter().enumerate() {
        println!("{}", rules[i].row(&format!("rule {name}")));
    }
    println!();
    println!("instances where a single rule beats the plan without exact search:");
    for (i, name) in rule_names.iter().enumerate() {
        println!(
            "  {name:<22} {} of {cases} ({:.2} %)",
            rule_beats_plan[i],
            100.0 * rule_beats_plan[i] as f64 / cases as f64
        );
    }

    // Large instances: breaches of the plan against each rule.
    for n in [200usize, 2000] {
        let mut rng = Rng::new(n as u64);
        let mut sum_plan = 0usize;
        let mut sum_rule = vec![0usize; rule_names.len()];
        let mut rule_wins = vec![0usize; rule_names.len()];
        let mut plan_strictly_better = vec![0usize; rule_names.len()];
        let mut time = Duration::ZERO;
        let mut cases = 0;
        // Planted instances in eager mode: a schedule without breach exists.
        let mut planted = 0;
        let mut planted_zero = 0;
        let mut planted_zero_rule = vec![0usize; rule_names.len()];
        for k in 0..large {
            let parallel = [4, 8, 16, 32][k % 4];
            let inst = generate(&mut rng, n, parallel, kinds[k / 4 % kinds.len()]);
            for eager in [false, true] {
                let t = Instant::now();
                let p = inst.plan(eager, true, None);
                time += t.elapsed();
                cases += 1;
                sum_plan += p.objective.breaches;
                if eager && inst.kind == "planted" {
                    planted += 1;
                    planted_zero += (p.objective.breaches == 0) as usize;
                    for (i, &(_, o)) in p.search.rules.iter().enumerate() {
                        planted_zero_rule[i] += (o.breaches == 0) as usize;
                    }
                }
                for (i, &(_, o)) in p.search.rules.iter().enumerate() {
                    sum_rule[i] += o.breaches;
                    rule_wins[i] += (o < p.objective) as usize;
                    plan_strictly_better[i] += (p.objective.breaches < o.breaches) as usize;
                }
            }
        }
        println!();
        println!(
            "n = {n}: {cases} instances (parallel 4–32, RTOs tight/loose/mixed/planted), plan \
             {:.0} ms per instance (both modes planned)",
            time.as_secs_f64() * 1000.0 / cases as f64
        );
        println!(
            "  {:<22} {:>14} {:>22} {:>12} {:>14}",
            "", "total breaches", "fewer breaches by plan", "rule better", "planted: 0 found"
        );
        println!(
            "  {:<22} {:>14} {:>22} {:>12} {:>14}",
            "plan",
            sum_plan,
            "",
            "",
            format!("{planted_zero} of {planted}")
        );
        for (i, name) in rule_names.iter().enumerate() {
            println!(
                "  {name:<22} {:>14} {:>22} {:>12} {:>14}",
                sum_rule[i],
                plan_strictly_better[i],
                rule_wins[i],
                format!("{} of {planted}", planted_zero_rule[i])
            );
        }
    }
}
