//! `pause [CLUSTER] [--wait]` and `resume [CLUSTER] [--wait]`: `PATCH /config` with
//! `{"pause": true}` / `{"pause": null}` on the first member that answers, leader first.

use std::time::{Duration, Instant};

use pgkeel_core::cluster::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

use super::api::Api;
use super::common::{fail, members_leader_first, Ctx, Member};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
    /// Wait until the change is applied on all nodes.
    #[arg(long = "wait")]
    pub wait: bool,
}

fn word(paused: bool) -> &'static str {
    if paused {
        "paused"
    } else {
        "resumed"
    }
}

/// The refusal when there is nothing to do.
pub(crate) fn check_state(cluster: &Cluster, paused: bool) -> anyhow::Result<()> {
    if cluster.paused() == paused {
        return fail(format!(
            "Cluster is {} paused",
            if paused { "already" } else { "not" }
        ));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx, a: Args, paused: bool) -> anyhow::Result<()> {
    let name = ctx.cluster_name(a.cluster_name.as_deref());
    let cluster = super::common::load(&ctx.dcs(&name).await?).await?;
    check_state(&cluster, paused)?;
    let api = Api::new(&ctx.cfg)?;
    let body = json!({"pause": if paused { Value::Bool(true) } else { Value::Null }});
    for m in members_leader_first(&cluster) {
        let r = match api.call(&m, Method::PATCH, "config", Some(&body)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e:#}");
                tracing::warn!("Member {} is not accessible", m.name);
                continue;
            }
        };
        if r.status == 200 {
            if a.wait {
                wait_applied(&api, &cluster, paused).await;
            } else {
                println!("Success: cluster management is {}", word(paused));
            }
        } else {
            println!(
                "Failed: {} cluster management status code={}, ({})",
                if paused { "pause" } else { "resume" },
                r.status,
                r.body
            );
        }
        return Ok(());
    }
    fail("Can not find accessible cluster member")
}

/// `wait_until_pause_is_applied`: polls each member's `GET /patroni` until it reports the
/// new `pause` state, for up to `loop_wait + 1` seconds.
async fn wait_applied(api: &Api, cluster: &Cluster, paused: bool) {
    println!(
        "'{}' request sent, waiting until it is recognized by all nodes",
        if paused { "pause" } else { "resume" }
    );
    let loop_wait = Ctx::loop_wait(cluster);
    let deadline = Instant::now() + Duration::from_secs(loop_wait + 1);
    let members: Vec<Member> = members_leader_first(cluster);
    loop {
        let mut remaining = Vec::new();
        for m in &members {
            let ok = match api.get_json(m, "patroni").await {
                Ok(s) => pgkeel_core::flag::is_on(s.get("pause")) == paused,
                // A member that does not answer cannot be waited for.
                Err(_) => true,
            };
            if !ok {
                remaining.push(m.name.clone());
            }
        }
        if remaining.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            println!(
                "{} members didn't recognized pause state after {loop_wait} seconds",
                remaining.join(", ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("Success: cluster management is {}", word(paused));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_do_is_an_error() {
        let mut c = Cluster::default();
        assert_eq!(
            check_state(&c, false).unwrap_err().to_string(),
            "Cluster is not paused"
        );
        assert!(check_state(&c, true).is_ok());
        c.config = Some(json!({"pause": true}));
        assert_eq!(
            check_state(&c, true).unwrap_err().to_string(),
            "Cluster is already paused"
        );
    }
}
