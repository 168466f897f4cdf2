//! Member tags, as Patroni spells them in its YAML and in `members/<name>`.
//!
//! Two views of the same tags: the typed fields pgkeel decides with, and the map exactly as
//! written (Patroni's `_filter_tags` applied), which is what `members/<name>` and
//! `/patroni` show. Patroni publishes the YAML's values untouched (`failover_priority: '1'`
//! stays the string `'1'`), and tools compare them as written.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::flag::truthy;

/// Tags of one member. Unknown tags are kept so that `?tag_<k>=<v>` filters and peers see them.
/// Two values are equal when they decide alike and publish alike (the agent compares what
/// it wrote with what it reads back).
#[derive(Debug, Clone, Eq)]
pub struct Tags {
    pub nofailover: bool,
    /// 0 means "never promote", like `nofailover`. Patroni's default is 1.
    pub failover_priority: u32,
    pub noloadbalance: bool,
    pub clonefrom: bool,
    pub nosync: bool,
    /// Preference when choosing synchronous standbys (higher first); 0 means never, like
    /// `nosync`. Patroni's default is 1.
    pub sync_priority: u32,
    /// Tags that are not Patroni's predefined ones.
    pub other: Map<String, Value>,
    /// The tags as written in the config (or as a peer published them), filtered as
    /// Patroni filters them; `None` for tags built in code, published from the typed fields.
    pub published: Option<Map<String, Value>>,
}

/// Patroni's predefined boolean tags, published only when set (`Tags._filter_tags`).
const BOOLEAN_TAGS: &[&str] = &[
    "clonefrom",
    "nofailover",
    "noloadbalance",
    "nosync",
    "nostream",
];

/// Patroni's `Tags._filter_tags`: custom tags always; boolean tags when true, and
/// `nofailover`/`nosync` also when their priority tag is given (both are needed to see a
/// contradiction).
pub fn patroni_filter(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, v)| {
            !BOOLEAN_TAGS.contains(&k.as_str())
                || truthy(v)
                || (k.as_str() == "nofailover" && map.contains_key("failover_priority"))
                || (k.as_str() == "nosync" && map.contains_key("sync_priority"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Patroni's `parse_int` of a priority as a peer may have published it: a number, or a
/// string holding one; negative counts as 0.
fn priority_of(v: Option<&Value>) -> Option<u32> {
    let n = match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Bool(b) => i64::from(*b),
        _ => return None,
    };
    Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

impl Tags {
    /// Tags as a peer published them, read as Patroni reads a member's tags: a boolean tag
    /// by Python truthiness (so a string `"false"` counts as set, the cautious reading for
    /// `nofailover`), a priority with `parse_int`; where the boolean and its priority
    /// disagree the boolean wins, as in Patroni.
    pub fn from_published(map: Map<String, Value>) -> Tags {
        let flag = |k: &str| map.get(k).is_some_and(truthy);
        let pair = |bool_name: &str, priority_name: &str| -> (bool, u32) {
            let priority = priority_of(map.get(priority_name));
            match map.get(bool_name) {
                Some(b) if truthy(b) => (true, priority.unwrap_or(1)),
                // `false` given: promotable whatever the priority says.
                Some(_) => (false, priority.unwrap_or(1).max(1)),
                None => (false, priority.unwrap_or(1)),
            }
        };
        let (nofailover, failover_priority) = pair("nofailover", "failover_priority");
        let (nosync, sync_priority) = pair("nosync", "sync_priority");
        // As the config keeps them: custom tags, and `nostream` (not acted on) when set.
        let other = map
            .iter()
            .filter(|(k, v)| match k.as_str() {
                "nostream" => truthy(v),
                k => {
                    !BOOLEAN_TAGS.contains(&k)
                        && !matches!(k, "failover_priority" | "sync_priority")
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Tags {
            nofailover,
            failover_priority,
            noloadbalance: flag("noloadbalance"),
            clonefrom: flag("clonefrom"),
            nosync,
            sync_priority,
            other,
            published: Some(patroni_filter(&map)),
        }
    }

    /// The typed fields as Patroni would publish them (only non-default values).
    fn typed_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, on) in [
            ("nofailover", self.nofailover),
            ("noloadbalance", self.noloadbalance),
            ("clonefrom", self.clonefrom),
            ("nosync", self.nosync),
        ] {
            if on {
                m.insert(k.into(), Value::Bool(true));
            }
        }
        if self.failover_priority != 1 {
            m.insert("failover_priority".into(), self.failover_priority.into());
        }
        if self.sync_priority != 1 {
            m.insert("sync_priority".into(), self.sync_priority.into());
        }
        for (k, v) in &self.other {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

impl PartialEq for Tags {
    fn eq(&self, o: &Tags) -> bool {
        self.nofailover == o.nofailover
            && self.failover_priority == o.failover_priority
            && self.noloadbalance == o.noloadbalance
            && self.clonefrom == o.clonefrom
            && self.nosync == o.nosync
            && self.sync_priority == o.sync_priority
            && self.other == o.other
            && self.to_json() == o.to_json()
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.published {
            Some(m) => m.serialize(s),
            None => self.typed_json().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Anything but a mapping (a peer's `"tags": null`) reads as no tags.
        Ok(match Value::deserialize(d)? {
            Value::Object(m) => Tags::from_published(m),
            _ => Tags::default(),
        })
    }
}

impl Default for Tags {
    fn default() -> Self {
        Tags {
            nofailover: false,
            failover_priority: 1,
            noloadbalance: false,
            clonefrom: false,
            nosync: false,
            sync_priority: 1,
            other: Map::new(),
            published: None,
        }
    }
}

impl Tags {
    /// Whether this member may ever become leader automatically.
    pub fn may_promote(&self) -> bool {
        !self.nofailover && self.failover_priority > 0
    }

    /// Whether this member may be chosen as a synchronous standby.
    pub fn may_be_sync(&self) -> bool {
        !self.nosync && self.sync_priority > 0
    }

    /// The tags as the JSON object Patroni publishes.
    pub fn to_json(&self) -> Value {
        Value::Object(match &self.published {
            Some(m) => m.clone(),
            None => self.typed_json(),
        })
    }

    /// A tag's value as Patroni compares it in `?tag_<k>=<v>`: strings as-is, others lowercased.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let v = match self.to_json() {
            Value::Object(m) => m.get(key).cloned(),
            _ => None,
        }?;
        Some(match v {
            Value::String(s) => s,
            other => other.to_string().to_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Tags {
        serde_json::from_value(v).unwrap()
    }

    /// A Patroni peer's tags read as Patroni reads them, and published back unchanged.
    #[test]
    fn peers_tags_read_as_patroni_reads_them() {
        let t = read(json!({"failover_priority": "2", "zone": "a"}));
        assert_eq!((t.nofailover, t.failover_priority), (false, 2));
        assert_eq!(t.value_of("zone").as_deref(), Some("a"));
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"failover_priority": "2", "zone": "a"})
        );
        // The boolean wins over its priority, both ways.
        let t = read(json!({"failover_priority": "1", "nofailover": true}));
        assert!(!t.may_promote());
        let t = read(json!({"failover_priority": 0, "nofailover": false}));
        assert!(t.may_promote());
        // A priority alone: 0 (or negative) never promotes.
        assert!(!read(json!({"failover_priority": -3})).may_promote());
        assert!(!read(json!({"sync_priority": "0"})).may_be_sync());
        // Python truthiness: a string "false" is set, the cautious reading.
        assert!(!read(json!({"nofailover": "false"})).may_promote());
        // Garbage priorities fall back to Patroni's default 1; non-mappings are no tags.
        assert!(read(json!({"failover_priority": "high"})).may_promote());
        assert_eq!(read(json!(null)), Tags::default());
        assert_eq!(read(json!([1])), Tags::default());
    }

    #[test]
    fn tags_built_in_code_publish_only_what_differs_from_the_defaults() {
        let mut t = Tags::default();
        assert_eq!(t.to_json(), json!({}));
        t.nofailover = true;
        t.sync_priority = 0;
        t.other.insert("zone".into(), "a".into());
        assert_eq!(
            t.to_json(),
            json!({"nofailover": true, "sync_priority": 0, "zone": "a"})
        );
        assert_eq!(read(t.to_json()).to_json(), t.to_json());
    }
}
