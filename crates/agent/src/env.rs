//! What the runtime needs from the world beyond the DCS and PostgreSQL: peers' REST APIs,
//! the fence's way of stopping a primary, and the wall clock. Production uses
//! [`RealEnv`] (HTTP, signals to the postmaster, the system clock); the simulator supplies
//! its own, so the same loop runs under virtual time and a simulated network.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgkeel_core::Config;
use pgkeel_dcs::{Dcs, DcsError, Etcd};
use pgkeel_pg::signal::PostmasterCache;
use pgkeel_pg::{Pg, PgSettings, Postgres};
use serde_json::Value;

use crate::shared::Shared;

pub trait Env: Send + Sync + 'static {
    type Dcs: Dcs;
    type Pg: Postgres;

    fn connect_dcs(
        &self,
        cfg: &Config,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Dcs, DcsError>> + Send;
    fn postgres(&self, settings: PgSettings) -> Self::Pg;
    /// Starts the fence watching `shared`; it stops when the returned guard is dropped.
    fn start_fence(&self, shared: Arc<Shared>) -> std::io::Result<Box<dyn Send + Sync>>;
    /// Starts the lease keeper where nothing else the agent does can delay a renewal, and
    /// returns what keeps it running; `None`: run it on the loop's own runtime (the
    /// simulator, whose virtual time is one runtime's).
    fn spawn_keeper(
        self: &Arc<Self>,
        _cfg: &Config,
        _keeper: crate::lease::Keeper,
    ) -> std::io::Result<Option<Box<dyn Send + Sync>>> {
        Ok(None)
    }
    /// Stops a primary at once (etcd said the lease is gone).
    fn fence_now(&self);
    /// A peer's `GET /patroni` body; `None` when it does not answer within `timeout`.
    fn peer_status(
        &self,
        api_url: &str,
        timeout: Duration,
    ) -> impl Future<Output = Option<Value>> + Send;
    /// `POST /failsafe` to a member.
    fn post_failsafe(
        &self,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> impl Future<Output = pgkeel_core::observation::FailsafeAnswer> + Send;
    fn wall_clock(&self) -> SystemTime;
    /// Runs a callback command with `ACTION ROLE SCOPE` appended, without waiting (the
    /// simulator runs none).
    fn run_callback(&self, _argv: &[String], _action: &str, _role: &str, _scope: &str) {}
    /// Where callback runs are counted (the simulator runs none).
    fn callback_stats(&self) -> Option<std::sync::Arc<pgkeel_api::CallbackStats>> {
        None
    }
    /// A cheap check that the postmaster the loop saw still runs, for the REST API (the
    /// simulator has none).
    fn postmaster_alive(&self) -> Option<pgkeel_api::PostmasterAlive> {
        None
    }
    /// A fresh status query of `pg` for `GET /patroni` (the simulator has none).
    fn live_status(&self, _pg: &Self::Pg) -> Option<pgkeel_api::LiveStatus> {
        None
    }
    /// On a reload: the DCS connection's certificate files read again, and what to tell the
    /// operator about them (`None`: nothing, they hold what the agent runs with).
    fn recheck_dcs_files(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}

/// How long the REST API's fresh status query may take (it answers from the last loop's
/// observation otherwise).
const LIVE_STATUS_TIMEOUT: Duration = Duration::from_millis(900);

/// The real world: etcd over gRPC, PostgreSQL through `pg_ctl` and SQL, peers over HTTP.
pub struct RealEnv {
    pub data_dir: PathBuf,
    /// The postmaster as last seen, shared by the adapter (which looks) and the fence (which
    /// signals it without reading the data directory).
    pub postmaster: Arc<PostmasterCache>,
    pub http: reqwest::Client,
    /// How etcd is reached, its certificate files read at start (a reconnection uses the
    /// same).
    pub etcd: pgkeel_dcs::Access,
    /// The section `etcd` was made from: a reload reads its files again to compare.
    pub etcd_config: pgkeel_core::config::Etcd,
    /// `restapi.authentication`, sent with `POST /failsafe`.
    pub auth: Option<(String, Option<String>)>,
    pub callbacks: crate::callbacks::CallbackRunner,
}

impl Env for RealEnv {
    type Dcs = Etcd;
    type Pg = Pg;

    async fn connect_dcs(&self, cfg: &Config, timeout: Duration) -> Result<Etcd, DcsError> {
        Etcd::connect(&self.etcd, cfg.dcs_prefix(), timeout).await
    }

    fn postgres(&self, settings: PgSettings) -> Pg {
        Pg::with_postmaster_cache(settings, self.postmaster.clone())
    }

    fn start_fence(&self, shared: Arc<Shared>) -> std::io::Result<Box<dyn Send + Sync>> {
        Ok(Box::new(crate::fence::Fence::spawn(
            shared,
            &self.data_dir,
            self.postmaster.clone(),
        )?))
    }

    /// An OS thread with a runtime and an etcd connection of its own: file reads, SQL,
    /// user lookups or process spawns that block the loop's runtime cannot delay it.
    fn spawn_keeper(
        self: &Arc<Self>,
        cfg: &Config,
        keeper: crate::lease::Keeper,
    ) -> std::io::Result<Option<Box<dyn Send + Sync>>> {
        let env = self.clone();
        let cfg = cfg.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("pgkeel-lease".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Some(dcs) = keeper.connect(&*env, &cfg).await else {
                        return;
                    };
                    crate::lease::keep(dcs, env, keeper).await;
                })
            })?;
        // Dropping the handle does not join: the thread ends on the keeper's cancellation,
        // within one keepalive.
        Ok(Some(Box::new(thread)))
    }

    fn fence_now(&self) {
        pgkeel_pg::signal::stop_postmaster(self.postmaster.alive(), None);
    }

    /// `None` as well when the answer comes from this very process (its own address).
    async fn peer_status(&self, api_url: &str, timeout: Duration) -> Option<Value> {
        let resp = self.http.get(api_url).timeout(timeout).send().await.ok()?;
        let mine = resp
            .headers()
            .get(pgkeel_api::INSTANCE_HEADER)
            .is_some_and(|v| v.as_bytes() == pgkeel_api::instance_id().as_bytes());
        if mine {
            return None;
        }
        resp.json().await.ok()
    }

    async fn post_failsafe(
        &self,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> pgkeel_core::observation::FailsafeAnswer {
        use pgkeel_core::observation::FailsafeAnswer;
        let mut req = self.http.post(url).json(body).timeout(timeout);
        if let Some((user, pass)) = &self.auth {
            req = req.basic_auth(user, pass.as_ref());
        }
        match req.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => FailsafeAnswer::Confirmed,
            Ok(_) => FailsafeAnswer::Refused,
            Err(e) if connection_refused(&e) => FailsafeAnswer::Refused,
            Err(_) => FailsafeAnswer::NoAnswer,
        }
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }
    fn postmaster_alive(&self) -> Option<pgkeel_api::PostmasterAlive> {
        let cache = self.postmaster.clone();
        Some(pgkeel_api::PostmasterAlive(Arc::new(move || {
            cache.alive().is_some()
        })))
    }
    fn live_status(&self, pg: &Pg) -> Option<pgkeel_api::LiveStatus> {
        let pg = pg.clone();
        Some(pgkeel_api::LiveStatus(Arc::new(move || {
            let pg = pg.clone();
            Box::pin(async move { pg.live_running(LIVE_STATUS_TIMEOUT).await })
        })))
    }
    fn run_callback(&self, argv: &[String], action: &str, role: &str, scope: &str) {
        self.callbacks.fire(argv, action, role, scope);
    }
    fn callback_stats(&self) -> Option<std::sync::Arc<pgkeel_api::CallbackStats>> {
        Some(self.callbacks.stats.clone())
    }
    async fn recheck_dcs_files(&self) -> Option<String> {
        let etcd = self.etcd_config.clone();
        etcd.tls.as_ref()?;
        let read = tokio::task::spawn_blocking(move || pgkeel_dcs::Access::from_config(&etcd));
        let section = self.etcd_config.section;
        let files = format!("{section}.cacert, {section}.cert, {section}.key");
        match tokio::time::timeout(crate::reload::READ_TIMEOUT, read).await {
            Err(_) => Some(format!(
                "{files} could not be read within {:?}",
                crate::reload::READ_TIMEOUT
            )),
            Ok(Err(e)) => Some(format!("{files}: not read again: {e}")),
            Ok(Ok(Err(e))) => Some(format!(
                "{e}; the agent goes on with the certificates it read at start, but would not \
                 start again with these files"
            )),
            Ok(Ok(Ok(now))) if now.tls != self.etcd.tls => Some(format!(
                "{files} hold new certificates; the agent goes on with the ones it read at \
                 start (a reconnection to etcd too): restart it to use them"
            )),
            Ok(Ok(Ok(_))) => None,
        }
    }
}

/// Nothing listens at the address (ECONNREFUSED somewhere in the error's chain): the
/// member's host answered for it.
fn connection_refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = s.source();
    }
    false
}
