//! meeseeks: disaster-recovery orchestration runner.
//!
//! One-way flow (see DESIGN.md): files → `load` → `model` → `plan` → walk (`exec`) → `events`
//! → subscribers (journal, progress, notify); `RunState` = fold(journal).

pub mod cli;
pub mod error;
pub mod events;
pub mod exec;
pub mod graph_ops;
pub mod journal;
pub mod load;
pub mod mask;
pub mod model;
pub mod notify;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod stub;
pub mod template;
pub mod util;

pub use error::{Error, Result};
