//! Leases: grant, renew (one keepalive round trip), revoke.
//!
//! etcd renews leases over a bidirectional stream. Opening it costs a round trip, so the stream
//! of the lease we renew is kept between renewals. The invariant: a cached stream has no
//! request in flight. A renewal therefore takes the stream out of the cache and puts it back
//! only after reading its answer; a renewal that fails or times out half way drops it, and
//! the next one opens a fresh stream instead of reading a stale answer.

use std::time::Duration;

use etcd_client::{Error, LeaseClient, LeaseKeepAliveStream, LeaseKeeper};

use crate::etcd::{deadline, Etcd};
use crate::DcsError;

pub(crate) struct CachedKeeper {
    lease: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

/// What one keepalive round trip learned.
enum Renewal {
    Alive {
        keeper: Box<CachedKeeper>,
        ttl: i64,
    },
    /// etcd no longer knows the lease: it expired or was revoked.
    Gone,
}

impl Etcd {
    /// Grants a lease of `ttl`, rounded up to whole seconds (at least 1; etcd may raise very
    /// small TTLs to its own minimum). Returns the lease id.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64, DcsError> {
        let secs = ttl_seconds(ttl);
        let mut lease = self.client.lease_client();
        let resp = self
            .call(
                "grant_lease",
                &format!("ttl={secs}s"),
                lease.grant(secs, None),
            )
            .await?;
        Ok(resp.id())
    }

    /// What etcd says is left of `lease`: whole seconds, rounded down (`None`: the lease is
    /// gone). For observers (tests, tools) that watch someone else's renewals.
    pub async fn lease_time_to_live(&self, lease: i64) -> Result<Option<i64>, DcsError> {
        let mut client = self.client.lease_client();
        let resp = self
            .call(
                "lease_time_to_live",
                &format!("{lease:x}"),
                client.time_to_live(lease, None),
            )
            .await?;
        Ok((resp.ttl() >= 0).then_some(resp.ttl()))
    }

    /// One keepalive request and its answer. `Ok(Some(ttl))`: renewed, `ttl` is what etcd
    /// granted from now. `Ok(None)`: the lease is gone and every key bound to it with it.
    pub async fn keep_alive(&self, lease: i64) -> Result<Option<Duration>, DcsError> {
        let what = format!("keep_alive lease {lease:x}");
        let renew = async {
            let mut slot = self.keeper.lock().await;
            let cached = slot.take().filter(|k| k.lease == lease);
            let reused = cached.is_some();
            let client = self.client.lease_client();
            let outcome = match renew_once(client.clone(), lease, cached).await {
                // A cached stream may have died while idle (etcd restarted, connection reset):
                // that says nothing about the lease, so retry once on a fresh stream.
                Err(e) if reused => {
                    tracing::debug!("{what}: cached keepalive stream failed ({e}), reopening");
                    renew_once(client, lease, None).await
                }
                other => other,
            }?;
            Ok(match outcome {
                Renewal::Alive { keeper, ttl } => {
                    *slot = Some(keeper);
                    Some(Duration::from_secs(ttl.unsigned_abs()))
                }
                Renewal::Gone => None,
            })
        };
        deadline(self.op_timeout(), &what, renew).await
    }

    /// Revokes `lease`, deleting every key bound to it. Revoking a lease etcd no longer knows
    /// succeeds: the outcome the caller wanted holds.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), DcsError> {
        let what = format!("revoke_lease {lease:x}");
        {
            let mut slot = self.keeper.lock().await;
            if slot.as_ref().is_some_and(|k| k.lease == lease) {
                *slot = None;
            }
        }
        let mut client = self.client.lease_client();
        match tokio::time::timeout(self.op_timeout(), client.revoke(lease)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(Error::GRpcStatus(s))) if is_lease_not_found(s.message()) => Ok(()),
            Ok(Err(e)) => Err(DcsError::Unavailable(format!("{what}: {e}"))),
            Err(_) => Err(DcsError::Unavailable(format!(
                "{what}: no answer within {:?}",
                self.op_timeout()
            ))),
        }
    }
}

/// One keepalive round trip, on `cached` or on a newly opened stream.
async fn renew_once(
    mut client: LeaseClient,
    lease: i64,
    cached: Option<Box<CachedKeeper>>,
) -> Result<Renewal, Error> {
    let mut k = match cached {
        Some(k) => k,
        // Opening the stream sends a first keepalive but throws its TTL away, so the round
        // trip below is a second one; it only happens when the stream is (re)opened.
        None => match client.keep_alive(lease).await {
            Ok((keeper, stream)) => Box::new(CachedKeeper {
                lease,
                keeper,
                stream,
            }),
            // etcd-client's wording for a first answer with TTL 0.
            Err(Error::LeaseKeepAliveError(msg)) if msg.contains("not found") => {
                return Ok(Renewal::Gone)
            }
            Err(e) => return Err(e),
        },
    };
    k.keeper.keep_alive().await?;
    match k.stream.message().await? {
        Some(resp) if resp.ttl() > 0 => Ok(Renewal::Alive {
            ttl: resp.ttl(),
            keeper: k,
        }),
        Some(_) => Ok(Renewal::Gone),
        None => Err(Error::LeaseKeepAliveError(
            "etcd closed the keepalive stream".into(),
        )),
    }
}

fn ttl_seconds(ttl: Duration) -> i64 {
    let whole = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(whole.max(1)).unwrap_or(i64::MAX)
}

/// etcd's `ErrGRPCLeaseNotFound` message (gRPC code NotFound), stable since etcd 3.0. Matched
/// by text so this crate needs no direct dependency on tonic.
fn is_lease_not_found(message: &str) -> bool {
    message.contains("requested lease not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_seconds(Duration::from_secs(30)), 30);
    }
}
