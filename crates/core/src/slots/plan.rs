//! Which replication slots this node must have, and the steps that get it there from the
//! slots PostgreSQL reports: Patroni's `get_replication_slots` + `sync_replication_slots`
//! (PostgreSQL 11+, where `pg_replication_slot_advance` exists).
//!
//! Invariants the planner keeps (each has a test):
//! * a slot matched by `ignore_slots`, a temporary slot, and a slot named by an invalid
//!   `slots` entry are never dropped, created or advanced;
//! * nothing is dropped while the cluster is paused;
//! * a slot is advanced only forward, and a logical slot on a replica never past the
//!   position this replica has replayed;
//! * a member's slot is kept for `member_slots_ttl` after the member left (`retain_slots`).

use std::collections::BTreeMap;

use super::config::{PermanentSlot, SlotsConfig};
use crate::action::slot_name;

/// A slot as `pg_replication_slots` shows it (temporary slots are never listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSlot {
    pub name: String,
    pub logical: bool,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub restart_lsn: Option<u64>,
    pub confirmed_flush_lsn: Option<u64>,
    /// `xmin` is set (hot-standby feedback arrived through this slot).
    pub has_xmin: bool,
    pub active: bool,
    /// `wal_status = 'lost'`: the WAL it needs is gone; the slot is useless.
    pub wal_lost: bool,
}

impl LocalSlot {
    pub fn kind(&self) -> &'static str {
        if self.logical {
            "logical"
        } else {
            "physical"
        }
    }

    /// The position `/status` publishes for it (Patroni: `restart_lsn` of a physical slot,
    /// `confirmed_flush_lsn` of a logical one).
    pub fn position(&self) -> Option<u64> {
        if self.logical {
            self.confirmed_flush_lsn
        } else {
            self.restart_lsn
        }
    }
}

/// A member as the slot rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMember {
    pub name: String,
    pub replicatefrom: Option<String>,
    pub nostream: bool,
    /// Its reported WAL position (`xlog_location`).
    pub lsn: u64,
}

/// Everything the slot rules read.
#[derive(Debug, Clone, Default)]
pub struct SlotView {
    pub me: String,
    pub nofailover: bool,
    pub nostream: bool,
    pub replicatefrom: Option<String>,
    /// This node runs as the primary (not a standby).
    pub primary: bool,
    /// The leader key's holder.
    pub leader: Option<String>,
    pub members: Vec<SlotMember>,
    /// `/status.slots`, or the leader's positions from its `/failsafe` POST.
    pub status_slots: BTreeMap<String, u64>,
    pub retain_slots: Vec<String>,
    pub use_slots: bool,
    pub paused: bool,
    /// What this node's PostgreSQL has replayed (replicas).
    pub replay_lsn: Option<u64>,
}

/// One step on the local PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    CreatePhysical {
        name: String,
    },
    CreateLogical {
        name: String,
        database: String,
        plugin: String,
    },
    AdvancePhysical {
        name: String,
        lsn: u64,
    },
    AdvanceLogical {
        name: String,
        database: String,
        lsn: u64,
    },
    /// Dropped only if inactive (the runtime's statement checks it atomically).
    Drop {
        name: String,
        why: String,
    },
    /// A permanent logical slot missing on this replica: copied from the primary.
    CopyLogical {
        name: String,
        database: String,
        plugin: String,
    },
}

/// A slot this node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Physical {
        /// Feedback to advance it to (when nothing consumes it here).
        lsn: Option<u64>,
        /// `Some(true)`: a consumer is expected to stream through it now; `None`: unknown
        /// (a retained slot of a departed member).
        expected_active: Option<bool>,
    },
    Logical {
        database: String,
        plugin: String,
        lsn: Option<u64>,
    },
}

/// The plan of one loop, with the problems found (to log, each naming the slot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotPlan {
    pub wanted: BTreeMap<String, Wanted>,
    pub actions: Vec<SlotAction>,
    pub problems: Vec<String>,
}

impl SlotView {
    fn member(&self, name: &str) -> Option<&SlotMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Patroni's `get_slot_name_on_primary` is `None` for this node: it does not stream
    /// (`nostream`), or its `replicatefrom` chain loops.
    fn streams(&self) -> bool {
        if self.nostream {
            return false;
        }
        let mut seen = vec![self.me.clone()];
        let mut next = self.replicatefrom.clone();
        while let Some(up) = next.filter(|u| !seen.contains(u)) {
            let Some(m) = self.member(&up) else {
                return true;
            };
            if m.nostream {
                return false;
            }
            seen.push(up);
            next = m.replicatefrom.clone();
            if next.as_ref().is_some_and(|n| seen.contains(n)) {
                return false;
            }
        }
        true
    }
}

/// The slots this node must have (Patroni's `get_replication_slots`, PostgreSQL 11+).
pub fn wanted(
    view: &SlotView,
    cfg: &SlotsConfig,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Wanted> {
    let mut out = BTreeMap::new();
    if !view.use_slots {
        return out;
    }
    let me = view.me.as_str();
    let my_slot = slot_name(me);
    let leader_filter = |m: &SlotMember| {
        m.replicatefrom
            .as_deref()
            .is_none_or(|r| r == me || view.member(r).is_none())
    };
    let replica_filter = |m: &SlotMember| {
        m.replicatefrom.as_deref() == Some(me) && view.leader.as_deref() != Some(m.name.as_str())
    };
    let expected_active = |m: &SlotMember| {
        if view.primary {
            leader_filter(m)
        } else {
            replica_filter(m)
        }
    };
    // Member slots: with retention on, every member that might connect here one day
    // (a nofailover node never leads, so it keeps only its own cascade's slots).
    let ttl_on = !cfg.member_slots_ttl.is_zero();
    for m in view.members.iter().filter(|m| m.name != me && !m.nostream) {
        let keep = if ttl_on {
            !view.nofailover || m.replicatefrom.as_deref() == Some(me)
        } else {
            expected_active(m)
        };
        if !keep {
            continue;
        }
        let name = slot_name(&m.name);
        let mut lsn = view.status_slots.get(&name).copied().unwrap_or(0);
        // A cascading member's slot on the leader does not move by itself: its own
        // position is the feedback.
        if m.replicatefrom.is_some() {
            lsn = lsn.max(m.lsn);
        }
        if out.contains_key(&name) {
            problems.push(format!(
                "members share the replication slot name {name:?} (one of them is {:?})",
                m.name
            ));
        }
        out.insert(
            name,
            Wanted::Physical {
                lsn: (lsn > 0).then_some(lsn),
                expected_active: Some(expected_active(m)),
            },
        );
    }
    if !view.nofailover {
        for name in &view.retain_slots {
            if *name != my_slot && !out.contains_key(name) {
                out.insert(
                    name.clone(),
                    Wanted::Physical {
                        lsn: None,
                        expected_active: None,
                    },
                );
            }
        }
    }
    // Permanent slots: never on a nofailover node; only physical ones on a node that does
    // not stream (a logical slot there could not be kept safe).
    if view.nofailover {
        return out;
    }
    let streams = view.streams();
    let cascading_lsn = |name: &str| {
        view.members
            .iter()
            .filter(|m| m.replicatefrom.is_some() && slot_name(&m.name) == name)
            .map(|m| m.lsn)
            .max()
            .unwrap_or(0)
    };
    for (name, slot) in &cfg.permanent {
        match slot {
            PermanentSlot::Physical => {
                // Not a slot for myself, and a member's slot stays the member's.
                if *name == my_slot || out.contains_key(name) {
                    continue;
                }
                let lsn =
                    cascading_lsn(name).max(view.status_slots.get(name).copied().unwrap_or(0));
                let cascades = view
                    .members
                    .iter()
                    .any(|m| slot_name(&m.name) == *name && m.replicatefrom.is_some());
                out.insert(
                    name.clone(),
                    Wanted::Physical {
                        lsn: (lsn > 0).then_some(lsn),
                        expected_active: Some(!cascades && view.primary),
                    },
                );
            }
            PermanentSlot::Logical { database, plugin } => {
                if !streams {
                    continue;
                }
                if out.contains_key(name) {
                    problems.push(format!(
                        "permanent logical slot {name:?} has the name of a member's physical slot; not created"
                    ));
                    continue;
                }
                out.insert(
                    name.clone(),
                    Wanted::Logical {
                        database: database.clone(),
                        plugin: plugin.clone(),
                        lsn: view.status_slots.get(name).copied().filter(|l| *l > 0),
                    },
                );
            }
        }
    }
    out
}

/// This loop's slot steps, from the slots PostgreSQL has (`local`).
pub fn plan(view: &SlotView, cfg: &SlotsConfig, local: &[LocalSlot]) -> SlotPlan {
    let mut problems: Vec<String> = cfg
        .invalid
        .iter()
        .map(|(_, why)| format!("{why}; a slot of that name is left alone"))
        .collect();
    let wanted = wanted(view, cfg, &mut problems);
    let protected = |s: &LocalSlot| {
        cfg.ignored(
            &s.name,
            s.kind(),
            s.database.as_deref(),
            s.plugin.as_deref(),
        ) || cfg.invalid.iter().any(|(n, _)| *n == s.name)
    };
    let mut actions = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for s in local.iter().filter(|s| !protected(s)) {
        let why = match wanted.get(&s.name) {
            None => Some("it is neither a member's nor a permanent slot".to_string()),
            Some(_) if s.wal_lost => Some("its WAL is lost (wal_status = lost)".to_string()),
            Some(Wanted::Physical { .. }) if s.logical => {
                Some("it is logical, a physical slot is wanted".to_string())
            }
            Some(Wanted::Logical { .. }) if !s.logical => {
                Some("it is physical, a logical slot is wanted".to_string())
            }
            Some(Wanted::Logical {
                database, plugin, ..
            }) if s.database.as_deref() != Some(database)
                || s.plugin.as_deref() != Some(plugin) =>
            {
                Some(format!(
                    "its database/plugin {}/{} is not the configured {database}/{plugin}",
                    s.database.as_deref().unwrap_or("?"),
                    s.plugin.as_deref().unwrap_or("?")
                ))
            }
            Some(_) => None,
        };
        // Paused: the operator is in charge; nothing is dropped (Patroni's rule).
        if let Some(why) = why.filter(|_| !view.paused) {
            dropped.push(&s.name);
            actions.push(SlotAction::Drop {
                name: s.name.clone(),
                why,
            });
        }
    }
    // Inactive physical slots holding an xmin hold back vacuum for nothing: dropped (and made
    // again), unless there is no leader or I lead but still run as a standby.
    let clean_xmin = view
        .leader
        .as_deref()
        .is_some_and(|l| l != view.me || view.primary);
    for (name, w) in &wanted {
        let existing = local.iter().find(|s| s.name == *name);
        if existing.is_some_and(protected) {
            continue;
        }
        let existing = existing.filter(|_| !dropped.contains(&name.as_str()));
        match (w, existing) {
            (Wanted::Physical { .. }, None) => {
                actions.push(SlotAction::CreatePhysical { name: name.clone() })
            }
            (
                Wanted::Physical {
                    lsn,
                    expected_active,
                },
                Some(s),
            ) => {
                if clean_xmin && *expected_active == Some(false) && s.has_xmin && !s.active {
                    actions.push(SlotAction::Drop {
                        name: name.clone(),
                        why: "it is not expected to be active and holds an xmin".into(),
                    });
                } else if *expected_active != Some(true) && !s.has_xmin && !s.active {
                    match (s.restart_lsn, lsn) {
                        (None, _) => actions.push(SlotAction::Drop {
                            name: name.clone(),
                            why: "it reserves no WAL (made without immediately_reserve), so it cannot be advanced".into(),
                        }),
                        (Some(at), Some(to)) if *to > at => actions.push(SlotAction::AdvancePhysical {
                            name: name.clone(),
                            lsn: *to,
                        }),
                        _ => {}
                    }
                }
            }
            (
                Wanted::Logical {
                    database,
                    plugin,
                    lsn,
                },
                existing,
            ) => {
                if view.primary {
                    if existing.is_none() {
                        actions.push(SlotAction::CreateLogical {
                            name: name.clone(),
                            database: database.clone(),
                            plugin: plugin.clone(),
                        });
                    }
                    continue;
                }
                let Some(lsn) = *lsn else { continue };
                match existing {
                    None => actions.push(SlotAction::CopyLogical {
                        name: name.clone(),
                        database: database.clone(),
                        plugin: plugin.clone(),
                    }),
                    Some(s) if !s.active => {
                        let to = view.replay_lsn.map_or(lsn, |r| r.min(lsn));
                        if s.confirmed_flush_lsn.is_some_and(|c| c < to) {
                            actions.push(SlotAction::AdvanceLogical {
                                name: name.clone(),
                                database: database.clone(),
                                lsn: to,
                            });
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }
    SlotPlan {
        wanted,
        actions,
        problems,
    }
}

/// What the leader publishes in `/status.slots`: the position of each slot it has that is
/// wanted here (Patroni's `process_permanent_slots`), its own slot name at its WAL position
/// (a permanent slot of that name on the replicas follows it), and, with `member_slots_ttl`
/// 0, only the permanent slots (Patroni's `maybe_filter_permanent_slots`).
pub fn status_slots(
    view: &SlotView,
    cfg: &SlotsConfig,
    wanted: &BTreeMap<String, Wanted>,
    local: &[LocalSlot],
    wal_position: u64,
) -> BTreeMap<String, u64> {
    if !view.use_slots {
        return BTreeMap::new();
    }
    let mut out: BTreeMap<String, u64> = local
        .iter()
        .filter(|s| wanted.contains_key(&s.name))
        .filter_map(|s| Some((s.name.clone(), s.position()?)))
        .collect();
    out.insert(slot_name(&view.me), wal_position);
    if cfg.member_slots_ttl.is_zero() {
        let members: Vec<String> = view.members.iter().map(|m| slot_name(&m.name)).collect();
        out.retain(|name, _| match cfg.permanent.get(name) {
            Some(PermanentSlot::Physical) => true,
            Some(PermanentSlot::Logical { .. }) => !members.contains(name),
            None => false,
        });
    }
    out
}

impl SlotView {
    /// The view of `cluster` from member `me` (tags as this node publishes them).
    /// `status_slots` and `retain_slots` come from `/status`; in failsafe mode the caller
    /// replaces `status_slots` with the leader's POSTed positions.
    pub fn from_cluster(
        cluster: &crate::cluster::Cluster,
        me: &str,
        tags: &crate::tags::Tags,
        primary: bool,
        use_slots: bool,
    ) -> SlotView {
        let members = cluster
            .members
            .iter()
            .filter_map(|(name, e)| {
                let v = e.value()?;
                Some(SlotMember {
                    name: name.clone(),
                    replicatefrom: tag_text(&v.tags, "replicatefrom"),
                    nostream: crate::flag::is_on(v.tags.to_json().get("nostream")),
                    lsn: v.xlog_location.unwrap_or_else(|| v.wal_position()),
                })
            })
            .collect();
        let (status_slots, retain_slots) = match &cluster.status {
            Some(s) => (
                s.slots
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), lsn_value(v)?)))
                    .collect(),
                s.retain_slots.clone(),
            ),
            None => Default::default(),
        };
        SlotView {
            me: me.to_string(),
            nofailover: !tags.may_promote(),
            nostream: crate::flag::is_on(tags.to_json().get("nostream")),
            replicatefrom: tag_text(tags, "replicatefrom"),
            primary,
            leader: cluster.leader_name().map(str::to_string),
            members,
            status_slots,
            retain_slots,
            use_slots,
            paused: cluster.paused(),
            replay_lsn: None,
        }
    }
}

fn tag_text(tags: &crate::tags::Tags, key: &str) -> Option<String> {
    match tags.to_json().get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A `/status.slots` value: Patroni writes integers; anything else reads as unknown.
pub fn lsn_value(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
