//! Journal throughput: group commit vs one fsync per event, on the real file system.
//!
//! Two workloads:
//! - `burst`: one emitter queues N events and then closes the journal (a wave of services
//!   starting at once);
//! - `durable_waiters`: 16 concurrent emitters each wait for their event to be durable before
//!   emitting the next one (the runner's worst case: every event awaited).
//!
//! Run with `cargo bench --bench journal`; `MEESEEKS_BENCH_DIR` picks the directory (default:
//! the system temp dir, which should be on a real disk for the numbers to mean anything).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meeseeks::events::Event;
use meeseeks::mask::Masker;
use meeseeks::store::file::{JournalWriter, SyncPolicy};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("MEESEEKS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn event(i: usize) -> Event {
    Event::StepSucceeded {
        service: format!("service-{}", i % 97),
        step: "scale up in DR site".to_string(),
        attempts: 1,
        duration_s: 1.25,
    }
}

fn burst(rt: &tokio::runtime::Runtime, policy: SyncPolicy, n: usize) {
    let dir = bench_dir();
    rt.block_on(async {
        let j = JournalWriter::create_with(dir.path(), Masker::new(), policy).unwrap();
        for i in 0..n {
            j.emit(event(i));
        }
        j.close().await.unwrap();
    });
}

fn durable_waiters(rt: &tokio::runtime::Runtime, policy: SyncPolicy, n: usize) {
    let dir = bench_dir();
    let tasks = 16;
    rt.block_on(async {
        let j = JournalWriter::create_with(dir.path(), Masker::new(), policy).unwrap();
        let mut hs = Vec::new();
        for t in 0..tasks {
            let j = j.clone();
            hs.push(tokio::spawn(async move {
                for i in 0..n / tasks {
                    let seq = j.emit(event(t * 1000 + i)).seq;
                    j.durable(seq).await.unwrap();
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        j.close().await.unwrap();
    });
}

fn journal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("journal");
    g.sample_size(10);
    for (name, policy, n) in [
        ("group", SyncPolicy::Group, 2000),
        ("per_event", SyncPolicy::PerRecord, 200),
    ] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("burst", name), &n, |b, &n| {
            b.iter(|| burst(&rt, policy, n))
        });
        g.bench_with_input(BenchmarkId::new("durable_waiters", name), &n, |b, &n| {
            b.iter(|| durable_waiters(&rt, policy, n))
        });
    }
    g.finish();
}

/// Replay cost: parse + fold of a 100 000-record journal (1 000 services × 100 events), what
/// `status`, `report` and `resume` pay before doing anything.
fn replay(c: &mut Criterion) {
    use meeseeks::events::Record;
    let dir = bench_dir();
    let path = dir.path().join("journal.jsonl");
    let mut text = String::new();
    let t0 = jiff::Timestamp::now();
    let mut seq = 0u64;
    for round in 0..100u32 {
        for s in 0..1000 {
            seq += 1;
            let service = format!("service-{s}");
            let event = if round == 0 {
                Event::ServiceStarted { service }
            } else {
                Event::StepStarted {
                    service,
                    step: format!("step-{}", round % 10),
                    attempt: 1,
                    action: None,
                }
            };
            let rec = Record { seq, ts: t0, event };
            text.push_str(&serde_json::to_string(&rec).unwrap());
            text.push('\n');
        }
    }
    std::fs::write(&path, text).unwrap();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(seq));
    g.bench_function("read_and_fold_100k", |b| {
        b.iter(|| {
            let r = meeseeks::store::file::read_journal(&path).unwrap();
            meeseeks::runstate::RunState::fold(&r.records)
        })
    });
    g.finish();
}

criterion_group!(benches, journal, replay);
criterion_main!(benches);
