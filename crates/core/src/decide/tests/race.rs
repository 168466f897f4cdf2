//! The leader race: which replica may take a free key.

use super::*;

#[test]
fn a_replica_ahead_of_its_peers_acquires_the_key_and_promotes() {
    let o = Obs::new("n2")
        .replica(120)
        .peer("n3", peer(true, 100))
        .optime(120);
    assert_takes_over(&o);
}

#[test]
fn a_replica_behind_a_reachable_peer_does_not_race() {
    let o = Obs::new("n2").replica(100).peer("n3", peer(true, 120));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("n3 is ahead"), "{}", d.reason);
}

#[test]
fn a_replica_does_not_race_while_a_primary_answers() {
    let o = Obs::new("n2").replica(100).peer("n1", peer(false, 90));
    assert!(o.actions().is_empty());
}

#[test]
fn an_unreachable_peer_does_not_block_the_race() {
    let o = Obs::new("n2")
        .replica(100)
        .peer("n1", PeerView::Unreachable);
    assert_takes_over(&o);
}

#[test]
fn a_nofailover_replica_never_races() {
    let o = Obs::new("n2")
        .replica(100)
        .with(|_, c| c.tags.nofailover = true);
    assert!(o.actions().is_empty());
    let o = Obs::new("n2")
        .replica(100)
        .with(|_, c| c.tags.failover_priority = 0);
    assert!(o.actions().is_empty());
}

#[test]
fn a_nofailover_peer_ahead_does_not_block_the_race() {
    let tags = Tags {
        nofailover: true,
        ..Tags::default()
    };
    let o = Obs::new("n2").replica(100).peer(
        "n3",
        PeerView::Answered(PeerStatus {
            running: true,
            in_recovery: true,
            wal_position: Lsn(200),
            timeline: 1,
            tags,
        }),
    );
    assert_takes_over(&o);
}

#[test]
fn a_replica_too_far_behind_the_last_leader_position_does_not_race() {
    let o = Obs::new("n2").replica(100).optime(100 + 1_048_577);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("maximum_lag_on_failover"), "{}", d.reason);
    let o = Obs::new("n2").replica(100).optime(100 + 1_048_576);
    assert_takes_over(&o);
}

#[test]
fn ties_go_to_the_higher_failover_priority_then_the_smaller_name() {
    // Level with n3, same priority: n2 < n3, so n2 races and n3 does not.
    let n2 = Obs::new("n2").replica(100).peer("n3", peer(true, 100));
    assert_takes_over(&n2);
    let n3 = Obs::new("n3").replica(100).peer("n2", peer(true, 100));
    assert!(n3.actions().is_empty());
    // A higher priority beats the name.
    let n3 = n3.with(|_, c| c.tags.failover_priority = 5);
    assert_takes_over(&n3);
}

#[test]
fn a_replica_on_an_old_timeline_never_races_even_when_ahead_in_bytes() {
    // A former primary replaying its old timeline-1 WAL, after the cluster moved to 2.
    let o = on_timeline(Obs::new("n1").replica(900), 1)
        .with(|o, _| o.dcs.as_mut().unwrap().history = Some(history_to(2)));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("timeline"), "{}", d.reason);
}

#[test]
fn a_replica_still_on_the_old_timeline_before_the_fork_may_race() {
    // Right after a switchover a replica may still report the old timeline (nothing of the
    // new one received yet); its WAL ends before the fork, so it is a prefix and may lead.
    let o = on_timeline(Obs::new("n1").replica(100), 1)
        .with(|o, _| o.dcs.as_mut().unwrap().history = Some(history_to(2)));
    assert_takes_over(&o);
}

#[test]
fn a_peer_on_a_newer_timeline_beats_more_bytes_on_an_older_one() {
    let newer = PeerView::Answered(PeerStatus {
        running: true,
        in_recovery: true,
        wal_position: Lsn(100),
        timeline: 2,
        tags: Tags::default(),
    });
    let o = on_timeline(Obs::new("n1").replica(900), 1).peer("n2", newer);
    assert!(o.actions().is_empty());
    // And the node on the newer timeline is not stopped by the older one's bytes.
    let o = on_timeline(Obs::new("n2").replica(100), 2).peer("n1", peer(true, 900));
    assert_takes_over(&o);
}

#[test]
fn a_stopped_peer_does_not_take_part_in_the_race() {
    let o = Obs::new("n3").replica(100).peer(
        "n2",
        PeerView::Answered(PeerStatus {
            running: false,
            in_recovery: true,
            wal_position: Lsn(500),
            timeline: 1,
            tags: Tags::default(),
        }),
    );
    assert_takes_over(&o);
}

/// Patroni's `pre_promote`: a failed script gives the key up, and the node sits the next
/// races out for `ttl` (10 s here) so another member gets its turn.
#[test]
fn a_failed_pre_promote_gives_the_key_up_and_backs_off_for_ttl() {
    let o = Obs::new("n2")
        .replica(120)
        .i_lead()
        .with(|o, _| o.pre_promote_failed = true);
    let d = o.decide_at(Duration::ZERO);
    assert_eq!(d.actions, vec![Action::ReleaseLeader]);
    assert!(
        d.reason
            .contains("Promotion cancelled because the pre-promote script failed"),
        "{}",
        d.reason
    );

    let o = Obs::new("n2").replica(120).optime(120);
    let t0 = o.t0;
    let o = o.with(|o, _| o.pre_promote_released_at = Some(t0));
    let d = o.decide_at(Duration::from_secs(9));
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(
        d.reason.contains(
            "backoff: skip leader race after pre_promote script failure and releasing the lock voluntarily"
        ),
        "{}",
        d.reason
    );
    // The backoff holds for a requested failover too.
    let asked = request(Obs::new("n2").replica(120), None, Some("n2"), None)
        .with(|o, _| o.pre_promote_released_at = Some(t0));
    assert!(asked.decide_at(Duration::from_secs(9)).actions.is_empty());
    // Once ttl has passed it races again.
    assert_eq!(
        o.decide_at(Duration::from_secs(10)).actions.first(),
        Some(&Action::AcquireLeader)
    );
}
