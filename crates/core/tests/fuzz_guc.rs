//! Fuzzing the check of PostgreSQL parameter values (`guc::GucCatalog::check`) and of whole
//! dynamic configs with a catalog (`check_dynamic_with`): no text panics, every refusal
//! names the parameter, and what a config check accepts the catalog accepts parameter by
//! parameter (so nothing accepted is refused by the server later; the comparison with the
//! server itself is `crates/pg/tests/catalog.rs`).
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use pgkeel_core::config::check_dynamic_with;
use pgkeel_core::guc::{GucCatalog, GucRow};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn catalog() -> GucCatalog {
    let row = |name: &str, vartype: &str, unit: Option<&str>, min: &str, max: &str| GucRow {
        name: name.into(),
        vartype: vartype.into(),
        unit: unit.map(Into::into),
        min_val: Some(min.into()),
        max_val: Some(max.into()),
        enumvals: if vartype == "enum" {
            vec!["minimal".into(), "replica".into(), "logical".into()]
        } else {
            Vec::new()
        },
        context: "sighup".into(),
    };
    GucCatalog::from_rows(
        150010,
        vec![
            row("max_connections", "integer", None, "1", "262143"),
            row("shared_buffers", "integer", Some("8kB"), "16", "1073741823"),
            row(
                "statement_timeout",
                "integer",
                Some("ms"),
                "0",
                "2147483647",
            ),
            row("random_page_cost", "real", None, "0", "1.79769e+308"),
            row("vacuum_cost_delay", "real", Some("ms"), "0", "100"),
            row("hot_standby", "bool", None, "", ""),
            row("wal_level", "enum", None, "", ""),
            row("application_name", "string", None, "", ""),
        ],
    )
}

const NAMES: &[&str] = &[
    "max_connections",
    "shared_buffers",
    "statement_timeout",
    "random_page_cost",
    "vacuum_cost_delay",
    "hot_standby",
    "wal_level",
    "application_name",
    "no_such",
    "ext.setting",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_guc_arbitrary_text_never_panics(name in prop::sample::select(NAMES), v in any::<String>()) {
        let c = catalog();
        if let Err(r) = c.check(name, &v) {
            prop_assert!(r.what.contains(name), "{r}");
            prop_assert!(!r.allowed.is_empty());
        }
    }

    #[test]
    fn fuzz_guc_numberish_text_never_panics(
        name in prop::sample::select(NAMES),
        v in "[ +\\-]?(0[xX])?[0-9a-fA-F.eE+\\-]{0,12}[ ]?(B|kB|MB|GB|TB|us|ms|s|min|h|d|x)?[ ]?",
    ) {
        let c = catalog();
        if let Err(r) = c.check(name, &v) {
            prop_assert!(r.what.contains(name), "{r}");
        }
    }

    /// A config the check accepts holds only parameters the catalog accepts.
    #[test]
    fn fuzz_guc_an_accepted_config_holds_only_accepted_parameters(
        params in prop::collection::btree_map(
            prop::sample::select(NAMES),
            prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                "[0-9a-zA-Z. ]{0,8}".prop_map(serde_json::Value::from),
            ],
            0..5,
        )
    ) {
        let c = catalog();
        let config = serde_json::json!({"postgresql": {"parameters": params}});
        match check_dynamic_with(&config, Some(&c)) {
            Ok(d) => {
                for (k, v) in &d.parameters {
                    prop_assert_eq!(c.check(k, v), Ok(()));
                }
            }
            Err(why) => prop_assert!(why.contains("postgresql.parameters."), "{why}"),
        }
    }
}
