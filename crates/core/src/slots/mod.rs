//! Replication slots as Patroni manages them: member slots, permanent slots from
//! `/config`, `ignore_slots`, `member_slots_ttl` and the `/status` positions that let
//! replicas keep their copies of the slots in step with the leader's.
//!
//! Pure: the runtime lists the local slots, calls [`plan`] and executes the returned
//! [`SlotAction`]s; the leader publishes [`status_slots`] and [`Retention::update`].

mod config;
mod plan;
mod retain;
#[cfg(test)]
mod tests;

pub use config::{
    needs_hot_standby_feedback, valid_slot_name, PermanentSlot, SlotMatcher, SlotsConfig,
    DEFAULT_MEMBER_SLOTS_TTL,
};
pub use plan::{
    lsn_value, plan, status_slots, wanted, LocalSlot, SlotAction, SlotMember, SlotPlan, SlotView,
    Wanted,
};
pub use retain::Retention;
