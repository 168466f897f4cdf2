//! Answers to the operator's requests from the REST API. Requests that only touch the DCS
//! (switchover, failover, config) run in their own task so the loop keeps going (the
//! switchover itself is carried out by the loops of the leader and the candidate);
//! requests that act on the local PostgreSQL (restart, reinit, reload) run inside the
//! loop, between two decisions, so they never race an action of the loop.

use std::time::Duration;

use pgkeel_api::{AdminReply, AdminRequest};
use pgkeel_core::admin::merge_patch;
use pgkeel_core::admin::restart::{
    cancel_restart, leader_upstream, restart_plan, schedule_restart, scheduled_restart_step,
    ScheduledRestartStep,
};
use pgkeel_core::admin::switchover::{
    plan_switchover, AfterWrite, SwitchoverPlan, SwitchoverRequest,
};
use pgkeel_core::callbacks::Cause;
use pgkeel_core::config::check_dynamic_with;
use pgkeel_core::guc::GucCatalog;
use pgkeel_dcs::{Dcs, DcsError};
use pgkeel_pg::Postgres;

use crate::env::Env;

/// Whether the request acts on the local server (and so must run inside the loop).
pub(crate) fn is_local(req: &AdminRequest) -> bool {
    matches!(
        req,
        AdminRequest::Restart { .. }
            | AdminRequest::CancelRestart
            | AdminRequest::Reload
            | AdminRequest::Reinitialize { .. }
    )
}

/// What a DCS-only request needs from the loop.
pub(crate) struct DcsCtx {
    pub loop_wait: Duration,
    pub max_lag: u64,
    /// The local server's pg_settings, to check parameters before they are written.
    pub catalog: Option<std::sync::Arc<GucCatalog>>,
}

/// DCS-only requests: switchover, failover, cancelling one, and config changes.
pub(crate) async fn handle_dcs(dcs: &impl Dcs, req: AdminRequest, ctx: DcsCtx) -> AdminReply {
    let DcsCtx {
        loop_wait,
        max_lag,
        catalog,
    } = ctx;
    let catalog = catalog.as_deref();
    match req {
        AdminRequest::Switchover {
            leader,
            candidate,
            scheduled_at,
            failover,
        } => {
            let req = SwitchoverRequest {
                leader: leader.as_deref(),
                candidate: candidate.as_deref(),
                scheduled_at: scheduled_at.as_deref(),
                failover,
            };
            switchover(dcs, req, loop_wait, max_lag).await
        }
        AdminRequest::CancelSwitchover => cancel_switchover(dcs).await,
        AdminRequest::PatchConfig(patch) => patch_config(dcs, patch, catalog).await,
        AdminRequest::PutConfig(config) => put_config(dcs, config, catalog).await,
        other => AdminReply::text(500, format!("{other:?} is not a DCS request")),
    }
}

/// Carries out core's [`plan_switchover`] on a fresh read of the DCS: writes the
/// `failover` key, then answers at once or polls for the outcome.
async fn switchover(
    dcs: &impl Dcs,
    req: SwitchoverRequest<'_>,
    loop_wait: Duration,
    max_lag: u64,
) -> AdminReply {
    let cluster = match dcs.load().await {
        Ok(c) => c,
        Err(e) => return AdminReply::text(503, format!("DCS is not accessible: {e}")),
    };
    let (key, then) = match plan_switchover(&cluster, &req, max_lag, loop_wait) {
        SwitchoverPlan::Refuse { status, text, why } => {
            tracing::warn!("{} refused: {why}", req.action());
            return AdminReply::text(status, text);
        }
        SwitchoverPlan::Write { key, then } => (key, then),
    };
    if let Err(e) = dcs.write_failover(&key).await {
        return AdminReply::text(503, format!("failed to write failover key: {e}"));
    }
    let poll = match then {
        AfterWrite::Reply { status, text } => return AdminReply::text(status, text),
        AfterWrite::Poll(poll) => poll,
    };
    let deadline = crate::clock::now() + poll.window;
    while crate::clock::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(c) = dcs.load().await {
            if let Some((code, text)) = poll.outcome(&c) {
                return AdminReply::text(code, text);
            }
        }
    }
    let (code, text) = poll.timed_out();
    AdminReply::text(code, text)
}

async fn cancel_switchover(dcs: &impl Dcs) -> AdminReply {
    let cluster = match dcs.load().await {
        Ok(c) => c,
        Err(e) => return AdminReply::text(503, format!("DCS is not accessible: {e}")),
    };
    if cluster
        .failover
        .as_ref()
        .is_none_or(|f| f.scheduled_at.is_none())
    {
        return AdminReply::text(404, "no switchover is scheduled");
    }
    match dcs.delete_failover(cluster.failover_revision).await {
        Ok(true) => AdminReply::text(200, "scheduled switchover deleted"),
        Ok(false) => AdminReply::text(409, "scheduled switchover was not deleted"),
        Err(e) => AdminReply::text(503, format!("DCS is not accessible: {e}")),
    }
}

async fn patch_config(
    dcs: &impl Dcs,
    patch: serde_json::Value,
    catalog: Option<&GucCatalog>,
) -> AdminReply {
    let cluster = match dcs.load().await {
        Ok(c) => c,
        Err(e) => return AdminReply::text(503, format!("DCS is not accessible: {e}")),
    };
    let Some(current) = cluster.config.as_ref() else {
        return AdminReply::text(503, "Config key is empty");
    };
    let new = merge_patch(current, &patch);
    if let Err(why) = check_dynamic_with(&new, catalog) {
        return AdminReply::text(400, format!("invalid configuration: {why}"));
    }
    match dcs.write_config(&new, cluster.config_revision).await {
        Ok(true) => AdminReply::json(200, new),
        Ok(false) => AdminReply::text(409, "Conflict"),
        Err(e) => config_not_written(e, 503),
    }
}

/// A config write etcd did not take: its refusal of a value too large is the request's
/// fault (413, saying so); anything else is Patroni's "DCS is not accessible" with `code`.
fn config_not_written(e: DcsError, code: u16) -> AdminReply {
    match e {
        DcsError::TooLarge(_) => {
            AdminReply::text(413, format!("the configuration was not written: {e}"))
        }
        e => AdminReply::text(code, format!("DCS is not accessible: {e}")),
    }
}

async fn put_config(
    dcs: &impl Dcs,
    config: serde_json::Value,
    catalog: Option<&GucCatalog>,
) -> AdminReply {
    if let Err(why) = check_dynamic_with(&config, catalog) {
        return AdminReply::text(400, format!("invalid configuration: {why}"));
    }
    match dcs.put_config(&config).await {
        Ok(()) => AdminReply::json(200, config),
        Err(e) => config_not_written(e, 502),
    }
}

/// What a local request needs from the loop.
pub(crate) struct Local<'a, E: Env> {
    /// The config in force (a reload may have changed the replica methods).
    pub cfg: &'a pgkeel_core::Config,
    pub actor: &'a crate::act::Actor<'a, E>,
    pub observer: &'a crate::observe::Observer<'a, E>,
    pub pg: &'a E::Pg,
    pub use_slots: bool,
    /// Publishes the node's state to the API while a long request runs ("creating replica").
    pub publish: &'a dyn Fn(&crate::act::Memory),
}

/// Restart, reload, reinit: planned by core from a fresh observation, carried out by the
/// actor. `reply` is sent as soon as the answer is known (a reinit answers before it
/// copies the data, as Patroni's does).
pub(crate) async fn handle_local<E: Env>(
    l: &Local<'_, E>,
    req: AdminRequest,
    reply: tokio::sync::oneshot::Sender<AdminReply>,
    memory: &mut crate::act::Memory,
) {
    use pgkeel_core::admin::reinit_plan;
    let obs = l.observer.observe(memory, false, false, None).await;
    let me = l.actor.cfg.name.as_str();
    let holds = crate::run::holds_key(me, &obs);
    let cluster = obs.dcs.as_ref().ok();
    let mut publish = |m: &crate::act::Memory| (l.publish)(m);
    match req {
        AdminRequest::Reload => {
            let r = match l.pg.reload().await {
                Ok(()) => AdminReply::text(202, "reload scheduled"),
                Err(e) => AdminReply::text(503, format!("reload failed: {e:#}")),
            };
            let _ = reply.send(r);
        }
        AdminRequest::Restart {
            schedule,
            role,
            restart_pending,
            ..
        } => {
            let r = match schedule {
                Some(at) => match schedule_restart(memory.scheduled_restart.is_some()) {
                    Err((code, text)) => AdminReply::text(code, text),
                    Ok((code, text)) => {
                        tracing::info!("restart scheduled at {at} through the REST API");
                        memory.scheduled_restart = Some(crate::act::ScheduledRestart {
                            at,
                            role,
                            restart_pending,
                        });
                        AdminReply::text(code, text)
                    }
                },
                None => restart_now(l, &obs, holds, role.as_deref(), restart_pending, memory).await,
            };
            let _ = reply.send(r);
        }
        AdminRequest::CancelRestart => {
            let (code, text) = cancel_restart(memory.scheduled_restart.take().is_some());
            let r = AdminReply::text(code, text);
            let _ = reply.send(r);
        }
        AdminRequest::Reinitialize { from_leader, .. } => {
            let Some(c) = cluster else {
                let _ = reply.send(AdminReply::text(503, "DCS is not accessible"));
                return;
            };
            match reinit_plan(c, l.cfg, holds, from_leader, l.use_slots) {
                Err((code, text)) => {
                    let _ = reply.send(AdminReply::text(code, text));
                }
                Ok(actions) => {
                    let _ = reply.send(AdminReply::text(200, "reinitialize started"));
                    tracing::info!("reinitialize requested through the REST API");
                    if let Err(crate::act::Halt::Failed(e)) = l
                        .actor
                        .run(Cause::Loop, &actions, cluster, memory, &mut publish)
                        .await
                    {
                        tracing::error!("reinitialize failed: {e:#}");
                    }
                }
            }
        }
        other => {
            let _ = reply.send(AdminReply::text(
                500,
                format!("{other:?} is not a local request"),
            ));
        }
    }
}

/// Restarts PostgreSQL now in its current role, if the filters allow (core's
/// `restart_plan`), and says how it went in Patroni's words.
async fn restart_now<E: Env>(
    l: &Local<'_, E>,
    obs: &pgkeel_core::Observation,
    holds: bool,
    role: Option<&str>,
    restart_pending: bool,
    memory: &mut crate::act::Memory,
) -> AdminReply {
    let me = l.actor.cfg.name.as_str();
    let cluster = obs.dcs.as_ref().ok();
    let leader_upstream = leader_upstream(cluster, me, l.use_slots);
    let pending = !l.pg.details().await.pending_restart.is_empty();
    let plan = restart_plan(
        &obs.pg,
        holds,
        role,
        restart_pending,
        pending,
        leader_upstream,
    );
    match plan {
        Err((code, text)) => AdminReply::text(code, text),
        Ok(actions) => {
            tracing::info!("restarting PostgreSQL on request");
            let mut publish = |m: &crate::act::Memory| (l.publish)(m);
            match l
                .actor
                .run(Cause::Restart, &actions, cluster, memory, &mut publish)
                .await
            {
                Ok(()) => AdminReply::text(200, "restarted successfully"),
                Err(_) => AdminReply::text(503, "restart failed"),
            }
        }
    }
}

/// Runs a scheduled restart whose time has come (core's `scheduled_restart_step`), and
/// forgets it whatever the outcome; `restart_plan` applies its filters to this node.
pub(crate) async fn scheduled_restart_if_due<E: Env>(
    l: &Local<'_, E>,
    memory: &mut crate::act::Memory,
) {
    let Some(s) = memory.scheduled_restart.as_ref() else {
        return;
    };
    let now = l.observer.env.wall_clock();
    if scheduled_restart_step(&s.at, now) == ScheduledRestartStep::Wait {
        return;
    }
    let Some(s) = memory.scheduled_restart.take() else {
        return;
    };
    let obs = l.observer.observe(memory, false, false, None).await;
    let me = l.actor.cfg.name.as_str();
    let holds = crate::run::holds_key(me, &obs);
    let r = restart_now(l, &obs, holds, s.role.as_deref(), s.restart_pending, memory).await;
    tracing::info!("scheduled restart at {}: {} {:?}", s.at, r.status, r.body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_too_large_for_etcd_is_413_not_dcs_is_not_accessible() {
        let r = config_not_written(
            DcsError::TooLarge("put_config: request is too large".into()),
            502,
        );
        assert_eq!(r.status, 413);
        assert!(
            matches!(&r.body, pgkeel_api::AdminBody::Text(t) if t.contains("too large") && !t.contains("not accessible")),
            "{:?}",
            r.body
        );
        let r = config_not_written(DcsError::Unavailable("timeout".into()), 502);
        assert_eq!(r.status, 502);
    }
}
