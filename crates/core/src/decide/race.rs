//! The leader race: may this node take the free leader key?
//!
//! Rules (DESIGN.md, safety model): never with `nofailover`; never from a timeline older
//! than the cluster's (`/history`); not when further behind the last known leader
//! position than `maximum_lag_on_failover`; not when a reachable peer is
//! still a primary, is on a newer timeline, is ahead in WAL, or is level and wins the tie (higher
//! `failover_priority`, then the smaller name). A peer that did not answer is unknown, not
//! beaten: it does not stop us, and etcd's create-if-absent decides between racers.

use super::Ctx;
use crate::cluster::Cluster;
use crate::dcs_values::SyncValue;
use crate::observation::{PeerView, Running};
use crate::sync::{votes_needed, SyncMode};

/// `Ok` if this node may race, otherwise the reason it may not.
pub(super) fn may_lead(ctx: &Ctx, cluster: &Cluster, me: &Running) -> Result<(), String> {
    pre_promote_backoff(ctx)?;
    let tags = &ctx.cfg.tags;
    if !tags.may_promote() {
        // Patroni's words, which operators alert on.
        return Err(
            "I am tagged nofailover: following a different leader because I am not allowed to promote"
                .into(),
        );
    }
    behind_the_cluster_timeline(ctx, cluster, me)?;
    failsafe_allows(ctx, cluster)?;
    let sync = sync_rule(ctx, cluster, me)?;
    if me.in_recovery {
        if let Some(optime) = cluster.last_leader_lsn() {
            let lag = optime.saturating_sub(me.wal_position.0);
            if lag > ctx.dynamic.maximum_lag_on_failover {
                return Err(format!(
                    "I am {lag} bytes behind the last known leader position, more than maximum_lag_on_failover ({})",
                    ctx.dynamic.maximum_lag_on_failover
                ));
            }
        }
    }
    for name in cluster.members.keys().filter(|n| n.as_str() != ctx.me()) {
        let Some(PeerView::Answered(peer)) = ctx.obs.peers.get(name) else {
            continue;
        };
        if !peer.running {
            continue;
        }
        if !peer.in_recovery {
            return Err(format!("primary {name} is still running"));
        }
        if !peer.tags.may_promote() || failsafe_excludes(ctx, cluster, name) {
            continue;
        }
        // In synchronous mode only the members the key names are compared: an
        // asynchronous peer may hold WAL no commit was acknowledged with, and must not
        // stop the synchronous standby (it cannot be elected itself).
        if let Some(key) = sync {
            if !key.names(name) && key.leader.as_deref() != Some(name.as_str()) {
                continue;
            }
        }
        if peer.timeline != me.timeline {
            // WAL positions on different timelines do not compare: the newer timeline wins.
            if peer.timeline > me.timeline {
                return Err(format!(
                    "{name} is on a newer timeline ({} > {})",
                    peer.timeline, me.timeline
                ));
            }
            continue;
        }
        if peer.wal_position > me.wal_position {
            return Err(format!(
                "Wal position of {name} is ahead of my wal position ({} > {})",
                peer.wal_position, me.wal_position
            ));
        }
        if peer.wal_position == me.wal_position {
            let (theirs, mine) = (peer.tags.failover_priority, tags.failover_priority);
            if theirs > mine {
                return Err(format!(
                    "{name} has equally tolerable WAL position and priority {theirs}, while this node has priority {mine}"
                ));
            }
            if theirs == mine && name.as_str() < ctx.me() {
                return Err(format!(
                    "{name} is level in WAL and wins the tie (priority {theirs} vs my {mine})"
                ));
            }
        }
    }
    Ok(())
}

/// The candidate named by a switchover or failover request may lead without winning the
/// comparison with its peers (the operator chose it), but never with `nofailover`, from an
/// older timeline, or while another primary answers.
pub(super) fn may_lead_on_request(
    ctx: &Ctx,
    cluster: &Cluster,
    me: &Running,
) -> Result<(), String> {
    pre_promote_backoff(ctx)?;
    if !ctx.cfg.tags.may_promote() {
        return Err("I am tagged nofailover".into());
    }
    behind_the_cluster_timeline(ctx, cluster, me)?;
    failsafe_allows(ctx, cluster)?;
    // The sync key is not checked here: a switchover's leader refused a candidate the key
    // does not name before it stepped down (`switchover::leader_steps_down`), and a failover
    // without a leader to a named member is the operator's explicit choice, as in Patroni
    // (refusing it here would leave the cluster with nobody willing to lead).
    for name in cluster.members.keys().filter(|n| n.as_str() != ctx.me()) {
        if let Some(PeerView::Answered(p)) = ctx.obs.peers.get(name) {
            if p.running && !p.in_recovery {
                return Err(format!("primary {name} is still running"));
            }
        }
    }
    Ok(())
}

/// For `ttl` after it gave the key up because `pre_promote` failed, a node stays out of the
/// race (Patroni's backoff), so that another member gets its turn.
fn pre_promote_backoff(ctx: &Ctx) -> Result<(), String> {
    match ctx.obs.pre_promote_released_at {
        Some(at) if ctx.now.saturating_duration_since(at) < ctx.dynamic.ttl => Err(
            "backoff: skip leader race after pre_promote script failure and releasing the lock voluntarily"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// A node on a timeline older than the cluster's may still lead if its WAL stops at or
/// before the point where the newer timeline forked off its own (it is then a prefix of
/// the newer history; what it lacks is judged by the lag check). Past the fork it holds
/// WAL the cluster never had (a stale former primary), and must not lead.
fn behind_the_cluster_timeline(ctx: &Ctx, cluster: &Cluster, me: &Running) -> Result<(), String> {
    let cluster_tl = cluster.timeline();
    if me.timeline >= cluster_tl {
        return Ok(());
    }
    if ctx.dynamic.check_timeline {
        return Err(format!(
            "my timeline {} is behind the cluster's {cluster_tl} (check_timeline)",
            me.timeline
        ));
    }
    let fork = cluster
        .history
        .as_ref()
        .and_then(|h| h.iter().find(|e| e.timeline == me.timeline))
        .map(|e| e.lsn);
    match fork {
        Some(fork) if me.wal_position.0 <= fork => Ok(()),
        Some(fork) => Err(format!(
            "my timeline {} forked off at {} but my WAL reaches {}, past it (the cluster is on timeline {cluster_tl})",
            me.timeline,
            crate::lsn::Lsn(fork),
            me.wal_position
        )),
        None => Err(format!(
            "my timeline {} is behind the cluster's {cluster_tl}, and /history does not say where it forked",
            me.timeline
        )),
    }
}

/// Failsafe mode: a member the leader did not list in `/failsafe` never races (the leader
/// would not have asked it), and nobody races while a leader confirmed itself through
/// `POST /failsafe` less than a ttl ago (it may still be running without the DCS).
fn failsafe_allows(ctx: &Ctx, cluster: &Cluster) -> Result<(), String> {
    if !ctx.dynamic.failsafe_mode {
        return Ok(());
    }
    if let Some(listed) = &cluster.failsafe {
        if !listed.contains_key(ctx.me()) {
            return Err("failsafe mode is on and /failsafe does not list me".into());
        }
    }
    if let Some((leader, until)) = &ctx.obs.failsafe_contact {
        if ctx.now < *until {
            return Err(format!(
                "leader {leader} confirmed itself through failsafe; it may run for {:.1}s more",
                until.saturating_duration_since(ctx.now).as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// Failsafe mode: `/failsafe` does not list `name`, so it may not race (`failsafe_allows`)
/// and must not stop those who may. Otherwise a member that was away when the last leader
/// wrote the key, and is ahead in WAL, blocks every election for good (found by the
/// simulation, seed 520: the leader froze while that member's agent was down).
fn failsafe_excludes(ctx: &Ctx, cluster: &Cluster, name: &str) -> bool {
    ctx.dynamic.failsafe_mode
        && cluster
            .failsafe
            .as_ref()
            .is_some_and(|listed| !listed.contains_key(name))
}

/// Synchronous mode: who may be elected from the `sync` key. In `on` mode only its leader
/// and its synchronous standbys; in quorum mode a candidate needs enough voters that are not
/// ahead of it that one of them, hence the candidate, holds every acknowledged commit. The
/// key's own leader (a former primary) holds everything it acknowledged. Returns the key
/// when its rules apply. A key that names no leader (never written) promises nothing.
fn sync_rule<'c>(
    ctx: &Ctx,
    cluster: &'c Cluster,
    me: &Running,
) -> Result<Option<&'c SyncValue>, String> {
    let settings = ctx.dynamic.sync;
    if !settings.enabled() {
        return Ok(None);
    }
    let Some(key) = cluster.sync.as_ref().filter(|k| k.leader.is_some()) else {
        return Ok(None);
    };
    if key.leader.as_deref() == Some(ctx.me()) {
        return Ok(Some(key));
    }
    if settings.mode == SyncMode::On && !key.names(ctx.me()) {
        return Err("synchronous_mode is on and the sync key does not name me".into());
    }
    // Votes in quorum mode; in `on` mode too when the key still carries a quorum (it was
    // written in quorum mode and the leader has not rewritten it yet): a key's quorum is a
    // promise about how commits were acknowledged, whatever the mode says now.
    let needed = votes_needed(&key.sync_standby, key.quorum, ctx.me());
    let mut votes = 0u32;
    for voter in key
        .sync_standby
        .iter()
        .filter(|v| !v.eq_ignore_ascii_case(ctx.me()))
    {
        let Some(PeerView::Answered(p)) = ctx.obs.peers.get(voter) else {
            continue;
        };
        if p.timeline == me.timeline && p.wal_position.0 > 0 && p.wal_position <= me.wal_position {
            votes += 1;
        }
    }
    let counts = settings.mode == SyncMode::Quorum || key.quorum > 0;
    if !counts || votes >= needed {
        Ok(Some(key))
    } else {
        Err(format!(
            "{votes} voter(s) of the sync key are not ahead of me, {needed} needed (quorum {})",
            key.quorum
        ))
    }
}
