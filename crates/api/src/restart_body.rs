//! `POST /restart`: the body checks of Patroni's `do_POST_restart` (api.py), with its
//! codes and texts. Whether this node matches the filters, and the restart itself, are
//! the agent's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pgkeel_core::quote::{clip, quote_json};
use serde_json::Value;

use crate::admin::AdminRequest;
use crate::json_body::{read_json_object, truthy};
use crate::query::parse_seconds;
use crate::routes::{Body, Reply};
use crate::schedule::parse_schedule;
use crate::snapshot::NodeSnapshot;

fn text(status: u16, t: impl Into<String>) -> Reply {
    Reply {
        status,
        body: Body::Text(t.into()),
    }
}

/// Patroni's `postgres_version_to_int` check (postgresql/misc.py): `X.Y` from 10 on,
/// `X.Y.Z` before; the error text is Patroni's.
fn check_postgres_version(v: &Value) -> Result<String, String> {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let parts: Result<Vec<u32>, _> = s.split('.').map(|p| p.trim().parse::<u32>()).collect();
    let Ok(parts) = parts else {
        return Err(format!("Invalid PostgreSQL version: {}", clip(&s)));
    };
    if parts.len() < 2 || (parts.len() == 2 && parts[0] < 10) || parts.len() > 3 {
        return Err(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {}",
            clip(&s)
        ));
    }
    Ok(s)
}

/// Validates a restart request. The body is optional (`patronictl restart` may send
/// none).
pub(crate) fn restart_request(
    body: Option<&[u8]>,
    snap: &NodeSnapshot,
    now: DateTime<Utc>,
) -> Result<AdminRequest, Reply> {
    let request = read_json_object(body, true)?;
    if !request.is_empty() {
        tracing::debug!(
            "received restart request: {}",
            quote_json(&serde_json::Value::Object(request.clone()))
        );
    }
    let paused = snap.paused || snap.cluster.as_ref().is_some_and(|c| c.paused());
    if paused && request.contains_key("schedule") {
        return Err(text(500, "Can't schedule restart in the paused state"));
    }
    let (mut schedule, mut role, mut postgres_version, mut timeout) = (None, None, None, None);
    let mut restart_pending = false;
    // Patroni reports the first bad key in body order; serde_json's map is sorted, so
    // with several bad keys the one reported may differ. Each text is Patroni's.
    for (k, v) in &request {
        match k.as_str() {
            "schedule" => schedule = Some(parse_schedule(v, "restart", now)?),
            "role" => match v.as_str() {
                // Patroni 4 takes `primary`, `standby_leader` and `replica`; we also take
                // Patroni 3's `master` and the CLI's spelling `standby-leader`.
                Some(r @ ("primary" | "standby_leader" | "replica")) => role = Some(r.to_string()),
                Some("master") => role = Some("primary".into()),
                Some("standby-leader") => role = Some("standby_leader".into()),
                _ => {
                    return Err(text(
                        400,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    ))
                }
            },
            "postgres_version" => match check_postgres_version(v) {
                Ok(s) => postgres_version = Some(s),
                Err(e) => return Err(text(400, e)),
            },
            "timeout" => {
                // parse_int(str(value), 's'): 30, "30", "30s", "1min".
                let raw = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                match parse_seconds(&raw) {
                    Some(secs) if secs > 0 => {
                        timeout =
                            Some(Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)));
                    }
                    _ => return Err(text(400, "Timeout should be a positive number of seconds")),
                }
            }
            "restart_pending" => restart_pending = truthy(v),
            other => {
                return Err(text(
                    400,
                    format!("Unknown filter for the scheduled restart: {}", clip(other)),
                ))
            }
        }
    }
    Ok(AdminRequest::Restart {
        schedule,
        role,
        postgres_version,
        timeout,
        restart_pending,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::testutil::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    fn post(body: Value, snap: &NodeSnapshot) -> Result<AdminRequest, (u16, String)> {
        let raw = body.to_string();
        restart_request(Some(raw.as_bytes()), snap, now()).map_err(|r| match r.body {
            Body::Text(t) => (r.status, t),
            other => panic!("{other:?}"),
        })
    }

    fn err(status: u16, t: &str) -> Result<AdminRequest, (u16, String)> {
        Err((status, t.to_string()))
    }

    const PLAIN: AdminRequest = AdminRequest::Restart {
        schedule: None,
        role: None,
        postgres_version: None,
        timeout: None,
        restart_pending: false,
    };

    #[test]
    fn empty_or_missing_body_is_an_immediate_restart() {
        let snap = leader();
        assert_eq!(restart_request(None, &snap, now()), Ok(PLAIN));
        assert_eq!(restart_request(Some(b""), &snap, now()), Ok(PLAIN));
        assert_eq!(post(json!({}), &snap), Ok(PLAIN));
        assert_eq!(
            restart_request(Some(b"[]"), &snap, now())
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn all_filters() {
        assert_eq!(
            post(
                json!({"schedule": "2024-06-01T13:00:00+00:00", "role": "replica",
                       "postgres_version": "16.4", "timeout": "1min", "restart_pending": true}),
                &leader()
            ),
            Ok(AdminRequest::Restart {
                schedule: Some("2024-06-01T13:00:00+00:00".into()),
                role: Some("replica".into()),
                postgres_version: Some("16.4".into()),
                timeout: Some(Duration::from_secs(60)),
                restart_pending: true,
            })
        );
        let Ok(AdminRequest::Restart { timeout, role, .. }) =
            post(json!({"timeout": 30, "role": "master"}), &leader())
        else {
            panic!()
        };
        assert_eq!(timeout, Some(Duration::from_secs(30)));
        assert_eq!(role.as_deref(), Some("primary"));
    }

    #[test]
    fn patroni_errors() {
        let snap = leader();
        assert_eq!(
            post(json!({"role": "leader"}), &snap),
            err(
                400,
                "PostgreSQL role should be either primary, standby_leader, or replica"
            )
        );
        assert_eq!(
            post(json!({"postgres_version": "9.6"}), &snap),
            err(
                400,
                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"
            )
        );
        assert_eq!(
            post(json!({"postgres_version": "16"}), &snap),
            err(
                400,
                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 16"
            )
        );
        assert_eq!(
            post(json!({"postgres_version": "a.b.c"}), &snap),
            err(400, "Invalid PostgreSQL version: a.b.c")
        );
        assert!(post(json!({"postgres_version": "9.6.24"}), &snap).is_ok());
        for bad in [
            json!("0"),
            json!(-1),
            json!("soon"),
            json!(null),
            json!("500ms"),
        ] {
            assert_eq!(
                post(json!({ "timeout": bad }), &snap),
                err(400, "Timeout should be a positive number of seconds"),
                "{bad}"
            );
        }
        assert_eq!(
            post(json!({"when": "now"}), &snap),
            err(400, "Unknown filter for the scheduled restart: when")
        );
        assert_eq!(
            post(json!({"schedule": "2024-06-01T13:00:00"}), &snap),
            err(
                400,
                "Timezone information is mandatory for the scheduled restart"
            )
        );
        assert_eq!(
            post(json!({"schedule": "2024-06-01T11:00:00+00:00"}), &snap),
            err(422, "Cannot schedule restart in the past")
        );
    }

    #[test]
    fn no_scheduling_while_paused() {
        let mut snap = leader();
        snap.paused = true;
        assert_eq!(
            post(json!({"schedule": "2024-06-01T13:00:00+00:00"}), &snap),
            err(500, "Can't schedule restart in the paused state")
        );
        assert_eq!(post(json!({}), &snap), Ok(PLAIN));
    }
}
