//! The operator CLI: patronictl's verbs, options, prompts, messages and exit codes, one
//! module per verb. Verbs read etcd directly and call the members' REST APIs, as
//! patronictl does.

mod api;
mod common;
mod diff;
pub(crate) mod dsn;
pub(crate) mod edit_config;
pub(crate) mod flush;
#[cfg(test)]
mod fuzz;
pub(crate) mod history;
pub(crate) mod list;
mod members;
pub(crate) mod pause;
mod pyfmt;
pub(crate) mod reinit;
pub(crate) mod reload;
pub(crate) mod remove;
pub(crate) mod restart;
mod select;
pub(crate) mod show_config;
pub(crate) mod switchover;
mod table;
pub(crate) mod version;

use std::path::Path;

pub(crate) use common::{Aborted, CtlError, Ctx};

/// A CLI verb with its arguments.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Verb {
    /// List the members of a cluster (patronictl list).
    List(list::ListArgs),
    /// Print the cluster as a replication tree.
    Topology(list::TopologyArgs),
    /// Switchover to a replica.
    Switchover(switchover::SwitchoverArgs),
    /// Failover to a replica.
    Failover(switchover::FailoverArgs),
    /// Restart cluster members.
    Restart(restart::Args),
    /// Reload cluster member configuration.
    Reload(reload::Args),
    /// Reinitialize cluster members.
    Reinit(reinit::Args),
    /// Discard scheduled events.
    Flush(flush::Args),
    /// Disable auto failover.
    Pause(pause::Args),
    /// Resume auto failover.
    Resume(pause::Args),
    /// Edit cluster configuration.
    EditConfig(edit_config::Args),
    /// Show cluster configuration.
    ShowConfig(show_config::Args),
    /// Show the history of failovers/switchovers.
    History(history::Args),
    /// Generate a dsn for the provided member, defaults to a dsn of the leader.
    Dsn(dsn::Args),
    /// Remove cluster from DCS.
    Remove(remove::Args),
    /// Output version of pgkeel or of the running members.
    Version(version::Args),
}

pub(crate) async fn run(config: Option<&Path>, verb: Verb) -> anyhow::Result<()> {
    if let Verb::Version(a) = verb {
        // Without a cluster name no configuration is needed.
        let ctx = match a.cluster_name {
            Some(_) => Some(Ctx::load(config)?),
            None => None,
        };
        return version::run(ctx.as_ref(), a).await;
    }
    let ctx = Ctx::load(config)?;
    match verb {
        Verb::List(a) => list::list(&ctx, a).await,
        Verb::Topology(a) => list::topology(&ctx, a).await,
        Verb::Switchover(a) => switchover::switchover(&ctx, a).await,
        Verb::Failover(a) => switchover::failover(&ctx, a).await,
        Verb::Restart(a) => restart::run(&ctx, a).await,
        Verb::Reload(a) => reload::run(&ctx, a).await,
        Verb::Reinit(a) => reinit::run(&ctx, a).await,
        Verb::Flush(a) => flush::run(&ctx, a).await,
        Verb::Pause(a) => pause::run(&ctx, a, true).await,
        Verb::Resume(a) => pause::run(&ctx, a, false).await,
        Verb::EditConfig(a) => edit_config::run(&ctx, a).await,
        Verb::ShowConfig(a) => show_config::run(&ctx, a).await,
        Verb::History(a) => history::run(&ctx, a).await,
        Verb::Dsn(a) => dsn::run(&ctx, a).await,
        Verb::Remove(a) => remove::run(&ctx, a).await,
        Verb::Version(_) => Ok(()),
    }
}
