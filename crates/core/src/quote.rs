//! Values quoted in log lines and error texts, cut to a bounded prefix with their size.
//!
//! A DCS value or a request body can be as large as etcd or the REST API accepts (about a
//! megabyte). Quoted whole in a warning that repeats every loop, a 1 MB `/failover` value
//! made megabytes of log per agent every few seconds. Whatever quotes a value that came from
//! the DCS, a request or a file goes through here, so every such line has a known bound:
//! [`QUOTED_CHARS`] characters of the value, its size, and the message around it.
//!
//! Control characters are escaped (`\n`, `\u{1b}`), so a quoted value cannot start a log line
//! of its own either.

use std::fmt::{self, Display, Write};

use serde_json::Value;

/// How many characters of a value a log line or an error quotes.
pub const QUOTED_CHARS: usize = 200;

/// `value` in double quotes, escaped as Rust's `{:?}` escapes a string: whole when it has at
/// most [`QUOTED_CHARS`] characters, else `"<first QUOTED_CHARS characters>…" (N bytes)`.
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted {
        text: value,
        marks: true,
        bytes: value.len(),
    }
}

/// A message that may embed a value (a parser's error text, a key name): like [`quote`]
/// without the double quotes, and only control characters escaped.
pub fn clip(text: &str) -> Quoted<'_> {
    clip_sized(text, text.len())
}

/// [`clip`] of a message about a value of `bytes` bytes (a parser's error that quotes it):
/// when cut, the size given is the value's, which is what the reader wants to know.
pub fn clip_sized(text: &str, bytes: usize) -> Quoted<'_> {
    Quoted {
        text,
        marks: false,
        bytes,
    }
}

/// Bytes that should be text: [`quote`] of their lossy UTF-8 reading, sized in bytes.
pub fn quote_bytes(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    // The lossy reading may be longer than the bytes (U+FFFD for each bad byte): report the
    // size of what was received.
    let _ = write_bounded(&mut out, &text, true, raw.len());
    out
}

/// A JSON value as compact JSON, bounded like [`clip`], without serializing more of it than
/// the quoted prefix (its size is counted, not stored).
pub fn quote_json(v: &Value) -> String {
    let mut head = Head::default();
    // Writing to `Head` cannot fail; Display of a Value writes compact JSON.
    let _ = write!(head, "{v}");
    let mut out = String::new();
    let _ = escape_into(&mut out, &head.text, false);
    if head.chars > QUOTED_CHARS {
        let _ = write!(out, "… ({} bytes)", head.bytes);
    }
    out
}

/// The Display of [`quote`] and [`clip`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a> {
    text: &'a str,
    marks: bool,
    bytes: usize,
}

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bounded(f, self.text, self.marks, self.bytes)
    }
}

fn write_bounded(out: &mut impl Write, text: &str, marks: bool, bytes: usize) -> fmt::Result {
    let cut = text
        .char_indices()
        .nth(QUOTED_CHARS)
        .map(|(i, _)| &text[..i]);
    let shown = cut.unwrap_or(text);
    if marks {
        out.write_char('"')?;
    }
    escape_into(out, shown, marks)?;
    if cut.is_some() {
        out.write_char('…')?;
    }
    if marks {
        out.write_char('"')?;
    }
    if cut.is_some() {
        write!(out, " ({bytes} bytes)")?;
    }
    Ok(())
}

/// Escapes control characters, and with `marks` also `"` and `\` (inside double quotes).
fn escape_into(out: &mut impl Write, text: &str, marks: bool) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() || (marks && (c == '"' || c == '\\')) {
            write!(out, "{}", c.escape_debug())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

/// Keeps the first [`QUOTED_CHARS`] + 1 characters of what is written and counts the rest.
#[derive(Default)]
struct Head {
    text: String,
    chars: usize,
    bytes: usize,
}

impl Write for Head {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes += s.len();
        for c in s.chars() {
            if self.chars < QUOTED_CHARS {
                self.text.push(c);
            }
            self.chars += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("node1").to_string(), "\"node1\"");
        assert_eq!(quote("").to_string(), "\"\"");
        assert_eq!(quote("a \"b\"\n").to_string(), r#""a \"b\"\n""#);
        assert_eq!(clip("a \"b\"\nc").to_string(), "a \"b\"\\nc");
        let exactly = "x".repeat(QUOTED_CHARS);
        assert_eq!(quote(&exactly).to_string(), format!("\"{exactly}\""));
    }

    #[test]
    fn long_values_are_cut_and_sized() {
        let big = "x".repeat(1_048_576);
        let q = quote(&big).to_string();
        assert_eq!(
            q,
            format!("\"{}…\" (1048576 bytes)", "x".repeat(QUOTED_CHARS))
        );
        let c = clip(&big).to_string();
        assert_eq!(c, format!("{}… (1048576 bytes)", "x".repeat(QUOTED_CHARS)));
        let about = format!("invalid type: string {big:?}");
        let c = clip_sized(&about, big.len()).to_string();
        assert!(c.starts_with("invalid type: string \"xxx"), "{c}");
        assert!(c.ends_with("xxx… (1048576 bytes)"), "{c}");
        // Cut on a character boundary; the size is in bytes.
        let wide = "é".repeat(QUOTED_CHARS + 1);
        assert_eq!(
            quote(&wide).to_string(),
            format!("\"{}…\" ({} bytes)", "é".repeat(QUOTED_CHARS), wide.len())
        );
    }

    #[test]
    fn a_quoted_value_stays_on_one_line() {
        let hostile = "a\nERROR fake line\r\u{1b}[31m".repeat(100);
        for s in [quote(&hostile).to_string(), clip(&hostile).to_string()] {
            assert!(!s.contains(['\n', '\r', '\u{1b}']), "{s}");
        }
    }

    #[test]
    fn bytes_are_read_lossily_and_sized_as_received() {
        assert_eq!(quote_bytes(b"node\xff"), "\"node\u{fffd}\"");
        let big = vec![0xffu8; 1000];
        let q = quote_bytes(&big);
        assert!(q.ends_with("…\" (1000 bytes)"), "{q}");
    }

    #[test]
    fn json_values_are_cut_without_serializing_them_whole() {
        assert_eq!(quote_json(&json!({"a": [1, "b"]})), r#"{"a":[1,"b"]}"#);
        let big = json!({ "member": "y".repeat(1_048_576) });
        let total = big.to_string().len();
        let q = quote_json(&big);
        assert!(q.starts_with("{\"member\":\"yyy"), "{q}");
        assert!(q.ends_with(&format!("… ({total} bytes)")), "{q}");
        assert!(q.chars().count() < QUOTED_CHARS + 30, "{q}");
    }

    /// Every quoted form has a bound whatever its input: the property the log relies on.
    #[test]
    fn the_bound_holds_for_any_input() {
        use proptest::prelude::*;
        proptest!(|(s in ".{0,2000}")| {
            // Escaping at most multiplies a character by 10 (`\u{10ffff}`).
            let bound = QUOTED_CHARS * 10 + 40;
            prop_assert!(quote(&s).to_string().chars().count() <= bound);
            prop_assert!(clip(&s).to_string().chars().count() <= bound);
            prop_assert!(quote_bytes(s.as_bytes()).chars().count() <= bound);
            prop_assert!(quote_json(&Value::from(s.clone())).chars().count() <= bound);
        });
    }
}
