//! pgkeel's measuring harness: the benchmarks (`pgkeel-bench`, `pgkeel-switchover-bench`,
//! `pgkeel-sync-bench`) and the network-fault suite (`pgkeel-netfault`). None of it is
//! product: the `pgkeel` binary never links this crate.
//!
//! Every tool, and the end-to-end tests, measure with the same client: [`client::connect`]
//! (libpq's multi-host connect, each host bounded in time) and [`writer::Writer`] (one
//! `INSERT` at a time, every acknowledged write journalled with the server that acknowledged
//! it). What the tools inject lives in one place per tool family:
//!
//! - [`leader_fault::LeaderFault`]: what `pgkeel-bench` and `pgkeel-sync-bench` do to the
//!   leader (kill, freeze) and how they undo it;
//! - [`netfault::faults::Fault`]: the network-fault suite's scenarios, injected and healed in
//!   [`netfault::suite`], with the CI subset in [`netfault::faults::SHORT`].

pub mod client;
pub mod deposed;
pub mod leader_fault;
pub mod netfault;
pub mod pgbench;
pub mod ready;
pub mod setup;
pub mod writer;
