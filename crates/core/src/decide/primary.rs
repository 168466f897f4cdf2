//! PostgreSQL runs as a primary: keep leading with the key, or stop being writable.

use super::switchover::{self, Request};
use super::{race, sync_duties, Ctx};
use crate::action::{slot_name, Action, Decision, StopMode};
use crate::cluster::Cluster;
use crate::observation::Running;

pub(super) fn running_primary(ctx: &Ctx, cluster: &Cluster, r: &Running) -> Decision {
    let me = ctx.me();
    if ctx.holds_leader_key(cluster) {
        return match switchover::request(ctx, cluster) {
            Request::AwayFromMe { candidate } => {
                switchover::leader_steps_down(ctx, cluster, candidate)
            }
            Request::Invalid(why) => {
                let mut d = leader_duties(ctx, cluster, r);
                d.actions.insert(
                    0,
                    Action::DeleteFailover {
                        revision: cluster.failover_revision,
                    },
                );
                d.reason = format!("{}; dropping the switchover request: {why}", d.reason);
                d
            }
            Request::Later(at) => {
                let mut d = leader_duties(ctx, cluster, r);
                d.reason = format!("{}; a switchover is scheduled at {at}", d.reason);
                d
            }
            Request::None | Request::ToMe | Request::ToOther(_) => leader_duties(ctx, cluster, r),
        };
    }
    if ctx.names_me_with_old_lease(cluster) {
        return Decision::act(
            vec![Action::ReclaimLeader],
            format!(
                "I am {me}, a primary; the leader key names me under an old lease, taking it back"
            ),
        );
    }
    let demote = vec![Action::Stop {
        mode: StopMode::Immediate,
    }];
    if let Some(leader) = cluster.leader_name() {
        return Decision::act(
            demote,
            format!("demoting: I am {me}, running as a primary but {leader} holds the leader key"),
        );
    }
    match race::may_lead(ctx, cluster, r) {
        Ok(()) => Decision::act(
            vec![Action::AcquireLeader],
            format!("acquiring the leader key: I am {me}, a primary without a leader key and the healthiest node"),
        ),
        Err(why) => Decision::act(
            demote,
            format!("demoting: I am {me}, running as a primary without the leader key and {why}"),
        ),
    }
}

/// What the leader keeps up to date in the DCS and on its server each loop.
fn leader_duties(ctx: &Ctx, cluster: &Cluster, r: &Running) -> Decision {
    let mut actions = Vec::new();
    if cluster.initialize.as_deref() != Some(r.sysid.as_str()) {
        actions.push(Action::WriteInitialize {
            sysid: r.sysid.clone(),
        });
    }
    // An unreadable `/config` is left for the operator to fix (every node keeps its last
    // valid settings meanwhile); creating it again would not replace it anyway.
    if cluster.config.is_none() && cluster.config_unreadable.is_none() {
        actions.push(Action::WriteConfig {
            config: ctx.dynamic.json.clone(),
        });
    }
    // /history is behind my timeline, unless its newest switch is already mine (timelines
    // need not be consecutive: a promotion may skip numbers other members used).
    let newest_is_mine = cluster.history_written_by(ctx.me());
    if cluster.history.is_none() || (cluster.timeline() < r.timeline && !newest_is_mine) {
        actions.push(Action::WriteHistory);
    }
    if cluster.last_leader_lsn() != Some(r.wal_position.0) {
        actions.push(Action::WriteStatus {
            optime: r.wal_position,
        });
    }
    actions.extend(ensure_slots(ctx, cluster));
    actions.extend(sync_duties::failsafe_key(ctx, cluster));
    let mut reason = format!("no action: I am {}, the leader with the lock", ctx.me());
    if let Some((step, why)) = sync_duties::leader_sync(ctx, cluster, r.wal_position) {
        actions.push(step);
        reason = format!("{reason}; {why}");
    }
    Decision::act(actions, reason)
}

/// A physical slot for every other member, when `use_slots` is on: right after a promotion
/// too, so that replicas re-pointed at this node find their slot on their first attempt.
pub(super) fn ensure_slots(ctx: &Ctx, cluster: &Cluster) -> Option<Action> {
    if !ctx.dynamic.use_slots {
        return None;
    }
    let names: Vec<String> = cluster
        .members
        .iter()
        .filter(|(n, _)| n.as_str() != ctx.me())
        // A `nostream` member never streams: no slot for it (the slot planner would drop it).
        .filter(|(_, e)| {
            !e.value()
                .is_some_and(|v| crate::flag::is_on(v.tags.to_json().get("nostream")))
        })
        .map(|(n, _)| slot_name(n))
        .collect();
    (!names.is_empty()).then_some(Action::EnsureSlots { names })
}
