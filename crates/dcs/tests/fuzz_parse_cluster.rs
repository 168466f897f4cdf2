//! Fuzzing `parse_cluster` over arbitrary key/value sets under a prefix: Patroni's keys
//! with arbitrary or mutated values, unknown keys, keys outside the prefix, non-UTF-8 keys.
//!
//! Invariants: never a panic; a `leader` key, however corrupt its value, still counts as a
//! held leader key (nobody may think the seat is free); every `members/<name>` key gives
//! that member an entry (valid or corrupt) with its lease; an unreadable `sync` key names
//! nobody; every warning is bounded.
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use pgkeel_core::quote::QUOTED_CHARS;
use pgkeel_dcs::{parse_cluster, RawKv};
use proptest::prelude::*;

const P: &str = "/service/fuzz/";

/// A warning quotes at most a key and a value, each cut to `QUOTED_CHARS` characters of at
/// most 6 bytes once escaped (`\u{10}`), plus its own words.
const BOUND: usize = 2 * QUOTED_CHARS * 6 + 300;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

#[derive(Debug, Clone)]
struct Kv {
    key: Vec<u8>,
    value: Vec<u8>,
    lease: i64,
    rev: i64,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("leader".to_string()),
        Just("initialize".to_string()),
        Just("config".to_string()),
        Just("status".to_string()),
        Just("optime/leader".to_string()),
        Just("history".to_string()),
        Just("failover".to_string()),
        Just("sync".to_string()),
        Just("failsafe".to_string()),
        Just("members/".to_string()),
        "members/[a-z0-9]{1,4}",
        "members/\\PC{1,4}",
        "[a-z/]{0,10}",
    ];
    prop_oneof![
        6 => name.prop_map(|n| format!("{P}{n}").into_bytes()),
        1 => "/[a-z/]{0,20}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..24)
            .prop_map(|tail| [P.as_bytes(), &tail].concat()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        any::<String>().prop_map(String::into_bytes),
        Just(br#"{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni","state":"running","role":"primary"}"#.to_vec()),
        Just(br#"{"optime":100,"slots":{"a":1},"retain_slots":["a"]}"#.to_vec()),
        Just(br#"{"leader":"n1","quorum":1,"sync_standby":"n2"}"#.to_vec()),
        Just(br#"[[1,50,"r","2024-01-01T00:00:00+00:00","n2"]]"#.to_vec()),
        Just(br#"{"ttl":30,"loop_wait":10}"#.to_vec()),
        Just(b"n1:n2".to_vec()),
        Just(b"node1".to_vec()),
        Just(b"\xffnode1".to_vec()),
        Just(b"".to_vec()),
        Just(b"null".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"-1".to_vec()),
        Just(br#"{"quorum":4294967296}"#.to_vec()),
        Just(br#"[[4294967296,1,"r"]]"#.to_vec()),
    ]
}

fn kvs() -> impl Strategy<Value = Vec<Kv>> {
    prop::collection::vec(
        (key(), value(), any::<i64>(), any::<i64>()).prop_map(|(key, value, lease, rev)| Kv {
            key,
            value,
            lease,
            rev,
        }),
        0..12,
    )
}

fn check(kvs: &[Kv]) -> Result<(), TestCaseError> {
    let c = parse_cluster(
        P,
        kvs.iter().map(|kv| RawKv {
            key: &kv.key,
            value: &kv.value,
            lease: kv.lease,
            mod_revision: kv.rev,
        }),
    );
    let leader_key = format!("{P}leader");
    if let Some(last) = kvs.iter().rev().find(|kv| kv.key == leader_key.as_bytes()) {
        let held = c.leader.as_ref();
        prop_assert!(held.is_some(), "a leader key that nobody holds: {:?}", last);
        let held = held.expect("checked");
        prop_assert_eq!((held.lease, held.revision), (last.lease, last.rev));
        prop_assert_eq!(&held.name, &String::from_utf8_lossy(&last.value));
    } else {
        prop_assert!(c.leader.is_none());
    }
    let members = format!("{P}members/");
    for kv in kvs {
        let Some(member) = std::str::from_utf8(&kv.key)
            .ok()
            .and_then(|k| k.strip_prefix(members.as_str()))
            .filter(|m| !m.is_empty())
        else {
            continue;
        };
        prop_assert!(c.members.contains_key(member), "member {member:?} lost");
        prop_assert!(c.member_leases.contains_key(member));
    }
    if kvs.iter().any(|kv| kv.key == format!("{P}sync").as_bytes()) {
        prop_assert!(c.sync.is_some());
    }
    for w in &c.warnings {
        prop_assert!(w.len() < BOUND, "{} bytes", w.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_parse_cluster_arbitrary_keys_and_values(kvs in kvs()) {
        check(&kvs)?;
    }

    /// The same set with every value a megabyte long: warnings stay short.
    #[test]
    fn fuzz_parse_cluster_long_values(kvs in prop::collection::vec((key(), any::<u8>()), 0..6)) {
        let kvs: Vec<Kv> = kvs
            .into_iter()
            .map(|(key, b)| Kv { key, value: vec![b; 1 << 16], lease: 1, rev: 1 })
            .collect();
        check(&kvs)?;
    }
}
