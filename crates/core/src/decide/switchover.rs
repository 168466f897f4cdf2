//! Planned switchover and manual failover, requested through the `failover` key (Patroni's
//! mechanism, so `patronictl` and pgkeel's CLI drive either).
//!
//! The leader stops with a checkpoint (a clean shutdown: PostgreSQL's walsenders send all
//! WAL, the shutdown checkpoint included, and wait for streaming standbys to flush it), then
//! releases the key; only the candidate races; once promoted it deletes the request. The
//! old leader then sees the new timeline fork at or after its own checkpoint and follows
//! without pg_rewind.

use std::time::Duration;

use super::Ctx;
use crate::action::{Action, Decision, StopMode};
use crate::cluster::Cluster;
use crate::quote::{clip, quote};

/// What the `failover` key asks of this node now.
pub(super) enum Request<'a> {
    /// Nothing (no key, or it is not for now).
    None,
    /// A switchover away from me, to `candidate` (any eligible replica when `None`).
    AwayFromMe { candidate: Option<&'a str> },
    /// I am the candidate and the leader key is free.
    ToMe,
    /// Another node is the candidate: do not race.
    ToOther(&'a str),
    /// A request that cannot be carried out: delete it.
    Invalid(String),
    /// Scheduled for later.
    Later(String),
}

pub(super) fn request<'a>(ctx: &Ctx, cluster: &'a Cluster) -> Request<'a> {
    let Some(f) = &cluster.failover else {
        return Request::None;
    };
    let me = ctx.me();
    if let Some(at) = &f.scheduled_at {
        match crate::admin::due(at, ctx.obs.wall_clock) {
            Some(true) => {}
            Some(false) => return Request::Later(at.clone()),
            None => return Request::Invalid(format!("cannot parse scheduled_at {}", quote(at))),
        }
    }
    let leader = cluster.leader_name();
    match leader {
        Some(l) if l == me && ctx.holds_leader_key(cluster) => {
            if f.leader.as_deref().is_some_and(|fl| fl != me) {
                return Request::Invalid(format!(
                    "the request is from leader {} but I am the leader",
                    f.leader
                        .as_deref()
                        .map_or("none".into(), |l| quote(l).to_string())
                ));
            }
            match f.member.as_deref() {
                Some(c) if c == me => Request::Invalid("I am already the leader".into()),
                c => Request::AwayFromMe { candidate: c },
            }
        }
        Some(_) => Request::None,
        None => match f.member.as_deref() {
            Some(c) if c == me => Request::ToMe,
            // A candidate that left the cluster cannot take over: race as usual.
            Some(c) if cluster.members.contains_key(c) => Request::ToOther(c),
            _ => Request::None,
        },
    }
}

/// Why `name` cannot take over now, or `None` when it can: a running, streaming replica
/// that may be promoted and is within `maximum_lag_on_failover` of the leader.
pub fn candidate_problem(cluster: &Cluster, name: &str, max_lag: u64) -> Option<String> {
    unfit(cluster, name, max_lag)
        .or_else(|| (!is_streaming(cluster, name)).then(|| format!("{name} is not streaming")))
}

fn is_streaming(cluster: &Cluster, name: &str) -> bool {
    cluster
        .member(name)
        .is_some_and(|m| m.replication_state.as_deref() == Some("streaming"))
}

/// What makes `name` unfit whether or not it streams: not a member, tagged nofailover,
/// not a running replica, or further behind than `max_lag`.
fn unfit(cluster: &Cluster, name: &str, max_lag: u64) -> Option<String> {
    let Some(m) = cluster.member(name) else {
        return Some(format!("{} is not a member", clip(name)));
    };
    if !m.tags.may_promote() {
        return Some(format!("{name} is tagged nofailover"));
    }
    if m.state != "running" || m.role != "replica" {
        return Some(format!(
            "{name} is not a running replica ({} / {})",
            m.role, m.state
        ));
    }
    if let Some(optime) = cluster.last_leader_lsn() {
        let lag = optime.saturating_sub(m.wal_position());
        if lag > max_lag {
            return Some(format!(
                "{name} is {lag} bytes behind, more than maximum_lag_on_failover ({max_lag})"
            ));
        }
    }
    None
}

/// Why `name` cannot take over through a switchover or failover request, checked when
/// the request is made: a running replica that may be promoted and is within
/// `maximum_lag_on_failover`, as Patroni's API checks it. That it streams is not required
/// yet (a replica reconnecting after the primary restarted reads the archive for a few
/// seconds): the leader waits for it to stream before it stops ([`leader_steps_down`]).
/// Without a leader nobody streams, so a running member that may be promoted is enough.
pub fn takeover_problem(cluster: &Cluster, name: &str, max_lag: u64) -> Option<String> {
    if cluster.leader.is_some() {
        return unfit(cluster, name, max_lag);
    }
    match cluster.member(name) {
        None => Some(format!("{} is not a member", clip(name))),
        Some(m) if !m.tags.may_promote() || m.state != "running" => Some(format!(
            "{name} is not a running member that may be promoted"
        )),
        Some(_) => None,
    }
}

/// The leader's side while it still runs: stop cleanly when the candidate is fit.
pub(super) fn leader_steps_down(ctx: &Ctx, cluster: &Cluster, candidate: Option<&str>) -> Decision {
    let me = ctx.me();
    let max_lag = ctx.dynamic.maximum_lag_on_failover;
    let fit: Vec<&str> = match candidate {
        Some(c) => vec![c],
        None => cluster
            .members
            .keys()
            .map(String::as_str)
            .filter(|n| *n != me)
            .collect(),
    };
    let mut problems: Vec<String> = Vec::new();
    let mut not_streaming: Vec<&str> = Vec::new();
    let mut ready = false;
    for n in &fit {
        let problem = unfit(cluster, n, max_lag).or_else(|| {
            sync_switchover_problem(ctx.dynamic.sync.mode, cluster, n)
                .map(|why| format!("{n}: {why}"))
        });
        match problem {
            Some(p) => problems.push(p),
            None if !is_streaming(cluster, n) => not_streaming.push(n),
            None => ready = true,
        }
    }
    // Only a streaming standby is sure to receive the WAL up to the shutdown checkpoint
    // before the key goes: one that reads the archive would be promoted without it and
    // lose what was committed last. A fit candidate that is not streaming yet is waited
    // for, as long as the REST API waits for the outcome.
    let window = crate::admin::switchover::poll_window(ctx.dynamic.loop_wait);
    let waited = ctx
        .obs
        .failover_due_since
        .map_or(Duration::ZERO, |t| ctx.now.saturating_duration_since(t));
    if !ready && !not_streaming.is_empty() && waited < window {
        return Decision::nothing(format!(
            "switchover: I am {me}, the leader; waiting for {} to stream from me before stopping",
            not_streaming.join(", ")
        ));
    }
    problems.extend(
        not_streaming
            .iter()
            .map(|n| format!("{n} is not streaming")),
    );
    if !ready {
        let why = if problems.is_empty() {
            "there is no other member".to_string()
        } else {
            problems.join("; ")
        };
        return Decision::act(
            vec![Action::DeleteFailover {
                revision: cluster.failover_revision,
            }],
            format!("switchover cancelled: I am {me}, the leader, and no candidate can take over: {why}"),
        );
    }
    Decision::act(
        vec![Action::Stop {
            mode: StopMode::Fast,
        }],
        format!(
            "switchover: I am {me}, stopping PostgreSQL with a checkpoint so that {} can take over",
            clip(candidate.unwrap_or("a replica"))
        ),
    )
}

/// In `on` mode a switchover goes only to a synchronous standby (any other would refuse to
/// promote, leaving nobody to lead): Patroni's refusal text, or `None` when `name` may.
/// The REST API checks the request with it, the leader again before it steps down.
pub fn sync_switchover_problem(
    mode: crate::sync::SyncMode,
    cluster: &Cluster,
    name: &str,
) -> Option<&'static str> {
    let key = cluster.sync.as_ref()?;
    (mode == crate::sync::SyncMode::On && !key.names(name))
        .then_some("candidate name does not match with sync_standby")
}
