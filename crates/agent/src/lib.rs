//! The agent runtime: observe → decide → act, once per loop and whenever a watch fires.
//!
//! Nothing here decides anything: every rule lives in `pgkeel_core` (`decide` for the HA
//! loop; `decide::{writable_until, failsafe_round_due, predecessor_guard_may_go,
//! shutdown_exit, forced_exit, moves_to_new_ttl}` for the helpers below; `pace` for when
//! the next round runs; `startup` for the duplicate name; `admin` for operator requests). The runtime gathers an
//! [`Observation`](pgkeel_core::Observation), calls `decide`, runs the actions in order,
//! publishes what it saw to the REST API, and records what its actions met (a failed
//! rewind or kill, since when PostgreSQL is silent) for the next observation. Beside the
//! loop: the lease keeper (its own OS thread, runtime and etcd connection), the fence
//! thread and the fence guardian process (they stop a primary at its deadline, signalling
//! through `/proc` only), the failsafe task and the REST API (its own OS thread and runtime, see `api.rs`).

mod act;
mod admin;
mod api;
mod callbacks;
pub mod clock;
mod env;
mod failsafe;
mod fence;
pub mod guard;
mod lease;
pub mod log_level;
mod member;
mod observe;
mod peers;
mod reload;
mod run;
mod settings;
mod shared;
mod slots;
#[cfg(test)]
mod testutil;
pub mod tls;

pub use env::{Env, RealEnv};
pub use fence::Fence;
pub use lease::Keeper;
pub use peers::parse_status;
pub use run::{run, run_with, Io, Stop};
pub use settings::pg_settings;
pub use shared::Shared;

/// The log target of Patroni's CRITICAL messages (`logger.fatal`): the agent ends after one.
pub const CRITICAL: &str = "pgkeel::critical";
