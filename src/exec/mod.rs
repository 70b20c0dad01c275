//! Execution: the walker (pure), the executor (real and simulated), the runner actor loop,
//! and the event bus that feeds every subscriber.

pub mod walker;
