//! A snapshot of the cluster as the DCS holds it, read once per loop.

use std::collections::BTreeMap;

use crate::dcs_values::{FailoverValue, HistoryEntry, MemberValue, StatusValue, SyncValue};

/// The leader key: who holds it and under which etcd lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderKey {
    pub name: String,
    /// The etcd lease the key is bound to (0 when none).
    pub lease: i64,
    /// etcd's mod_revision of the key, for compare-and-swap.
    pub revision: i64,
}

/// What the DCS says about a member: its value, or why it could not be read.
// Almost every entry is `Ok`, so boxing it would only add an allocation per member.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEntry {
    Ok(MemberValue),
    /// The key exists but its value is not valid; the member is known to exist, nothing more.
    Corrupt(String),
}

impl MemberEntry {
    pub fn value(&self) -> Option<&MemberValue> {
        match self {
            MemberEntry::Ok(v) => Some(v),
            MemberEntry::Corrupt(_) => None,
        }
    }
}

/// Everything under `/<namespace>/<scope>/`, as of one read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// `None`: no `initialize` key. `Some("")`: a node is bootstrapping. Otherwise the sysid.
    pub initialize: Option<String>,
    /// The `config` key as JSON, if present and valid JSON.
    pub config: Option<serde_json::Value>,
    /// The `config` key exists but is not a JSON object: why (bounded, for logs).
    pub config_unreadable: Option<String>,
    pub config_revision: i64,
    pub leader: Option<LeaderKey>,
    pub members: BTreeMap<String, MemberEntry>,
    /// The etcd lease each member key is bound to (0: none; such a key never expires).
    pub member_leases: BTreeMap<String, i64>,
    pub status: Option<StatusValue>,
    /// `None` when the key is absent.
    pub history: Option<Vec<HistoryEntry>>,
    /// A requested switchover or failover (`failover` key).
    pub failover: Option<FailoverValue>,
    pub failover_revision: i64,
    /// The `sync` key: whom the leader waits for, and who may therefore be promoted.
    pub sync: Option<SyncValue>,
    /// The `failsafe` key: `{name: api_url}` of every member the leader knew.
    pub failsafe: Option<BTreeMap<String, String>>,
    /// Problems met while reading (corrupt values), for logs and `list`.
    pub warnings: Vec<String>,
}

impl Cluster {
    /// What this read found in the `config` key.
    pub fn stored_config(&self) -> crate::config::StoredConfig<'_> {
        use crate::config::StoredConfig;
        match (&self.config, &self.config_unreadable) {
            (Some(v), _) => StoredConfig::Value(v),
            (None, Some(why)) => StoredConfig::Unreadable(why),
            (None, None) => StoredConfig::Absent,
        }
    }

    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    /// The leader key names `name` and is bound to its live lease `lease` (0: no lease).
    pub fn held_by(&self, name: &str, lease: i64) -> bool {
        lease != 0
            && self
                .leader
                .as_ref()
                .is_some_and(|l| l.name == name && l.lease == lease)
    }

    pub fn member(&self, name: &str) -> Option<&MemberValue> {
        self.members.get(name).and_then(MemberEntry::value)
    }

    /// `members/<me>` as this read found it is not `wanted` bound to `lease`: deleted,
    /// corrupt, another value (written by hand), or on another lease (a key written without
    /// one never expires). The agent then writes it again, so its key heals within one loop
    /// (Patroni rewrites its member key every loop).
    pub fn member_key_differs(&self, me: &str, wanted: &MemberValue, lease: i64) -> bool {
        !matches!(self.members.get(me), Some(MemberEntry::Ok(v)) if v == wanted)
            || self.member_leases.get(me) != Some(&lease)
    }

    /// The leader's last published WAL position (`/status.optime`).
    pub fn last_leader_lsn(&self) -> Option<u64> {
        self.status.as_ref().map(|s| s.optime)
    }

    /// Maintenance mode: `pause` in `/config` is on, read as Patroni reads it
    /// ([`crate::flag::is_on`]: `true`, `"on"`, `"yes"`, `1`...). Every reader of `pause`
    /// (the agents, `/cluster`, `list`, the admin endpoints) asks this.
    pub fn paused(&self) -> bool {
        crate::flag::is_on(self.config.as_ref().and_then(|c| c.get("pause")))
    }

    /// The timeline the cluster is on, derived from `/history` as Patroni does:
    /// last entry + 1, `[]` → 1, no key → 0 (unknown).
    pub fn timeline(&self) -> u32 {
        match &self.history {
            None => 0,
            Some(h) => h.last().map_or(1, |e| e.timeline + 1),
        }
    }

    /// `/history`'s newest switch was made by `leader`: the key reflects its latest
    /// promotion, so a timeline it does not list is not among the leader's ancestors.
    pub fn history_written_by(&self, leader: &str) -> bool {
        self.history
            .as_ref()
            .and_then(|h| h.last())
            .is_some_and(|e| e.new_leader.as_deref() == Some(leader))
    }

    /// The newest timeline anyone is known to have used: `/history`'s and every member's
    /// published one. A promotion must number its timeline past it (see
    /// `pgkeel_pg::Pg::promote`), or two branches could share one number.
    pub fn newest_known_timeline(&self) -> u32 {
        self.members
            .values()
            .filter_map(|m| m.value().and_then(|v| v.timeline))
            .chain(self.history.iter().flatten().map(|e| e.timeline + 1))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_member_key_deleted_corrupt_changed_or_on_another_lease_differs() {
        let mine = MemberValue {
            conn_url: "postgres://10.0.0.2:5432/postgres".into(),
            api_url: "http://10.0.0.2:8008/patroni".into(),
            state: "streaming".into(),
            role: "replica".into(),
            version: Some("15.8".into()),
            xlog_location: Some(0x300_0060),
            receive_lsn: Some(0x300_0060),
            replay_lsn: Some(0x300_0000),
            replication_state: Some("streaming".into()),
            timeline: Some(3),
            pending_restart: Some(true),
            ..Default::default()
        };
        // What the agent writes reads back equal, or it would rewrite its key every loop.
        let json = serde_json::to_vec(&mine).unwrap();
        let read = MemberValue::parse("/service/c/members/n2", &json).unwrap();
        assert_eq!(read, mine);
        let with = |entry: Option<MemberEntry>, lease: Option<i64>| {
            let mut c = Cluster::default();
            if let Some(e) = entry {
                c.members.insert("n2".into(), e);
            }
            if let Some(l) = lease {
                c.member_leases.insert("n2".into(), l);
            }
            c
        };
        assert!(
            !with(Some(MemberEntry::Ok(read.clone())), Some(7)).member_key_differs("n2", &mine, 7)
        );
        assert!(
            with(None, None).member_key_differs("n2", &mine, 7),
            "deleted"
        );
        assert!(
            with(Some(MemberEntry::Corrupt("garbage".into())), Some(7))
                .member_key_differs("n2", &mine, 7),
            "corrupt"
        );
        let mut other = mine.clone();
        other.role = "primary".into();
        assert!(
            with(Some(MemberEntry::Ok(other)), Some(7)).member_key_differs("n2", &mine, 7),
            "changed"
        );
        assert!(
            with(Some(MemberEntry::Ok(mine.clone())), Some(0)).member_key_differs("n2", &mine, 7),
            "written without a lease"
        );
    }

    #[test]
    fn pause_is_read_as_patroni_reads_it() {
        let with = |config: Option<serde_json::Value>| Cluster {
            config,
            ..Default::default()
        };
        assert!(!with(None).paused());
        assert!(!with(Some(json!({"ttl": 30}))).paused());
        for on in [
            json!(true),
            json!("on"),
            json!("Yes"),
            json!("TRUE"),
            json!(1),
        ] {
            assert!(with(Some(json!({ "pause": on }))).paused(), "{on}");
        }
        for off in [
            json!(false),
            json!(null),
            json!("off"),
            json!("sometimes"),
            json!(2),
        ] {
            assert!(!with(Some(json!({ "pause": off }))).paused(), "{off}");
        }
    }
}
