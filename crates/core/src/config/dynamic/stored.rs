//! Patroni's dynamic keys checked for the shape Patroni gives them: the slot keys (which
//! `crate::slots` acts on) and those pgkeel keeps but does not act on yet (start and stop
//! timeouts, role-specific parameters...), so that a value Patroni (or pgkeel, once it acts
//! on the key) would refuse is refused when it is written, not found later on a node that
//! reads it.

use serde_json::{Map, Value};

use super::super::diag::{Diag, KeyPath};
use super::super::scalar::{self, found};
use super::read::parameters;

/// Checks every stored key present in `map` (a whole `/config` or `bootstrap.dcs`).
pub(super) fn check(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) {
    let at = |k: &str| base.key(k);
    for key in [
        "primary_start_timeout",
        "primary_stop_timeout",
        "master_start_timeout",
        "master_stop_timeout",
        "primary_race_backoff",
    ] {
        if let Some(v) = map.get(key) {
            non_negative_seconds(v, &at(key), diag);
        }
    }
    if let Some(v) = map.get("max_timelines_history") {
        scalar::unsigned(
            v,
            &at("max_timelines_history"),
            diag,
            "a number of timelines (an integer, 0 or more; 0 keeps all)",
        );
    }
    if let Some(v) = map.get("pause") {
        scalar::boolean(v, &at("pause"), diag);
    }
    if let Some(v) = map.get("member_slots_ttl") {
        slots_ttl(v, &at("member_slots_ttl"), diag);
    }
    for key in ["slots", "permanent_slots", "permanent_replication_slots"] {
        if let Some(v) = map.get(key) {
            slots(v, &at(key), diag);
        }
    }
    if let Some(v) = map.get("ignore_slots") {
        ignore_slots(v, &at("ignore_slots"), diag);
    }
    if let Some(Value::Object(pg)) = map.get("postgresql") {
        let at = |k: &str| base.key("postgresql").key(k);
        for key in [
            "parameters_primary",
            "parameters_replica",
            "parameters_standby_leader",
        ] {
            if let Some(v) = pg.get(key) {
                parameters(v, &at(key), diag);
            }
        }
        for key in [
            "pg_hba_primary",
            "pg_hba_replica",
            "pg_hba_standby_leader",
            "pg_ident",
            "pg_ident_primary",
            "pg_ident_replica",
            "pg_ident_standby_leader",
        ] {
            if let Some(v) = pg.get(key).filter(|v| !v.is_null()) {
                scalar::string_list(v, &at(key), diag);
            }
        }
        if let Some(v) = pg.get("recovery_conf").filter(|v| !v.is_null()) {
            parameters(v, &at("recovery_conf"), diag);
        }
    }
}

/// Patroni's start and stop timeouts: whole or decimal seconds, 0 or more.
fn non_negative_seconds(v: &Value, path: &KeyPath, diag: &mut Diag) {
    let ok = match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f >= 0.0 && f.is_finite()),
        _ => false,
    };
    if !ok {
        diag.problem(path, found(v), "a number of seconds, 0 or more");
    }
}

/// `member_slots_ttl`: seconds, or a duration with a unit (`30min`, Patroni's default).
fn slots_ttl(v: &Value, path: &KeyPath, diag: &mut Diag) {
    let ok = match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f >= 0.0 && f.is_finite()),
        Value::String(s) => {
            let s = s.trim();
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            digits > 0 && ["", "ms", "s", "min", "h", "d"].contains(&s[digits..].trim())
        }
        _ => false,
    };
    if !ok {
        diag.problem(
            path,
            found(v),
            "a number of seconds, or a whole number with a unit (ms, s, min, h, d) such as 30min",
        );
    }
}

/// A replication slot's name as PostgreSQL allows it: 1 to 63 of `a-z`, `0-9`, `_`.
fn slot_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Permanent slots: `{name: {type: physical}}` or `{name: {type: logical, database: d,
/// plugin: p}}`; an entry that is not a mapping (`null`, `0`) is a physical slot.
fn slots(v: &Value, path: &KeyPath, diag: &mut Diag) {
    let map = match v {
        Value::Null => return,
        Value::Object(m) => m,
        other => {
            diag.problem(
                path,
                found(other),
                "a mapping of slot name: {type: physical} or {type: logical, database, plugin}",
            );
            return;
        }
    };
    for (name, slot) in map {
        let at = path.key(name);
        if !slot_name_ok(name) {
            diag.problem(
                &at,
                format!("found the slot name {name:?}"),
                "a slot name of 1 to 63 lower-case letters, digits and underscores",
            );
        }
        let fields = match slot {
            // Patroni reads any value that is not a mapping as a physical slot (its own
            // acceptance suite writes `{"slots": {"name": 0}}`).
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => continue,
            Value::Object(f) => f,
            other => {
                diag.problem(
                    &at,
                    found(other),
                    "{type: physical} or {type: logical, database, plugin}",
                );
                continue;
            }
        };
        let text = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match fields.get("type").map(|t| t.as_str()) {
            None | Some(Some("physical")) => {}
            Some(Some("logical")) => {
                for k in ["database", "plugin"] {
                    if text(k).is_none() {
                        match fields.get(k) {
                            Some(v) => diag.problem(&at.key(k), found(v), "a non-empty string"),
                            None => diag.missing(&at.key(k), "a logical slot needs it"),
                        }
                    }
                }
            }
            Some(_) => diag.problem(
                &at.key("type"),
                found(&fields["type"]),
                "physical or logical",
            ),
        }
    }
}

/// `ignore_slots`: a list of `{name, type, database, plugin}` filters, each field a string.
fn ignore_slots(v: &Value, path: &KeyPath, diag: &mut Diag) {
    let items = match v {
        Value::Null => return,
        Value::Array(items) => items,
        other => {
            diag.problem(
                path,
                found(other),
                "a list of mappings with name, type, database and/or plugin",
            );
            return;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            diag.problem(
                &path.index(i),
                found(item),
                "a mapping with name, type, database and/or plugin",
            );
            continue;
        };
        for (k, v) in fields {
            if !["name", "type", "database", "plugin"].contains(&k.as_str()) {
                diag.problem(
                    &path.index(i).key(k),
                    "found an unknown field",
                    "name, type, database or plugin",
                );
            } else if !v.is_string() {
                diag.problem(&path.index(i).key(k), found(v), "a string");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::check_dynamic;

    #[test]
    fn the_issue_values_are_refused_naming_the_key() {
        for (bad, key) in [
            (
                json!({"primary_start_timeout": -5}),
                "primary_start_timeout",
            ),
            (
                json!({"primary_start_timeout": "abc"}),
                "primary_start_timeout",
            ),
            (json!({"slots": "abc"}), "slots"),
            (json!({"ignore_slots": 5}), "ignore_slots"),
            (
                json!({"ignore_slots": [{"nmae": "x"}]}),
                "ignore_slots[0].nmae",
            ),
            (json!({"slots": {"Bad-Name": {}}}), "slots.Bad-Name"),
            (
                json!({"slots": {"cdc": {"type": "logical", "database": "db"}}}),
                "slots.cdc.plugin",
            ),
            (
                json!({"slots": {"cdc": {"type": "logicl"}}}),
                "slots.cdc.type",
            ),
            (json!({"member_slots_ttl": "forever"}), "member_slots_ttl"),
            (
                json!({"max_timelines_history": -1}),
                "max_timelines_history",
            ),
            (json!({"pause": "maybe"}), "pause"),
            (
                json!({"postgresql": {"parameters_replica": [1]}}),
                "postgresql.parameters_replica",
            ),
        ] {
            let e = check_dynamic(&bad).unwrap_err();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn patroni_shaped_values_pass() {
        check_dynamic(&json!({
            "primary_start_timeout": 300,
            "primary_stop_timeout": 0,
            "max_timelines_history": 0,
            "member_slots_ttl": "30min",
            "pause": false,
            "slots": {
                "phys": {"type": "physical"},
                "empty": null,
                "zero": 0,
                "cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"},
            },
            "ignore_slots": [{"name": "x", "type": "logical"}],
            "postgresql": {"parameters_primary": {"work_mem": "8MB"}, "pg_ident": ["a b c"]},
        }))
        .unwrap();
    }
}
