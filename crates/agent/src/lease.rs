//! The lease keeper: one etcd lease per agent, renewed on a fixed cadence by its own task so
//! that a slow loop (a clone, a busy server) never lets the leader key lapse.

use std::sync::Arc;
use std::time::Duration;

use pgkeel_core::decide::keepalive_interval;
use pgkeel_core::observation::LeaseView;
use pgkeel_dcs::Dcs;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::env::Env;
use crate::shared::Shared;

/// Grants a lease; `renewed_at` is when the request was sent, so etcd's expiry is later.
pub(crate) async fn grant(dcs: &impl Dcs, shared: &Shared, ttl: Duration) {
    let sent = clock::now();
    match dcs.grant_lease(ttl).await {
        Ok(id) => shared.set_lease(LeaseView {
            id,
            ttl,
            renewed_at: Some(sent),
        }),
        Err(e) => tracing::warn!("could not get an etcd lease: {e}"),
    }
}

/// What the lease keeper works with, wherever it runs (its own thread in production).
pub struct Keeper {
    pub(crate) shared: Arc<Shared>,
    /// Woken when the lease changed under the loop (a new one after an expiry).
    pub(crate) wake: Arc<Notify>,
    pub(crate) stop: CancellationToken,
    /// Bound on one attempt to connect to etcd.
    pub(crate) connect_timeout: Duration,
}

impl Keeper {
    /// A DCS connection of the keeper's own, retried every second until it is stopped.
    pub(crate) async fn connect<E: Env>(
        &self,
        env: &E,
        cfg: &pgkeel_core::Config,
    ) -> Option<E::Dcs> {
        loop {
            match env.connect_dcs(cfg, self.connect_timeout).await {
                Ok(dcs) => return Some(dcs),
                Err(e @ pgkeel_dcs::DcsError::Refused(_)) => {
                    tracing::error!("the lease keeper: {e} (retrying every second)")
                }
                Err(e) => tracing::warn!("the lease keeper cannot reach etcd yet: {e}"),
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Renews the lease every `ttl/4`, at a fixed rate, each attempt bounded by that same
/// interval: a hung keepalive must not push the next one past the fence deadline.
/// When etcd says the lease is gone, a primary is fenced *before* a new lease is granted
/// (the leader key went with the old lease; the new one must not make the fence think
/// leadership is still safe), then the loop is woken. A lease the loop abandoned (a hung
/// primary whose processes cannot be proven gone) is not renewed; once it must have
/// expired in etcd, the agent moves on to a new one.
pub(crate) async fn keep<E: Env>(dcs: E::Dcs, env: Arc<E>, k: Keeper) {
    let Keeper {
        shared, wake, stop, ..
    } = k;
    let mut ttl = shared.lease().ttl;
    let mut every = keepalive_interval(ttl);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let lease = shared.lease();
        if lease.ttl != ttl {
            // The loop moved the agent to a lease with another TTL (a /config change).
            ttl = lease.ttl;
            every = keepalive_interval(ttl);
            tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        if lease.id == 0 {
            grant(&dcs, &shared, ttl).await;
            if shared.lease().id != 0 {
                wake.notify_one();
            }
            continue;
        }
        if shared.abandoned() == lease.id {
            if lease_surely_expired(&lease, clock::now()) && shared.lost(lease.id) {
                tracing::warn!(
                    "my abandoned lease {:x} has expired in etcd; granting a new one",
                    lease.id
                );
                grant(&dcs, &shared, ttl).await;
                wake.notify_one();
            }
            continue;
        }
        let sent = clock::now();
        match tokio::time::timeout(every, dcs.keep_alive(lease.id)).await {
            Ok(Ok(Some(_))) => {
                shared.renewed(lease.id, sent);
            }
            Ok(Ok(None)) => {
                if !shared.lost(lease.id) {
                    continue; // a lease we already left (TTL change)
                }
                tracing::warn!("etcd lease {:x} expired; granting a new one", lease.id);
                // Failsafe mode: every member confirmed this primary, none will race until
                // that runs out; the loop takes the free leader key back with the new lease.
                let on_failsafe = shared.may_be_primary() && shared.failsafe_alive(clock::now());
                if shared.may_be_primary() && !on_failsafe {
                    env.fence_now();
                }
                grant(&dcs, &shared, ttl).await;
                if on_failsafe {
                    shared.lease_without_key(shared.lease().id);
                }
                wake.notify_one();
            }
            Ok(Err(e)) => tracing::warn!("lease keepalive failed: {e}"),
            Err(_) => tracing::warn!("lease keepalive got no answer within {every:?}"),
        }
    }
}

/// etcd counts a lease's ttl in whole seconds from when it received the last keepalive,
/// which was after we sent it; a second more covers the rounding.
fn lease_surely_expired(lease: &LeaseView, now: std::time::Instant) -> bool {
    let ttl = Duration::from_secs(lease.ttl.as_secs_f64().ceil() as u64 + 1);
    lease.renewed_at.is_none_or(|t| now >= t + ttl)
}

/// Moves the agent to a lease with a new TTL (`ttl` changed in `/config`) without ever
/// leaving the leader key on a lease nobody renews: grant the new lease, move the leader
/// key onto it (compare-and-swap on its value), hand it to the keeper and the fence, and
/// only then revoke the old one. If the key cannot be moved, the new lease is dropped and
/// the old one stays in force (the next loop tries again).
pub(crate) async fn change_ttl(
    dcs: &impl Dcs,
    shared: &Shared,
    me: &str,
    ttl: Duration,
    holds_key: bool,
) {
    let old = shared.lease();
    let sent = clock::now();
    let new_id = match dcs.grant_lease(ttl).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!("could not get a lease with the new ttl {ttl:?}: {e}");
            return;
        }
    };
    if holds_key {
        match dcs.reclaim_leader(me, new_id).await {
            Ok(true) => {}
            outcome => {
                tracing::warn!("could not move the leader key to the new lease ({outcome:?}); keeping ttl {:?}", old.ttl);
                let _ = dcs.revoke_lease(new_id).await;
                return;
            }
        }
    }
    shared.set_lease(LeaseView {
        id: new_id,
        ttl,
        renewed_at: Some(sent),
    });
    if let Err(e) = dcs.revoke_lease(old.id).await {
        // It expires on its own; nothing of ours is bound to it any more.
        tracing::warn!("could not revoke the old lease: {e}");
    }
    tracing::info!("ttl is now {ttl:?} (lease {new_id:x})");
}
