//! Synchronous replication: the settings, `synchronous_standby_names` as PostgreSQL reads
//! it, the safety rule that ties it to the `sync` key, and the leader's plan to move both
//! toward the standbys it wants, one safe step at a time.
//!
//! The one rule everything here keeps (see [`safety::electable_sets_overlap`]): any set of
//! members that could elect a new leader from the `sync` key overlaps every set of
//! standbys that PostgreSQL may have acknowledged a commit with. Then the elected node, or
//! one of its voters that it is not behind, holds every acknowledged commit.

mod plan;
mod safety;
mod ssn;
#[cfg(test)]
mod tests;

pub use plan::{plan, PlanInput, ReplicationRow, SyncStep};
pub use safety::{electable_sets_overlap, votes_needed};
pub use ssn::{Ssn, SsnKind, STRICT_PLACEHOLDER};

/// `synchronous_mode`: off, on (Patroni's `true`), or quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    #[default]
    Off,
    /// `FIRST n (...)`: only the standbys in the `sync` key may be promoted.
    On,
    /// `ANY n (...)`: a candidate needs votes from enough voters (Patroni 4's quorum commit).
    Quorum,
}

/// The dynamic settings that govern synchronous replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    pub mode: SyncMode,
    /// `synchronous_mode_strict`: with no eligible standby, commits block instead of turning
    /// asynchronous.
    pub strict: bool,
    /// `synchronous_node_count` (at least 1).
    pub node_count: u32,
    /// `maximum_lag_on_syncnode` in bytes; `None` (Patroni's -1) means no limit.
    pub maximum_lag_on_syncnode: Option<u64>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            mode: SyncMode::Off,
            strict: false,
            node_count: 1,
            maximum_lag_on_syncnode: None,
        }
    }
}

impl SyncSettings {
    pub fn enabled(&self) -> bool {
        self.mode != SyncMode::Off
    }
}

/// A `sync` key of `leader` that makes nobody else electable.
pub fn key_naming_nobody(leader: &str) -> crate::dcs_values::SyncValue {
    crate::dcs_values::SyncValue {
        leader: Some(leader.to_string()),
        ..Default::default()
    }
}

/// The `synchronous_standby_names` that keeps exactly the promise of `key`: with a quorum,
/// `ANY (voters - quorum)` of the voters; without, all of them (`FIRST n`); with none,
/// nobody, or in strict mode `*` (Patroni's choice): commits wait for some standby. Any
/// standby's acknowledgement is then enough, which is safe because a key naming nobody
/// lets nobody be elected, and a standby enters the key only after it flushed the WAL
/// written before the setting changed again (`plan::settled`).
pub fn ssn_for_key(key: &crate::dcs_values::SyncValue, strict: bool, mode: SyncMode) -> Ssn {
    let n = key.sync_standby.len() as u32;
    if n == 0 {
        return match (strict, mode) {
            (false, _) => Ssn::none(),
            (true, SyncMode::Quorum) => Ssn::anyone_of_kind(SsnKind::Any),
            (true, _) => Ssn::anyone(),
        };
    }
    let names = key.sync_standby.iter().cloned();
    if key.quorum > 0 {
        Ssn::new(SsnKind::Any, n.saturating_sub(key.quorum).max(1), names)
    } else {
        Ssn::new(SsnKind::First, n, names)
    }
}
