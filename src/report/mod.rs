//! Reports rendered from a `Plan` or a `RunState`.

pub mod otlp;
pub mod plan;
pub mod run;
