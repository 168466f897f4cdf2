//! Checks and conversions of single values: each records a problem naming what it found and
//! what is allowed, and returns `None`, so callers keep going and report every bad key.
//!
//! Values arrive as JSON (see `raw::yaml_to_json`): the local file and the DCS `/config` key
//! then share one set of checks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::diag::{Diag, KeyPath};
use super::{HostPort, InitdbOption};

/// `found the string "30s"`, `found a list`...: the "found" half of a message.
pub(crate) fn found(v: &Value) -> String {
    match v {
        Value::Null => "found an empty value".into(),
        Value::Bool(b) => format!("found the boolean {b}"),
        Value::Number(n) => format!("found the number {n}"),
        // An integer beyond 64 bits, which the YAML reader keeps as its digits.
        Value::String(s) if is_wide_integer(s) => format!("found the number {s}, out of range"),
        Value::String(s) => format!("found the string {s:?}"),
        Value::Array(_) => "found a list".into(),
        Value::Object(_) => "found a mapping".into(),
    }
}

/// Digits (and a sign) that no 64-bit integer holds.
fn is_wide_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<i64>().is_err()
        && s.parse::<u64>().is_err()
}

/// A name, user name or password. Numbers are taken as their text because YAML reads an
/// unquoted `password: 123456` as a number, and Patroni accepts it.
pub(crate) fn text(v: &Value, path: &KeyPath, diag: &mut Diag, allowed: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            diag.problem(path, found(other), allowed);
            None
        }
    }
}

/// Like [`text`] but refusing an empty or blank value.
pub(crate) fn non_empty_text(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
    allowed: &str,
) -> Option<String> {
    let s = text(v, path, diag, allowed)?;
    if s.trim().is_empty() {
        diag.problem(path, "found an empty string", allowed);
        return None;
    }
    Some(s)
}

/// Patroni's `parse_bool`: YAML booleans, and the strings true/false, yes/no, on/off, 1/0 in
/// any case (tags are often quoted, and `PATRONI_*` habits carry over into files).
pub(crate) fn boolean(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<bool> {
    // A file's text is trimmed first (YAML quoting habits); otherwise Patroni's reading.
    let parsed = match v {
        Value::String(s) => crate::flag::parse_bool_str(s.trim()),
        other => crate::flag::parse_bool(other),
    };
    if parsed.is_none() {
        diag.problem(path, found(v), "true or false");
    }
    parsed
}

/// A duration given as a number of seconds (integer or decimal), at least `min`.
pub(crate) fn seconds(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
    min: Duration,
) -> Option<Duration> {
    let allowed = if min.is_zero() {
        "a number of seconds (integer or decimal), 0 or more".to_string()
    } else {
        format!(
            "a number of seconds (integer or decimal), at least {}",
            show_secs(min)
        )
    };
    // An upper bound keeps `Duration` arithmetic far from overflow; a day is far beyond any
    // sensible HA timing.
    const MAX_SECS: f64 = 86_400.0;
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    let Some(secs) = secs else {
        diag.problem(path, found(v), allowed);
        return None;
    };
    let Ok(d) = Duration::try_from_secs_f64(secs) else {
        diag.problem(path, found(v), allowed);
        return None;
    };
    if d < min || secs > MAX_SECS {
        diag.problem(path, found(v), format!("{allowed} and at most {MAX_SECS}"));
        return None;
    }
    Some(d)
}

/// `10` for 10 s, `0.2` for 200 ms: how a duration is written back in seconds.
pub(crate) fn show_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// A duration as the JSON number Patroni stores: an integer when whole, else a decimal.
pub(crate) fn secs_json(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        Value::from(d.as_secs())
    } else {
        Value::from(d.as_secs_f64())
    }
}

/// A non-negative integer (bytes, priorities).
pub(crate) fn unsigned(v: &Value, path: &KeyPath, diag: &mut Diag, allowed: &str) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    if n.is_none() {
        diag.problem(path, found(v), allowed);
    }
    n
}

/// A PostgreSQL parameter as the text written to `postgresql.conf`: YAML booleans become
/// `on`/`off` (PostgreSQL's spelling), numbers their decimal text.
pub(crate) fn pg_value(v: &Value) -> Option<String> {
    match v {
        Value::Bool(true) => Some("on".into()),
        Value::Bool(false) => Some("off".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) const PG_VALUE_ALLOWED: &str = "a string, number or boolean";

/// A list of strings (pg_hba lines).
pub(crate) fn string_list(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        diag.problem(path, found(v), "a list of strings");
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(s.clone()),
            other => {
                diag.problem(&path.index(i), found(other), "a string");
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Command-line options as Patroni writes them for initdb and pg_basebackup: a list whose
/// items are flags (`data-checksums`) or one-key mappings (`encoding: UTF8`), or (basebackup
/// only) a mapping of option → value.
pub(crate) fn options(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
    allow_mapping: bool,
) -> Option<Vec<InitdbOption>> {
    const ITEM: &str = "a flag such as data-checksums, or a one-key mapping such as encoding: UTF8";
    let value_of = |k: &str, val: &Value, diag: &mut Diag| -> Option<InitdbOption> {
        match pg_value(val) {
            Some(s) => Some(InitdbOption::Value(k.to_string(), s)),
            None => {
                diag.problem(&path.key(k), found(val), PG_VALUE_ALLOWED);
                None
            }
        }
    };
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let opt = match item {
                    Value::String(s) if !s.trim().is_empty() => {
                        Some(InitdbOption::Flag(s.trim().to_string()))
                    }
                    Value::Object(m) if m.len() == 1 => {
                        m.iter().next().and_then(|(k, val)| value_of(k, val, diag))
                    }
                    other => {
                        diag.problem(&path.index(i), found(other), ITEM);
                        None
                    }
                };
                match opt {
                    Some(o) => out.push(o),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        Value::Object(m) if allow_mapping => {
            let mut out = Vec::with_capacity(m.len());
            let mut ok = true;
            for (k, val) in m {
                match value_of(k, val, diag) {
                    Some(o) => out.push(o),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        other => {
            let allowed = if allow_mapping {
                format!("a list of options (each {ITEM}), or a mapping of option: value")
            } else {
                format!("a list of options, each {ITEM}")
            };
            diag.problem(path, found(other), allowed);
            None
        }
    }
}

/// Splits `host:port`, `[v6]:port` or (Patroni's `rsplit(':', 1)`) `::1:port`. The port is
/// `default_port` when the text has none.
pub(crate) fn split_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an unclosed '['".to_string())?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected text {after:?} after ']'")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the port {p:?} is not a number from 1 to 65535"))?,
        (None, Some(d)) => d,
        (None, None) => return Err("no port".into()),
    };
    Ok((host.to_string(), port))
}

/// A `host:port` peers connect to: the host must be non-empty and contain no blanks.
pub(crate) fn host_port(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
    default_port: Option<u16>,
) -> Option<HostPort> {
    let allowed = if default_port.is_some() {
        "host or host:port, e.g. 127.0.0.1:2379"
    } else {
        "host:port, e.g. 127.0.0.1:8008 or [::1]:8008"
    };
    let Value::String(s) = v else {
        diag.problem(path, found(v), allowed);
        return None;
    };
    match split_host_port(s, default_port) {
        Ok((host, port)) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Some(HostPort { host, port })
        }
        Ok(_) => {
            diag.problem(path, format!("{} (no usable host)", found(v)), allowed);
            None
        }
        Err(why) => {
            diag.problem(path, format!("{} ({why})", found(v)), allowed);
            None
        }
    }
}

/// A `host:port` to bind. No name resolution (this crate does no I/O): the host must be an IP
/// address, `localhost` (127.0.0.1), or empty (all IPv4 interfaces, as Python binds `''`).
pub(crate) fn listen_addr(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<SocketAddr> {
    const ALLOWED: &str =
        "ip:port with an IP address or localhost, e.g. 0.0.0.0:8008, 127.0.0.1:8008 or [::]:8008";
    let Value::String(s) = v else {
        diag.problem(path, found(v), ALLOWED);
        return None;
    };
    let (host, port) = match split_host_port(s, None) {
        Ok(hp) => hp,
        Err(why) => {
            diag.problem(path, format!("{} ({why})", found(v)), ALLOWED);
            return None;
        }
    };
    let ip = match host.as_str() {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => match other.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                diag.problem(
                    path,
                    format!("{} (the host {other:?} is not an IP address)", found(v)),
                    ALLOWED,
                );
                return None;
            }
        },
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p() -> KeyPath {
        KeyPath::root().key("k")
    }

    #[test]
    fn seconds_accepts_integers_and_decimals() {
        let mut d = Diag::default();
        let min = Duration::from_millis(200);
        assert_eq!(
            seconds(&json!(2), &p(), &mut d, min),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            seconds(&json!(0.5), &p(), &mut d, min),
            Some(Duration::from_millis(500))
        );
        assert!(d.problems.is_empty());
        for bad in [json!(0.1), json!(-1), json!("2"), json!(1e300), json!(null)] {
            assert_eq!(seconds(&bad, &p(), &mut d, min), None, "{bad}");
        }
        assert_eq!(d.problems.len(), 5);
    }

    #[test]
    fn pg_values_use_postgresql_spelling() {
        assert_eq!(pg_value(&json!(true)).as_deref(), Some("on"));
        assert_eq!(pg_value(&json!(false)).as_deref(), Some("off"));
        assert_eq!(pg_value(&json!(5432)).as_deref(), Some("5432"));
        assert_eq!(pg_value(&json!(0.9)).as_deref(), Some("0.9"));
        assert_eq!(pg_value(&json!("1GB")).as_deref(), Some("1GB"));
        assert_eq!(pg_value(&json!([1])), None);
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:1", None), Ok(("a".into(), 1)));
        assert_eq!(
            split_host_port("[::1]:5432", None),
            Ok(("::1".into(), 5432))
        );
        assert_eq!(split_host_port("::1:5432", None), Ok(("::1".into(), 5432)));
        assert_eq!(
            split_host_port("etcd1", Some(2379)),
            Ok(("etcd1".into(), 2379))
        );
        assert!(split_host_port("a:0", None).is_err());
        assert!(split_host_port("a:70000", None).is_err());
        assert!(split_host_port("a", None).is_err());
        assert!(split_host_port("[::1", None).is_err());
    }

    #[test]
    fn listen_resolves_only_literals_and_localhost() {
        let mut d = Diag::default();
        let got = listen_addr(&json!("localhost:8008"), &p(), &mut d);
        assert_eq!(got, Some("127.0.0.1:8008".parse().unwrap()));
        let got = listen_addr(&json!("[::]:8008"), &p(), &mut d);
        assert_eq!(got, Some("[::]:8008".parse().unwrap()));
        assert_eq!(listen_addr(&json!("db1:8008"), &p(), &mut d), None);
        assert!(d.problems[0].found.contains("not an IP address"));
    }

    #[test]
    fn booleans_follow_patroni_parse_bool() {
        let mut d = Diag::default();
        for (v, want) in [
            (json!(true), true),
            (json!("False"), false),
            (json!("yes"), true),
            (json!("off"), false),
            (json!(1), true),
        ] {
            assert_eq!(boolean(&v, &p(), &mut d), Some(want), "{v}");
        }
        assert_eq!(boolean(&json!("maybe"), &p(), &mut d), None);
    }
}
