//! Health checks: the status code of `GET|HEAD|OPTIONS <path>` (Patroni `do_GET`), of
//! `/liveness` and of `/readiness`.
//!
//! Paths are matched by substring in Patroni's order, so `/replica-zone-a` is a replica
//! check and `/foo` is a 503, exactly as HAProxy configurations written for Patroni expect.
//!
//! Lag: Patroni takes the leader's position as max(`/status.optime` of the last DCS read,
//! the WAL receiver's `latest_end_lsn`) and compares it with this node's *replayed*
//! position (`xlog.replayed_location`, 0 when unknown). We do the same: replayed rather
//! than received, because a replica serving reads serves what it has replayed.

use std::time::Instant;

use crate::query::{parse_bytes, Query};
use crate::snapshot::NodeSnapshot;
use crate::status::{pg_status, PgStatus};
use crate::sync_standby::SyncKind;

const OK: u16 = 200;
const UNAVAILABLE: u16 = 503;

/// The leader position this node compares itself with; 0 when nothing is known.
fn leader_optime(snap: &NodeSnapshot) -> u64 {
    let dcs = snap
        .cluster
        .as_ref()
        .and_then(|c| c.last_leader_lsn())
        .unwrap_or(0);
    dcs.max(snap.latest_end_lsn.unwrap_or(0))
}

/// The `/replica` conditions (Patroni's `replica_status_code`).
fn replica_code(st: &PgStatus<'_>, query: &Query, snap: &NodeSnapshot) -> u16 {
    // Patroni: `max_replica_lag = parse_int(lag, 'B')`, `sys.maxsize` when absent or bad.
    let max_lag = query
        .get("lag")
        .and_then(parse_bytes)
        .unwrap_or(i64::MAX as i128);
    let leader = i128::from(leader_optime(snap));
    // Saturating: a limit like `1e309` parses to i128::MAX ("no limit"), and must not wrap.
    let lagging =
        leader != 0 && leader > i128::from(st.replayed_location()).saturating_add(max_lag);
    // Patroni master: `?replication_state=streaming` excludes replicas still catching up
    // from the archive.
    let state_ok = query
        .get("replication_state")
        .is_none_or(|want| st.replication_state == Some(want));
    let healthy = !snap.tags.noloadbalance
        && !lagging
        && state_ok
        && st.role == "replica"
        && st.state == "running";
    if healthy {
        OK
    } else {
        UNAVAILABLE
    }
}

/// The status code of a health-check path (every GET path without its own handler, and
/// every HEAD or OPTIONS).
pub fn health(path: &str, query: &Query, snap: &NodeSnapshot) -> u16 {
    let path = if path == "/" { "/primary" } else { path };
    let st = pg_status(snap);
    let replica = replica_code(&st, query, snap);
    let code = |b: bool| if b { OK } else { UNAVAILABLE };

    // pgkeel has no standby clusters, so the standby-leader code is always 503 except in
    // the "paused without DCS" case, where Patroni trusts the local role.
    let (leader, primary, standby_leader) = if snap.cluster.is_none() && snap.paused {
        let p = code(st.role == "primary");
        let sl = code(st.role == "standby_leader");
        (code(p == OK || sl == OK), p, sl)
    } else if snap.holds_leader_key {
        (OK, OK, UNAVAILABLE)
    } else {
        (UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    };

    let mut ignore_tags = false;
    let status = if path.contains("standby_leader") || path.contains("standby-leader") {
        ignore_tags = true;
        standby_leader
    } else if path.contains("leader") {
        ignore_tags = true;
        leader
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        ignore_tags = true;
        primary
    } else if path.contains("replica") {
        replica
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        if primary == OK || standby_leader == OK {
            OK
        } else {
            replica
        }
    } else if path.contains("health") {
        code(st.state == "running")
    } else if snap.cluster.is_some() {
        // Exact paths here, unlike the substring checks above (Patroni's `path in (...)`).
        // The lag, replication_state and noloadbalance conditions come with `replica`.
        let is_sync = st.sync == Some(SyncKind::Sync);
        let is_quorum = st.sync == Some(SyncKind::Quorum);
        let leader_ok = primary == OK || standby_leader == OK;
        match path {
            "/sync" | "/synchronous" if is_sync => replica,
            "/quorum" if is_quorum => replica,
            "/async" | "/asynchronous" if !is_sync && !is_quorum => replica,
            "/read-only-quorum" if leader_ok => OK,
            "/read-only-quorum" if is_quorum => replica,
            "/read-only-sync" | "/read-only-synchronous" if leader_ok => OK,
            "/read-only-sync" | "/read-only-synchronous" if is_sync => replica,
            _ => UNAVAILABLE,
        }
    } else {
        UNAVAILABLE
    };

    if ignore_tags || status != OK {
        return status;
    }
    // `?tag_<k>=<v>` must equal the node's tag; a missing tag fails the check.
    for (key, want) in query.first_values() {
        let Some(tag) = key.strip_prefix("tag_") else {
            continue;
        };
        if snap.tags.value_of(tag).as_deref() != Some(want) {
            return UNAVAILABLE;
        }
    }
    OK
}

/// `GET /liveness`: is the HA loop still turning? Patroni allows `next_run + ttl` on a
/// running primary and twice that on anything else (replicas are checked by the primary
/// through the REST API anyway), and always passes in maintenance mode.
pub fn liveness(snap: &NodeSnapshot, now: Instant) -> u16 {
    if snap.paused {
        return OK;
    }
    let st = pg_status(snap);
    let is_primary = st.role == "primary" && st.running.is_some();
    let threshold = snap.ttl * if is_primary { 1 } else { 2 };
    match snap.last_loop_at {
        // next_run = loop start + loop_wait.
        Some(t) if t + snap.loop_wait + threshold > now => OK,
        _ => UNAVAILABLE,
    }
}

/// `GET /readiness`: `Ok` when a load balancer may send traffic here, otherwise the reason
/// (logged at debug level, as Patroni does).
pub fn readiness(query: &Query, snap: &NodeSnapshot) -> Result<(), String> {
    if snap.holds_leader_key {
        // Patroni: we only become leader after bootstrap or once up, so we are ready.
        return Ok(());
    }
    if snap.state_text != "running" {
        return Err("PostgreSQL is not running".into());
    }
    let st = pg_status(snap);
    if st.replication_state != Some("streaming") {
        return Err("PostgreSQL replication state is not streaming".into());
    }
    if snap.cluster.is_none() && snap.latest_end_lsn.unwrap_or(0) == 0 {
        // A leader that keeps running on failsafe is still confirming itself to us.
        if snap.failsafe_active {
            return Ok(());
        }
        return Err("DCS is not accessible".into());
    }
    let (mode, location) = if query.get("mode") == Some("write") {
        ("write", st.received_location())
    } else {
        ("apply", st.replayed_location())
    };
    let lag = i128::from(leader_optime(snap)) - i128::from(location);
    let max = query
        .get("lag")
        .and_then(parse_bytes)
        .unwrap_or(i128::from(snap.maximum_lag_on_failover));
    if lag > max {
        return Err(format!(
            "Replication {mode} lag {lag} exceeds maximum allowable {max}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pgkeel_core::sync::SyncMode;

    use super::*;
    use crate::testutil::*;

    fn code(path_and_query: &str, snap: &NodeSnapshot) -> u16 {
        let (path, q) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        health(path, &Query::parse(q), snap)
    }

    /// Expected codes per path for the six kinds of node, in the order: leader primary,
    /// streaming replica, lagging replica (20 MiB), noloadbalance replica, stopped PG,
    /// replica that never read the DCS.
    #[test]
    fn every_path_for_every_kind_of_node() {
        let nodes = [
            ("leader", leader()),
            ("streaming", streaming_replica()),
            ("lagging", lagging_replica()),
            ("noloadbalance", noloadbalance_replica()),
            ("stopped", stopped()),
            ("no_dcs", no_dcs()),
        ];
        #[rustfmt::skip]
        let table: &[(&str, [u16; 6])] = &[
            ("/",                                  [200, 503, 503, 503, 503, 503]),
            ("/primary",                           [200, 503, 503, 503, 503, 503]),
            ("/read-write",                        [200, 503, 503, 503, 503, 503]),
            ("/master",                            [200, 503, 503, 503, 503, 503]),
            ("/leader",                            [200, 503, 503, 503, 503, 503]),
            ("/standby-leader",                    [503, 503, 503, 503, 503, 503]),
            ("/standby_leader",                    [503, 503, 503, 503, 503, 503]),
            ("/replica",                           [503, 200, 200, 503, 503, 200]),
            ("/replica?lag=1MB",                   [503, 200, 503, 503, 503, 200]),
            ("/replica?lag=16kB",                  [503, 200, 503, 503, 503, 200]),
            ("/replica?lag=56",                    [503, 200, 503, 503, 503, 200]),
            ("/replica?lag=55",                    [503, 503, 503, 503, 503, 200]),
            ("/replica?lag=1GB",                   [503, 200, 200, 503, 503, 200]),
            ("/replica?lag=garbage",               [503, 200, 200, 503, 503, 200]),
            ("/replica?replication_state=streaming", [503, 200, 200, 503, 503, 200]),
            ("/replica?replication_state=in%20archive%20recovery", [503, 503, 503, 503, 503, 503]),
            ("/replica?tag_zone=a",                [503, 503, 503, 503, 503, 503]),
            ("/read-only",                         [200, 200, 200, 503, 503, 200]),
            ("/read-only?lag=1MB",                 [200, 200, 503, 503, 503, 200]),
            ("/health",                            [200, 200, 200, 200, 503, 200]),
            ("/sync",                              [503, 503, 503, 503, 503, 503]),
            ("/synchronous",                       [503, 503, 503, 503, 503, 503]),
            ("/quorum",                            [503, 503, 503, 503, 503, 503]),
            ("/async",                             [503, 200, 200, 503, 503, 503]),
            ("/asynchronous",                      [503, 200, 200, 503, 503, 503]),
            ("/asynchronous?lag=1MB",              [503, 200, 503, 503, 503, 503]),
            ("/read-only-sync",                    [200, 503, 503, 503, 503, 503]),
            ("/read-only-quorum",                  [200, 503, 503, 503, 503, 503]),
            ("/unknown",                           [503, 503, 503, 503, 503, 503]),
            ("/patroni",                           [503, 503, 503, 503, 503, 503]),
            // Substring matching, as Patroni: these are replica/leader checks.
            ("/replica-zone-a",                    [503, 200, 200, 503, 503, 200]),
            ("/leader/anything",                   [200, 503, 503, 503, 503, 503]),
        ];
        for (path, want) in table {
            for ((kind, snap), want) in nodes.iter().zip(want) {
                assert_eq!(code(path, snap), *want, "{path} on {kind}");
            }
        }
    }

    /// The synchronous paths, for: the leader, a sync standby, a quorum standby, a replica
    /// `/sync` does not name, a named replica while synchronous_mode is off (a stale key),
    /// a named sync standby 20 MiB behind, a named noloadbalance one, and a named one that
    /// has no DCS view.
    #[test]
    fn sync_and_quorum_paths() {
        let mut sync_leader = leader();
        sync_leader.sync_mode = SyncMode::On;
        set_sync_key(&mut sync_leader, &["node2"]);
        let mut quorum_leader = sync_leader.clone();
        quorum_leader.sync_mode = SyncMode::Quorum;
        let mut not_named = sync_standby(SyncMode::On);
        set_sync_key(&mut not_named, &["node3"]);
        let stale = {
            let mut s = sync_standby(SyncMode::Off);
            s.sync_mode = SyncMode::Off;
            s
        };
        let mut lagging = lagging_replica();
        lagging.sync_mode = SyncMode::On;
        set_sync_key(&mut lagging, &["node2"]);
        let mut nolb = sync_standby(SyncMode::On);
        nolb.tags.noloadbalance = true;
        let mut blind = sync_standby(SyncMode::On);
        blind.cluster = None;
        let nodes = [
            ("sync leader", sync_leader),
            ("quorum leader", quorum_leader),
            ("sync", sync_standby(SyncMode::On)),
            ("quorum", sync_standby(SyncMode::Quorum)),
            ("not named", not_named),
            ("stale key", stale),
            ("lagging sync", lagging),
            ("noloadbalance sync", nolb),
            ("no dcs", blind),
        ];
        #[rustfmt::skip]
        let table: &[(&str, [u16; 9])] = &[
            ("/sync",                  [503, 503, 200, 503, 503, 503, 200, 503, 503]),
            ("/synchronous",           [503, 503, 200, 503, 503, 503, 200, 503, 503]),
            ("/sync?lag=1MB",          [503, 503, 200, 503, 503, 503, 503, 503, 503]),
            ("/quorum",                [503, 503, 503, 200, 503, 503, 503, 503, 503]),
            ("/quorum?lag=1MB",        [503, 503, 503, 200, 503, 503, 503, 503, 503]),
            ("/async",                 [503, 503, 503, 503, 200, 200, 503, 503, 503]),
            ("/asynchronous",          [503, 503, 503, 503, 200, 200, 503, 503, 503]),
            ("/read-only-sync",        [200, 200, 200, 503, 503, 503, 200, 503, 503]),
            ("/read-only-synchronous", [200, 200, 200, 503, 503, 503, 200, 503, 503]),
            ("/read-only-sync?lag=1MB",[200, 200, 200, 503, 503, 503, 503, 503, 503]),
            ("/read-only-quorum",      [200, 200, 503, 200, 503, 503, 503, 503, 503]),
            // Exact paths, unlike the substring checks before them.
            ("/sync/",                 [503, 503, 503, 503, 503, 503, 503, 503, 503]),
            ("/quorum-a",              [503, 503, 503, 503, 503, 503, 503, 503, 503]),
            // `read-only` without sync/quorum in it is still the plain read-only check.
            ("/read-only",             [200, 200, 200, 200, 200, 200, 200, 503, 200]),
            ("/replica",               [503, 503, 200, 200, 200, 200, 200, 503, 200]),
        ];
        for (path, want) in table {
            for ((kind, snap), want) in nodes.iter().zip(want) {
                assert_eq!(code(path, snap), *want, "{path} on {kind}");
            }
        }
    }

    #[test]
    fn sync_paths_apply_tag_filters_but_not_to_the_leader_shortcut() {
        let mut snap = sync_standby(SyncMode::On);
        snap.tags.other.insert("zone".into(), "a".into());
        assert_eq!(code("/sync?tag_zone=a", &snap), 200);
        assert_eq!(code("/sync?tag_zone=b", &snap), 503);
        assert_eq!(code("/read-only-sync?tag_zone=b", &snap), 503);
        // Patroni ignores tags only on the leader paths; read-only-* checks them even on
        // the primary.
        let mut primary = leader();
        primary.sync_mode = SyncMode::On;
        assert_eq!(code("/read-only-sync?tag_zone=a", &primary), 503);
        primary.tags.other.insert("zone".into(), "a".into());
        assert_eq!(code("/read-only-sync?tag_zone=a", &primary), 200);
    }

    #[test]
    fn tag_filters() {
        let mut snap = streaming_replica();
        snap.tags.other.insert("zone".into(), "a".into());
        snap.tags.nofailover = true;
        assert_eq!(code("/replica?tag_zone=a", &snap), 200);
        assert_eq!(code("/replica?tag_zone=b", &snap), 503);
        assert_eq!(code("/replica?tag_zone=a&tag_rack=1", &snap), 503);
        // Non-string tags compare as Python's str(v).lower().
        assert_eq!(code("/replica?tag_nofailover=true", &snap), 200);
        assert_eq!(code("/replica?tag_nofailover=True", &snap), 503);
        assert_eq!(code("/read-only?tag_zone=a", &snap), 200);
        assert_eq!(code("/health?tag_zone=b", &snap), 503);
        // Leader checks ignore tags.
        assert_eq!(code("/primary?tag_zone=b", &leader()), 200);
        assert_eq!(code("/leader?tag_zone=b", &leader()), 200);
        // Tags are only checked when the code would be 200.
        assert_eq!(code("/replica?tag_zone=a", &leader()), 503);
    }

    #[test]
    fn lag_uses_latest_end_lsn_when_it_is_ahead() {
        let mut snap = no_dcs();
        assert_eq!(code("/replica?lag=1kB", &snap), 200);
        snap.latest_end_lsn = Some(LEADER_LSN + 10 * 1024 * 1024);
        assert_eq!(code("/replica?lag=1MB", &snap), 503);
        assert_eq!(code("/replica?lag=20MB", &snap), 200);
    }

    /// Any limit too large to matter means "no limit", however it is spelled: `1e309` (a
    /// float that overflows to infinity) overflowed the comparison and answered 503 where
    /// `99999999999999999999` answered 200 (issue 11, item 7).
    #[test]
    fn huge_lag_limits_agree() {
        for snap in [streaming_replica(), lagging_replica()] {
            for path in ["/replica", "/read-only", "/asynchronous"] {
                let want = code(&format!("{path}?lag=99999999999999999999"), &snap);
                for lag in [
                    "1e309",
                    "1e308",
                    "99999999999999999999TB",
                    "0x7fffffffffffffffffffffffffffffff",
                ] {
                    assert_eq!(
                        code(&format!("{path}?lag={lag}"), &snap),
                        want,
                        "{path}?lag={lag}"
                    );
                }
            }
            let want = readiness(&Query::parse(Some("lag=99999999999999999999")), &snap);
            assert_eq!(readiness(&Query::parse(Some("lag=1e309")), &snap), want);
        }
    }

    #[test]
    fn paused_without_dcs_trusts_local_role() {
        let mut snap = leader();
        snap.cluster = None;
        snap.holds_leader_key = false;
        assert_eq!(code("/primary", &snap), 503);
        snap.paused = true;
        assert_eq!(code("/primary", &snap), 200);
        assert_eq!(code("/leader", &snap), 200);
        assert_eq!(code("/standby-leader", &snap), 503);
        assert_eq!(code("/read-only", &snap), 200);
    }

    #[test]
    fn unknown_pg_state_fails_replica_and_health() {
        let mut snap = streaming_replica();
        snap.pg = pgkeel_core::observation::PgView::Unknown;
        assert_eq!(code("/replica", &snap), 503);
        assert_eq!(code("/health", &snap), 503);
    }

    #[test]
    fn liveness_windows() {
        let t0 = Instant::now();
        let at = |snap: &NodeSnapshot, secs: u64| liveness(snap, t0 + Duration::from_secs(secs));
        let mut primary = leader();
        primary.last_loop_at = Some(t0);
        // loop_wait 10 + ttl 30.
        assert_eq!(at(&primary, 39), 200);
        assert_eq!(at(&primary, 40), 503);
        let mut replica = streaming_replica();
        replica.last_loop_at = Some(t0);
        // loop_wait 10 + 2 * ttl 30.
        assert_eq!(at(&replica, 69), 200);
        assert_eq!(at(&replica, 70), 503);
        replica.paused = true;
        assert_eq!(at(&replica, 1000), 200);
        let mut never = stopped();
        never.last_loop_at = None;
        assert_eq!(at(&never, 0), 503);
    }

    #[test]
    fn readiness_cases() {
        let q = |s: &str| Query::parse(Some(s));
        let none = Query::default();
        assert_eq!(readiness(&none, &leader()), Ok(()));
        let mut stopped_leader = stopped();
        stopped_leader.holds_leader_key = true;
        assert_eq!(readiness(&none, &stopped_leader), Ok(()));

        assert_eq!(readiness(&none, &streaming_replica()), Ok(()));
        assert_eq!(
            readiness(&none, &stopped()),
            Err("PostgreSQL is not running".into())
        );
        let mut not_streaming = streaming_replica();
        set_streaming(&mut not_streaming, false);
        assert_eq!(
            readiness(&none, &not_streaming),
            Err("PostgreSQL replication state is not streaming".into())
        );
        assert_eq!(
            readiness(&none, &no_dcs()),
            Err("DCS is not accessible".into())
        );
        let mut no_dcs_on_failsafe = no_dcs();
        no_dcs_on_failsafe.failsafe_active = true;
        assert_eq!(readiness(&none, &no_dcs_on_failsafe), Ok(()));
        let mut no_dcs_with_receiver = no_dcs();
        no_dcs_with_receiver.latest_end_lsn = Some(LEADER_LSN);
        assert_eq!(readiness(&none, &no_dcs_with_receiver), Ok(()));

        // Default limit: maximum_lag_on_failover (1 MiB); the lagging replica is 20 MiB
        // behind in replay but has received everything.
        assert_eq!(
            readiness(&none, &lagging_replica()),
            Err("Replication apply lag 20971520 exceeds maximum allowable 1048576".into())
        );
        assert_eq!(readiness(&q("mode=write"), &lagging_replica()), Ok(()));
        assert_eq!(readiness(&q("lag=32MB"), &lagging_replica()), Ok(()));
        assert_eq!(
            readiness(&q("lag=10MB&mode=apply"), &lagging_replica()),
            Err("Replication apply lag 20971520 exceeds maximum allowable 10485760".into())
        );
        assert_eq!(readiness(&q("lag=nonsense"), &streaming_replica()), Ok(()));
    }
}
