//! PostgreSQL runs as a replica: follow whoever holds the key, or race for it.

use super::switchover::{self, Request};
use super::{primary, race, sync_duties, Ctx};
use crate::action::{Action, Decision, StopMode};
use crate::cluster::Cluster;
use crate::lsn::Lsn;
use crate::observation::RewindFailure;
use crate::observation::Running;

pub(super) fn running_replica(ctx: &Ctx, cluster: &Cluster, r: &Running) -> Decision {
    let me = ctx.me();
    let holds = ctx.holds_leader_key(cluster);
    if (holds || ctx.names_me_with_old_lease(cluster)) && !ctx.lease_alive() {
        return ctx.stale_lease_wait();
    }
    if (holds || ctx.names_me_with_old_lease(cluster)) && ctx.obs.pre_promote_failed {
        // Patroni's fencing hook said no: this node must not promote, and keeping the key
        // would leave the cluster without a primary.
        return Decision::act(
            vec![Action::ReleaseLeader],
            format!("Promotion cancelled because the pre-promote script failed (I am {me})"),
        );
    }
    if holds {
        return Decision::act(
            sync_duties::prepromote(ctx)
                .into_iter()
                .chain([Action::Promote])
                .collect(),
            format!("promoting: I am {me} and I hold the leader key"),
        );
    }
    if ctx.names_me_with_old_lease(cluster) {
        return Decision::act(
            [Action::ReclaimLeader]
                .into_iter()
                .chain(sync_duties::prepromote(ctx))
                .chain([Action::Promote])
                .collect(),
            format!(
                "promoting: I am {me}, the leader key names me under an old lease; taking it back"
            ),
        );
    }
    let Some(leader) = cluster.leader_name() else {
        // The history goes out with the promotion, before this node is published as a
        // primary: the former leader reads its fork point there to rejoin without rewind.
        let took_over = |why: String| {
            Decision::act(
                [Action::AcquireLeader]
                    .into_iter()
                    .chain(sync_duties::prepromote(ctx))
                    .chain([Action::Promote, Action::WriteHistory])
                    .chain(primary::ensure_slots(ctx, cluster))
                    .collect(),
                why,
            )
        };
        match switchover::request(ctx, cluster) {
            Request::ToMe => {
                return match race::may_lead_on_request(ctx, cluster, r) {
                    Ok(()) => took_over(format!(
                        "promoting: I am {me}, the candidate of a switchover or failover"
                    )),
                    Err(why) => Decision::nothing(format!(
                        "no action: I am {me}, the requested candidate, but {why}"
                    )),
                };
            }
            Request::ToOther(c) => {
                return Decision::nothing(format!(
                    "no action: I am {me}, waiting for {c}, the requested candidate, to take over"
                ));
            }
            _ => {}
        }
        return match race::may_lead(ctx, cluster, r) {
            Ok(()) => took_over(format!(
                "promoting: I am {me}, there is no leader and I am the healthiest node"
            )),
            Err(why) => Decision::nothing(format!(
                "no action: I am {me}, there is no leader but {why}"
            )),
        };
    };
    let Some(upstream) = ctx.upstream_of(cluster, leader) else {
        return Decision::nothing(format!(
            "no action: I am {me}, the leader {leader} has not published where to reach it"
        ));
    };
    if let Some(why) = diverged(cluster, leader, r) {
        // I received WAL of the old timeline past the point where the new leader forked
        // off it (the old primary kept streaming to me after the promotion): I can never
        // follow the new timeline as I am.
        let repair =
            if ctx.dynamic.use_pg_rewind && !RewindFailure::needs_clone(ctx.obs.rewind_failed) {
                Action::Rewind {
                    source: upstream.clone(),
                }
            } else {
                Action::Reinit {
                    plan: crate::plans::clone_plan(
                        ctx.cfg,
                        crate::plans::CloneFrom::Member {
                            source: &upstream,
                            leader: true,
                        },
                        false,
                    ),
                }
            };
        return Decision::act(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                repair,
                Action::StartReplica {
                    upstream: Some(upstream),
                },
            ],
            format!("rejoining: I am {me}, {why}"),
        );
    }
    let leader_ready = cluster
        .member(leader)
        .is_some_and(|m| matches!(m.role.as_str(), "primary" | "master"));
    let following = r
        .upstream
        .as_ref()
        .is_some_and(|(h, p)| *h == upstream.host && *p == upstream.port);
    if following {
        return Decision::nothing(format!(
            "no action: I am {me}, a replica following {leader}"
        ));
    }
    if !leader_ready {
        // Its promotion (and the slot it creates for me) is not finished: connecting now
        // would fail and PostgreSQL would wait wal_retrieve_retry_interval to try again.
        return Decision::nothing(format!(
            "no action: I am {me}, waiting for the new leader {leader} to finish its promotion"
        ));
    }
    Decision::act(
        vec![Action::Follow { upstream }],
        format!("following the new leader {leader}: I am {me}"),
    )
}

/// Where my WAL left the leader's history, when it did: my timeline is older than the
/// leader's and either my WAL went past the point where the leader's timeline forked off
/// mine, or my timeline is not among the leader's ancestors at all (a branch created while
/// the cluster was split, which the leader's history never had: found by the simulation,
/// seed 2487). The fork points come from `/history`, which the leader writes after each
/// promotion; until its newest switch names this leader it may be stale (the promotion
/// just happened), and nothing is concluded from a missing entry.
fn diverged(cluster: &Cluster, leader: &str, r: &Running) -> Option<String> {
    let leader_tl = cluster.member(leader)?.timeline?;
    if leader_tl <= r.timeline {
        return None;
    }
    let history = cluster.history.as_ref()?;
    match history.iter().find(|e| e.timeline == r.timeline) {
        Some(e) => (r.wal_position.0 > e.lsn).then(|| {
            format!(
                "my WAL ({}) went past where {leader}'s timeline forked off mine ({})",
                r.wal_position,
                Lsn(e.lsn)
            )
        }),
        None if cluster.history_written_by(leader) => Some(format!(
            "my timeline {} is not in {leader}'s history (timeline {leader_tl})",
            r.timeline
        )),
        None => None,
    }
}
