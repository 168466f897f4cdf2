//! `GET /metrics`: Prometheus text exposition built from the snapshot, with Patroni's
//! metric names, help texts, types and order (`do_GET_metrics`, api.py), so existing
//! dashboards and alerts keep working, followed by pgkeel's own.
//!
//! Not emitted: `patroni_postgres_state` (its numeric enum is Patroni-internal and would
//! need the agent's state as an enum rather than a string); `patroni_failsafe_mode_enabled`
//! and `patroni_failsafe_member` of Patroni master (not in a release checked here). Replay
//! timestamp and WAL replay pause are always 0: the snapshot does not carry them yet.

use std::fmt::Write as _;
use std::time::Instant;

use chrono::DateTime;

use crate::snapshot::NodeSnapshot;
use crate::status::pg_status;
use crate::sync_standby::SyncKind;

/// The exposition format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
/// (Patroni inserts them raw.)
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Python's `str(float)`: whole numbers keep a `.0`.
fn py_float(v: f64) -> String {
    if v.fract() == 0.0 && v.is_finite() {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// `2.0.2` → `020002`, as Patroni pads each part to two digits.
fn padded_semver(version: &str) -> String {
    version
        .split('.')
        .map(|p| format!("{p:0>2}"))
        .collect::<String>()
}

/// Epoch seconds of PostgreSQL's `pg_postmaster_start_time()` text
/// ("2024-08-28 19:39:26.352526+00:00").
fn epoch_seconds(ts: &str) -> Option<f64> {
    let dt = DateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f%#z").ok()?;
    Some(dt.timestamp() as f64 + f64::from(dt.timestamp_subsec_micros()) / 1e6)
}

struct Out {
    text: String,
    labels: String,
}

impl Out {
    fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        let _ = writeln!(self.text, "{name}{} {value}", self.labels);
    }
}

/// The metrics text of one node.
pub fn metrics_text(snap: &NodeSnapshot, now: Instant) -> String {
    let st = pg_status(snap);
    let running = st.running;
    let mut o = Out {
        text: String::new(),
        labels: format!(
            "{{scope=\"{}\",name=\"{}\"}}",
            escape(&snap.scope),
            escape(&snap.name)
        ),
    };
    let flag = |b: bool| u8::from(b);
    // Patroni's status query yields these only when it succeeds.
    let server_version = running.and(snap.server_version).unwrap_or(0);

    o.metric(
        "patroni_version",
        "gauge",
        "Patroni semver without periods.",
        padded_semver(&snap.version),
    );
    o.metric(
        "patroni_postgres_running",
        "gauge",
        "Value is 1 if Postgres is running, 0 otherwise.",
        flag(st.state == "running"),
    );
    let start = running
        .and(snap.postmaster_start_time.as_deref())
        .and_then(epoch_seconds);
    o.metric(
        "patroni_postmaster_start_time",
        "gauge",
        "Epoch seconds since Postgres started.",
        start.map_or_else(|| "0".to_string(), py_float),
    );
    o.metric(
        "patroni_primary",
        "gauge",
        "Value is 1 if this node is the leader, 0 otherwise.",
        flag(st.role == "primary"),
    );
    let location = running
        .filter(|r| !r.in_recovery)
        .map_or(0, |r| r.wal_position.0);
    o.metric(
        "patroni_xlog_location",
        "counter",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        location,
    );
    o.metric(
        "patroni_standby_leader",
        "gauge",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        flag(st.role == "standby_leader"),
    );
    o.metric(
        "patroni_replica",
        "gauge",
        "Value is 1 if this node is a replica, 0 otherwise.",
        flag(st.role == "replica"),
    );
    o.metric(
        "patroni_sync_standby",
        "gauge",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        flag(st.sync == Some(SyncKind::Sync)),
    );
    o.metric(
        "patroni_quorum_standby",
        "gauge",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        flag(st.sync == Some(SyncKind::Quorum)),
    );
    o.metric(
        "patroni_xlog_received_location",
        "counter",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        st.received_location(),
    );
    o.metric(
        "patroni_xlog_replayed_location",
        "counter",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        st.replayed_location(),
    );
    o.metric(
        "patroni_xlog_replayed_timestamp",
        "gauge",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        0,
    );
    o.metric(
        "patroni_xlog_paused",
        "gauge",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        0,
    );
    if server_version >= 90600 {
        o.metric(
            "patroni_postgres_streaming",
            "gauge",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            flag(st.replication_state == Some("streaming")),
        );
        o.metric(
            "patroni_postgres_in_archive_recovery",
            "gauge",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            flag(st.replication_state == Some("in archive recovery")),
        );
    }
    o.metric(
        "patroni_postgres_server_version",
        "gauge",
        "Version of Postgres (if running), 0 otherwise.",
        server_version,
    );
    let unlocked = snap.cluster.as_ref().is_none_or(|c| c.leader.is_none());
    o.metric(
        "patroni_cluster_unlocked",
        "gauge",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        flag(unlocked),
    );
    o.metric(
        "patroni_failsafe_mode_is_active",
        "gauge",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        flag(snap.failsafe_active),
    );
    o.metric(
        "patroni_postgres_timeline",
        "counter",
        "Postgres timeline of this node (if running), 0 otherwise.",
        running.map_or(0, |r| r.timeline),
    );
    o.metric(
        "patroni_dcs_last_seen",
        "gauge",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        snap.dcs_last_seen.unwrap_or(0),
    );
    o.metric(
        "patroni_pending_restart",
        "gauge",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        flag(snap.pending_restart || !snap.pending_restart_reason.is_empty()),
    );
    o.metric(
        "patroni_is_paused",
        "gauge",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        flag(snap.paused),
    );
    o.metric(
        "patroni_failover_priority",
        "gauge",
        "Value is the failover priority of this node (the failover_priority tag).",
        snap.tags.failover_priority,
    );

    // pgkeel's own.
    if !snap.slots_retained.is_empty() {
        let name = "pgkeel_replication_slot_retained_bytes";
        let _ = writeln!(
            o.text,
            "# HELP {name} WAL held back by the replication slot, in bytes (pg_wal_lsn_diff of the server's WAL position and the slot's restart_lsn)."
        );
        let _ = writeln!(o.text, "# TYPE {name} gauge");
        let base = o.labels.trim_end_matches('}').to_string();
        for s in &snap.slots_retained {
            let _ = writeln!(
                o.text,
                "{name}{base},slot=\"{}\",type=\"{}\"}} {}",
                escape(&s.name),
                escape(&s.kind),
                s.bytes
            );
        }
    }
    let loop_age = snap
        .last_loop_at
        .map_or(-1.0, |t| now.saturating_duration_since(t).as_secs_f64());
    o.metric(
        "pgkeel_loop_age_seconds",
        "gauge",
        "Seconds since the last HA loop started, -1 before the first one.",
        format!("{loop_age:.3}"),
    );
    o.metric(
        "pgkeel_holds_leader_key",
        "gauge",
        "Value is 1 if this node holds the leader key under a live lease, 0 otherwise.",
        flag(snap.holds_leader_key),
    );
    o.metric(
        "pgkeel_config_invalid",
        "gauge",
        "Value is 1 if the /config in the DCS is bad or unreadable and this node keeps its last valid settings, 0 otherwise.",
        flag(snap.config_problem.is_some()),
    );
    o.metric(
        "pgkeel_ttl_seconds",
        "gauge",
        "The leader lease TTL in effect.",
        snap.ttl.as_secs_f64(),
    );
    o.metric(
        "pgkeel_loop_wait_seconds",
        "gauge",
        "The HA loop interval in effect.",
        snap.loop_wait.as_secs_f64(),
    );
    o.metric(
        "pgkeel_retry_timeout_seconds",
        "gauge",
        "The DCS and PostgreSQL call bound in effect.",
        snap.retry_timeout.as_secs_f64(),
    );
    callback_metrics(&mut o, snap);
    o.text
}

/// `pgkeel_callback_runs_total` and `pgkeel_callback_seconds_total`, by callback (and
/// outcome for the runs); nothing before the first run, as every family here has samples.
fn callback_metrics(o: &mut Out, snap: &NodeSnapshot) {
    let rows = snap
        .callback_stats
        .as_ref()
        .map(|s| s.rows())
        .unwrap_or_default();
    if rows.is_empty() {
        return;
    }
    let base = o.labels.trim_end_matches('}').to_string();
    let _ = writeln!(
        o.text,
        "# HELP pgkeel_callback_runs_total Callback runs (on_start ... on_role_change, pre_promote, before_stop) by how they ended: ok, failed (non-zero exit, signal, could not start), superseded (killed for a newer callback)."
    );
    let _ = writeln!(o.text, "# TYPE pgkeel_callback_runs_total counter");
    for (callback, outcome, runs, _) in &rows {
        let _ = writeln!(
            o.text,
            "pgkeel_callback_runs_total{base},callback=\"{}\",result=\"{}\"}} {runs}",
            escape(callback),
            outcome.label()
        );
    }
    let _ = writeln!(
        o.text,
        "# HELP pgkeel_callback_seconds_total Seconds callbacks ran, by callback."
    );
    let _ = writeln!(o.text, "# TYPE pgkeel_callback_seconds_total counter");
    let mut seconds: std::collections::BTreeMap<&str, f64> = Default::default();
    for (callback, _, _, secs) in &rows {
        *seconds.entry(callback).or_default() += secs;
    }
    for (callback, secs) in seconds {
        let _ = writeln!(
            o.text,
            "pgkeel_callback_seconds_total{base},callback=\"{}\"}} {secs:.3}",
            escape(callback)
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::*;

    fn value(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .map(String::from)
    }

    #[test]
    fn callback_runs_are_counted_by_outcome() {
        let mut snap = leader();
        let t = metrics_text(&snap, Instant::now());
        assert!(!t.contains("pgkeel_callback_runs_total"), "{t}");
        let stats = std::sync::Arc::new(crate::CallbackStats::default());
        stats.record("on_start", crate::CallbackOutcome::Ok, 0.5);
        stats.record("on_start", crate::CallbackOutcome::Ok, 0.25);
        stats.record("pre_promote", crate::CallbackOutcome::Failed, 1.0);
        snap.callback_stats = Some(stats);
        let t = metrics_text(&snap, Instant::now());
        assert!(t.contains(
            "pgkeel_callback_runs_total{scope=\"demo\",name=\"node1\",callback=\"on_start\",result=\"ok\"} 2\n"
        ), "{t}");
        assert!(t.contains(
            "pgkeel_callback_runs_total{scope=\"demo\",name=\"node1\",callback=\"pre_promote\",result=\"failed\"} 1\n"
        ), "{t}");
        assert!(t.contains(
            "pgkeel_callback_seconds_total{scope=\"demo\",name=\"node1\",callback=\"on_start\"} 0.750\n"
        ), "{t}");
    }

    #[test]
    fn each_slot_reports_the_wal_it_retains() {
        let mut snap = leader();
        snap.slots_retained = vec![
            crate::SlotRetained {
                name: "node2".into(),
                kind: "physical".into(),
                bytes: 16_384,
            },
            crate::SlotRetained {
                name: "cdc".into(),
                kind: "logical".into(),
                bytes: 0,
            },
        ];
        let text = metrics_text(&snap, Instant::now());
        assert!(
            text.contains("# TYPE pgkeel_replication_slot_retained_bytes gauge\n"),
            "{text}"
        );
        assert!(text.contains(
            "pgkeel_replication_slot_retained_bytes{scope=\"demo\",name=\"node1\",slot=\"node2\",type=\"physical\"} 16384\n"
        ), "{text}");
        assert!(
            text.contains("slot=\"cdc\",type=\"logical\"} 0\n"),
            "{text}"
        );
        // No slots: no metric.
        assert!(!metrics_text(&leader(), Instant::now()).contains("slot_retained"));
    }

    #[test]
    fn primary_metrics() {
        let snap = leader();
        let t = metrics_text(&snap, Instant::now());
        assert!(t.starts_with(
            "# HELP patroni_version Patroni semver without periods.\n\
             # TYPE patroni_version gauge\n\
             patroni_version{scope=\"demo\",name=\"node1\"} 000100\n"
        ));
        assert!(t.contains(
            "# TYPE patroni_xlog_location counter\n\
             patroni_xlog_location{scope=\"demo\",name=\"node1\"} 67395656\n"
        ));
        for (name, want) in [
            ("patroni_postgres_running", "1"),
            ("patroni_postmaster_start_time", "1724873966.352526"),
            ("patroni_primary", "1"),
            ("patroni_replica", "0"),
            ("patroni_standby_leader", "0"),
            ("patroni_xlog_received_location", "0"),
            ("patroni_postgres_streaming", "0"),
            ("patroni_postgres_in_archive_recovery", "0"),
            ("patroni_postgres_server_version", "160004"),
            ("patroni_cluster_unlocked", "0"),
            ("patroni_postgres_timeline", "3"),
            ("patroni_dcs_last_seen", "1692356718"),
            ("patroni_pending_restart", "0"),
            ("patroni_is_paused", "0"),
            ("patroni_failover_priority", "1"),
            ("pgkeel_holds_leader_key", "1"),
            ("pgkeel_ttl_seconds", "30"),
        ] {
            assert_eq!(value(&t, name).as_deref(), Some(want), "{name}");
        }
        // Every sample has its HELP and TYPE lines.
        let samples = t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            t.lines().filter(|l| l.starts_with("# HELP ")).count(),
            samples
        );
        assert_eq!(
            t.lines().filter(|l| l.starts_with("# TYPE ")).count(),
            samples
        );
    }

    #[test]
    fn sync_quorum_and_failsafe_metrics() {
        use pgkeel_core::sync::SyncMode;
        let now = Instant::now();
        let get = |snap: &NodeSnapshot, name: &str| value(&metrics_text(snap, now), name);
        let async_replica = streaming_replica();
        assert_eq!(
            get(&async_replica, "patroni_sync_standby").as_deref(),
            Some("0")
        );
        assert_eq!(
            get(&async_replica, "patroni_quorum_standby").as_deref(),
            Some("0")
        );
        assert_eq!(
            get(&async_replica, "patroni_failsafe_mode_is_active").as_deref(),
            Some("0")
        );
        let sync = sync_standby(SyncMode::On);
        assert_eq!(get(&sync, "patroni_sync_standby").as_deref(), Some("1"));
        assert_eq!(get(&sync, "patroni_quorum_standby").as_deref(), Some("0"));
        let quorum = sync_standby(SyncMode::Quorum);
        assert_eq!(get(&quorum, "patroni_sync_standby").as_deref(), Some("0"));
        assert_eq!(get(&quorum, "patroni_quorum_standby").as_deref(), Some("1"));
        let mut active = streaming_replica();
        active.failsafe_active = true;
        assert_eq!(
            get(&active, "patroni_failsafe_mode_is_active").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn replica_and_stopped_metrics() {
        let mut snap = streaming_replica();
        snap.paused = true;
        snap.pending_restart = true;
        let last = Instant::now();
        snap.last_loop_at = Some(last);
        let t = metrics_text(&snap, last + Duration::from_millis(2500));
        for (name, want) in [
            ("patroni_primary", "0"),
            ("patroni_replica", "1"),
            ("patroni_xlog_location", "0"),
            ("patroni_xlog_received_location", "67395656"),
            ("patroni_xlog_replayed_location", "67395600"),
            ("patroni_postgres_streaming", "1"),
            ("patroni_is_paused", "1"),
            ("patroni_pending_restart", "1"),
            ("pgkeel_loop_age_seconds", "2.500"),
        ] {
            assert_eq!(value(&t, name).as_deref(), Some(want), "{name}");
        }

        let t = metrics_text(&stopped(), Instant::now());
        assert_eq!(value(&t, "patroni_postgres_running").as_deref(), Some("0"));
        assert_eq!(
            value(&t, "patroni_postmaster_start_time").as_deref(),
            Some("0")
        );
        assert_eq!(
            value(&t, "patroni_postgres_server_version").as_deref(),
            Some("0")
        );
        // Patroni omits these without a running server to report a version.
        assert_eq!(value(&t, "patroni_postgres_streaming"), None);
        let t = metrics_text(&no_dcs(), Instant::now());
        assert_eq!(value(&t, "patroni_cluster_unlocked").as_deref(), Some("1"));
        assert_eq!(value(&t, "patroni_dcs_last_seen").as_deref(), Some("0"));
    }

    #[test]
    fn helpers() {
        assert_eq!(padded_semver("4.1.5"), "040105");
        assert_eq!(padded_semver("0.1.0"), "000100");
        assert_eq!(py_float(12.0), "12.0");
        assert_eq!(py_float(1.5), "1.5");
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
        let mut snap = leader();
        snap.scope = "x\"y".into();
        assert!(metrics_text(&snap, Instant::now()).contains("{scope=\"x\\\"y\",name=\"node1\"}"));
    }
}
