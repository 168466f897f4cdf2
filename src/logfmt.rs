//! The agent's log lines in Patroni's shape: Python logging's `%(name)s` placeholders
//! (`log.format`, default `%(asctime)s %(levelname)s: %(message)s`) and `log.dateformat`
//! (default `YYYY-MM-DD HH:MM:SS,mmm`, local time), so that what operators grep and alert on
//! in Patroni's log reads the same.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Patroni's default `log.format`.
pub const PATRONI_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";
/// patronictl's (`logging.basicConfig` in its `ctl` group).
pub const PATRONICTL_FORMAT: &str = "%(asctime)s - %(levelname)s - %(message)s";

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A placeholder: its name, and a width (negative: left-justified) if given.
    Field(String, i32),
}

#[derive(Debug, Clone)]
pub struct PatroniFormat {
    pieces: Vec<Piece>,
    datefmt: Option<String>,
}

impl PatroniFormat {
    /// `format` in Python logging's %-style; `Err` names what cannot be read.
    pub fn new(format: &str, datefmt: Option<&str>) -> Result<PatroniFormat, String> {
        Ok(PatroniFormat {
            pieces: parse(format)?,
            datefmt: datefmt.map(str::to_string),
        })
    }

    fn asctime(&self) -> String {
        let now = chrono::Local::now();
        match &self.datefmt {
            Some(f) => now.format(f).to_string(),
            None => now.format("%Y-%m-%d %H:%M:%S,%3f").to_string(),
        }
    }
}

/// Python's names for the levels. An error logged with target
/// [`pgkeel_agent::CRITICAL`] is Patroni's `logger.fatal`, `CRITICAL`: the agent ends.
fn level_name(meta: &tracing::Metadata<'_>) -> &'static str {
    if meta.target() == pgkeel_agent::CRITICAL {
        return "CRITICAL";
    }
    match *meta.level() {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

fn parse(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        text.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            text.push('%');
            rest = r;
            continue;
        }
        let Some(r) = rest.strip_prefix('(') else {
            return Err(format!(
                "log.format: a % not followed by (name) in {format:?}"
            ));
        };
        let Some(close) = r.find(')') else {
            return Err(format!("log.format: an unclosed %( in {format:?}"));
        };
        let name = r[..close].to_string();
        let spec = &r[close + 1..];
        let conv = spec
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| format!("log.format: %({name}) has no conversion (s, d...)"))?;
        let width: i32 = spec[..conv]
            .split('.')
            .next()
            .filter(|w| !w.is_empty() && *w != "-")
            .map(|w| {
                w.parse()
                    .map_err(|_| format!("log.format: bad width in %({name})"))
            })
            .transpose()?
            .unwrap_or(0);
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Field(name, width));
        rest = &spec[conv + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn padded(w: &mut Writer<'_>, value: &str, width: i32) -> fmt::Result {
    let n = width.unsigned_abs() as usize;
    if width < 0 {
        write!(w, "{value:<n$}")
    } else {
        write!(w, "{value:>n$}")
    }
}

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => writer.write_str(t)?,
                Piece::Field(name, width) => match name.as_str() {
                    "message" => ctx.format_fields(writer.by_ref(), event)?,
                    "asctime" => padded(&mut writer, &self.asctime(), *width)?,
                    "levelname" => padded(&mut writer, level_name(meta), *width)?,
                    "name" | "module" | "pathname" | "filename" => {
                        padded(&mut writer, meta.target(), *width)?
                    }
                    "lineno" => padded(
                        &mut writer,
                        &meta.line().map_or(String::new(), |l| l.to_string()),
                        *width,
                    )?,
                    "process" => padded(&mut writer, &std::process::id().to_string(), *width)?,
                    "funcName" | "threadName" => padded(&mut writer, "", *width)?,
                    other => padded(&mut writer, &format!("%({other})"), *width)?,
                },
            }
        }
        writeln!(writer)
    }
}

/// `log.type: json`: one JSON object per line, as python-json-logger writes Patroni's (the
/// fields in `format`'s order under their new names, then `static_fields`; Python's
/// `json.dumps` spacing).
#[derive(Debug, Clone)]
pub struct JsonFormat {
    log: pgkeel_core::config::JsonLog,
    dates: PatroniFormat,
}

impl JsonFormat {
    pub fn new(log: pgkeel_core::config::JsonLog, datefmt: Option<&str>) -> JsonFormat {
        JsonFormat {
            log,
            dates: PatroniFormat {
                pieces: Vec::new(),
                datefmt: datefmt.map(str::to_string),
            },
        }
    }

    fn line(&self, meta: &tracing::Metadata<'_>, message: &str) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut put = |out: &mut String, key: &str, value: serde_json::Value| {
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push_str(&serde_json::Value::from(key).to_string());
            out.push_str(": ");
            out.push_str(&value.to_string());
        };
        for (field, key) in &self.log.fields {
            let value = match field.as_str() {
                "message" => message.into(),
                "asctime" => self.dates.asctime().into(),
                "levelname" => level_name(meta).into(),
                "name" | "module" | "pathname" | "filename" => meta.target().into(),
                "lineno" => meta.line().map_or(serde_json::Value::Null, Into::into),
                "process" => std::process::id().into(),
                _ => serde_json::Value::Null,
            };
            put(&mut out, key, value);
        }
        for (key, value) in &self.log.static_fields {
            put(&mut out, key, value.clone());
        }
        out.push('}');
        out
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = String::new();
        ctx.format_fields(Writer::new(&mut message), event)?;
        writeln!(writer, "{}", self.line(event.metadata(), &message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_placeholders_are_read() {
        assert_eq!(
            parse(PATRONI_FORMAT).unwrap(),
            vec![
                Piece::Field("asctime".into(), 0),
                Piece::Text(" ".into()),
                Piece::Field("levelname".into(), 0),
                Piece::Text(": ".into()),
                Piece::Field("message".into(), 0),
            ]
        );
        assert_eq!(
            parse("%(levelname)-8s 100%% %(lineno)d").unwrap(),
            vec![
                Piece::Field("levelname".into(), -8),
                Piece::Text(" 100% ".into()),
                Piece::Field("lineno".into(), 0),
            ]
        );
        assert!(parse("%(asctime").is_err());
        assert!(parse("%d").is_err());
        assert!(parse("%(x)").is_err());
    }

    #[test]
    fn json_lines_follow_the_field_list_then_the_static_fields() {
        let f = JsonFormat::new(
            pgkeel_core::config::JsonLog {
                fields: vec![
                    ("asctime".into(), "@timestamp".into()),
                    ("levelname".into(), "level".into()),
                    ("message".into(), "message".into()),
                ],
                static_fields: vec![("app".into(), "pgkeel \"x\"".into())],
            },
            Some("%Y"),
        );
        struct Cs;
        static CS: Cs = Cs;
        impl tracing::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                &META
            }
        }
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            "e",
            "pgkeel",
            Level::WARN,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CS)),
            tracing::metadata::Kind::EVENT,
        );
        let line = f.line(&META, "a \"quoted\"\nline");
        let year = chrono::Local::now().format("%Y").to_string();
        assert_eq!(
            line,
            format!(
                "{{\"@timestamp\": \"{year}\", \"level\": \"WARNING\", \"message\": \"a \\\"quoted\\\"\\nline\", \"app\": \"pgkeel \\\"x\\\"\"}}"
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["message"], "a \"quoted\"\nline");
    }

    #[test]
    fn the_default_date_puts_the_level_at_column_24_as_patroni_does() {
        let f = PatroniFormat::new(PATRONI_FORMAT, None).unwrap();
        // `2026-12-02 04:51:23,478 INFO: ...`
        assert_eq!(f.asctime().len(), 23);
    }
}
