//! `show-config [CLUSTER]`: the `config` key as YAML.

use super::common::Ctx;
use super::pyfmt::yaml_dump;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = ctx.cluster_name(a.cluster_name.as_deref());
    let cluster = super::common::load(&ctx.dcs(&name).await?).await?;
    match cluster.config.as_ref().filter(|c| !is_empty(c)) {
        // click.echo adds a newline after the dump's own.
        Some(c) => println!("{}", yaml_dump(c)),
        // patronictl prints nothing and exits 0 here (scripts may rely on both); a warning
        // on stderr tells a person why, a mistyped cluster name most often.
        None if cluster.initialize.is_none()
            && cluster.leader.is_none()
            && cluster.members.is_empty() =>
        {
            tracing::warn!(
                "no cluster {name} in {}/ (no keys under {}/{name}/): nothing to show",
                ctx.cfg.namespace,
                ctx.cfg.namespace
            )
        }
        None => tracing::warn!("the cluster {name} has no config key: nothing to show"),
    }
    Ok(())
}

fn is_empty(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}
