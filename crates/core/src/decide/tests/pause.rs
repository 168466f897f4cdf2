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
