//! PostgreSQL write-ahead-log positions.

use std::fmt;
use std::str::FromStr;

/// A WAL position in bytes. Displays as PostgreSQL prints it (`0/3000060`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Bytes from `other` up to `self`, zero when `other` is ahead.
    pub fn bytes_after(self, other: Lsn) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/', like 0/3000060")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_string());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        // As PostgreSQL's pg_lsn_in reads them: one to eight hexadecimal digits each side
        // (`from_str_radix` alone would also take a `+` sign and more leading zeros).
        let half = |h: &str| (1..=8).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !half(hi) || !half(lo) {
            return Err(err());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postgres_format() {
        for s in ["0/0", "0/3000060", "1/A0", "FFFFFFFF/FFFFFFFF"] {
            assert_eq!(s.parse::<Lsn>().unwrap().to_string(), s);
        }
        assert_eq!("0/3000060".parse::<Lsn>().unwrap(), Lsn(0x300_0060));
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "0", "x/1", "1/", "100000000/0"] {
            assert!(s.parse::<Lsn>().is_err(), "{s} should not parse");
        }
    }
}
