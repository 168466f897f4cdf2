//! On/off values as Patroni reads them: the one parser for `pause` (and any other flag a
//! Patroni node or tool may have written as `on`, `"yes"` or `1` instead of `true`).
//!
//! Patroni's `utils.parse_bool(value)` is `str(value).lower()` among `on/true/yes/1`
//! (true) or `off/false/no/0` (false), anything else `None`; `global_config.check_mode`
//! (which `is_paused` uses) is `bool(parse_bool(value))`. The text is not trimmed.

use serde_json::Value;

/// Python's `bool(value)` for a JSON value (how Patroni and patronictl test an optional
/// field): null, false, 0, "", [] and {} are false, anything else is true (`"false"` too).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Patroni's `parse_bool` for a JSON value: `Some(true)`, `Some(false)`, or `None` when
/// the value is not one of Patroni's spellings (`null`, `2`, `1.0`, `"maybe"`, a list...).
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        // Python's str() of a JSON number: `1` is "1", `1.0` is "1.0" (not a boolean);
        // serde_json prints numbers the same way.
        Value::Number(n) => parse_bool_str(&n.to_string()),
        Value::String(s) => parse_bool_str(s),
        // str(None) is "None"; lists and mappings never spell a boolean.
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// [`parse_bool`] of a text, case-insensitive.
pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Patroni's `check_mode`: the flag is on only when [`parse_bool`] says true; absent,
/// false and unparsable values are all off.
pub fn is_on(v: Option<&Value>) -> bool {
    v.and_then(parse_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patroni_true_spellings_are_on() {
        for v in [
            json!(true),
            json!("true"),
            json!("True"),
            json!("TRUE"),
            json!("on"),
            json!("On"),
            json!("yes"),
            json!("YES"),
            json!("1"),
            json!(1),
        ] {
            assert_eq!(parse_bool(&v), Some(true), "{v}");
            assert!(is_on(Some(&v)), "{v}");
        }
    }

    #[test]
    fn patroni_false_spellings_are_off() {
        for v in [
            json!(false),
            json!("false"),
            json!("False"),
            json!("off"),
            json!("no"),
            json!("NO"),
            json!("0"),
            json!(0),
        ] {
            assert_eq!(parse_bool(&v), Some(false), "{v}");
            assert!(!is_on(Some(&v)), "{v}");
        }
    }

    #[test]
    fn anything_else_is_not_a_boolean_and_so_off() {
        for v in [
            json!(null),
            json!(""),
            json!("maybe"),
            json!(" on"),
            json!("on "),
            json!("y"),
            json!("t"),
            json!(2),
            json!(-1),
            json!(1.0),
            json!(0.0),
            json!([true]),
            json!({"pause": true}),
        ] {
            assert_eq!(parse_bool(&v), None, "{v}");
            assert!(!is_on(Some(&v)), "{v}");
        }
        assert!(!is_on(None));
    }
}
