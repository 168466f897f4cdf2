//! `list [CLUSTER...] [-e] [-t] [-f FORMAT] [-W | -w SECS]` and `topology [CLUSTER...]`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::common::{fail, timestamp, Ctx};
use super::members::{output_members, View};
use super::table::Format;

#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Clusters to show (default: the configuration's scope).
    pub cluster_names: Vec<String>,
    /// Show some extra information.
    #[arg(short = 'e', long = "extended")]
    pub extended: bool,
    /// Print timestamp.
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct TopologyArgs {
    /// Clusters to show (default: the configuration's scope).
    pub cluster_names: Vec<String>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct WatchArgs {
    /// Auto update the screen every 2 seconds.
    #[arg(short = 'W')]
    pub w: bool,
    /// Auto update the screen every X seconds.
    #[arg(short = 'w', long = "watch")]
    pub watch: Option<f64>,
}

impl WatchArgs {
    /// `watching(w, watch)`: the refresh interval, if any.
    pub fn interval(&self) -> anyhow::Result<Option<Duration>> {
        match (self.watch, self.w) {
            (Some(s), _) if s > 0.0 && s.is_finite() => Ok(Some(Duration::from_secs_f64(s))),
            (Some(s), _) if s != 0.0 => fail(format!("invalid watch interval {s}")),
            (_, true) => Ok(Some(Duration::from_secs(2))),
            _ => Ok(None),
        }
    }
}

pub(crate) async fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<()> {
    run(
        ctx,
        &a.cluster_names,
        a.extended,
        a.timestamp,
        View::Format(a.format),
        &a.watch,
    )
    .await
}

pub(crate) async fn topology(ctx: &Ctx, a: TopologyArgs) -> anyhow::Result<()> {
    run(
        ctx,
        &a.cluster_names,
        false,
        false,
        View::Topology,
        &a.watch,
    )
    .await
}

async fn run(
    ctx: &Ctx,
    names: &[String],
    extended: bool,
    ts: bool,
    view: View,
    watch: &WatchArgs,
) -> anyhow::Result<()> {
    let names = if names.is_empty() {
        if ctx.cfg.scope.is_empty() {
            // patronictl's answer: a warning, and nothing listed.
            eprintln!("Listing members: No cluster names were provided");
            return Ok(());
        }
        vec![ctx.cfg.scope.clone()]
    } else {
        names.to_vec()
    };
    let mut dcs = Vec::new();
    for n in &names {
        dcs.push((n.clone(), ctx.dcs(n).await?));
    }
    let interval = watch.interval()?;
    // click.clear() only clears a terminal.
    let clear = interval.is_some() && std::io::stdout().is_terminal();
    loop {
        let started = Instant::now();
        let mut out = String::new();
        if clear {
            out.push_str("\x1b[2J\x1b[1;1H");
        }
        if ts {
            out.push_str(&timestamp(0));
            out.push('\n');
        }
        for (name, etcd) in &dcs {
            let cluster = super::common::load(etcd).await?;
            out.push_str(&output_members(&cluster, name, extended, view));
        }
        print!("{out}");
        std::io::stdout().flush()?;
        let Some(every) = interval else {
            return Ok(());
        };
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
}
