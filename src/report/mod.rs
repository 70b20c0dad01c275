//! Reports rendered from a `Plan` or a `RunState`.

pub mod run;
