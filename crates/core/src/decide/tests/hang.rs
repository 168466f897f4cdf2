//! Gray failures: a leader whose PostgreSQL answers nobody is killed and gives up the key
//! after `primary_hang_timeout` (default ttl/2 = 5 s here); a busy one keeps leading.

use super::*;

/// PostgreSQL silent since the observation's start; decided `after` later. The lease is
/// renewed at the same instant as the decision, as the lease keeper does on its own.
fn silent(o: Obs, after: Duration) -> Decision {
    let at = o.t0 + after;
    o.pg(PgView::NoAnswer)
        .with(|obs, _| {
            obs.pg_silent_since = Some(obs.lease.renewed_at.unwrap());
            obs.lease.renewed_at = Some(at);
        })
        .decide_at(after)
}

#[test]
fn a_leader_silent_past_the_bound_is_killed_then_releases_the_key() {
    let d = silent(Obs::new("n1").i_lead(), Duration::from_secs(5));
    assert_eq!(
        d.actions,
        vec![Action::AbandonLease, Action::Kill, Action::ReleaseLeader]
    );
    assert!(d.reason.contains("primary_hang_timeout"), "{}", d.reason);
}

#[test]
fn a_leader_silent_for_less_than_the_bound_keeps_leading() {
    let d = silent(Obs::new("n1").i_lead(), Duration::from_millis(4900));
    assert_eq!(d.actions, vec![]);
    assert!(
        d.reason.contains("has not answered for 4.9s"),
        "{}",
        d.reason
    );
}

#[test]
fn a_leader_that_answers_again_keeps_leading() {
    // Silent for a long time, then one answer: the run of silence is over.
    let o = Obs::new("n1")
        .i_lead()
        .primary(100)
        .with(|obs, _| obs.pg_silent_since = None);
    assert!(!o.actions().contains(&Action::Kill));
    assert!(!o.actions().contains(&Action::ReleaseLeader));
}

#[test]
fn the_bound_is_the_configured_primary_hang_timeout() {
    let o = Obs::new("n1").i_lead().with(|obs, _| {
        obs.dcs.as_mut().unwrap().config =
            Some(serde_json::json!({"ttl": 10, "primary_hang_timeout": 8}));
    });
    assert_eq!(silent(o.clone(), Duration::from_secs(7)).actions, vec![]);
    assert_eq!(
        silent(o, Duration::from_secs(8)).actions,
        vec![Action::AbandonLease, Action::Kill, Action::ReleaseLeader]
    );
}

#[test]
fn a_leader_whose_processes_cannot_be_proven_gone_never_releases_the_key() {
    let o = Obs::new("n1")
        .i_lead()
        .with(|obs, _| obs.kill_failed = true);
    assert_eq!(
        silent(o, Duration::from_secs(6)).actions,
        vec![Action::AbandonLease, Action::Kill]
    );
}

#[test]
fn a_restarted_agent_whose_hung_primary_holds_the_old_key_kills_and_releases() {
    let o = Obs::new("n1").leader(Some("n1"), 5);
    assert_eq!(
        silent(o.clone(), Duration::from_secs(6)).actions,
        vec![Action::Kill, Action::ReleaseLeader]
    );
    // The old lease is nobody's to stop renewing: it expires on its own.
    let o = o.with(|obs, _| obs.kill_failed = true);
    assert_eq!(
        silent(o, Duration::from_secs(6)).actions,
        vec![Action::Kill]
    );
}

#[test]
fn a_silent_former_primary_without_the_key_is_killed_at_the_bound() {
    // Someone else leads (the key expired while this node ran on failsafe): when it wakes
    // up it must not be writable (simulation, seed 9).
    let o = Obs::new("n1")
        .leader(Some("n2"), 5)
        .member("n2", "primary")
        .with(|obs, _| obs.pg_was_primary = true);
    assert_eq!(silent(o.clone(), Duration::from_secs(4)).actions, vec![]);
    assert_eq!(
        silent(o, Duration::from_secs(5)).actions,
        vec![Action::Kill]
    );
}

#[test]
fn a_silent_primary_is_killed_at_the_bound_while_the_dcs_is_unreachable() {
    let o = Obs::new("n1").with(|obs, _| {
        obs.dcs = Err("etcd unreachable".into());
        obs.pg_was_primary = true;
    });
    assert_eq!(silent(o.clone(), Duration::from_secs(4)).actions, vec![]);
    assert_eq!(
        silent(o, Duration::from_secs(5)).actions,
        vec![Action::Kill]
    );
    // A replica that hangs during the outage is left alone.
    let o = Obs::new("n2").with(|obs, _| obs.dcs = Err("etcd unreachable".into()));
    assert_eq!(silent(o, Duration::from_secs(60)).actions, vec![]);
}

#[test]
fn a_hung_replica_does_nothing_and_does_not_race() {
    let o = Obs::new("n2").leader(Some("n1"), 5).member("n1", "primary");
    assert_eq!(silent(o, Duration::from_secs(60)).actions, vec![]);
    // No leader at all: a silent node does not race either.
    let o = Obs::new("n2").leader(None, 0);
    let d = silent(o, Duration::from_secs(60));
    assert_eq!(d.actions, vec![]);
    assert!(d.reason.contains("has not answered"), "{}", d.reason);
}

#[test]
fn maintenance_mode_never_kills_a_hung_leader() {
    let o = Obs::new("n1").i_lead().with(|obs, _| obs.paused = true);
    let d = silent(o, Duration::from_secs(60));
    assert!(!d.actions.contains(&Action::Kill), "{d:?}");
    assert!(!d.actions.contains(&Action::ReleaseLeader), "{d:?}");
}

#[test]
fn a_silent_primary_whose_lease_lapsed_is_killed_not_asked_to_shut_down() {
    // The lease was last renewed 9 s ago (fence deadline at 8 s): fencing comes first.
    let o = Obs::new("n1")
        .i_lead()
        .pg(PgView::NoAnswer)
        .with(|obs, _| obs.pg_silent_since = obs.lease.renewed_at);
    assert_eq!(
        o.decide_at(Duration::from_secs(9)).actions,
        vec![Action::Kill]
    );
}

#[test]
fn shutting_down_with_a_silent_server_kills_it_once_past_the_bound() {
    let o = Obs::new("n2")
        .leader(Some("n1"), 5)
        .with(|obs, _| obs.shutting_down = true);
    assert_eq!(
        silent(o.clone(), Duration::from_secs(1)).actions,
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
    assert_eq!(
        silent(o, Duration::from_secs(5)).actions,
        vec![Action::Kill]
    );
}

#[test]
fn an_unknown_state_with_an_answer_is_not_a_hang() {
    // A refused login or `too many clients` is an answer: PgView::Unknown, never killed.
    let o = Obs::new("n1")
        .i_lead()
        .pg(PgView::Unknown)
        .with(|obs, _| obs.pg_silent_since = obs.lease.renewed_at);
    let d = o.decide_at(Duration::ZERO);
    assert!(!d.actions.contains(&Action::Kill), "{d:?}");
}
