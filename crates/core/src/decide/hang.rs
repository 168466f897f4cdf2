//! Gray failures of the leader: PostgreSQL runs but answers nobody (a stopped or hung
//! postmaster, a storage stall). The lease keeper renews on its own whatever PostgreSQL
//! does, so without this rule a hung primary would keep the leader key, and the cluster
//! its outage, for as long as the hang lasts.
//!
//! The rule, in order:
//! 1. A leader whose PostgreSQL has answered no probe for `primary_hang_timeout` is killed
//!    (immediate shutdown, SIGKILL of the postmaster and every backend) and, only once no
//!    process of it can run again (gone, or asleep on a stalled disk with SIGKILL pending,
//!    which the kernel acts on before the process runs any code of its own), gives up the
//!    key: a replica takes over at once.
//! 2. If its processes cannot be proven finished, the key is never released; the agent
//!    stops renewing its lease, which expires after ttl and takes the key with it, while
//!    the fence keeps trying to stop the server.
//! 3. Before the bound, nothing happens: a leader whose server answers again keeps leading.
//!
//! "Answered" means any answer, however slow: an error, `too many clients`, a refused
//! login all prove a live postmaster. Only a probe unanswered for the whole bound counts
//! (the runtime gives each probe that long), so a busy server (full load, a long
//! checkpoint, `pg_wal` filling up, the connection limit reached) is not hung.

use super::Ctx;
use crate::action::{Action, Decision};
use crate::observation::PgView;

/// How long this node's PostgreSQL has been silent, if it is (`None`: it answers, or it
/// does not run).
pub(super) fn silent_for(ctx: &Ctx) -> Option<std::time::Duration> {
    if !matches!(ctx.obs.pg, PgView::NoAnswer) {
        return None;
    }
    // A NoAnswer view without its start (the runtime always sets both): silent since now.
    let since = ctx.obs.pg_silent_since.unwrap_or(ctx.now);
    Some(ctx.now.saturating_duration_since(since))
}

/// A hang of this node's PostgreSQL past the bound, when it matters: this node leads (or
/// may: the DCS cannot be read), or the server last ran as a primary. `None` when the
/// server answers, or it is a hung replica (unhealthy; it does not race).
pub(super) fn check(ctx: &Ctx) -> Option<Decision> {
    let silent = silent_for(ctx)?;
    let me = ctx.me();
    let bound = ctx.dynamic.hang_timeout();
    let secs = |d: std::time::Duration| format!("{:.1}s", d.as_secs_f64());
    let Ok(cluster) = ctx.obs.dcs.as_ref() else {
        // Without the DCS nobody can say whether this node still leads (failsafe mode keeps
        // a leader writable through an outage): a silent server that may be a primary is
        // killed at the bound; the key, if it is still mine, expires or is released later.
        return (silent >= bound && ctx.obs.pg_was_primary).then(|| {
            Decision::act(
                vec![Action::Kill],
                format!(
                    "fencing: I am {me}, the DCS is unreachable and my primary has not answered for {} (primary_hang_timeout {}); killing it",
                    secs(silent),
                    secs(bound)
                ),
            )
        });
    };
    let holds = ctx.holds_leader_key(cluster);
    if !holds && !ctx.names_me_with_old_lease(cluster) {
        // The key is another node's or nobody's: a silent server that last ran as a
        // primary must not come back writable when it wakes up.
        return (silent >= bound && ctx.obs.pg_was_primary).then(|| {
            Decision::act(
                vec![Action::Kill],
                format!(
                    "fencing: I am {me}, my primary has not answered for {} and I do not hold the leader key; killing it",
                    secs(silent)
                ),
            )
        });
    }
    if silent < bound {
        return Some(Decision::nothing(format!(
            "waiting: I am {me}, the leader; PostgreSQL has not answered for {} (primary_hang_timeout {})",
            secs(silent),
            secs(bound)
        )));
    }
    // My own lease stops being renewed first: if the kill cannot prove every process gone,
    // the key then expires a ttl after the last renewal instead of a loop later. If the
    // kill succeeds the key is released at once, and the agent takes a new lease once the
    // old one has expired.
    let abandon = holds.then_some(Action::AbandonLease);
    if ctx.obs.kill_failed {
        // Releasing the key now could let a replica be promoted while a process of mine
        // still holds a commit it may acknowledge.
        return Some(Decision::act(
            abandon.into_iter().chain([Action::Kill]).collect(),
            format!(
                "fencing: I am {me}, PostgreSQL has not answered for {} and its processes cannot be proven finished; the leader key expires with my lease, not renewed any more",
                secs(silent)
            ),
        ));
    }
    Some(Decision::act(
        abandon
            .into_iter()
            .chain([Action::Kill, Action::ReleaseLeader])
            .collect(),
        format!(
            "fencing: I am {me}, the leader, and PostgreSQL has not answered for {} (primary_hang_timeout {}); killing it, then releasing the leader key",
            secs(silent),
            secs(bound)
        ),
    ))
}
