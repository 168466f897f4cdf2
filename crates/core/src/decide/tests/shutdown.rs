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

#[test]
fn a_shutting_down_agent_exits_once_stopped_without_the_key_or_at_once_when_paused() {
    let down = |o: Obs| o.with(|obs, _| obs.shutting_down = true);
    let stopped = PgView::Stopped(stopped("shut down", false));
    assert!(
        !shutdown_done(&Obs::new("n1").primary(5).obs, "n1"),
        "not shutting down"
    );
    assert!(!shutdown_done(&down(Obs::new("n1").primary(5)).obs, "n1"));
    assert!(shutdown_done(
        &down(Obs::new("n1").pg(stopped.clone())).obs,
        "n1"
    ));
    assert!(
        !shutdown_done(&down(Obs::new("n1").i_lead().pg(stopped)).obs, "n1"),
        "the key is released first"
    );
    let paused = down(Obs::new("n1").primary(5)).with(|obs, _| obs.paused = true);
    assert!(
        shutdown_done(&paused.obs, "n1"),
        "maintenance mode leaves PostgreSQL running"
    );
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
