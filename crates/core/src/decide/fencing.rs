//! Self-fencing: a primary stops accepting writes before its lease can expire in etcd.
//!
//! etcd sets a lease's expiry to (time it received the keepalive) + TTL, and the keepalive
//! was received after we sent it. So the lease is certainly alive until
//! `renewed_at + ttl` on our clock, give or take clock-rate drift. We stop a margin earlier,
//! which also covers the time `pg_ctl stop -m immediate` takes.

use std::time::{Duration, Instant};

use super::Ctx;
use crate::action::{Action, Decision, StopMode};
use crate::observation::{LeaseView, PgView};

/// How long before the earliest possible expiry the primary stops: a fifth of the TTL,
/// at least half a second.
pub fn fence_margin(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(500))
}

/// How often the runtime renews its lease: four times per TTL, so that three keepalives in a
/// row can fail before the fence deadline.
pub fn keepalive_interval(ttl: Duration) -> Duration {
    ttl / 4
}

/// The instant a primary must have stopped accepting writes by, unless the lease is renewed.
pub fn fence_deadline(lease: &LeaseView) -> Option<Instant> {
    let renewed = lease.renewed_at?;
    Some(renewed + lease.ttl.saturating_sub(fence_margin(lease.ttl)))
}

/// The lease is provably alive in etcd at `now`.
pub fn lease_alive(lease: &LeaseView, now: Instant) -> bool {
    fence_deadline(lease).is_some_and(|d| now < d)
}

/// Until when a failsafe round that started at `started`, and that every member confirmed,
/// keeps a primary writable without its lease: each member that confirmed holds off racing
/// for a ttl after it answered, which is after `started`; we stop a margin earlier.
pub fn failsafe_deadline(started: Instant, ttl: Duration) -> Instant {
    started + ttl.saturating_sub(fence_margin(ttl))
}

/// Every member confirmed this primary in a round that started at `confirmed`, recently
/// enough that it may stay writable at `now` without its lease.
pub fn failsafe_alive(confirmed: Option<Instant>, ttl: Duration, now: Instant) -> bool {
    confirmed.is_some_and(|t| now < failsafe_deadline(t, ttl))
}

/// Until when a primary may stay writable, as the fence enforces it: the later of its
/// lease's fence deadline (unless that lease may not carry the leader key) and, in failsafe mode, the deadline of the last round every
/// member confirmed (`at` when it has neither: stop now). `None` when there is nothing to
/// guard: the server is not (about to be) a primary, or the cluster is paused.
pub fn writable_until(
    may_be_primary: bool,
    paused: bool,
    lease: &LeaseView,
    lease_may_carry_key: bool,
    failsafe_confirmed: Option<Instant>,
    at: Instant,
) -> Option<Instant> {
    if !may_be_primary || paused {
        return None;
    }
    let failsafe = failsafe_confirmed.map(|t| failsafe_deadline(t, lease.ttl));
    // A lease granted after the leader key expired with the old one (a primary kept
    // writable by failsafe mode) protects nothing until the key is bound to it again:
    // found by the simulation (seed 9), where it kept a deposed primary writable.
    let lease_deadline = fence_deadline(lease).filter(|_| lease_may_carry_key);
    Some(
        lease_deadline
            .into_iter()
            .chain(failsafe)
            .max()
            .unwrap_or(at),
    )
}

/// The fence guardian a previous agent of this node left behind (it was `kill -9`ed) keeps
/// enforcing the old lease's deadline, which would stop a primary the new agent took over.
/// It may go once the new agent guards what it guarded: the leader key is bound to the new
/// agent's own lease (its fence and guardian enforce that lease's deadline), or the server
/// is known not to be a primary (nothing to guard). Before that, the old deadline is the
/// right one: the key may still be bound to the old lease, which nobody renews.
pub fn predecessor_guard_may_go(holds_key_on_my_lease: bool, may_be_primary: bool) -> bool {
    holds_key_on_my_lease || !may_be_primary
}

/// Whether a leader runs a failsafe round now (`POST /failsafe` to every member): failsafe
/// mode gave it members to ask (`has_targets`), it may be a primary, the cluster is not
/// paused, its lease renewals went stale (a keepalive is overdue by more than 250 ms), and
/// the last round is at least one keepalive interval old. Never for a lease the agent
/// abandoned (a hung primary whose processes could not be proven gone): members that
/// confirmed it would hold off racing for a ttl after every round, keeping the cluster
/// without a writable primary.
pub fn failsafe_round_due(
    lease: &LeaseView,
    abandoned: bool,
    has_targets: bool,
    may_be_primary: bool,
    paused: bool,
    last_round: Option<Instant>,
    now: Instant,
) -> bool {
    let every = keepalive_interval(lease.ttl);
    let stale = lease
        .renewed_at
        .is_none_or(|t| now.saturating_duration_since(t) > every + Duration::from_millis(250));
    has_targets
        && stale
        && may_be_primary
        && !paused
        && !abandoned
        && last_round.is_none_or(|t| now.saturating_duration_since(t) >= every)
}

/// Whether this server may be accepting writes: a running primary, or a server whose role
/// is unknown. The fence acts on exactly these.
pub fn may_be_writable(pg: &PgView) -> bool {
    match pg {
        PgView::Running(r) => !r.in_recovery,
        PgView::Unknown | PgView::NoAnswer => true,
        PgView::NoData | PgView::Stopped(_) | PgView::Starting => false,
    }
}

/// A primary (or a server that may be one) whose lease may be gone must stop now.
pub(super) fn check(ctx: &Ctx) -> Option<Decision> {
    if !may_be_writable(&ctx.obs.pg) || lease_alive(&ctx.obs.lease, ctx.now) {
        return None;
    }
    if ctx.dynamic.failsafe_mode
        && failsafe_alive(ctx.obs.failsafe_confirmed, ctx.dynamic.ttl, ctx.now)
    {
        return None;
    }
    let age = ctx.lease_age();
    // A server that answers nobody cannot act on an immediate shutdown request in time.
    let stop = if matches!(ctx.obs.pg, PgView::NoAnswer) {
        Action::Kill
    } else {
        Action::Stop {
            mode: StopMode::Immediate,
        }
    };
    Some(Decision::act(
        vec![stop],
        format!(
            "fencing: my lease ({age}, ttl {}s) may expire before I can renew it; stopping PostgreSQL now",
            ctx.obs.lease.ttl.as_secs_f64()
        ),
    ))
}

#[cfg(test)]
mod writable_until_tests {
    use super::*;

    #[test]
    fn failsafe_rounds_run_once_renewals_are_stale_and_never_for_an_abandoned_lease() {
        let t0 = Instant::now();
        let lease = LeaseView {
            id: 1,
            ttl: Duration::from_secs(4), // keepalive every 1 s
            renewed_at: Some(t0),
        };
        let at = |ms| t0 + Duration::from_millis(ms);
        let due = |abandoned, targets, primary, paused, last, now| {
            failsafe_round_due(&lease, abandoned, targets, primary, paused, last, now)
        };
        assert!(
            !due(false, true, true, false, None, at(1200)),
            "not stale yet"
        );
        assert!(due(false, true, true, false, None, at(1300)));
        assert!(!due(true, true, true, false, None, at(1300)), "abandoned");
        assert!(
            !due(false, false, true, false, None, at(1300)),
            "failsafe off"
        );
        assert!(
            !due(false, true, false, false, None, at(1300)),
            "not a primary"
        );
        assert!(!due(false, true, true, true, None, at(1300)), "paused");
        assert!(
            !due(false, true, true, false, Some(at(800)), at(1300)),
            "a round 0.5 s ago"
        );
        assert!(due(false, true, true, false, Some(at(300)), at(1300)));
    }

    #[test]
    fn a_previous_agents_guardian_goes_only_once_the_key_is_on_my_lease_or_nothing_is_guarded() {
        assert!(predecessor_guard_may_go(true, true));
        assert!(predecessor_guard_may_go(false, false));
        assert!(predecessor_guard_may_go(true, false));
        assert!(
            !predecessor_guard_may_go(false, true),
            "a primary whose key is not (yet) on my lease keeps the old deadline"
        );
    }

    #[test]
    fn the_later_of_lease_and_failsafe_deadline_and_nothing_when_not_a_primary_or_paused() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let lease = LeaseView {
            id: 1,
            ttl,
            renewed_at: Some(t0),
        };
        let lease_deadline = t0 + Duration::from_secs(8);
        assert_eq!(
            writable_until(true, false, &lease, true, None, t0),
            Some(lease_deadline)
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            writable_until(true, false, &lease, true, Some(later), t0),
            Some(later + Duration::from_secs(8)),
            "a confirmed failsafe round keeps it writable past the lease"
        );
        let never = LeaseView {
            renewed_at: None,
            ..lease
        };
        assert_eq!(
            writable_until(true, false, &never, true, None, t0),
            Some(t0),
            "stop now"
        );
        assert_eq!(writable_until(false, false, &lease, true, None, t0), None);
        assert_eq!(writable_until(true, true, &lease, true, None, t0), None);
        assert_eq!(
            writable_until(true, false, &lease, false, None, t0),
            Some(t0),
            "a lease that does not carry the key keeps nothing writable"
        );
        assert_eq!(
            writable_until(true, false, &lease, false, Some(later), t0),
            Some(later + Duration::from_secs(8)),
            "failsafe still does, while it lasts"
        );
    }
}
