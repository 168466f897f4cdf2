//! The leader's plan: which standbys it wants to wait for, and the next safe step from
//! what the `sync` key and `synchronous_standby_names` say now toward that.
//!
//! One step per call. Each step keeps [`electable_sets_overlap`] true for the commits
//! PostgreSQL may acknowledge from then on, and a step that lets more nodes be elected (adds
//! voters or lowers the quorum) waits until the standbys involved have flushed the WAL
//! written before `synchronous_standby_names` took its current value ("settled"), so commits
//! acknowledged under the previous value are covered too. Patroni keeps the same two orders:
//! a standby enters the key only once PostgreSQL waits for it and it caught up; it leaves the
//! key before PostgreSQL stops waiting for it.

use std::collections::BTreeSet;

use super::safety::electable_sets_overlap;
use super::ssn::{Ssn, SsnKind, STRICT_PLACEHOLDER};
use super::{SyncMode, SyncSettings};
use crate::cluster::Cluster;
use crate::dcs_values::SyncValue;
use crate::lsn::Lsn;

/// One row of `pg_stat_replication` on the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRow {
    pub application_name: String,
    /// `state = 'streaming'`.
    pub streaming: bool,
    /// `sync_state`: async, potential, sync, quorum.
    pub sync_state: String,
    /// `flush_lsn`: what the standby has made durable (what `synchronous_commit = on` waits for).
    pub flush: Lsn,
    /// `write_lsn` (what `remote_write` waits for) and `replay_lsn` (`remote_apply`).
    pub write: Lsn,
    pub replay: Lsn,
}

impl ReplicationRow {
    /// The position a commit waits for under `synchronous_commit` (Patroni ranks standbys
    /// and measures `maximum_lag_on_syncnode` by it): replay under `remote_apply`, write
    /// under `remote_write`, flush otherwise.
    pub fn acknowledged(&self, synchronous_commit: &str) -> Lsn {
        match synchronous_commit {
            "remote_apply" => self.replay,
            "remote_write" => self.write,
            _ => self.flush,
        }
    }
}

/// What the leader knows this loop.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub me: &'a str,
    pub settings: SyncSettings,
    pub cluster: &'a Cluster,
    /// `synchronous_standby_names` as the primary has it now.
    pub ssn: &'a Ssn,
    /// The primary's WAL position when `synchronous_standby_names` took its current value
    /// (`None`: not known yet).
    pub ssn_lsn: Option<Lsn>,
    pub rows: &'a [ReplicationRow],
    pub primary_lsn: Lsn,
    /// `synchronous_commit` on the primary: which of a row's positions counts.
    pub synchronous_commit: &'a str,
}

/// A step for the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStep {
    WriteKey(SyncValue),
    SetSsn(Ssn),
}

/// The next step, with a sentence saying why, or `None` when both are where they should be
/// (or must wait for standbys to catch up).
pub fn plan(input: &PlanInput) -> Option<(SyncStep, String)> {
    let me = input.me;
    let mine = input
        .cluster
        .sync
        .as_ref()
        .filter(|k| k.leader.as_deref() == Some(me));
    let Some(key) = mine else {
        // A key from a former leader (or none): replace it by one nobody can be elected
        // from but me, the most cautious start.
        return Some((
            SyncStep::WriteKey(super::key_naming_nobody(me)),
            format!("taking over the sync key as leader {me}"),
        ));
    };
    let eligible = eligible(input);
    let (want_key, want_ssn) = target(input, key, &eligible);
    let cur_ssn = input.ssn;
    if key.sync_standby == want_key.sync_standby
        && key.quorum == want_key.quorum
        && cur_ssn == &want_ssn
    {
        return None;
    }
    let ssn_text = |s: &Ssn| {
        let t = s.to_string();
        if t.is_empty() {
            "nothing (asynchronous)".to_string()
        } else {
            t
        }
    };
    let key_text = |k: &SyncValue| {
        format!(
            "[{}] quorum {}",
            k.sync_standby.iter().cloned().collect::<Vec<_>>().join(","),
            k.quorum
        )
    };
    // 1. The key straight to its target.
    if key_allowed(input, key, &want_key) && want_key != *key {
        return Some((
            SyncStep::WriteKey(want_key.clone()),
            format!("sync key: {} -> {}", key_text(key), key_text(&want_key)),
        ));
    }
    // 2. synchronous_standby_names straight to its target.
    if *cur_ssn != want_ssn && electable_sets_overlap(&key.sync_standby, key.quorum, &want_ssn) {
        return Some((
            SyncStep::SetSsn(want_ssn.clone()),
            format!(
                "synchronous_standby_names: {} -> {}",
                ssn_text(cur_ssn),
                ssn_text(&want_ssn)
            ),
        ));
    }
    // 3. Neither can move alone: first drop from the key the voters that are leaving
    // (fewer voters, same quorum: fewer nodes can be elected, always safe).
    let kept: BTreeSet<String> = key
        .sync_standby
        .iter()
        .filter(|v| want_key.names(v))
        .cloned()
        .collect();
    // 4. Quorum mode, still stuck (the quorum must fall while PostgreSQL must wait for
    // more standbys): first make every voter, old and new, necessary to elect anyone; then
    // any acknowledging set meets the electing one and the setting can move.
    if input.settings.mode == SyncMode::Quorum {
        let all: BTreeSet<String> = key
            .sync_standby
            .union(&want_key.sync_standby)
            .cloned()
            .collect();
        let step = SyncValue {
            leader: key.leader.clone(),
            quorum: (all.len() as u32).saturating_sub(1),
            sync_standby: all,
        };
        if step != *key && key_allowed(input, key, &step) {
            return Some((
                SyncStep::WriteKey(step.clone()),
                format!(
                    "sync key: {} -> {} (every voter needed while the quorum changes)",
                    key_text(key),
                    key_text(&step)
                ),
            ));
        }
    }
    if kept != key.sync_standby {
        let step = SyncValue {
            leader: key.leader.clone(),
            sync_standby: kept,
            quorum: key.quorum,
        };
        return Some((
            SyncStep::WriteKey(step.clone()),
            format!(
                "sync key: {} -> {} (removing standbys first)",
                key_text(key),
                key_text(&step)
            ),
        ));
    }
    None
}

/// Standbys that may be synchronous now: streaming to me, a member running as a replica
/// whose tags allow it, and within `maximum_lag_on_syncnode`. Member names as the DCS spells
/// them. Patroni's measure: the position `synchronous_commit` waits for (a standby whose
/// replay is paused under `remote_apply` lags though it flushes everything), against the
/// most advanced such standby, or against the primary when there is only one.
fn eligible(input: &PlanInput) -> Vec<(String, u32, Lsn, bool)> {
    let mut out = Vec::new();
    for row in input.rows.iter().filter(|r| r.streaming) {
        let Some((name, m)) = input
            .cluster
            .members
            .iter()
            .filter_map(|(n, e)| e.value().map(|v| (n, v)))
            .find(|(n, _)| n.eq_ignore_ascii_case(&row.application_name))
        else {
            continue;
        };
        if name == input.me || !m.tags.may_be_sync() || m.state != "running" {
            continue;
        }
        // In `on` mode only a synchronous standby may be promoted: one that never may
        // would leave the cluster without a candidate. Quorum voters only vote.
        if input.settings.mode == SyncMode::On && !m.tags.may_promote() {
            continue;
        }
        let in_key = input.cluster.sync.as_ref().is_some_and(|k| k.names(name));
        let at = row.acknowledged(input.synchronous_commit);
        out.push((name.clone(), m.tags.sync_priority, at, in_key));
    }
    if let Some(max) = input.settings.maximum_lag_on_syncnode {
        let most = match out.as_slice() {
            [_, _, ..] => out.iter().map(|e| e.2).max().unwrap_or(input.primary_lsn),
            _ => input.primary_lsn,
        };
        out.retain(|e| most.0.saturating_sub(e.2 .0) <= max);
    }
    out
}

/// Where the key and `synchronous_standby_names` should end up.
fn target(
    input: &PlanInput,
    key: &SyncValue,
    eligible: &[(String, u32, Lsn, bool)],
) -> (SyncValue, Ssn) {
    let settings = input.settings;
    let wanted = settings.node_count.max(1) as usize;
    let with = |standbys: BTreeSet<String>, quorum: u32| SyncValue {
        leader: key.leader.clone(),
        sync_standby: standbys,
        quorum,
    };
    if eligible.is_empty() {
        if !settings.strict {
            return (with(BTreeSet::new(), 0), Ssn::none());
        }
        // Strict: keep waiting for the standbys of the key; with none, for any standby
        // (`*`), so that commits block rather than turn asynchronous.
        if !input.ssn.is_empty() {
            return (key.clone(), input.ssn.clone());
        }
        let ssn = super::ssn_for_key(key, true, settings.mode);
        return (key.clone(), ssn);
    }
    match settings.mode {
        SyncMode::Quorum => {
            let voters: BTreeSet<String> = eligible.iter().map(|e| e.0.clone()).collect();
            let k = wanted.min(voters.len()) as u32;
            let quorum = voters.len() as u32 - k;
            let ssn = Ssn::new(SsnKind::Any, k, voters.iter().cloned());
            (with(voters, quorum), ssn)
        }
        SyncMode::On | SyncMode::Off => {
            let mut ranked: Vec<&(String, u32, Lsn, bool)> = eligible.iter().collect();
            // Patroni's order: sync_priority, then the current synchronous standbys (no
            // churn), then the most WAL; the name breaks ties so every loop agrees.
            ranked.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then(b.3.cmp(&a.3))
                    .then(b.2.cmp(&a.2))
                    .then(a.0.cmp(&b.0))
            });
            let chosen: BTreeSet<String> =
                ranked.iter().take(wanted).map(|e| e.0.clone()).collect();
            let ssn = Ssn::new(SsnKind::First, chosen.len() as u32, chosen.iter().cloned());
            (with(chosen, 0), ssn)
        }
    }
}

/// May the key move from `from` to `to` now?
fn key_allowed(input: &PlanInput, from: &SyncValue, to: &SyncValue) -> bool {
    if !electable_sets_overlap(&to.sync_standby, to.quorum, input.ssn) {
        return false;
    }
    let fewer_electable = to.sync_standby.is_subset(&from.sync_standby) && to.quorum >= from.quorum;
    fewer_electable || settled(input, from, to)
}

/// Every standby PostgreSQL waits for, and every voter being added, has flushed the WAL
/// written before `synchronous_standby_names` took its current value: commits acknowledged
/// under an earlier value are on them too.
fn settled(input: &PlanInput, from: &SyncValue, to: &SyncValue) -> bool {
    let Some(at) = input.ssn_lsn else {
        return false;
    };
    let flushed = |name: &str| {
        input
            .rows
            .iter()
            .any(|r| r.application_name.eq_ignore_ascii_case(name) && r.flush >= at)
    };
    let waited_for = input
        .ssn
        .names
        .iter()
        .filter(|n| n.as_str() != STRICT_PLACEHOLDER);
    let added = to.sync_standby.iter().filter(|n| !from.names(n));
    waited_for.chain(added).all(|n| flushed(n))
}
