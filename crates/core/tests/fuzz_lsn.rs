//! Fuzzing `Lsn` parsing: every position round trips through PostgreSQL's `X/Y` text, and
//! no string makes parsing panic.
//!
//! 256 cases per target by default; `PROPTEST_CASES` overrides (docs/fuzzing.md).

use pgkeel_core::Lsn;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_lsn_round_trips(n in any::<u64>()) {
        let text = Lsn(n).to_string();
        prop_assert_eq!(text.parse::<Lsn>(), Ok(Lsn(n)));
        // PostgreSQL accepts either case and leading zeros: `0000000a/0000000B`.
        let (hi, lo) = (n >> 32, n & 0xffff_ffff);
        prop_assert_eq!(format!("{hi:08x}/{lo:08X}").parse::<Lsn>(), Ok(Lsn(n)));
    }

    #[test]
    fn fuzz_lsn_arbitrary_text_never_panics(s in any::<String>()) {
        if let Err(e) = s.parse::<Lsn>() {
            prop_assert!(e.to_string().contains("invalid LSN"));
        }
    }

    /// Text near the format: whatever parses prints back as the same position.
    #[test]
    fn fuzz_lsn_lsnish_text(s in prop_oneof![
        "[ +\\-0-9a-fA-FxX/]{0,20}",
        "[ +\\-]?(0x)?[0-9a-fA-F]{0,10}/[+\\-]?[0-9a-fA-F]{0,10}[ ]?",
    ]) {
        if let Ok(lsn) = s.parse::<Lsn>() {
            prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
            // Only hexadecimal digits, as PostgreSQL's pg_lsn_in reads them.
            let t = s.trim();
            prop_assert!(t.chars().all(|c| c.is_ascii_hexdigit() || c == '/'), "{s:?} was accepted");
        }
    }
}

/// Regression cases kept from the fuzz runs (docs/fuzzing.md).
mod regressions {
    use pgkeel_core::Lsn;

    /// `u32::from_str_radix` takes a leading `+` and any number of leading zeros;
    /// PostgreSQL's `pg_lsn_in` takes one to eight hexadecimal digits on each side.
    #[test]
    fn fuzz_lsn_regression_sign_and_long_halves_are_refused() {
        for s in [
            "+1/0",
            "0/+0",
            "+0/+0",
            "000000001/0",
            "0/000000000",
            "-0/0",
        ] {
            assert!(s.parse::<Lsn>().is_err(), "{s:?} should not parse");
        }
        assert_eq!("00000001/0000000A".parse::<Lsn>(), Ok(Lsn((1 << 32) | 10)));
    }
}
