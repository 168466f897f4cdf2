//! Replicas follow whoever holds the key.

use super::*;

#[test]
fn a_replica_following_the_leader_does_nothing() {
    let (host, port) = member("n1", "primary").pg_host_port().unwrap();
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some((host, port)),
            ..running(true, 100)
        }))
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "no action: I am n2, a replica following n1");
}

#[test]
fn a_replica_switches_to_the_new_leader() {
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some(("127.0.0.1".into(), 1)),
            ..running(true, 100)
        }))
        .member("n3", "primary")
        .leader(Some("n3"), 5);
    assert_eq!(
        o.actions(),
        vec![Action::Follow {
            upstream: upstream("n3", "n2")
        }]
    );
}

/// Found by the simulation (seed 2487): a member promoted to timeline 2 while the cluster
/// was split; later another member, still on timeline 1, was promoted (to 3, past the
/// cluster's 2). The leader's /history lists only timeline 1; the member on the dead
/// timeline 2 can never stream from it and must rewind. While /history does not yet name
/// the leader's timeline it is stale, and nothing is concluded.
#[test]
fn a_replica_on_a_timeline_the_leader_never_had_rewinds() {
    // /history as the leader wrote it after going from timeline 1 to 3 (its own history
    // file knows nothing of 2); `newest_by`: who made the newest switch it records.
    let on_dead_branch = |newest_by: &str| {
        let newest_by = newest_by.to_string();
        on_timeline(Obs::new("n3").replica(500), 2)
            .leader(Some("n1"), 5)
            .with(move |o, _| {
                let c = o.dcs.as_mut().unwrap();
                let mut m = member("n1", "primary");
                m.timeline = Some(3);
                c.members.insert("n1".into(), MemberEntry::Ok(m));
                let mut h = history_to(2);
                h[0].new_leader = Some(newest_by);
                c.history = Some(h);
            })
    };
    let up = upstream("n1", "n3");
    let d = on_dead_branch("n1").decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::Rewind { source: up.clone() },
            Action::StartReplica {
                upstream: Some(up.clone())
            }
        ],
        "{}",
        d.reason
    );
    assert!(d.reason.contains("not in n1's history"), "{}", d.reason);
    // /history from before the leader's promotion (its newest switch was n2's): stale,
    // nothing is concluded from what it lacks.
    assert_eq!(
        on_dead_branch("n2").actions(),
        vec![Action::Follow { upstream: up }]
    );
}

#[test]
fn a_replica_past_the_new_timelines_fork_point_rewinds() {
    let diverged = |my_lsn: u64| {
        Obs::new("n3")
            .replica(my_lsn)
            .leader(Some("n1"), 5)
            .with(|o, _| {
                let c = o.dcs.as_mut().unwrap();
                let mut m = member("n1", "primary");
                m.timeline = Some(2);
                c.members.insert("n1".into(), MemberEntry::Ok(m));
                c.history = Some(vec![crate::dcs_values::HistoryEntry {
                    timeline: 1,
                    lsn: 1000,
                    reason: "no recovery target specified".into(),
                    timestamp: None,
                    new_leader: Some("n1".into()),
                }]);
            })
    };
    let up = upstream("n1", "n3");
    assert_eq!(
        diverged(1001).actions(),
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::Rewind { source: up.clone() },
            Action::StartReplica {
                upstream: Some(up.clone())
            }
        ]
    );
    // At or before the fork point it can simply follow the new timeline.
    assert_eq!(
        diverged(1000).actions(),
        vec![Action::Follow {
            upstream: up.clone()
        }]
    );
    // A failed rewind means a fresh clone.
    let o = diverged(1001).with(|o, _| o.rewind_failed = Some(RewindFailure::Irreconcilable));
    assert!(matches!(o.actions()[1], Action::Reinit { .. }));
}

#[test]
fn a_replica_waits_for_the_new_leader_to_finish_promoting() {
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some(("127.0.0.1".into(), 1)),
            ..running(true, 100)
        }))
        .member("n3", "replica")
        .leader(Some("n3"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("finish its promotion"), "{}", d.reason);
}

#[test]
fn a_replica_holding_the_key_promotes() {
    assert_eq!(
        Obs::new("n2").replica(100).i_lead().actions(),
        vec![Action::Promote]
    );
}

#[test]
fn a_stopped_replica_starts_following_the_leader() {
    let o = Obs::new("n2")
        .pg(PgView::Stopped(stopped("shut down in recovery", true)))
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    assert_eq!(
        o.actions(),
        vec![Action::StartReplica {
            upstream: Some(upstream("n1", "n2"))
        }]
    );
}
