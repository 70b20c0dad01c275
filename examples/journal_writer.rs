//! A journal writer that never stops: the child process of the journal crash test
//! (`tests/journal.rs`, which SIGKILLs it mid-write). Takes the run's lock in the run
//! directory given as its argument, journals events forever in bursts, and prints `durable N`
//! each time record N is on disk.

use meeseeks::events::Event;
use meeseeks::mask::Masker;
use meeseeks::model::Mode;
use meeseeks::runconfig::RunConfig;
use meeseeks::store::file::{JournalWriter, RunLock};

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: journal_writer RUN_DIR");
    let dir = std::path::PathBuf::from(dir);
    let _lock = RunLock::acquire(&dir).expect("the run's lock");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (j, _) = JournalWriter::append_existing(&dir, Masker::new()).expect("journal");
        j.emit(Event::RunStarted {
            run_id: "20261126T081000Z-0001".into(),
            mode: Mode::Drill,
            dir: "/dr".into(),
            declared_at: jiff::Timestamp::now(),
            services: vec!["orders-db".into()],
            options: Box::new(RunConfig::new(Mode::Drill)),
            input_hash: "abc".into(),
            plan: vec![],
            holder: None,
        });
        let mut i = 0u64;
        loop {
            i += 1;
            // Several events per durable wait, so batches and torn tails are likely.
            let mut last = 0;
            for k in 0..8 {
                last = j
                    .emit(Event::StepAttemptFailed {
                        service: "orders-db".into(),
                        step: "promote".into(),
                        attempt: (i * 8 + k) as u32,
                        error: "x".repeat(2000),
                        output: String::new(),
                    })
                    .seq;
            }
            j.durable(last).await.expect("durable");
            println!("durable {last}");
        }
    });
}
