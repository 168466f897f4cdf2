//! No data directory yet: win the bootstrap race and make the cluster (initdb or a custom
//! method), or make a replica (the replica creation methods, from the leader or, for the
//! methods marked `no_leader`, from nothing); and the bootstrap in progress until its
//! post_bootstrap, or its abandon when it fails. Patroni's `Ha.bootstrap` and
//! `Ha.post_bootstrap`, with its messages.

use super::Ctx;
use crate::action::{slot_name, Action, BootstrapPlan, Decision, Upstream};
use crate::cluster::Cluster;
use crate::observation::{Bootstrapping, PgView};
use crate::plans::{self, CloneFrom};

pub(super) fn no_data(ctx: &Ctx, cluster: &Cluster) -> Decision {
    let me = ctx.me();
    match (cluster.initialize.as_deref(), cluster.leader_name()) {
        // Patroni's rule: a member that may never lead does not initialize the cluster
        // (it could not take the leader key afterwards, and nobody would lead). It may
        // still restore a replica without a leader, below.
        (None, None) if ctx.cfg.tags.may_promote() => {
            let plan = plans::bootstrap_plan(ctx.cfg);
            // initdb's server is a primary once started: post_bootstrap follows at once. A
            // restored backup may recover for long first; `in_progress` waits for it.
            let then = matches!(plan, BootstrapPlan::Initdb).then(|| Action::PostBootstrap {
                script: plans::post_bootstrap_script(ctx.cfg),
            });
            Decision::act(
                [Action::ClaimInitialize, Action::Bootstrap { plan }]
                    .into_iter()
                    .chain(then)
                    .collect(),
                format!("trying to bootstrap a new cluster: I am {me}, no cluster is initialized, racing to initialize it"),
            )
        }
        (_, Some(leader)) if leader != me => match clone_source(ctx, cluster, leader) {
            Some((source, is_leader)) => {
                let follow = ctx.upstream_of(cluster, leader);
                let plan = plans::clone_plan(
                    ctx.cfg,
                    CloneFrom::Member {
                        source: &source,
                        leader: is_leader,
                    },
                    false,
                );
                let reason = format!("trying to bootstrap {}: I am {me}", plan.what);
                Decision::act(
                    vec![
                        Action::Clone { plan },
                        Action::StartReplica { upstream: follow },
                    ],
                    reason,
                )
            }
            None => without_leader(ctx, cluster).unwrap_or_else(|| {
                Decision::nothing(format!(
                    "waiting: I am {me}, the leader {leader} has not published where to reach it"
                ))
            }),
        },
        (_, Some(_)) => Decision::nothing(format!(
            "waiting: I am {me}, I hold the leader key but have no data directory"
        )),
        (Some(""), None) => Decision::nothing(format!(
            "waiting for leader to bootstrap: I am {me}, another node is bootstrapping the cluster"
        )),
        (None | Some(_), None) => without_leader(ctx, cluster).unwrap_or_else(|| {
            let why = if cluster.initialize.is_none() {
                "tagged nofailover, for another node to bootstrap the cluster"
            } else {
                "the cluster is initialized but has no leader to clone from"
            };
            Decision::nothing(format!("waiting for leader to bootstrap: I am {me}, {why}"))
        }),
    }
}

/// A replica made by the methods that need no leader (a restore from a backup), when any
/// is configured and no node is bootstrapping the cluster. It starts as a standby of
/// nobody, and races once running.
fn without_leader(ctx: &Ctx, cluster: &Cluster) -> Option<Decision> {
    if cluster.initialize.as_deref() == Some("") || !plans::can_clone_without_leader(ctx.cfg) {
        return None;
    }
    let plan = plans::clone_plan(ctx.cfg, CloneFrom::NoLeader, false);
    Some(Decision::act(
        vec![
            Action::Clone { plan },
            Action::StartReplica { upstream: None },
        ],
        format!(
            "trying to bootstrap (without leader): I am {}, a replica method works without one",
            ctx.me()
        ),
    ))
}

/// This node is bootstrapping (Patroni's `post_bootstrap` step): wait for the end of a
/// restored backup's recovery, then run post_bootstrap; abandon when anything failed or
/// PostgreSQL is not running.
pub(super) fn in_progress(ctx: &Ctx, b: Bootstrapping) -> Decision {
    let me = ctx.me();
    let abandon = |why: &str| {
        Decision::act(
            vec![Action::AbandonBootstrap],
            format!("removing initialize key after failed attempt to bootstrap the cluster: I am {me}, {why}"),
        )
    };
    match (b, &ctx.obs.pg) {
        (Bootstrapping::Failed, _) => abandon("the bootstrap failed"),
        (Bootstrapping::Started, PgView::NoData | PgView::Stopped(_)) => {
            abandon("PostgreSQL is not running")
        }
        (Bootstrapping::Started, PgView::Running(r)) if !r.in_recovery => Decision::act(
            vec![Action::PostBootstrap {
                script: plans::post_bootstrap_script(ctx.cfg),
            }],
            format!("running post_bootstrap: I am {me}, the new cluster runs as a primary"),
        ),
        (Bootstrapping::Started, _) => Decision::nothing(format!(
            "waiting for end of recovery after bootstrap: I am {me}"
        )),
    }
}

/// Clone from a running replica tagged `clonefrom` when there is one (it spares the
/// leader), otherwise from the leader; `true` when it is the leader.
fn clone_source(ctx: &Ctx, cluster: &Cluster, leader: &str) -> Option<(Upstream, bool)> {
    let tagged = cluster.members.iter().find_map(|(name, entry)| {
        let m = entry.value()?;
        let ok = name != ctx.me()
            && name != leader
            && m.tags.clonefrom
            && m.state == "running"
            && m.role == "replica";
        ok.then_some(name.as_str())
    });
    let from = tagged.unwrap_or(leader);
    let (host, port) = cluster.member(from)?.pg_host_port()?;
    Some((
        Upstream {
            member: from.to_string(),
            host,
            port,
            slot: ctx
                .dynamic
                .use_slots
                .then(|| slot_name(ctx.me()))
                .filter(|_| from == leader),
        },
        from == leader,
    ))
}
