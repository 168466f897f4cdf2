//! `GET /failsafe` and `POST /failsafe` (Patroni `do_GET_failsafe`, `do_POST_failsafe` and
//! `Ha.update_failsafe`, api.py / ha.py).
//!
//! During a DCS outage a primary with `failsafe_mode` on POSTs
//! `{"name", "conn_url", "api_url", "slots"}` to every member of the `/failsafe` key and
//! keeps running only if all of them answer `200 Accepted`. A member accepts unless its own
//! PostgreSQL runs as a primary; it then treats the caller as the live leader for `ttl`
//! ([`crate::FailsafeInbox`]) and reports its WAL position in an `lsn` header, which the
//! primary uses to advance the slots of cascading replicas.

use serde_json::{Map, Value};

use crate::json_body::{read_json_object, send_error};
use crate::routes::{Body, Reply};
use crate::snapshot::NodeSnapshot;
use crate::status::pg_status;

/// `GET /failsafe`: the `/failsafe` key (`{name: api_url}`) of the last DCS read; 502 when
/// failsafe mode is off or the leader has not written the key.
pub(crate) fn failsafe_topology(snap: &NodeSnapshot) -> Reply {
    let topology = snap
        .cluster
        .as_ref()
        .and_then(|c| c.failsafe.as_ref())
        .filter(|_| snap.failsafe_mode);
    match topology {
        Some(t) => Reply {
            status: 200,
            body: Body::Json(Value::Object(
                t.iter()
                    .map(|(name, url)| (name.clone(), Value::from(url.as_str())))
                    .collect::<Map<_, _>>(),
            )),
        },
        None => send_error(502),
    }
}

/// A `POST /failsafe` this node accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The caller's member name, for the [`crate::FailsafeInbox`].
    pub leader: String,
    /// The ttl the caller runs with, when it says.
    pub ttl: Option<std::time::Duration>,
    /// The `lsn` header: this replica's received or replayed position, whichever is
    /// further; `None` when PostgreSQL is not running and no position is known.
    pub lsn: Option<u64>,
    /// The leader's slot positions (`slots`: name -> LSN as an integer); entries that are
    /// not integers are left out, as Patroni reads them (`parse_int`, else 0).
    pub slots: Option<std::collections::BTreeMap<String, u64>>,
}

/// `POST /failsafe` after authentication: checks it and, when accepted, records the leader
/// in `inbox` (what the agent reads while the DCS is unreachable). The HTTP server and the
/// simulator's network both answer through this.
pub fn receive_failsafe(
    body: Option<&[u8]>,
    snap: &NodeSnapshot,
    inbox: &crate::FailsafeInbox,
) -> Result<Accepted, Reply> {
    let accepted = accept_failsafe(body, snap)?;
    inbox.record(
        accepted.leader.clone(),
        accepted.ttl,
        accepted.slots.clone(),
    );
    Ok(accepted)
}

/// Checks a `POST /failsafe` (authentication is the caller's, and comes first, as
/// Patroni's `@check_access`). `body` is `None` without a `Content-Length` header.
pub(crate) fn accept_failsafe(body: Option<&[u8]>, snap: &NodeSnapshot) -> Result<Accepted, Reply> {
    if !snap.failsafe_mode {
        return Err(send_error(502));
    }
    let bad = |why: &str| Reply {
        status: 400,
        body: Body::Text(format!(
            "POST /failsafe: {why}; expected a JSON object with the leader's \"name\", \
             \"conn_url\" and \"api_url\""
        )),
    };
    let request = read_json_object(body, false).map_err(|e| match e.status {
        400 => bad("the body is not a non-empty JSON object"),
        _ => e,
    })?;
    let st = pg_status(snap);
    // Patroni asks its state machine (running, role primary), not the leader key: a
    // primary that lost the key still refuses to vouch for another one. It does so before
    // looking at the fields.
    if snap.state_text == "running" && st.role == "primary" {
        return Err(Reply {
            status: 500,
            body: Body::Text("Running as a leader".into()),
        });
    }
    // Patroni's `Failsafe.update` indexes these three; a missing one is an exception there.
    let text = |key: &str| match request.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(bad(&format!("\"{key}\" is not a non-empty string"))),
        None => Err(bad(&format!("\"{key}\" is missing"))),
    };
    let leader = text("name")?;
    text("conn_url")?;
    text("api_url")?;
    // pgkeel's leaders add their ttl (Patroni's do not): a bad one is ignored, not refused.
    let ttl = request
        .get("ttl")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t > 0.0 && *t <= 86_400.0)
        .map(std::time::Duration::from_secs_f64);
    let lsn = Some(st.received_location().max(st.replayed_location())).filter(|l| *l != 0);
    let slots = match request.get("slots") {
        Some(Value::Object(m)) => Some(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect(),
        ),
        _ => None,
    };
    Ok(Accepted {
        leader,
        ttl,
        lsn,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::testutil::*;

    const BODY: &[u8] = br#"{"name": "node1", "conn_url": "postgres://127.0.0.1:5432/postgres",
        "api_url": "http://127.0.0.1:8008/patroni", "slots": {"node2": 100}}"#;

    fn with_failsafe(mut snap: NodeSnapshot) -> NodeSnapshot {
        snap.failsafe_mode = true;
        snap.cluster.as_mut().expect("cluster").failsafe = Some(BTreeMap::from([
            (
                "node1".to_string(),
                "http://127.0.0.1:8008/patroni".to_string(),
            ),
            (
                "node2".to_string(),
                "http://127.0.0.1:8009/patroni".to_string(),
            ),
        ]));
        snap
    }

    fn text(r: &Reply) -> &str {
        match &r.body {
            Body::Text(t) => t,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn topology_only_in_failsafe_mode_with_a_key() {
        let snap = with_failsafe(streaming_replica());
        assert_eq!(
            failsafe_topology(&snap),
            Reply {
                status: 200,
                body: Body::Json(json!({
                    "node1": "http://127.0.0.1:8008/patroni",
                    "node2": "http://127.0.0.1:8009/patroni"
                }))
            }
        );
        let mut off = snap.clone();
        off.failsafe_mode = false;
        assert_eq!(failsafe_topology(&off).status, 502);
        let mut no_key = snap.clone();
        no_key.cluster.as_mut().unwrap().failsafe = None;
        assert_eq!(failsafe_topology(&no_key).status, 502);
        let mut no_dcs = snap;
        no_dcs.cluster = None;
        assert_eq!(failsafe_topology(&no_dcs).status, 502);
    }

    #[test]
    fn a_replica_accepts_and_reports_its_position() {
        let snap = with_failsafe(streaming_replica());
        assert_eq!(
            accept_failsafe(Some(BODY), &snap),
            Ok(Accepted {
                leader: "node1".into(),
                ttl: None,
                // received (LEADER_LSN) is ahead of replayed (LEADER_LSN - 56).
                lsn: Some(LEADER_LSN),
                // The leader's slot positions, for the replica's copies of its slots.
                slots: Some(BTreeMap::from([("node2".to_string(), 100)])),
            })
        );
        // Without the optional slots too.
        let body = br#"{"name":"node1","conn_url":"postgres://h/","api_url":"http://h/patroni"}"#;
        assert_eq!(accept_failsafe(Some(body), &snap).unwrap().slots, None);
        // A position that is not an integer is left out (Patroni reads it as 0).
        let body = br#"{"name":"node1","conn_url":"postgres://h/","api_url":"http://h/patroni","slots":{"a":"x","b":7}}"#;
        assert_eq!(
            accept_failsafe(Some(body), &snap).unwrap().slots,
            Some(BTreeMap::from([("b".to_string(), 7)]))
        );
        // A stopped node accepts, with no position to report.
        let stopped = with_failsafe(stopped());
        assert_eq!(
            accept_failsafe(Some(BODY), &stopped),
            Ok(Accepted {
                leader: "node1".into(),
                ttl: None,
                lsn: None,
                slots: Some(BTreeMap::from([("node2".to_string(), 100)])),
            })
        );
    }

    #[test]
    fn a_running_primary_refuses() {
        let r = accept_failsafe(Some(BODY), &with_failsafe(leader())).unwrap_err();
        assert_eq!((r.status, text(&r)), (500, "Running as a leader"));
        // Even without the leader key: PostgreSQL's role decides.
        let mut keyless = with_failsafe(leader());
        keyless.holds_leader_key = false;
        assert_eq!(
            accept_failsafe(Some(BODY), &keyless).unwrap_err().status,
            500
        );
    }

    #[test]
    fn failsafe_mode_off_is_502_before_the_body_is_read() {
        let snap = streaming_replica();
        assert_eq!(accept_failsafe(Some(BODY), &snap).unwrap_err().status, 502);
        assert_eq!(accept_failsafe(Some(b"{x"), &snap).unwrap_err().status, 502);
    }

    #[test]
    fn bad_bodies_are_400_with_the_reason() {
        let snap = with_failsafe(streaming_replica());
        assert_eq!(accept_failsafe(None, &snap).unwrap_err().status, 411);
        for (body, why) in [
            (&b"not json"[..], "not a non-empty JSON object"),
            (b"", "not a non-empty JSON object"),
            (b"{}", "not a non-empty JSON object"),
            (b"[\"node1\"]", "not a non-empty JSON object"),
            (br#"{"conn_url":"c","api_url":"a"}"#, "\"name\" is missing"),
            (
                br#"{"name":"","conn_url":"c","api_url":"a"}"#,
                "\"name\" is not",
            ),
            (
                br#"{"name":7,"conn_url":"c","api_url":"a"}"#,
                "\"name\" is not",
            ),
            (br#"{"name":"n1","api_url":"a"}"#, "\"conn_url\" is missing"),
            (
                br#"{"name":"n1","conn_url":"c","api_url":null}"#,
                "\"api_url\" is not",
            ),
        ] {
            let r = accept_failsafe(Some(body), &snap).unwrap_err();
            assert_eq!(r.status, 400, "{body:?}");
            assert!(text(&r).contains(why), "{body:?}: {}", text(&r));
        }
    }
}
