//! The loop: observe, decide, act, publish; then wait for the next tick, a DCS watch event,
//! or shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgkeel_api::{AdminReceiver, AdminRequest, FailsafeInbox, SharedSnapshot};
use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::{
    adopt_dynamic, drop_refused_parameters, effective_dynamic, ConfigProblem, DynamicConfig,
    StoredConfig,
};
use pgkeel_core::decide::{
    forced_exit, lease_alive, may_be_writable, moves_to_new_ttl, shutdown_exit, ShutdownExit,
};
use pgkeel_core::guc::GucCatalog;
use pgkeel_core::observation::{Observation, PgView};
use pgkeel_core::pace::next_round;
use pgkeel_core::repeats::{Repeats, REPEAT_PERIOD};
use pgkeel_core::{decide, Config};
use pgkeel_dcs::Dcs;
use pgkeel_pg::Postgres;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::act::{Actor, Halt, Memory};
use crate::admin;
use crate::clock;
use crate::env::{Env, RealEnv};
use crate::lease;
use crate::member::{self, SnapshotInput};
use crate::observe::Observer;
use crate::settings::pg_settings;
use crate::shared::Shared;

/// How the agent is asked to stop: `graceful` (the first SIGTERM/SIGINT) stops PostgreSQL
/// (a leader releases its key after the shutdown checkpoint) and revokes the lease, within
/// `pgkeel_core::decide::SHUTDOWN_BOUND`; `at_once` (a second signal) exits now, safely
/// (see `pgkeel_core::decide::shutdown_exit`).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub graceful: CancellationToken,
    pub at_once: CancellationToken,
    /// SIGHUP: re-read the config file (see [`crate::reload`]).
    pub reload: Arc<Notify>,
}

/// Runs the agent until `stop` says so; `config_path` is the file a reload reads again.
pub async fn run(
    cfg: Config,
    config_path: Option<std::path::PathBuf>,
    shutdown: Stop,
) -> anyhow::Result<()> {
    // Every certificate and key is read here, before anything is touched.
    let tls = crate::tls::load(&cfg)?;
    let env = Arc::new(RealEnv {
        data_dir: cfg.postgresql.data_dir.clone(),
        postmaster: Arc::default(),
        http: tls.peers,
        etcd: tls.etcd,
        etcd_config: cfg.etcd.clone(),
        auth: cfg
            .restapi
            .authentication
            .as_ref()
            .map(|a| (a.username.clone(), a.password.clone())),
        callbacks: Default::default(),
    });
    let snap: SharedSnapshot =
        pgkeel_api::shared(pgkeel_api::NodeSnapshot::new(&cfg.name, &cfg.scope));
    let (admin_tx, admin_rx) = pgkeel_api::admin_channel();
    let auth = cfg
        .restapi
        .authentication
        .as_ref()
        .map(|c| (c.username.clone(), c.password.clone().unwrap_or_default()));
    // Leaders' POST /failsafe calls, for the observation while the DCS is unreachable.
    let failsafe_inbox = Arc::new(FailsafeInbox::new());
    let api_stop = CancellationToken::new();
    // Fails on a busy API port before anything is touched.
    let api = crate::api::start(
        cfg.restapi.listen,
        crate::api::ApiParts {
            snap: snap.clone(),
            admin: admin_tx,
            auth,
            failsafe: failsafe_inbox.clone(),
            https: tls.https,
            access: cfg.restapi.access.clone(),
        },
        api_stop.clone(),
    )?;
    let io = Io {
        snap,
        admin: admin_rx,
        failsafe_inbox,
        config_path,
    };
    let result = run_with(env, cfg, io, shutdown).await;
    api_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || api.join()).await;
    result
}

/// What the loop shares with the REST API (or with the simulator standing in for it).
pub struct Io {
    /// The node state the API serves.
    pub snap: SharedSnapshot,
    /// Operator requests (switchover, restart, ...).
    pub admin: AdminReceiver,
    /// Leaders' accepted `POST /failsafe` calls.
    pub failsafe_inbox: Arc<FailsafeInbox>,
    /// The config file, read again on SIGHUP and `POST /reload` (`None`: nothing to read).
    pub config_path: Option<std::path::PathBuf>,
}

/// The agent over any [`Env`]: production passes [`RealEnv`], the simulator its in-memory
/// world. Helper tasks live in a `JoinSet` owned by this future, so dropping it (an agent
/// crash, in the simulator) ends them all, as a killed process would.
pub async fn run_with<E: Env>(env: Arc<E>, cfg: Config, io: Io, stop: Stop) -> anyhow::Result<()> {
    let shutdown = stop.graceful.clone();
    let Io {
        snap,
        admin: mut admin_rx,
        failsafe_inbox,
        config_path,
    } = io;
    let mut tasks_set = JoinSet::new();
    let local = effective_dynamic(&cfg, None);
    let shared = Arc::new(Shared::new(local.ttl));
    let pg_local = env.postgres(pg_settings(&cfg, &local));
    let pg_at_start = pg_local.observe().await;
    shared.set_may_be_primary(may_be_writable(&pg_at_start));

    // The fence must watch a running primary from the moment the agent starts, unless a
    // lease can be had at once (an agent restart next to a healthy primary must not stop
    // it): the first connection attempt decides which comes first.
    let mut fence = None;
    let dcs = loop {
        match env.connect_dcs(&cfg, local.retry_timeout).await {
            Ok(dcs) => break dcs,
            // Patroni exits on a refused user; pgkeel keeps trying (a running primary stays
            // fenced meanwhile) so that fixing the user in etcd is enough.
            Err(e @ pgkeel_dcs::DcsError::Refused(_)) => tracing::error!(
                "{e}: check {section}.username and {section}.password (retrying every second)",
                section = cfg.etcd.section
            ),
            Err(e) => tracing::warn!("cannot reach etcd yet: {e}"),
        }
        if fence.is_none() {
            fence = Some(env.start_fence(shared.clone())?);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    // The dynamic config in force comes from the DCS when the cluster already has one.
    let first = dcs.load().await.ok();
    if let Some(c) = &first {
        refuse_duplicate_name(&*env, c, &cfg).await?;
        let has_data = !matches!(pg_at_start, PgView::NoData);
        if let Some(problem) =
            pgkeel_core::startup::v2_keyspace_problem(cfg.etcd.section, c, has_data)
        {
            tracing::error!(target: crate::CRITICAL, "{problem}");
            return Err(anyhow::anyhow!(problem));
        }
    }
    let stored = first
        .as_ref()
        .map_or(StoredConfig::Absent, |c| c.stored_config());
    // The last valid `/config` this node used, as Patroni keeps it in the data directory:
    // the settings to keep when `/config` is unreadable, or gone with a wiped DCS.
    let cached = cached_dynamic(&pg_local).await;
    let adopted = adopt_dynamic(&cfg, stored, cached.as_ref(), None);
    let mut config_problem = ConfigProblem::default();
    say_config_problem(&mut config_problem, adopted.problem);
    let mut dynamic = adopted.settings;
    // Whether `dynamic` is a valid `/config` (rather than this node's stand-in for one).
    let mut dynamic_valid =
        cached.is_some() || matches!(stored, StoredConfig::Value(_)) && !config_problem.is_set();
    let mut cache_written = cached.map(|d| d.json);
    // The local server's pg_settings, read again after each start of it.
    let mut catalog: Option<Arc<GucCatalog>> = None;
    let ttl = dynamic.ttl;
    shared.set_lease(pgkeel_core::observation::LeaseView {
        id: 0,
        ttl,
        renewed_at: None,
    });
    lease::grant(&dcs, &shared, ttl).await;
    let _fence = match fence {
        Some(f) => f,
        None => env.start_fence(shared.clone())?,
    };
    let pg = env.postgres(pg_settings(&cfg, &dynamic));

    let wake = Arc::new(Notify::new());
    let tasks = CancellationToken::new();
    let _watcher = AbortOnDrop(dcs.spawn_watcher(wake.clone()));
    let keeper = || lease::Keeper {
        shared: shared.clone(),
        wake: wake.clone(),
        stop: tasks.clone(),
        connect_timeout: dynamic.retry_timeout,
    };
    let _keeper_thread = env.spawn_keeper(&cfg, keeper())?;
    if _keeper_thread.is_none() {
        tasks_set.spawn(lease::keep(dcs.clone(), env.clone(), keeper()));
    }
    tasks_set.spawn(crate::failsafe::keep(
        shared.clone(),
        env.clone(),
        Arc::new(cfg.clone()),
        tasks.clone(),
    ));
    // Peers answer /patroni from memory; a peer slower than this is treated as unknown.
    let peer_timeout = (ttl / 4).clamp(Duration::from_millis(300), Duration::from_secs(2));
    let observer = Observer {
        env: &env,
        dcs: &dcs,
        pg: &pg,
        shared: &shared,
        me: &cfg.name,
        peer_timeout,
    };
    let callbacks = std::sync::RwLock::new(cfg.postgresql.callbacks.clone());
    let actor: Actor<'_, E> = Actor {
        env: &env,
        cfg: &cfg,
        dcs: &dcs,
        pg: &pg,
        shared: &shared,
        callbacks: &callbacks,
    };
    let postmaster_alive = env.postmaster_alive();
    let callback_stats = env.callback_stats();
    let live_status = env.live_status(&pg);
    let mut memory = Memory::default();
    // The config in force: the start's, with what a reload may change taken on (tags,
    // local parameters and pg_hba). Names, addresses and paths stay those of `cfg`.
    let mut live = cfg.clone();
    let mut reload_due = false;
    let mut last_cluster: Option<Cluster> = first;
    let mut dcs_last_seen: Option<SystemTime> = None;
    let mut last_reason = String::new();
    let mut published_member = None;
    // A configuration change whose files could not be written (a stalled or failing disk)
    // is tried again every loop until it lands.
    let mut config_unapplied = false;
    // The local server as the end of the last loop found it, when it did not answer.
    let mut silent_pg = None;
    let mut dcs_warnings = Repeats::new(REPEAT_PERIOD);
    // Rounds in a row that followed at once (`pgkeel_core::pace`).
    let mut streak = 0;
    let mut shutdown_since = None;
    // Why the agent must end, when something fatal happened (a failed bootstrap).
    let mut fatal: Option<String> = None;

    let rounds = async {
        loop {
            if std::mem::take(&mut reload_due) {
                if let Some(path) = &config_path {
                    crate::reload::reread(path, &mut live).await;
                    // Patroni makes its etcd client once: new TLS settings or files wait for
                    // a restart, and the operator is told so.
                    if let Some(note) = env.recheck_dcs_files().await {
                        tracing::warn!("reload: {note}");
                    }
                    *callbacks.write().unwrap_or_else(|e| e.into_inner()) =
                        live.postgresql.callbacks.clone();
                }
                // As Patroni's reload: PostgreSQL reloads its files too.
                match pg.reload().await {
                    Ok(()) => {
                        let role = if memory.ran_as_primary {
                            "primary"
                        } else {
                            "replica"
                        };
                        actor.callback("on_reload", role);
                    }
                    Err(e) => tracing::warn!("reload: PostgreSQL was not reloaded: {e:#}"),
                }
            }
            let shutting_down = shutdown.is_cancelled();
            let started = clock::now();
            if shutting_down && shutdown_since.is_none() {
                shutdown_since = Some(started);
            }
            let mut obs = observer
                .observe(
                    &mut memory,
                    shutting_down,
                    shared.paused(),
                    silent_pg.take(),
                )
                .await;
            if matches!(&obs.pg, PgView::Running(_)) {
                if catalog.is_none() {
                    match pg.parameter_catalog().await {
                        Ok(c) => catalog = c.map(Arc::new),
                        Err(e) => tracing::debug!("pg_settings not read yet: {e:#}"),
                    }
                }
            } else {
                catalog = None;
            }
            // The cluster-wide settings in force from this read on (see `adopt_dynamic`).
            let wanted = match &obs.dcs {
                Ok(c) => {
                    let last_good = dynamic_valid.then_some(&dynamic);
                    let adopted =
                        adopt_dynamic(&live, c.stored_config(), last_good, catalog.as_deref());
                    if matches!(c.stored_config(), StoredConfig::Value(_)) {
                        dynamic_valid |= adopted.problem.is_none();
                    }
                    let mut problem = adopted.problem;
                    for line in refused_parameters(&live, &adopted.settings, catalog.as_deref()) {
                        problem = Some(match problem {
                            Some(p) => format!("{p}; {line}"),
                            None => line,
                        });
                    }
                    say_config_problem(&mut config_problem, problem);
                    adopted.settings
                }
                Err(_) => dynamic.clone(),
            };
            obs.config_in_force = Some(wanted.clone());
            // Only while the server answers: a stalled disk must not turn every loop into a
            // failed write (and a warning).
            if dynamic_valid
                && matches!(obs.pg, PgView::Running(_))
                && !pg.was_silent()
                && cache_written.as_ref() != Some(&wanted.json)
            {
                match pg.write_dynamic_cache(&wanted.json).await {
                    Ok(true) => cache_written = Some(wanted.json.clone()),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("patroni.dynamic.json not written: {e:#}"),
                }
            }
            crate::failsafe::note(&mut obs, &shared, &cfg);
            obs.failsafe_contact = failsafe_inbox
                .last()
                .map(|c| (c.leader.clone(), c.hold_until(dynamic.ttl)));
            shared.set_paused(obs.paused);
            if obs.dcs.is_ok() {
                shared.set_holds_key(holds_key(&cfg.name, &obs));
            }
            if let Ok(c) = &obs.dcs {
                last_cluster = Some(c.clone());
                dcs_last_seen = Some(env.wall_clock());
                // A bad value gives the same warning every loop until it is fixed: logged
                // once, then counted (each already quotes values in bounded form).
                for line in dcs_warnings.round(&c.warnings, clock::now()) {
                    tracing::warn!("DCS: {line}");
                }
            }
            track_writable(&shared, &obs.pg);
            if matches!(&obs.pg, PgView::Running(r) if !r.in_recovery) {
                memory.primary_start_failing_since = None;
            }
            // The cluster-wide configuration reaches this node within one loop: parameters and
            // pg_hba are rewritten and reloaded (a parameter that needs a restart then shows as
            // pending_restart), loop_wait applies to the next wait, and a new ttl moves the
            // agent to a new lease (see `lease::change_ttl`).
            if obs.dcs.is_ok() {
                if wanted.timings_adjusted != dynamic.timings_adjusted {
                    for note in &wanted.timings_adjusted {
                        tracing::warn!("{note}");
                    }
                }
                if (wanted.ttl, wanted.loop_wait, wanted.retry_timeout)
                    != (dynamic.ttl, dynamic.loop_wait, dynamic.retry_timeout)
                {
                    tracing::info!(
                        "timings in force: ttl {:?}, loop_wait {:?}, retry_timeout {:?}",
                        wanted.ttl,
                        wanted.loop_wait,
                        wanted.retry_timeout
                    );
                }
                // Each DCS call is bounded by the retry_timeout in force, as Patroni's
                // client is: with the DCS gone, a loop then waits that long, not longer.
                dcs.set_op_timeout(wanted.retry_timeout);
                if moves_to_new_ttl(&shared.lease(), wanted.ttl, shutting_down) {
                    lease::change_ttl(
                        &dcs,
                        &shared,
                        &cfg.name,
                        wanted.ttl,
                        holds_key(&cfg.name, &obs),
                    )
                    .await;
                    published_member = None; // re-publish under the new lease
                }
                let mut target = pg_settings(&live, &wanted);
                if let Some(c) = catalog.as_deref() {
                    // Said above, with the settings' other problems.
                    drop_refused_parameters(&mut target.parameters, &live, c);
                }
                if pg.set_config(target.parameters, target.pg_hba, target.pg_ident) {
                    tracing::info!("the dynamic configuration changed; rewriting postgresql.conf, pg_hba.conf and pg_ident.conf and reloading");
                    config_unapplied = true;
                }
                if config_unapplied {
                    match pg.apply().await {
                        Ok(()) => config_unapplied = false,
                        Err(e) => tracing::error!(
                        "applying the dynamic configuration failed (trying again next loop): {e:#}"
                    ),
                    }
                }
                dynamic = wanted;
            }
            if let Some(exit) = shutdown_since.and_then(|since| {
                shutdown_exit(
                    &obs,
                    &cfg.name,
                    since,
                    clock::now(),
                    stop.at_once.is_cancelled(),
                )
            }) {
                break exit;
            }
            let decision = decide(&obs, &live, clock::now());
            if decision.reason != last_reason || decision.actions.iter().any(|a| !a.is_routine()) {
                tracing::info!("{}", decision.reason);
                last_reason = decision.reason.clone();
            }

            let details = pg.details().await;
            let holds = holds_key(&cfg.name, &obs) && lease_alive(&obs.lease, clock::now());
            let publish_seen = |memory: &Memory, obs: &Observation| {
                pgkeel_api::publish(
                    &snap,
                    member::snapshot(SnapshotInput {
                        cfg: &live,
                        dynamic: &dynamic,
                        obs,
                        memory,
                        details: &details,
                        last_cluster: last_cluster.as_ref(),
                        dcs_last_seen,
                        loop_started: started,
                        holds_leader_key: holds,
                        config_problem: config_problem.get(),
                        catalog: catalog.as_ref(),
                        postmaster_alive: postmaster_alive.clone(),
                        callback_stats: callback_stats.clone(),
                        live_status: live_status.clone(),
                    }),
                )
            };
            let publish_now = |memory: &Memory| publish_seen(memory, &obs);
            publish_now(&memory);

            let mut publish = |m: &Memory| publish_now(m);
            let outcome = actor
                .run(
                    pgkeel_core::callbacks::Cause::Loop,
                    &decision.actions,
                    obs.dcs.as_ref().ok(),
                    &mut memory,
                    &mut publish,
                )
                .await;
            let acted = outcome.is_ok() && !decision.actions.is_empty();
            // The slot step writes `/status` itself only when this loop's decision did not
            // and every DCS call of it succeeded: one more call to a DCS that stopped
            // answering would delay the next loop (and failsafe) by a retry_timeout.
            let slot_status_write = outcome.is_ok()
                && !decision
                    .actions
                    .iter()
                    .any(|a| matches!(a, pgkeel_core::Action::WriteStatus { .. }));
            let changed_something =
                outcome.is_ok() && decision.actions.iter().any(|a| !a.is_routine());
            match outcome {
                Ok(()) => {}
                Err(Halt::Lost(why)) => tracing::info!("{why}"),
                Err(Halt::Failed(e)) => tracing::error!("{e:#}"),
                Err(Halt::Fatal(why)) => {
                    tracing::error!("{why}");
                    fatal = Some(why.clone());
                    break ShutdownExit {
                        revoke_lease: true,
                        reason: why,
                    };
                }
            }
            if shutting_down {
                // Loop until PostgreSQL is observed stopped (a failed stop is retried) or the
                // shutdown's bound passes: the lease keeper and the fence stay on duty meanwhile.
                let pace = next_round(changed_something, false, streak, dynamic.loop_wait);
                streak = pace.streak;
                if !pace.wait.is_zero() {
                    tokio::time::sleep(pace.wait).await;
                }
                continue;
            }

            // Publish this node's member key (bound to the lease) when it changed.
            // Looked at again only when the actions may have changed it: after a failed step
            // (a server that does not answer, typically) another probe would only wait again.
            let pg_now = if acted {
                observer.local_pg(&mut memory).await
            } else {
                obs.pg.clone()
            };
            track_writable(&shared, &pg_now);
            if acted && pg_now != obs.pg {
                // What the actions made of the server (started, promoted, stopped) is served
                // at once, not a loop later: Patroni's handlers ask PostgreSQL itself.
                let mut after = obs.clone();
                after.pg = pg_now.clone();
                publish_seen(&memory, &after);
            }
            let value = member::member_value(&live, &pg_now, &memory, &details, obs.paused);
            let silent_now = acted && matches!(pg_now, PgView::NoAnswer);
            let lease_id = shared.lease().id;
            let key = Some((value.clone(), lease_id));
            // Also when the key in the DCS is not what was published (deleted, corrupt, written
            // by hand, on another lease): it heals within one loop.
            let dcs_differs = obs
                .dcs
                .as_ref()
                .is_ok_and(|c| c.member_key_differs(&cfg.name, &value, lease_id));
            if lease_id != 0 && (published_member != key || dcs_differs) {
                match dcs.touch_member(&cfg.name, &value, lease_id).await {
                    Ok(()) => published_member = key,
                    Err(e) => tracing::warn!("could not publish my member key: {e}"),
                }
            }

            // Replication slots, as Patroni syncs them after each loop's HA step: not while
            // the server is silent. With the DCS away only in failsafe mode (Patroni's
            // `_sync_replication_slots(dcs_failed)`), from the last read, the replicas
            // advancing their slots to the positions of the leader's last `POST /failsafe`.
            let dcs_ok = obs.dcs.is_ok();
            let slot_cluster = match &obs.dcs {
                Ok(c) => Some(c),
                Err(_) if dynamic.failsafe_mode => last_cluster.as_ref(),
                Err(_) => None,
            };
            if let (PgView::Running(running), Some(cluster)) = (&pg_now, slot_cluster) {
                let failsafe_slots = if dcs_ok {
                    None
                } else {
                    failsafe_inbox
                        .last()
                        .filter(|c| clock::now() < c.hold_until(dynamic.ttl))
                        .and_then(|c| c.slots)
                };
                if !silent_now {
                    crate::slots::sync(
                        &actor,
                        &mut memory,
                        crate::slots::Round {
                            cluster,
                            running,
                            dynamic: &dynamic,
                            holds_key: holds,
                            dcs_ok,
                            may_write_status: slot_status_write,
                            failsafe_slots,
                        },
                    )
                    .await;
                }
            }

            // After a change (a promotion, a start), or when the server stopped answering after
            // this loop's actions, decide again at once; otherwise wait.
            let mut request = None;
            if silent_now {
                silent_pg = Some(pg_now.clone());
            }
            // A server that answered this loop's probe but then left a call unanswered (a stall
            // that began mid-loop) is probed again at once too: the hang bound counts from that
            // probe. Never a busy loop: that call waited out its deadline.
            let went_silent = !matches!(obs.pg, PgView::NoAnswer) && pg.was_silent();
            let pace = next_round(
                changed_something,
                silent_now || went_silent,
                streak,
                dynamic.loop_wait,
            );
            streak = pace.streak;
            if !pace.wait.is_zero() {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {}
                    r = admin_rx.recv() => request = r,
                    _ = wake.notified() => {}
                    _ = stop.reload.notified() => reload_due = true,
                    _ = tokio::time::sleep(pace.wait) => {}
                }
            }
            // With a file to read, `POST /reload` is a reload of the agent (Patroni's), which
            // answers at once and reloads PostgreSQL too, at the start of the next round.
            if config_path.is_some() && matches!(request, Some((AdminRequest::Reload, _))) {
                if let Some((_, reply)) = request.take() {
                    let _ = reply.send(pgkeel_api::AdminReply::text(202, "reload scheduled"));
                }
                reload_due = true;
            }
            let local = admin::Local {
                cfg: &live,
                actor: &actor,
                observer: &observer,
                pg: &pg,
                use_slots: dynamic.use_slots,
                publish: &publish_now,
            };
            if !obs.paused {
                admin::scheduled_restart_if_due(&local, &mut memory).await;
            }
            if let Some((req, reply)) = request {
                if admin::is_local(&req) {
                    admin::handle_local(&local, req, reply, &mut memory).await;
                } else {
                    let ctx = admin::DcsCtx {
                        loop_wait: dynamic.loop_wait,
                        max_lag: dynamic.maximum_lag_on_failover,
                        catalog: catalog.clone(),
                    };
                    let dcs = dcs.clone();
                    tasks_set.spawn(async move {
                        let _ = reply.send(admin::handle_dcs(&dcs, req, ctx).await);
                    });
                }
            }
        }
    };
    // A second signal ends the rounds wherever they are (a probe, a stop, a wait).
    let exit: ShutdownExit = tokio::select! {
        biased;
        _ = stop.at_once.cancelled() => forced_exit(shared.holds_key(), shared.may_be_primary(), shared.paused()),
        exit = rounds => exit,
    };
    tracing::info!("exiting: {}", exit.reason);
    let lease_id = shared.lease().id;
    tasks.cancel();
    // Revoking the lease deletes every key bound to it, the leader key included.
    if lease_id != 0 && exit.revoke_lease {
        if let Err(e) = dcs.revoke_lease(lease_id).await {
            tracing::warn!("could not revoke my lease: {e}");
        }
    }
    tasks_set.abort_all();
    tracing::info!("agent stopped");
    match fatal {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// Another live agent runs as this member: exit before anything is written (core's rule,
/// `pgkeel_core::startup`; Patroni's CRITICAL message).
async fn refuse_duplicate_name<E: Env>(env: &E, c: &Cluster, cfg: &Config) -> anyhow::Result<()> {
    let mine = cfg.restapi.api_url();
    let Some(url) = pgkeel_core::startup::api_to_ask(c, &cfg.name) else {
        return Ok(());
    };
    let answer = env.peer_status(url, Duration::from_secs(3)).await;
    let name = answer.as_ref().and_then(|v| v["patroni"]["name"].as_str());
    match pgkeel_core::startup::duplicate_name_problem(c, &cfg.name, &mine, name) {
        Some(problem) => {
            tracing::error!(target: crate::CRITICAL, "{problem}");
            Err(anyhow::anyhow!(problem))
        }
        None => Ok(()),
    }
}

/// The fence watches exactly the servers `decide` would fence.
fn track_writable(shared: &Shared, pg: &PgView) {
    shared.set_may_be_primary(may_be_writable(pg));
}

/// The DCS read of this loop shows the leader key naming me under my lease.
pub(crate) fn holds_key(me: &str, obs: &Observation) -> bool {
    obs.dcs.as_ref().is_ok_and(|c| c.held_by(me, obs.lease.id))
}

/// Ends the DCS watcher with the loop, however the loop ends (a plain `JoinHandle` would
/// leave it running after a crash of the loop's future in the simulator).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs a change of the `/config` problem (once, not every loop).
fn say_config_problem(state: &mut ConfigProblem, problem: Option<String>) {
    let was_set = state.is_set();
    match state.note(problem) {
        Some(line) if state.is_set() => tracing::error!("{line}"),
        Some(line) if was_set => tracing::info!("{line}"),
        _ => {}
    }
}

/// The parameters the local server would refuse among those `dynamic` and the local file
/// put in force, one line each (none without the server's pg_settings).
fn refused_parameters(
    cfg: &Config,
    dynamic: &DynamicConfig,
    catalog: Option<&GucCatalog>,
) -> Vec<String> {
    let Some(c) = catalog else {
        return Vec::new();
    };
    let mut parameters = pg_settings(cfg, dynamic).parameters;
    drop_refused_parameters(&mut parameters, cfg, c)
}

/// The valid dynamic config cached in the data directory (`patroni.dynamic.json`), if any.
async fn cached_dynamic(pg: &impl Postgres) -> Option<DynamicConfig> {
    match pg.read_dynamic_cache().await {
        Ok(Some(v)) => match pgkeel_core::config::check_dynamic(&v) {
            Ok(mut d) => {
                d.json = v;
                Some(d)
            }
            Err(why) => {
                tracing::warn!("patroni.dynamic.json is not a valid config, not used: {why}");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("patroni.dynamic.json not read: {e:#}");
            None
        }
    }
}
