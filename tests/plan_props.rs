//! Properties of the planner on random DAGs, and the priority rule that makes it RTO-aware.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use meeseeks::model::{Defaults, Mode, Model, Service};
use meeseeks::plan::schedule::{self, Inputs, Ms, UNLIMITED};
use meeseeks::plan::{Plan, PlanOptions, Scope, build_plan, ordering_with, to_ms};
use proptest::prelude::*;

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

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..40).prop_flat_map(|n| {
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

fn plan(m: &Model, h: &HashMap<String, f64>, parallel: usize, eager: bool) -> Plan {
    build_plan(
        m,
        &PlanOptions {
            parallel: Some(parallel),
            eager,
            history: Some(h.clone()),
            ..PlanOptions::default()
        },
    )
    .expect("valid options")
}

/// Checks the invariants every planned timeline must satisfy.
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
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn schedules_are_valid(d in dag(), parallel in 1usize..6) {
        let (m, h) = model_of(&d);
        let waves = plan(&m, &h, parallel, false);
        check_timeline(&m, &waves, parallel)?;
        // Waves: no service of wave k starts before every service of wave k-1 is ready.
        let nw = waves.waves as usize;
        let mut first = vec![Ms::MAX; nw];
        let mut last = vec![0; nw];
        for s in &waves.services {
            first[s.wave as usize] = first[s.wave as usize].min(s.start);
            last[s.wave as usize] = last[s.wave as usize].max(s.ready);
        }
        for k in 1..nw {
            prop_assert!(first[k] >= last[k - 1], "wave {} starts at {} before wave {} ends at {}", k, first[k], k - 1, last[k - 1]);
        }
        let eager = plan(&m, &h, parallel, true);
        check_timeline(&m, &eager, parallel)?;
        prop_assert!(eager.makespan <= waves.makespan);
        prop_assert_eq!(eager.makespan_waves, waves.makespan);
        prop_assert_eq!(eager.makespan_eager, eager.makespan);
        prop_assert!(eager.makespan >= eager.critical_path_len);
        // Same input, byte-identical output.
        let again = plan(&m, &h, parallel, true);
        prop_assert_eq!(
            meeseeks::report::plan::render_json(&eager, &m),
            meeseeks::report::plan::render_json(&again, &m)
        );
    }

    #[test]
    fn unlimited_eager_is_the_critical_path(d in dag()) {
        let (m, h) = model_of(&d);
        let p = plan(&m, &h, m.services.len(), true);
        check_timeline(&m, &p, m.services.len())?;
        prop_assert_eq!(p.makespan, p.critical_path_len);
        prop_assert!(!p.eager_fallback);
        // Every service is ready exactly at its earliest possible time.
        for s in &p.services {
            prop_assert_eq!(s.ready, s.earliest_ready);
        }
        // The critical path is a real dependency chain whose durations add up to its length.
        let sum: Ms = p.critical_path.iter().map(|&c| to_ms(h[m.name(c)])).sum();
        prop_assert_eq!(sum, p.critical_path_len);
        for w in p.critical_path.windows(2) {
            prop_assert!(m.services[w[1]].depends_on.contains(&w[0]));
        }
    }

    /// Breach analysis agrees with the timeline.
    #[test]
    fn breaches_match_slack(d in dag(), parallel in 1usize..4) {
        let (m, h) = model_of(&d);
        let p = plan(&m, &h, parallel, false);
        let late: Vec<usize> = p.services.iter().filter(|s| s.slack < 0).map(|s| s.id).collect();
        prop_assert_eq!(late.len(), p.breaches.len());
        for b in &p.breaches {
            prop_assert_eq!(*b.chain.last().unwrap(), b.id);
            for w in b.chain.windows(2) {
                prop_assert!(m.services[w[1]].depends_on.contains(&w[0]));
            }
        }
        for u in &p.unachievable {
            prop_assert!(u.earliest_ready > u.rto);
            // Unachievable with unlimited parallelism ⇒ breached with any limit.
            prop_assert!(p.breaches.iter().any(|b| b.id == u.id && b.unachievable));
        }
    }
}

/// Raw eager list scheduling (without the fallback to the waves schedule) can be slower than
/// waves: a list-scheduling anomaly. This documents a concrete case, which is why
/// `build_plan` reports min(eager, waves) and says so with `eager_fallback`.
#[test]
fn eager_anomaly_is_absorbed_by_fallback() {
    // Search small deterministic instances for one and check the fallback on it.
    let mut found = false;
    'outer: for seed in 0u64..2000 {
        let mut r = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = |k: u64| {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) % k
        };
        let n = 6 + next(5) as usize;
        let d = Dag {
            deps: (0..n)
                .map(|i| {
                    let mut v: Vec<usize> = (0..next(3))
                        .filter(|_| i > 0)
                        .map(|_| next(i as u64) as usize)
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                })
                .collect(),
            dur_s: (0..n).map(|_| 1 + next(12) as u32).collect(),
            rto_s: (0..n).map(|_| 1 + next(60) as u32).collect(),
            tier: vec![1; n],
        };
        let (m, h) = model_of(&d);
        for parallel in 1..4 {
            let scope = Scope::all(&m);
            let ord = ordering_with(&m, &scope, Mode::Failover, Some(&h));
            let dur: Vec<Ms> = ord.dur.iter().map(|&s| to_ms(s)).collect();
            let inp = Inputs {
                model: &m,
                scope: &scope,
                wave: &ord.wave,
                dur: &dur,
                rank: &ord.rank,
                parallel,
            };
            let (w, e) = (schedule::waves(inp), schedule::eager(inp));
            if e.makespan > w.makespan {
                let p = plan(&m, &h, parallel, true);
                assert!(p.eager_fallback);
                assert_eq!(p.makespan, w.makespan);
                found = true;
                break 'outer;
            }
        }
    }
    assert!(found, "the search is deterministic and finds an anomaly");
}

/// Under `--parallel 1 --eager`, only the modified-deadline priority meets every RTO:
/// earliest-RTO-first and name order both breach `c`.
///
/// a: 10s, RTO 30s. b: 10s, RTO 1000s. c: needs b, 10s, RTO 20s.
/// d'(c) = 20, d'(b) = min(1000, 20 − 10) = 10, d'(a) = 30 → b, c, a: ready 10, 20, 30.
/// Earliest RTO first: a (30) before b (1000) → a, b, c: c ready at 30 > 20.
/// Name order: a, b, c: the same breach.
#[test]
fn only_modified_deadlines_meet_every_rto() {
    let d = Dag {
        deps: vec![vec![], vec![], vec![1]],
        dur_s: vec![10, 10, 10],
        rto_s: vec![30, 1000, 20],
        tier: vec![1, 1, 1],
    };
    let services = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                Service::new(*n, 1, Duration::from_secs(d.rto_s[i] as u64)),
                d.deps[i]
                    .iter()
                    .map(|&j| ["a", "b", "c"][j].to_string())
                    .collect(),
                Vec::new(),
            )
        })
        .collect();
    let m = Model::from_parts(PathBuf::from("."), Defaults::default(), services);
    let h: HashMap<String, f64> = ["a", "b", "c"]
        .iter()
        .map(|n| (n.to_string(), 10.0))
        .collect();

    let p = plan(&m, &h, 1, true);
    assert!(p.breaches.is_empty(), "modified deadlines meet every RTO");
    let order: Vec<&str> = p.services.iter().map(|s| m.name(s.id)).collect();
    assert_eq!(order, ["b", "c", "a"]);

    let scope = Scope::all(&m);
    let ord = ordering_with(&m, &scope, Mode::Failover, Some(&h));
    let dur: Vec<Ms> = ord.dur.iter().map(|&s| to_ms(s)).collect();
    let breaches_with = |rank: &[u32]| {
        let s = schedule::eager(Inputs {
            model: &m,
            scope: &scope,
            wave: &ord.wave,
            dur: &dur,
            rank,
            parallel: 1,
        });
        (0..3)
            .filter(|&i| s.ready[i] > m.services[i].rto.as_millis() as Ms)
            .map(|i| m.name(i).to_string())
            .collect::<Vec<_>>()
    };
    assert!(breaches_with(&ord.rank).is_empty());
    // Earliest (own) RTO first, ties by tier then name.
    let mut edf: Vec<usize> = (0..3).collect();
    edf.sort_by_key(|&i| (m.services[i].rto, m.services[i].tier, i));
    let mut edf_rank = vec![0u32; 3];
    for (r, &i) in edf.iter().enumerate() {
        edf_rank[i] = r as u32;
    }
    assert_eq!(breaches_with(&edf_rank), ["c"]);
    // Name order.
    assert_eq!(breaches_with(&[0, 1, 2]), ["c"]);
    // Unlimited parallelism meets everything whatever the order.
    let s = schedule::eager(Inputs {
        model: &m,
        scope: &scope,
        wave: &ord.wave,
        dur: &dur,
        rank: &[0, 1, 2],
        parallel: UNLIMITED,
    });
    assert_eq!(s.makespan, 20_000);
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
