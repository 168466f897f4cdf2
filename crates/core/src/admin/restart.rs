//! `POST /restart` and `DELETE /restart`: what a restart does on this node, when a
//! scheduled one runs, and Patroni's answers. The agent keeps the scheduled restart in its
//! memory and only executes what these functions return.
//!
//! A scheduled restart runs once [`scheduled_restart_step`] says its time has come; it is
//! then forgotten whatever the outcome, and [`restart_plan`] applies its filters (role,
//! `restart_pending`) to this node as they are at that moment, as Patroni's
//! `evaluate_scheduled_restart` applies `restart_matches` when the time comes.

use std::time::SystemTime;

use crate::action::{slot_name, Action, StopMode, Upstream};
use crate::cluster::Cluster;
use crate::observation::PgView;

/// What `POST /restart` does on this node: stop (fast) and start again in the same role,
/// unless a filter excludes it. `Err` carries Patroni's code and text.
pub fn restart_plan(
    pg: &PgView,
    holds_leader_key: bool,
    role: Option<&str>,
    only_if_pending: bool,
    pending_restart: bool,
    leader_upstream: Option<Upstream>,
) -> Result<Vec<Action>, (u16, String)> {
    // A stopped server is simply started (Patroni's restart brings back a PostgreSQL that
    // died while the cluster was paused).
    let (is_replica, running) = match pg {
        PgView::Running(r) => (r.in_recovery, true),
        PgView::Stopped(s) => (s.standby_signal || !holds_leader_key, false),
        _ => {
            return Err((
                503,
                "restart failed: PostgreSQL is not in a state to restart".into(),
            ))
        }
    };
    let my_role = if is_replica { "replica" } else { "primary" };
    if let Some(want) = role {
        let want = if want == "master" { "primary" } else { want };
        if want != my_role && want != "any" {
            return Err((
                503,
                format!("restart conditions are not satisfied: role {my_role} is not {want}"),
            ));
        }
    }
    if only_if_pending && !pending_restart {
        return Err((
            503,
            "restart conditions are not satisfied: no pending restart".into(),
        ));
    }
    let start = if is_replica {
        Action::StartReplica {
            upstream: leader_upstream,
        }
    } else if holds_leader_key {
        Action::StartPrimary
    } else {
        return Err((
            503,
            "restart failed: I am a primary without the leader key".into(),
        ));
    };
    let mut plan = Vec::new();
    if running {
        plan.push(Action::Stop {
            mode: StopMode::Fast,
        });
    }
    plan.push(start);
    Ok(plan)
}

/// What a restart waiting for its time calls for in this loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledRestartStep {
    /// Its time has not come.
    Wait,
    /// Its time has come: forget it and restart now through [`restart_plan`] with its
    /// filters.
    RunNow,
}

/// Whether the restart scheduled for `at` runs now. A time that does not parse counts as
/// come, which the API makes unreachable (it only passes on times it parsed and rewrote).
/// Unlike Patroni's `should_run_scheduled_action`, a restart found long overdue (the agent
/// was paused or down) still runs rather than being dropped as stale.
pub fn scheduled_restart_step(at: &str, now: SystemTime) -> ScheduledRestartStep {
    match super::due(at, now) {
        Some(false) => ScheduledRestartStep::Wait,
        Some(true) | None => ScheduledRestartStep::RunNow,
    }
}

/// Patroni's answer to `POST /restart` with a `schedule`: `Ok` (202, keep the new one), or
/// 409 when another restart already waits.
pub fn schedule_restart(
    already_scheduled: bool,
) -> Result<(u16, &'static str), (u16, &'static str)> {
    if already_scheduled {
        Err((409, "Another restart is already scheduled"))
    } else {
        Ok((202, "Restart scheduled"))
    }
}

/// Patroni's answer to `DELETE /restart`.
pub fn cancel_restart(was_scheduled: bool) -> (u16, &'static str) {
    if was_scheduled {
        (200, "scheduled restart deleted")
    } else {
        (404, "no restarts are scheduled")
    }
}

/// Where this node streams from after a restart as a replica: the leader named by the
/// key, through my slot when slots are used; `None` without a leader or its address.
pub fn leader_upstream(cluster: Option<&Cluster>, me: &str, use_slots: bool) -> Option<Upstream> {
    let cluster = cluster?;
    let leader = cluster.leader_name()?;
    let (host, port) = cluster.member(leader)?.pg_host_port()?;
    Some(Upstream {
        member: leader.to_string(),
        host,
        port,
        slot: use_slots.then(|| slot_name(me)),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::cluster::{LeaderKey, MemberEntry};
    use crate::dcs_values::MemberValue;
    use crate::lsn::Lsn;
    use crate::observation::Running;

    fn running(in_recovery: bool) -> PgView {
        PgView::Running(Running {
            sysid: "1".into(),
            in_recovery,
            timeline: 1,
            wal_position: Lsn(1),
            received: None,
            replayed: None,
            upstream: None,
            streaming: in_recovery,
        })
    }

    #[test]
    fn restart_keeps_the_role_and_honours_filters() {
        assert_eq!(
            restart_plan(&running(false), true, None, false, false, None).unwrap(),
            vec![
                Action::Stop {
                    mode: StopMode::Fast
                },
                Action::StartPrimary
            ]
        );
        assert!(restart_plan(&running(true), false, Some("primary"), false, false, None).is_err());
        assert!(restart_plan(&running(true), false, Some("replica"), true, false, None).is_err());
        assert!(restart_plan(&running(true), false, Some("replica"), true, true, None).is_ok());
        assert!(restart_plan(&PgView::NoData, false, None, false, false, None).is_err());
        // A replica whose server died (say while paused) is started again.
        let stopped = PgView::Stopped(crate::observation::Stopped {
            sysid: "1".into(),
            cluster_state: "in archive recovery".into(),
            timeline: 1,
            standby_signal: true,
            checkpoint: None,
        });
        assert_eq!(
            restart_plan(&stopped, false, None, false, false, None).unwrap(),
            vec![Action::StartReplica { upstream: None }]
        );
    }

    /// 2027-01-15T08:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn a_scheduled_restart_waits_for_its_time_in_its_time_zone() {
        use ScheduledRestartStep::*;
        assert_eq!(
            scheduled_restart_step("2027-01-15T08:00:01+00:00", now()),
            Wait
        );
        assert_eq!(
            scheduled_restart_step("2027-01-15T09:00:01+01:00", now()),
            Wait
        );
        assert_eq!(
            scheduled_restart_step("2027-01-15T08:00:00+00:00", now()),
            RunNow
        );
        assert_eq!(
            scheduled_restart_step("2027-01-15T08:59:59+01:00", now()),
            RunNow
        );
        // Long overdue (the agent was paused or down): it still runs.
        assert_eq!(
            scheduled_restart_step("2020-01-01T00:00:00+00:00", now()),
            RunNow
        );
        // Not a time (the API never passes one on): not kept waiting forever.
        assert_eq!(scheduled_restart_step("tomorrow", now()), RunNow);
    }

    #[test]
    fn a_due_restart_applies_only_to_the_role_it_names() {
        // Scheduled for replicas, due, on a primary: refused with Patroni's text, and the
        // agent forgets it.
        assert_eq!(
            restart_plan(&running(false), true, Some("replica"), false, false, None),
            Err((
                503,
                "restart conditions are not satisfied: role primary is not replica".into()
            ))
        );
        // On a replica it restarts and follows the leader.
        let up = Upstream {
            member: "n1".into(),
            host: "127.0.0.1".into(),
            port: 5001,
            slot: Some("n2".into()),
        };
        assert_eq!(
            restart_plan(
                &running(true),
                false,
                Some("replica"),
                false,
                false,
                Some(up.clone())
            ),
            Ok(vec![
                Action::Stop {
                    mode: StopMode::Fast
                },
                Action::StartReplica { upstream: Some(up) }
            ])
        );
        // `master` is the old name of `primary`; `any` matches every role.
        assert!(restart_plan(&running(false), true, Some("master"), false, false, None).is_ok());
        assert!(restart_plan(&running(true), false, Some("any"), false, false, None).is_ok());
    }

    #[test]
    fn only_one_restart_waits_at_a_time() {
        assert_eq!(schedule_restart(false), Ok((202, "Restart scheduled")));
        assert_eq!(
            schedule_restart(true),
            Err((409, "Another restart is already scheduled"))
        );
        assert_eq!(cancel_restart(true), (200, "scheduled restart deleted"));
        assert_eq!(cancel_restart(false), (404, "no restarts are scheduled"));
    }

    #[test]
    fn a_restarted_replica_follows_the_leader_through_its_slot() {
        let mut c = Cluster {
            leader: Some(LeaderKey {
                name: "n1".into(),
                lease: 1,
                revision: 1,
            }),
            ..Default::default()
        };
        c.members.insert(
            "n1".into(),
            MemberEntry::Ok(MemberValue {
                conn_url: "postgres://10.0.0.1:5433/postgres".into(),
                ..Default::default()
            }),
        );
        let up = leader_upstream(Some(&c), "n2", true).unwrap();
        assert_eq!(
            (
                up.member.as_str(),
                up.host.as_str(),
                up.port,
                up.slot.as_deref()
            ),
            ("n1", "10.0.0.1", 5433, Some("n2"))
        );
        assert_eq!(leader_upstream(Some(&c), "n2", false).unwrap().slot, None);
        assert_eq!(leader_upstream(None, "n2", true), None);
        c.leader = None;
        assert_eq!(leader_upstream(Some(&c), "n2", true), None);
    }
}
