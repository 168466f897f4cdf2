//! Properties over arbitrary observations.

use super::*;

fn arb_pg() -> impl Strategy<Value = PgView> {
    prop_oneof![
        Just(PgView::NoData),
        Just(PgView::Starting),
        Just(PgView::Unknown),
        (any::<bool>(), 0u64..1000, 1u32..3).prop_map(|(rec, lsn, tl)| PgView::Running(Running {
            timeline: tl,
            ..running(rec, lsn)
        })),
        (
            any::<bool>(),
            prop::sample::select(vec!["shut down", "in production", "shut down in recovery"])
        )
            .prop_map(|(sig, st)| PgView::Stopped(stopped(st, sig))),
    ]
}

fn arb_peer() -> impl Strategy<Value = PeerView> {
    prop_oneof![
        Just(PeerView::Unreachable),
        (any::<bool>(), any::<bool>(), 0u64..1000, 0u32..3, 1u32..3).prop_map(
            |(running, rec, lsn, prio, timeline)| {
                let tags = Tags {
                    failover_priority: prio,
                    ..Tags::default()
                };
                PeerView::Answered(PeerStatus {
                    running,
                    in_recovery: rec,
                    wal_position: Lsn(lsn),
                    timeline,
                    tags,
                })
            }
        ),
    ]
}

fn arb_obs() -> impl Strategy<Value = (Obs, u64)> {
    (
        arb_pg(),
        prop::option::of(prop::sample::select(vec!["n1", "n2", "n3"])),
        prop::sample::select(vec![0i64, MY_LEASE, 5]),
        prop::collection::vec(arb_peer(), 2),
        any::<bool>(),
        0u64..20_000,
        any::<bool>(),
        any::<bool>(),
        1u32..4,
    )
        .prop_map(
            |(pg, leader, lease, peers, dcs_ok, ms, nofailover, shutting, cluster_tl)| {
                let mut o = Obs::new("n2").pg(pg).leader(leader, lease);
                for (name, p) in ["n1", "n3"].into_iter().zip(peers) {
                    o = o.peer(name, p);
                }
                let o = o.with(|obs, cfg| {
                    if !dcs_ok {
                        obs.dcs = Err("down".into());
                    }
                    cfg.tags.nofailover = nofailover;
                    obs.shutting_down = shutting;
                    if let Ok(c) = obs.dcs.as_mut() {
                        c.history = Some(history_to(cluster_tl));
                    }
                });
                (o, ms)
            },
        )
}

proptest! {
    /// Whatever it sees, the agent never ends a decision writable without the key: any
    /// promotion is preceded by acquiring or reclaiming the key, or made while holding it.
    #[test]
    fn promotion_only_with_the_key((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if let Some(i) = d.actions.iter().position(|a| matches!(a, Action::Promote | Action::StartPrimary)) {
            let took_key = d.actions[..i].iter().any(|a| matches!(a, Action::AcquireLeader | Action::ReclaimLeader));
            let held = o.obs.dcs.as_ref().is_ok_and(|c| c.leader.as_ref().is_some_and(|l| l.name == "n2" && l.lease == MY_LEASE));
            prop_assert!(took_key || held, "{:?}", d);
        }
    }

    /// A node on a timeline older than the cluster's, with WAL past the point where the
    /// newer timeline forked off its own, never takes the key.
    #[test]
    fn a_diverged_old_timeline_never_acquires((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if let (Ok(c), PgView::Running(r)) = (&o.obs.dcs, &o.obs.pg) {
            let fork = c.history.as_ref().and_then(|h| h.iter().find(|e| e.timeline == r.timeline)).map(|e| e.lsn);
            if r.timeline < c.timeline() && fork.is_none_or(|f| r.wal_position.0 > f) {
                prop_assert!(!d.actions.contains(&Action::AcquireLeader), "{:?}", d);
            }
        }
    }

    /// A nofailover node never takes a free leader key.
    #[test]
    fn nofailover_never_acquires((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if o.cfg.tags.nofailover {
            prop_assert!(!d.actions.contains(&Action::AcquireLeader), "{:?}", d);
        }
    }

    /// Past the fence deadline, a node that may be a primary always stops at once.
    #[test]
    fn past_the_fence_deadline_a_primary_stops((o, ms) in arb_obs()) {
        let at = Duration::from_millis(ms);
        let d = o.decide_at(at);
        if may_be_writable(&o.obs.pg) && at >= TTL - fence_margin(TTL) {
            prop_assert_eq!(d.actions, vec![stop_now()]);
        }
    }

    /// Every decision says why.
    #[test]
    fn every_decision_has_a_reason((o, ms) in arb_obs()) {
        prop_assert!(!o.decide_at(Duration::from_millis(ms)).reason.is_empty());
    }

    /// Two replicas that see each other never both race for the key.
    #[test]
    fn two_level_replicas_never_both_race(a in 0u64..50, b in 0u64..50, pa in 0u32..3, pb in 0u32..3) {
        let mk = |me: &str, other: &str, mine: u64, theirs: u64, my_prio: u32, their_prio: u32| {
            let tags = Tags {
                failover_priority: their_prio,
                ..Tags::default()
            };
            Obs::new(me).replica(mine).peer(other, PeerView::Answered(PeerStatus {
                running: true, in_recovery: true, wal_position: Lsn(theirs), timeline: 1, tags,
            })).with(|_, c| c.tags.failover_priority = my_prio)
        };
        let x = mk("n2", "n3", a, b, pa, pb).actions().contains(&Action::AcquireLeader);
        let y = mk("n3", "n2", b, a, pb, pa).actions().contains(&Action::AcquireLeader);
        prop_assert!(!(x && y));
        // And unless both are unable to promote, one of them does race.
        if pa > 0 || pb > 0 {
            prop_assert!(x || y);
        }
    }
}
