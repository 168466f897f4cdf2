//! `synchronous_standby_names`, parsed as PostgreSQL reads it and written as pgkeel sets it.

use std::collections::BTreeSet;
use std::fmt;

/// A name no standby has, which older tools put in `synchronous_standby_names` in strict mode
/// so that commits wait. pgkeel (like Patroni 4) now sets `*` there; a placeholder found on
/// a server still counts as acknowledging nothing.
pub const STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsnKind {
    /// `FIRST n (...)` (also `n (...)` and a bare list, which means `FIRST 1`).
    First,
    /// `ANY n (...)`.
    Any,
}

/// A parsed `synchronous_standby_names`: commits wait for `num` of `names`. Names are kept
/// lower case (PostgreSQL matches application names case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssn {
    pub kind: SsnKind,
    pub num: u32,
    pub names: BTreeSet<String>,
    /// `*` appears: any standby counts.
    pub wildcard: bool,
}

impl Ssn {
    /// No synchronous replication: commits wait for nobody.
    pub fn none() -> Self {
        Ssn {
            kind: SsnKind::First,
            num: 0,
            names: BTreeSet::new(),
            wildcard: false,
        }
    }

    /// Any one standby may acknowledge (`*`): what a value pgkeel cannot read is taken for,
    /// so that no key change counts on it.
    pub fn anyone() -> Self {
        Ssn::anyone_of_kind(SsnKind::First)
    }

    /// Any one standby may acknowledge: `*`, or `ANY 1 (*)` for quorum commit.
    pub fn anyone_of_kind(kind: SsnKind) -> Self {
        Ssn {
            kind,
            num: 1,
            names: BTreeSet::new(),
            wildcard: true,
        }
    }

    pub fn new(kind: SsnKind, num: u32, names: impl IntoIterator<Item = String>) -> Self {
        Ssn {
            kind,
            num,
            names: names.into_iter().map(|n| n.to_lowercase()).collect(),
            wildcard: false,
        }
    }

    /// Commits wait for nobody.
    pub fn is_empty(&self) -> bool {
        self.num == 0 || (self.names.is_empty() && !self.wildcard)
    }

    /// Parses the setting; `None` for text PostgreSQL would not accept either.
    pub fn parse(text: &str) -> Option<Ssn> {
        let t = text.trim();
        if t.is_empty() {
            return Some(Ssn::none());
        }
        let (kind, rest) = match first_word(t) {
            Some((w, rest)) if w.eq_ignore_ascii_case("first") => (SsnKind::First, rest),
            Some((w, rest)) if w.eq_ignore_ascii_case("any") => (SsnKind::Any, rest),
            _ => (SsnKind::First, t),
        };
        let rest = rest.trim_start();
        let (num, list) = match rest.find('(') {
            Some(open) => {
                let num: u32 = rest[..open].trim().parse().ok()?;
                let close = rest.rfind(')')?;
                if close < open || !rest[close + 1..].trim().is_empty() {
                    return None;
                }
                (num, &rest[open + 1..close])
            }
            // A bare list (old syntax) waits for the first one; FIRST/ANY need a count.
            None if kind == SsnKind::First && rest.len() == t.len() => (1, rest),
            None => return None,
        };
        let mut names = BTreeSet::new();
        let mut wildcard = false;
        for n in split_names(list)? {
            if n == "*" {
                wildcard = true;
            } else {
                names.insert(n.to_lowercase());
            }
        }
        Some(Ssn {
            kind,
            num,
            names,
            wildcard,
        })
    }
}

/// The comma-separated names of a list, as PostgreSQL's scanner reads them: a name in double
/// quotes may hold commas and spaces, and `""` inside it is one `"`. `None` for an empty
/// name or an unterminated quote.
fn split_names(list: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut chars = list.trim_start().chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    '"' => break,
                    c => name.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                name.push(c);
            }
            name = name.trim().to_string();
        }
        if name.is_empty() {
            return None;
        }
        names.push(name);
        match chars.next() {
            None => return Some(names),
            Some(',') => while chars.next_if(|c| c.is_whitespace()).is_some() {},
            Some(_) => return None, // text after a closing quote
        }
    }
}

/// A name as a quoted identifier: `"node2"`, `"a""b"`.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn first_word(t: &str) -> Option<(&str, &str)> {
    let end = t.find(|c: char| !c.is_ascii_alphabetic())?;
    (end > 0).then(|| (&t[..end], &t[end..]))
}

/// The text to set, spelt as Patroni spells it (operators' checks and Patroni's own tests
/// compare the text): one standby alone as `"node2"` (or `*`), several as
/// `2 ("a","b")`, quorum commit as `ANY 1 ("a","b")`, and nothing as empty.
impl fmt::Display for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = self.names.iter().map(|n| quoted(n)).collect();
        if self.wildcard {
            names.push("*".into());
        }
        match self.kind {
            SsnKind::Any => write!(f, "ANY {} ({})", self.num, names.join(",")),
            // The old bare syntax means FIRST 1: exact for one name.
            SsnKind::First if self.num == 1 && names.len() == 1 => f.write_str(&names[0]),
            SsnKind::First => write!(f, "{} ({})", self.num, names.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ns: &[&str]) -> BTreeSet<String> {
        ns.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_syntax_postgresql_accepts() {
        let s = Ssn::parse("FIRST 2 (a, \"B\", c)").unwrap();
        assert_eq!(
            (s.kind, s.num, s.names.clone()),
            (SsnKind::First, 2, names(&["a", "b", "c"]))
        );
        let s = Ssn::parse("any 1 (n2,n3)").unwrap();
        assert_eq!((s.kind, s.num), (SsnKind::Any, 1));
        let s = Ssn::parse("2 (n2,n3)").unwrap();
        assert_eq!((s.kind, s.num), (SsnKind::First, 2));
        let s = Ssn::parse("n2, n3").unwrap();
        assert_eq!(
            (s.kind, s.num, s.names),
            (SsnKind::First, 1, names(&["n2", "n3"]))
        );
        assert!(Ssn::parse("*").unwrap().wildcard);
        assert!(Ssn::parse("").unwrap().is_empty());
        assert!(Ssn::parse("  ").unwrap().is_empty());
        assert_eq!(Ssn::parse("FIRST (a)"), None);
        assert_eq!(Ssn::parse("ANY a"), None);
        assert_eq!(Ssn::parse("1 (a,)"), None);
        assert_eq!(Ssn::parse("1 (a) b"), None);
    }

    #[test]
    fn renders_what_it_parses() {
        for s in [
            Ssn::new(SsnKind::First, 1, ["node2".to_string()]),
            Ssn::new(SsnKind::Any, 2, ["a".into(), "b".into(), "c".into()]),
            Ssn::new(SsnKind::First, 1, [STRICT_PLACEHOLDER.to_string()]),
            Ssn::new(SsnKind::First, 1, ["a".into(), "b".into()]),
            Ssn::anyone(),
            Ssn::anyone_of_kind(SsnKind::Any),
        ] {
            assert_eq!(Ssn::parse(&s.to_string()).as_ref(), Some(&s), "{s}");
        }
        assert_eq!(Ssn::none().to_string(), "");
        assert_eq!(
            Ssn::new(SsnKind::Any, 2, ["b".into(), "a".into()]).to_string(),
            "ANY 2 (\"a\",\"b\")"
        );
        // Patroni's spellings, which its acceptance suite compares as text.
        let one = Ssn::new(SsnKind::First, 1, ["postgres-2".to_string()]);
        assert_eq!(one.to_string(), "\"postgres-2\"");
        let two = Ssn::new(SsnKind::First, 2, ["a".into(), "b".into()]);
        assert_eq!(two.to_string(), "2 (\"a\",\"b\")");
        assert_eq!(Ssn::anyone().to_string(), "*");
        assert_eq!(Ssn::anyone_of_kind(SsnKind::Any).to_string(), "ANY 1 (*)");
    }
}
