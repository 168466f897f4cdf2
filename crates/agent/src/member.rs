//! What this node publishes: its `members/<name>` value and the REST API snapshot.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pgkeel_api::{NodeSnapshot, ReplicationRow};
use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::DynamicConfig;
use pgkeel_core::dcs_values::MemberValue;
use pgkeel_core::observation::{Observation, PgView};
use pgkeel_core::Config;
use pgkeel_pg::PgDetails;

use crate::act::Memory;

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Patroni's state string for the local server.
pub(crate) fn state_text(pg: &PgView, memory: &Memory) -> &'static str {
    if let Some(a) = memory.activity {
        return a;
    }
    match pg {
        PgView::NoData | PgView::Stopped(_) => "stopped",
        PgView::Starting => "starting",
        PgView::Running(_) => "running",
        PgView::Unknown | PgView::NoAnswer => "unknown",
    }
}

/// What `members/<name>` holds: Patroni's `touch_member` fields for the server as it is now;
/// `paused` is whether the cluster is in maintenance mode.
pub(crate) fn member_value(
    cfg: &Config,
    pg: &PgView,
    memory: &Memory,
    details: &PgDetails,
    paused: bool,
) -> MemberValue {
    let mut m = MemberValue {
        conn_url: format!("postgres://{}/postgres", cfg.postgresql.connect_address),
        api_url: cfg.restapi.api_url(),
        state: state_text(pg, memory).to_string(),
        role: "uninitialized".into(),
        version: Some(VERSION.to_string()),
        tags: cfg.tags.clone(),
        pending_restart: (!details.pending_restart.is_empty()).then_some(true),
        pending_restart_reason: (!details.pending_restart.is_empty())
            .then(|| pending_restart_reason(details)),
        scheduled_restart: memory.scheduled_restart.as_ref().map(|s| s.to_json()),
        pause: paused.then_some(true),
        proxy_url: cfg
            .postgresql
            .proxy_address
            .as_ref()
            .map(|a| format!("postgres://{a}/postgres")),
        ..Default::default()
    };
    match pg {
        PgView::Running(r) => {
            m.role = if r.in_recovery { "replica" } else { "primary" }.into();
            m.timeline = Some(r.timeline);
            m.xlog_location = Some(r.wal_position.0);
            if r.in_recovery {
                m.receive_lsn = r.received.map(|l| l.0);
                m.replay_lsn = r.replayed.map(|l| l.0);
                m.replication_state = Some(
                    if r.streaming {
                        "streaming"
                    } else {
                        "in archive recovery"
                    }
                    .into(),
                );
            }
        }
        PgView::Stopped(s) => {
            m.role = if s.standby_signal {
                "replica"
            } else {
                "demoted"
            }
            .into();
            m.timeline = Some(s.timeline);
        }
        PgView::Starting | PgView::Unknown | PgView::NoAnswer => m.role = "replica".into(),
        PgView::NoData => {}
    }
    m
}

pub(crate) struct SnapshotInput<'a> {
    pub cfg: &'a Config,
    pub dynamic: &'a DynamicConfig,
    pub obs: &'a Observation,
    pub memory: &'a Memory,
    pub details: &'a PgDetails,
    pub last_cluster: Option<&'a Cluster>,
    pub dcs_last_seen: Option<SystemTime>,
    pub loop_started: Instant,
    pub holds_leader_key: bool,
    /// Why `/config` is not in force, if it is not.
    pub config_problem: Option<&'a str>,
    pub catalog: Option<&'a std::sync::Arc<pgkeel_core::guc::GucCatalog>>,
    pub postmaster_alive: Option<pgkeel_api::PostmasterAlive>,
    pub callback_stats: Option<std::sync::Arc<pgkeel_api::CallbackStats>>,
    pub live_status: Option<pgkeel_api::LiveStatus>,
}

pub(crate) fn snapshot(i: SnapshotInput) -> NodeSnapshot {
    NodeSnapshot {
        slots_retained: i.memory.slots.retained.clone(),
        name: i.cfg.name.clone(),
        scope: i.cfg.scope.clone(),
        version: VERSION.to_string(),
        holds_leader_key: i.holds_leader_key,
        pg: i.obs.pg.clone(),
        role_override: match i.obs.pg {
            PgView::NoData => Some("uninitialized".into()),
            _ => None,
        },
        state_text: state_text(&i.obs.pg, i.memory).to_string(),
        server_version: i.details.server_version,
        postmaster_start_time: i.details.postmaster_start_time.clone(),
        latest_end_lsn: None,
        has_restore_command: false,
        replication: i
            .details
            .replication
            .iter()
            .map(|r| ReplicationRow {
                usename: r.usename.clone(),
                application_name: r.application_name.clone().unwrap_or_default(),
                client_addr: r.client_addr.clone(),
                state: r.state.clone().unwrap_or_default(),
                sync_state: r.sync_state.clone().unwrap_or_default(),
                sync_priority: r.sync_priority.unwrap_or(0),
            })
            .collect(),
        tags: i.cfg.tags.clone(),
        cluster: i.last_cluster.cloned(),
        dcs_last_seen: i
            .dcs_last_seen
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        ttl: i.dynamic.ttl,
        loop_wait: i.dynamic.loop_wait,
        retry_timeout: i.dynamic.retry_timeout,
        maximum_lag_on_failover: i.dynamic.maximum_lag_on_failover,
        dynamic_config: i.last_cluster.and_then(|c| c.config.clone()),
        last_loop_at: Some(i.loop_started),
        paused: i.obs.paused,
        pending_restart: !i.details.pending_restart.is_empty(),
        pending_restart_reason: i.details.pending_restart.clone(),
        scheduled_restart: i.memory.scheduled_restart.as_ref().map(|s| s.to_json()),
        sync_mode: i.dynamic.sync.mode,
        failsafe_mode: i.dynamic.failsafe_mode,
        // A primary kept running by its members' confirmations (the DCS is unreachable); a
        // replica's side (a leader's recent POST /failsafe) is added by the API from its
        // FailsafeInbox.
        config_problem: i.config_problem.map(str::to_string),
        catalog: i.catalog.cloned(),
        postmaster_alive: i.postmaster_alive.clone(),
        callback_stats: i.callback_stats.clone(),
        live_status: i.live_status.clone(),
        failsafe_active: i.obs.dcs.is_err()
            && pgkeel_core::decide::failsafe_alive(
                i.obs.failsafe_confirmed,
                i.dynamic.ttl,
                i.loop_started,
            ),
    }
}

/// Patroni's shape: `{"param": {"old_value": "...", "new_value": "..."}}`.
fn pending_restart_reason(details: &PgDetails) -> serde_json::Value {
    details
        .pending_restart
        .iter()
        .map(|(k, (old, new))| {
            (
                k.clone(),
                serde_json::json!({"old_value": old, "new_value": new}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::testutil::config()
    }

    fn json(paused: bool) -> serde_json::Value {
        let m = member_value(
            &cfg(),
            &PgView::NoData,
            &Memory::default(),
            &PgDetails::default(),
            paused,
        );
        serde_json::to_value(&m).expect("serializable")
    }

    /// Patroni's `touch_member` writes `"pause": true` in maintenance mode and nothing
    /// otherwise; `patronictl pause --wait` reads it from every member key.
    #[test]
    fn the_member_key_says_pause_only_in_maintenance_mode() {
        assert_eq!(json(true)["pause"], serde_json::Value::Bool(true));
        assert!(json(false).get("pause").is_none(), "{}", json(false));
    }

    /// Patroni publishes `postgresql.proxy_address` as `proxy_url`; nothing without it.
    #[test]
    fn a_proxy_address_is_published_as_proxy_url() {
        assert!(json(false).get("proxy_url").is_none());
        let mut c = cfg();
        c.postgresql.proxy_address = Some(pgkeel_core::config::HostPort {
            host: "10.0.0.1".into(),
            port: 6432,
        });
        let m = member_value(
            &c,
            &PgView::NoData,
            &Memory::default(),
            &PgDetails::default(),
            false,
        );
        assert_eq!(
            m.proxy_url.as_deref(),
            Some("postgres://10.0.0.1:6432/postgres")
        );
    }
}
