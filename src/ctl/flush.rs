//! `flush CLUSTER [MEMBER...] restart|switchover [-r ROLE] [--force]`: cancels scheduled
//! restarts (`DELETE /restart`) or the scheduled switchover (`DELETE /switchover`, else the
//! `failover` key is deleted in etcd).

use reqwest::Method;

use super::api::Api;
use super::common::{members_leader_first, timestamp, Ctx, Role};
use super::reinit::check_response;
use super::select::get_members;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Restart,
    Switchover,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: String,
    /// Members, then what to flush: `restart` or `switchover`.
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
    /// Flush only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// Splits `[MEMBER...] TARGET` (click's trailing choice argument).
pub(crate) fn split_target(args: &[String]) -> anyhow::Result<(Vec<String>, Target)> {
    let Some((last, members)) = args.split_last() else {
        return super::common::fail("Missing argument 'TARGET'. Choose from: restart, switchover");
    };
    let target = match last.as_str() {
        "restart" => Target::Restart,
        "switchover" => Target::Switchover,
        other => {
            return super::common::fail(format!(
                "Invalid value for 'TARGET': '{other}' is not one of 'restart', 'switchover'."
            ))
        }
    };
    Ok((members.to_vec(), target))
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let (member_names, target) = split_target(&a.args)?;
    let dcs = ctx.dcs(&a.cluster_name).await?;
    let cluster = super::common::load(&dcs).await?;
    let api = Api::new(&ctx.cfg)?;
    match target {
        Target::Restart => {
            let members = get_members(
                &cluster,
                &a.cluster_name,
                &member_names,
                a.role,
                a.force,
                "flush",
                true,
            )
            .await?;
            for m in &members {
                // pgkeel's member keys do not carry scheduled_restart, so ask the member:
                // 404 means there was nothing to cancel.
                let r = api.call(m, Method::DELETE, "restart", None).await?;
                if r.status == 404 {
                    println!("No scheduled restart for member {}", m.name);
                } else {
                    let (line, _) =
                        check_response(&m.name, "flush scheduled restart", r.status, &r.body);
                    println!("{line}");
                }
            }
        }
        Target::Switchover => {
            let scheduled = cluster
                .failover
                .as_ref()
                .is_some_and(|f| f.scheduled_at.as_deref().is_some_and(|s| !s.is_empty()));
            if !scheduled {
                println!("No pending scheduled switchover");
                return Ok(());
            }
            for m in members_leader_first(&cluster) {
                match api.call(&m, Method::DELETE, "switchover", None).await {
                    Ok(r) if r.status == 200 || r.status == 404 => {
                        let prefix = if r.status == 200 { "Success" } else { "Failed" };
                        println!("{prefix}: {}", r.body);
                        return Ok(());
                    }
                    Ok(r) => println!(
                        "Failed: member={}, status_code={}, ({})",
                        m.name, r.status, r.body
                    ),
                    Err(e) => {
                        tracing::warn!("{e:#}");
                        tracing::warn!("Member {} is not accessible", m.name);
                    }
                }
            }
            tracing::warn!("Failing over to DCS");
            println!(
                "{} Could not find any accessible member of cluster {}",
                timestamp(6),
                a.cluster_name
            );
            dcs.delete_failover(cluster.failover_revision).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_the_last_argument() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (m, t) = split_target(&s(&["n1", "n2", "restart"])).unwrap();
        assert_eq!((m, t), (s(&["n1", "n2"]), Target::Restart));
        let (m, t) = split_target(&s(&["switchover"])).unwrap();
        assert_eq!((m.len(), t), (0, Target::Switchover));
        assert!(split_target(&s(&["n1"])).is_err());
    }
}
