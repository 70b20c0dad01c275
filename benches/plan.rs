//! Planner benchmarks on generated graphs (10k and 100k services, both shapes of
//! `examples/gen_graph.rs`: layered, and the breach-heavy one of issue 10): `build_plan` alone
//! and `build_plan` + JSON rendering, built in memory.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use meeseeks::plan::{PlanOptions, build_plan};
use meeseeks::report::plan::render_json;

#[allow(dead_code)]
#[path = "../examples/gen_graph.rs"]
mod gen_graph;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    for (shape, n) in [
        ("layered", 10_000usize),
        ("layered", 100_000),
        ("breachy", 10_000),
        ("breachy", 100_000),
    ] {
        let Some(g) = gen_graph::generate_shape(shape, n, 42) else {
            unreachable!("known shape")
        };
        let model = gen_graph::to_model(&g);
        let opts = PlanOptions::default();
        group.bench_function(format!("build_plan/{shape}/{n}"), |b| {
            b.iter(|| black_box(build_plan(&model, &opts).map(|p| p.makespan)))
        });
        let eager = PlanOptions {
            eager: true,
            ..PlanOptions::default()
        };
        group.bench_function(format!("build_plan_eager+json/{shape}/{n}"), |b| {
            b.iter(|| {
                let p = build_plan(&model, &eager).ok();
                black_box(p.map(|p| render_json(&p, &model).len()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
