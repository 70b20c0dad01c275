//! The walker (see [`crate::plan::walker`]): it lives in `plan` because the planner drives the
//! same walker on a simulated clock to make its timeline, and `exec` already depends on `plan`.

pub use crate::plan::walker::{SvcState, WalkMode, Walker};
