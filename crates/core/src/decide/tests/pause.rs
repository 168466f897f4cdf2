//! Maintenance mode: nothing automatic happens.

use super::*;

#[test]
fn in_maintenance_mode_nothing_automatic_happens() {
    let paused = |o: Obs| o.with(|obs, _| obs.paused = true);
    // No race for a free key.
    assert!(paused(Obs::new("n2").replica(100)).actions().is_empty());
    // No restart of a stopped server.
    let o = paused(
        Obs::new("n2")
            .pg(PgView::Stopped(stopped("shut down in recovery", true)))
            .member("n1", "primary")
            .leader(Some("n1"), 5),
    );
    assert!(o.actions().is_empty());
    // No fencing of a primary whose lease is old.
    let o = paused(Obs::new("n1").primary(500).i_lead().optime(500));
    assert!(!o.decide_at(TTL * 3).actions.contains(&stop_now()));
    // No demotion of a primary that lost the key.
    let o = paused(
        Obs::new("n1")
            .primary(500)
            .member("n2", "primary")
            .leader(Some("n2"), 5),
    );
    assert!(o.actions().is_empty());
    // Shutdown leaves PostgreSQL running.
    let o = paused(Obs::new("n1").primary(500).i_lead()).with(|obs, _| obs.shutting_down = true);
    assert!(o.actions().is_empty());
    // A running primary without a key takes it.
    assert_eq!(
        paused(Obs::new("n1").primary(500)).actions(),
        vec![Action::AcquireLeader]
    );
}

/// Acceptance `patroni_api`, switchover in maintenance mode: the old primary, stopped for
/// the switchover, starts as the new leader's replica (Patroni's demote does it in the same
/// step); a primary that is merely found stopped is still left alone.
#[test]
fn a_switchover_in_maintenance_mode_ends_with_the_old_primary_a_replica() {
    let stopped_old_primary = Obs::new("n1")
        .pg(PgView::Stopped(stopped("shut down", false)))
        .leader(Some("n2"), 5)
        .with(|obs, _| {
            obs.paused = true;
            let c = obs.dcs.as_mut().unwrap();
            let mut m = member("n2", "primary");
            m.timeline = Some(2);
            c.members.insert("n2".into(), MemberEntry::Ok(m));
            let mut h = history_to(2);
            // The fork is after n1's last checkpoint (500): nothing to rewind.
            h[0].lsn = 600;
            c.history = Some(h);
        });
    assert!(
        stopped_old_primary.actions().is_empty(),
        "not a switchover: left alone"
    );
    let released = stopped_old_primary.with(|obs, _| obs.released_for_switchover = true);
    let d = released.decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![Action::StartReplica {
            upstream: Some(upstream("n2", "n1"))
        }],
        "{}",
        d.reason
    );
}
