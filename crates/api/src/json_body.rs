//! Request bodies read the way Patroni reads them (`RestApiHandler._read_json_content`),
//! and the Python truth tests its handlers apply to the values.

use pgkeel_core::quote::clip_sized;
use serde_json::{Map, Value};

use crate::routes::{Body, Reply};

/// What `http.server`'s `send_error(code)` says, without its HTML page: the reason phrase
/// is the part clients show.
pub(crate) fn send_error(status: u16) -> Reply {
    let text = match status {
        400 => "Bad Request",
        409 => "Conflict",
        411 => "Length Required",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    Reply {
        status,
        body: Body::Text(text.into()),
    }
}

/// The request body as a JSON object.
///
/// `body` is `None` when the request had no `Content-Length` header: Patroni answers 411
/// when a body is required and takes `{}` when it is optional. An empty body is `{}` when
/// optional; anything that is not a JSON object (or an empty object when a body is
/// required) is a 400.
pub(crate) fn read_json_object(
    body: Option<&[u8]>,
    optional: bool,
) -> Result<Map<String, Value>, Reply> {
    let Some(body) = body else {
        return if optional {
            Ok(Map::new())
        } else {
            Err(send_error(411))
        };
    };
    if body.is_empty() && optional {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) if optional || !m.is_empty() => Ok(m),
        Ok(_) => Err(send_error(400)),
        Err(e) => {
            tracing::debug!("Bad request: {}", clip_sized(&e.to_string(), body.len()));
            Err(send_error(400))
        }
    }
}

pub(crate) use pgkeel_core::flag::truthy;

/// Patroni's `parse_bool(value) or False`: `str(value).lower()` among on/true/yes/1.
pub(crate) fn parse_bool(v: Option<&Value>) -> bool {
    pgkeel_core::flag::is_on(v)
}

/// A name field (`leader`, `candidate`): Python treats `""` and `null` as "not given".
pub(crate) fn name_field(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other if !truthy(other) => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn required_body() {
        assert_eq!(read_json_object(None, false).unwrap_err().status, 411);
        assert_eq!(read_json_object(Some(b""), false).unwrap_err().status, 400);
        assert_eq!(
            read_json_object(Some(b"{}"), false).unwrap_err().status,
            400
        );
        assert_eq!(
            read_json_object(Some(b"[1]"), false).unwrap_err().status,
            400
        );
        assert_eq!(
            read_json_object(Some(b"{bad"), false).unwrap_err().status,
            400
        );
        let m = read_json_object(Some(br#"{"a":1}"#), false).unwrap();
        assert_eq!(Value::Object(m), json!({"a": 1}));
    }

    #[test]
    fn optional_body() {
        assert!(read_json_object(None, true).unwrap().is_empty());
        assert!(read_json_object(Some(b""), true).unwrap().is_empty());
        assert!(read_json_object(Some(b"{}"), true).unwrap().is_empty());
        assert_eq!(
            read_json_object(Some(b"null"), true).unwrap_err().status,
            400
        );
    }

    #[test]
    fn python_truth() {
        assert!(!truthy(&json!(null)));
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!("false")));
        assert!(truthy(&json!(1)));
        assert!(parse_bool(Some(&json!(true))));
        assert!(parse_bool(Some(&json!("Yes"))));
        assert!(parse_bool(Some(&json!(1))));
        assert!(!parse_bool(Some(&json!("false"))));
        assert!(!parse_bool(Some(&json!(null))));
        assert!(!parse_bool(None));
    }
}
