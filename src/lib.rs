//! meeseeks: disaster-recovery orchestration runner.
//!
//! One-way flow (see DESIGN.md): files → `load` → `model` → `plan` → walk (`exec`) → `events`
//! → subscribers (the store's journal, progress, notify); `RunState` = fold(events), for the
//! live run and for every reader of a store. `session` wires a run's pieces together; `cli`
//! only turns arguments into a `RunConfig` and picks the display.

pub mod approvals;
pub mod backoff;
pub mod cli;
pub mod error;
pub mod events;
pub mod exec;
pub mod graph_ops;
pub mod load;
pub mod mask;
pub mod model;
pub mod notify;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod runconfig;
pub mod runstate;
pub mod serve;
pub mod session;
pub mod store;
pub mod stub;
pub mod suggest;
pub mod template;
pub mod util;

pub use error::{Error, Result};
