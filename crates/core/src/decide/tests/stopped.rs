//! A stopped server: a former primary never comes back writable without the key.

use super::*;

#[test]
fn a_stopped_former_primary_rewinds_then_follows() {
    for state in ["in production", "shut down"] {
        let o = Obs::new("n1")
            .pg(PgView::Stopped(stopped(state, false)))
            .member("n2", "primary")
            .leader(Some("n2"), 5);
        let up = upstream("n2", "n1");
        assert_eq!(
            o.actions(),
            vec![
                Action::Rewind { source: up.clone() },
                Action::StartReplica { upstream: Some(up) }
            ]
        );
    }
}

#[test]
fn a_former_primary_waits_for_the_new_leaders_checkpoint() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .leader(Some("n2"), 5)
        .with(|o, _| {
            let mut m = member("n2", "primary");
            m.checkpoint_after_promote = Some(false);
            o.dcs
                .as_mut()
                .unwrap()
                .members
                .insert("n2".into(), MemberEntry::Ok(m));
        });
    assert!(o.actions().is_empty());
}

#[test]
fn a_former_primary_whose_rewind_failed_is_cloned_again() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .member("n2", "primary")
        .leader(Some("n2"), 5)
        .with(|o, _| o.rewind_failed = Some(RewindFailure::Irreconcilable));
    assert!(matches!(o.actions()[0], Action::Reinit { .. }));
}

#[test]
fn a_stopped_former_primary_without_a_leader_starts_read_only() {
    let o = Obs::new("n1").pg(PgView::Stopped(stopped("in production", false)));
    assert_eq!(o.actions(), vec![Action::StartReplica { upstream: None }]);
}

#[test]
fn a_stopped_primary_holding_the_key_starts_as_primary() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("shut down", false)))
        .i_lead();
    assert_eq!(o.actions(), vec![Action::StartPrimary]);
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(Stopped {
            sysid: "999".into(),
            ..stopped("shut down", false)
        }))
        .member("n2", "primary")
        .leader(Some("n2"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("system identifier"), "{}", d.reason);
}

#[test]
fn a_leader_whose_primary_will_not_start_gives_the_key_up_after_primary_start_timeout() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .i_lead();
    assert_eq!(
        o.actions(),
        vec![Action::StartPrimary],
        "a crash is first recovered in place"
    );
    let failing = o.with(|obs, _| obs.primary_start_failing_since = Some(Instant::now()));
    // The lease keeps being renewed meanwhile (a stale one is another test's subject).
    let renewed = |o: &Obs, at: u64| {
        let t0 = o.t0;
        o.clone()
            .with(move |obs, _| obs.lease.renewed_at = Some(t0 + Duration::from_secs(at)))
    };
    assert_eq!(
        renewed(&failing, 298)
            .decide_at(Duration::from_secs(299))
            .actions,
        vec![Action::StartPrimary]
    );
    let d = failing.decide_at(Duration::from_secs(301));
    assert_eq!(d.actions, vec![Action::ReleaseLeader], "{}", d.reason);
    // A shorter primary_start_timeout from /config applies.
    let short = failing.with(|obs, _| {
        obs.dcs.as_mut().unwrap().config =
            Some(serde_json::json!({"ttl": 10, "primary_start_timeout": 5}))
    });
    assert_eq!(
        short.decide_at(Duration::from_secs(6)).actions,
        vec![Action::ReleaseLeader]
    );
}

#[test]
fn a_leader_whose_primary_exited_while_starting_gives_the_key_up_at_once() {
    let exited = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .i_lead()
        .with(|obs, _| {
            obs.primary_start_failing_since = Some(Instant::now());
            obs.primary_start_exited = true;
        });
    let d = exited.decide_at(Duration::from_secs(1));
    assert_eq!(d.actions, vec![Action::GiveUpLeader], "{}", d.reason);
    assert!(
        d.reason
            .starts_with("removed leader key after trying and failing to start postgres"),
        "{}",
        d.reason
    );
    // Only a primary's failed start gives the key away: a replica's data directory that
    // will not start says nothing about the leader's.
    let replica = exited
        .clone()
        .pg(PgView::Stopped(stopped("shut down in recovery", true)));
    assert!(!replica.actions().contains(&Action::GiveUpLeader));
    // Without the key there is nothing to give up.
    let follower = exited.leader(Some("n2"), 5);
    assert!(!follower.actions().contains(&Action::GiveUpLeader));
}

#[test]
fn a_former_primary_waits_for_the_fork_point_before_choosing_rewind() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("shut down", false)))
        .leader(Some("n2"), 5)
        .with(|obs, _| {
            let c = obs.dcs.as_mut().unwrap();
            let mut m = member("n2", "primary");
            m.timeline = Some(2);
            c.members.insert("n2".into(), MemberEntry::Ok(m));
            c.history = Some(vec![]);
        });
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("forked"), "{}", d.reason);
}

/// Found by the simulation (seed 3709): the former primary's timeline 2 is a branch the
/// leader (timeline 3, promoted from 1) never had; its /history, written after its own
/// promotion, will never list timeline 2. Waiting for that fork point would wait forever:
/// it rewinds (pg_rewind finds the divergence itself).
#[test]
fn a_former_primary_on_a_branch_the_leader_never_had_rewinds() {
    let on_branch = Stopped {
        timeline: 2,
        ..stopped("in production", false)
    };
    let o = Obs::new("n1")
        .pg(PgView::Stopped(on_branch))
        .leader(Some("n2"), 5)
        .with(|obs, _| {
            let c = obs.dcs.as_mut().unwrap();
            let mut m = member("n2", "primary");
            m.timeline = Some(3);
            c.members.insert("n2".into(), MemberEntry::Ok(m));
            let mut h = history_to(2);
            h[0].new_leader = Some("n2".into());
            c.history = Some(h);
        });
    let d = o.decide_at(Duration::ZERO);
    assert!(
        matches!(d.actions.first(), Some(Action::Rewind { .. })),
        "{:?}: {}",
        d.actions,
        d.reason
    );
}

/// Patroni's `primary_start_timeout: 0` (acceptance `recovery`): a leader whose primary is
/// found down gives the key up at once when a replica can take over, instead of restarting
/// it; with no such replica it restarts in place.
#[test]
fn primary_start_timeout_zero_fails_over_at_once() {
    let zero = |o: Obs| {
        o.with(|obs, _| {
            obs.dcs.as_mut().unwrap().config =
                Some(serde_json::json!({"ttl": 10, "primary_start_timeout": 0}))
        })
    };
    let alone = zero(
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("in production", false)))
            .i_lead(),
    );
    assert_eq!(
        alone.actions(),
        vec![Action::StartPrimary],
        "nobody to take over"
    );
    let with_replica = alone.with(|obs, _| {
        let mut m = member("n2", "replica");
        m.state = "running".into();
        obs.dcs
            .as_mut()
            .unwrap()
            .members
            .insert("n2".into(), MemberEntry::Ok(m));
    });
    let d = with_replica.decide_at(Duration::ZERO);
    assert_eq!(d.actions, vec![Action::ReleaseLeader], "{}", d.reason);
}
