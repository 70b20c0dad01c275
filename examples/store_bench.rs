//! Journal throughput of a store (`bench/etcd.sh` runs it against a three-member etcd
//! cluster and the file store): events/s with group commit — emit a burst, then wait for the
//! last to be durable — against one commit per event — wait for each before emitting the next.
//!
//! `cargo run --release --example store_bench -- STORE_URL_OR_DIR [EVENTS]`

use std::time::Instant;

use meeseeks::events::Event;
use meeseeks::mask::Masker;
use meeseeks::model::Mode;
use meeseeks::runconfig::RunConfig;
use meeseeks::store::{RunMeta, Store, StoreSpec};

fn event(i: usize) -> Event {
    Event::StepSucceeded {
        service: format!("service-{}", i % 97),
        step: "scale up in DR site".to_string(),
        attempts: 1,
        duration_s: 1.25,
    }
}

/// Opens a fresh run in the store and returns its journal (and lease, kept alive).
async fn journal(
    store: &Store,
    tag: &str,
) -> (meeseeks::store::Lease, meeseeks::store::JournalHandle) {
    let id = format!(
        "{}-{tag}",
        meeseeks::store::new_run_id(jiff::Timestamp::now())
    );
    let meta = RunMeta::new::<&str, &[u8]>(
        &id,
        &RunConfig::new(Mode::Drill),
        std::path::Path::new("/bench"),
        jiff::Timestamp::now(),
        &[],
    );
    let lease = store.begin(&meta).await.expect("begin");
    let j = lease.journal(Masker::new()).await.expect("journal");
    (lease, j)
}

/// Gives the run up so that the next one may start in the same store.
async fn finish(lease: meeseeks::store::Lease, j: meeseeks::store::JournalHandle) {
    j.emit(Event::RunAbandoned { by: "bench".into() });
    j.close().await.expect("close");
    lease.release().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: store_bench STORE_URL_OR_DIR [EVENTS]");
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("EVENTS"))
        .unwrap_or(2000);
    let spec = StoreSpec::parse(&url, std::env::temp_dir()).expect("store");
    let store = Store::open(&spec, true).await.expect("open");

    let (lease, j) = journal(&store, "group").await;
    let t = Instant::now();
    let mut last = 0;
    for i in 0..n {
        last = j.emit(event(i)).seq;
    }
    j.durable(last).await.expect("durable");
    let group = t.elapsed();
    let batches = j.batches();
    finish(lease, j).await;

    let m = (n / 10).max(20);
    let (lease, j) = journal(&store, "single").await;
    let t = Instant::now();
    for i in 0..m {
        let seq = j.emit(event(i)).seq;
        j.durable(seq).await.expect("durable");
    }
    let single = t.elapsed();
    finish(lease, j).await;

    let g = n as f64 / group.as_secs_f64();
    let s = m as f64 / single.as_secs_f64();
    println!("store: {spec}");
    println!("group commit      : {n} events in {group:.3?} ({batches} commits) = {g:.0} events/s");
    println!("one commit / event: {m} events in {single:.3?} = {s:.0} events/s");
    println!("ratio             : {:.1}x", g / s);
}
