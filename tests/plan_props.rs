//! Properties of the planner on random DAGs: every plan is valid, never worse than any rule of
//! its portfolio, optimal where it says so (checked against an independent exact solver), and
//! exactly what the walker does with the plan's priority list; plus the reproducers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use meeseeks::exec::walker::{SvcState, WalkMode, Walker};
use meeseeks::model::{Defaults, Mode, Model, Playbook, Service, StepKind};
use meeseeks::plan::{
    Ms, Objective, Optimality, Plan, PlanOptions, Rule, Scope, build_plan, ordering_with,
    run_ordering, to_ms,
};
use proptest::prelude::*;

mod common;

#[allow(dead_code)]
#[path = "../examples/plan_quality.rs"]
mod quality;

/// A random DAG: service i may depend on any j < i. Durations go through `history` so each
/// service gets its own (0 allowed: a service that is instantly healthy).
#[derive(Debug, Clone)]
struct Dag {
    deps: Vec<Vec<usize>>,
    dur_s: Vec<u32>,
    rto_s: Vec<u32>,
    tier: Vec<u32>,
}

fn name(i: usize) -> String {
    // Not in index order on purpose: ids (name order) differ from generation order.
    format!("s{:02}", (i * 7) % 101)
}

fn dag(max: usize) -> impl Strategy<Value = Dag> {
    (1usize..max).prop_flat_map(|n| {
        (
            proptest::collection::vec(
                proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                n,
            ),
            proptest::collection::vec(0u32..20, n),
            proptest::collection::vec(1u32..200, n),
            proptest::collection::vec(0u32..3, n),
        )
            .prop_map(move |(raw, dur_s, rto_s, tier)| {
                let deps = raw
                    .into_iter()
                    .enumerate()
                    .map(|(i, ix)| {
                        if i == 0 {
                            return Vec::new();
                        }
                        let mut d: Vec<usize> = ix.iter().map(|x| x.index(i)).collect();
                        d.sort_unstable();
                        d.dedup();
                        d
                    })
                    .collect();
                Dag {
                    deps,
                    dur_s,
                    rto_s,
                    tier,
                }
            })
    })
}

/// Gives every service a playbook of one `wait` step of `dur_s[i]` seconds (its estimate).
fn with_wait_playbooks(m: &mut Model, dur_s: impl Fn(usize) -> u64) {
    for (i, s) in m.services.iter_mut().enumerate() {
        s.playbook = Some(Box::new(Playbook {
            steps: vec![common::step(
                "wait",
                StepKind::Wait(Duration::from_secs(dur_s(i))),
            )],
            ..Default::default()
        }));
    }
}

fn model_of(d: &Dag) -> (Model, HashMap<String, f64>) {
    let services = (0..d.deps.len())
        .map(|i| {
            (
                Service::new(name(i), d.tier[i], Duration::from_secs(d.rto_s[i] as u64)),
                d.deps[i].iter().map(|&j| name(j)).collect(),
                Vec::new(),
            )
        })
        .collect();
    let history = (0..d.deps.len())
        .map(|i| (name(i), d.dur_s[i] as f64))
        .collect();
    (
        Model::from_parts(PathBuf::from("."), Defaults::default(), services),
        history,
    )
}

/// A plan with a small search budget: the properties hold for any budget, and a debug build
/// walks slowly.
fn plan(m: &Model, h: &HashMap<String, f64>, parallel: usize, eager: bool) -> Plan {
    build_plan(
        m,
        &PlanOptions {
            parallel: Some(parallel),
            eager,
            history: Some(h.clone()),
            search_budget: Some(48),
            ..PlanOptions::default()
        },
    )
    .expect("valid options")
}

/// Checks the invariants every planned timeline must satisfy: each service once, for its
/// duration, after its dependencies, never more than `parallel` at once, and in waves mode
/// no service of wave k before every service of wave k − 1 is ready.
fn check_timeline(m: &Model, p: &Plan, parallel: usize) -> Result<(), TestCaseError> {
    let n = m.services.len();
    let mut seen = vec![false; n];
    let mut start = vec![0; n];
    let mut ready = vec![0; n];
    for s in &p.services {
        prop_assert!(!seen[s.id], "{} scheduled twice", m.name(s.id));
        seen[s.id] = true;
        start[s.id] = s.start;
        ready[s.id] = s.ready;
        prop_assert_eq!(s.ready - s.start, s.dur);
    }
    prop_assert!(seen.iter().all(|&x| x), "every service scheduled");
    for s in &m.services {
        let id = m.id(&s.name).unwrap();
        for &d in &s.depends_on {
            prop_assert!(
                start[id] >= ready[d],
                "{} starts at {} before {} is ready at {}",
                s.name,
                start[id],
                m.name(d),
                ready[d]
            );
        }
    }
    // Sweep: ends before starts at the same instant (a freed slot is reused at once).
    // Zero-length services hold no slot for any length of time.
    let mut ev: Vec<(Ms, i32)> = Vec::new();
    for s in &p.services {
        if s.dur > 0 {
            ev.push((s.start, 1));
            ev.push((s.ready, -1));
        }
    }
    ev.sort();
    let mut running = 0i32;
    for (_, d) in ev {
        running += d;
        prop_assert!(
            running as usize <= parallel,
            "{running} running > {parallel}"
        );
    }
    prop_assert_eq!(
        p.makespan,
        p.services.iter().map(|s| s.ready).max().unwrap_or(0)
    );
    // Planned start order, and the objective is the timeline's.
    prop_assert!(p.services.windows(2).all(|w| w[0].start <= w[1].start));
    let late: Vec<_> = p.services.iter().filter(|s| s.slack < 0).collect();
    prop_assert_eq!(p.objective.breaches, late.len());
    prop_assert_eq!(
        p.objective.lateness,
        late.iter().map(|s| (-s.slack) as Ms).sum::<Ms>()
    );
    prop_assert_eq!(p.objective.makespan, p.makespan);
    prop_assert!(p.makespan >= p.makespan_lower_bound);
    if p.strategy.as_str() == "waves" {
        let nw = p.waves as usize;
        let mut first = vec![Ms::MAX; nw];
        let mut last = vec![0; nw];
        for s in &p.services {
            first[s.wave as usize] = first[s.wave as usize].min(s.start);
            last[s.wave as usize] = last[s.wave as usize].max(s.ready);
        }
        for k in 1..nw {
            prop_assert!(
                first[k] >= last[k - 1],
                "wave {} starts at {} before wave {} ends at {}",
                k,
                first[k],
                k - 1,
                last[k - 1]
            );
        }
    }
    Ok(())
}

/// The objective of a reference list schedule: whenever a slot is free, the ready service
/// (dependencies done; in waves mode, its wave open) with the smallest `key` starts. Written
/// independently of the planner, as the oracle its portfolio is checked against.
fn reference_list(
    m: &Model,
    dur: &[Ms],
    parallel: usize,
    eager: bool,
    key: &dyn Fn(SvcId, Ms, Ms) -> (i64, i64, usize),
) -> Objective {
    let n = m.services.len();
    let wave = {
        let mut w = vec![0u32; n];
        let scope = Scope::all(m);
        for id in meeseeks::plan::topo_order(m, &scope) {
            w[id] = m.services[id]
                .depends_on
                .iter()
                .map(|&d| w[d] + 1)
                .max()
                .unwrap_or(0);
        }
        w
    };
    let mut done = vec![false; n];
    let mut started = vec![false; n];
    let mut finish = vec![0 as Ms; n];
    // When each service was released (dependencies done, or its wave open).
    let mut released_at = vec![Ms::MAX; n];
    let mut running: Vec<SvcId> = Vec::new();
    let mut t: Ms = 0;
    let mut o = Objective::default();
    loop {
        let open = (0..n).filter(|&i| !done[i]).map(|i| wave[i]).min();
        let released = |i: usize, done: &[bool]| {
            if eager {
                m.services[i].depends_on.iter().all(|&d| done[d])
            } else {
                Some(wave[i]) <= open
            }
        };
        for i in 0..n {
            if !started[i] && released(i, &done) && released_at[i] == Ms::MAX {
                released_at[i] = t;
            }
        }
        while running.len() < parallel {
            let best = (0..n)
                .filter(|&i| !started[i] && released(i, &done))
                .min_by_key(|&i| key(i, t, released_at[i]));
            let Some(i) = best else { break };
            started[i] = true;
            finish[i] = t + dur[i];
            running.push(i);
            let rto = m.services[i].rto.as_millis() as Ms;
            if finish[i] > rto {
                o.breaches += 1;
                o.lateness += finish[i] - rto;
            }
            o.makespan = o.makespan.max(finish[i]);
        }
        let Some(next) = running.iter().map(|&i| finish[i]).min() else {
            break;
        };
        t = next;
        running.retain(|&i| {
            if finish[i] == t {
                done[i] = true;
            }
            finish[i] != t
        });
    }
    o
}

type SvcId = usize;

/// Every rule of the portfolio, computed by [`reference_list`].
fn reference_rules(
    m: &Model,
    h: &HashMap<String, f64>,
    parallel: usize,
    eager: bool,
) -> Vec<(Rule, Objective)> {
    let n = m.services.len();
    let scope = Scope::all(m);
    let ord = ordering_with(m, &scope, Mode::Failover, Some(h));
    let dur: Vec<Ms> = ord.dur.iter().map(|&s| to_ms(s)).collect();
    let rto: Vec<i64> = m
        .services
        .iter()
        .map(|s| s.rto.as_millis() as i64)
        .collect();
    let topo = meeseeks::plan::topo_order(m, &scope);
    // Earliest finish, classic and achievable modified deadlines, longest tails.
    let mut ef = vec![0i64; n];
    for &id in &topo {
        ef[id] = m.services[id]
            .depends_on
            .iter()
            .map(|&d| ef[d])
            .max()
            .unwrap_or(0)
            + dur[id] as i64;
    }
    let (mut dl, mut ach, mut tail) = (vec![0i64; n], vec![0i64; n], vec![0i64; n]);
    for &id in topo.iter().rev() {
        let (mut d, mut a, mut t) = (rto[id], rto[id], 0);
        for &s in &m.dependents[id] {
            d = d.min(dl[s] - dur[s] as i64);
            if ef[s] <= rto[s] {
                a = a.min(ach[s] - dur[s] as i64);
            }
            t = t.max(tail[s]);
        }
        dl[id] = d;
        ach[id] = a;
        tail[id] = t + dur[id] as i64;
    }
    let tier = |i: usize| m.services[i].tier as i64;
    Rule::ALL
        .iter()
        .map(|&rule| {
            let key = |i: SvcId, now: Ms, released: Ms| -> (i64, i64, usize) {
                match rule {
                    Rule::ModifiedDeadline => (dl[i], tier(i), i),
                    Rule::AchievableDeadline => (ach[i], tier(i), i),
                    Rule::LatestStart => (ach[i] - dur[i] as i64, tier(i), i),
                    Rule::Edf => (rto[i], tier(i), i),
                    Rule::LongestPath => (-tail[i], tier(i), i),
                    Rule::TierRto => (tier(i), rto[i], i),
                    Rule::BakerBertrand => (ach[i].max(now as i64 + dur[i] as i64), tier(i), i),
                    Rule::Fifo => (released as i64, tier(i), i),
                }
            };
            (rule, reference_list(m, &dur, parallel, eager, &key))
        })
        .collect()
}

/// Drives the walker a run uses ([`Walker::new`] with [`run_ordering`]) on a simulated clock:
/// the start and ready time of every service.
fn walk_like_a_run(
    m: &Model,
    h: &HashMap<String, f64>,
    parallel: usize,
    eager: bool,
) -> (Vec<Ms>, Vec<Ms>) {
    // `run_ordering` plans with playbook estimates; the tests' durations are history p90s, so
    // the same plan is made with them through `build_plan` and compared below instead.
    let _ = h;
    let scope = Scope::all(m);
    let mode = if eager {
        WalkMode::Eager
    } else {
        WalkMode::Waves
    };
    let ord = run_ordering(m, &scope, Mode::Failover, mode, parallel);
    let dur: Vec<Ms> = ord.dur.iter().map(|&s| to_ms(s)).collect();
    let mut w = Walker::new(m, &scope, &ord, mode, parallel, &[]);
    let n = m.services.len();
    let (mut start, mut ready) = (vec![0; n], vec![0; n]);
    let mut running: Vec<SvcId> = Vec::new();
    let mut t = 0;
    loop {
        while let Some(id) = w.next_ready() {
            start[id] = t;
            ready[id] = t + dur[id];
            running.push(id);
        }
        let Some(next) = running.iter().map(|&i| ready[i]).min() else {
            break;
        };
        t = next;
        // All completions at this instant before anything new starts, in id order.
        running.sort_unstable();
        for &i in running.iter().filter(|&&i| ready[i] == t) {
            w.complete(i, true);
        }
        running.retain(|&i| ready[i] != t);
    }
    assert!(w.is_done());
    assert!((0..n).all(|i| w.state(i) == SvcState::Recovered));
    (start, ready)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Valid in both modes, never worse than any rule of the portfolio (each recomputed by an
    /// independent list scheduler), eager never worse than waves, deterministic.
    #[test]
    fn plans_are_valid_and_beat_every_rule(d in dag(30), parallel in 1usize..6) {
        let (m, h) = model_of(&d);
        let waves = plan(&m, &h, parallel, false);
        check_timeline(&m, &waves, parallel)?;
        let eager = plan(&m, &h, parallel, true);
        check_timeline(&m, &eager, parallel)?;
        prop_assert!(eager.objective <= waves.objective);
        prop_assert_eq!(eager.makespan_waves, waves.makespan);
        prop_assert_eq!(waves.makespan_eager, eager.makespan);
        prop_assert!(eager.makespan >= eager.critical_path_len);
        for (p, is_eager) in [(&waves, false), (&eager, true)] {
            let b = p.lower_bound;
            let o = p.objective;
            prop_assert!(b.breaches <= o.breaches && b.lateness <= o.lateness && b.makespan <= o.makespan,
                "bound {:?} above the plan {:?}", b, o);
            let reference = reference_rules(&m, &h, parallel, is_eager);
            prop_assert_eq!(&p.search.rules, &reference, "the portfolio's schedules");
            for (rule, o) in &reference {
                prop_assert!(p.objective <= *o, "{} beats the plan: {:?} < {:?}", rule.as_str(), o, p.objective);
            }
        }
        // Same input, byte-identical output.
        let again = plan(&m, &h, parallel, true);
        prop_assert_eq!(
            meeseeks::report::plan::render_json(&eager, &m),
            meeseeks::report::plan::render_json(&again, &m)
        );
    }

    /// The plan's timeline is what the walker does with the plan's priority list — the same
    /// walker and the same list a run uses — in both modes, with and without a cap.
    #[test]
    fn the_walker_follows_the_plan(d in dag(24), parallel in 0usize..6) {
        let (mut m, _) = model_of(&d);
        // Playbook estimates: what `run_ordering` plans with.
        let ids: Vec<usize> = (0..d.deps.len()).map(|i| m.id(&name(i)).unwrap()).collect();
        let mut dur = vec![0; m.services.len()];
        for (i, &id) in ids.iter().enumerate() {
            dur[id] = d.dur_s[i] as u64;
        }
        with_wait_playbooks(&mut m, |id| dur[id]);
        let h = HashMap::new();
        for eager in [false, true] {
            let cap = if parallel == 0 { m.services.len() } else { parallel };
            let p = build_plan(&m, &PlanOptions { parallel: Some(cap), eager, ..Default::default() }).unwrap();
            let (start, ready) = walk_like_a_run(&m, &h, parallel, eager);
            for s in &p.services {
                prop_assert_eq!((start[s.id], ready[s.id]), (s.start, s.ready), "{}", m.name(s.id));
            }
        }
    }

    /// With unlimited parallelism, eager mode starts every service as soon as its
    /// dependencies are ready: the makespan is the critical path.
    #[test]
    fn unlimited_eager_is_the_critical_path(d in dag(40)) {
        let (m, h) = model_of(&d);
        let p = plan(&m, &h, m.services.len(), true);
        check_timeline(&m, &p, m.services.len())?;
        prop_assert_eq!(p.makespan, p.critical_path_len);
        prop_assert_eq!(p.search.optimality, Optimality::NoContention);
        for s in &p.services {
            prop_assert_eq!(s.ready, s.earliest_ready);
        }
        let sum: Ms = p.critical_path.iter().map(|&c| to_ms(h[m.name(c)])).sum();
        prop_assert_eq!(sum, p.critical_path_len);
        for w in p.critical_path.windows(2) {
            prop_assert!(m.services[w[1]].depends_on.contains(&w[0]));
        }
    }

    /// Breach analysis agrees with the timeline; chains are real dependency chains, bounded
    /// past the worst ones.
    #[test]
    fn breaches_match_slack(d in dag(40), parallel in 1usize..4) {
        let (m, h) = model_of(&d);
        let p = plan(&m, &h, parallel, false);
        let late: Vec<usize> = p.services.iter().filter(|s| s.slack < 0).map(|s| s.id).collect();
        prop_assert_eq!(late.len(), p.breaches.len());
        let by_id: HashMap<usize, &meeseeks::plan::PlannedService> = p.services.iter().map(|s| (s.id, s)).collect();
        for (k, b) in p.breaches.iter().enumerate() {
            prop_assert_eq!(*b.chain.last().unwrap(), b.id);
            prop_assert!(b.chain.len() <= b.chain_len);
            if k < meeseeks::plan::EXPANDED {
                prop_assert_eq!(b.chain.len(), b.chain_len);
            } else {
                prop_assert!(b.chain.len() <= meeseeks::plan::CHAIN_TAIL);
            }
            for w in b.chain.windows(2) {
                prop_assert!(m.services[w[1]].depends_on.contains(&w[0]));
                // Each element is the dependency its successor waited for last.
                prop_assert_eq!(by_id[&w[1]].waited_for, Some(w[0]));
            }
        }
        for u in &p.unachievable {
            prop_assert!(u.earliest_ready > u.rto);
            prop_assert!(p.breaches.iter().any(|b| b.id == u.id && b.unachievable));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Independent services with equal estimates, where the parallelism alone decides: the
    /// plan is the exact optimum (an independent solver's), and its lower bound below it.
    #[test]
    fn slots_alone_bound_equal_estimates(rtos in proptest::collection::vec(1u64..12, 2..8), parallel in 1usize..4) {
        let n = rtos.len();
        let inst = quality::Inst {
            deps: vec![Vec::new(); n],
            dur: vec![60; n],
            rto: rtos.iter().map(|r| r * 30).collect(),
            tier: vec![1; n],
            parallel,
            kind: "tight",
        };
        for eager in [false, true] {
            let opt = quality::optimum(&inst, eager);
            let p = inst.plan(eager, true, None);
            prop_assert_eq!(p.objective, opt);
            let b = p.lower_bound;
            prop_assert!(b.breaches <= opt.breaches && b.lateness <= opt.lateness && b.makespan <= opt.makespan,
                "bound {:?} above the optimum {:?}", b, opt);
        }
    }

    /// On small instances the plan is optimal (the exact search), as an independent exact
    /// solver (dynamic programming over event times) confirms, and says so.
    #[test]
    fn small_plans_are_optimal(seed in any::<u64>(), n in 3usize..8, parallel in 1usize..4, kind in 0usize..4, equal in any::<bool>()) {
        let mut rng = quality::Rng::new(seed);
        let mut inst = quality::generate(&mut rng, n, parallel, ["tight", "loose", "mixed", "planted"][kind]);
        if equal && kind != 3 {
            // Equal estimates (a graph planned on `defaults.estimate`): where the parallelism's
            // bound on breaches and lateness is tight.
            inst.dur.iter_mut().for_each(|d| *d = 60);
        }
        for eager in [false, true] {
            let opt = quality::optimum(&inst, eager);
            let p = inst.plan(eager, true, None);
            prop_assert_eq!(p.objective, opt, "eager {}", eager);
            // The lower bound is one: no component above the optimum's.
            let b = p.lower_bound;
            prop_assert!(b.breaches <= opt.breaches && b.lateness <= opt.lateness && b.makespan <= opt.makespan,
                "bound {:?} above the optimum {:?} (eager {})", b, opt, eager);
            prop_assert!(p.search.optimality != Optimality::Unknown);
            if kind == 3 && eager {
                prop_assert_eq!(opt.breaches, 0, "planted: a schedule without breach exists");
            }
        }
    }
}

/// An instance from the issue: (name, duration s, RTO s, dependencies).
fn reproducer(spec: &[(&str, u64, u64, &[&str])], parallel: usize, eager: bool) -> (Model, Plan) {
    let services = spec
        .iter()
        .map(|(n, _, rto, deps)| {
            (
                Service::new(*n, 1, Duration::from_secs(*rto)),
                deps.iter().map(|d| d.to_string()).collect(),
                Vec::new(),
            )
        })
        .collect();
    // One `wait` step per service, whose estimate is its duration (as in the issue).
    let mut m = Model::from_parts(PathBuf::from("."), Defaults::default(), services);
    let dur: HashMap<String, u64> = spec
        .iter()
        .map(|(n, d, _, _)| (n.to_string(), *d))
        .collect();
    let names: Vec<String> = m.services.iter().map(|s| s.name.clone()).collect();
    with_wait_playbooks(&mut m, |id| dur[&names[id]]);
    let p = build_plan(
        &m,
        &PlanOptions {
            parallel: Some(parallel),
            eager,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    (m, p)
}

/// The parallelism's lower bound on breaches is the most RTOs that can be met, not those the
/// RTO-sorted matching meets: with one slot, 10 s each, RTOs of 9 s and 15 s, the best order
/// breaches one (b first), and the bound must not say two.
#[test]
fn the_slots_bound_counts_the_rtos_that_can_be_met() {
    for eager in [false, true] {
        let (_, p) = reproducer(&[("a", 10, 9, &[]), ("b", 10, 15, &[])], 1, eager);
        assert_eq!(p.objective.breaches, 1);
        assert_eq!(p.lower_bound.breaches, 1, "eager {eager}");
        assert!(p.lower_bound.lateness <= p.objective.lateness);
    }
}

/// (name, start in seconds) by start, then name.
fn starts(m: &Model, p: &Plan) -> Vec<(String, Ms)> {
    let mut v: Vec<(String, Ms)> = p
        .services
        .iter()
        .map(|s| (m.name(s.id).to_string(), s.start / 1000))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

/// Issue 17, reproducer 1 (P = 1): a's RTO is unachievable (b alone takes 300 s of its
/// 300 s); pulling b ahead for it made c late too. The optimum breaches only a (late by 90 s,
/// makespan 390 s: c, b, a or b, c, a).
#[test]
fn reproducer_1_unachievable_rto_does_not_drag_its_chain_ahead() {
    let spec: &[(&str, u64, u64, &[&str])] = &[
        ("a", 30, 300, &["b"]),
        ("b", 300, 420, &[]),
        ("c", 60, 360, &[]),
    ];
    for eager in [false, true] {
        let (m, p) = reproducer(spec, 1, eager);
        assert_eq!(
            p.objective,
            Objective {
                breaches: 1,
                lateness: 90_000,
                makespan: 390_000
            },
            "{:?}",
            starts(&m, &p)
        );
        assert_eq!(m.name(p.breaches[0].id), "a");
        assert!(p.breaches[0].unachievable);
        assert_ne!(p.search.optimality, Optimality::Unknown);
    }
    // The classic modified-deadline rule alone runs b first and breaches twice.
    let (_, p) = reproducer(spec, 1, true);
    assert_eq!(p.search.rules[0].0, Rule::ModifiedDeadline);
    assert_eq!(p.search.rules[0].1.breaches, 2);
}

/// Reproducer 2 (P = 2): falling back to waves for its shorter makespan doubled the
/// breaches. The optimum has none, with makespan 390 s.
#[test]
fn reproducer_2_no_fallback_that_adds_breaches() {
    let spec: &[(&str, u64, u64, &[&str])] = &[
        ("a", 30, 360, &["e"]),
        ("b", 60, 360, &[]),
        ("c", 360, 360, &[]),
        ("d", 30, 480, &["c"]),
        ("e", 30, 120, &[]),
    ];
    let (m, p) = reproducer(spec, 2, true);
    assert_eq!(p.objective.breaches, 0, "{:?}", starts(&m, &p));
    assert_eq!(p.makespan, 390_000);
    assert_ne!(p.search.optimality, Optimality::Unknown);
    // Waves mode cannot do it without a breach; eager is never worse than waves.
    let (_, w) = reproducer(spec, 2, false);
    assert!(p.objective <= w.objective);
}

/// Reproducer 3 (P = 2): every list schedule starts d at 0 and breaches once; leaving a slot
/// free at 0 (d held back until the services planned before it have started) meets all.
#[test]
fn reproducer_3_deliberate_idle_time() {
    let spec: &[(&str, u64, u64, &[&str])] = &[
        ("a", 30, 180, &[]),
        ("b", 120, 360, &["a"]),
        ("c", 240, 360, &["a"]),
        ("d", 270, 660, &[]),
    ];
    let (m, p) = reproducer(spec, 2, true);
    assert_eq!(p.objective.breaches, 0, "{:?}", starts(&m, &p));
    assert_eq!(
        starts(&m, &p),
        [
            ("a".to_string(), 0),
            ("b".into(), 30),
            ("c".into(), 30),
            ("d".into(), 150)
        ]
    );
    let d = p.services.iter().find(|s| m.name(s.id) == "d").unwrap();
    assert!(d.held, "d is held back");
    assert!(p.services.iter().filter(|s| s.held).count() == 1);
    // Every single rule (list scheduling) breaches once.
    assert!(p.search.rules.iter().all(|(_, o)| o.breaches == 1));
    assert_eq!(p.search.optimality, Optimality::Exact);
    // A run walks the same: d waits although a slot is free at 0.
    let scope = Scope::all(&m);
    let ord = run_ordering(&m, &scope, Mode::Failover, WalkMode::Eager, 2);
    assert!(ord.held[m.id("d").unwrap()]);
    let mut w = Walker::new(&m, &scope, &ord, WalkMode::Eager, 2, &[]);
    assert_eq!(w.next_ready().map(|i| m.name(i)), Some("a"));
    assert_eq!(w.next_ready(), None, "the second slot stays free");
}

/// `--estimates history`: measured p90s replace the playbook/default estimate of the services
/// that have one, and the report says which source each number came from.
#[test]
fn history_estimates_are_used_and_labelled() {
    let services = vec![
        (
            Service::new("db", 0, Duration::from_secs(600)),
            vec![],
            vec![],
        ),
        (
            Service::new("api", 1, Duration::from_secs(900)),
            vec!["db".to_string()],
            vec![],
        ),
    ];
    let m = Model::from_parts(PathBuf::from("."), Defaults::default(), services);
    let h: HashMap<String, f64> = [("db".to_string(), 42.5)].into_iter().collect();
    let p = plan(&m, &h, 4, false);
    let db = p.services.iter().find(|s| m.name(s.id) == "db").unwrap();
    let api = p.services.iter().find(|s| m.name(s.id) == "api").unwrap();
    assert_eq!(db.dur, 42_500);
    assert_eq!(db.estimate.source.as_str(), "history");
    // No history for api: defaults.estimate (5m).
    assert_eq!(api.dur, 300_000);
    assert_eq!(api.estimate.source.as_str(), "default");
    assert_eq!(api.start, 42_500);
    let json = meeseeks::report::plan::render_json(&p, &m);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["estimates"], "history");
    assert_eq!(v["services"][0]["estimate_source"], "history");
    assert_eq!(v["services"][0]["estimate_s"], 42.5);
}

/// Quality on the quality benchmark's small instances (a sample; the benchmark runs more):
/// the plan without its exact search is still optimal on nearly all of them.
#[test]
fn improvement_search_is_nearly_optimal() {
    let mut rng = quality::Rng::new(99);
    let (mut cases, mut optimal) = (0, 0);
    for k in 0..24 {
        let inst = quality::generate(
            &mut rng,
            6 + k % 3,
            1 + k % 3,
            ["tight", "mixed", "planted"][k % 3],
        );
        let opt = quality::optimum(&inst, true);
        let p = inst.plan(true, false, None);
        assert!(p.objective >= opt, "never better than the optimum");
        cases += 1;
        optimal += (p.objective == opt) as usize;
    }
    assert!(optimal * 10 >= cases * 8, "{optimal} of {cases} optimal");
}
