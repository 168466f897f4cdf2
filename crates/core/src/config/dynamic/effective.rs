//! The dynamic settings in force on this node: `/config` from the DCS over the local
//! `bootstrap.dcs`, field by field, never failing.

use std::time::Duration;

use serde_json::Value;

use super::super::diag::{Diag, KeyPath};
use super::super::{
    Config, DynamicConfig, DEFAULT_LOOP_WAIT, DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_TTL,
};
use super::adjust_timings;
use super::read::{read, Fields};
#[cfg(test)]
use super::timings_ok;
use crate::sync::SyncSettings;

/// The dynamic settings in force: `/config` from the DCS when present, otherwise
/// `bootstrap.dcs`. Each field of `/config` that is missing or bad falls back to the local
/// value, so a bad write by an operator or another node cannot stop this one (never a panic).
/// Timings that break `loop_wait + 2 × retry_timeout <= ttl` are adjusted as Patroni
/// adjusts them (`adjust_timings`).
///
/// `json` is the `/config` value as stored, so that `GET /config` shows what the DCS holds.
pub fn effective_dynamic(local: &Config, dcs: Option<&Value>) -> DynamicConfig {
    let mut d = from_dcs(local, dcs);
    // Patroni's local `postgresql` keys win over `/config`'s.
    if let Some(v) = local.postgresql.use_pg_rewind {
        d.use_pg_rewind = v;
    }
    d
}

fn from_dcs(local: &Config, dcs: Option<&Value>) -> DynamicConfig {
    let base = &local.bootstrap.dcs;
    let Some(Value::Object(map)) = dcs else {
        return base.clone();
    };
    // Problems in the DCS value are not this node's to report as config errors; they only
    // decide which fields fall back.
    let mut scratch = Diag::default();
    let f = read(map, &KeyPath::root(), &mut scratch);

    // Each timing from the DCS when valid, else the local one; then Patroni's adjustment.
    let (timings, adjusted) = adjust_timings(
        f.ttl.unwrap_or(base.ttl),
        f.loop_wait.unwrap_or(base.loop_wait),
        f.retry_timeout.unwrap_or(base.retry_timeout),
    );
    let mut d = settle(f, timings, base, Value::Object(map.clone()));
    d.timings_adjusted = adjusted;
    d
}

/// The settings `f` gives with the timings chosen, each field that `f` lacks (absent or
/// bad) taken from `fallback`: this node's `bootstrap.dcs` for `/config`, pgkeel's
/// defaults for `bootstrap.dcs` itself ([`defaults`]). `json` is what `/config` holds.
pub(super) fn settle(
    f: Fields,
    (ttl, loop_wait, retry_timeout): (Duration, Duration, Duration),
    fallback: &DynamicConfig,
    json: Value,
) -> DynamicConfig {
    let sync = sync_settings(&f, SyncSettings::default());
    DynamicConfig {
        ttl,
        loop_wait,
        retry_timeout,
        maximum_lag_on_failover: f
            .maximum_lag_on_failover
            .unwrap_or(fallback.maximum_lag_on_failover),
        use_pg_rewind: f.use_pg_rewind.unwrap_or(fallback.use_pg_rewind),
        use_slots: f.use_slots.unwrap_or(fallback.use_slots),
        parameters: f.parameters.unwrap_or_else(|| fallback.parameters.clone()),
        pg_hba: f.pg_hba.unwrap_or_else(|| fallback.pg_hba.clone()),
        // Safety settings must agree on every node: an absent key means Patroni's default,
        // never this node's bootstrap section (a PATCH that removes synchronous_mode turns
        // it off everywhere at once).
        sync,
        failsafe_mode: f.failsafe_mode.unwrap_or(false),
        check_timeline: f.check_timeline.unwrap_or(false),
        // Absent: derived from the ttl in force (see `DynamicConfig::hang_timeout`); a bad
        // value falls back to this node's own setting.
        primary_hang_timeout: f.primary_hang_timeout.or(fallback.primary_hang_timeout),
        json,
        timings_adjusted: Vec::new(),
    }
}

/// pgkeel's defaults for every field `bootstrap.dcs` may leave out (the timings are
/// chosen, and checked, by the caller).
pub(super) fn defaults() -> DynamicConfig {
    DynamicConfig {
        ttl: DEFAULT_TTL,
        loop_wait: DEFAULT_LOOP_WAIT,
        retry_timeout: DEFAULT_RETRY_TIMEOUT,
        maximum_lag_on_failover: DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
        use_pg_rewind: true,
        use_slots: true,
        parameters: Default::default(),
        pg_hba: Vec::new(),
        sync: SyncSettings::default(),
        failsafe_mode: false,
        check_timeline: false,
        primary_hang_timeout: None,
        json: Value::Null,
        timings_adjusted: Vec::new(),
    }
}

fn sync_settings(f: &Fields, base: SyncSettings) -> SyncSettings {
    SyncSettings {
        mode: f.sync_mode.unwrap_or(base.mode),
        strict: f.sync_strict.unwrap_or(base.strict),
        node_count: f.sync_node_count.unwrap_or(base.node_count),
        maximum_lag_on_syncnode: f
            .max_lag_on_syncnode
            .unwrap_or(base.maximum_lag_on_syncnode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_local_use_pg_rewind_wins_over_config() {
        let yaml = "scope: s\nname: n\nrestapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}\n\
                    etcd3: {hosts: 127.0.0.1:2379}\npostgresql: {listen: 127.0.0.1:5432, \
                    connect_address: 127.0.0.1:5432, data_dir: /tmp/x, use_pg_rewind: false}\n";
        let cfg = crate::config::load_str(yaml, "t.yml").unwrap().config;
        let stored = serde_json::json!({"postgresql": {"use_pg_rewind": true}});
        assert!(!effective_dynamic(&cfg, Some(&stored)).use_pg_rewind);
        assert!(!effective_dynamic(&cfg, None).use_pg_rewind);
        let mut unset = cfg.clone();
        unset.postgresql.use_pg_rewind = None;
        assert!(effective_dynamic(&unset, Some(&stored)).use_pg_rewind);
    }

    #[test]
    fn overflowing_timings_break_the_rule() {
        assert!(!timings_ok(s(10), Duration::MAX, s(1)));
        assert!(timings_ok(s(10), s(2), s(4)));
        assert!(!timings_ok(s(10), s(3), s(4)));
    }
}
