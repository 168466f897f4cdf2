//! Fuzzing `synchronous_standby_names`: what pgkeel renders parses back to the same value
//! (`"a"`, `n (...)`, `ANY n (...)`, `*`), and no text makes the parser panic.
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use pgkeel_core::sync::{Ssn, SsnKind, STRICT_PLACEHOLDER};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

/// A member name as pgkeel would put it in the setting.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,12}",
        "[a-zA-Z0-9_.-]{1,16}",
        // Member names are any non-empty string: quotes, commas, spaces, parentheses.
        "[a-zA-Z0-9 ,()\"'*é]{1,12}",
        "\\PC{1,8}",
        Just(STRICT_PLACEHOLDER.to_string()),
    ]
    // A member named `*` would be the wildcard, in PostgreSQL as here.
    .prop_filter("the wildcard", |n| n.trim() != "*" && !n.trim().is_empty())
}

fn ssn() -> impl Strategy<Value = Ssn> {
    (
        prop_oneof![Just(SsnKind::First), Just(SsnKind::Any)],
        1u32..10_000,
        prop::collection::vec(name(), 0..6),
        any::<bool>(),
    )
        .prop_filter_map("empty", |(kind, num, names, wildcard)| {
            let mut s = Ssn::new(kind, num, names);
            s.wildcard = wildcard;
            (!s.is_empty()).then_some(s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_ssn_render_then_parse_is_identity(s in ssn()) {
        let text = s.to_string();
        prop_assert_eq!(Ssn::parse(&text), Some(s), "{}", text);
    }

    #[test]
    fn fuzz_ssn_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Ssn::parse(&text);
    }

    /// Text made of the setting's own characters, so cases reach past the first check;
    /// whatever parses renders to text that parses to the same value.
    #[test]
    fn fuzz_ssn_ssnish_text(text in "(FIRST|ANY|first|any|)[ 0-9(),\"*a-zé\u{130}]{0,30}") {
        if let Some(s) = Ssn::parse(&text) {
            if !s.is_empty() {
                let again = Ssn::parse(&s.to_string());
                prop_assert_eq!(again.as_ref(), Some(&s), "{:?} -> {}", text, s);
            }
        }
    }
}

/// Regression cases kept from the fuzz runs (docs/fuzzing.md).
mod regressions {
    use pgkeel_core::sync::{Ssn, SsnKind};

    /// A member name with a double quote was rendered inside quotes unescaped (`"a"b"`),
    /// and a name with a comma was split in two when read back.
    #[test]
    fn fuzz_ssn_regression_quotes_and_commas_in_names() {
        for name in ["a\"b", "a,b", "x\"", " lead", "n(1)", "\"\""] {
            let s = Ssn::new(SsnKind::Any, 1, [name.to_string()]);
            assert_eq!(Ssn::parse(&s.to_string()), Some(s.clone()), "{s}");
        }
        assert_eq!(
            Ssn::new(SsnKind::First, 1, ["a\"b".to_string()]).to_string(),
            "\"a\"\"b\""
        );
        assert_eq!(Ssn::parse("1 (\"a\" b)"), None);
        assert_eq!(Ssn::parse("1 (\"a)"), None);
    }
}
