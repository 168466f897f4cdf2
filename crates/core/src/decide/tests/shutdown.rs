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
