//! Executing the slot plan once per loop: list the local slots, ask
//! [`pgkeel_core::slots::plan`] what to do, do it, and on the leader publish the positions
//! (`/status.slots`) and the retained member slots (`/status.retain_slots`).

use std::collections::BTreeMap;

use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::DynamicConfig;
use pgkeel_core::dcs_values::StatusValue;
use pgkeel_core::observation::Running;
use pgkeel_core::slots::{self, Retention, SlotAction, SlotView, SlotsConfig};
use pgkeel_dcs::Dcs;
use pgkeel_pg::Postgres;

use crate::act::{Actor, Memory};
use crate::env::Env;

/// What the runtime keeps between loops about slots.
#[derive(Debug, Default)]
pub(crate) struct SlotState {
    retention: Retention,
    /// What this leader last computed for `/status` (`slots`, `retain_slots`): a
    /// `WriteStatus` carries it.
    pub status: Option<(BTreeMap<String, u64>, Vec<String>)>,
    /// The problems last logged, so that each is said once while it lasts.
    said: Vec<String>,
    /// When each logical slot was last copied here: a copy that did not make the slot
    /// appear is not tried again (with its restart) before [`COPY_RETRY`].
    copied_at: BTreeMap<String, std::time::Instant>,
    /// The WAL each local slot holds back, as of the last list (for `/metrics`).
    pub retained: Vec<pgkeel_api::SlotRetained>,
}

/// How long after a copy of logical slots (a restart of this replica) the next may come.
const COPY_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Patroni's `copy_logical_slots`: the permanent logical slots this replica lacks are read
/// from the primary (their state files), PostgreSQL is stopped, the files installed, and
/// PostgreSQL started again as the leader's replica. The copies are advanced from `/status`
/// positions from then on.
async fn copy_logical<E: Env>(
    actor: &Actor<'_, E>,
    memory: &mut Memory,
    cluster: &Cluster,
    use_slots: bool,
    names: &[String],
) {
    let now = crate::clock::now();
    memory
        .slots
        .copied_at
        .retain(|_, at| now.saturating_duration_since(*at) < COPY_RETRY);
    let names: Vec<String> = names
        .iter()
        .filter(|n| !memory.slots.copied_at.contains_key(*n))
        .cloned()
        .collect();
    if names.is_empty() {
        return;
    }
    let names = &names[..];
    let me = actor.cfg.name.as_str();
    let Some(upstream) = pgkeel_core::admin::restart::leader_upstream(Some(cluster), me, use_slots)
    else {
        return;
    };
    let copies = match actor
        .pg
        .read_primary_slots(&upstream.host, upstream.port, names)
        .await
    {
        Ok(c) if c.is_empty() => return,
        Ok(c) => c,
        Err(e) => {
            tracing::error!("copying logical slots {names:?} from the primary: {e:#}");
            return;
        }
    };
    for c in &copies {
        memory.slots.copied_at.insert(c.name.clone(), now);
    }
    tracing::info!(
        "copying logical slots {:?} from the primary: restarting PostgreSQL",
        copies.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
    );
    if let Err(e) = actor.pg.stop(pgkeel_core::StopMode::Fast).await {
        tracing::error!("copying logical slots: stopping PostgreSQL failed: {e:#}");
        return;
    }
    if let Err(e) = actor.pg.install_slots(&copies) {
        tracing::error!("copying logical slots: {e:#}");
    }
    if let Err(e) = actor.pg.start_replica(Some(&upstream)).await {
        tracing::error!("copying logical slots: starting PostgreSQL again failed: {e:#}");
    }
}

impl SlotState {
    /// `/status` for a leader at `optime`: its own slot name at that position too, as
    /// Patroni publishes it.
    pub fn status_value(&self, me: &str, optime: u64) -> StatusValue {
        let known = self.status.is_some();
        let (mut slots, retain) = self.status.clone().unwrap_or_default();
        if known {
            slots.insert(pgkeel_core::action::slot_name(me), optime);
        }
        StatusValue {
            optime,
            slots: slots.into_iter().map(|(k, v)| (k, v.into())).collect(),
            retain_slots: retain,
        }
    }
}

/// Per-loop inputs.
pub(crate) struct Round<'a> {
    pub cluster: &'a Cluster,
    pub running: &'a Running,
    pub dynamic: &'a DynamicConfig,
    /// I hold the leader key with a live lease.
    pub holds_key: bool,
    /// `cluster` is this loop's DCS read (not the last one kept through an outage).
    pub dcs_ok: bool,
    /// `/status` may be written here if what replicas read from it changed (otherwise the
    /// next `WriteStatus` of a decision carries it).
    pub may_write_status: bool,
    /// In failsafe mode with the DCS away: the leader's positions from its `/failsafe` POST.
    pub failsafe_slots: Option<BTreeMap<String, u64>>,
}

/// One loop's slot work. Never fails the loop: each failed step is logged and tried again
/// on the next one.
pub(crate) async fn sync<E: Env>(actor: &Actor<'_, E>, memory: &mut Memory, round: Round<'_>) {
    let me = actor.cfg.name.as_str();
    let primary = !round.running.in_recovery;
    // With the DCS away (failsafe mode) leadership is not what the last read said: what
    // the leader keeps for `/status` waits for the DCS to come back.
    if round.dcs_ok && !(round.holds_key && primary) {
        memory.slots.retention.reset();
        memory.slots.status = None;
    }
    // Without `/config` nothing says which slots are permanent: touch nothing (Patroni).
    if round.cluster.config.is_none() {
        return;
    }
    let cfg = SlotsConfig::from_dynamic(&round.dynamic.json);
    let mut view = SlotView::from_cluster(
        round.cluster,
        me,
        &actor.cfg.tags,
        primary,
        round.dynamic.use_slots,
    );
    view.replay_lsn = round.running.replayed.map(|l| l.0);
    if let Some(s) = &round.failsafe_slots {
        view.status_slots = s.clone();
    }
    let local = match actor.pg.list_slots().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("replication slots not synchronized: {e:#}");
            return;
        }
    };
    let wal = round.running.wal_position.0;
    memory.slots.retained = local
        .iter()
        .filter_map(|s| {
            Some(pgkeel_api::SlotRetained {
                name: s.name.clone(),
                kind: s.kind().to_string(),
                bytes: wal.saturating_sub(s.restart_lsn?),
            })
        })
        .collect();
    let plan = slots::plan(&view, &cfg, &local);
    if plan.problems != memory.slots.said {
        for p in &plan.problems {
            tracing::error!("replication slots: {p}");
        }
        memory.slots.said = plan.problems.clone();
    }
    let mut changed = false;
    let mut copy = Vec::new();
    for action in &plan.actions {
        if let SlotAction::CopyLogical { name, .. } = action {
            copy.push(name.clone());
            continue;
        }
        match actor.pg.apply_slot(action).await {
            Ok(()) => changed = true,
            Err(e) => tracing::error!("{e:#}"),
        }
    }
    if !copy.is_empty() && round.dcs_ok {
        copy_logical(actor, memory, round.cluster, round.dynamic.use_slots, &copy).await;
    }
    if !primary {
        return;
    }
    let local = if changed {
        actor.pg.list_slots().await.unwrap_or(local)
    } else {
        local
    };
    let mut status = slots::status_slots(&view, &cfg, &plan.wanted, &local, wal);
    actor.shared.set_failsafe_slots(status.clone());
    if !(round.dcs_ok && round.holds_key) {
        return;
    }
    let stored_retain = round
        .cluster
        .status
        .as_ref()
        .map(|s| s.retain_slots.clone())
        .unwrap_or_default();
    let retain = memory.slots.retention.update(
        me,
        &view.members,
        &status,
        &stored_retain,
        &cfg,
        crate::clock::now(),
    );
    status.remove(&pgkeel_core::action::slot_name(me));
    memory.slots.status = Some((status, retain));
    // Written when what the replicas read from it changed; a moving optime alone is the
    // decision's `WriteStatus`.
    let stored = round.cluster.status.as_ref();
    let mine = pgkeel_core::action::slot_name(me);
    let stored_slots: BTreeMap<String, u64> = stored
        .map(|s| {
            s.slots
                .iter()
                .filter(|(k, _)| **k != mine)
                .filter_map(|(k, v)| Some((k.clone(), slots::lsn_value(v)?)))
                .collect()
        })
        .unwrap_or_default();
    // My own name is left out of both comparisons: its position is the optime, and every
    // `WriteStatus` carries it in `retain_slots` (it matters only once I have left).
    let others = |names: &[String]| -> Vec<String> {
        names.iter().filter(|n| **n != mine).cloned().collect()
    };
    let (want_slots, want_retain) = memory.slots.status.as_ref().expect("just set");
    let stored_retain = others(stored.map_or(&[][..], |s| &s.retain_slots[..]));
    if round.may_write_status
        && (stored_slots != *want_slots || stored_retain != others(want_retain))
    {
        let value = memory.slots.status_value(me, wal);
        if let Err(e) = actor.dcs.write_status(me, &value).await {
            tracing::warn!("could not write /status: {e}");
        }
    }
}
