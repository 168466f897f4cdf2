//! Self-fencing: a primary stops writes before its lease can expire.

use super::*;

#[test]
fn a_leader_stops_writes_before_its_lease_can_expire() {
    let o = Obs::new("n1").primary(500).i_lead().optime(500);
    let margin = fence_margin(TTL);
    assert!(!o
        .decide_at(TTL - margin - Duration::from_millis(1))
        .actions
        .contains(&stop_now()));
    assert_eq!(o.decide_at(TTL - margin).actions, vec![stop_now()]);
}

#[test]
fn a_primary_fences_even_when_the_dcs_is_unreachable() {
    let o = Obs::new("n1")
        .primary(500)
        .with(|o, _| o.dcs = Err("timeout".into()));
    assert!(o.decide_at(Duration::from_secs(1)).actions.is_empty());
    assert_eq!(o.decide_at(TTL).actions, vec![stop_now()]);
}

#[test]
fn a_primary_with_a_never_renewed_lease_stops() {
    let o = Obs::new("n1")
        .primary(500)
        .i_lead()
        .with(|o, _| o.lease.renewed_at = None);
    assert_eq!(o.actions(), vec![stop_now()]);
}

#[test]
fn replicas_are_not_fenced() {
    let o = Obs::new("n2")
        .replica(500)
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    assert!(!o.decide_at(TTL * 3).actions.contains(&stop_now()));
}

#[test]
fn fence_deadline_is_before_expiry_by_the_margin() {
    let t = Instant::now();
    let lease = LeaseView {
        id: 1,
        ttl: Duration::from_secs(3),
        renewed_at: Some(t),
    };
    assert_eq!(
        fence_deadline(&lease),
        Some(t + Duration::from_millis(2400))
    );
    assert!(keepalive_interval(lease.ttl) * 3 < lease.ttl - fence_margin(lease.ttl));
}

/// Found by the simulation (seed 172): a leader cut off long enough to be fenced came back,
/// still read its key (under a lease whose renewals had gone stale) and started its
/// primary; etcd then expired the lease, the keeper took a new one (which satisfied the
/// fence), and a replica was promoted beside it. A key under a stale lease is not enough
/// to become writable.
#[test]
fn a_key_under_a_stale_lease_does_not_make_a_primary() {
    let stopped_leader = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .i_lead();
    assert_eq!(stopped_leader.actions(), vec![Action::StartPrimary]);
    let d = stopped_leader.decide_at(Duration::from_secs(9));
    assert!(d.actions.is_empty(), "{:?}: {}", d.actions, d.reason);
    assert!(d.reason.contains("may have lapsed"), "{}", d.reason);
    let replica = Obs::new("n1").replica(100).i_lead();
    assert!(replica.actions().contains(&Action::Promote));
    let d = replica.decide_at(Duration::from_secs(9));
    assert!(d.actions.is_empty(), "{:?}: {}", d.actions, d.reason);
}

/// Patroni's offline demotion (acceptance `dcs_failsafe_mode`): a former primary that was
/// stopped while the DCS is unreachable runs again read-only, a replica without upstream;
/// a stopped replica is left as it is, and nothing starts while bootstrapping.
#[test]
fn a_former_primary_stopped_without_the_dcs_starts_read_only() {
    let down = |o: Obs| o.with(|obs, _| obs.dcs = Err("etcd unreachable".into()));
    let fenced = down(Obs::new("n1").pg(PgView::Stopped(stopped("in production", false))));
    let d = fenced.decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![Action::StartReplica { upstream: None }],
        "{}",
        d.reason
    );
    let replica = down(Obs::new("n2").pg(PgView::Stopped(stopped("shut down in recovery", true))));
    assert!(replica.actions().is_empty());
    let bootstrapping =
        fenced.with(|obs, _| obs.bootstrapping = Some(crate::observation::Bootstrapping::Started));
    assert!(bootstrapping.actions().is_empty());
}
