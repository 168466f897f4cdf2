//! The local PostgreSQL as the agent sees it: every call the runtime makes, as a trait, so
//! the same runtime drives a real server ([`Pg`]) and the simulator's model of one.

use std::collections::BTreeMap;
use std::future::Future;

use pgkeel_core::action::{BootstrapPlan, ClonePlan, StopMode, Upstream};
use pgkeel_core::dcs_values::HistoryEntry;
use pgkeel_core::guc::GucCatalog;
use pgkeel_core::observation::PgView;
use pgkeel_core::slots::{LocalSlot, SlotAction};

use crate::{Pg, PgDetails, SlotCopy, SyncRepState};

type R<T> = anyhow::Result<T>;

pub trait Postgres: Send + Sync + 'static {
    /// What the server is doing now; never fails (an unreadable state is `Unknown`).
    fn observe(&self) -> impl Future<Output = PgView> + Send;
    fn details(&self) -> impl Future<Output = PgDetails> + Send;
    fn sync_rep_state(&self) -> impl Future<Output = R<SyncRepState>> + Send;
    fn set_sync_standbys(&self, value: Option<&str>) -> impl Future<Output = R<()>> + Send;
    /// Remembers the configuration to write; `true` when it differs from the last one.
    fn set_config(
        &self,
        parameters: BTreeMap<String, String>,
        pg_hba: crate::HbaLines,
        pg_ident: Option<Vec<String>>,
    ) -> bool;
    /// Writes the remembered configuration and reloads a running server.
    fn apply(&self) -> impl Future<Output = R<()>> + Send;
    fn timeline_history(&self) -> impl Future<Output = R<Vec<HistoryEntry>>> + Send;
    /// Makes a new cluster's data directory as `plan` says and starts it.
    fn bootstrap(&self, plan: &BootstrapPlan) -> impl Future<Output = R<()>> + Send;
    /// The new cluster runs as a primary: roles, the `post_bootstrap` script, and the
    /// managed files of a primary after a restore.
    fn post_bootstrap(&self, script: Option<&[String]>) -> impl Future<Output = R<()>> + Send;
    /// Stops the server and sets the failed bootstrap's data directory aside.
    fn abandon_bootstrap(&self) -> impl Future<Output = R<()>> + Send;
    /// Makes a replica's data directory with the plan's methods, in order.
    fn create_replica(&self, plan: &ClonePlan) -> impl Future<Output = R<()>> + Send;
    fn reinit(&self, plan: &ClonePlan) -> impl Future<Output = R<()>> + Send;
    fn start_primary(&self) -> impl Future<Output = R<()>> + Send;
    fn start_replica(&self, upstream: Option<&Upstream>) -> impl Future<Output = R<()>> + Send;
    fn stop(&self, mode: StopMode) -> impl Future<Output = R<()>> + Send;
    /// Immediate shutdown, else SIGKILL of the postmaster and every backend; `Ok` only once
    /// no process of the server is left.
    fn kill(&self) -> impl Future<Output = R<()>> + Send;
    fn reload(&self) -> impl Future<Output = R<()>> + Send;
    fn follow(&self, upstream: &Upstream) -> impl Future<Output = R<()>> + Send;
    /// The new timeline is numbered past `newest_known` (the newest timeline any member is
    /// known to have used); `cluster_history` is `/history`, for the history files.
    fn promote(
        &self,
        newest_known: u32,
        cluster_history: &[HistoryEntry],
    ) -> impl Future<Output = R<()>> + Send;
    fn rewind(&self, source: &Upstream) -> impl Future<Output = R<()>> + Send;
    fn ensure_slots(&self, names: &[String]) -> impl Future<Output = R<()>> + Send;
    /// The server's non-temporary replication slots; a model without slots has none.
    fn list_slots(&self) -> impl Future<Output = R<Vec<LocalSlot>>> + Send {
        async { Ok(Vec::new()) }
    }
    /// One step of a slot plan (`pgkeel_core::slots::plan`).
    fn apply_slot(&self, action: &SlotAction) -> impl Future<Output = R<()>> + Send {
        let _ = action;
        async { Ok(()) }
    }
    /// The logical slots `names` of the primary at `host:port`, with their state files.
    fn read_primary_slots(
        &self,
        host: &str,
        port: u16,
        names: &[String],
    ) -> impl Future<Output = R<Vec<SlotCopy>>> + Send {
        let _ = (host, port, names);
        async { Ok(Vec::new()) }
    }
    /// Installs copied slots into the stopped server's data directory.
    fn install_slots(&self, slots: &[SlotCopy]) -> R<()> {
        let _ = slots;
        Ok(())
    }
    /// The running server's parameter definitions (`pg_settings`); `None` from a model
    /// that has none, whose parameters are then checked only for their shape.
    fn parameter_catalog(&self) -> impl Future<Output = R<Option<GucCatalog>>> + Send {
        async { Ok(None) }
    }
    /// `patroni.dynamic.json`: the last valid `/config` this node used (`None`: none).
    fn read_dynamic_cache(&self) -> impl Future<Output = R<Option<serde_json::Value>>> + Send {
        async { Ok(None) }
    }
    /// Keeps `config` as the last valid `/config`; `false` when there is no cluster yet.
    fn write_dynamic_cache(
        &self,
        config: &serde_json::Value,
    ) -> impl Future<Output = R<bool>> + Send {
        let _ = config;
        async { Ok(false) }
    }
    /// A call since the last observation got no answer within its deadline (the loop's
    /// remaining calls were skipped). A model that never times out has nothing to report.
    fn was_silent(&self) -> bool {
        false
    }
}

/// Delegation to the inherent methods (which take precedence in these bodies).
impl Postgres for Pg {
    async fn observe(&self) -> PgView {
        Pg::observe(self).await
    }
    async fn details(&self) -> PgDetails {
        Pg::details(self).await
    }
    fn was_silent(&self) -> bool {
        Pg::was_silent(self)
    }
    async fn sync_rep_state(&self) -> R<SyncRepState> {
        Pg::sync_rep_state(self).await
    }
    async fn set_sync_standbys(&self, value: Option<&str>) -> R<()> {
        Pg::set_sync_standbys(self, value).await
    }
    fn set_config(
        &self,
        parameters: BTreeMap<String, String>,
        pg_hba: crate::HbaLines,
        pg_ident: Option<Vec<String>>,
    ) -> bool {
        Pg::set_config(self, parameters, pg_hba, pg_ident)
    }
    async fn apply(&self) -> R<()> {
        Pg::apply(self).await
    }
    async fn timeline_history(&self) -> R<Vec<HistoryEntry>> {
        Pg::timeline_history(self).await
    }
    async fn bootstrap(&self, plan: &BootstrapPlan) -> R<()> {
        Pg::bootstrap(self, plan).await
    }
    async fn post_bootstrap(&self, script: Option<&[String]>) -> R<()> {
        Pg::post_bootstrap(self, script).await
    }
    async fn abandon_bootstrap(&self) -> R<()> {
        Pg::abandon_bootstrap(self).await
    }
    async fn create_replica(&self, plan: &ClonePlan) -> R<()> {
        Pg::create_replica(self, plan).await
    }
    async fn reinit(&self, plan: &ClonePlan) -> R<()> {
        Pg::reinit(self, plan).await
    }
    async fn start_primary(&self) -> R<()> {
        Pg::start_primary(self).await
    }
    async fn start_replica(&self, upstream: Option<&Upstream>) -> R<()> {
        Pg::start_replica(self, upstream).await
    }
    async fn stop(&self, mode: StopMode) -> R<()> {
        Pg::stop(self, mode).await
    }
    async fn kill(&self) -> R<()> {
        Pg::kill(self).await
    }
    async fn reload(&self) -> R<()> {
        Pg::reload(self).await
    }
    async fn follow(&self, upstream: &Upstream) -> R<()> {
        Pg::follow(self, upstream).await
    }
    async fn promote(&self, newest_known: u32, cluster_history: &[HistoryEntry]) -> R<()> {
        Pg::promote(self, newest_known, cluster_history).await
    }
    async fn rewind(&self, source: &Upstream) -> R<()> {
        Pg::rewind(self, source).await
    }
    async fn ensure_slots(&self, names: &[String]) -> R<()> {
        Pg::ensure_slots(self, names).await
    }
    async fn list_slots(&self) -> R<Vec<LocalSlot>> {
        Pg::list_slots(self).await
    }
    async fn apply_slot(&self, action: &SlotAction) -> R<()> {
        Pg::apply_slot(self, action).await
    }
    async fn read_primary_slots(
        &self,
        host: &str,
        port: u16,
        names: &[String],
    ) -> R<Vec<SlotCopy>> {
        Pg::read_primary_slots(self, host, port, names).await
    }
    fn install_slots(&self, slots: &[SlotCopy]) -> R<()> {
        Pg::install_slots(self, slots)
    }
    async fn parameter_catalog(&self) -> R<Option<GucCatalog>> {
        Pg::parameter_catalog(self).await.map(Some)
    }
    async fn read_dynamic_cache(&self) -> R<Option<serde_json::Value>> {
        Pg::read_dynamic_cache(self).await
    }
    async fn write_dynamic_cache(&self, config: &serde_json::Value) -> R<bool> {
        Pg::write_dynamic_cache(self, config).await
    }
}
