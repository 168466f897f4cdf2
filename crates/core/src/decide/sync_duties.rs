//! What synchronous replication and failsafe mode add to the leader's duties and to a
//! promotion.

use super::Ctx;
use crate::action::Action;
use crate::cluster::Cluster;
use crate::lsn::Lsn;
use crate::sync::{key_naming_nobody, plan, ssn_for_key, PlanInput, SyncStep};

/// The next step toward the synchronous standbys the leader wants (at most one per loop),
/// or, with synchronous mode off, the way back to asynchronous replication: the key first
/// (nobody electable from it), then `synchronous_standby_names`.
pub(super) fn leader_sync(
    ctx: &Ctx,
    cluster: &Cluster,
    primary_lsn: Lsn,
) -> Option<(Action, String)> {
    let me = ctx.me();
    // Unknown (the query failed): change nothing rather than guess.
    let rep = ctx.obs.replication.as_ref()?;
    let settings = ctx.dynamic.sync;
    if !settings.enabled() {
        // Any key that could still elect someone (mine, or a former leader's) is emptied.
        let stale = cluster.sync.as_ref().is_some_and(|k| {
            !k.sync_standby.is_empty() || k.leader.as_deref().is_some_and(|l| l != me)
        });
        if stale {
            return Some((
                Action::WriteSync {
                    value: key_naming_nobody(me),
                },
                "synchronous_mode is off: emptying the sync key".into(),
            ));
        }
        if rep.managed {
            return Some((
                Action::SetSyncStandbys { ssn: None },
                "synchronous_mode is off: synchronous_standby_names back to the configured value"
                    .into(),
            ));
        }
        return None;
    }
    let input = PlanInput {
        me,
        settings,
        cluster,
        ssn: &rep.ssn,
        ssn_lsn: rep.ssn_lsn,
        rows: &rep.rows,
        primary_lsn,
        synchronous_commit: &rep.synchronous_commit,
    };
    let (step, why) = plan(&input)?;
    let action = match step {
        SyncStep::WriteKey(value) => Action::WriteSync { value },
        SyncStep::SetSsn(ssn) => Action::SetSyncStandbys { ssn: Some(ssn) },
    };
    Some((action, why))
}

/// Before a replica promotes itself in synchronous mode: a sync key that makes nobody else
/// electable (the old one named the standbys of the former leader), then the setting a
/// new primary starts with: in strict mode commits wait until a standby is confirmed.
pub(super) fn prepromote(ctx: &Ctx) -> Vec<Action> {
    let settings = ctx.dynamic.sync;
    if !settings.enabled() {
        return Vec::new();
    }
    let nobody = key_naming_nobody(ctx.me());
    let ssn = ssn_for_key(&nobody, settings.strict, settings.mode);
    vec![
        Action::WriteSync { value: nobody },
        Action::SetSyncStandbys { ssn: Some(ssn) },
    ]
}

/// Before the key holder starts its stopped primary in synchronous mode: wait for exactly
/// the standbys the key names, so the start never acknowledges a commit they lack.
pub(super) fn before_start_primary(ctx: &Ctx, cluster: &Cluster) -> Option<Action> {
    let settings = ctx.dynamic.sync;
    if !settings.enabled() {
        return None;
    }
    let mine = cluster
        .sync
        .clone()
        .filter(|k| k.leader.as_deref() == Some(ctx.me()))
        .unwrap_or_else(|| key_naming_nobody(ctx.me()));
    let ssn = ssn_for_key(&mine, settings.strict, settings.mode);
    Some(Action::SetSyncStandbys { ssn: Some(ssn) })
}

/// Failsafe mode: `/failsafe` lists every member the leader knows, itself included.
pub(super) fn failsafe_key(ctx: &Ctx, cluster: &Cluster) -> Option<Action> {
    if !ctx.dynamic.failsafe_mode {
        return None;
    }
    let members: std::collections::BTreeMap<String, String> = cluster
        .members
        .iter()
        .filter_map(|(n, e)| e.value().map(|v| (n.clone(), v.api_url.clone())))
        .collect();
    (cluster.failsafe.as_ref() != Some(&members)).then_some(Action::WriteFailsafe { members })
}
