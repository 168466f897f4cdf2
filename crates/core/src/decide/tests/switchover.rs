//! Switchover and failover through the failover key.

use super::*;

#[test]
fn a_leader_asked_to_switch_over_stops_cleanly_first() {
    let o = with_streaming(Obs::new("n1").primary(500).i_lead().optime(500), "n2");
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(
        o.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

#[test]
fn a_cleanly_stopped_leader_then_releases_the_key() {
    let o = with_streaming(
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("shut down", false)))
            .i_lead(),
        "n2",
    );
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(o.actions(), vec![Action::ReleaseLeader]);
    // A crash is not a switchover step: the key holder restarts its primary instead.
    let o = with_streaming(
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("in production", false)))
            .i_lead(),
        "n2",
    );
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(o.actions(), vec![Action::StartPrimary]);
}

#[test]
fn an_unfit_candidate_cancels_the_switchover() {
    for m in [
        MemberValue {
            state: "stopped".into(),
            ..streaming_member("n2")
        },
        MemberValue {
            tags: Tags {
                nofailover: true,
                ..Tags::default()
            },
            ..streaming_member("n2")
        },
        MemberValue {
            receive_lsn: Some(1),
            xlog_location: Some(1),
            ..streaming_member("n2")
        },
    ] {
        let o = Obs::new("n1")
            .primary(5_000_000)
            .i_lead()
            .optime(5_000_000)
            .with(|obs, _| {
                obs.dcs
                    .as_mut()
                    .unwrap()
                    .members
                    .insert("n2".into(), MemberEntry::Ok(m.clone()));
            });
        let o = request(o, Some("n1"), Some("n2"), None);
        let d = o.decide_at(Duration::ZERO);
        assert_eq!(
            d.actions[0],
            Action::DeleteFailover { revision: 42 },
            "{m:?}"
        );
        assert!(!d.actions.contains(&Action::Stop {
            mode: StopMode::Fast
        }));
    }
}

/// A candidate that is fit but reads the archive instead of streaming (reconnecting after
/// the primary restarted) would miss the WAL up to the shutdown checkpoint: the leader waits
/// for it to stream, as long as the REST API waits for the outcome (2 × max(10 s,
/// loop_wait)), then gives the request up.
#[test]
fn a_candidate_not_streaming_yet_is_waited_for_then_given_up() {
    let o = Obs::new("n1")
        .primary(500)
        .i_lead()
        .optime(500)
        .member("n2", "replica");
    let o = request(o, Some("n1"), Some("n2"), None);
    let seen = o.t0;
    let o = o.with(move |obs, _| obs.failover_due_since = Some(seen));
    let d = o.decide_at(Duration::from_secs(5));
    assert!(d.actions.iter().all(Action::is_routine), "{d:?}");
    assert!(
        d.reason.contains("waiting for n2 to stream"),
        "{}",
        d.reason
    );
    let t0 = o.t0;
    let renewed = o
        .clone()
        .with(move |obs, _| obs.lease.renewed_at = Some(t0 + Duration::from_secs(20)));
    let d = renewed.decide_at(Duration::from_secs(21));
    assert_eq!(
        d.actions[0],
        Action::DeleteFailover { revision: 42 },
        "{}",
        d.reason
    );
    assert!(d.reason.contains("n2 is not streaming"), "{}", d.reason);
    // Once it streams, the leader stops at once.
    let o = with_streaming(o, "n2");
    assert_eq!(
        o.decide_at(Duration::from_secs(5)).actions,
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

#[test]
fn a_scheduled_switchover_waits_for_its_time() {
    // The observation's wall clock is 2027-01-15T08:00:00Z.
    let o = with_streaming(Obs::new("n1").primary(500).i_lead().optime(500), "n2");
    let later = request(
        o.clone(),
        Some("n1"),
        Some("n2"),
        Some("2030-01-01T00:00:00+00:00"),
    );
    let d = later.decide_at(Duration::ZERO);
    assert!(d.actions.iter().all(Action::is_routine), "{d:?}");
    assert!(d.reason.contains("scheduled"), "{}", d.reason);
    let due = request(o, Some("n1"), Some("n2"), Some("2020-01-01T00:00:00+00:00"));
    assert_eq!(
        due.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

#[test]
fn only_the_candidate_takes_the_free_key() {
    let cand = request(
        Obs::new("n3").replica(100).peer("n2", peer(true, 900)),
        Some("n1"),
        Some("n3"),
        None,
    );
    assert_eq!(
        &cand.actions()[..2],
        &[Action::AcquireLeader, Action::Promote]
    );
    let other = request(
        Obs::new("n2").replica(900).peer("n3", peer(true, 100)),
        Some("n1"),
        Some("n3"),
        None,
    );
    let d = other.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("waiting for n3"), "{}", d.reason);
    // A nofailover candidate does not promote even when asked.
    let nofail = cand.with(|_, c| c.tags.nofailover = true);
    assert!(nofail.actions().is_empty());
}

#[test]
fn the_new_leader_deletes_the_request() {
    let o = request(
        Obs::new("n3").primary(500).i_lead().optime(500),
        Some("n1"),
        Some("n3"),
        None,
    );
    assert_eq!(o.actions()[0], Action::DeleteFailover { revision: 42 });
}

#[test]
fn the_old_leader_rejoins_without_rewind_after_a_clean_switchover() {
    let fork = |lsn: u64| {
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("shut down", false))) // checkpoint at 500
            .leader(Some("n2"), 5)
            .with(move |obs, _| {
                let c = obs.dcs.as_mut().unwrap();
                let mut m = member("n2", "primary");
                m.timeline = Some(2);
                c.members.insert("n2".into(), MemberEntry::Ok(m));
                c.history = Some(vec![crate::dcs_values::HistoryEntry {
                    timeline: 1,
                    lsn,
                    reason: "no recovery target specified".into(),
                    timestamp: None,
                    new_leader: Some("n2".into()),
                }]);
            })
    };
    let up = upstream("n2", "n1");
    assert_eq!(
        fork(528).actions(),
        vec![Action::StartReplica {
            upstream: Some(up.clone())
        }]
    );
    // Forked before my checkpoint: I may hold WAL the new leader lacks.
    assert!(matches!(fork(400).actions()[0], Action::Rewind { .. }));
}

#[test]
fn a_takeover_without_a_leader_needs_only_a_running_promotable_member() {
    let o = Obs::new("n1").member("n2", "replica");
    let c = o.obs.dcs.as_ref().unwrap();
    // No leader: nobody streams, a running member that may be promoted is fit.
    assert_eq!(takeover_problem(c, "n2", 0), None);
    assert!(takeover_problem(c, "ghost", 0).is_some());
    // With a leader, as Patroni's API: a running replica is accepted though it does not
    // stream yet (the leader waits for it before stopping); a stopped one is not.
    let o = o.member("n3", "primary").leader(Some("n3"), 5);
    let c = o.obs.dcs.as_ref().unwrap();
    assert_eq!(takeover_problem(c, "n2", 0), None);
    assert!(candidate_problem(c, "n2", 0)
        .unwrap()
        .contains("not streaming"));
    let o = o.with(|obs, _| {
        let c = obs.dcs.as_mut().unwrap();
        if let Some(MemberEntry::Ok(m)) = c.members.get_mut("n2") {
            m.state = "stopped".into();
        }
    });
    assert!(takeover_problem(o.obs.dcs.as_ref().unwrap(), "n2", 0).is_some());
}
