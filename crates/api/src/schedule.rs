//! `scheduled_at` of a switchover and `schedule` of a restart (Patroni
//! `RestApiHandler.parse_schedule`, api.py).
//!
//! Patroni uses `dateutil.parser.parse`, which accepts almost anything; patronictl sends
//! `datetime.isoformat()`, so ISO 8601 (with `T` or a space, with or without seconds and
//! fractions) covers every client we know of.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use pgkeel_core::quote::quote_json;
use serde_json::Value;

use crate::routes::{Body, Reply};

fn error(status: u16, text: String) -> Reply {
    Reply {
        status,
        body: Body::Text(text),
    }
}

enum Parsed {
    WithZone(DateTime<FixedOffset>),
    NoZone,
    Invalid,
}

fn parse(s: &str) -> Parsed {
    let s = s.trim();
    // Accept a space between date and time, and `Z`, by rewriting to the strict form.
    let mut t = s.to_string();
    if t.len() > 10 && t.as_bytes()[10] == b' ' {
        t.replace_range(10..11, "T");
    }
    if t.ends_with(['Z', 'z']) {
        t.pop();
        t.push_str("+00:00");
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(&t, fmt) {
            return Parsed::WithZone(dt);
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if NaiveDateTime::parse_from_str(&t, fmt).is_ok() {
            return Parsed::NoZone;
        }
    }
    if chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").is_ok() {
        return Parsed::NoZone;
    }
    Parsed::Invalid
}

/// Python's `datetime.isoformat()`: seconds always, microseconds only when non-zero.
fn isoformat(dt: &DateTime<FixedOffset>) -> String {
    if dt.timestamp_subsec_micros() == 0 {
        dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        dt.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

/// Checks a schedule for `action` ("switchover", "restart") and returns it in Python's
/// `isoformat()`, the form Patroni stores in the DCS. Errors carry Patroni's code and text:
/// 400 without a time zone, 422 in the past or unparsable.
pub(crate) fn parse_schedule(
    value: &Value,
    action: &str,
    now: DateTime<Utc>,
) -> Result<String, Reply> {
    let parsed = match value {
        Value::String(s) => parse(s),
        // dateutil raises TypeError on a non-string, which Patroni reports as unparsable.
        _ => Parsed::Invalid,
    };
    match parsed {
        Parsed::WithZone(dt) if dt < now => {
            Err(error(422, format!("Cannot schedule {action} in the past")))
        }
        Parsed::WithZone(dt) => Ok(isoformat(&dt)),
        Parsed::NoZone => Err(error(
            400,
            format!("Timezone information is mandatory for the scheduled {action}"),
        )),
        Parsed::Invalid => {
            tracing::info!("Invalid scheduled {action} time: {}", quote_json(value));
            Err(error(
                422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                    .into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    fn check(v: Value) -> Result<String, (u16, String)> {
        parse_schedule(&v, "switchover", now()).map_err(|r| match r.body {
            Body::Text(t) => (r.status, t),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn accepts_iso_with_zone_and_normalizes() {
        assert_eq!(
            check(json!("2024-06-01T13:00:00+00:00")).unwrap(),
            "2024-06-01T13:00:00+00:00"
        );
        assert_eq!(
            check(json!("2024-06-01 15:30+02:00")).unwrap(),
            "2024-06-01T15:30:00+02:00"
        );
        assert_eq!(
            check(json!("2024-06-01T13:00:00.25Z")).unwrap(),
            "2024-06-01T13:00:00.250000+00:00"
        );
        assert_eq!(
            check(json!("2024-06-01T09:00:00-0300")).unwrap(),
            "2024-06-01T09:00:00-03:00"
        );
    }

    #[test]
    fn patroni_errors() {
        assert_eq!(
            check(json!("2024-06-01T13:00:00")).unwrap_err(),
            (
                400,
                "Timezone information is mandatory for the scheduled switchover".into()
            )
        );
        assert_eq!(
            check(json!("2024-06-01T11:59:59+00:00")).unwrap_err(),
            (422, "Cannot schedule switchover in the past".into())
        );
        let unparsable = (
            422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                .to_string(),
        );
        assert_eq!(check(json!("tomorrow")).unwrap_err(), unparsable);
        assert_eq!(check(json!(12)).unwrap_err(), unparsable);
        assert_eq!(
            check(json!("2024-13-01T00:00+00:00")).unwrap_err(),
            unparsable
        );
    }
}
