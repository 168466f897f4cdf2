//! The pure heart of pgkeel: the cluster model, the HA decisions and config validation.
//!
//! Nothing in this crate performs I/O, reads a clock or spawns work: time comes in as an
//! argument and decisions come out as data ([`Action`]s) for the agent runtime to execute.

pub mod action;
pub mod admin;
pub mod callbacks;
pub mod cluster;
pub mod config;
pub mod dcs_values;
pub mod decide;
pub mod flag;
pub mod guc;
pub mod history;
pub mod lsn;
pub mod observation;
pub mod pace;
pub mod plans;
pub mod quote;
pub mod repeats;
pub mod slots;
pub mod startup;
pub mod sync;
pub mod tags;

pub use action::{Action, Decision, StopMode, Upstream};
pub use cluster::Cluster;
pub use config::Config;
pub use decide::decide;

pub use lsn::Lsn;
pub use observation::Observation;
pub use tags::Tags;
