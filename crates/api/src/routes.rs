//! Which answer a request gets: a pure function of method, path, query and snapshot, so
//! the routing rules are unit-tested without a socket.
//!
//! Dispatch copies Patroni's `parse_request`: `GET /<first segment>/...` goes to that
//! segment's handler when one exists (`/patroni`, `/cluster`, ...), any other GET to the
//! health check, every HEAD and OPTIONS to the health check (Patroni has no
//! `do_HEAD_<x>` handlers, so even `HEAD /liveness` is a health check on that path and
//! answers 503), and any other method to 501. The unsafe methods of the endpoints that
//! exist are `admin_routes.rs`'s, checked before this.

use std::time::Instant;

use serde_json::Value;

use crate::cluster_json::cluster_json;
use crate::failsafe::failsafe_topology;
use crate::health::{health, liveness, readiness};
use crate::metrics::metrics_text;
use crate::query::Query;
use crate::snapshot::NodeSnapshot;
use crate::status::status_json;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Status line (and the transport's own headers) only: HAProxy mode.
    Empty,
    Json(Value),
    Text(String),
    /// Prometheus text exposition (`GET /metrics`).
    Metrics(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Body,
}

fn reply(status: u16, body: Body) -> Reply {
    Reply { status, body }
}

pub fn route(
    method: &str,
    path: &str,
    query: Option<&str>,
    snap: &NodeSnapshot,
    now: Instant,
) -> Reply {
    let q = Query::parse(query);
    match method {
        "GET" => {}
        "HEAD" | "OPTIONS" => return reply(health(path, &q, snap), Body::Empty),
        // http.server's answer to a method without a `do_<METHOD>` handler.
        other => return reply(501, Body::Text(format!("Unsupported method ('{other}')"))),
    }
    let segment = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match segment {
        "liveness" => reply(liveness(snap, now), Body::Empty),
        "readiness" => match readiness(&q, snap) {
            Ok(()) => reply(200, Body::Empty),
            Err(reason) => {
                tracing::debug!("Readiness check failure: {reason}");
                reply(503, Body::Empty)
            }
        },
        "patroni" => reply(200, Body::Json(status_json(snap))),
        "metrics" => reply(200, Body::Metrics(metrics_text(snap, now))),
        "cluster" => match &snap.cluster {
            Some(c) => reply(200, Body::Json(cluster_json(c, &snap.scope))),
            // Patroni reads the DCS here and fails with it; we have no fresher read than
            // the agent's, and say so rather than show an empty cluster.
            None => reply(503, Body::Text("DCS is not accessible".into())),
        },
        "history" => {
            let lines = snap
                .cluster
                .as_ref()
                .and_then(|c| c.history.as_ref())
                .map(|h| h.iter().map(|e| e.to_json()).collect())
                .unwrap_or_default();
            reply(200, Body::Json(Value::Array(lines)))
        }
        "failsafe" => failsafe_topology(snap),
        "config" => match &snap.dynamic_config {
            Some(c) => reply(200, Body::Json(c.clone())),
            None => reply(502, Body::Empty),
        },
        // pgkeel's: the definitions `edit-config` checks PostgreSQL parameters against.
        "parameters" => match &snap.catalog {
            Some(c) => reply(200, Body::Json(c.to_json())),
            None => reply(
                503,
                Body::Text("pg_settings not read yet: PostgreSQL is not running here".into()),
            ),
        },
        _ => reply(health(path, &q, snap), Body::Json(status_json(snap))),
    }
}

#[cfg(test)]
mod tests {
    use pgkeel_core::dcs_values::HistoryEntry;
    use pgkeel_core::observation::{PgView, Running};
    use serde_json::json;

    use super::*;
    use crate::testutil::*;

    fn get(path: &str, snap: &NodeSnapshot) -> Reply {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        route("GET", p, q, snap, Instant::now())
    }

    #[test]
    fn health_paths_carry_the_status_body() {
        let snap = leader();
        let r = get("/primary", &snap);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, Body::Json(status_json(&snap)));
        let r = get("/replica", &snap);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, Body::Json(status_json(&snap)));
        assert_eq!(get("/whatever", &snap).status, 503);
    }

    /// Patroni's acceptance: a postmaster stopped since the last loop must not answer
    /// `/replica` (or `/primary`) 200 until the next loop notices.
    #[test]
    fn a_postmaster_gone_since_the_loop_is_not_healthy() {
        let mut snap = streaming_replica();
        assert_eq!(get("/replica", &snap).status, 200);
        snap.postmaster_alive = Some(crate::PostmasterAlive(std::sync::Arc::new(|| true)));
        assert_eq!(snap.with_live_postmaster(), None);
        snap.postmaster_alive = Some(crate::PostmasterAlive(std::sync::Arc::new(|| false)));
        let live = snap.with_live_postmaster().expect("seen as stopped");
        assert_eq!(get("/replica", &live).status, 503);
        assert_eq!(get("/read-only", &live).status, 503);
        assert_eq!(get("/health", &live).status, 503);
        assert_eq!(
            get("/liveness", &live).status,
            200,
            "the agent itself is alive"
        );
    }

    /// A fresh status query replaces the loop's positions and timeline in `/patroni` (what
    /// racing peers compare), but not a role the loop has not seen yet.
    #[test]
    fn a_fresh_status_query_replaces_the_loops_positions() {
        let snap = streaming_replica();
        let PgView::Running(old) = &snap.pg else {
            panic!("{:?}", snap.pg);
        };
        let fresh = Running {
            wal_position: pgkeel_core::Lsn(old.wal_position.0 + 100),
            received: Some(pgkeel_core::Lsn(old.wal_position.0 + 100)),
            timeline: old.timeline + 1,
            ..old.clone()
        };
        let now = snap.with_running(fresh.clone()).expect("same role");
        let v = status_json(&now);
        assert_eq!(v["timeline"], fresh.timeline);
        assert_eq!(v["xlog"]["received_location"], old.wal_position.0 + 100);
        let promoted = Running {
            in_recovery: false,
            ..fresh
        };
        assert_eq!(snap.with_running(promoted), None);
    }

    #[test]
    fn head_and_options_are_health_checks_without_body() {
        let snap = leader();
        let now = Instant::now();
        for m in ["HEAD", "OPTIONS"] {
            assert_eq!(route(m, "/", None, &snap, now), reply(200, Body::Empty));
            assert_eq!(
                route(m, "/replica", None, &snap, now),
                reply(503, Body::Empty)
            );
            // Patroni has no do_HEAD_liveness: HEAD /liveness is a health check → 503.
            assert_eq!(route(m, "/liveness", None, &snap, now).status, 503);
            assert_eq!(route(m, "/patroni", None, &snap, now).status, 503);
        }
    }

    #[test]
    fn other_methods_are_not_implemented() {
        let r = route("POST", "/x", None, &leader(), Instant::now());
        assert_eq!(r.status, 501);
        assert_eq!(r.body, Body::Text("Unsupported method ('POST')".into()));
        assert_eq!(
            route("DELETE", "/primary", None, &leader(), Instant::now()).status,
            501
        );
    }

    #[test]
    fn named_endpoints() {
        let mut snap = streaming_replica();
        let r = get("/patroni", &snap);
        assert_eq!((r.status, r.body), (200, Body::Json(status_json(&snap))));
        assert_eq!(get("/patroni/extra", &snap).status, 200);
        let r = get("/metrics", &snap);
        assert_eq!(r.status, 200);
        assert!(matches!(r.body, Body::Metrics(t) if t.contains("patroni_replica{")));
        assert_eq!(get("/liveness", &snap), reply(200, Body::Empty));
        assert_eq!(get("/readiness", &snap), reply(200, Body::Empty));
        assert_eq!(get("/readiness?lag=10", &snap).status, 503);

        let r = get("/cluster", &snap);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, Body::Json(cluster_json(&cluster(), "demo")));

        assert_eq!(get("/history", &snap).body, Body::Json(json!([])));
        snap.cluster.as_mut().unwrap().history = Some(vec![HistoryEntry {
            timeline: 1,
            lsn: 100,
            reason: "no recovery target specified".into(),
            timestamp: Some("2024-01-01T00:00:00+00:00".into()),
            new_leader: Some("node1".into()),
        }]);
        assert_eq!(
            get("/history", &snap).body,
            Body::Json(json!([[
                1,
                100,
                "no recovery target specified",
                "2024-01-01T00:00:00+00:00",
                "node1"
            ]]))
        );

        assert_eq!(get("/config", &snap), reply(502, Body::Empty));
        snap.dynamic_config = Some(json!({"ttl": 30}));
        assert_eq!(
            get("/config", &snap),
            reply(200, Body::Json(json!({"ttl": 30})))
        );

        // GET /failsafe: 502 until failsafe mode is on and the leader wrote the key.
        assert_eq!(get("/failsafe", &snap).status, 502);
        snap.failsafe_mode = true;
        assert_eq!(get("/failsafe", &snap).status, 502);
        snap.cluster.as_mut().unwrap().failsafe = Some(
            [(
                "node1".to_string(),
                "http://127.0.0.1:8008/patroni".to_string(),
            )]
            .into(),
        );
        assert_eq!(
            get("/failsafe", &snap),
            reply(
                200,
                Body::Json(json!({"node1": "http://127.0.0.1:8008/patroni"}))
            )
        );
        // HEAD /failsafe is a health check, as every HEAD.
        assert_eq!(
            route("HEAD", "/failsafe", None, &snap, Instant::now()),
            reply(503, Body::Empty)
        );

        let snap = no_dcs();
        assert_eq!(get("/cluster", &snap).status, 503);
        assert_eq!(get("/history", &snap).body, Body::Json(json!([])));
    }
}
