//! Patroni's `log` section: the level, and the line's format and date format in Python
//! logging's %-style (the agent formats its lines with them). Writing to files
//! (`log.dir`) and JSON lines are not done yet and are refused, since ignoring them would
//! leave the operator's logs where they do not look; per-logger levels and queue tuning
//! only change what is shown, and are ignored with a warning.

use serde_json::Value;

use super::diag::Diag;
use super::raw::Node;
use super::scalar::found;

/// The validated `log` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Log {
    /// A tracing level name (`error`, `warn`, `info`, `debug`), from Patroni's
    /// DEBUG/INFO/WARNING/ERROR/CRITICAL.
    pub level: Option<String>,
    /// Python logging's format (`%(asctime)s %(levelname)s: %(message)s`).
    pub format: Option<String>,
    /// `strftime` format of `%(asctime)s`.
    pub dateformat: Option<String>,
}

pub(crate) fn log(n: Option<&Node>, diag: &mut Diag) -> Option<Log> {
    let Some(n) = n else {
        return Some(Log::default());
    };
    let map = match &n.value {
        Value::Null => return Some(Log::default()),
        Value::Object(m) => m,
        other => {
            diag.problem(
                &n.path,
                found(other),
                "a mapping (level, format, dateformat)",
            );
            return None;
        }
    };
    let before = diag.problems.len();
    let mut out = Log::default();
    for (k, v) in map {
        let path = n.path.key(k);
        match k.as_str() {
            "level" => match v.as_str().map(|s| s.trim().to_ascii_uppercase()).as_deref() {
                Some("DEBUG") => out.level = Some("debug".into()),
                Some("INFO") => out.level = Some("info".into()),
                Some("WARNING" | "WARN") => out.level = Some("warn".into()),
                Some("ERROR" | "CRITICAL" | "FATAL") => out.level = Some("error".into()),
                _ => diag.problem(&path, found(v), "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
            },
            "format" => match v {
                Value::String(s) => out.format = Some(s.clone()),
                other => diag.problem(
                    &path,
                    found(other),
                    "a Python logging format string (a list is for log.type json, which pgkeel \
                     does not write yet)",
                ),
            },
            "dateformat" => match v {
                Value::String(s) => out.dateformat = Some(s.clone()),
                other => diag.problem(&path, found(other), "a strftime format string"),
            },
            "type" => {
                if v.as_str() != Some("plain") {
                    diag.problem(&path, found(v), "plain (JSON lines are not written yet)");
                }
            }
            "dir" | "file_num" | "file_size" | "mode" => diag.problem(
                &path,
                found(v),
                "absent: pgkeel logs to stderr only (journald or the service manager keeps it); \
                 writing log files is not done yet",
            ),
            "loggers"
            | "traceback_level"
            | "max_queue_size"
            | "static_fields"
            | "deduplicate_heartbeat_logs" => diag.warn(&path, "not supported yet, ignored"),
            _ => diag.unknown(&path),
        }
    }
    (diag.problems.len() == before).then_some(out)
}
