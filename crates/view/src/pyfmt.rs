//! Text that reads like Python's: `json.dumps` with its default separators and
//! `yaml.safe_dump(default_flow_style=False)` as patronictl's `format_config_for_editing`
//! writes it (block style, sorted keys, indentless lists, quotes only where needed). Shared
//! by `list` and the other CLI verbs so that all of them print the same text.

use serde_json::{Map, Value};

/// `json.dumps(v)`: `", "` and `": "` separators, non-ASCII escaped, keys in `v`'s order.
pub fn json_dumps(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

/// `json.dumps` of an object whose keys keep the given order.
pub fn json_dumps_ordered(fields: &[(String, Value)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                json_dumps(&Value::from(k.as_str())),
                json_dumps(v)
            )
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_str(k, out);
                out.push_str(": ");
                write_json(x, out);
            }
            out.push('}');
        }
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `format_config_for_editing(v)`: block YAML ending with a newline.
pub fn yaml_dump(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => write_seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
            if !matches!(other, Value::Object(_) | Value::Array(_)) {
                // PyYAML ends a lone scalar document with an explicit end marker.
                out.push_str("...\n");
            }
        }
    }
    out
}

/// `format_config_for_editing(v, True)` for a flat mapping (tags in `tsv`/`topology`).
pub fn yaml_flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}: {}",
                        scalar(&Value::from(k.as_str())),
                        yaml_flow(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(yaml_flow).collect();
            format!("[{}]", items.join(", "))
        }
        other => scalar(other),
    }
}

fn write_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let pad = " ".repeat(indent);
    for k in keys {
        let key = scalar(&Value::from(k.as_str()));
        match &m[k] {
            Value::Object(inner) if !inner.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                write_map(inner, indent + 2, out);
            }
            // PyYAML does not indent a list that is a mapping's value.
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                write_seq(items, indent, out);
            }
            v => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
        }
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key goes on the dash line, the others under it.
                let mut block = String::new();
                write_map(m, indent + 2, &mut block);
                out.push_str(&format!("{pad}- "));
                out.push_str(&block[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut block = String::new();
                write_seq(inner, indent + 2, &mut block);
                out.push_str(&format!("{pad}- "));
                out.push_str(&block[indent + 2..]);
            }
            v => out.push_str(&format!("{pad}- {}\n", scalar(v))),
        }
    }
}

/// A scalar (or an empty collection) as PyYAML's `safe_dump` writes it.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => (if *b { "true" } else { "false" }).into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().any(|c| c.is_control()) => json_dumps(v),
        Value::String(s) if needs_quotes(s) => format!("'{}'", s.replace('\'', "''")),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => yaml_flow(other),
    }
}

/// Strings PyYAML's resolver would take for another type, or that a plain scalar cannot hold
/// (PyYAML, unlike YAML 1.1, reads `y` and `n` as strings).
fn needs_quotes(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "yes", "Yes", "YES", "no", "No", "NO", "true", "True",
        "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "=", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@` ".contains(first) || s.ends_with(' ') {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if !s.is_ascii() {
        return true;
    }
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    looks_like_number(t)
        || matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (s.len() >= 8
            && s.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && s.as_bytes()[4] == b'-')
}

/// YAML 1.1 int and float forms (sign already removed).
fn looks_like_number(t: &str) -> bool {
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let starts_digit = t.starts_with(|c: char| c.is_ascii_digit());
    if let Some(b) = t.strip_prefix("0b") {
        return !b.is_empty() && b.bytes().all(|c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(x) = t.strip_prefix("0x") {
        return !x.is_empty() && x.bytes().all(|c| c.is_ascii_hexdigit() || c == b'_');
    }
    if starts_digit && digits(t) {
        return true;
    }
    if let Some((head, tail)) = t.split_once(':') {
        let tail = tail.split_once('.').map_or(tail, |(a, _)| a);
        return starts_digit
            && digits(head)
            && tail.split(':').all(|seg| {
                !seg.is_empty() && seg.len() <= 2 && seg.bytes().all(|b| b.is_ascii_digit())
            });
    }
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exp_ok = exp.is_none_or(|e| {
        e.strip_prefix(['+', '-'])
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    });
    match mantissa.split_once('.') {
        Some((int, frac)) => {
            exp_ok
                && (int.is_empty() || digits(int))
                && (frac.is_empty() || digits(frac))
                && !(int.is_empty() && frac.is_empty())
        }
        None => false,
    }
}

/// One YAML scalar as PyYAML writes it (the cell of a `list -f yaml` row).
pub fn yaml_scalar(v: &Value) -> String {
    scalar(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_like_python() {
        assert_eq!(
            json_dumps(&json!([{"a": 1, "b": "x\u{e9}"}, []])),
            r#"[{"a": 1, "b": "x\u00e9"}, []]"#
        );
    }

    #[test]
    fn yaml_quotes_only_ambiguous_strings() {
        let cases = [
            ("batman", "batman"),
            ("127.0.0.1:5432", "127.0.0.1:5432"),
            ("0/40004E8", "0/40004E8"),
            ("Replica", "Replica"),
            ("in archive recovery", "in archive recovery"),
            ("5", "'5'"),
            ("1.5", "'1.5'"),
            ("yes", "'yes'"),
            ("", "''"),
            ("it's", "it's"),
            ("-x", "'-x'"),
            ("2024-01-01", "'2024-01-01'"),
        ];
        for (s, want) in cases {
            assert_eq!(yaml_scalar(&json!(s)), want, "{s}");
        }
        assert_eq!(yaml_scalar(&json!(5)), "5");
        assert_eq!(yaml_scalar(&json!(true)), "true");
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;
    use serde_json::json;

    /// Checked against PyYAML 6 (`yaml.safe_dump({'a': 'y', 'b': 'n', 'c': 'yes', 'd': 'on'})`
    /// prints `a: y`, `b: n`, `c: 'yes'`, `d: 'on'`).
    #[test]
    fn quotes_only_what_pyyaml_quotes() {
        assert_eq!(yaml_scalar(&json!("y")), "y");
        assert_eq!(yaml_scalar(&json!("n")), "n");
        assert_eq!(yaml_scalar(&json!("yes")), "'yes'");
        assert_eq!(yaml_scalar(&json!("on")), "'on'");
    }

    #[test]
    fn dumps_config_like_pyyaml() {
        let cfg = json!({
            "ttl": 30, "loop_wait": 10, "pause": true,
            "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "wal_level": "replica", "archive_command": "/bin/true"}},
            "tags": {},
            "slots": ["a", {"x": 1, "y": "on"}],
            "version": "16",
        });
        assert_eq!(
            yaml_dump(&cfg),
            "loop_wait: 10\npause: true\npostgresql:\n  parameters:\n    archive_command: /bin/true\n    max_connections: 100\n    wal_level: replica\n  use_pg_rewind: true\nslots:\n- a\n- x: 1\n  y: 'on'\ntags: {}\nttl: 30\nversion: '16'\n"
        );
        assert_eq!(yaml_dump(&json!({})), "{}\n");
        assert_eq!(yaml_flow(&json!({"b": 1, "a": "x y"})), "{a: x y, b: 1}");
    }

    #[test]
    fn json_like_python() {
        assert_eq!(
            json_dumps_ordered(&[("TL".into(), json!(1)), ("Reason".into(), json!("é"))]),
            r#"{"TL": 1, "Reason": "\u00e9"}"#
        );
    }
}
