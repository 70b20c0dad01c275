//! `meeseeks cleanup [RUN_ID]`: the `cleanup` steps of a drill's services, dependents first.
//! A drill cleans up after itself unless `--no-cleanup`; this is for those runs, and for
//! interrupted ones.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Global;
use super::runs::StateArgs;
use crate::error::{Error, Result, exit};
use crate::exec::{Display, RealExecutor, RunOptions, Subscriber};
use crate::load::LoadOptions;
use crate::mask::Masker;
use crate::model::Mode;

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// Run id or unique prefix (default: the latest run).
    pub run_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    /// Time between SIGTERM and SIGKILL when a cleanup step times out.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_grace: Duration,
}

pub fn run(g: &Global, a: &CleanupArgs) -> Result<i32> {
    let sd = crate::journal::StateDir::open_existing(&a.state.path())?;
    let run = sd.resolve(a.run_id.as_deref())?;
    let meta = run.read_meta()?;
    if meta.mode != Mode::Drill {
        return Err(Error::Usage(format!(
            "run {} is a {}: cleanup undoes drills only",
            meta.run_id, meta.mode
        )));
    }
    let state = crate::journal::RunState::fold(&run.replay()?.records);
    let model = super::load_model(
        g,
        std::path::Path::new(&meta.dir),
        &LoadOptions {
            require_playbooks: false,
            ..Default::default()
        },
    )?;
    let scope = crate::plan::Scope::all(&model);
    let topo = crate::plan::topo_order(&model, &scope);
    // Services the drill started, dependents first.
    let ids: Vec<usize> = topo
        .into_iter()
        .rev()
        .filter(|&id| {
            state
                .service(model.name(id))
                .is_some_and(|s| s.starts > 0 || s.started_s.is_some())
        })
        .collect();
    let mut opts = RunOptions::new(Mode::Drill, meta.run_id.clone(), run.path.clone());
    opts.handle_signals = true;
    let rto = Default::default();
    let subs: Vec<Box<dyn Subscriber>> = match Display::pick(g.quiet, g.no_progress) {
        Display::Quiet => vec![],
        _ => vec![Box::new(crate::progress::Lines::new(
            std::io::stderr(),
            rto,
            false,
        ))],
    };
    let exec = RealExecutor::new(model.dir.clone(), vec![], a.kill_grace).map_err(Error::Other)?;
    let model = Arc::new(model);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    let (n, failures) = rt.block_on(crate::exec::cleanup_services(
        model,
        ids,
        &opts,
        Arc::new(exec),
        Masker::new(),
        subs,
    ));
    let mut text = format!(
        "cleanup of {}: {} of {n} steps succeeded\n",
        meta.run_id,
        n - failures.len()
    );
    for f in &failures {
        text.push_str(&format!("  failed: {f}\n"));
    }
    super::emit(None, &text)?;
    Ok(if failures.is_empty() {
        exit::OK
    } else {
        exit::NEGATIVE
    })
}
