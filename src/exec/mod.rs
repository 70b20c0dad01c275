//! Execution: the walker (pure), the executor (real and simulated), the runner actor loop,
//! and the event bus that feeds every subscriber.

pub mod approval;
pub mod bus;
pub mod executor;
pub mod probe;
pub mod process;
pub mod render;
pub mod runner;
pub mod walker;

pub use approval::{Approval, ApprovalSource, AutoApprove, NeverApprove, TtyApproval};
pub use bus::{Bus, Collector, Durability, Subscriber};
pub use executor::{Executor, RealExecutor, SimExecutor};
pub use runner::{
    Interrupter, OnFailure, RunOptions, RunReport, Runner, RunnerInput, ServiceReport,
    ServiceStatus,
};
pub use walker::{WalkMode, Walker};
pub mod summary;
