//! The etcd client handle: connecting, the per-operation deadline, and the small writes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, PutOptions, Txn, TxnOp,
};
use pgkeel_core::dcs_values::{FailoverValue, HistoryEntry, MemberValue, StatusValue, SyncValue};
use tokio::sync::Mutex;

use crate::access::{Access, TlsChannel};
use crate::lease::CachedKeeper;
use crate::DcsError;

/// Key names relative to the cluster prefix, as Patroni spells them.
pub const LEADER: &str = "leader";
pub const INITIALIZE: &str = "initialize";
pub const CONFIG: &str = "config";
pub const STATUS: &str = "status";
pub const HISTORY: &str = "history";
pub const FAILOVER: &str = "failover";
pub const MEMBERS: &str = "members/";
pub const SYNC: &str = "sync";
pub const FAILSAFE: &str = "failsafe";
/// Written by Patroni < 2.1 instead of `status`; read only.
pub(crate) const LEGACY_OPTIME: &str = "optime/leader";

/// gRPC HTTP/2 pings keep long-lived streams (watch, lease keepalive) honest across silent
/// network failures. etcd's server rejects pings closer than 5 s apart (`--grpc-keepalive-min-time`)
/// and answers abusers with GOAWAY, so stay well above that.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// A connection to an etcd cluster, scoped to one pgkeel cluster's key prefix.
///
/// Cheap to clone: clones share the gRPC channel and the cached lease keeper.
#[derive(Clone)]
pub struct Etcd {
    pub(crate) client: Client,
    pub(crate) prefix: String,
    /// The bound on each call, in milliseconds: `retry_timeout`, which `/config` may change
    /// (see [`Etcd::set_op_timeout`]); clones share it.
    pub(crate) op_timeout_ms: Arc<std::sync::atomic::AtomicU64>,
    /// The keepalive stream of the lease we renew, reused between renewals (see `lease.rs`).
    pub(crate) keeper: Arc<Mutex<Option<Box<CachedKeeper>>>>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout())
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// Connects to every endpoint of `access` (etcd-client balances between them), over TLS
    /// and as its user when it says so, and checks that the cluster answers a linearizable
    /// read, so a dead or leaderless etcd is reported here as [`DcsError::Unavailable`]
    /// within `op_timeout` instead of on the first real call, and a user etcd refuses as
    /// [`DcsError::Refused`].
    ///
    /// `prefix` is the cluster's key prefix, `/<namespace>/<scope>/`; it must end with `/`.
    pub async fn connect(
        access: &Access,
        prefix: String,
        op_timeout: Duration,
    ) -> Result<Etcd, DcsError> {
        if access.hosts.is_empty() {
            return Err(DcsError::Invalid("connect: no etcd hosts given".into()));
        }
        if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() < 2 {
            return Err(DcsError::Invalid(format!(
                "connect: key prefix {prefix:?} must start and end with '/'"
            )));
        }
        let endpoints = access.urls();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(op_timeout)
            .with_keep_alive(HTTP2_PING_INTERVAL, op_timeout.max(Duration::from_secs(1)))
            // A member cut off from its quorum must not serve us stale data or a silent watch.
            .with_require_leader(true);
        if let Some((user, password)) = &access.user {
            // etcd's tokens expire (simple ones after --auth-token-ttl, 300 s, unused; JWTs
            // after their TTL whatever the use): a request refused for its token is sent
            // again once with a fresh one.
            options = options
                .with_user(user, password)
                .with_auto_token_refresh(true);
        }

        let what = format!("connect to {}", endpoints.join(","));
        // With credentials, connecting authenticates, which is a network round trip.
        let connecting = async {
            match &access.tls {
                None => Client::connect(&endpoints, Some(options)).await,
                Some(tls) => {
                    let channel = TlsChannel {
                        tls: tls.clone(),
                        handshake_timeout: op_timeout,
                    };
                    Client::connect_with_balanced_channel(&endpoints, Some(options), channel).await
                }
            }
        };
        let client = deadline(op_timeout, &what, connecting).await?;
        let etcd = Etcd {
            client,
            prefix,
            op_timeout_ms: Arc::new(std::sync::atomic::AtomicU64::new(millis(op_timeout))),
            keeper: Arc::new(Mutex::new(None)),
        };
        // The channel connects lazily; one cheap read proves that etcd is there and has quorum.
        let mut kv = etcd.kv();
        let probe = kv.get(
            etcd.prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_count_only()),
        );
        deadline(op_timeout, &what, probe).await?;
        Ok(etcd)
    }

    /// The bound on each call.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(
            self.op_timeout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Bounds every later call of this connection and its clones by `timeout` (Patroni
    /// applies a new `retry_timeout` from `/config` to its DCS client at once).
    pub fn set_op_timeout(&self, timeout: Duration) {
        self.op_timeout_ms
            .store(millis(timeout), std::sync::atomic::Ordering::Relaxed);
    }

    /// The cluster's key prefix, `/<namespace>/<scope>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub(crate) fn kv(&self) -> KvClient {
        self.client.kv_client()
    }

    /// Runs one etcd call under the per-operation deadline; errors name `op` and `key`.
    pub(crate) async fn call<T>(
        &self,
        op: &str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, DcsError> {
        deadline(self.op_timeout(), &format!("{op} {key}"), fut).await
    }

    /// Puts `members/<name>` = the member's JSON, bound to `lease` so that it vanishes when
    /// the node stops renewing. `lease` 0 writes the key without a lease.
    pub async fn touch_member(
        &self,
        name: &str,
        value: &MemberValue,
        lease: i64,
    ) -> Result<(), DcsError> {
        let key = self.key(&format!("{MEMBERS}{name}"));
        let json = to_json("touch_member", &key, value)?;
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let mut kv = self.kv();
        self.call("touch_member", &key, kv.put(key.as_str(), json, options))
            .await?;
        Ok(())
    }

    /// The bootstrap race: creates `initialize` = "" if nobody has. `Ok(true)` if we won.
    pub async fn claim_initialize(&self) -> Result<bool, DcsError> {
        let key = self.key(INITIALIZE);
        self.create_if_absent("claim_initialize", &key, Vec::new(), None)
            .await
    }

    /// Records the system identifier of the freshly bootstrapped cluster.
    pub async fn write_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        let key = self.key(INITIALIZE);
        let mut kv = self.kv();
        self.call("write_initialize", &key, kv.put(key.as_str(), sysid, None))
            .await?;
        Ok(())
    }

    /// Gives up a bootstrap that failed, so another node may try.
    pub async fn cancel_initialize(&self) -> Result<(), DcsError> {
        let key = self.key(INITIALIZE);
        let mut kv = self.kv();
        self.call("cancel_initialize", &key, kv.delete(key.as_str(), None))
            .await?;
        Ok(())
    }

    /// Seeds `config` from `bootstrap.dcs` unless someone already did. `Ok(true)` if written.
    pub async fn write_config_if_absent(
        &self,
        config: &serde_json::Value,
    ) -> Result<bool, DcsError> {
        let key = self.key(CONFIG);
        let json = to_json("write_config_if_absent", &key, config)?;
        self.create_if_absent("write_config_if_absent", &key, json.into_bytes(), None)
            .await
    }

    /// The leader race: creates `leader` = `name` bound to `lease` if the key is absent.
    /// `Ok(true)` if we now hold it.
    pub async fn acquire_leader(&self, name: &str, lease: i64) -> Result<bool, DcsError> {
        let key = self.key(LEADER);
        let options = PutOptions::new().with_lease(lease);
        self.create_if_absent("acquire_leader", &key, name.into(), Some(options))
            .await
    }

    /// Rebinds our own leader key to a new lease (after the old one was lost and re-granted),
    /// as Patroni's `_update_leader` does. `Ok(false)` if the key is absent or names someone
    /// else: leadership is lost and the caller must demote.
    pub async fn reclaim_leader(&self, name: &str, lease: i64) -> Result<bool, DcsError> {
        let key = self.key(LEADER);
        let put = TxnOp::put(
            key.as_str(),
            name,
            Some(PutOptions::new().with_lease(lease)),
        );
        self.if_leader_is(name, "reclaim_leader", &key, put).await
    }

    /// Voluntary release: deletes `leader` only if it still names us. `Ok(true)` if deleted.
    pub async fn release_leader(&self, name: &str) -> Result<bool, DcsError> {
        let key = self.key(LEADER);
        let delete = TxnOp::delete(key.as_str(), None);
        self.if_leader_is(name, "release_leader", &key, delete)
            .await
    }

    /// Publishes the leader's WAL position and slots (`status`), only while `leader` still
    /// holds the leader key: a deposed leader must not move the position replicas compare
    /// themselves against. `Ok(false)` when the key names someone else.
    pub async fn write_status(&self, leader: &str, status: &StatusValue) -> Result<bool, DcsError> {
        let key = self.key(STATUS);
        let json = to_json("write_status", &key, status)?;
        let put = TxnOp::put(key.as_str(), json, None);
        self.if_leader_is(leader, "write_status", &self.key(LEADER), put)
            .await
    }

    /// Replaces `history`, in Patroni's list-of-lists shape, only while `leader` still holds
    /// the leader key (replicas judge timeline forks by it). `Ok(false)` otherwise.
    pub async fn write_history(
        &self,
        leader: &str,
        history: &[HistoryEntry],
    ) -> Result<bool, DcsError> {
        let key = self.key(HISTORY);
        let list = serde_json::Value::Array(history.iter().map(HistoryEntry::to_json).collect());
        let json = to_json("write_history", &key, &list)?;
        let put = TxnOp::put(key.as_str(), json, None);
        self.if_leader_is(leader, "write_history", &self.key(LEADER), put)
            .await
    }

    /// Writes `sync`, only while `leader` still holds the leader key: a deposed leader must
    /// never change who may be promoted. `Ok(false)` otherwise.
    pub async fn write_sync(&self, leader: &str, value: &SyncValue) -> Result<bool, DcsError> {
        let key = self.key(SYNC);
        let json = to_json("write_sync", &key, &value.to_json())?;
        let put = TxnOp::put(key.as_str(), json, None);
        self.if_leader_is(leader, "write_sync", &self.key(LEADER), put)
            .await
    }

    /// Writes `failsafe` (`{name: api_url}`), only while `leader` holds the leader key.
    pub async fn write_failsafe(
        &self,
        leader: &str,
        members: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, DcsError> {
        let key = self.key(FAILSAFE);
        let json = to_json("write_failsafe", &key, members)?;
        let put = TxnOp::put(key.as_str(), json, None);
        self.if_leader_is(leader, "write_failsafe", &self.key(LEADER), put)
            .await
    }

    /// Writes `failover` (a switchover or failover request). Unconditional, as Patroni's
    /// API writes it; the request is checked against the cluster before.
    pub async fn write_failover(&self, value: &FailoverValue) -> Result<(), DcsError> {
        let key = self.key(FAILOVER);
        let json = to_json("write_failover", &key, value)?;
        let mut kv = self.kv();
        self.call("write_failover", &key, kv.put(key.as_str(), json, None))
            .await?;
        Ok(())
    }

    /// Deletes `failover` if it is still at `revision` (0: whatever it holds). `Ok(true)` if
    /// deleted or already absent, `Ok(false)` if someone changed it meanwhile.
    pub async fn delete_failover(&self, revision: i64) -> Result<bool, DcsError> {
        let key = self.key(FAILOVER);
        let mut kv = self.kv();
        if revision == 0 {
            self.call("delete_failover", &key, kv.delete(key.as_str(), None))
                .await?;
            return Ok(true);
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        let resp = self.call("delete_failover", &key, kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Replaces `config` if it is still at `revision` (0: only if absent), as Patroni's
    /// `PATCH /config` and `patronictl edit-config` do. `Ok(false)` on a concurrent change.
    pub async fn write_config(
        &self,
        config: &serde_json::Value,
        revision: i64,
    ) -> Result<bool, DcsError> {
        let key = self.key(CONFIG);
        let json = to_json("write_config", &key, config)?;
        let compare = if revision == 0 {
            Compare::create_revision(key.as_str(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key.as_str(), CompareOp::Equal, revision)
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key.as_str(), json, None)]);
        let mut kv = self.kv();
        let resp = self.call("write_config", &key, kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Replaces `config` whatever it holds (`PUT /config`).
    pub async fn put_config(&self, config: &serde_json::Value) -> Result<(), DcsError> {
        let key = self.key(CONFIG);
        let json = to_json("put_config", &key, config)?;
        let mut kv = self.kv();
        self.call("put_config", &key, kv.put(key.as_str(), json, None))
            .await?;
        Ok(())
    }

    /// Deletes every key of this cluster (`patronictl remove`).
    pub async fn delete_cluster(&self) -> Result<(), DcsError> {
        let mut kv = self.kv();
        self.call(
            "delete_cluster",
            &self.prefix,
            kv.delete(
                self.prefix.as_str(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        )
        .await?;
        Ok(())
    }

    /// One transaction: if `key` was never created (create_revision 0), put `value`.
    async fn create_if_absent(
        &self,
        op: &str,
        key: &str,
        value: Vec<u8>,
        options: Option<PutOptions>,
    ) -> Result<bool, DcsError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, options)]);
        let mut kv = self.kv();
        let resp = self.call(op, key, kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// One transaction: if the leader key's value is `name`, run `then`. An absent key fails
    /// the comparison (etcd compares a missing key's value as false).
    async fn if_leader_is(
        &self,
        name: &str,
        op: &str,
        key: &str,
        then: TxnOp,
    ) -> Result<bool, DcsError> {
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, name)])
            .and_then([then]);
        let mut kv = self.kv();
        let resp = self.call(op, key, kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }
}

/// Bounds `fut` by `timeout`; both a timeout and an etcd error become `Unavailable` naming
/// `what`, except etcd's refusal of a request over its `--max-request-bytes` (`TooLarge`).
pub(crate) async fn deadline<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, DcsError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        // etcd answered, and the answer is about the request: no retry will change it.
        Ok(Err(etcd_client::Error::GRpcStatus(st)))
            if st.message().contains("request is too large") =>
        {
            Err(DcsError::TooLarge(format!("{what}: {}", st.message())))
        }
        // etcd answered, and refused who we are: waiting does not help, the user must change.
        Ok(Err(etcd_client::Error::GRpcStatus(st))) if refusal(st.message()).is_some() => {
            let why = refusal(st.message()).unwrap_or_default();
            Err(DcsError::Refused(format!(
                "{what}: {why} ({})",
                st.message()
            )))
        }
        Ok(Err(e)) => Err(DcsError::Unavailable(format!(
            "{what}: {}",
            with_causes(&e)
        ))),
        Err(_) => Err(DcsError::Unavailable(format!(
            "{what}: no answer within {timeout:?}"
        ))),
    }
}

/// `e` and what caused it: a TLS failure is only named in the error's sources (tonic's
/// "transport error" alone does not say that etcd's certificate was refused).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// What an etcd error says about our user, from etcd's messages (`rpctypes`, stable since
/// etcd 3.2); `None` when it is about something else.
fn refusal(message: &str) -> Option<&'static str> {
    if message.contains("authentication failed") {
        Some("etcd refused the user name or password")
    } else if message.contains("user name is empty") || message.contains("user name not found") {
        Some("etcd has authentication enabled and no user was given (set username and password)")
    } else if message.contains("permission denied") {
        Some(
            "etcd refused the request to this user (the configured username, else the common \
             name of the client certificate): no role of it allows this key",
        )
    } else {
        None
    }
}

fn to_json(op: &str, key: &str, value: &impl serde::Serialize) -> Result<String, DcsError> {
    serde_json::to_string(value)
        .map_err(|e| DcsError::Invalid(format!("{op} {key}: cannot encode value as JSON: {e}")))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
