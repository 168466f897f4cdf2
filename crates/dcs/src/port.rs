//! The DCS as the agent sees it: every read and write the runtime makes, as a trait, so the
//! same runtime runs over etcd ([`Etcd`]) and over the simulator's in-memory store.
//!
//! The contract is etcd's: `load` is one consistent read of the whole cluster; writes named
//! `*_leader`/`write_*(leader, ..)` are transactions that succeed only while the leader key
//! holds the expected value (`Ok(false)` when it does not); leases expire `ttl` after their
//! last renewal *as the DCS processed it*; `Err` means no answer (the write may or may not
//! have happened).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pgkeel_core::cluster::Cluster;
use pgkeel_core::dcs_values::{FailoverValue, HistoryEntry, MemberValue, StatusValue, SyncValue};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{DcsError, Etcd};

type R<T> = Result<T, DcsError>;

pub trait Dcs: Clone + Send + Sync + 'static {
    fn load(&self) -> impl Future<Output = R<Cluster>> + Send;
    fn touch_member(
        &self,
        name: &str,
        value: &MemberValue,
        lease: i64,
    ) -> impl Future<Output = R<()>> + Send;
    fn claim_initialize(&self) -> impl Future<Output = R<bool>> + Send;
    fn write_initialize(&self, sysid: &str) -> impl Future<Output = R<()>> + Send;
    fn cancel_initialize(&self) -> impl Future<Output = R<()>> + Send;
    fn write_config_if_absent(
        &self,
        config: &serde_json::Value,
    ) -> impl Future<Output = R<bool>> + Send;
    fn acquire_leader(&self, name: &str, lease: i64) -> impl Future<Output = R<bool>> + Send;
    fn reclaim_leader(&self, name: &str, lease: i64) -> impl Future<Output = R<bool>> + Send;
    fn release_leader(&self, name: &str) -> impl Future<Output = R<bool>> + Send;
    fn write_status(
        &self,
        leader: &str,
        status: &StatusValue,
    ) -> impl Future<Output = R<bool>> + Send;
    fn write_history(
        &self,
        leader: &str,
        history: &[HistoryEntry],
    ) -> impl Future<Output = R<bool>> + Send;
    fn write_sync(&self, leader: &str, value: &SyncValue) -> impl Future<Output = R<bool>> + Send;
    fn write_failsafe(
        &self,
        leader: &str,
        members: &BTreeMap<String, String>,
    ) -> impl Future<Output = R<bool>> + Send;
    fn write_failover(&self, value: &FailoverValue) -> impl Future<Output = R<()>> + Send;
    fn delete_failover(&self, revision: i64) -> impl Future<Output = R<bool>> + Send;
    fn write_config(
        &self,
        config: &serde_json::Value,
        revision: i64,
    ) -> impl Future<Output = R<bool>> + Send;
    fn put_config(&self, config: &serde_json::Value) -> impl Future<Output = R<()>> + Send;
    fn grant_lease(&self, ttl: Duration) -> impl Future<Output = R<i64>> + Send;
    /// `Ok(None)`: the DCS answered that the lease no longer exists.
    fn keep_alive(&self, lease: i64) -> impl Future<Output = R<Option<Duration>>> + Send;
    fn revoke_lease(&self, lease: i64) -> impl Future<Output = R<()>> + Send;
    /// A task that notifies `wake` whenever something under the prefix changes.
    fn spawn_watcher(&self, wake: Arc<Notify>) -> JoinHandle<()>;
    /// Bounds each later call by `timeout` (`retry_timeout` changed in `/config`).
    fn set_op_timeout(&self, _timeout: Duration) {}
}

/// Delegation to the inherent methods (which take precedence in these bodies).
impl Dcs for Etcd {
    async fn load(&self) -> R<Cluster> {
        Etcd::load(self).await
    }
    async fn touch_member(&self, name: &str, value: &MemberValue, lease: i64) -> R<()> {
        Etcd::touch_member(self, name, value, lease).await
    }
    async fn claim_initialize(&self) -> R<bool> {
        Etcd::claim_initialize(self).await
    }
    async fn write_initialize(&self, sysid: &str) -> R<()> {
        Etcd::write_initialize(self, sysid).await
    }
    async fn cancel_initialize(&self) -> R<()> {
        Etcd::cancel_initialize(self).await
    }
    async fn write_config_if_absent(&self, config: &serde_json::Value) -> R<bool> {
        Etcd::write_config_if_absent(self, config).await
    }
    async fn acquire_leader(&self, name: &str, lease: i64) -> R<bool> {
        Etcd::acquire_leader(self, name, lease).await
    }
    async fn reclaim_leader(&self, name: &str, lease: i64) -> R<bool> {
        Etcd::reclaim_leader(self, name, lease).await
    }
    async fn release_leader(&self, name: &str) -> R<bool> {
        Etcd::release_leader(self, name).await
    }
    async fn write_status(&self, leader: &str, status: &StatusValue) -> R<bool> {
        Etcd::write_status(self, leader, status).await
    }
    async fn write_history(&self, leader: &str, history: &[HistoryEntry]) -> R<bool> {
        Etcd::write_history(self, leader, history).await
    }
    async fn write_sync(&self, leader: &str, value: &SyncValue) -> R<bool> {
        Etcd::write_sync(self, leader, value).await
    }
    async fn write_failsafe(&self, leader: &str, members: &BTreeMap<String, String>) -> R<bool> {
        Etcd::write_failsafe(self, leader, members).await
    }
    async fn write_failover(&self, value: &FailoverValue) -> R<()> {
        Etcd::write_failover(self, value).await
    }
    async fn delete_failover(&self, revision: i64) -> R<bool> {
        Etcd::delete_failover(self, revision).await
    }
    async fn write_config(&self, config: &serde_json::Value, revision: i64) -> R<bool> {
        Etcd::write_config(self, config, revision).await
    }
    async fn put_config(&self, config: &serde_json::Value) -> R<()> {
        Etcd::put_config(self, config).await
    }
    async fn grant_lease(&self, ttl: Duration) -> R<i64> {
        Etcd::grant_lease(self, ttl).await
    }
    async fn keep_alive(&self, lease: i64) -> R<Option<Duration>> {
        Etcd::keep_alive(self, lease).await
    }
    async fn revoke_lease(&self, lease: i64) -> R<()> {
        Etcd::revoke_lease(self, lease).await
    }
    fn set_op_timeout(&self, timeout: Duration) {
        Etcd::set_op_timeout(self, timeout);
    }
    fn spawn_watcher(&self, wake: Arc<Notify>) -> JoinHandle<()> {
        Etcd::spawn_watcher(self, wake)
    }
}
