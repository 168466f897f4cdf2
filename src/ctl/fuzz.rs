//! Fuzzing the CLI's value parsing: `edit-config -s key=value` and `-p param=value` pairs,
//! YAML read back from a file or the editor, `--scheduled` timestamps, `--pg-version`, and
//! `flush`'s trailing target. The `pgkeel` package is a binary only, so these live beside
//! the code rather than in `tests/` (run them with `cargo nextest run -p pgkeel --bin
//! pgkeel fuzz`).
//!
//! Invariant: never a panic; a refusal is an error that quotes what it refused.
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use proptest::prelude::*;
use serde_json::{json, Value};

use super::common::{isoformat, parse_scheduled};
use super::edit_config::apply_pairs;
use super::flush::split_target;
use super::pyfmt::yaml_load;
use super::restart::check_pg_version;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn base() -> Value {
    json!({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100},
           "use_pg_rewind": true}, "tags": {"a": 1}})
}

/// `key=value` text near what operators type, and the `-p` form edit-config builds.
fn pair() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("ttl".to_string()),
        Just("postgresql.parameters.max_connections".to_string()),
        Just("postgresql.use_pg_rewind".to_string()),
        Just("tags.a".to_string()),
        "[a-z_.]{0,20}",
        "\\PC{0,8}",
    ];
    let value = prop_oneof![
        Just("abc".to_string()),
        Just("null".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just("99999999999999999999".to_string()),
        Just("[1, {a: b}]".to_string()),
        Just("{".to_string()),
        Just("&a [*a]".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        "[-a-z0-9:{}\\[\\],'\" .=!&*|>]{0,20}",
        any::<String>(),
    ];
    prop_oneof![
        4 => (key, value.clone()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => value.prop_map(|v| format!("postgresql.parameters.{}", v.trim_start())),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_ctl_set_pairs(pairs in prop::collection::vec(pair(), 0..4)) {
        match apply_pairs(&base(), &pairs) {
            Ok(v) => prop_assert!(v.is_object()),
            Err(e) => prop_assert!(e.to_string().starts_with("Invalid parameter setting"), "{e}"),
        }
    }

    #[test]
    fn fuzz_ctl_set_pairs_on_any_config(data in prop_oneof![
        Just(Value::Null), Just(json!([1])), Just(json!("x")),
        Just(json!({"postgresql": 5})), Just(json!({"postgresql": {"parameters": []}})),
    ], p in pair()) {
        let _ = apply_pairs(&data, &[p]);
    }

    #[test]
    fn fuzz_ctl_yaml_load(text in any::<String>()) {
        let _ = yaml_load(&text);
    }

    #[test]
    fn fuzz_ctl_yaml_load_yamlish(text in "[a-z0-9 :\\-\\[\\]{},.'\"#|>&*!%@?~\n\t]{0,80}") {
        let _ = yaml_load(&text);
    }

    #[test]
    fn fuzz_ctl_scheduled(s in prop_oneof![
        any::<String>(),
        "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{1,12})?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?",
    ]) {
        match parse_scheduled(Some(&s)) {
            // What parses is sent as ISO 8601, and reads back as the same instant (to the
            // microsecond: Python's datetime, which Patroni parses it into, keeps no more).
            Ok(Some(t)) => {
                use chrono::Timelike;
                let micros = t.with_nanosecond(t.nanosecond() / 1000 * 1000);
                let back = parse_scheduled(Some(&isoformat(&t)));
                prop_assert!(matches!(back, Ok(Some(b)) if Some(b) == micros), "{s:?} -> {back:?}");
            }
            Ok(None) => {}
            Err(e) => prop_assert!(e.to_string().contains("Unable to parse scheduled timestamp")),
        }
    }

    #[test]
    fn fuzz_ctl_pg_version(v in prop_oneof![any::<String>(), "[0-9.+-]{0,16}"]) {
        let _ = check_pg_version(&v);
    }

    #[test]
    fn fuzz_ctl_flush_target(args in prop::collection::vec(any::<String>(), 0..4)) {
        let _ = split_target(&args);
    }
}
