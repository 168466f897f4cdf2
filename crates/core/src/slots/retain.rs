//! `retain_slots` in `/status`: the member slots the leader keeps for `member_slots_ttl`
//! after their member's key is gone, so that a member back from a restart or a network
//! fault still finds the WAL it needs (Patroni's `_build_retain_slots`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::{PermanentSlot, SlotsConfig};
use super::plan::SlotMember;
use crate::action::slot_name;

/// When the leader last saw each member slot; kept by the runtime for one leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    seen: BTreeMap<String, Instant>,
    /// Seeded from `/status.retain_slots` at the start of this leadership.
    seeded: bool,
}

impl Retention {
    /// Not the leader: forget, so that the next leadership starts from `/status`.
    pub fn reset(&mut self) {
        *self = Retention::default();
    }

    /// The `retain_slots` list to publish. `slots`: what `/status.slots` will say;
    /// `stored`: `/status.retain_slots` as read (seeds a new leadership with the time of
    /// its start, as Patroni does on acquiring the key).
    pub fn update(
        &mut self,
        me: &str,
        members: &[SlotMember],
        slots: &BTreeMap<String, u64>,
        stored: &[String],
        cfg: &SlotsConfig,
        now: Instant,
    ) -> Vec<String> {
        if !self.seeded {
            self.seeded = true;
            for name in stored {
                self.seen.insert(name.clone(), now);
            }
        }
        let mut names: Vec<String> = members
            .iter()
            .filter(|m| !m.nostream)
            .map(|m| slot_name(&m.name))
            .collect();
        if !members.iter().any(|m| m.name == me) {
            names.push(slot_name(me));
        }
        for name in slots.keys() {
            if names.contains(name)
                && !matches!(cfg.permanent.get(name), Some(PermanentSlot::Physical))
            {
                self.seen.insert(name.clone(), now);
            }
        }
        let ttl: Duration = cfg.member_slots_ttl;
        self.seen
            .retain(|_, at| now.saturating_duration_since(*at) < ttl);
        self.seen.keys().cloned().collect()
    }
}
