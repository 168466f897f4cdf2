//! `POST /switchover` and `POST /failover`: the checks Patroni makes in the API before it
//! writes the `/failover` key (`do_POST_failover`, api.py), in the same order and with the
//! same texts, so patronictl and runbooks see the same answers.
//!
//! This module reads the body; whether the cluster allows the request is core's
//! (`admin::switchover::request_problem`, checked here against the last snapshot, and
//! `plan_switchover`, which the agent runs on a fresh read of the DCS and which answers
//! Patroni's 412 `no good candidates have been found`).

use chrono::{DateTime, Utc};
use pgkeel_core::admin::switchover::{request_problem, SwitchoverRequest};
use pgkeel_core::quote::{quote, quote_json};

use crate::admin::AdminRequest;
use crate::json_body::{name_field, read_json_object, truthy};
use crate::routes::{Body, Reply};
use crate::schedule::parse_schedule;
use crate::snapshot::NodeSnapshot;

fn text(status: u16, t: impl Into<String>) -> Reply {
    Reply {
        status,
        body: Body::Text(t.into()),
    }
}

/// Validates a switchover (`failover: false`) or failover request against the last
/// snapshot and returns what to ask the agent.
pub(crate) fn switchover_request(
    body: Option<&[u8]>,
    failover: bool,
    snap: &NodeSnapshot,
    now: DateTime<Utc>,
) -> Result<AdminRequest, Reply> {
    let request = read_json_object(body, false)?;
    let mut action = if failover { "failover" } else { "switchover" };
    let leader = name_field(&request, "leader");
    // patronictl < 3 sent `member`.
    let candidate = name_field(&request, "candidate").or_else(|| name_field(&request, "member"));
    let scheduled = request.get("scheduled_at").filter(|v| truthy(v));
    let shown = |v: Option<&str>| v.map_or("None".into(), |v| quote(v).to_string());
    tracing::info!(
        "received {action} request with leader={} candidate={} scheduled_at={}",
        shown(leader.as_deref()),
        shown(candidate.as_deref()),
        scheduled.map_or("None".into(), quote_json),
    );

    // Patroni reads the cluster from the DCS here; ours is the agent's last read.
    let Some(cluster) = snap.cluster.as_ref() else {
        return Err(text(503, "DCS is not accessible"));
    };

    if action == "failover" && candidate.is_none() {
        return Err(text(
            400,
            "Failover could be performed only to a specific candidate",
        ));
    }
    if action == "switchover" && leader.is_none() {
        return Err(text(
            400,
            "Switchover could be performed only from a specific leader",
        ));
    }
    let scheduled_at = match scheduled {
        None => None,
        Some(_) if action == "failover" => return Err(text(400, "Failover can't be scheduled")),
        Some(v) => Some(parse_schedule(v, action, now)?),
    };
    // Maintenance mode is checked by the agent on a fresh read of the DCS
    // (`plan_switchover`): this snapshot may predate a pause or resume just made.
    if action == "failover" && leader.is_some() {
        tracing::warn!(
            "received failover request with leader specified - performing switchover instead"
        );
        action = "switchover";
    }
    if leader == candidate {
        return Err(text(400, "Switchover target and source are the same"));
    }
    // Patroni checks the members only for an immediate switchover: a scheduled one is
    // checked by the leader when its time comes.
    if scheduled_at.is_none() {
        let req = SwitchoverRequest {
            leader: leader.as_deref(),
            candidate: candidate.as_deref(),
            scheduled_at: None,
            failover: action == "failover",
        };
        if let Some(reason) = request_problem(cluster, &req, snap.sync_mode) {
            return Err(text(412, reason));
        }
    }
    Ok(AdminRequest::Switchover {
        leader,
        candidate,
        scheduled_at,
        failover: action == "failover",
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use pgkeel_core::cluster::MemberEntry;
    use serde_json::json;

    use super::*;
    use crate::testutil::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    fn post(
        failover: bool,
        body: serde_json::Value,
        snap: &NodeSnapshot,
    ) -> Result<AdminRequest, (u16, String)> {
        let raw = body.to_string();
        switchover_request(Some(raw.as_bytes()), failover, snap, now()).map_err(|r| match r.body {
            Body::Text(t) => (r.status, t),
            other => panic!("{other:?}"),
        })
    }

    fn err(status: u16, t: &str) -> Result<AdminRequest, (u16, String)> {
        Err((status, t.to_string()))
    }

    fn switchover(
        leader: &str,
        candidate: Option<&str>,
        at: Option<&str>,
        failover: bool,
    ) -> AdminRequest {
        AdminRequest::Switchover {
            leader: (!leader.is_empty()).then(|| leader.to_string()),
            candidate: candidate.map(String::from),
            scheduled_at: at.map(String::from),
            failover,
        }
    }

    #[test]
    fn valid_requests_are_forwarded() {
        let snap = leader();
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "candidate": "node2"}),
                &snap
            ),
            Ok(switchover("node1", Some("node2"), None, false))
        );
        assert_eq!(
            post(false, json!({"leader": "node1"}), &snap),
            Ok(switchover("node1", None, None, false))
        );
        assert_eq!(
            post(true, json!({"candidate": "node2"}), &snap),
            Ok(switchover("", Some("node2"), None, true))
        );
        // Old patronictl's `member`.
        assert_eq!(
            post(true, json!({"member": "node2"}), &snap),
            Ok(switchover("", Some("node2"), None, true))
        );
        // A failover naming the leader is a switchover.
        assert_eq!(
            post(
                true,
                json!({"leader": "node1", "candidate": "node2"}),
                &snap
            ),
            Ok(switchover("node1", Some("node2"), None, false))
        );
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "scheduled_at": "2024-06-01T13:00:00+00:00"}),
                &snap
            ),
            Ok(switchover(
                "node1",
                None,
                Some("2024-06-01T13:00:00+00:00"),
                false
            ))
        );
    }

    #[test]
    fn missing_names() {
        let snap = leader();
        assert_eq!(
            post(true, json!({"leader": "node1"}), &snap),
            err(
                400,
                "Failover could be performed only to a specific candidate"
            )
        );
        assert_eq!(
            post(false, json!({"candidate": "node2"}), &snap),
            err(
                400,
                "Switchover could be performed only from a specific leader"
            )
        );
        assert_eq!(
            post(false, json!({"leader": "", "candidate": "node2"}), &snap),
            err(
                400,
                "Switchover could be performed only from a specific leader"
            )
        );
    }

    #[test]
    fn bad_bodies() {
        let snap = leader();
        let r = switchover_request(Some(b"{nope"), false, &snap, now()).unwrap_err();
        assert_eq!(r.status, 400);
        let r = switchover_request(Some(b"{}"), false, &snap, now()).unwrap_err();
        assert_eq!(r.status, 400);
        let r = switchover_request(None, false, &snap, now()).unwrap_err();
        assert_eq!(r.status, 411);
    }

    #[test]
    fn scheduling() {
        let snap = leader();
        assert_eq!(
            post(
                true,
                json!({"candidate": "node2", "scheduled_at": "2024-06-01T13:00:00+00:00"}),
                &snap
            ),
            err(400, "Failover can't be scheduled")
        );
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "scheduled_at": "2024-06-01T13:00:00"}),
                &snap
            ),
            err(
                400,
                "Timezone information is mandatory for the scheduled switchover"
            )
        );
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "scheduled_at": "2024-06-01T11:00:00+00:00"}),
                &snap
            ),
            err(422, "Cannot schedule switchover in the past")
        );
        assert_eq!(
            post(false, json!({"leader": "node1", "scheduled_at": "soon"}), &snap),
            err(
                422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
            )
        );
        // A scheduled switchover is not checked against the members (Patroni).
        assert_eq!(
            post(
                false,
                json!({"leader": "nodeX", "candidate": "nodeY", "scheduled_at": "2024-06-01T13:00:00+00:00"}),
                &snap
            ),
            Ok(switchover(
                "nodeX",
                Some("nodeY"),
                Some("2024-06-01T13:00:00+00:00"),
                false
            ))
        );
    }

    #[test]
    fn in_synchronous_mode_a_switchover_goes_only_to_a_sync_standby() {
        let mut snap = leader();
        snap.sync_mode = pgkeel_core::sync::SyncMode::On;
        snap.cluster.as_mut().unwrap().sync = Some(pgkeel_core::dcs_values::SyncValue {
            leader: Some("node1".into()),
            sync_standby: ["node3".to_string()].into(),
            quorum: 0,
        });
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "candidate": "node2"}),
                &snap
            ),
            err(412, "candidate name does not match with sync_standby")
        );
        // A failover may name any member (patronictl asks for confirmation).
        assert!(post(true, json!({"candidate": "node2"}), &snap).is_ok());
    }

    #[test]
    fn same_source_and_target() {
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "candidate": "node1"}),
                &leader()
            ),
            err(400, "Switchover target and source are the same")
        );
    }

    #[test]
    fn members_checked_from_the_dcs() {
        let snap = leader();
        assert_eq!(
            post(
                false,
                json!({"leader": "node2", "candidate": "node1"}),
                &snap
            ),
            err(412, "leader name does not match")
        );
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "candidate": "node7"}),
                &snap
            ),
            err(412, "candidate does not exists")
        );
        assert_eq!(
            post(true, json!({"candidate": "node7"}), &snap),
            err(412, "candidate does not exists")
        );

        let mut alone = leader();
        alone.cluster.as_mut().unwrap().members.remove("node2");
        assert_eq!(
            post(false, json!({"leader": "node1"}), &alone),
            err(
                412,
                "switchover is not possible: cluster does not have members except leader"
            )
        );
        // A member without an API URL cannot be asked, so it does not count.
        let mut silent = leader();
        if let Some(MemberEntry::Ok(m)) = silent.cluster.as_mut().unwrap().members.get_mut("node2")
        {
            m.api_url.clear();
        }
        assert_eq!(
            post(false, json!({"leader": "node1"}), &silent)
                .unwrap_err()
                .0,
            412
        );
        // Failover to a named member with no leader at all.
        let mut headless = streaming_replica();
        headless.cluster.as_mut().unwrap().leader = None;
        assert_eq!(
            post(true, json!({"candidate": "node2"}), &headless),
            Ok(switchover("", Some("node2"), None, true))
        );
        assert_eq!(
            post(
                false,
                json!({"leader": "node1", "candidate": "node2"}),
                &headless
            ),
            err(412, "leader name does not match")
        );
    }

    #[test]
    fn no_dcs_read_yet() {
        assert_eq!(
            post(false, json!({"leader": "node1"}), &no_dcs()),
            err(503, "DCS is not accessible")
        );
    }
}
