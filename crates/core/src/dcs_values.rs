//! The values pgkeel and Patroni store under `/<namespace>/<scope>/`, in Patroni's shapes.
//!
//! Parsing is tolerant in the way Patroni's is: a value that is not what we expect is
//! reported as an error naming the key, never a panic, and the caller decides what an
//! unreadable key means (usually: treat that member as unknown).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::quote::{clip, clip_sized, quote, quote_json};
use crate::tags::Tags;

/// `members/<name>`: what each node publishes about itself every loop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberValue {
    pub conn_url: String,
    pub api_url: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_after_promote: Option<bool>,
    /// A parameter change waits for a restart (only written when true, as Patroni does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// `{"param": {"old_value": "...", "new_value": "..."}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart_reason: Option<Value>,
    /// A scheduled restart, `{"schedule": "<iso>", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<Value>,
    /// The member runs in maintenance mode (only written when true, as Patroni does):
    /// `patronictl pause --wait` waits for every member key to say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    /// `postgresql.proxy_address` as Patroni publishes it (`postgres://host:port/postgres`):
    /// where poolers and routing templates send this member's clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
}

/// A DCS value that is not what Patroni writes. Both fields are bounded (see
/// [`crate::quote`]): the key may be as long as the value, and parser messages quote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value of key {key} is not valid: {reason}")]
pub struct ValueError {
    pub key: String,
    pub reason: String,
}

impl ValueError {
    /// `reason` must quote any part of the value through [`crate::quote`].
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        ValueError {
            key: clip(key).to_string(),
            reason: reason.into(),
        }
    }

    /// A JSON parser's complaint about a value of `bytes` bytes, which may quote it whole.
    fn json(key: &str, bytes: usize, e: &serde_json::Error) -> Self {
        ValueError::new(key, clip_sized(&e.to_string(), bytes).to_string())
    }
}

impl MemberValue {
    /// Parses a `members/<name>` value. Like Patroni, a bare `postgres://...` string is taken
    /// as a conn_url of a member that published nothing else.
    pub fn parse(key: &str, raw: &[u8]) -> Result<Self, ValueError> {
        let text = std::str::from_utf8(raw).map_err(|_| ValueError::new(key, "not UTF-8"))?;
        if text.starts_with("postgres") {
            return Ok(MemberValue {
                conn_url: text.to_string(),
                ..Default::default()
            });
        }
        serde_json::from_str(text).map_err(|e| ValueError::json(key, text.len(), &e))
    }

    /// The `host:port` part of `conn_url` (`postgres://host:port/db`).
    pub fn pg_host_port(&self) -> Option<(String, u16)> {
        parse_url_host_port(&self.conn_url)
    }

    /// The highest WAL position this member reported.
    pub fn wal_position(&self) -> u64 {
        [self.xlog_location, self.receive_lsn, self.replay_lsn]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
    }
}

/// Splits `scheme://host:port/path` into host and port; IPv6 hosts are written `[::1]`.
pub fn parse_url_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// `status`: the leader's last WAL position and slot positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusValue {
    pub optime: u64,
    #[serde(default)]
    pub slots: serde_json::Map<String, Value>,
    #[serde(default)]
    pub retain_slots: Vec<String>,
}

impl StatusValue {
    pub fn parse(key: &str, raw: &[u8]) -> Result<Self, ValueError> {
        // Patroni < 2.1 kept a plain integer in optime/leader; accept one here too.
        if let Ok(n) = std::str::from_utf8(raw).unwrap_or("").trim().parse::<u64>() {
            return Ok(StatusValue {
                optime: n,
                ..Default::default()
            });
        }
        serde_json::from_slice(raw).map_err(|e| ValueError::json(key, raw.len(), &e))
    }
}

/// `failover`: a requested switchover (`leader` set) or failover (only `member`), possibly
/// scheduled. Patroni's legacy `"leader:candidate"` string is read too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// ISO 8601 with a time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

impl FailoverValue {
    pub fn parse(key: &str, raw: &[u8]) -> Result<Self, ValueError> {
        let err = |reason: String| ValueError::new(key, reason);
        let text = std::str::from_utf8(raw).map_err(|_| err("not UTF-8".into()))?;
        if let Ok(v) = serde_json::from_str::<FailoverValue>(text) {
            return Ok(v);
        }
        // Legacy "leader:candidate" (either side may be empty).
        let (leader, member) = text.split_once(':').ok_or_else(|| {
            err(format!(
                "{} is neither JSON nor leader:candidate",
                quote(text)
            ))
        })?;
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Ok(FailoverValue {
            leader: some(leader),
            member: some(member),
            scheduled_at: None,
        })
    }
}

/// `sync`: who the leader waits for. `sync_standby` is written sorted and comma-joined (or
/// `null`), `quorum` is how many other voters a candidate needs (quorum mode; 0 otherwise),
/// as Patroni 4 writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncValue {
    pub leader: Option<String>,
    pub sync_standby: std::collections::BTreeSet<String>,
    pub quorum: u32,
}

impl SyncValue {
    pub fn parse(key: &str, raw: &[u8]) -> Result<Self, ValueError> {
        let err = |reason: String| ValueError::new(key, reason);
        let v: Value =
            serde_json::from_slice(raw).map_err(|e| ValueError::json(key, raw.len(), &e))?;
        let Value::Object(m) = v else {
            return Err(err("expected a JSON object".into()));
        };
        let leader = match m.get("leader") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(err(format!("leader {} is not a string", quote_json(other))))
            }
        };
        let sync_standby = match m.get("sync_standby") {
            None | Some(Value::Null) => Default::default(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect(),
            Some(other) => {
                return Err(err(format!(
                    "sync_standby {} is not a string",
                    quote_json(other)
                )))
            }
        };
        let quorum = match m.get("quorum") {
            None | Some(Value::Null) => 0,
            Some(q) => q
                .as_u64()
                .and_then(|q| u32::try_from(q).ok())
                .ok_or_else(|| err(format!("quorum {} is not a count", quote_json(q))))?,
        };
        Ok(SyncValue {
            leader,
            sync_standby,
            quorum,
        })
    }

    /// Patroni's shape: `{"leader":"n1","quorum":0,"sync_standby":"n2,n3"}`.
    pub fn to_json(&self) -> Value {
        let standbys = if self.sync_standby.is_empty() {
            Value::Null
        } else {
            Value::from(
                self.sync_standby
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        serde_json::json!({
            "leader": self.leader,
            "quorum": self.quorum,
            "sync_standby": standbys,
        })
    }

    /// Whether `name` is one of the synchronous standbys (Patroni compares case-insensitively).
    pub fn names(&self, name: &str) -> bool {
        self.sync_standby
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// `failsafe`: every member the leader knows, `{name: api_url}`.
pub fn parse_failsafe(
    key: &str,
    raw: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, ValueError> {
    serde_json::from_slice(raw).map_err(|e| ValueError::json(key, raw.len(), &e))
}

/// One line of `history`: `[timeline, lsn, reason, timestamp, new_leader]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub timeline: u32,
    pub lsn: u64,
    pub reason: String,
    pub timestamp: Option<String>,
    pub new_leader: Option<String>,
}

impl HistoryEntry {
    pub fn to_json(&self) -> Value {
        let mut v = vec![
            Value::from(self.timeline),
            Value::from(self.lsn),
            Value::from(self.reason.clone()),
        ];
        if let Some(ts) = &self.timestamp {
            v.push(Value::from(ts.clone()));
            if let Some(l) = &self.new_leader {
                v.push(Value::from(l.clone()));
            }
        }
        Value::Array(v)
    }
}

/// Parses `history`. Entries of three to five elements are accepted, as Patroni writes them.
pub fn parse_history(key: &str, raw: &[u8]) -> Result<Vec<HistoryEntry>, ValueError> {
    let err = |reason: String| ValueError::new(key, reason);
    let v: Value = serde_json::from_slice(raw).map_err(|e| ValueError::json(key, raw.len(), &e))?;
    let Value::Array(items) = v else {
        return Err(err("expected a JSON list".into()));
    };
    items
        .iter()
        .map(|item| {
            let a = item.as_array().filter(|a| a.len() >= 3).ok_or_else(|| {
                err(format!(
                    "entry {} is not [timeline, lsn, reason, ...]",
                    quote_json(item)
                ))
            })?;
            let timeline = a[0]
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| err(format!("timeline {} is not a number", quote_json(&a[0]))))?;
            let lsn = a[1]
                .as_u64()
                .ok_or_else(|| err(format!("lsn {} is not a number", quote_json(&a[1]))))?;
            let s = |i: usize| a.get(i).and_then(|v| v.as_str()).map(str::to_string);
            Ok(HistoryEntry {
                timeline,
                lsn,
                reason: s(2).unwrap_or_default(),
                timestamp: s(3),
                new_leader: s(4),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_value_reads_patroni_json() {
        let raw = br#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",
            "state":"running","role":"replica","version":"4.1.4","xlog_location":50331856,
            "receive_lsn":50331856,"replay_lsn":50331800,"replication_state":"streaming","timeline":3,
            "tags":{"nofailover":true,"zone":"a"}}"#;
        let m = MemberValue::parse("members/n1", raw).unwrap();
        assert_eq!(m.pg_host_port(), Some(("127.0.0.1".into(), 5432)));
        assert_eq!(m.wal_position(), 50331856);
        assert!(m.tags.nofailover);
        assert!(!m.tags.may_promote());
        assert_eq!(m.tags.value_of("zone").as_deref(), Some("a"));
        assert_eq!(m.tags.value_of("nofailover").as_deref(), Some("true"));
    }

    #[test]
    fn member_value_accepts_bare_conn_url_and_rejects_garbage() {
        let m = MemberValue::parse("members/x", b"postgres://h:1/postgres").unwrap();
        assert_eq!(m.pg_host_port(), Some(("h".into(), 1)));
        let e = MemberValue::parse("members/x", b"{not json").unwrap_err();
        assert_eq!(e.key, "members/x");
    }

    #[test]
    fn history_round_trips() {
        let raw = br#"[[1, 50331808, "no recovery target specified", "2024-01-01T00:00:00+00:00", "n2"], [2, 60000000, "x"]]"#;
        let h = parse_history("history", raw).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].new_leader.as_deref(), Some("n2"));
        assert_eq!(h[1].timestamp, None);
        let back = Value::Array(h.iter().map(HistoryEntry::to_json).collect());
        assert_eq!(
            parse_history("history", back.to_string().as_bytes()).unwrap(),
            h
        );
        assert!(parse_history("history", b"{}").is_err());
        assert!(parse_history("history", b"[[\"a\", 1, \"r\"]]").is_err());
    }

    #[test]
    fn failover_reads_json_and_the_legacy_string() {
        let f = FailoverValue::parse(
            "failover",
            br#"{"leader":"n1","member":"n2","scheduled_at":"2026-01-01T00:00:00+00:00"}"#,
        )
        .unwrap();
        assert_eq!(
            (f.leader.as_deref(), f.member.as_deref()),
            (Some("n1"), Some("n2"))
        );
        let f = FailoverValue::parse("failover", b"n1:n3").unwrap();
        assert_eq!(
            (f.leader.as_deref(), f.member.as_deref()),
            (Some("n1"), Some("n3"))
        );
        let f = FailoverValue::parse("failover", b":n3").unwrap();
        assert_eq!(f.leader, None);
        assert!(FailoverValue::parse("failover", b"garbage").is_err());
    }

    #[test]
    fn sync_value_reads_and_writes_patroni_shapes() {
        let v = SyncValue::parse(
            "sync",
            br#"{"leader":"n1","quorum":1,"sync_standby":"n3,n2"}"#,
        )
        .unwrap();
        assert_eq!(v.leader.as_deref(), Some("n1"));
        assert_eq!(v.quorum, 1);
        assert!(v.names("n2") && v.names("N3") && !v.names("n1"));
        assert_eq!(
            v.to_json().to_string(),
            r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#
        );
        let empty = SyncValue::parse("sync", br#"{"leader":"n1","sync_standby":null}"#).unwrap();
        assert!(empty.sync_standby.is_empty());
        assert_eq!(empty.quorum, 0);
        assert!(SyncValue::parse("sync", b"[]").is_err());
        assert!(SyncValue::parse("sync", br#"{"quorum":-1}"#).is_err());
        assert!(SyncValue::parse("sync", br#"{"sync_standby":3}"#).is_err());
    }

    #[test]
    fn status_accepts_json_and_legacy_integer() {
        assert_eq!(
            StatusValue::parse("status", br#"{"optime": 42}"#)
                .unwrap()
                .optime,
            42
        );
        assert_eq!(
            StatusValue::parse("optime/leader", b"42").unwrap().optime,
            42
        );
        assert!(StatusValue::parse("status", b"[]").is_err());
    }
}
