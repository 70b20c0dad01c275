//! Reports rendered from a `Plan` or a `RunState`.

pub mod plan;
pub mod run;
