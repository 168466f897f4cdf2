//! Patroni's `log` section: the level, the line's format and date format in Python
//! logging's %-style (the agent formats its lines with them), and `log.dir` with Patroni's
//! rotation (`file_size`, `file_num`, `mode`), and `log.type: json` with Patroni's field
//! list (`format` as a string of placeholders or a list of names and `{name: renamed}`) and
//! `static_fields`. Per-logger levels and queue tuning only change what is shown, and are
//! ignored with a warning.

use serde_json::Value;

use super::diag::Diag;
use super::raw::Node;
use super::scalar::found;

/// The validated `log` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// A tracing level name (`error`, `warn`, `info`, `debug`), from Patroni's
    /// DEBUG/INFO/WARNING/ERROR/CRITICAL.
    pub level: Option<String>,
    /// Python logging's format (`%(asctime)s %(levelname)s: %(message)s`).
    pub format: Option<String>,
    /// `strftime` format of `%(asctime)s`.
    pub dateformat: Option<String>,
    /// `log.dir`: the agent writes `patroni.log` there (and nothing to stderr), as Patroni.
    pub dir: Option<std::path::PathBuf>,
    /// `log.file_size`: bytes after which the file is rotated (Patroni: 25000000).
    pub file_size: u64,
    /// `log.file_num`: rotated files kept, `patroni.log.1` ... (Patroni: 4).
    pub file_num: u32,
    /// `log.mode`: the files' permissions (Patroni: 0666 less the umask).
    pub mode: Option<u32>,
    /// `log.type: json`: each line a JSON object.
    pub json: Option<JsonLog>,
}

/// Patroni's JSON lines (python-json-logger): the record's fields named by `format`, in its
/// order, under their new names, then `static_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonLog {
    /// (record field, key written).
    pub fields: Vec<(String, String)>,
    /// Written as given with every line.
    pub static_fields: Vec<(String, Value)>,
}

/// Patroni's defaults for `log.file_size` and `log.file_num`.
pub const LOG_FILE_SIZE: u64 = 25_000_000;
pub const LOG_FILE_NUM: u32 = 4;

impl Default for Log {
    fn default() -> Self {
        Log {
            level: None,
            format: None,
            dateformat: None,
            dir: None,
            file_size: LOG_FILE_SIZE,
            file_num: LOG_FILE_NUM,
            mode: None,
            json: None,
        }
    }
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
    let mut json = false;
    let mut list_format: Option<(super::diag::KeyPath, Value)> = None;
    let mut static_fields = Vec::new();
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
                Value::Array(_) => list_format = Some((path.clone(), v.clone())),
                other => diag.problem(
                    &path,
                    found(other),
                    "a Python logging format string, or for log.type json a list of fields",
                ),
            },
            "dateformat" => match v {
                Value::String(s) => out.dateformat = Some(s.clone()),
                other => diag.problem(&path, found(other), "a strftime format string"),
            },
            "type" => match v.as_str().map(str::trim) {
                Some("plain") => {}
                Some("json") => json = true,
                _ => diag.problem(&path, found(v), "plain or json"),
            },
            "static_fields" => match v {
                Value::Null => {}
                Value::Object(m) => static_fields = m.clone().into_iter().collect(),
                other => diag.problem(&path, found(other), "a mapping of field: value"),
            },
            "dir" => match v {
                Value::Null => {}
                Value::String(s) if s.trim().is_empty() => {}
                Value::String(s) if s.starts_with('/') => out.dir = Some(s.into()),
                other => diag.problem(&path, found(other), "an absolute directory path"),
            },
            "file_size" => match number(v) {
                Some(n) if n > 0 => out.file_size = n,
                _ => diag.problem(&path, found(v), "a size in bytes, more than 0"),
            },
            "file_num" => match number(v).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => out.file_num = n,
                None => diag.problem(&path, found(v), "a number of files (0 or more)"),
            },
            "mode" => match mode(v) {
                Some(m) => out.mode = Some(m),
                None if v.is_null() => {}
                None => diag.problem(
                    &path,
                    found(v),
                    "file permissions, 0 to 0777 (0o640, or the string '0640')",
                ),
            },
            "loggers" | "traceback_level" | "max_queue_size" | "deduplicate_heartbeat_logs" => {
                diag.warn(&path, "not supported yet, ignored")
            }
            _ => diag.unknown(&path),
        }
    }
    if json {
        let fields = match &list_format {
            Some((path, list)) => json_fields(list, path, diag),
            None => placeholders(out.format.as_deref().unwrap_or(DEFAULT_FORMAT))
                .into_iter()
                .map(|f| (f.clone(), f))
                .collect(),
        };
        out.json = Some(JsonLog {
            fields,
            static_fields,
        });
    } else if let Some((path, v)) = &list_format {
        diag.problem(
            path,
            found(v),
            "a Python logging format string (a list needs type: json)",
        );
    }
    (diag.problems.len() == before).then_some(out)
}

/// Patroni's default `log.format`.
const DEFAULT_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";

/// The `%(name)` placeholders of a format string, in order (python-json-logger's rule).
fn placeholders(format: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find("%(") {
        rest = &rest[i + 2..];
        let Some(close) = rest.find(')') else { break };
        out.push(rest[..close].to_string());
        rest = &rest[close + 1..];
    }
    out
}

/// `format` as a list: field names and `{field: renamed}` mappings.
fn json_fields(
    list: &Value,
    path: &super::diag::KeyPath,
    diag: &mut Diag,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, item) in list.as_array().into_iter().flatten().enumerate() {
        match item {
            Value::String(f) => out.push((f.clone(), f.clone())),
            Value::Object(m) => {
                for (f, renamed) in m {
                    match renamed {
                        Value::String(r) => out.push((f.clone(), r.clone())),
                        other => diag.problem(
                            &path.index(i).key(f),
                            found(other),
                            "the field's new name (text)",
                        ),
                    }
                }
            }
            other => diag.problem(
                &path.index(i),
                found(other),
                "a field name, or a mapping of field: new name",
            ),
        }
    }
    if out.is_empty() {
        out = placeholders(DEFAULT_FORMAT)
            .into_iter()
            .map(|f| (f.clone(), f))
            .collect();
    }
    out
}

/// A non-negative integer, or a string holding one (environment variables).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Permissions: an integer (YAML's `0o640`), or a string read as octal (`'0640'`), as
/// Patroni's `parse_int` reads it.
fn mode(v: &Value) -> Option<u32> {
    let m = match v {
        Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
        Value::String(s) => {
            let s = s.trim();
            let digits = s.strip_prefix("0o").unwrap_or(s);
            u32::from_str_radix(digits, 8).ok()?
        }
        _ => return None,
    };
    (m <= 0o777).then_some(m)
}
