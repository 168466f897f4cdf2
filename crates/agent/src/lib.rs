//! The agent runtime: observe → decide → act, once per loop and whenever a watch fires.
//!
//! Nothing here decides anything: every rule lives in `pgkeel_core::decide`. The runtime
//! gathers an [`Observation`](pgkeel_core::Observation), calls `decide`, runs the actions in
//! order and publishes what it saw to the REST API. Three small tasks run beside the loop:
//! the lease keeper (renews the etcd lease on its own clock), the fence watchdog (stops a
//! primary whose lease may expire, even while the loop is busy) and the REST API.

mod act;
mod admin;
pub mod clock;
mod env;
mod failsafe;
mod fence;
pub mod guard;
mod lease;
mod member;
mod observe;
mod peers;
mod run;
mod settings;
mod shared;

pub use env::{Env, RealEnv};
pub use fence::Fence;
pub use lease::Keeper;
pub use peers::parse_status;
pub use run::{run, run_with, Io};
pub use settings::pg_settings;
pub use shared::Shared;
