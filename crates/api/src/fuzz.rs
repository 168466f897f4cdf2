//! Property tests over what a client controls: the method, the path, the query string and
//! the body. Whatever they hold, routing and validation answer with a status code and never
//! panic (issue 11, item 7: `?lag=1e309` overflowed an addition, a panic in a debug build).
//! Inputs are both arbitrary text and structured: query values and JSON fields shaped like
//! the ones Patroni reads, with values at the edges (huge, negative, fractional, exponents).

use std::time::Instant;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::admin_routes::{endpoint, prepare};
use crate::query::{parse_bytes, parse_seconds, Query};
use crate::routes::route;
use crate::testutil::*;

fn snapshots() -> Vec<crate::snapshot::NodeSnapshot> {
    vec![
        leader(),
        streaming_replica(),
        lagging_replica(),
        noloadbalance_replica(),
        stopped(),
        no_dcs(),
    ]
}

/// A number as a client may spell one: digits, signs, fractions, exponents, hex, units.
fn numberish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[+-]?[0-9]{0,40}(\\.[0-9]{0,5})?([eE][+-]?[0-9]{1,4})?(B|kB|MB|GB|TB|s|ms|min|h|d|us)?",
        "0x[0-9a-fA-F]{0,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("1e309".to_string()),
        Just("-1e309".to_string()),
        Just("99999999999999999999".to_string()),
        Just("nan".to_string()),
        ".{0,20}",
    ]
}

/// A query string of Patroni's keys with numberish or arbitrary values, percent-encoded or not.
fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("lag"),
        Just("mode"),
        Just("replication_state"),
        Just("tag_zone"),
        Just("x"),
    ];
    let value = prop_oneof![numberish(), "[a-z%+=&0-9]{0,12}"];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A JSON value at the edges.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        numberish().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        Just(Value::from("2099-01-01T00:00:00+00:00")),
        Just(Value::from("2001-01-01T00:00:00")),
        Just(Value::Array(vec![])),
        Just(Value::Object(Map::new())),
    ]
}

/// A body of the fields the unsafe endpoints read, each with an edge value.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("leader"),
        Just("candidate"),
        Just("member"),
        Just("scheduled_at"),
        Just("schedule"),
        Just("role"),
        Just("postgres_version"),
        Just("timeout"),
        Just("restart_pending"),
        Just("force"),
        Just("from_leader"),
        Just("ttl"),
        Just("name"),
        Just("conn_url"),
        Just("api_url"),
    ];
    let object = prop::collection::vec((key, leaf()), 0..5).prop_map(|fields| {
        let m: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    });
    prop_oneof![object, prop::collection::vec(any::<u8>(), 0..64)]
}

const METHODS: [&str; 6] = ["GET", "HEAD", "OPTIONS", "POST", "PATCH", "DELETE"];
const PATHS: [&str; 14] = [
    "/",
    "/primary",
    "/replica",
    "/read-only",
    "/health",
    "/liveness",
    "/readiness",
    "/sync",
    "/quorum",
    "/async",
    "/patroni",
    "/metrics",
    "/cluster",
    "/failsafe",
];

proptest! {
    #[test]
    fn reads_never_panic(method in 0..METHODS.len(), path in 0..PATHS.len(), q in query(), raw in ".{0,40}") {
        let now = Instant::now();
        for snap in snapshots() {
            for q in [q.as_str(), raw.as_str()] {
                let r = route(METHODS[method], PATHS[path], Some(q), &snap, now);
                prop_assert!((200..600).contains(&r.status));
            }
        }
    }

    #[test]
    fn the_same_huge_lag_gets_the_same_answer(path in 0..PATHS.len(), digits in 20usize..400) {
        // Any limit beyond every WAL position means "no limit", however it is written.
        let now = Instant::now();
        let huge = format!("lag=1{}", "0".repeat(digits));
        for snap in snapshots() {
            let a = route("GET", PATHS[path], Some(&huge), &snap, now).status;
            let b = route("GET", PATHS[path], Some("lag=1e309"), &snap, now).status;
            prop_assert_eq!(a, b, "{} with {}", PATHS[path], huge);
        }
    }

    #[test]
    fn unsafe_requests_never_panic(method in 0..METHODS.len(), segment in 0..5usize, b in body(), with_length in any::<bool>()) {
        let path = ["/switchover", "/failover", "/restart", "/reinitialize", "/config"][segment];
        let Some(ep) = endpoint(METHODS[method], path) else {
            return Ok(());
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        for snap in snapshots() {
            let body = with_length.then_some(b.as_slice());
            if let Err(r) = prepare(ep, body, &snap, now) {
                prop_assert!((400..600).contains(&r.status), "{} {}: {}", METHODS[method], path, r.status);
            }
        }
        let failsafe = crate::failsafe::accept_failsafe(Some(&b), &leader());
        if let Err(r) = failsafe {
            prop_assert!((400..600).contains(&r.status));
        }
    }

    #[test]
    fn numbers_never_panic(s in numberish()) {
        let _ = parse_bytes(&s);
        let _ = parse_seconds(&s);
        let _ = Query::parse(Some(&s));
    }
}
