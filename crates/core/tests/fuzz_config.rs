//! Fuzzing the YAML config loader (`load_str`, `load_ctl_str`): arbitrary bytes, and a valid
//! file with one value anywhere in it replaced by something wrong (another type, a huge or
//! negative number, unicode, deep nesting) or one key added.
//!
//! Invariant: never a panic; the file loads, or the error says what is wrong: it names the
//! key (`ConfigError::key`, quoted in the message) or says the text is not a usable YAML
//! mapping.
//!
//! 256 cases per target by default; `PROPTEST_CASES=100000 cargo nextest run -p pgkeel-core
//! fuzz` for a long run (docs/fuzzing.md).

use pgkeel_core::config::{load_ctl_str, load_str, ConfigError};
use proptest::prelude::*;
use serde_json::Value;

const BASES: [&str; 2] = [
    include_str!("fixtures/seed002_patroni.yml"),
    include_str!("fixtures/seed003_patroni.yml"),
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

/// The error names a key, or is one of the messages about the text as a whole.
fn explains(e: &ConfigError) -> Result<(), TestCaseError> {
    let whole_text = [
        "not valid YAML",
        "bad YAML merge key",
        "holds no settings",
        "expected a mapping",
    ];
    match &e.key {
        Some(key) => prop_assert!(
            e.message.contains(key.as_str()),
            "the message does not quote its key {key}: {}",
            e.message
        ),
        None => prop_assert!(
            whole_text.iter().any(|w| e.message.contains(w)),
            "an error with no key that does not say what is wrong: {}",
            e.message
        ),
    }
    prop_assert!(e.message.contains("fuzz.yml"), "no origin: {}", e.message);
    Ok(())
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = load_str(text, "fuzz.yml") {
        explains(&e)?;
    }
    if let Err(e) = load_ctl_str(text, "fuzz.yml") {
        explains(&e)?;
    }
    Ok(())
}

/// A value of the wrong kind for most keys.
fn wrong_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        (-5i64..5).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(1e300)),
        Just(Value::from(-1e-300)),
        any::<String>().prop_map(Value::from),
        "[0-9a-zA-Z_.:/ -]{0,12}".prop_map(Value::from),
        Just(Value::from("99999999999999999999999999")),
        Just(Value::from("-1")),
        Just(Value::from("1e309")),
        Just(Value::from("ἀλφα 🐘 \u{0} \u{202e}")),
    ];
    leaf.prop_recursive(6, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}|\\PC{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Nesting far deeper than any config: `[[[...]]]` or `{a: {a: ...}}`.
fn deep_value() -> impl Strategy<Value = Value> {
    (1usize..120, any::<bool>()).prop_map(|(depth, lists)| {
        let mut v = Value::from(1);
        for _ in 0..depth {
            v = if lists {
                Value::Array(vec![v])
            } else {
                serde_json::json!({ "a": v })
            };
        }
        v
    })
}

/// Every path to a value in `v` (the root included).
fn paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(k.clone());
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(i.to_string());
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, seg| match v {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// A base config as JSON (through YAML, the way the loader reads it).
fn base_json(i: usize) -> Value {
    let y: yaml_serde::Value = yaml_serde::from_str(BASES[i % BASES.len()]).expect("fixture");
    serde_json::to_value(y).expect("fixture as JSON")
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at the n-th path.
    Replace(usize, Value),
    /// Add a key to the n-th path if it is a mapping.
    Add(usize, String, Value),
    /// Remove the value at the n-th path.
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![4 => wrong_value(), 1 => deep_value()];
    let key = prop_oneof![
        Just("ttl".to_string()),
        Just("loop_wait".to_string()),
        Just("parameters".to_string()),
        Just("listen".to_string()),
        Just("data_dir".to_string()),
        Just("<<".to_string()),
        "[a-z_]{1,10}",
        "\\PC{1,6}",
    ];
    prop_oneof![
        3 => (any::<usize>(), value.clone()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<usize>(), key, value).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn mutate(mut doc: Value, m: &Mutation) -> Value {
    let mut all = Vec::new();
    paths(&doc, &mut Vec::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(slot) = at(&mut doc, &pick(*i)) {
                *slot = v.clone();
            }
        }
        Mutation::Add(i, k, v) => {
            if let Some(Value::Object(map)) = at(&mut doc, &pick(*i)) {
                map.insert(k.clone(), v.clone());
            }
        }
        Mutation::Remove(i) => {
            let path = pick(*i);
            if let Some((last, parent)) = path.split_last() {
                match at(&mut doc, parent) {
                    Some(Value::Object(map)) => {
                        map.remove(last);
                    }
                    Some(Value::Array(a)) => {
                        if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_config_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn fuzz_config_arbitrary_text(text in any::<String>()) {
        check(&text)?;
    }

    /// One to three mutations of a valid file, written back as YAML.
    #[test]
    fn fuzz_config_mutated_valid_file(
        base in 0usize..BASES.len(),
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let doc = ms.iter().fold(base_json(base), mutate);
        let text = yaml_serde::to_string(&doc).expect("JSON is always YAML");
        check(&text)?;
        // A YAML mapping: if it is refused, the error names a key (or the `<<` merge key, or
        // says the nesting is deeper than the YAML parser's limit of 128).
        if doc.is_object() {
            if let Err(e) = load_str(&text, "fuzz.yml") {
                prop_assert!(
                    e.key.is_some()
                        || e.message.contains("recursion limit exceeded")
                        || e.message.contains("bad YAML merge key (<<)"),
                    "a mapping refused without naming a key: {}", e.message
                );
            }
        }
    }

    /// The same, as YAML flow text with one value's text spliced in raw (YAML's own
    /// spellings: `.inf`, `0x1F`, `~`, anchors, tags, `<<` merges).
    #[test]
    fn fuzz_config_raw_yaml_scalar(
        base in 0usize..BASES.len(),
        i in any::<usize>(),
        raw in prop_oneof![
            Just(".inf".to_string()), Just("-.inf".to_string()), Just(".nan".to_string()),
            Just("0x7fffffffffffffffffff".to_string()), Just("0o777".to_string()),
            Just("~".to_string()), Just("!!binary aGVsbG8=".to_string()),
            Just("&a [*a]".to_string()), Just("*nosuch".to_string()),
            Just("{<<: [1, 2]}".to_string()), Just("{<<: {ttl: x}, ttl: 1}".to_string()),
            Just("!!str 5".to_string()), Just("!custom {a: 1}".to_string()),
            Just("1_000".to_string()), Just("1e400".to_string()), Just("-0".to_string()),
            Just("'''".to_string()), Just("? [a, b] : c".to_string()),
            "[-+0-9.eE_xob]{1,24}",
        ],
    ) {
        let marker = "\"__fuzz_marker__\"";
        let doc = mutate(base_json(base), &Mutation::Replace(i, Value::from("__fuzz_marker__")));
        let text = yaml_serde::to_string(&doc).expect("JSON is always YAML");
        check(&text.replacen(marker, &raw, 1).replacen("__fuzz_marker__", &raw, 1))?;
    }
}
