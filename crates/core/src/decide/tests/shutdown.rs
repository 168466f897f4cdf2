//! Shutting down: a leader checkpoints, then releases the key.

use super::*;

#[test]
fn a_leader_shutting_down_checkpoints_then_releases_the_key() {
    let o = Obs::new("n1")
        .primary(5)
        .i_lead()
        .with(|o, _| o.shutting_down = true);
    assert_eq!(
        o.actions(),
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::ReleaseLeader
        ]
    );
}

#[test]
fn a_replica_shutting_down_only_stops() {
    let o = Obs::new("n2")
        .replica(5)
        .with(|o, _| o.shutting_down = true);
    assert_eq!(
        o.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

/// `shutdown_exit` for `o`, the shutdown begun `after` before the decision.
fn exit_after(o: &Obs, after: Duration, forced: bool) -> Option<ShutdownExit> {
    shutdown_exit(&o.obs, "n1", o.t0, o.t0 + after, forced)
}

#[test]
fn a_shutting_down_agent_exits_once_stopped_without_the_key_or_at_once_when_paused() {
    let down = |o: Obs| o.with(|obs, _| obs.shutting_down = true);
    let stopped = PgView::Stopped(stopped("shut down", false));
    let soon = Duration::from_secs(1);
    assert_eq!(
        exit_after(&Obs::new("n1").primary(5), soon, false),
        None,
        "not shutting down"
    );
    assert_eq!(
        exit_after(&down(Obs::new("n1").primary(5)), soon, false),
        None
    );
    let e = exit_after(&down(Obs::new("n1").pg(stopped.clone())), soon, false).unwrap();
    assert!(e.revoke_lease);
    assert_eq!(
        exit_after(&down(Obs::new("n1").i_lead().pg(stopped)), soon, false),
        None,
        "the key is released first"
    );
    let paused = down(Obs::new("n1").primary(5)).with(|obs, _| obs.paused = true);
    let e = exit_after(&paused, soon, false).unwrap();
    assert!(
        !e.revoke_lease,
        "maintenance mode leaves PostgreSQL running and the key to expire"
    );
}

#[test]
fn every_shutdown_ends_within_the_bound_and_a_writable_leader_keeps_its_lease_to_expire() {
    let down = |o: Obs| o.with(|obs, _| obs.shutting_down = true);
    let views = [
        PgView::NoData,
        PgView::Stopped(stopped("shut down", false)),
        PgView::Starting,
        PgView::Unknown,
        PgView::NoAnswer,
        Obs::new("n1").primary(5).obs.pg,
        Obs::new("n1").replica(5).obs.pg,
    ];
    for pg in views {
        for lead in [false, true] {
            let o = down(
                if lead {
                    Obs::new("n1").i_lead()
                } else {
                    Obs::new("n1")
                }
                .pg(pg.clone()),
            );
            for forced in [false, true] {
                let at = if forced {
                    Duration::ZERO
                } else {
                    SHUTDOWN_BOUND
                };
                let e = exit_after(&o, at, forced)
                    .unwrap_or_else(|| panic!("{pg:?} lead={lead} forced={forced}: no exit"));
                // Revoking deletes the key: never while this leader's server may take writes.
                assert_eq!(
                    e.revoke_lease,
                    !(lead && may_be_writable(&pg)),
                    "{pg:?} lead={lead} forced={forced}: {}",
                    e.reason
                );
            }
        }
    }
    // The DCS unread: the key may be mine.
    let o = down(Obs::new("n1").pg(PgView::Unknown)).with(|obs, _| obs.dcs = Err("down".into()));
    assert!(!exit_after(&o, SHUTDOWN_BOUND, false).unwrap().revoke_lease);
    // What the runtime knows when a second signal interrupts a round.
    assert!(forced_exit(false, true, false).revoke_lease);
    assert!(forced_exit(true, false, false).revoke_lease);
    assert!(!forced_exit(true, true, false).revoke_lease);
    assert!(!forced_exit(false, false, true).revoke_lease, "paused");
}

#[test]
fn a_new_ttl_moves_the_agent_to_a_new_lease_unless_it_has_none_or_is_stopping() {
    let lease = LeaseView {
        id: 7,
        ttl: TTL,
        renewed_at: None,
    };
    let other = Duration::from_secs(20);
    assert!(moves_to_new_ttl(&lease, other, false));
    assert!(!moves_to_new_ttl(&lease, TTL, false));
    assert!(!moves_to_new_ttl(&lease, other, true));
    assert!(!moves_to_new_ttl(
        &LeaseView { id: 0, ..lease },
        other,
        false
    ));
}
