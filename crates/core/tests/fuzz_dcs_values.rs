//! Fuzzing every DCS value parser in `pgkeel_core::dcs_values`: arbitrary bytes, and JSON
//! in Patroni's shapes with one field mutated (another type, a huge or negative number,
//! unicode, deep nesting).
//!
//! Invariant: never a panic; an error names the key it was given and stays bounded however
//! big the value (issue 11: 1 MB values quoted whole in the log).
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use pgkeel_core::dcs_values::{
    parse_failsafe, parse_history, parse_url_host_port, FailoverValue, MemberValue, StatusValue,
    SyncValue, ValueError,
};
use pgkeel_core::quote::{quote, QUOTED_CHARS};
use proptest::prelude::*;
use serde_json::{json, Value};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

const KEY: &str = "/service/fuzz/members/n1";

/// Runs every parser; errors must name the key and stay short.
fn parse_all(raw: &[u8]) -> Result<(), TestCaseError> {
    let errors: Vec<ValueError> = [
        MemberValue::parse(KEY, raw).err(),
        StatusValue::parse(KEY, raw).err(),
        FailoverValue::parse(KEY, raw).err(),
        SyncValue::parse(KEY, raw).err(),
        parse_failsafe(KEY, raw).err(),
        parse_history(KEY, raw).err(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for e in errors {
        prop_assert_eq!(e.key.as_str(), KEY);
        let text = e.to_string();
        prop_assert!(text.contains(KEY));
        // The key and the value, each cut to QUOTED_CHARS characters of at most 6 bytes
        // once escaped (`\u{10}`), plus the message's own words.
        let bound = 2 * QUOTED_CHARS * 6 + 300;
        prop_assert!(text.len() < bound, "{} bytes: {}", text.len(), quote(&text));
    }
    Ok(())
}

fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(json!(u64::from(u32::MAX) + 1)),
        (-3i64..3).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z0-9:/.,@\\[\\] ]{0,16}".prop_map(Value::from),
        Just(Value::from("postgres://h:99999/x")),
        Just(Value::from("n1:n2")),
    ];
    leaf.prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What Patroni writes under each key, to be mutated.
fn shapes() -> Vec<Value> {
    vec![
        json!({"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",
               "state":"running","role":"replica","version":"4.1.4","xlog_location":50331856,
               "receive_lsn":50331856,"replay_lsn":50331800,"replication_state":"streaming",
               "timeline":3,"tags":{"nofailover":true,"zone":"a"},"pending_restart":true,
               "pending_restart_reason":{"max_connections":{"old_value":"100","new_value":"200"}},
               "scheduled_restart":{"schedule":"2026-01-01T00:00:00+00:00"}}),
        json!({"optime":100,"slots":{"n2":100},"retain_slots":["n2"]}),
        json!({"leader":"n1","member":"n2","scheduled_at":"2026-01-01T00:00:00+00:00"}),
        json!({"leader":"n1","quorum":1,"sync_standby":"n2,n3"}),
        json!({"n1":"http://h:8008/patroni","n2":"http://g:8008/patroni"}),
        json!([
            [
                1,
                50331808,
                "no recovery target specified",
                "2024-01-01T00:00:00+00:00",
                "n2"
            ],
            [2, 60000000, "x"]
        ]),
    ]
}

fn mutate(mut v: Value, field: usize, to: Value) -> Value {
    match &mut v {
        Value::Object(m) if !m.is_empty() => {
            let k = m.keys().nth(field % m.len()).cloned().unwrap_or_default();
            m.insert(k, to);
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            match &mut a[field % n] {
                Value::Array(entry) if !entry.is_empty() => {
                    let m = entry.len();
                    entry[(field / n) % m] = to;
                }
                slot => *slot = to,
            }
        }
        _ => v = to,
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_dcs_values_arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_all(&raw)?;
    }

    #[test]
    fn fuzz_dcs_values_arbitrary_text(text in any::<String>()) {
        parse_all(text.as_bytes())?;
    }

    #[test]
    fn fuzz_dcs_values_arbitrary_json(v in junk()) {
        parse_all(v.to_string().as_bytes())?;
    }

    /// Patroni's shapes with one field (or history entry element) replaced.
    #[test]
    fn fuzz_dcs_values_mutated_shapes(shape in any::<usize>(), field in any::<usize>(), to in junk()) {
        let all = shapes();
        let v = mutate(all[shape % all.len()].clone(), field, to);
        parse_all(v.to_string().as_bytes())?;
    }

    /// Truncated or extended valid values (a torn write, a value with a trailing byte).
    #[test]
    fn fuzz_dcs_values_torn_shapes(shape in any::<usize>(), cut in any::<usize>(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let all = shapes();
        let mut raw = all[shape % all.len()].to_string().into_bytes();
        raw.truncate(cut % (raw.len() + 1));
        raw.extend(tail);
        parse_all(&raw)?;
    }

    /// `conn_url`/`api_url` as members publish them, or anything else.
    #[test]
    fn fuzz_dcs_values_url_host_port(url in prop_oneof![
        any::<String>(),
        "(postgres|http)://([a-z]{1,3}@)?(\\[[0-9a-f:]{0,8}\\]|[a-z0-9.]{0,8})(:[0-9]{0,7})?(/[a-z]{0,4})?",
    ]) {
        if let Some((host, _port)) = parse_url_host_port(&url) {
            prop_assert!(url.contains(host.as_str()));
        }
    }

    /// What parses also survives being written back: `SyncValue` and history round trip.
    #[test]
    fn fuzz_dcs_values_sync_round_trip(
        leader in proptest::option::of("[a-z0-9_]{1,8}"),
        names in prop::collection::btree_set("[a-z0-9_]{1,8}", 0..4),
        quorum in any::<u32>(),
    ) {
        let v = SyncValue { leader, sync_standby: names, quorum };
        let back = SyncValue::parse("sync", v.to_json().to_string().as_bytes());
        prop_assert_eq!(back, Ok(v));
    }
}

/// Huge values of every shape: the error is still short and names the key.
#[test]
fn fuzz_dcs_values_huge_values_make_short_errors() {
    let mb = "x".repeat(1 << 20);
    for raw in [
        mb.clone(),
        format!("\"{mb}\""),
        format!("[[\"{mb}\", 1, \"r\"]]"),
        format!("{{\"leader\": [\"{mb}\"]}}"),
        format!("{{\"quorum\": \"{mb}\"}}"),
        "\u{10}".repeat(1 << 20),
        "[".repeat(100_000),
        "{\"a\":".repeat(100_000),
    ] {
        let r: Result<(), TestCaseError> = parse_all(raw.as_bytes());
        assert!(r.is_ok(), "{r:?}");
    }
}
