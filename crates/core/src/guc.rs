//! PostgreSQL's own definitions of its parameters (a server's `pg_settings`: type, unit,
//! range, enum values, context) and the check of a `postgresql.conf` value against them,
//! as PostgreSQL's `guc.c` parses it. Used before a parameter is written anywhere (`/config`,
//! `postgresql.conf`): a value the server would refuse at its next start must be refused
//! when it is set, naming the parameter, the value and what is allowed.
//!
//! What `pg_settings` cannot tell (a string parameter's check hook: an unknown time zone,
//! a library in `shared_preload_libraries` that is not installed) is not checked here.

use std::collections::BTreeMap;

/// A parameter's type, as `pg_settings.vartype` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GucType {
    Bool,
    Integer,
    Real,
    String,
    Enum,
}

/// One row of `pg_settings`, as the server reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GucRow {
    pub name: String,
    pub vartype: String,
    pub unit: Option<String>,
    pub min_val: Option<String>,
    pub max_val: Option<String>,
    pub enumvals: Vec<String>,
    pub context: String,
}

#[derive(Debug, Clone, PartialEq)]
struct GucDef {
    name: String,
    vartype: GucType,
    /// The base unit values are counted in: bytes per unit for memory (`8kB` → 8192),
    /// milliseconds per unit for time (`min` → 60000).
    unit: Option<Unit>,
    min: Option<f64>,
    max: Option<f64>,
    enumvals: Vec<String>,
    context: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Bytes(f64),
    Millis(f64),
}

/// The parameters one server knows, keyed by lower-case name (GUC names are
/// case-insensitive).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GucCatalog {
    /// `server_version_num` of the server the rows came from.
    pub server_version_num: u32,
    defs: BTreeMap<String, GucDef>,
    /// The rows as read, for [`GucCatalog::to_json`].
    rows: Vec<GucRow>,
}

const MEMORY_UNITS: [(&str, f64); 5] = [
    ("B", 1.0),
    ("kB", 1024.0),
    ("MB", 1024.0 * 1024.0),
    ("GB", 1024.0 * 1024.0 * 1024.0),
    ("TB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
];
const TIME_UNITS: [(&str, f64); 6] = [
    ("us", 0.001),
    ("ms", 1.0),
    ("s", 1000.0),
    ("min", 60_000.0),
    ("h", 3_600_000.0),
    ("d", 86_400_000.0),
];
const MEMORY_HINT: &str =
    "Valid units for this parameter are \"B\", \"kB\", \"MB\", \"GB\", and \"TB\"";
const TIME_HINT: &str =
    "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\"";

/// `pg_settings.unit` (`8kB`, `kB`, `MB`, `ms`, `s`, `min`) as a base unit.
fn base_unit(text: &str) -> Option<Unit> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (count, name) = text.split_at(split);
    let count: f64 = if count.is_empty() {
        1.0
    } else {
        count.parse().ok()?
    };
    if let Some((_, m)) = MEMORY_UNITS.iter().find(|(n, _)| *n == name) {
        return Some(Unit::Bytes(count * m));
    }
    TIME_UNITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| Unit::Millis(count * m))
}

impl GucCatalog {
    /// Builds the catalog from `pg_settings` rows; rows of an unknown type are skipped (a
    /// future server's new type is not checked rather than refused).
    pub fn from_rows(server_version_num: u32, rows: Vec<GucRow>) -> GucCatalog {
        let defs = rows
            .iter()
            .cloned()
            .filter_map(|r| {
                let vartype = match r.vartype.as_str() {
                    "bool" => GucType::Bool,
                    "integer" => GucType::Integer,
                    "real" => GucType::Real,
                    "string" => GucType::String,
                    "enum" => GucType::Enum,
                    _ => return None,
                };
                let num = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse().ok());
                Some((
                    r.name.to_ascii_lowercase(),
                    GucDef {
                        vartype,
                        unit: r.unit.as_deref().and_then(base_unit),
                        min: num(&r.min_val),
                        max: num(&r.max_val),
                        enumvals: r.enumvals,
                        context: r.context,
                        name: r.name,
                    },
                ))
            })
            .collect();
        GucCatalog {
            server_version_num,
            defs,
            rows,
        }
    }

    /// `{"server_version_num": N, "parameters": [rows]}`: what `GET /parameters` serves,
    /// so that `edit-config` checks values as the agents do.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "server_version_num": self.server_version_num,
            "parameters": self.rows,
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Result<GucCatalog, String> {
        let version = v
            .get("server_version_num")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("no server_version_num")?;
        let rows: Vec<GucRow> =
            serde_json::from_value(v.get("parameters").cloned().unwrap_or_default())
                .map_err(|e| format!("parameters: {e}"))?;
        Ok(GucCatalog::from_rows(version, rows))
    }

    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Whether PostgreSQL would take `value` for `name` in `postgresql.conf`; the error is
    /// PostgreSQL's own wording with what is allowed. A name with a dot that the server does
    /// not know is an extension's placeholder, which PostgreSQL accepts as any string.
    pub fn check(&self, name: &str, value: &str) -> Result<(), Refusal> {
        let Some(def) = self.defs.get(&name.to_ascii_lowercase()) else {
            if name.contains('.') {
                return Ok(());
            }
            return Err(Refusal {
                what: format!(
                    "unrecognized configuration parameter \"{name}\"{}",
                    self.suggestion(name)
                ),
                allowed: "a parameter this PostgreSQL knows (see pg_settings), or a name with \
                          a dot for an extension's"
                    .into(),
            });
        };
        if def.context == "internal" {
            return Err(Refusal {
                what: format!("parameter \"{}\" cannot be changed", def.name),
                allowed: "no value: it is fixed when PostgreSQL is built or initialized".into(),
            });
        }
        let invalid = |allowed: String| Refusal {
            what: format!("invalid value for parameter \"{}\": \"{value}\"", def.name),
            allowed,
        };
        match def.vartype {
            GucType::String => Ok(()),
            GucType::Bool => parse_bool(value)
                .map(|_| ())
                .ok_or_else(|| invalid("on, off, true, false, yes, no, 1 or 0".into())),
            GucType::Enum => {
                if enum_accepts(def, value) {
                    Ok(())
                } else {
                    Err(invalid(format!("one of {}", def.enumvals.join(", "))))
                }
            }
            GucType::Integer | GucType::Real => {
                let integer = def.vartype == GucType::Integer;
                let what = if integer { "an integer" } else { "a number" };
                let n = match parse_number(value, def.unit, integer) {
                    Ok(n) => n,
                    Err(NumberError::Unit(hint)) => {
                        return Err(invalid(format!(
                            "{what}{}{}; {hint}",
                            range(def),
                            unit_note(def)
                        )))
                    }
                    Err(NumberError::Syntax) => {
                        return Err(invalid(format!("{what}{}{}", range(def), unit_note(def))))
                    }
                };
                let (lo, hi) = (
                    def.min.unwrap_or(f64::NEG_INFINITY),
                    def.max.unwrap_or(f64::INFINITY),
                );
                if n < lo || n > hi {
                    return Err(Refusal {
                        what: format!(
                            "{value} is outside the valid range for parameter \"{}\" ({} .. {})",
                            def.name,
                            show(def.min),
                            show(def.max),
                        ),
                        allowed: format!("{what}{}{}", range(def), unit_note(def)),
                    });
                }
                Ok(())
            }
        }
    }

    /// ` (did you mean "x"?)` for a name that differs from a known one only in case of
    /// separators, e.g. `max-connections`.
    fn suggestion(&self, name: &str) -> String {
        let norm = name.to_ascii_lowercase().replace(['-', ' '], "_");
        match self.defs.get(&norm) {
            Some(d) => format!(" (did you mean \"{}\"?)", d.name),
            None => String::new(),
        }
    }
}

/// Why PostgreSQL would refuse a value, and what it takes instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: String,
    pub allowed: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; allowed: {}", self.what, self.allowed)
    }
}

/// ` from 1 to 262143`, when the server gave a range.
fn range(def: &GucDef) -> String {
    match (def.min, def.max) {
        (Some(lo), Some(hi)) => format!(" from {lo} to {hi}"),
        _ => String::new(),
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "any".into(), |v| format!("{v}"))
}

fn unit_name(def: &GucDef) -> String {
    match def.unit {
        Some(Unit::Bytes(b)) if b >= 1024.0 => format!("units of {} kB", b / 1024.0),
        Some(Unit::Bytes(_)) => "bytes".into(),
        Some(Unit::Millis(60_000.0)) => "minutes".into(),
        Some(Unit::Millis(1000.0)) => "seconds".into(),
        Some(Unit::Millis(m)) => format!("units of {m} ms"),
        None => String::new(),
    }
}

fn unit_note(def: &GucDef) -> String {
    match def.unit {
        Some(Unit::Bytes(_)) => format!(" (counted in {}, or with a memory unit)", unit_name(def)),
        Some(Unit::Millis(_)) => format!(" (counted in {}, or with a time unit)", unit_name(def)),
        None => String::new(),
    }
}

/// `guc.c`'s `parse_bool`: case-insensitive, unique prefixes of true/false/yes/no, on/off
/// (at least two letters), 1/0.
fn parse_bool(value: &str) -> Option<bool> {
    // No trimming: `'on '` is refused, as the server refuses it.
    let v = value.to_ascii_lowercase();
    if v.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(v.as_str());
    match v.as_bytes()[0] {
        b't' if prefix_of("true") => Some(true),
        b'f' if prefix_of("false") => Some(false),
        b'y' if prefix_of("yes") => Some(true),
        b'n' if prefix_of("no") => Some(false),
        b'o' if v.len() >= 2 && prefix_of("on") => Some(true),
        b'o' if v.len() >= 2 && prefix_of("off") => Some(false),
        b'1' if v.len() == 1 => Some(true),
        b'0' if v.len() == 1 => Some(false),
        _ => None,
    }
}

/// Enum values are matched case-insensitively. `pg_settings.enumvals` leaves out the
/// hidden spellings the server still takes: `true`, `false`, `yes`, `no`, `1`, `0` (exactly,
/// not their prefixes) for an enum that has `on` and `off` (`synchronous_commit = true`), and `wal_level`'s old names.
fn enum_accepts(def: &GucDef, value: &str) -> bool {
    let v = value;
    if def.enumvals.iter().any(|e| e.eq_ignore_ascii_case(v)) {
        return true;
    }
    let has = |s: &str| def.enumvals.iter().any(|e| e == s);
    const HIDDEN_BOOLS: [&str; 6] = ["true", "false", "yes", "no", "1", "0"];
    if has("on") && has("off") && HIDDEN_BOOLS.iter().any(|b| b.eq_ignore_ascii_case(v)) {
        return true;
    }
    def.name == "wal_level"
        && ["archive", "hot_standby"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(v))
}

enum NumberError {
    Syntax,
    Unit(&'static str),
}

/// `guc.c`'s `parse_int` / `parse_real`: a number (integers also in hex or octal as
/// `strtol` reads them, and since PostgreSQL 12 with a fraction, rounded), then optionally
/// a unit of the parameter's kind, converted to its base unit.
fn parse_number(value: &str, unit: Option<Unit>, integer: bool) -> Result<f64, NumberError> {
    let (n, rest) = scan_number(value.trim_start(), integer).ok_or(NumberError::Syntax)?;
    let rest = rest.trim();
    let converted = if rest.is_empty() {
        n
    } else {
        let Some(base) = unit else {
            return Err(NumberError::Syntax);
        };
        match base {
            Unit::Bytes(b) => MEMORY_UNITS
                .iter()
                .find(|(u, _)| *u == rest)
                .map(|(_, m)| n * m / b)
                .ok_or(NumberError::Unit(MEMORY_HINT))?,
            Unit::Millis(b) => TIME_UNITS
                .iter()
                .find(|(u, _)| *u == rest)
                .map(|(_, m)| n * m / b)
                .ok_or(NumberError::Unit(TIME_HINT))?,
        }
    };
    if !converted.is_finite() {
        return Err(NumberError::Syntax);
    }
    if integer {
        // `rint`: halves go to the even neighbour.
        let r = converted.round_ties_even();
        if r.abs() > f64::from(i32::MAX) {
            return Err(NumberError::Syntax);
        }
        return Ok(r);
    }
    Ok(converted)
}

/// The number at the start of `s` as `strtol` (base 0, integers only) then `strtod` read
/// it, and what follows. `None` when no number starts there (NaN and infinities included,
/// which PostgreSQL refuses).
fn scan_number(s: &str, integer: bool) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = matches!(b.first(), Some(b'-'));
    if matches!(b.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let sign = if neg { -1.0 } else { 1.0 };
    let digits_from = |mut j: usize, ok: fn(u8) -> bool| {
        while j < b.len() && ok(b[j]) {
            j += 1;
        }
        j
    };
    if integer {
        let body = &s[i..];
        let hex = body.starts_with("0x") || body.starts_with("0X");
        let (start, radix, ok): (usize, u32, fn(u8) -> bool) = if hex {
            (i + 2, 16, |c: u8| c.is_ascii_hexdigit())
        } else if body.starts_with('0') {
            (i, 8, |c: u8| (b'0'..=b'7').contains(&c))
        } else {
            (i, 10, |c: u8| c.is_ascii_digit())
        };
        let end = digits_from(start, ok);
        let next = b.get(end).copied();
        let float_follows = !hex && matches!(next, Some(b'.' | b'e' | b'E'));
        if end > start && !float_follows {
            let n = i64::from_str_radix(&s[start..end], radix).ok()?;
            return Some((sign * n as f64, &s[end..]));
        }
        if hex {
            return None;
        }
    } else if s[i..].starts_with("0x") || s[i..].starts_with("0X") {
        // C's strtod reads hexadecimal too (its fractions and exponents are not used here).
        let end = digits_from(i + 2, |c| c.is_ascii_hexdigit());
        let n = u64::from_str_radix(&s[i + 2..end], 16).ok()?;
        return Some((sign * n as f64, &s[end..]));
    }
    // strtod: digits, an optional fraction, an optional exponent with digits.
    let int_end = digits_from(i, |c| c.is_ascii_digit());
    let mut end = int_end;
    if b.get(end) == Some(&b'.') {
        end = digits_from(end + 1, |c| c.is_ascii_digit());
    }
    if end == i || (end == i + 1 && b[i] == b'.') {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let k = digits_from(j, |c| c.is_ascii_digit());
        if k > j {
            end = k;
        }
    }
    let n: f64 = s[i..end].parse().ok()?;
    n.is_finite().then_some((sign * n, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, vartype: &str, unit: Option<&str>, min: &str, max: &str) -> GucRow {
        GucRow {
            name: name.into(),
            vartype: vartype.into(),
            unit: unit.map(Into::into),
            min_val: (!min.is_empty()).then(|| min.into()),
            max_val: (!max.is_empty()).then(|| max.into()),
            enumvals: Vec::new(),
            context: "sighup".into(),
        }
    }

    /// A few rows as PostgreSQL 15's `pg_settings` has them.
    pub(crate) fn catalog() -> GucCatalog {
        let mut rows = vec![
            row("max_connections", "integer", None, "1", "262143"),
            row("shared_buffers", "integer", Some("8kB"), "16", "1073741823"),
            row("work_mem", "integer", Some("kB"), "64", "2147483647"),
            row(
                "statement_timeout",
                "integer",
                Some("ms"),
                "0",
                "2147483647",
            ),
            row("wal_keep_size", "integer", Some("MB"), "0", "2147483647"),
            row("random_page_cost", "real", None, "0", "1.79769e+308"),
            row("vacuum_cost_delay", "real", Some("ms"), "0", "100"),
            row("hot_standby", "bool", None, "", ""),
            row("application_name", "string", None, "", ""),
            row("server_version", "string", None, "", ""),
            row("wal_level", "enum", None, "", ""),
            row("synchronous_commit", "enum", None, "", ""),
        ];
        rows[9].context = "internal".into();
        rows[10].enumvals = vec!["minimal".into(), "replica".into(), "logical".into()];
        rows[11].enumvals = ["local", "remote_write", "remote_apply", "on", "off"]
            .map(String::from)
            .to_vec();
        GucCatalog::from_rows(150010, rows)
    }

    #[test]
    fn values_postgresql_takes_pass() {
        let c = catalog();
        for (name, value) in [
            ("max_connections", "100"),
            ("MAX_CONNECTIONS", " 200 "),
            ("max_connections", "0x10"),
            ("max_connections", "1.6"),
            ("shared_buffers", "128MB"),
            ("shared_buffers", "16384"),
            ("shared_buffers", "1GB"),
            ("work_mem", "4MB"),
            ("statement_timeout", "5min"),
            ("statement_timeout", "1.5s"),
            ("wal_keep_size", "1GB"),
            ("random_page_cost", "1.1"),
            ("random_page_cost", "4e0"),
            ("vacuum_cost_delay", "2ms"),
            ("hot_standby", "on"),
            ("hot_standby", "TRUE"),
            ("hot_standby", "of"),
            ("hot_standby", "1"),
            ("application_name", "anything at all"),
            ("wal_level", "Replica"),
            ("wal_level", "hot_standby"),
            ("synchronous_commit", "remote_apply"),
            ("synchronous_commit", "true"),
            ("pg_stat_statements.max", "1000"),
        ] {
            assert_eq!(c.check(name, value), Ok(()), "{name} = {value}");
        }
    }

    #[test]
    fn values_postgresql_refuses_are_refused_naming_what_is_allowed() {
        let c = catalog();
        let e = c.check("max_connections", "abc").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid value for parameter \"max_connections\": \"abc\"; allowed: an integer \
             from 1 to 262143"
        );
        let e = c.check("max_connections", "0").unwrap_err().to_string();
        assert!(
            e.contains("outside the valid range") && e.contains("1 .. 262143"),
            "{e}"
        );
        let e = c.check("max_connections", "10MB").unwrap_err().to_string();
        assert!(e.contains("invalid value"), "{e}");
        let e = c.check("shared_buffers", "12XB").unwrap_err().to_string();
        assert!(e.contains("Valid units") && e.contains("\"kB\""), "{e}");
        let e = c.check("shared_buffers", "10kB").unwrap_err().to_string();
        assert!(e.contains("outside the valid range"), "{e}");
        let e = c
            .check("statement_timeout", "5 parsecs")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"min\""), "{e}");
        let e = c.check("wal_level", "archival").unwrap_err().to_string();
        assert!(e.contains("one of minimal, replica, logical"), "{e}");
        let e = c.check("hot_standby", "o").unwrap_err().to_string();
        assert!(e.contains("on, off"), "{e}");
        let e = c.check("ttl", "abc").unwrap_err();
        assert_eq!(e.what, "unrecognized configuration parameter \"ttl\"");
        let e = c.check("max-connections", "5").unwrap_err().to_string();
        assert!(e.contains("did you mean \"max_connections\""), "{e}");
        let e = c.check("server_version", "16").unwrap_err().to_string();
        assert!(e.contains("cannot be changed"), "{e}");
        for bad in ["nan", "inf", "1e400", "99999999999", "", "--1", "1..2"] {
            assert!(c.check("max_connections", bad).is_err(), "{bad}");
        }
        assert!(c.check("random_page_cost", "-1").is_err());
        assert!(c.check("random_page_cost", "nan").is_err());
    }

    #[test]
    fn the_catalog_travels_as_json() {
        let c = catalog();
        assert_eq!(GucCatalog::from_json(&c.to_json()), Ok(c));
        assert!(GucCatalog::from_json(&serde_json::json!({"parameters": 5})).is_err());
    }

    #[test]
    fn base_units_read_as_pg_settings_writes_them() {
        assert_eq!(base_unit("8kB"), Some(Unit::Bytes(8192.0)));
        assert_eq!(base_unit("MB"), Some(Unit::Bytes(1048576.0)));
        assert_eq!(base_unit("min"), Some(Unit::Millis(60000.0)));
        assert_eq!(base_unit("parsec"), None);
    }
}
