//! The status JSON of `GET /patroni` and of every health check (Patroni
//! `get_postgresql_status` + `_write_status_response`, api.py).
//!
//! Patroni peers parse this during the leader race (`_MemberStatus.from_api_response`):
//! `xlog.location` or `role == "primary"` means "not in recovery", `wal_position` is
//! max(received, replayed), and `tags`, `timeline` and `watchdog_failed` are read too.

use pgkeel_core::observation::{PgView, Running};
use serde_json::{json, Map, Value};

use crate::snapshot::NodeSnapshot;
use crate::sync_standby::{sync_kind, SyncKind};

/// The facts that both the status JSON and the health checks derive from a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PgStatus<'a> {
    /// The `state` field.
    pub state: &'a str,
    /// The `role` field.
    pub role: &'a str,
    /// SQL answered: the node is running and we know its WAL positions.
    pub running: Option<&'a Running>,
    /// `replication_state`, for a running replica.
    pub replication_state: Option<&'static str>,
    /// A running replica that `/sync` names under the synchronous mode in force (only a
    /// successful status query reports it, as in Patroni).
    pub sync: Option<SyncKind>,
}

impl PgStatus<'_> {
    /// `xlog.replayed_location` (0 when absent, as Patroni's `.get(..., 0)`).
    pub fn replayed_location(&self) -> u64 {
        match self.running {
            Some(r) if r.in_recovery => r.replayed.map_or(0, |l| l.0),
            _ => 0,
        }
    }

    /// `xlog.received_location`: Patroni takes written, else received, else replayed.
    pub fn received_location(&self) -> u64 {
        match self.running {
            Some(r) if r.in_recovery => r.received.or(r.replayed).map_or(0, |l| l.0),
            _ => 0,
        }
    }
}

pub(crate) fn pg_status(snap: &NodeSnapshot) -> PgStatus<'_> {
    let remembered_role = || -> &str {
        if let Some(r) = snap.role_override.as_deref() {
            return r;
        }
        // Without a hint from the agent, say what the data directory says.
        match &snap.pg {
            PgView::NoData => "uninitialized",
            PgView::Stopped(s) if s.was_primary() => "primary",
            _ => "replica",
        }
    };
    match &snap.pg {
        PgView::Running(r) => {
            let replication_state = if !r.in_recovery {
                None
            } else if r.streaming {
                Some("streaming")
            } else if snap.has_restore_command {
                Some("in archive recovery")
            } else {
                None
            };
            let sync = snap
                .cluster
                .as_ref()
                .filter(|_| r.in_recovery)
                .and_then(|c| sync_kind(snap.sync_mode, c, &snap.name));
            PgStatus {
                state: &snap.state_text,
                role: if r.in_recovery { "replica" } else { "primary" },
                running: Some(r),
                replication_state,
                sync,
            }
        }
        // Patroni: the status query failed on a running server → state "unknown".
        PgView::Unknown if snap.state_text == "running" => PgStatus {
            state: "unknown",
            role: remembered_role(),
            running: None,
            replication_state: None,
            sync: None,
        },
        _ => PgStatus {
            state: &snap.state_text,
            role: remembered_role(),
            running: None,
            replication_state: None,
            sync: None,
        },
    }
}

/// The system identifier, if any source knows it.
fn sysid(pg: &PgView) -> Option<&str> {
    match pg {
        PgView::Running(r) => Some(r.sysid.as_str()),
        PgView::Stopped(s) => Some(s.sysid.as_str()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// `{"<param>": {"old_value": .., "new_value": ..}}`, as Patroni publishes it.
pub(crate) fn pending_restart_reason_json(snap: &NodeSnapshot) -> Value {
    snap.pending_restart_reason
        .iter()
        .map(|(k, (old, new))| (k.clone(), json!({"old_value": old, "new_value": new})))
        .collect::<Map<String, Value>>()
        .into()
}

/// The status JSON, with the fields Patroni emits for a node without a watchdog.
pub fn status_json(snap: &NodeSnapshot) -> Value {
    let st = pg_status(snap);
    let mut m = Map::new();
    m.insert("state".into(), st.state.into());
    if let Some(r) = st.running {
        // Only a successful status query yields these (Patroni's `try` branch).
        m.insert(
            "postmaster_start_time".into(),
            snap.postmaster_start_time.clone().into(),
        );
        m.insert("role".into(), st.role.into());
        m.insert("server_version".into(), snap.server_version.into());
        let xlog = if r.in_recovery {
            json!({
                "received_location": st.received_location(),
                "replayed_location": st.replayed_location(),
                "replayed_timestamp": null,
                "paused": false,
            })
        } else {
            json!({ "location": r.wal_position.0 })
        };
        m.insert("xlog".into(), xlog);
        if let Some(kind) = st.sync {
            // `"sync_standby": true` or `"quorum_standby": true`, absent otherwise.
            m.insert(kind.role().into(), true.into());
        }
        m.insert("timeline".into(), r.timeline.into());
        if let Some(rs) = st.replication_state {
            m.insert("replication_state".into(), rs.into());
        }
        if !snap.replication.is_empty() {
            m.insert(
                "replication".into(),
                serde_json::to_value(&snap.replication).unwrap_or(Value::Null),
            );
        }
    } else {
        m.insert("role".into(), st.role.into());
    }
    if snap.paused {
        m.insert("pause".into(), true.into());
    }
    let unlocked = snap.cluster.as_ref().is_none_or(|c| c.leader.is_none());
    if unlocked {
        m.insert("cluster_unlocked".into(), true.into());
    }
    if snap.failsafe_active {
        m.insert("failsafe_mode_is_active".into(), true.into());
    }
    // Patroni's `dcs.last_seen` starts at 0.
    m.insert(
        "dcs_last_seen".into(),
        snap.dcs_last_seen.unwrap_or(0).into(),
    );
    let tags = snap.tags.to_json();
    if tags.as_object().is_some_and(|t| !t.is_empty()) {
        m.insert("tags".into(), tags);
    }
    if let Some(id) = sysid(&snap.pg) {
        m.insert("database_system_identifier".into(), id.into());
    }
    if snap.pending_restart || !snap.pending_restart_reason.is_empty() {
        m.insert("pending_restart".into(), true.into());
        if !snap.pending_restart_reason.is_empty() {
            m.insert(
                "pending_restart_reason".into(),
                pending_restart_reason_json(snap),
            );
        }
    }
    if let Some(s) = &snap.scheduled_restart {
        m.insert("scheduled_restart".into(), s.clone());
    }
    // pgkeel's: Patroni has no such field (it drops bad values one by one, in its log).
    if let Some(p) = &snap.config_problem {
        m.insert("config_error".into(), p.as_str().into());
    }
    m.insert(
        "patroni".into(),
        json!({ "version": snap.version, "scope": snap.scope, "name": snap.name }),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn primary_shape() {
        let snap = leader();
        assert_eq!(
            status_json(&snap),
            json!({
                "state": "running",
                "postmaster_start_time": "2024-08-28 19:39:26.352526+00:00",
                "role": "primary",
                "server_version": 160004,
                "xlog": {"location": 67_395_656},
                "timeline": 3,
                "replication": [{
                    "usename": "replicator", "application_name": "node2",
                    "client_addr": "10.0.0.2", "state": "streaming",
                    "sync_state": "async", "sync_priority": 0
                }],
                "dcs_last_seen": 1_692_356_718,
                "database_system_identifier": "7268616322854375442",
                "patroni": {"version": "0.1.0", "scope": "demo", "name": "node1"}
            })
        );
    }

    #[test]
    fn replica_shape() {
        let mut snap = streaming_replica();
        snap.tags.nofailover = true;
        assert_eq!(
            status_json(&snap),
            json!({
                "state": "running",
                "postmaster_start_time": "2024-08-28 19:39:26.352526+00:00",
                "role": "replica",
                "server_version": 160004,
                "xlog": {
                    "received_location": 67_395_656,
                    "replayed_location": 67_395_600,
                    "replayed_timestamp": null,
                    "paused": false
                },
                "timeline": 3,
                "replication_state": "streaming",
                "dcs_last_seen": 1_692_356_718,
                "tags": {"nofailover": true},
                "database_system_identifier": "7268616322854375442",
                "patroni": {"version": "0.1.0", "scope": "demo", "name": "node2"}
            })
        );
    }

    #[test]
    fn sync_and_quorum_standby_flags() {
        use pgkeel_core::sync::SyncMode;
        let v = status_json(&sync_standby(SyncMode::On));
        assert_eq!(v["sync_standby"], true);
        assert_eq!(v.get("quorum_standby"), None);
        let v = status_json(&sync_standby(SyncMode::Quorum));
        assert_eq!(v["quorum_standby"], true);
        assert_eq!(v.get("sync_standby"), None);
        // Not named, mode off, no DCS view, not running, or the primary: no flag at all.
        let mut not_named = sync_standby(SyncMode::On);
        set_sync_key(&mut not_named, &["node3"]);
        let off = sync_standby(SyncMode::Off);
        let mut blind = sync_standby(SyncMode::On);
        blind.cluster = None;
        let mut down = stopped();
        down.sync_mode = SyncMode::On;
        set_sync_key(&mut down, &["node2"]);
        let mut primary = leader();
        primary.sync_mode = SyncMode::On;
        set_sync_key(&mut primary, &["node1"]);
        for snap in [not_named, off, blind, down, primary] {
            let v = status_json(&snap);
            assert_eq!(v.get("sync_standby"), None, "{v}");
            assert_eq!(v.get("quorum_standby"), None, "{v}");
        }
    }

    #[test]
    fn failsafe_active_flag_only_when_true() {
        let mut snap = streaming_replica();
        assert_eq!(status_json(&snap).get("failsafe_mode_is_active"), None);
        snap.failsafe_active = true;
        assert_eq!(status_json(&snap)["failsafe_mode_is_active"], true);
    }

    #[test]
    fn replication_state_follows_receiver_and_restore_command() {
        let mut snap = streaming_replica();
        set_streaming(&mut snap, false);
        assert_eq!(status_json(&snap).get("replication_state"), None);
        snap.has_restore_command = true;
        assert_eq!(
            status_json(&snap)["replication_state"],
            "in archive recovery"
        );
    }

    #[test]
    fn stopped_node_reports_state_role_and_no_xlog() {
        let snap = stopped();
        let v = status_json(&snap);
        assert_eq!(v["state"], "stopped");
        assert_eq!(v["role"], "replica");
        assert_eq!(v.get("xlog"), None);
        assert_eq!(v.get("timeline"), None);
        assert_eq!(v["database_system_identifier"], "7268616322854375442");

        let mut snap = stopped();
        snap.role_override = Some("demoted".into());
        assert_eq!(status_json(&snap)["role"], "demoted");

        let mut snap = stopped();
        snap.pg = PgView::NoData;
        snap.state_text = "stopped".into();
        let v = status_json(&snap);
        assert_eq!(v["role"], "uninitialized");
        assert_eq!(v.get("database_system_identifier"), None);
    }

    #[test]
    fn failed_status_query_is_unknown_state() {
        let mut snap = leader();
        snap.pg = PgView::Unknown;
        snap.role_override = Some("primary".into());
        let v = status_json(&snap);
        assert_eq!(v["state"], "unknown");
        assert_eq!(v["role"], "primary");
    }

    #[test]
    fn unlocked_and_pause_flags() {
        let mut snap = no_dcs();
        snap.paused = true;
        let v = status_json(&snap);
        assert_eq!(v["cluster_unlocked"], true);
        assert_eq!(v["pause"], true);
        assert_eq!(v["dcs_last_seen"], 0);

        let mut snap = streaming_replica();
        snap.cluster.as_mut().unwrap().leader = None;
        assert_eq!(status_json(&snap)["cluster_unlocked"], true);
        assert_eq!(status_json(&leader()).get("cluster_unlocked"), None);
        assert_eq!(status_json(&leader()).get("pause"), None);
    }

    #[test]
    fn pending_and_scheduled_restart() {
        let mut snap = leader();
        let v = status_json(&snap);
        assert_eq!(v.get("pending_restart"), None);
        assert_eq!(v.get("scheduled_restart"), None);
        snap.pending_restart = true;
        let v = status_json(&snap);
        assert_eq!(v["pending_restart"], true);
        assert_eq!(v.get("pending_restart_reason"), None);
        snap.pending_restart = false;
        snap.pending_restart_reason
            .insert("max_connections".into(), ("100".into(), "101".into()));
        snap.scheduled_restart = Some(json!({"schedule": "2024-06-01T13:00:00+00:00"}));
        let v = status_json(&snap);
        assert_eq!(v["pending_restart"], true);
        assert_eq!(
            v["pending_restart_reason"],
            json!({"max_connections": {"old_value": "100", "new_value": "101"}})
        );
        assert_eq!(
            v["scheduled_restart"],
            json!({"schedule": "2024-06-01T13:00:00+00:00"})
        );
    }
}
