//! A data directory exists and PostgreSQL is stopped: start it in the role the key allows.

use super::switchover::{self, Request};
use super::{sync_duties, Ctx};
use crate::action::{Action, Decision};
use crate::cluster::Cluster;
use crate::observation::RewindFailure;
use crate::observation::Stopped;

pub(super) fn stopped(ctx: &Ctx, cluster: &Cluster, s: &Stopped) -> Decision {
    let me = ctx.me();
    if let Some(init) = cluster.initialize.as_deref().filter(|i| !i.is_empty()) {
        if init != s.sysid {
            return Decision::nothing(format!(
                "refusing to start: I am {me}, my data directory has system identifier {} but the cluster's is {init}; remove the data directory to clone it again",
                s.sysid
            ));
        }
    }
    let start_own: Vec<Action> = if s.was_primary() {
        sync_duties::before_start_primary(ctx, cluster)
            .into_iter()
            .chain([Action::StartPrimary])
            .collect()
    } else {
        vec![Action::StartReplica { upstream: None }]
    };
    if ctx.holds_leader_key(cluster) {
        // The second step of a switchover: stopped cleanly, every streaming standby has
        // flushed the shutdown checkpoint, so the candidate may take over now.
        if let Request::AwayFromMe { candidate } = switchover::request(ctx, cluster) {
            if s.cluster_state == "shut down" {
                return Decision::act(
                    vec![Action::ReleaseLeader],
                    format!(
                        "switchover: I am {me}, stopped cleanly; releasing the leader key for {}",
                        candidate.unwrap_or("a replica")
                    ),
                );
            }
        }
        // `primary_start_timeout: 0`: a primary found down is not restarted when a replica
        // can take over at once (Patroni's "immediate failover"); the server is down, so
        // giving the key up cannot leave two primaries.
        if s.was_primary()
            && ctx.primary_start_timeout().is_zero()
            && cluster.members.iter().any(|(n, e)| {
                n != me
                    && e.value().is_some_and(|m| {
                        m.state == "running" && m.role == "replica" && m.tags.may_promote()
                    })
            })
        {
            return Decision::act(
                vec![Action::ReleaseLeader],
                format!(
                    "giving up the leader key: I am {me}, my primary is down and primary_start_timeout is 0; a replica takes over"
                ),
            );
        }
        // Patroni's post_recover: a primary whose start failed with no postmaster left will
        // not come up by trying again (a broken setting, a full disk): the key goes at once,
        // not after primary_start_timeout, which is for a start still under way. Nothing
        // runs, so no write can be accepted while another node takes over.
        if s.was_primary() && ctx.obs.primary_start_exited {
            return Decision::act(
                vec![Action::GiveUpLeader],
                format!(
                    "removed leader key after trying and failing to start postgres: I am {me}, my primary exited while starting"
                ),
            );
        }
        if let Some(since) = ctx.obs.primary_start_failing_since {
            let limit = ctx.primary_start_timeout();
            if s.was_primary() && ctx.now.saturating_duration_since(since) >= limit {
                return Decision::act(
                    vec![Action::ReleaseLeader],
                    format!(
                        "giving up the leader key: I am {me}, my primary has not started for {}s (primary_start_timeout); a replica takes over",
                        limit.as_secs()
                    ),
                );
            }
        }
        if s.was_primary() && !ctx.lease_alive() {
            return ctx.stale_lease_wait();
        }
        return Decision::act(
            start_own,
            format!("starting: I am {me}, I hold the leader key"),
        );
    }
    if ctx.names_me_with_old_lease(cluster) {
        if s.was_primary() && !ctx.lease_alive() {
            return ctx.stale_lease_wait();
        }
        return Decision::act(
            [Action::ReclaimLeader]
                .into_iter()
                .chain(start_own)
                .collect(),
            format!("starting: I am {me}, the leader key still names me; taking it back"),
        );
    }
    let Some(leader) = cluster.leader_name() else {
        if cluster
            .failover
            .as_ref()
            .is_some_and(|f| f.leader.as_deref() == Some(me))
        {
            return Decision::nothing(format!(
                "switchover: I am {me}, the former leader; waiting for the candidate to take over"
            ));
        }
        // Never start writable without the key: start read-only, then race.
        return Decision::act(
            vec![Action::StartReplica { upstream: None }],
            format!(
                "starting as a replica: I am {me}, there is no leader; I will race once running"
            ),
        );
    };
    let Some(source) = ctx.upstream_of(cluster, leader) else {
        return Decision::nothing(format!(
            "waiting: I am {me}, the leader {leader} has not published where to reach it"
        ));
    };
    if !s.was_primary() {
        return Decision::act(
            vec![Action::StartReplica {
                upstream: Some(source),
            }],
            format!("starting as a replica of {leader}"),
        );
    }
    let leader_tl = cluster.member(leader).and_then(|m| m.timeline);
    let fork_known = cluster
        .history
        .as_ref()
        .is_some_and(|h| h.iter().any(|e| e.timeline == s.timeline));
    // A /history the leader wrote after its promotion that does not list my timeline: my
    // timeline is a branch the leader never had (simulation, seed 3709); pg_rewind finds the
    // divergence itself. Otherwise the key may just be stale.
    if leader_tl.is_some_and(|tl| tl > s.timeline)
        && !fork_known
        && !cluster.history_written_by(leader)
    {
        return Decision::nothing(format!(
            "waiting: I am {me}, a former primary; {leader} has not published where its timeline forked off mine"
        ));
    }
    if shut_down_before_fork(cluster, leader, s) {
        // A clean shutdown whose last checkpoint the new leader replayed (a switchover):
        // nothing to undo, follow the new timeline as is.
        return Decision::act(
            vec![Action::StartReplica {
                upstream: Some(source),
            }],
            format!("rejoining: I am {me}, the former primary, shut down cleanly before {leader}'s timeline forked; following it without pg_rewind"),
        );
    }
    // A former primary may hold WAL the new leader never had: rewind or re-clone.
    if ctx.dynamic.use_pg_rewind && !RewindFailure::needs_clone(ctx.obs.rewind_failed) {
        // pg_rewind must see the new timeline in the leader's control file, so wait until
        // the leader has checkpointed after its promotion: a pgkeel leader publishes itself
        // as a primary only then, a Patroni leader says so in checkpoint_after_promote.
        let leader_ready = cluster
            .member(leader)
            .is_some_and(|m| m.role == "primary" && m.checkpoint_after_promote != Some(false));
        if !leader_ready {
            return Decision::nothing(format!(
                "waiting: I am {me}, a former primary; {leader} has not finished its promotion (checkpoint), so pg_rewind would see its old timeline"
            ));
        }
        return Decision::act(
            vec![
                Action::Rewind {
                    source: source.clone(),
                },
                Action::StartReplica {
                    upstream: Some(source),
                },
            ],
            format!("rejoining: I am {me}, a former primary; rewinding from {leader}"),
        );
    }
    let why = if RewindFailure::needs_clone(ctx.obs.rewind_failed) {
        "pg_rewind failed"
    } else {
        "use_pg_rewind is off"
    };
    Decision::act(
        vec![
            Action::Reinit {
                plan: crate::plans::clone_plan(
                    ctx.cfg,
                    crate::plans::CloneFrom::Member {
                        source: &source,
                        leader: true,
                    },
                    false,
                ),
            },
            Action::StartReplica {
                upstream: Some(source),
            },
        ],
        format!("rejoining: I am {me}, a former primary and {why}; cloning again from {leader}"),
    )
}

/// This stopped former primary shut down cleanly, and the leader's timeline forked off mine
/// after my last checkpoint: the leader has everything I wrote.
fn shut_down_before_fork(cluster: &Cluster, leader: &str, s: &Stopped) -> bool {
    let (Some(checkpoint), Some(history), Some(leader_tl)) = (
        s.checkpoint,
        cluster.history.as_ref(),
        cluster.member(leader).and_then(|m| m.timeline),
    ) else {
        return false;
    };
    s.cluster_state == "shut down"
        && leader_tl > s.timeline
        && history
            .iter()
            .find(|e| e.timeline == s.timeline)
            .is_some_and(|e| e.lsn > checkpoint.0)
}
