//! What the agent publishes after every loop, and how the API reads it.
//!
//! The API never talks to PostgreSQL or the DCS itself: every answer is computed from the
//! last [`NodeSnapshot`]. Patroni queries PostgreSQL on every health check; we trade a
//! little freshness (at most one loop) for health checks that cannot pile up connections
//! on a struggling server, and for answers that agree with what the HA loop decided.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pgkeel_core::cluster::Cluster;
use pgkeel_core::observation::PgView;
use pgkeel_core::sync::SyncMode;
use pgkeel_core::tags::Tags;
use serde::Serialize;

/// One row of `pg_stat_replication` (joined with `pg_stat_activity`), as Patroni lists it
/// under `replication` in the status JSON. `client_addr` is NULL over a Unix socket and
/// `usename` for a dropped role; the agent maps other NULLs (a role without
/// `pg_read_all_stats`) to ""/0, where Patroni would show `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationRow {
    pub usename: Option<String>,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub sync_priority: i32,
}

/// The node as the API sees it: filled by the agent once per loop.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSnapshot {
    /// Each replication slot of the local server and the WAL it holds back, in bytes
    /// (`pg_wal_lsn_diff` of the server's WAL position and the slot's `restart_lsn`).
    pub slots_retained: Vec<SlotRetained>,
    pub name: String,
    pub scope: String,
    /// pgkeel's version, reported as `patroni.version`.
    pub version: String,
    /// `ha.is_leader()`: the leader key names this node under its live lease.
    pub holds_leader_key: bool,
    /// The local PostgreSQL.
    pub pg: PgView,
    /// The role to report when SQL gives none (PostgreSQL not running, or its status query
    /// failed): Patroni then reports its remembered role ("demoted", "uninitialized", ...).
    pub role_override: Option<String>,
    /// Patroni's `PostgresqlState` string: "running", "stopped", "starting", "crashed",
    /// "creating replica", "initializing new cluster", "rewinding", ...
    pub state_text: String,
    /// `server_version_num`, e.g. 160004.
    pub server_version: Option<u32>,
    pub postmaster_start_time: Option<String>,
    /// `latest_end_lsn` of `pg_stat_get_wal_receiver()` on a replica. Patroni takes the
    /// leader position as max(this, `/status.optime`), so a replica can judge its lag even
    /// while the DCS is unreachable.
    pub latest_end_lsn: Option<u64>,
    /// `restore_command` is set: a replica that is not streaming reports
    /// "in archive recovery" rather than no replication state (Patroni
    /// `replication_state_from_parameters`).
    pub has_restore_command: bool,
    /// `pg_stat_replication` rows (downstream standbys of this node).
    pub replication: Vec<ReplicationRow>,
    pub tags: Tags,
    /// The last DCS read; `None` until one succeeds (and after the agent decides the DCS is
    /// lost, if it chooses to clear it).
    pub cluster: Option<Cluster>,
    /// Unix seconds of the last successful DCS read.
    pub dcs_last_seen: Option<u64>,
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub retry_timeout: Duration,
    /// The default `?lag=` of `/readiness`.
    pub maximum_lag_on_failover: u64,
    /// The `/config` key as read from the DCS; `None` makes `GET /config` answer 502.
    pub dynamic_config: Option<serde_json::Value>,
    /// When the last HA loop started; `/liveness` fails once it is too old.
    pub last_loop_at: Option<Instant>,
    /// Maintenance mode (`pause: true` in the dynamic config).
    pub paused: bool,
    /// PostgreSQL must restart for a setting to take effect (`pg_settings.pending_restart`).
    /// Also implied by a non-empty `pending_restart_reason`.
    pub pending_restart: bool,
    /// Why: parameter → (old value, new value), Patroni's `pending_restart_reason`.
    pub pending_restart_reason: BTreeMap<String, (String, String)>,
    /// A restart waiting for its time, shown as Patroni's `scheduled_restart`:
    /// `{"schedule": "<isoformat>", "role"?, "postgres_version"?, "restart_pending"?, ...}`.
    pub scheduled_restart: Option<serde_json::Value>,
    /// `synchronous_mode` in force (the dynamic config): whether the `/sync` key makes
    /// this node a sync standby (`on`) or a quorum standby (`quorum`).
    pub sync_mode: SyncMode,
    /// `failsafe_mode` in force: `GET /failsafe` and `POST /failsafe` answer 502 without it.
    pub failsafe_mode: bool,
    /// Patroni's `failsafe_is_active()` as the agent sees it: a primary running on its
    /// members' confirmations while the DCS is unreachable. A replica is also active for
    /// `ttl` after a leader's `POST /failsafe`; the server adds that from its
    /// [`crate::FailsafeInbox`] itself.
    pub failsafe_active: bool,
    /// Why the `/config` in the DCS is not the one in force on this node (bad or
    /// unreadable: the node keeps its last valid settings); shown as `config_error` in
    /// `/patroni` and as `pgkeel_config_invalid` in `/metrics`.
    pub config_problem: Option<String>,
    /// The local server's pg_settings (`GET /parameters`), once read.
    pub catalog: Option<std::sync::Arc<pgkeel_core::guc::GucCatalog>>,
    /// Whether the postmaster the last loop saw still runs, asked at each request: a
    /// server stopped since the loop must not answer health checks as running for up to a
    /// loop (Patroni's handlers ask PostgreSQL itself).
    pub postmaster_alive: Option<PostmasterAlive>,
    /// The agent's callback runs so far (none in the simulator).
    pub callback_stats: Option<std::sync::Arc<crate::CallbackStats>>,
    /// A fresh status query of the local server, for `GET /patroni`: peers racing for the
    /// leader key compare their WAL position with this node's, and the last loop's may
    /// predate the end of the old primary's WAL (Patroni's handler queries PostgreSQL).
    pub live_status: Option<LiveStatus>,
}

/// A bounded status query of the local PostgreSQL (`None`: it did not answer in time).
#[derive(Clone)]
pub struct LiveStatus(pub std::sync::Arc<dyn Fn() -> LiveStatusQuery + Send + Sync>);

/// What [`LiveStatus`] returns.
pub type LiveStatusQuery = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<pgkeel_core::observation::Running>> + Send>,
>;

impl PartialEq for LiveStatus {
    /// A query is not data: snapshots compare equal whatever query they carry.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for LiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveStatus")
    }
}

/// A cheap liveness check of the postmaster (`/proc`), shared with the API.
#[derive(Clone)]
pub struct PostmasterAlive(pub std::sync::Arc<dyn Fn() -> bool + Send + Sync>);

impl PartialEq for PostmasterAlive {
    /// A check is not data: snapshots compare equal whatever check they carry.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PostmasterAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostmasterAlive")
    }
}

impl NodeSnapshot {
    /// The snapshot with the running server's status replaced by a fresher one, when the
    /// server is still in the role the last loop saw (a promotion or demotion since is the
    /// next loop's to publish with everything that goes with it).
    pub fn with_running(&self, fresh: pgkeel_core::observation::Running) -> Option<NodeSnapshot> {
        let PgView::Running(old) = &self.pg else {
            return None;
        };
        (old.in_recovery == fresh.in_recovery && old.sysid == fresh.sysid).then(|| {
            let mut s = self.clone();
            s.pg = PgView::Running(fresh);
            s
        })
    }

    /// The snapshot as a request should see it: a server the last loop saw running whose
    /// postmaster is gone since reads as stopped.
    pub fn with_live_postmaster(&self) -> Option<NodeSnapshot> {
        let gone = matches!(self.pg, PgView::Running(_))
            && self.postmaster_alive.as_ref().is_some_and(|c| !(c.0)());
        gone.then(|| {
            let mut s = self.clone();
            s.pg = PgView::Unknown;
            s.state_text = "stopped".into();
            s
        })
    }
}

/// One replication slot and the WAL it retains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRetained {
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    pub bytes: u64,
}

impl NodeSnapshot {
    /// The snapshot before the first loop: nothing known about PostgreSQL or the DCS.
    /// `last_loop_at` is "now" so that `/liveness` passes while the first loop runs, as
    /// Patroni's `next_run` starts at process start.
    pub fn new(name: impl Into<String>, scope: impl Into<String>) -> Self {
        NodeSnapshot {
            slots_retained: Vec::new(),
            name: name.into(),
            scope: scope.into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            holds_leader_key: false,
            pg: PgView::Unknown,
            role_override: None,
            state_text: "starting".into(),
            server_version: None,
            postmaster_start_time: None,
            latest_end_lsn: None,
            has_restore_command: false,
            replication: Vec::new(),
            tags: Tags::default(),
            cluster: None,
            dcs_last_seen: None,
            ttl: Duration::from_secs(30),
            loop_wait: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(10),
            maximum_lag_on_failover: 1_048_576,
            dynamic_config: None,
            last_loop_at: Some(Instant::now()),
            paused: false,
            pending_restart: false,
            pending_restart_reason: BTreeMap::new(),
            scheduled_restart: None,
            sync_mode: SyncMode::Off,
            failsafe_mode: false,
            failsafe_active: false,
            config_problem: None,
            catalog: None,
            postmaster_alive: None,
            callback_stats: None,
            live_status: None,
        }
    }
}

/// The agent writes, request handlers read. A `std` lock rather than an async one: no
/// holder ever awaits, handlers only compute a small answer under the read guard, and
/// the agent's write is a pointer-sized swap, so contention is negligible.
pub type SharedSnapshot = Arc<RwLock<NodeSnapshot>>;

pub fn shared(snapshot: NodeSnapshot) -> SharedSnapshot {
    Arc::new(RwLock::new(snapshot))
}

/// Replaces the published snapshot. The old one is dropped after the lock is released.
pub fn publish(shared: &SharedSnapshot, snapshot: NodeSnapshot) {
    let old = {
        // A panic in a reader cannot leave a snapshot half-written (readers do not write),
        // so a poisoned lock still holds a consistent value.
        let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, snapshot)
    };
    drop(old);
}

/// Runs `f` on the current snapshot under the read lock.
pub fn with_snapshot<T>(shared: &SharedSnapshot, f: impl FnOnce(&NodeSnapshot) -> T) -> T {
    let guard = shared.read().unwrap_or_else(|e| e.into_inner());
    f(&guard)
}
