//! The dynamic settings in force on this node: `/config` from the DCS over the local
//! `bootstrap.dcs`, field by field, never failing.

use std::time::Duration;

use serde_json::Value;

use super::super::diag::{Diag, KeyPath};
use super::super::{
    Config, DynamicConfig, DEFAULT_LOOP_WAIT, DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_TTL,
};
use super::read::{read, Fields};
use super::timings_ok;
use crate::sync::SyncSettings;

/// The dynamic settings in force: `/config` from the DCS when present, otherwise
/// `bootstrap.dcs`. Each field of `/config` that is missing or bad falls back to the local
/// value, so a bad write by an operator or another node cannot stop this one (never a panic).
/// The three timings are kept together: if the DCS values break
/// `loop_wait + 2 × retry_timeout <= ttl`, as many of them are kept as the rule allows
/// (ttl preferred), the others come from the local file.
///
/// `json` is the `/config` value as stored, so that `GET /config` shows what the DCS holds.
pub fn effective_dynamic(local: &Config, dcs: Option<&Value>) -> DynamicConfig {
    let base = &local.bootstrap.dcs;
    let Some(Value::Object(map)) = dcs else {
        return base.clone();
    };
    // Problems in the DCS value are not this node's to report as config errors; they only
    // decide which fields fall back.
    let mut scratch = Diag::default();
    let f = read(map, &KeyPath::root(), &mut scratch);

    let timings = pick_timings(
        [f.ttl, f.loop_wait, f.retry_timeout],
        [base.ttl, base.loop_wait, base.retry_timeout],
    );
    settle(f, timings, base, Value::Object(map.clone()))
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

/// Chooses ttl, loop_wait and retry_timeout from the DCS (`remote`) and local values: the
/// combination that keeps the most valid DCS values while obeying the timing rule. The order
/// below tries every subset of the three, largest first, ttl before the others.
fn pick_timings(
    remote: [Option<Duration>; 3],
    local: [Duration; 3],
) -> (Duration, Duration, Duration) {
    const SUBSETS: [[bool; 3]; 8] = [
        [true, true, true],
        [true, true, false],
        [true, false, true],
        [false, true, true],
        [true, false, false],
        [false, true, false],
        [false, false, true],
        [false, false, false],
    ];
    for keep in SUBSETS {
        let mut t = local;
        let mut usable = true;
        for i in 0..3 {
            if keep[i] {
                match remote[i] {
                    Some(d) => t[i] = d,
                    None => usable = false,
                }
            }
        }
        if usable && timings_ok(t[0], t[1], t[2]) {
            return (t[0], t[1], t[2]);
        }
    }
    // The local values were validated when the file loaded; if a caller built a Config by
    // hand that breaks the rule, they are still the best we have.
    (local[0], local[1], local[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn timings_keep_as_many_dcs_values_as_the_rule_allows() {
        let local = [s(10), s(2), s(3)];
        // All three fine together.
        assert_eq!(
            pick_timings([Some(s(30)), Some(s(10)), Some(s(10))], local),
            (s(30), s(10), s(10))
        );
        // ttl 12 with loop_wait 10 and retry 10 breaks the rule; ttl 12 + loop_wait 10 +
        // local retry 3 = 16 > 12 too; ttl 12 + local loop_wait 2 + retry 10 = 22 > 12;
        // loop_wait 10 + retry 10 with local ttl 10 breaks; ttl 12 alone works.
        assert_eq!(
            pick_timings([Some(s(12)), Some(s(10)), Some(s(10))], local),
            (s(12), s(2), s(3))
        );
        // Missing DCS values fall back.
        assert_eq!(pick_timings([None, None, None], local), (s(10), s(2), s(3)));
    }

    #[test]
    fn overflowing_timings_break_the_rule() {
        assert!(!timings_ok(s(10), Duration::MAX, s(1)));
        assert!(timings_ok(s(10), s(2), s(4)));
        assert!(!timings_ok(s(10), s(3), s(4)));
    }
}
