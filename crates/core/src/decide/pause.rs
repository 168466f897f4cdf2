//! Maintenance mode (`pause: true`): the operator is in charge. No failover, no restart of
//! a stopped PostgreSQL, no demotion; the leader keeps its key, a running primary without a
//! key takes it, and only explicit requests (a switchover naming a candidate) act.

use super::{primary, switchover, Ctx};
use crate::action::{Action, Decision};
use crate::observation::PgView;

pub(super) fn decide(ctx: &Ctx) -> Decision {
    let me = ctx.me();
    if ctx.obs.shutting_down {
        return Decision::nothing(format!(
            "shutting down in maintenance mode: I am {me}, leaving PostgreSQL running and the leader key in place"
        ));
    }
    let Ok(cluster) = &ctx.obs.dcs else {
        return Decision::nothing(format!(
            "maintenance mode: I am {me}, the DCS is unreachable; not demoting"
        ));
    };
    match &ctx.obs.pg {
        PgView::Running(r) if !r.in_recovery => {
            if ctx.holds_leader_key(cluster) {
                // An explicit switchover to a named candidate is allowed while paused.
                if let switchover::Request::AwayFromMe { candidate: Some(c) } =
                    switchover::request(ctx, cluster)
                {
                    return switchover::leader_steps_down(ctx, cluster, Some(c));
                }
                let mut d = primary::running_primary(ctx, cluster, r);
                d.reason = format!("maintenance mode: {}", d.reason);
                return d;
            }
            if ctx.names_me_with_old_lease(cluster) || cluster.leader.is_none() {
                let action = if cluster.leader.is_none() {
                    Action::AcquireLeader
                } else {
                    Action::ReclaimLeader
                };
                return Decision::act(
                    vec![action],
                    format!("maintenance mode: I am {me}, a running primary; taking the free leader key"),
                );
            }
            Decision::nothing(format!(
                "maintenance mode: I am {me}, running as a primary while {} holds the leader key; not demoting",
                cluster.leader_name().unwrap_or("?")
            ))
        }
        PgView::Running(r) => {
            if cluster.leader.is_none()
                && matches!(switchover::request(ctx, cluster), switchover::Request::ToMe)
            {
                let mut d = super::replica::running_replica(ctx, cluster, r);
                d.reason = format!("maintenance mode, manual failover: {}", d.reason);
                return d;
            }
            Decision::nothing(format!(
                "maintenance mode: I am {me}, a replica; no automatic action"
            ))
        }
        PgView::Stopped(s) if ctx.holds_leader_key(cluster) => {
            // A switchover's second step (the clean stop happened) is still carried out.
            if let switchover::Request::AwayFromMe { .. } = switchover::request(ctx, cluster) {
                if s.cluster_state == "shut down" {
                    return Decision::act(
                        vec![Action::ReleaseLeader],
                        format!("maintenance mode, switchover: I am {me}, stopped cleanly; releasing the leader key"),
                    );
                }
            }
            Decision::nothing(format!(
                "maintenance mode: I am {me}, PostgreSQL is stopped; not starting it"
            ))
        }
        // The end of a switchover this node left the key for: Patroni's demotion starts
        // the old primary as a replica in the same step, paused or not.
        PgView::Stopped(s) if ctx.obs.released_for_switchover => {
            let mut d = super::stopped::stopped(ctx, cluster, s);
            d.reason = format!("maintenance mode, switchover: {}", d.reason);
            d
        }
        _ => Decision::nothing(format!("maintenance mode: I am {me}, no automatic action")),
    }
}
