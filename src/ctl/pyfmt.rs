//! Reading YAML back into JSON values; writing goes through `pgkeel_view::pyfmt`, shared
//! with `list`.

use serde_json::Value;

pub(crate) use pgkeel_view::pyfmt::yaml_dump;

/// `yaml.safe_load(text)` as JSON: an empty document is `null`.
pub(crate) fn yaml_load(text: &str) -> anyhow::Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let v: yaml_serde::Value = yaml_serde::from_str(text)?;
    Ok(yaml_to_json(v))
}

fn yaml_to_json(v: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loads_yaml_values() {
        assert_eq!(yaml_load("").unwrap(), Value::Null);
        assert_eq!(yaml_load("null").unwrap(), Value::Null);
        assert_eq!(yaml_load("5").unwrap(), json!(5));
        assert_eq!(yaml_load("'5'").unwrap(), json!("5"));
        assert_eq!(yaml_load("a: [1, b]").unwrap(), json!({"a": [1, "b"]}));
        assert!(yaml_load("a: [").is_err());
    }
}
