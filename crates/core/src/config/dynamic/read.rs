//! What a `/config`-shaped value says: each field parsed on its own, `None` when absent or
//! bad (the problem goes to `diag`; the caller decides whether that refuses the value or
//! only makes the field fall back).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::super::diag::{Diag, KeyPath};
use super::super::scalar::{self, found};
use super::MIN_HANG_TIMEOUT;
use crate::sync::SyncMode;

/// What a `/config`-shaped value says; `None` for a field that is absent or bad.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) ttl: Option<Duration>,
    pub(super) loop_wait: Option<Duration>,
    pub(super) retry_timeout: Option<Duration>,
    pub(super) maximum_lag_on_failover: Option<u64>,
    pub(super) use_pg_rewind: Option<bool>,
    pub(super) use_slots: Option<bool>,
    pub(super) parameters: Option<BTreeMap<String, String>>,
    pub(super) pg_hba: Option<Vec<String>>,
    pub(super) sync_mode: Option<SyncMode>,
    pub(super) sync_strict: Option<bool>,
    pub(super) sync_node_count: Option<u32>,
    /// `Some(None)`: given as -1 (or 0), no limit.
    pub(super) max_lag_on_syncnode: Option<Option<u64>>,
    pub(super) failsafe_mode: Option<bool>,
    pub(super) check_timeline: Option<bool>,
    pub(super) primary_hang_timeout: Option<Duration>,
}

pub(super) fn read(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) -> Fields {
    let at = |k: &str| base.key(k);
    let mut f = Fields {
        // Below pgkeel's floors the timings are raised (`adjust_timings`), as Patroni does.
        ttl: map
            .get("ttl")
            .and_then(|v| scalar::seconds(v, &at("ttl"), diag, Duration::ZERO)),
        loop_wait: map
            .get("loop_wait")
            .and_then(|v| scalar::seconds(v, &at("loop_wait"), diag, Duration::ZERO)),
        retry_timeout: map
            .get("retry_timeout")
            .and_then(|v| scalar::seconds(v, &at("retry_timeout"), diag, Duration::ZERO)),
        maximum_lag_on_failover: map.get("maximum_lag_on_failover").and_then(|v| {
            scalar::unsigned(
                v,
                &at("maximum_lag_on_failover"),
                diag,
                "a number of bytes (an integer, 0 or more)",
            )
        }),
        sync_mode: map
            .get("synchronous_mode")
            .and_then(|v| sync_mode(v, &at("synchronous_mode"), diag)),
        sync_strict: map
            .get("synchronous_mode_strict")
            .and_then(|v| scalar::boolean(v, &at("synchronous_mode_strict"), diag)),
        sync_node_count: map
            .get("synchronous_node_count")
            .and_then(|v| node_count(v, &at("synchronous_node_count"), diag)),
        max_lag_on_syncnode: map
            .get("maximum_lag_on_syncnode")
            .and_then(|v| lag_limit(v, &at("maximum_lag_on_syncnode"), diag)),
        failsafe_mode: map
            .get("failsafe_mode")
            .and_then(|v| scalar::boolean(v, &at("failsafe_mode"), diag)),
        check_timeline: map
            .get("check_timeline")
            .and_then(|v| scalar::boolean(v, &at("check_timeline"), diag)),
        primary_hang_timeout: map
            .get("primary_hang_timeout")
            .and_then(|v| scalar::seconds(v, &at("primary_hang_timeout"), diag, MIN_HANG_TIMEOUT)),
        ..Fields::default()
    };
    let pg_path = at("postgresql");
    match map.get("postgresql") {
        None | Some(Value::Null) => {}
        Some(Value::Object(pg)) => {
            let at = |k: &str| pg_path.key(k);
            f.use_pg_rewind = pg
                .get("use_pg_rewind")
                .and_then(|v| scalar::boolean(v, &at("use_pg_rewind"), diag));
            f.use_slots = pg
                .get("use_slots")
                .and_then(|v| scalar::boolean(v, &at("use_slots"), diag));
            f.parameters = pg
                .get("parameters")
                .and_then(|v| parameters(v, &at("parameters"), diag));
            f.pg_hba = pg
                .get("pg_hba")
                .and_then(|v| scalar::string_list(v, &at("pg_hba"), diag));
        }
        Some(other) => diag.problem(&pg_path, found(other), "a mapping of key: value"),
    }
    f
}

/// `synchronous_mode`: a boolean (Patroni's `true` is `on`) or `quorum`.
fn sync_mode(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<SyncMode> {
    let mode = match v {
        Value::Bool(true) => Some(SyncMode::On),
        Value::Bool(false) | Value::Null => Some(SyncMode::Off),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Some(SyncMode::Quorum),
            "true" | "on" | "yes" | "1" => Some(SyncMode::On),
            "false" | "off" | "no" | "0" | "" => Some(SyncMode::Off),
            _ => None,
        },
        _ => None,
    };
    if mode.is_none() {
        diag.problem(path, found(v), "off (false), on (true) or quorum");
    }
    mode
}

/// `synchronous_node_count`: 1 or more.
fn node_count(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<u32> {
    const ALLOWED: &str = "an integer, 1 or more";
    let n = scalar::unsigned(v, path, diag, ALLOWED)?;
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            diag.problem(path, found(v), ALLOWED);
            None
        }
    }
}

/// `maximum_lag_on_syncnode`: bytes; -1 (Patroni's default) or 0 turns the limit off.
fn lag_limit(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<Option<u64>> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= 0 => Some(None),
        Some(n) => Some(Some(n as u64)),
        None => {
            diag.problem(
                path,
                found(v),
                "a number of bytes (an integer; -1 for no limit)",
            );
            None
        }
    }
}

/// PostgreSQL parameters as `postgresql.conf` text (see [`scalar::pg_value`]).
pub(crate) fn parameters(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
) -> Option<BTreeMap<String, String>> {
    let map = match v {
        Value::Object(m) => m,
        Value::Null => return Some(BTreeMap::new()),
        other => {
            diag.problem(path, found(other), "a mapping of parameter: value");
            return None;
        }
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, val) in map {
        match scalar::pg_value(val) {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None => {
                diag.problem(&path.key(k), found(val), scalar::PG_VALUE_ALLOWED);
                ok = false;
            }
        }
    }
    if let Some(segments) = out.remove("wal_keep_segments") {
        match wal_keep_size(&segments) {
            Some(size) => {
                out.entry("wal_keep_size".into()).or_insert(size);
            }
            None => {
                diag.problem(
                    &path.key("wal_keep_segments"),
                    format!("found {segments:?}"),
                    "a number of WAL segments (an integer, 0 or more)",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Patroni's translation for PostgreSQL 13 and later, which replaced `wal_keep_segments`
/// with `wal_keep_size`: N segments of 16 MB (initdb's default segment size) become
/// `N*16MB`, unless `wal_keep_size` is set too. (pgkeel runs PostgreSQL 13 or later only.)
fn wal_keep_size(segments: &str) -> Option<String> {
    let n: u64 = segments.trim().parse().ok()?;
    Some(format!("{}MB", n.checked_mul(16)?))
}

/// `synchronous_mode` as a `/config` value sets it, for readers that have no local
/// configuration to fall back on (`/cluster`, `list`, which show what the DCS says): absent
/// or invalid is off, as [`effective_dynamic`] reads it.
pub fn sync_mode_in(dcs: Option<&Value>) -> SyncMode {
    let Some(Value::Object(map)) = dcs else {
        return SyncMode::Off;
    };
    let mut scratch = Diag::default();
    map.get("synchronous_mode")
        .and_then(|v| sync_mode(v, &KeyPath::root().key("synchronous_mode"), &mut scratch))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wal_keep_segments_becomes_wal_keep_size_as_patroni_does() {
        let mut diag = Diag::default();
        let p = |v: serde_json::Value, diag: &mut Diag| {
            parameters(&v, &KeyPath::root().key("parameters"), diag)
        };
        let out = p(json!({"wal_keep_segments": 100}), &mut diag).unwrap();
        assert_eq!(out.get("wal_keep_size").map(String::as_str), Some("1600MB"));
        assert!(!out.contains_key("wal_keep_segments"));
        let out = p(
            json!({"wal_keep_segments": 100, "wal_keep_size": "1GB"}),
            &mut diag,
        )
        .unwrap();
        assert_eq!(out["wal_keep_size"], "1GB", "an explicit size wins");
        assert!(diag.problems.is_empty());
        assert_eq!(p(json!({"wal_keep_segments": "many"}), &mut diag), None);
        assert!(diag.problems[0]
            .path
            .to_string()
            .contains("wal_keep_segments"));
    }

    #[test]
    fn reads_the_mode_leniently() {
        assert_eq!(sync_mode_in(None), SyncMode::Off);
        assert_eq!(sync_mode_in(Some(&json!([1]))), SyncMode::Off);
        assert_eq!(sync_mode_in(Some(&json!({"ttl": 30}))), SyncMode::Off);
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": true}))),
            SyncMode::On
        );
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": "Quorum"}))),
            SyncMode::Quorum
        );
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": "sometimes"}))),
            SyncMode::Off
        );
    }
}
