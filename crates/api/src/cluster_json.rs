//! `GET /cluster` (Patroni `utils.cluster_as_json` + `scope`), also the input of
//! `patronictl list`.

use pgkeel_core::cluster::{Cluster, MemberEntry};
use pgkeel_core::config::sync_mode_in;
use pgkeel_core::dcs_values::{parse_url_host_port, MemberValue};
use pgkeel_core::lsn::Lsn;
use serde_json::{json, Map, Value};

use crate::sync_standby::sync_kind;

/// Host and port of `conn_url`, the way Patroni's `conn_kwargs` reads them: the port is
/// optional.
fn host_port(m: &MemberValue) -> Option<(String, Option<u16>)> {
    if let Some((h, p)) = parse_url_host_port(&m.conn_url) {
        return Some((h, Some(p)));
    }
    let rest = m.conn_url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), None))
}

/// The cluster as Patroni's `/cluster` shows it. Members are sorted by name; non-leaders
/// carry their LSNs (`X/X`) and lag in bytes behind `/status.optime` (0 when ahead,
/// "unknown" when the member published no position). A member `/sync` lists is a
/// `sync_standby` or `quorum_standby` when the `/config` key asks for that mode: like
/// Patroni's `cluster_as_json`, this reads the cluster's own config, so `list` run
/// anywhere agrees with the agents.
pub fn cluster_json(cluster: &Cluster, scope: &str) -> Value {
    let leader = cluster.leader_name();
    let sync_mode = sync_mode_in(cluster.config.as_ref());
    // Patroni: `cluster.status.last_lsn`, 0 without a status key.
    let cluster_lsn = cluster.last_leader_lsn().unwrap_or(0);
    // BTreeMap iteration is already sorted by name.
    let members: Vec<Value> = cluster
        .members
        .iter()
        .map(|(name, entry)| {
            // A member whose value cannot be parsed is shown with no data, like Patroni's
            // `Member.from_node` does with invalid JSON.
            let empty = MemberValue::default();
            let m = match entry {
                MemberEntry::Ok(v) => v,
                MemberEntry::Corrupt(_) => &empty,
            };
            let is_leader = Some(name.as_str()) == leader;
            let role = if is_leader {
                "leader"
            } else {
                sync_kind(sync_mode, cluster, name).map_or("replica", |k| k.role())
            };
            let state = if is_leader {
                m.state.clone()
            } else {
                m.replication_state
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| m.state.clone())
            };
            let mut o = Map::new();
            o.insert("name".into(), name.as_str().into());
            o.insert("role".into(), role.into());
            o.insert("state".into(), state.into());
            let api_url = Some(m.api_url.as_str()).filter(|u| !u.is_empty());
            o.insert("api_url".into(), api_url.into());
            if let Some((host, port)) = host_port(m) {
                o.insert("host".into(), host.into());
                if let Some(p) = port {
                    o.insert("port".into(), p.into());
                }
            }
            if let Some(tl) = m.timeline {
                o.insert("timeline".into(), tl.into());
            }
            let tags = m.tags.to_json();
            if tags.as_object().is_some_and(|t| !t.is_empty()) {
                o.insert("tags".into(), tags);
            }
            if m.pending_restart == Some(true) {
                o.insert("pending_restart".into(), true.into());
            }
            if let Some(r) = &m.pending_restart_reason {
                o.insert("pending_restart_reason".into(), r.clone());
            }
            if let Some(r) = &m.scheduled_restart {
                o.insert("scheduled_restart".into(), r.clone());
            }
            if !is_leader {
                for (prefix, lsn) in [
                    ("receive_", m.receive_lsn),
                    ("replay_", m.replay_lsn),
                    ("", m.xlog_location),
                ] {
                    let (lsn_v, lag_v) = match lsn.filter(|l| *l != 0) {
                        None => (json!("unknown"), json!("unknown")),
                        Some(l) => (
                            json!(Lsn(l).to_string()),
                            json!(cluster_lsn.saturating_sub(l)),
                        ),
                    };
                    o.insert(format!("{prefix}lsn"), lsn_v);
                    o.insert(format!("{prefix}lag"), lag_v);
                }
            }
            Value::Object(o)
        })
        .collect();
    let mut ret = Map::new();
    ret.insert("members".into(), Value::Array(members));
    ret.insert("scope".into(), scope.into());
    if cluster.paused() {
        ret.insert("pause".into(), true.into());
    }
    // Only a scheduled switchover is shown; an immediate one is over within a loop.
    if let Some(f) = cluster.failover.as_ref() {
        if let Some(at) = f.scheduled_at.as_deref().filter(|a| !a.is_empty()) {
            let mut s = Map::new();
            s.insert("at".into(), at.into());
            if let Some(l) = f.leader.as_deref().filter(|l| !l.is_empty()) {
                s.insert("from".into(), l.into());
            }
            if let Some(m) = f.member.as_deref().filter(|m| !m.is_empty()) {
                s.insert("to".into(), m.into());
            }
            ret.insert("scheduled_switchover".into(), Value::Object(s));
        }
    }
    Value::Object(ret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn leader_and_replicas() {
        let mut c = cluster();
        {
            let MemberEntry::Ok(n2) = c.members.get_mut("node2").unwrap() else {
                unreachable!()
            };
            n2.replication_state = Some("streaming".into());
            n2.receive_lsn = Some(LEADER_LSN);
            n2.replay_lsn = Some(LEADER_LSN - 100);
            n2.xlog_location = Some(LEADER_LSN + 8);
            n2.tags.nofailover = true;
        }
        c.members.insert(
            "node0".into(),
            MemberEntry::Ok(MemberValue {
                conn_url: "postgres://db0/postgres".into(),
                api_url: "http://db0:8008/patroni".into(),
                state: "stopped".into(),
                ..Default::default()
            }),
        );
        c.members
            .insert("node9".into(), MemberEntry::Corrupt("bad json".into()));
        assert_eq!(
            cluster_json(&c, "demo"),
            json!({
                "members": [
                    {"name": "node0", "role": "replica", "state": "stopped",
                     "api_url": "http://db0:8008/patroni", "host": "db0",
                     "receive_lsn": "unknown", "receive_lag": "unknown",
                     "replay_lsn": "unknown", "replay_lag": "unknown",
                     "lsn": "unknown", "lag": "unknown"},
                    {"name": "node1", "role": "leader", "state": "running",
                     "api_url": "http://127.0.0.1:9008/patroni", "host": "127.0.0.1",
                     "port": 5432, "timeline": 3},
                    {"name": "node2", "role": "replica", "state": "streaming",
                     "api_url": "http://127.0.0.1:9009/patroni", "host": "127.0.0.1",
                     "port": 5433, "timeline": 3, "tags": {"nofailover": true},
                     "receive_lsn": "0/4046048", "receive_lag": 0,
                     "replay_lsn": "0/4045FE4", "replay_lag": 100,
                     "lsn": "0/4046050", "lag": 0},
                    {"name": "node9", "role": "replica", "state": "", "api_url": null,
                     "receive_lsn": "unknown", "receive_lag": "unknown",
                     "replay_lsn": "unknown", "replay_lag": "unknown",
                     "lsn": "unknown", "lag": "unknown"}
                ],
                "scope": "demo"
            })
        );
    }

    #[test]
    fn sync_roles_follow_the_config_key_and_sync_key() {
        use pgkeel_core::dcs_values::SyncValue;
        let mut c = cluster();
        c.members.insert(
            "node3".into(),
            MemberEntry::Ok(member(5434, "replica", "running")),
        );
        c.sync = Some(SyncValue {
            leader: Some("node1".into()),
            // The leader listed by mistake still shows as leader; names match
            // case-insensitively.
            sync_standby: ["NODE2".to_string(), "node1".to_string()].into(),
            quorum: 1,
        });
        let roles = |c: &Cluster| -> Vec<(String, String)> {
            cluster_json(c, "demo")["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let field = |k: &str| m[k].as_str().unwrap().to_string();
                    (field("name"), field("role"))
                })
                .collect()
        };
        let pairs = |v: [(&str, &str); 3]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect()
        };
        // No synchronous_mode in /config: the key alone does not make a sync standby.
        assert_eq!(
            roles(&c),
            pairs([
                ("node1", "leader"),
                ("node2", "replica"),
                ("node3", "replica")
            ])
        );
        c.config = Some(json!({"synchronous_mode": true}));
        assert_eq!(
            roles(&c),
            pairs([
                ("node1", "leader"),
                ("node2", "sync_standby"),
                ("node3", "replica")
            ])
        );
        c.config = Some(json!({"synchronous_mode": "quorum"}));
        assert_eq!(
            roles(&c),
            pairs([
                ("node1", "leader"),
                ("node2", "quorum_standby"),
                ("node3", "replica")
            ])
        );
        c.config = Some(json!({"synchronous_mode": false}));
        assert_eq!(roles(&c)[1].1, "replica");
    }

    #[test]
    fn pause_only_when_true() {
        let mut c = cluster();
        assert_eq!(cluster_json(&c, "demo").get("pause"), None);
        c.config = Some(json!({"pause": false}));
        assert_eq!(cluster_json(&c, "demo").get("pause"), None);
        c.config = Some(json!({"pause": true}));
        assert_eq!(cluster_json(&c, "demo")["pause"], true);
        c.config = Some(json!({"pause": "on"}));
        assert_eq!(cluster_json(&c, "demo")["pause"], true);
    }

    #[test]
    fn scheduled_switchover_only_when_scheduled() {
        use pgkeel_core::dcs_values::FailoverValue;
        let mut c = cluster();
        c.failover = Some(FailoverValue {
            leader: Some("node1".into()),
            member: Some("node2".into()),
            scheduled_at: None,
        });
        assert_eq!(cluster_json(&c, "demo").get("scheduled_switchover"), None);
        c.failover.as_mut().unwrap().scheduled_at = Some("2024-06-01T13:00:00+00:00".into());
        assert_eq!(
            cluster_json(&c, "demo")["scheduled_switchover"],
            json!({"at": "2024-06-01T13:00:00+00:00", "from": "node1", "to": "node2"})
        );
        c.failover.as_mut().unwrap().member = None;
        assert_eq!(
            cluster_json(&c, "demo")["scheduled_switchover"],
            json!({"at": "2024-06-01T13:00:00+00:00", "from": "node1"})
        );
    }

    #[test]
    fn empty_cluster() {
        assert_eq!(
            cluster_json(&Cluster::default(), "x"),
            json!({"members": [], "scope": "x"})
        );
    }
}
