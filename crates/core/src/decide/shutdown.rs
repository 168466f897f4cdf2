//! Shutting down (SIGTERM/SIGINT): what to do each loop, and when the agent may exit.
//!
//! A shutdown always ends: once PostgreSQL is stopped and the key released; in maintenance
//! mode at once (PostgreSQL is left running, as Patroni does); and otherwise after
//! [`SHUTDOWN_BOUND`] or at a second signal, whatever PostgreSQL's state. Then the lease
//! is revoked (which deletes every key bound to it) only if that cannot leave a writable
//! primary without the key: a server that may still accept writes while this agent may
//! hold the key keeps the lease until it expires, and the fence guardian (a process of
//! its own) stops that server before it does.

use std::time::{Duration, Instant};

use super::{fencing::may_be_writable, hang, Ctx};
use crate::action::{Action, Decision, StopMode};
use crate::observation::{Observation, PgView};

/// How long a shutdown may take before the agent exits anyway: systemd's stop timeout in
/// Patroni's own unit file (`TimeoutSec=30`), so a unit written for Patroni never has to
/// SIGKILL the agent.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// A shutting-down agent exits now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownExit {
    /// Revoke the lease on the way out (it deletes the leader key, if bound to it).
    pub revoke_lease: bool,
    /// For the log.
    pub reason: String,
}

/// Whether a shutting-down agent exits now (see the module's comment). `since`: when the
/// shutdown began; `forced`: a second signal came.
pub fn shutdown_exit(
    obs: &Observation,
    me: &str,
    since: Instant,
    now: Instant,
    forced: bool,
) -> Option<ShutdownExit> {
    if !obs.shutting_down {
        return None;
    }
    let exit = |revoke_lease: bool, reason: &str| {
        Some(ShutdownExit {
            revoke_lease,
            reason: reason.to_string(),
        })
    };
    if obs.paused {
        // The key simply expires after ttl, as Patroni leaves it.
        return exit(false, "maintenance mode: PostgreSQL is left running");
    }
    let holds = obs.dcs.as_ref().is_ok_and(|c| c.held_by(me, obs.lease.id));
    let stopped = matches!(obs.pg, PgView::NoData | PgView::Stopped(_));
    if stopped && !holds {
        return exit(true, "PostgreSQL is stopped");
    }
    if !forced && now.saturating_duration_since(since) < SHUTDOWN_BOUND {
        return None;
    }
    let why = if forced {
        "a second signal"
    } else {
        "the shutdown bound passed"
    };
    // The DCS unread: the key may be mine.
    let may_hold = holds || obs.dcs.is_err();
    if may_hold && may_be_writable(&obs.pg) {
        exit(
            false,
            &format!("{why}: PostgreSQL may still accept writes, so the leader key is not released: it expires with my lease, and the fence guardian stops PostgreSQL before that"),
        )
    } else {
        exit(
            true,
            &format!("{why}: PostgreSQL is stopped or not a primary holding the key"),
        )
    }
}

/// A second signal in the middle of a round: exit at once with what the agent last knew
/// (it may hold the key; its server may accept writes), by the same rule as
/// [`shutdown_exit`] past its bound.
pub fn forced_exit(holds_key: bool, may_be_writable: bool, paused: bool) -> ShutdownExit {
    let revoke_lease = !(paused || holds_key && may_be_writable);
    ShutdownExit {
        revoke_lease,
        reason: if revoke_lease {
            "a second signal: PostgreSQL is stopped or not a primary holding the key".into()
        } else if paused {
            "a second signal: maintenance mode, PostgreSQL is left running".into()
        } else {
            "a second signal: PostgreSQL may still accept writes, so the leader key is not released: it expires with my lease, and the fence guardian stops PostgreSQL before that".into()
        },
    }
}

pub(super) fn decide(ctx: &Ctx) -> Decision {
    let holds = ctx.obs.dcs.as_ref().is_ok_and(|c| ctx.holds_leader_key(c));
    match &ctx.obs.pg {
        PgView::Running(r) if !r.in_recovery && holds => Decision::act(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::ReleaseLeader,
            ],
            "shutting down: stopping the primary with a checkpoint, then releasing the leader key",
        ),
        // A server silent past the bound cannot shut down cleanly: a fast stop would wait for
        // it for the whole stop timeout, again and again.
        PgView::NoAnswer
            if hang::silent_for(ctx).is_some_and(|s| s >= ctx.dynamic.hang_timeout()) =>
        {
            Decision::act(
                vec![Action::Kill],
                "shutting down: PostgreSQL does not answer; killing it",
            )
        }
        PgView::Running(_) | PgView::Starting | PgView::Unknown | PgView::NoAnswer => {
            Decision::act(
                vec![Action::Stop {
                    mode: StopMode::Fast,
                }],
                "shutting down: stopping PostgreSQL",
            )
        }
        PgView::NoData | PgView::Stopped(_) if holds => Decision::act(
            vec![Action::ReleaseLeader],
            "shutting down: releasing the leader key",
        ),
        PgView::NoData | PgView::Stopped(_) => {
            Decision::nothing("shutting down: PostgreSQL is not running")
        }
    }
}
