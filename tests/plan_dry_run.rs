//! A dry-run does what the plan says: the runner, driven by the simulated executor on a
//! paused clock, starts and recovers every service at the planned times — on the bundled
//! example and on generated graphs, in both modes, with and without a parallel cap.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use meeseeks::exec::{RunnerInput, SimExecutor};
use meeseeks::model::{Model, Step, StepKind};
use meeseeks::plan::{PlanOptions, build_plan};

/// The planned (start, ready) and the dry-run's, in milliseconds, for every service.
fn compare(model: &Model, eager: bool, parallel: usize) {
    let n = model.services.len();
    let plan = build_plan(
        model,
        &PlanOptions {
            // The runner's 0 means unlimited; the planner's equivalent is a slot per service.
            parallel: Some(if parallel == 0 { n } else { parallel }),
            eager,
            ..Default::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), parallel);
    opts.config.dry_run = true;
    opts.config.eager = eager;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let out = rt.block_on(execute_with(
        model.clone(),
        opts,
        RunnerInput::default(),
        auto(),
        Arc::new(SimExecutor),
        |_| {},
    ));
    assert_eq!(out.report.exit_code, 0);
    let ms = |s: Option<f64>| (s.expect("started and recovered") * 1000.0).round() as u64;
    let mut mismatches = Vec::new();
    for p in &plan.services {
        let name = model.name(p.id);
        let r = out
            .report
            .state
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap();
        let got = (ms(r.started_s), ms(r.recovered_s));
        if got != (p.start, p.ready) {
            mismatches.push(format!(
                "{name}: planned {}–{}, dry-run {}–{}",
                p.start, p.ready, got.0, got.1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "eager {eager}, parallel {parallel}: {} of {n} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn dry_run_is_the_plan_on_the_shop() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let (model, _) = meeseeks::load::load(&dir, &Default::default())
        .into_result(false)
        .unwrap();
    for eager in [false, true] {
        for parallel in [model.defaults.parallel, 2, 0] {
            compare(&model, eager, parallel);
        }
    }
}

/// A generated graph whose services each wait a whole number of seconds (no rounding between
/// the plan's milliseconds and the clock's), with many ties at the same instant.
fn generated(n: usize, seed: u64) -> Model {
    let mut state = seed;
    let mut next = move |k: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % k
    };
    let dir = std::env::temp_dir();
    let svcs: Vec<Svc> = (0..n)
        .map(|i| {
            let name: &'static str = Box::leak(format!("s{i:03}").into_boxed_str());
            let deps: Vec<&'static str> = (0..next(4))
                .filter(|_| i > 0)
                .map(|_| {
                    let j = i - 1 - next(i.min(12) as u64) as usize;
                    &*Box::leak(format!("s{j:03}").into_boxed_str())
                })
                .collect();
            let mut deps = deps;
            deps.sort_unstable();
            deps.dedup();
            let secs = 10 * (1 + next(12));
            let wait: Step = step("wait", StepKind::Wait(Duration::from_secs(secs)));
            let mut s = svc(name, &deps, vec![wait]);
            // RTOs from tight to loose, so that the search has breaches to work on.
            s.rto = Duration::from_secs(60 + 60 * next(20));
            s
        })
        .collect();
    model(&dir, svcs)
}

#[test]
fn dry_run_is_the_plan_on_generated_graphs() {
    for seed in 0..6 {
        let model = generated(60, seed);
        for eager in [false, true] {
            for parallel in [1, 3, 8, 0] {
                compare(&model, eager, parallel);
            }
        }
    }
}
