//! Synchronous replication and failsafe rules of `decide`: who may be elected from the
//! sync key, what a promotion writes first, the leader's sync steps, failsafe fencing.

use std::collections::BTreeSet;

use super::*;
use crate::dcs_values::SyncValue;
use crate::sync::{ReplicationRow, Ssn, SsnKind, SyncMode};

fn mode(o: Obs, m: SyncMode, strict: bool) -> Obs {
    o.with(|_, c| {
        c.bootstrap.dcs.sync.mode = m;
        c.bootstrap.dcs.sync.strict = strict;
    })
    .with(|o, _| {
        // /config is what every node reads: say the same there.
        let cfg = o.dcs.as_mut().unwrap().config.as_mut().unwrap();
        cfg["synchronous_mode"] = match m {
            SyncMode::Off => false.into(),
            SyncMode::On => true.into(),
            SyncMode::Quorum => "quorum".into(),
        };
        cfg["synchronous_mode_strict"] = strict.into();
    })
}

fn key(leader: &str, standbys: &[&str], quorum: u32) -> SyncValue {
    SyncValue {
        leader: Some(leader.into()),
        sync_standby: standbys
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        quorum,
    }
}

fn with_key(o: Obs, k: SyncValue) -> Obs {
    o.with(move |o, _| o.dcs.as_mut().unwrap().sync = Some(k))
}

fn prepromote(me: &str, strict: bool) -> Vec<Action> {
    let ssn = if strict { Ssn::anyone() } else { Ssn::none() };
    vec![
        Action::WriteSync {
            value: key(me, &[], 0),
        },
        Action::SetSyncStandbys { ssn: Some(ssn) },
    ]
}

fn takes_over_in_sync_mode(o: &Obs, strict: bool) {
    let me = o.cfg.name.clone();
    let acts = o.actions();
    assert_eq!(acts[0], Action::AcquireLeader, "{acts:?}");
    assert_eq!(acts[1..3], prepromote(&me, strict)[..], "{acts:?}");
    assert_eq!(acts[3], Action::Promote, "{acts:?}");
}

#[test]
fn in_on_mode_only_a_standby_the_key_names_may_take_over() {
    let base = || {
        mode(
            Obs::new("n2").replica(100).peer("n3", peer(true, 100)),
            SyncMode::On,
            false,
        )
    };
    // n3 is level and wins the name tie in async mode; here only the key decides.
    let o = with_key(base(), key("n1", &["n2"], 0));
    takes_over_in_sync_mode(&o, false);
    let o = with_key(base(), key("n1", &["n3"], 0));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(
        d.reason.contains("sync key does not name me"),
        "{}",
        d.reason
    );
}

#[test]
fn an_asynchronous_peer_ahead_does_not_stop_the_synchronous_standby() {
    let o = with_key(
        mode(
            Obs::new("n2").replica(100).peer("n3", peer(true, 500)),
            SyncMode::On,
            true,
        ),
        key("n1", &["n2"], 0),
    );
    takes_over_in_sync_mode(&o, true);
}

#[test]
fn a_synchronous_peer_ahead_still_wins() {
    let o = with_key(
        mode(
            Obs::new("n2").replica(100).peer("n3", peer(true, 500)),
            SyncMode::On,
            false,
        ),
        key("n1", &["n2", "n3"], 0),
    );
    assert!(o.actions().is_empty());
}

#[test]
fn the_sync_rules_do_not_lift_nofailover_priority_or_lag() {
    let k = key("n1", &["n2"], 0);
    let o = with_key(
        mode(Obs::new("n2").replica(100), SyncMode::On, false),
        k.clone(),
    )
    .with(|_, c| c.tags.failover_priority = 0);
    assert!(o.actions().is_empty());
    let o = with_key(mode(Obs::new("n2").replica(100), SyncMode::On, false), k)
        .optime(100 + 2 * 1_048_576);
    assert!(o.actions().is_empty());
}

#[test]
fn a_key_without_a_leader_promises_nothing_and_async_rules_apply() {
    let o = mode(Obs::new("n2").replica(100), SyncMode::On, false);
    let acts = o.actions();
    assert_eq!(acts[0], Action::AcquireLeader);
    let o = with_key(
        mode(Obs::new("n2").replica(100), SyncMode::On, false),
        SyncValue {
            leader: Some(String::new()),
            ..SyncValue::default()
        },
    );
    // An unreadable key reads as naming nobody: nobody is elected on its word.
    assert!(o.actions().is_empty());
}

#[test]
fn in_quorum_mode_a_candidate_needs_enough_voters_not_ahead_of_it() {
    let base = |peers: &[(&str, Option<u64>)]| {
        let mut o = mode(Obs::new("n2").replica(100), SyncMode::Quorum, false);
        for (n, lsn) in peers {
            o = o.peer(n, lsn.map_or(PeerView::Unreachable, |l| peer(true, l)));
        }
        with_key(o, key("n1", &["n2", "n3", "n4"], 1))
    };
    // A voter needs quorum (1) other voters at or behind it.
    takes_over_in_sync_mode(&base(&[("n3", Some(90)), ("n4", None)]), false);
    let d = base(&[("n3", None), ("n4", None)]).decide_at(Duration::ZERO);
    assert!(
        d.actions.is_empty() && d.reason.contains("0 voter(s)"),
        "{}",
        d.reason
    );
    // Ahead is ahead: it must wait for that voter to win instead.
    assert!(base(&[("n3", Some(120)), ("n4", Some(90))])
        .actions()
        .is_empty());
    // A non-voter needs one vote more.
    let o = with_key(
        mode(
            Obs::new("n5")
                .replica(100)
                .peer("n3", peer(true, 90))
                .peer("n4", PeerView::Unreachable),
            SyncMode::Quorum,
            false,
        ),
        key("n1", &["n2", "n3", "n4"], 1),
    );
    assert!(o.actions().is_empty());
}

#[test]
fn the_former_leader_named_by_the_key_may_take_over_again() {
    let o = with_key(
        mode(
            Obs::new("n1")
                .replica(100)
                .peer("n2", PeerView::Unreachable),
            SyncMode::Quorum,
            false,
        ),
        key("n1", &["n2", "n3"], 1),
    );
    takes_over_in_sync_mode(&o, false);
}

#[test]
fn the_key_holder_restarts_its_primary_waiting_for_the_keys_standbys() {
    let stopped = PgView::Stopped(Stopped {
        sysid: "7000".into(),
        cluster_state: "shut down".into(),
        timeline: 1,
        standby_signal: false,
        checkpoint: None,
    });
    let o = with_key(
        mode(Obs::new("n1").pg(stopped).i_lead(), SyncMode::On, false),
        key("n1", &["n2"], 0),
    );
    assert_eq!(
        o.actions(),
        vec![
            Action::SetSyncStandbys {
                ssn: Some(Ssn::new(SsnKind::First, 1, ["n2".to_string()]))
            },
            Action::StartPrimary
        ]
    );
}

fn leader_with(rep: ReplicationView) -> Obs {
    Obs::new("n1")
        .primary(1000)
        .i_lead()
        .member("n2", "replica")
        .optime(1000)
        .with(|o, c| {
            c.bootstrap.dcs.use_slots = false;
            o.replication = Some(rep);
        })
}

fn row(name: &str, flush: u64) -> ReplicationRow {
    ReplicationRow {
        application_name: name.into(),
        streaming: true,
        sync_state: "sync".into(),
        flush: Lsn(flush),
        write: Lsn(flush),
        replay: Lsn(flush),
    }
}

#[test]
fn the_leader_first_makes_postgresql_wait_then_names_the_standby() {
    let rep = ReplicationView {
        ssn: Ssn::none(),
        managed: true,
        ssn_lsn: Some(Lsn(900)),
        rows: vec![row("n2", 1000)],
        synchronous_commit: "on".into(),
    };
    let o = with_key(
        mode(leader_with(rep.clone()), SyncMode::On, false),
        key("n1", &[], 0),
    );
    assert_eq!(
        o.actions(),
        vec![Action::SetSyncStandbys {
            ssn: Some(Ssn::new(SsnKind::First, 1, ["n2".to_string()]))
        }]
    );
    let mut rep2 = rep;
    rep2.ssn = Ssn::new(SsnKind::First, 1, ["n2".to_string()]);
    let o = with_key(
        mode(leader_with(rep2.clone()), SyncMode::On, false),
        key("n1", &[], 0),
    );
    assert_eq!(
        o.actions(),
        vec![Action::WriteSync {
            value: key("n1", &["n2"], 0)
        }]
    );
    // Not before the standby flushed what was written before the setting took effect.
    rep2.rows = vec![row("n2", 800)];
    let o = with_key(
        mode(leader_with(rep2), SyncMode::On, false),
        key("n1", &[], 0),
    );
    assert!(o.actions().is_empty());
}

#[test]
fn a_standby_past_maximum_lag_on_syncnode_is_not_chosen() {
    let rep = ReplicationView {
        ssn: Ssn::none(),
        managed: true,
        ssn_lsn: Some(Lsn(0)),
        rows: vec![row("n2", 10)],
        synchronous_commit: "on".into(),
    };
    let o = with_key(
        mode(leader_with(rep), SyncMode::On, false),
        key("n1", &[], 0),
    )
    .with(|o, _| {
        o.dcs.as_mut().unwrap().config.as_mut().unwrap()["maximum_lag_on_syncnode"] = 100.into()
    });
    assert!(o.actions().is_empty(), "{:?}", o.actions());
}

#[test]
fn with_sync_mode_off_the_key_empties_before_postgresql_stops_waiting() {
    let rep = ReplicationView {
        ssn: Ssn::new(SsnKind::First, 1, ["n2".to_string()]),
        managed: true,
        ssn_lsn: Some(Lsn(0)),
        rows: vec![row("n2", 1000)],
        synchronous_commit: "on".into(),
    };
    let o = with_key(leader_with(rep.clone()), key("n1", &["n2"], 0));
    assert_eq!(
        o.actions(),
        vec![Action::WriteSync {
            value: key("n1", &[], 0)
        }]
    );
    let o = with_key(leader_with(rep), key("n1", &[], 0));
    assert_eq!(o.actions(), vec![Action::SetSyncStandbys { ssn: None }]);
}

// --- failsafe ---

fn failsafe(o: Obs) -> Obs {
    o.with(|o, c| {
        c.bootstrap.dcs.failsafe_mode = true;
        o.dcs.as_mut().unwrap().config.as_mut().unwrap()["failsafe_mode"] = true.into();
    })
}

#[test]
fn failsafe_keeps_a_confirmed_primary_past_its_lease_and_no_longer() {
    let o = failsafe(Obs::new("n1").primary(100)).with(|o, _| {
        o.dcs = Err("etcd unavailable".into());
    });
    let t0 = o.t0;
    // The lease ran out at t0 + 8 s; a round started at t0 + 6 s confirmed me.
    let o = o.with(move |o, _| o.failsafe_confirmed = Some(t0 + Duration::from_secs(6)));
    assert!(o.decide_at(Duration::from_secs(12)).actions.is_empty());
    assert_eq!(
        o.decide_at(Duration::from_secs(15)).actions,
        vec![stop_now()]
    );
}

#[test]
fn failsafe_demotes_as_soon_as_a_member_does_not_confirm() {
    let o = failsafe(Obs::new("n1").primary(100)).with(|o, _| {
        o.dcs = Err("etcd unavailable".into());
        o.failsafe_round = Some(FailsafeRound {
            started: Instant::now(),
            missing: vec!["n3".into()],
            refused: vec![],
        });
    });
    // Once the lease may be gone (renewed at t0, ttl 10 s, margin 2 s).
    let d = o.decide_at(Duration::from_secs(9));
    assert_eq!(d.actions, vec![stop_now()]);
}

#[test]
fn failsafe_holds_replicas_back_while_the_leader_confirms_itself() {
    let t0 = Obs::new("n2").t0;
    let o = failsafe(Obs::new("n2").replica(100))
        .with(move |o, _| o.failsafe_contact = Some(("n1".into(), t0 + Duration::from_secs(10))));
    let d = o.decide_at(Duration::from_secs(3));
    assert!(
        d.actions.is_empty() && d.reason.contains("failsafe"),
        "{}",
        d.reason
    );
    // A ttl later the leader is presumed gone.
    assert_eq!(
        o.decide_at(Duration::from_secs(11)).actions[0],
        Action::AcquireLeader
    );
    // A member /failsafe does not list never races.
    let o = failsafe(Obs::new("n2").replica(100)).with(|o, _| {
        o.dcs.as_mut().unwrap().failsafe = Some([("n1".to_string(), "x".to_string())].into());
    });
    assert!(o.actions().is_empty());
}

/// Found by the simulation (seed 520): a member whose agent was down when the last leader
/// wrote /failsafe is not listed, may not race, and is ahead in WAL; it must not stop the
/// listed members, or nobody is ever elected.
#[test]
fn a_member_failsafe_does_not_list_does_not_block_the_race() {
    let listed = |o: Obs| {
        failsafe(o).with(|o, _| {
            o.dcs.as_mut().unwrap().failsafe = Some(
                [("n1", "x"), ("n3", "y")]
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .into(),
            );
        })
    };
    let o = listed(
        Obs::new("n3")
            .replica(100)
            .member("n2", "replica")
            .peer("n2", peer(true, 200)),
    );
    assert_eq!(
        o.actions()[0],
        Action::AcquireLeader,
        "{}",
        o.decide_at(Duration::ZERO).reason
    );
    // Without failsafe mode the peer ahead in WAL still wins.
    let plain = Obs::new("n3")
        .replica(100)
        .member("n2", "replica")
        .peer("n2", peer(true, 200));
    assert!(plain.actions().is_empty());
}

#[test]
fn the_leader_keeps_failsafe_listing_every_member() {
    let o = failsafe(
        Obs::new("n1")
            .primary(100)
            .i_lead()
            .member("n2", "replica")
            .optime(100),
    )
    .with(|_, c| c.bootstrap.dcs.use_slots = false);
    let acts = o.actions();
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::WriteFailsafe { members } if members.len() == 2)),
        "{acts:?}"
    );
}

#[test]
fn check_timeline_refuses_any_older_timeline() {
    let o = Obs::new("n2").replica(100).with(|o, _| {
        o.dcs.as_mut().unwrap().history = Some(vec![crate::dcs_values::HistoryEntry {
            timeline: 1,
            lsn: 200,
            reason: "x".into(),
            timestamp: None,
            new_leader: None,
        }]);
    });
    // WAL before the fork: a prefix of the new timeline, allowed by default.
    assert_eq!(o.actions()[0], Action::AcquireLeader);
    let o = o.with(|o, _| {
        o.dcs.as_mut().unwrap().config.as_mut().unwrap()["check_timeline"] = true.into()
    });
    assert!(o.actions().is_empty());
}

#[test]
fn a_key_written_in_quorum_mode_keeps_its_quorum_after_a_switch_to_on() {
    let o = with_key(
        mode(
            Obs::new("n2")
                .replica(100)
                .peer("n3", PeerView::Unreachable)
                .peer("n4", PeerView::Unreachable),
            SyncMode::On,
            false,
        ),
        key("n1", &["n2", "n3", "n4"], 1),
    );
    assert!(o.actions().is_empty(), "{:?}", o.actions());
    let o = o.peer("n3", peer(true, 90));
    takes_over_in_sync_mode(&o, false);
}

#[test]
fn an_absurd_quorum_in_a_corrupt_key_elects_nobody() {
    let o = with_key(
        mode(Obs::new("n5").replica(100), SyncMode::Quorum, false),
        key("n1", &["n2"], u32::MAX),
    );
    assert!(o.actions().is_empty());
}

#[test]
fn failsafe_set_only_in_the_cluster_config_still_applies_without_the_dcs() {
    let t0 = Obs::new("n1").t0;
    let o = Obs::new("n1").primary(100).with(move |o, local| {
        let mut cfg = o.dcs.as_ref().unwrap().config.clone().unwrap();
        cfg["failsafe_mode"] = true.into();
        o.config_in_force = Some(crate::config::effective_dynamic(local, Some(&cfg)));
        o.dcs = Err("etcd unavailable".into());
        o.failsafe_confirmed = Some(t0 + Duration::from_secs(6));
    });
    assert!(o.decide_at(Duration::from_secs(12)).actions.is_empty());
}

#[test]
fn a_member_missing_from_a_round_does_not_matter_while_the_lease_lives() {
    let o = failsafe(Obs::new("n1").primary(100)).with(|o, _| {
        o.dcs = Err("etcd unavailable".into());
        o.failsafe_round = Some(FailsafeRound {
            started: Instant::now(),
            missing: vec!["n3".into()],
            refused: vec![],
        });
    });
    let d = o.decide_at(Duration::from_secs(1));
    assert!(d.actions.is_empty());
    // The reason says who did not confirm (it used to say every member had).
    assert!(
        d.reason.contains("could not confirm me with n3") && !d.reason.contains("every member"),
        "{}",
        d.reason
    );
    assert_eq!(
        o.decide_at(Duration::from_secs(9)).actions,
        vec![stop_now()]
    );
}

#[test]
fn in_on_mode_a_switchover_to_an_asynchronous_standby_is_dropped() {
    let o = with_streaming(
        with_streaming(Obs::new("n1").primary(500).i_lead().optime(500), "n2"),
        "n3",
    );
    let o = with_key(mode(o, SyncMode::On, false), key("n1", &["n2"], 0));
    let to_n3 = request(o.clone(), Some("n1"), Some("n3"), None);
    let d = to_n3.decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![Action::DeleteFailover { revision: 42 }],
        "{d:?}"
    );
    assert!(d.reason.contains("sync_standby"), "{}", d.reason);
    let to_n2 = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(
        to_n2.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

/// Patroni's check_failsafe_topology: a member that answers no, or whose API refuses the
/// connection (its agent is down), ends the leadership at once; one that is only slow
/// waits for the lease (the test above).
#[test]
fn a_member_that_refuses_the_leader_in_failsafe_ends_its_leadership_at_once() {
    let o = failsafe(Obs::new("n1").primary(100)).with(|o, _| {
        o.dcs = Err("etcd unavailable".into());
        o.failsafe_round = Some(FailsafeRound {
            started: Instant::now(),
            missing: vec!["n2".into(), "n3".into()],
            refused: vec!["n3".into()],
        });
    });
    let d = o.decide_at(Duration::from_secs(1));
    assert_eq!(d.actions, vec![stop_now()]);
    assert!(
        d.reason
            .contains("demoting self because DCS is not accessible and I was a leader"),
        "{}",
        d.reason
    );
}
