//! `remove CLUSTER [-f FORMAT]`: deletes every key of the cluster after three confirmations
//! (the cluster name, "Yes I am aware", and the leader's name while it has one).

use super::common::{fail, prompt, Ctx};
use super::members::{output_members, View};
use super::table::Format;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: String,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
}

const AWARE: &str = "Yes I am aware";

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = a.cluster_name;
    let dcs = ctx.dcs(&name).await?;
    let cluster = super::common::load(&dcs).await?;
    print!(
        "{}",
        output_members(&cluster, &name, false, View::Format(a.format))
    );
    if prompt("Please confirm the cluster name to remove", None).await? != name {
        return fail("Cluster names specified do not match");
    }
    let q = format!(
        "You are about to remove all information in DCS for {name}, please type: \"{AWARE}\""
    );
    if prompt(&q, None).await? != AWARE {
        return fail(format!("You did not exactly type \"{AWARE}\""));
    }
    if let Some(leader) = cluster.leader_name().filter(|l| !l.is_empty()) {
        let answer = prompt(
            "This cluster currently is healthy. Please specify the leader name to continue",
            None,
        )
        .await?;
        if answer != leader {
            return fail("You did not specify the current leader of the cluster");
        }
    }
    dcs.delete_cluster().await?;
    Ok(())
}
