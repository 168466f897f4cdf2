//! The strict reading of a dynamic config: `bootstrap.dcs` when the file loads, and a
//! `PATCH`/`PUT /config` or `edit-config` before it is written. Every problem is reported,
//! naming the key; unknown keys are noted, unsupported ones refused.

use serde_json::{Map, Value};

use super::super::diag::{Diag, KeyPath};
use super::super::scalar::{found, secs_json};
use super::super::DynamicConfig;
use super::adjust_timings;
use super::effective::{defaults, settle};
use super::read::read;
use super::stored;
use crate::guc::GucCatalog;

/// Patroni's dynamic keys (`docs/dynamic_configuration.rst`): kept in `/config` as written,
/// whether or not pgkeel acts on them yet, so Patroni nodes and tools see them unchanged.
const PATRONI_DYNAMIC_KEYS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "maximum_lag_on_syncnode",
    "max_timelines_history",
    "primary_start_timeout",
    "primary_stop_timeout",
    "master_start_timeout",
    "master_stop_timeout",
    "primary_race_backoff",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
    "check_timeline",
    "pause",
    "member_slots_ttl",
    "slots",
    "permanent_slots",
    "permanent_replication_slots",
    "ignore_slots",
    "standby_cluster",
    "postgresql",
];

const PATRONI_DYNAMIC_PG_KEYS: &[&str] = &[
    "use_pg_rewind",
    "use_slots",
    "recovery_conf",
    "parameters",
    "parameters_primary",
    "parameters_replica",
    "parameters_standby_leader",
    "pg_hba",
    "pg_hba_primary",
    "pg_hba_replica",
    "pg_hba_standby_leader",
    "pg_ident",
    "pg_ident_primary",
    "pg_ident_replica",
    "pg_ident_standby_leader",
];

/// pgkeel's own dynamic keys (Patroni nodes ignore them).
const PGKEEL_DYNAMIC_KEYS: &[&str] = &["primary_hang_timeout"];

const NOT_PATRONI: &str = "not a Patroni setting (a typo?); kept in /config as written, unused";

/// Notes keys of `bootstrap.dcs` that Patroni does not know either: they are still written to
/// `/config` (as Patroni would), but a typo such as `loop_wiat` deserves a line in the log.
fn note_unknown(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) {
    for k in map.keys() {
        if !PATRONI_DYNAMIC_KEYS.contains(&k.as_str()) && !PGKEEL_DYNAMIC_KEYS.contains(&k.as_str())
        {
            diag.warn(&base.key(k), NOT_PATRONI);
        }
    }
    if let Some(Value::Object(pg)) = map.get("postgresql") {
        for k in pg.keys() {
            if !PATRONI_DYNAMIC_PG_KEYS.contains(&k.as_str()) {
                diag.warn(&base.key("postgresql").key(k), NOT_PATRONI);
            }
        }
    }
}

/// Settings whose silent absence would weaken what the operator asked for (commits that
/// must not be lost, automation that must stay off): refused until pgkeel implements them,
/// rather than accepted and ignored.
fn refuse_unsupported(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) {
    const UNSUPPORTED: &[(&str, &str)] = &[(
        "standby_cluster",
        "absent (pgkeel does not implement standby clusters yet)",
    )];
    for (key, allowed) in UNSUPPORTED {
        if let Some(v) = map.get(*key).filter(|v| requested(v)) {
            diag.problem(&base.key(key), found(v), *allowed);
        }
    }
}

/// Whether a Patroni flag or section is switched on (`true`, `on`, `quorum`, a mapping...).
fn requested(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "off" | "no" | "0"
        ),
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
    }
}

/// `bootstrap.dcs` → the dynamic config. `None` (with problems) if a value is bad.
pub(crate) fn from_bootstrap(
    dcs: Option<&Value>,
    base: &KeyPath,
    diag: &mut Diag,
) -> Option<DynamicConfig> {
    strict(dcs, base, diag, None)
}

/// The strict reading of a dynamic config; with a `catalog`, PostgreSQL parameters are also
/// checked against the server's own definitions.
fn strict(
    dcs: Option<&Value>,
    base: &KeyPath,
    diag: &mut Diag,
    catalog: Option<&GucCatalog>,
) -> Option<DynamicConfig> {
    let empty = Map::new();
    let map = match dcs {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            diag.problem(base, found(other), "a mapping of key: value");
            return None;
        }
    };
    refuse_unsupported(map, base, diag);
    note_unknown(map, base, diag);
    let before = diag.problems.len();
    stored::check(map, base, diag);
    let f = read(map, base, diag);
    if let (Some(catalog), Some(params)) = (catalog, &f.parameters) {
        let at = base.key("postgresql").key("parameters");
        for (name, value) in params {
            if let Err(r) = catalog.check(name, value) {
                diag.problem(&at.key(name), r.what, r.allowed);
            }
        }
    }
    if diag.problems.len() > before {
        return None;
    }
    let defaults = defaults();
    let ttl = f.ttl.unwrap_or(defaults.ttl);
    let loop_wait = f.loop_wait.unwrap_or(defaults.loop_wait);
    let retry_timeout = f.retry_timeout.unwrap_or(defaults.retry_timeout);
    // Patroni's adjustment (not a refusal): the values in force always keep the rule, and
    // each change is said, with Patroni's words.
    let ((ttl, loop_wait, retry_timeout), adjusted) = adjust_timings(ttl, loop_wait, retry_timeout);
    for note in &adjusted {
        let key = ["ttl", "loop_wait", "retry_timeout"]
            .into_iter()
            .find(|k| note.starts_with(&format!("{k}=")))
            .or_else(|| {
                ["loop_wait", "retry_timeout", "ttl"]
                    .into_iter()
                    .find(|k| map.contains_key(*k))
            });
        let path = key.map_or_else(|| base.clone(), |k| base.key(k));
        diag.warn(&path, note.clone());
    }
    let maximum_lag_on_failover = f
        .maximum_lag_on_failover
        .unwrap_or(defaults.maximum_lag_on_failover);
    let use_pg_rewind = f.use_pg_rewind.unwrap_or(defaults.use_pg_rewind);
    let use_slots = f.use_slots.unwrap_or(defaults.use_slots);

    // What the first leader writes to `/config`: the section as written, every other Patroni
    // key included, with the defaults pgkeel acts on made explicit so that every node (and
    // Patroni nodes reading the same cluster) sees the same values.
    let mut json = map.clone();
    json.entry("ttl").or_insert_with(|| secs_json(ttl));
    json.entry("loop_wait")
        .or_insert_with(|| secs_json(loop_wait));
    json.entry("retry_timeout")
        .or_insert_with(|| secs_json(retry_timeout));
    json.entry("maximum_lag_on_failover")
        .or_insert_with(|| Value::from(maximum_lag_on_failover));
    let pg = json
        .entry("postgresql")
        .or_insert_with(|| Value::Object(Map::new()));
    if pg.is_null() {
        *pg = Value::Object(Map::new());
    }
    if let Value::Object(pg) = pg {
        pg.entry("use_pg_rewind")
            .or_insert(Value::Bool(use_pg_rewind));
        pg.entry("use_slots").or_insert(Value::Bool(use_slots));
    }

    let mut settled = settle(
        f,
        (ttl, loop_wait, retry_timeout),
        &defaults,
        Value::Object(json),
    );
    settled.timings_adjusted = adjusted;
    Some(settled)
}

/// Checks a whole `/config` value as strictly as `bootstrap.dcs` (used before writing a
/// `PATCH`/`PUT /config` or an `edit-config`): every problem in one message, naming the
/// key, what was found and what is allowed.
pub fn check_dynamic(config: &Value) -> Result<DynamicConfig, String> {
    check_dynamic_with(config, None)
}

/// [`check_dynamic`], with PostgreSQL parameters checked against `catalog` (a server's
/// `pg_settings`) when one is known.
pub fn check_dynamic_with(
    config: &Value,
    catalog: Option<&GucCatalog>,
) -> Result<DynamicConfig, String> {
    let mut diag = Diag::default();
    let checked = strict(Some(config), &KeyPath::root(), &mut diag, catalog);
    if diag.problems.is_empty() {
        if let Some(d) = checked {
            return Ok(d);
        }
    }
    Err(diag
        .problems
        .iter()
        .map(|p| format!("{}: {}; allowed: {}", p.path, p.found, p.allowed))
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::MIN_HANG_TIMEOUT;
    use super::*;

    #[test]
    fn timings_that_break_the_rule_are_adjusted_as_patroni_does() {
        let d = check_dynamic(&serde_json::json!({"ttl": 10, "loop_wait": 2, "retry_timeout": 3}))
            .unwrap();
        assert!(d.timings_adjusted.is_empty());
        // Patroni's acceptance scenario: PATCH {"ttl": 20} over loop_wait 10, retry 10.
        let d =
            check_dynamic(&serde_json::json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}))
                .unwrap();
        assert_eq!(d.ttl, Duration::from_secs(20));
        assert!(d.loop_wait + d.retry_timeout * 2 <= d.ttl);
        assert!(
            d.timings_adjusted[0].contains("Adjusting loop_wait"),
            "{:?}",
            d.timings_adjusted
        );
        assert_eq!(d.json["loop_wait"], 10, "/config keeps what was written");
        let e = check_dynamic(&serde_json::json!({"ttl": "soon"})).unwrap_err();
        assert!(e.contains("ttl"), "{e}");
    }

    #[test]
    fn primary_hang_timeout_defaults_to_half_the_ttl_and_refuses_bad_values() {
        let d = check_dynamic(&serde_json::json!({"ttl": 10})).unwrap();
        assert_eq!(d.hang_timeout(), Duration::from_secs(5));
        let d =
            check_dynamic(&serde_json::json!({"ttl": 2, "loop_wait": 0.5, "retry_timeout": 0.5}))
                .unwrap();
        assert_eq!(
            d.hang_timeout(),
            crate::config::DEFAULT_MIN_HANG_TIMEOUT,
            "the derived bound has a floor"
        );
        let d = check_dynamic(&serde_json::json!({"primary_hang_timeout": 1})).unwrap();
        assert_eq!(
            d.hang_timeout(),
            MIN_HANG_TIMEOUT,
            "an explicit bound may be lower"
        );
        let d = check_dynamic(&serde_json::json!({"primary_hang_timeout": 12})).unwrap();
        assert_eq!(d.hang_timeout(), Duration::from_secs(12));
        for bad in [
            serde_json::json!("abc"),
            serde_json::json!(-3),
            serde_json::json!(0.2),
        ] {
            let e = check_dynamic(&serde_json::json!({"primary_hang_timeout": bad})).unwrap_err();
            assert!(e.contains("primary_hang_timeout"), "{e}");
        }
    }
}
