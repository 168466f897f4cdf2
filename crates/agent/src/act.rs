//! Executing a decision: each action is one adapter call. A step that fails, or a
//! compare-and-swap that loses, ends the sequence (the next loop decides again).

use pgkeel_core::action::{Action, StopMode};
use pgkeel_core::callbacks::{self, Cause};
use pgkeel_core::cluster::Cluster;
use pgkeel_core::Config;
use pgkeel_dcs::Dcs;
use pgkeel_pg::Postgres;

use crate::env::Env;

use crate::shared::Shared;

/// A restart waiting for its time (`POST /restart` with `schedule`).
#[derive(Debug, Clone)]
pub(crate) struct ScheduledRestart {
    /// ISO 8601 with a time zone, as the API passed it.
    pub at: String,
    pub role: Option<String>,
    pub restart_pending: bool,
}

impl ScheduledRestart {
    /// Patroni's `scheduled_restart` value in the member key and the status JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"schedule": self.at});
        if let Some(r) = &self.role {
            v["role"] = r.clone().into();
        }
        if self.restart_pending {
            v["restart_pending"] = true.into();
        }
        v
    }
}

/// What the runtime remembers between loops about its own actions.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// How the last pg_rewind failed (core decides whether the next rejoin re-clones).
    pub rewind_failed: Option<pgkeel_core::observation::RewindFailure>,
    /// A restart waiting for its time.
    pub scheduled_restart: Option<ScheduledRestart>,
    /// Since when starting the primary has kept failing.
    pub primary_start_failing_since: Option<std::time::Instant>,
    /// The last start of the primary failed and left no postmaster.
    pub primary_start_exited: bool,
    /// This node stopped its primary and released the key for a switchover, and has not
    /// started PostgreSQL since (core's `Observation::released_for_switchover`).
    pub released_for_switchover: bool,
    /// The last `pre_promote` failed and the key has not been released since.
    pub pre_promote_failed: bool,
    /// When the key was released after a failed `pre_promote`.
    pub pre_promote_released_at: Option<std::time::Instant>,
    /// The `failover` key's revision and since when it has been due here.
    pub failover_due: Option<(i64, std::time::Instant)>,
    /// Since when PostgreSQL has answered no probe (the start of the first unanswered one).
    pub pg_silent_since: Option<std::time::Instant>,
    /// The last kill could not prove PostgreSQL's processes gone.
    pub kill_failed: bool,
    /// PostgreSQL last answered as a primary, or was made one since.
    pub pg_was_primary: bool,
    /// The role PostgreSQL last ran as, kept while it is stopped (the callbacks' rule: a
    /// former primary that starts as a replica was demoted).
    pub ran_as_primary: bool,
    /// This node is bootstrapping the cluster (core's `Observation::bootstrapping`).
    pub bootstrapping: Option<pgkeel_core::observation::Bootstrapping>,
    /// Patroni's state string while a long action runs ("creating replica", ...).
    pub activity: Option<&'static str>,
    /// The `synchronous_standby_names` value last seen on the primary, and the WAL position
    /// read when it was first seen (the "settled" mark of `pgkeel_core::sync::plan`).
    pub ssn_seen: Option<(String, pgkeel_core::Lsn)>,
    /// Slot work between loops (retention of departed members' slots, `/status` slots).
    pub slots: crate::slots::SlotState,
}

pub(crate) struct Actor<'a, E: Env> {
    pub env: &'a std::sync::Arc<E>,
    pub cfg: &'a Config,
    pub dcs: &'a E::Dcs,
    pub pg: &'a E::Pg,
    pub shared: &'a Shared,
    /// `postgresql.callbacks` in force (a reload may change them).
    pub callbacks: &'a std::sync::RwLock<pgkeel_core::config::Callbacks>,
}

/// Why a sequence stopped early.
pub(crate) enum Halt {
    /// A race was lost: normal, nothing to log loudly.
    Lost(&'static str),
    Failed(anyhow::Error),
    /// The agent must end (Patroni's `PatroniFatalException`): a failed bootstrap.
    Fatal(String),
}

impl<E: Env> Actor<'_, E> {
    /// Runs `actions` in order; `publish` is called before each long step so the API shows
    /// what the node is doing.
    pub async fn run(
        &self,
        cause: Cause,
        actions: &[Action],
        cluster: Option<&Cluster>,
        memory: &mut Memory,
        publish: &mut dyn FnMut(&Memory),
    ) -> Result<(), Halt> {
        let was_primary = memory.ran_as_primary;
        let switching_over = cluster.is_some_and(|c| c.failover.is_some());
        for action in actions {
            memory.activity = activity_of(action);
            if memory.activity.is_some() {
                publish(memory);
            }
            let result = self.one(action, cluster, memory).await;
            memory.activity = None;
            result?;
        }
        if let Some((event, role)) = callbacks::after(actions, cause, was_primary, switching_over) {
            self.callback(event, role);
        }
        for a in actions {
            match a {
                Action::Promote | Action::StartPrimary => memory.ran_as_primary = true,
                Action::StartReplica { .. } => memory.ran_as_primary = false,
                Action::ReleaseLeader if switching_over && was_primary => {
                    memory.released_for_switchover = true;
                }
                _ => {}
            }
            if matches!(a, Action::StartPrimary | Action::StartReplica { .. }) {
                memory.released_for_switchover = false;
            }
        }
        Ok(())
    }

    /// `pre_promote` and `before_stop` in force.
    fn hooks(&self) -> pgkeel_core::config::Callbacks {
        let c = self.callbacks.read().unwrap_or_else(|e| e.into_inner());
        pgkeel_core::config::Callbacks {
            commands: Default::default(),
            pre_promote: c.pre_promote.clone(),
            before_stop: c.before_stop.clone(),
        }
    }

    /// Runs the configured callback for `event`, if any, without waiting.
    pub fn callback(&self, event: &str, role: &str) {
        let callbacks = self.callbacks.read().unwrap_or_else(|e| e.into_inner());
        if let Some(argv) = callbacks.commands.get(event) {
            self.env.run_callback(argv, event, role, &self.cfg.scope);
        }
    }

    async fn one(
        &self,
        action: &Action,
        cluster: Option<&Cluster>,
        memory: &mut Memory,
    ) -> Result<(), Halt> {
        let lease = self.shared.lease().id;
        let me = self.cfg.name.as_str();
        match action {
            Action::ClaimInitialize => won(
                self.dcs.claim_initialize().await,
                "another node won the bootstrap race",
            )?,
            Action::WriteInitialize { sysid } => ok(self.dcs.write_initialize(sysid).await)?,
            Action::WriteConfig { config } => {
                ok(self.dcs.write_config_if_absent(config).await.map(|_| ()))?
            }
            Action::AcquireLeader => {
                need_lease(lease)?;
                won(
                    self.dcs.acquire_leader(me, lease).await,
                    "another node took the leader key",
                )?
            }
            Action::ReclaimLeader => {
                need_lease(lease)?;
                won(
                    self.dcs.reclaim_leader(me, lease).await,
                    "the leader key no longer names me",
                )?
            }
            Action::ReleaseLeader => {
                ok(self.dcs.release_leader(me).await.map(|_| ()))?;
                if memory.pre_promote_failed {
                    memory.pre_promote_failed = false;
                    memory.pre_promote_released_at = Some(crate::clock::now());
                    // Patroni's words.
                    tracing::warn!(
                        "Releasing the leader key voluntarily because the pre-promote script failed"
                    );
                }
            }
            Action::GiveUpLeader => {
                ok(self.dcs.release_leader(me).await.map(|_| ()))?;
                memory.primary_start_exited = false;
                tracing::info!("removed leader key after trying and failing to start postgres");
            }
            Action::AbandonLease => {
                if self.shared.abandoned() != lease {
                    tracing::error!(
                        "no longer renewing my lease {lease:x}: the leader key expires with it"
                    );
                }
                self.shared.abandon(lease);
            }
            Action::WriteStatus { optime } => {
                let status = memory.slots.status_value(me, optime.0);
                won(
                    self.dcs.write_status(me, &status).await,
                    "the leader key no longer names me",
                )?
            }
            Action::WriteSync { value } => won(
                self.dcs.write_sync(me, value).await,
                "the leader key no longer names me",
            )?,
            Action::WriteFailsafe { members } => won(
                self.dcs.write_failsafe(me, members).await,
                "the leader key no longer names me",
            )?,
            Action::SetSyncStandbys { ssn } => {
                let text = ssn.as_ref().map(ToString::to_string);
                self.pg
                    .set_sync_standbys(text.as_deref())
                    .await
                    .map_err(Halt::Failed)?
            }
            Action::DeleteFailover { revision } => won(
                self.dcs.delete_failover(*revision).await,
                "the switchover request changed meanwhile",
            )?,
            Action::WriteHistory => {
                let local = self.pg.timeline_history().await.map_err(Halt::Failed)?;
                let known = cluster.and_then(|c| c.history.clone()).unwrap_or_default();
                let history = pgkeel_core::history::merge_history(local, &known, me);
                won(
                    self.dcs.write_history(me, &history).await,
                    "the leader key no longer names me",
                )?
            }
            Action::Bootstrap { plan } => {
                use pgkeel_core::observation::Bootstrapping;
                self.shared.set_may_be_primary(true);
                memory.pg_was_primary = true;
                // From here until post_bootstrap, core sees the bootstrap in progress (and
                // abandons it when this fails).
                memory.bootstrapping = Some(Bootstrapping::Started);
                if let Err(e) = self.pg.bootstrap(plan).await {
                    memory.bootstrapping = Some(Bootstrapping::Failed);
                    return Err(Halt::Failed(e.context("bootstrap failed")));
                }
            }
            Action::PostBootstrap { script } => {
                if let Err(e) = self.pg.post_bootstrap(script.as_deref()).await {
                    memory.bootstrapping = Some(pgkeel_core::observation::Bootstrapping::Failed);
                    return Err(Halt::Failed(e.context("post_bootstrap failed")));
                }
                memory.bootstrapping = None;
                tracing::info!("initialized a new cluster");
            }
            Action::AbandonBootstrap => {
                // Patroni's cancel_initialization: each step is tried whatever the one
                // before it did, then the agent ends.
                if let Err(e) = self.dcs.cancel_initialize().await {
                    tracing::error!("could not remove the initialize key: {e}");
                }
                if let Err(e) = self.pg.abandon_bootstrap().await {
                    tracing::error!("{e:#}");
                }
                memory.bootstrapping = None;
                memory.pg_was_primary = false;
                self.shared.set_may_be_primary(false);
                return Err(Halt::Fatal("Failed to bootstrap cluster".into()));
            }
            Action::Clone { plan } => self.pg.create_replica(plan).await.map_err(Halt::Failed)?,
            Action::StartPrimary => {
                let lease = self.lease_still_alive()?;
                self.shared.set_may_be_primary(true);
                memory.pg_was_primary = true;
                if let Err(e) = self.pg.start_primary().await {
                    memory
                        .primary_start_failing_since
                        .get_or_insert_with(crate::clock::now);
                    // A start still under way (pg_ctl's wait ran out) is given
                    // primary_start_timeout; a postmaster that exited will not come up.
                    memory.primary_start_exited =
                        e.downcast_ref::<pgkeel_pg::PostmasterExited>().is_some();
                    return Err(Halt::Failed(e));
                }
                memory.primary_start_failing_since = None;
                memory.primary_start_exited = false;
                self.same_lease_after(lease)?;
            }
            Action::StartReplica { upstream } => self
                .pg
                .start_replica(upstream.as_ref())
                .await
                .map_err(Halt::Failed)?,
            Action::Follow { upstream } => self.pg.follow(upstream).await.map_err(Halt::Failed)?,
            Action::Promote => {
                let lease = self.lease_still_alive()?;
                let pre_promote = self.hooks().pre_promote;
                if let Some(argv) = pre_promote {
                    // Run to its end before anything is promoted (Patroni's fencing hook);
                    // the lease keeper renews the key meanwhile.
                    let stats = self.env.callback_stats().unwrap_or_default();
                    let ok = crate::callbacks::run_hook("pre_promote", &argv, &stats).await;
                    memory.pre_promote_failed = !ok;
                    if !ok {
                        return Err(Halt::Failed(anyhow::anyhow!(
                            "promotion cancelled: the pre_promote script failed"
                        )));
                    }
                    // The script may have run for long: the key must still be ours.
                    self.lease_still_alive()?;
                    self.same_lease_after(lease)?;
                }
                self.shared.set_may_be_primary(true);
                // Returns after the post-promotion CHECKPOINT: only then is this node
                // published as a primary, which is what rewinding peers wait for.
                let history = cluster.and_then(|c| c.history.clone()).unwrap_or_default();
                let newest = cluster.map_or(0, Cluster::newest_known_timeline);
                memory.pg_was_primary = true;
                self.pg
                    .promote(newest, &history)
                    .await
                    .map_err(Halt::Failed)?;
                self.same_lease_after(lease)?;
            }
            Action::Kill => {
                if let Err(e) = self.pg.kill().await {
                    memory.kill_failed = true;
                    return Err(Halt::Failed(e.context("PostgreSQL could not be killed")));
                }
                memory.kill_failed = false;
                memory.pg_was_primary = false;
                self.shared.set_may_be_primary(false);
            }
            Action::Stop { mode } => {
                // A stop that fences a primary which may have lost its key waits for no
                // script: every second of delay is a second of possible split writes.
                let fencing = *mode == StopMode::Immediate && self.shared.may_be_primary();
                if let Some(argv) = self.hooks().before_stop.filter(|_| !fencing) {
                    let stats = self.env.callback_stats().unwrap_or_default();
                    crate::callbacks::run_hook("before_stop", &argv, &stats).await;
                }
                self.pg.stop(*mode).await.map_err(Halt::Failed)?;
                self.shared.set_may_be_primary(false);
                if *mode == StopMode::Immediate {
                    tracing::warn!("PostgreSQL stopped immediately");
                }
            }
            Action::Rewind { source } => {
                memory.rewind_failed = None;
                if let Err(e) = self.pg.rewind(source).await {
                    let failure =
                        pgkeel_core::observation::RewindFailure::classify(&format!("{e:#}"));
                    memory.rewind_failed = Some(failure);
                    return Err(Halt::Failed(
                        e.context(format!("pg_rewind failed ({failure:?})")),
                    ));
                }
            }
            Action::Reinit { plan } => {
                self.pg.reinit(plan).await.map_err(Halt::Failed)?;
                memory.rewind_failed = None;
            }
            Action::EnsureSlots { names } => {
                self.pg.ensure_slots(names).await.map_err(Halt::Failed)?
            }
        }
        Ok(())
    }
}

impl<E: Env> Actor<'_, E> {
    /// Becoming writable needs a lease that is alive now, not only when the loop decided.
    fn lease_still_alive(&self) -> Result<i64, Halt> {
        let lease = self.shared.lease();
        if !pgkeel_core::decide::lease_alive(&lease, crate::clock::now()) {
            return Err(Halt::Lost(
                "my lease may have lapsed since the decision; not becoming writable",
            ));
        }
        Ok(lease.id)
    }

    /// The lease keeper replaced the lease while the server was becoming a primary (etcd
    /// said the old one expired, and the leader key with it): the new lease must not keep
    /// it writable, so it is stopped at once (found by the simulation, seed 172).
    fn same_lease_after(&self, id: i64) -> Result<(), Halt> {
        if self.shared.lease().id == id {
            return Ok(());
        }
        self.env.fence_now();
        Err(Halt::Lost(
            "my lease was replaced while becoming a primary; stopped PostgreSQL",
        ))
    }
}

fn need_lease(lease: i64) -> Result<(), Halt> {
    if lease == 0 {
        return Err(Halt::Lost("no etcd lease to bind the leader key to"));
    }
    Ok(())
}

fn ok<E: std::fmt::Display>(r: Result<(), E>) -> Result<(), Halt> {
    r.map_err(|e| Halt::Failed(anyhow::anyhow!("{e}")))
}

fn won<E: std::fmt::Display>(r: Result<bool, E>, lost: &'static str) -> Result<(), Halt> {
    match r {
        Ok(true) => Ok(()),
        Ok(false) => Err(Halt::Lost(lost)),
        Err(e) => Err(Halt::Failed(anyhow::anyhow!("{e}"))),
    }
}

fn activity_of(action: &Action) -> Option<&'static str> {
    match action {
        Action::Bootstrap {
            plan: pgkeel_core::action::BootstrapPlan::Initdb,
        } => Some("initializing new cluster"),
        Action::Bootstrap { .. } => Some("running custom bootstrap script"),
        Action::Clone { .. } | Action::Reinit { .. } => Some("creating replica"),
        Action::Rewind { .. } => Some("rewinding"),
        Action::StartPrimary | Action::StartReplica { .. } => Some("starting"),
        Action::Promote => Some("promoting"),
        Action::Stop { .. } | Action::Kill => Some("stopping"),
        _ => None,
    }
}
