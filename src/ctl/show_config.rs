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
    if let Some(c) = cluster.config.as_ref().filter(|c| !is_empty(c)) {
        // click.echo adds a newline after the dump's own.
        println!("{}", yaml_dump(c));
    }
    Ok(())
}

fn is_empty(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}
