//! Reports rendered from a `Plan` or a `RunState`, and the toolkit they share: one human
//! duration formatter (`fmt`) and the HTML pieces (`html`: escaping, time axes, one SVG Gantt
//! renderer).

pub mod fmt;
pub mod html;
pub mod otlp;
pub mod plan;
pub mod run;
