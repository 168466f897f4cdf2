//! The slot keys of `/config` as Patroni reads them: `slots` (aliases `permanent_slots`,
//! `permanent_replication_slots`), `ignore_slots` and `member_slots_ttl`.
//!
//! Parsed from the stored `/config` value, never failing: an entry Patroni would skip with
//! an error is kept in [`SlotsConfig::invalid`] instead, so that the planner can protect a
//! slot of that name (a typo in `/config` must not drop the slot a consumer reads from) and
//! the agent can log what is wrong, naming the entry.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// Patroni 4's default `member_slots_ttl`.
pub const DEFAULT_MEMBER_SLOTS_TTL: Duration = Duration::from_secs(1800);

/// A permanent slot of `/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermanentSlot {
    Physical,
    Logical { database: String, plugin: String },
}

/// One `ignore_slots` matcher: each field that is set must equal the slot's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMatcher {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

/// The slot settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsConfig {
    pub permanent: BTreeMap<String, PermanentSlot>,
    /// Entries of `slots` that are not valid: name as written, and what is wrong.
    pub invalid: Vec<(String, String)>,
    pub ignore: Vec<SlotMatcher>,
    pub member_slots_ttl: Duration,
}

impl Default for SlotsConfig {
    fn default() -> Self {
        SlotsConfig {
            permanent: BTreeMap::new(),
            invalid: Vec::new(),
            ignore: Vec::new(),
            member_slots_ttl: DEFAULT_MEMBER_SLOTS_TTL,
        }
    }
}

/// A replication slot's name as PostgreSQL allows it: 1 to 63 of `a-z`, `0-9`, `_`.
pub fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl SlotsConfig {
    /// Reads the slot keys of a `/config` value (anything that is not a mapping: defaults).
    pub fn from_dynamic(json: &Value) -> SlotsConfig {
        let mut cfg = SlotsConfig::default();
        let Value::Object(map) = json else {
            return cfg;
        };
        // Patroni takes the first of these that is set and not empty.
        let slots = ["permanent_replication_slots", "permanent_slots", "slots"]
            .iter()
            .filter_map(|k| map.get(*k))
            .find(|v| match v {
                Value::Object(m) => !m.is_empty(),
                Value::Null => false,
                _ => true,
            });
        match slots {
            Some(Value::Object(m)) => {
                for (name, value) in m {
                    match permanent_slot(name, value) {
                        Ok(slot) => {
                            cfg.permanent.insert(name.clone(), slot);
                        }
                        Err(why) => cfg.invalid.push((name.clone(), why)),
                    }
                }
            }
            Some(other) => cfg.invalid.push((
                String::new(),
                format!("slots is {other}, not a mapping of slot name to its settings"),
            )),
            None => {}
        }
        if let Some(Value::Array(items)) = map.get("ignore_slots") {
            cfg.ignore = items.iter().filter_map(matcher).collect();
        }
        if let Some(ttl) = map.get("member_slots_ttl").and_then(ttl) {
            cfg.member_slots_ttl = ttl;
        }
        cfg
    }

    /// Whether `ignore_slots` protects a slot with these attributes (Patroni's rule: every
    /// field a matcher sets is equal; a matcher without `name` matches any name).
    pub fn ignored(
        &self,
        name: &str,
        kind: &str,
        database: Option<&str>,
        plugin: Option<&str>,
    ) -> bool {
        self.ignore.iter().any(|m| {
            m.name.as_deref().is_none_or(|n| n == name)
                && m.kind.as_deref().is_none_or(|k| k == kind)
                && m.database.as_deref().is_none_or(|d| Some(d) == database)
                && m.plugin.as_deref().is_none_or(|p| Some(p) == plugin)
        })
    }
}

/// One entry of `slots`, as Patroni's `is_physical_slot` / `is_logical_slot` read it.
fn permanent_slot(name: &str, value: &Value) -> Result<PermanentSlot, String> {
    if !valid_slot_name(name) {
        return Err(format!(
            "slots.{name}: the slot name {name:?} is not 1 to 63 lower-case letters, digits and underscores"
        ));
    }
    let fields = match value {
        // Patroni: any value that is not a mapping (null, 0, "") is a physical slot...
        Value::Object(f) => f,
        Value::Array(_) => {
            return Err(format!(
                "slots.{name}: found a list, expected {{type: physical}} or {{type: logical, database, plugin}}"
            ))
        }
        _ => return Ok(PermanentSlot::Physical),
    };
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let logical = || match (text("database"), text("plugin")) {
        (Some(database), Some(plugin)) => Ok(PermanentSlot::Logical { database, plugin }),
        (None, _) => Err(format!(
            "slots.{name}.database: a logical slot needs a non-empty database"
        )),
        (_, None) => Err(format!(
            "slots.{name}.plugin: a logical slot needs a non-empty plugin"
        )),
    };
    match fields.get("type") {
        None => {
            if text("database").is_some() && text("plugin").is_some() {
                logical()
            } else {
                Ok(PermanentSlot::Physical)
            }
        }
        Some(Value::String(t)) if t == "physical" => Ok(PermanentSlot::Physical),
        Some(Value::String(t)) if t == "logical" => logical(),
        Some(other) => Err(format!(
            "slots.{name}.type: found {other}, expected physical or logical"
        )),
    }
}

fn matcher(item: &Value) -> Option<SlotMatcher> {
    let Value::Object(f) = item else {
        return None;
    };
    let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
    Some(SlotMatcher {
        name: s("name"),
        kind: s("type"),
        database: s("database"),
        plugin: s("plugin"),
    })
}

/// `member_slots_ttl`: seconds, or a whole number with a unit (Patroni's `parse_int` with
/// base unit `s`); `None` when it cannot be read (the default applies).
fn ttl(v: &Value) -> Option<Duration> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(Duration::from_secs_f64),
        Value::String(s) => {
            let s = s.trim();
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n: u64 = s[..digits].parse().ok()?;
            let unit = match s[digits..].trim() {
                "ms" => return Some(Duration::from_millis(n)),
                "" | "s" => 1,
                "min" => 60,
                "h" => 3600,
                "d" => 86400,
                _ => return None,
            };
            Some(Duration::from_secs(n.checked_mul(unit)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_patroni_shapes() {
        let c = SlotsConfig::from_dynamic(&json!({
            "slots": {
                "test_physical": 0,
                "p2": null,
                "p3": {"type": "physical"},
                "cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
                "implicit": {"database": "db", "plugin": "pgoutput"},
            },
            "ignore_slots": [{"name": "ext", "type": "physical"}, {"plugin": "wal2json"}],
            "member_slots_ttl": "5min",
        }));
        assert_eq!(c.permanent["test_physical"], PermanentSlot::Physical);
        assert_eq!(c.permanent["p2"], PermanentSlot::Physical);
        assert_eq!(c.permanent["p3"], PermanentSlot::Physical);
        assert_eq!(
            c.permanent["cdc"],
            PermanentSlot::Logical {
                database: "postgres".into(),
                plugin: "test_decoding".into()
            }
        );
        assert!(matches!(
            c.permanent["implicit"],
            PermanentSlot::Logical { .. }
        ));
        assert!(c.invalid.is_empty());
        assert_eq!(c.member_slots_ttl, Duration::from_secs(300));
        assert!(c.ignored("ext", "physical", None, None));
        assert!(!c.ignored("ext", "logical", Some("d"), Some("p")));
        assert!(c.ignored("any", "logical", Some("d"), Some("wal2json")));
        assert!(!c.ignored("any", "physical", None, None));
    }

    #[test]
    fn defaults_without_keys() {
        let c = SlotsConfig::from_dynamic(&json!({"ttl": 30}));
        assert_eq!(c, SlotsConfig::default());
        assert_eq!(c.member_slots_ttl, DEFAULT_MEMBER_SLOTS_TTL);
        assert_eq!(
            SlotsConfig::from_dynamic(&json!({"member_slots_ttl": 0})).member_slots_ttl,
            Duration::ZERO
        );
        assert_eq!(
            SlotsConfig::from_dynamic(&json!({"member_slots_ttl": "forever"})).member_slots_ttl,
            DEFAULT_MEMBER_SLOTS_TTL
        );
    }

    #[test]
    fn bad_entries_are_named_not_taken() {
        let c = SlotsConfig::from_dynamic(&json!({"slots": {
            "Bad-Name": 0,
            "nodb": {"type": "logical", "plugin": "p"},
            "noplugin": {"type": "logical", "database": "d"},
            "typo": {"type": "logicl"},
            "list": [1],
            "fine": 0,
        }}));
        assert_eq!(c.permanent.keys().collect::<Vec<_>>(), vec!["fine"]);
        let names: Vec<&str> = c.invalid.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["Bad-Name", "list", "nodb", "noplugin", "typo"]);
        for (name, why) in &c.invalid {
            assert!(why.contains(name.as_str()), "{why} names {name}");
        }
        assert!(c.invalid[2].1.contains("database"));
        assert!(c.invalid[3].1.contains("plugin"));
        assert!(c.invalid[4].1.contains("type"));
    }
}

/// Patroni's `should_enforce_hot_standby_feedback`, for this node's own slots: a node that
/// keeps copies of permanent logical slots (slots on, a failover candidate that streams)
/// runs with `hot_standby_feedback = on`, so that the primary keeps the catalog rows those
/// slots need and a copy is usable after a failover. (Patroni also turns it on for an
/// upstream of such a node; pgkeel's replicas all stream from the leader.)
pub fn needs_hot_standby_feedback(
    cfg: &SlotsConfig,
    use_slots: bool,
    tags: &crate::tags::Tags,
) -> bool {
    use_slots
        && tags.may_promote()
        && !crate::flag::is_on(tags.to_json().get("nostream"))
        && cfg
            .permanent
            .values()
            .any(|s| matches!(s, PermanentSlot::Logical { .. }))
}

#[cfg(test)]
mod feedback_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hot_standby_feedback_where_logical_copies_are_kept() {
        let logical = SlotsConfig::from_dynamic(
            &json!({"slots": {"cdc": {"type": "logical", "database": "d", "plugin": "p"}}}),
        );
        let physical = SlotsConfig::from_dynamic(&json!({"slots": {"p": 0}}));
        let tags = crate::tags::Tags::default();
        assert!(needs_hot_standby_feedback(&logical, true, &tags));
        assert!(!needs_hot_standby_feedback(&physical, true, &tags));
        assert!(!needs_hot_standby_feedback(&logical, false, &tags));
        let nofailover: crate::tags::Tags =
            serde_json::from_value(json!({"nofailover": true})).unwrap();
        assert!(!needs_hot_standby_feedback(&logical, true, &nofailover));
        let nostream: crate::tags::Tags =
            serde_json::from_value(json!({"nostream": true})).unwrap();
        assert!(!needs_hot_standby_feedback(&logical, true, &nostream));
    }
}
