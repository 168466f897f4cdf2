//! The cluster-wide settings: read from `bootstrap.dcs` (strictly: a bad value refuses the
//! file) and from the DCS `/config` key (leniently: a bad field falls back to the local one,
//! because another node or an operator wrote it and this node must keep running).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::diag::{Diag, KeyPath};
use super::scalar::{self, found, secs_json, show_secs};
use super::{
    Config, DynamicConfig, DEFAULT_LOOP_WAIT, DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_TTL,
};
use crate::sync::{SyncMode, SyncSettings};

/// Floors below which the HA loop cannot work: a lease shorter than 2 s expires between two
/// keepalives on a loaded host, and sub-200 ms loops only burn CPU.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);
pub(crate) const MIN_LOOP_WAIT: Duration = Duration::from_millis(200);
pub(crate) const MIN_RETRY_TIMEOUT: Duration = Duration::from_millis(500);

/// Patroni's dynamic keys (`docs/dynamic_configuration.rst`): kept in `/config` as written,
/// whether or not pgkeel acts on them yet, so Patroni nodes and tools see them unchanged.
const PATRONI_DYNAMIC_KEYS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "maximum_lag_on_syncnode",
    "max_timelines_history",
    "primary_start_timeout",
    "primary_stop_timeout",
    "master_start_timeout",
    "master_stop_timeout",
    "primary_race_backoff",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
    "check_timeline",
    "pause",
    "member_slots_ttl",
    "slots",
    "permanent_slots",
    "permanent_replication_slots",
    "ignore_slots",
    "standby_cluster",
    "postgresql",
];

const PATRONI_DYNAMIC_PG_KEYS: &[&str] = &[
    "use_pg_rewind",
    "use_slots",
    "recovery_conf",
    "parameters",
    "parameters_primary",
    "parameters_replica",
    "parameters_standby_leader",
    "pg_hba",
    "pg_hba_primary",
    "pg_hba_replica",
    "pg_hba_standby_leader",
    "pg_ident",
    "pg_ident_primary",
    "pg_ident_replica",
    "pg_ident_standby_leader",
];

/// pgkeel's own dynamic keys (Patroni nodes ignore them).
const PGKEEL_DYNAMIC_KEYS: &[&str] = &["primary_hang_timeout"];

/// The smallest `primary_hang_timeout`: below it a probe's own deadline and one busy
/// moment of a loaded server would already count as a hang.
pub(crate) const MIN_HANG_TIMEOUT: Duration = Duration::from_secs(1);

const NOT_PATRONI: &str = "not a Patroni setting (a typo?); kept in /config as written, unused";

/// Notes keys of `bootstrap.dcs` that Patroni does not know either: they are still written to
/// `/config` (as Patroni would), but a typo such as `loop_wiat` deserves a line in the log.
fn note_unknown(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) {
    for k in map.keys() {
        if !PATRONI_DYNAMIC_KEYS.contains(&k.as_str()) && !PGKEEL_DYNAMIC_KEYS.contains(&k.as_str())
        {
            diag.warn(&base.key(k), NOT_PATRONI);
        }
    }
    if let Some(Value::Object(pg)) = map.get("postgresql") {
        for k in pg.keys() {
            if !PATRONI_DYNAMIC_PG_KEYS.contains(&k.as_str()) {
                diag.warn(&base.key("postgresql").key(k), NOT_PATRONI);
            }
        }
    }
}

/// Settings whose silent absence would weaken what the operator asked for (commits that
/// must not be lost, automation that must stay off): refused until pgkeel implements them,
/// rather than accepted and ignored.
fn refuse_unsupported(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) {
    const UNSUPPORTED: &[(&str, &str)] = &[(
        "standby_cluster",
        "absent (pgkeel does not implement standby clusters yet)",
    )];
    for (key, allowed) in UNSUPPORTED {
        if let Some(v) = map.get(*key).filter(|v| requested(v)) {
            diag.problem(&base.key(key), found(v), *allowed);
        }
    }
}

/// Whether a Patroni flag or section is switched on (`true`, `on`, `quorum`, a mapping...).
fn requested(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "off" | "no" | "0"
        ),
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
    }
}

/// What a `/config`-shaped value says; `None` for a field that is absent or bad.
#[derive(Debug, Default)]
struct Fields {
    ttl: Option<Duration>,
    loop_wait: Option<Duration>,
    retry_timeout: Option<Duration>,
    maximum_lag_on_failover: Option<u64>,
    use_pg_rewind: Option<bool>,
    use_slots: Option<bool>,
    parameters: Option<BTreeMap<String, String>>,
    pg_hba: Option<Vec<String>>,
    sync_mode: Option<SyncMode>,
    sync_strict: Option<bool>,
    sync_node_count: Option<u32>,
    /// `Some(None)`: given as -1 (or 0), no limit.
    max_lag_on_syncnode: Option<Option<u64>>,
    failsafe_mode: Option<bool>,
    check_timeline: Option<bool>,
    primary_hang_timeout: Option<Duration>,
}

fn read(map: &Map<String, Value>, base: &KeyPath, diag: &mut Diag) -> Fields {
    let at = |k: &str| base.key(k);
    let mut f = Fields {
        ttl: map
            .get("ttl")
            .and_then(|v| scalar::seconds(v, &at("ttl"), diag, MIN_TTL)),
        loop_wait: map
            .get("loop_wait")
            .and_then(|v| scalar::seconds(v, &at("loop_wait"), diag, MIN_LOOP_WAIT)),
        retry_timeout: map
            .get("retry_timeout")
            .and_then(|v| scalar::seconds(v, &at("retry_timeout"), diag, MIN_RETRY_TIMEOUT)),
        maximum_lag_on_failover: map.get("maximum_lag_on_failover").and_then(|v| {
            scalar::unsigned(
                v,
                &at("maximum_lag_on_failover"),
                diag,
                "a number of bytes (an integer, 0 or more)",
            )
        }),
        sync_mode: map
            .get("synchronous_mode")
            .and_then(|v| sync_mode(v, &at("synchronous_mode"), diag)),
        sync_strict: map
            .get("synchronous_mode_strict")
            .and_then(|v| scalar::boolean(v, &at("synchronous_mode_strict"), diag)),
        sync_node_count: map
            .get("synchronous_node_count")
            .and_then(|v| node_count(v, &at("synchronous_node_count"), diag)),
        max_lag_on_syncnode: map
            .get("maximum_lag_on_syncnode")
            .and_then(|v| lag_limit(v, &at("maximum_lag_on_syncnode"), diag)),
        failsafe_mode: map
            .get("failsafe_mode")
            .and_then(|v| scalar::boolean(v, &at("failsafe_mode"), diag)),
        check_timeline: map
            .get("check_timeline")
            .and_then(|v| scalar::boolean(v, &at("check_timeline"), diag)),
        primary_hang_timeout: map
            .get("primary_hang_timeout")
            .and_then(|v| scalar::seconds(v, &at("primary_hang_timeout"), diag, MIN_HANG_TIMEOUT)),
        ..Fields::default()
    };
    let pg_path = at("postgresql");
    match map.get("postgresql") {
        None | Some(Value::Null) => {}
        Some(Value::Object(pg)) => {
            let at = |k: &str| pg_path.key(k);
            f.use_pg_rewind = pg
                .get("use_pg_rewind")
                .and_then(|v| scalar::boolean(v, &at("use_pg_rewind"), diag));
            f.use_slots = pg
                .get("use_slots")
                .and_then(|v| scalar::boolean(v, &at("use_slots"), diag));
            f.parameters = pg
                .get("parameters")
                .and_then(|v| parameters(v, &at("parameters"), diag));
            f.pg_hba = pg
                .get("pg_hba")
                .and_then(|v| scalar::string_list(v, &at("pg_hba"), diag));
        }
        Some(other) => diag.problem(&pg_path, found(other), "a mapping of key: value"),
    }
    f
}

/// `synchronous_mode`: a boolean (Patroni's `true` is `on`) or `quorum`.
fn sync_mode(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<SyncMode> {
    let mode = match v {
        Value::Bool(true) => Some(SyncMode::On),
        Value::Bool(false) | Value::Null => Some(SyncMode::Off),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Some(SyncMode::Quorum),
            "true" | "on" | "yes" | "1" => Some(SyncMode::On),
            "false" | "off" | "no" | "0" | "" => Some(SyncMode::Off),
            _ => None,
        },
        _ => None,
    };
    if mode.is_none() {
        diag.problem(path, found(v), "off (false), on (true) or quorum");
    }
    mode
}

/// `synchronous_node_count`: 1 or more.
fn node_count(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<u32> {
    const ALLOWED: &str = "an integer, 1 or more";
    let n = scalar::unsigned(v, path, diag, ALLOWED)?;
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            diag.problem(path, found(v), ALLOWED);
            None
        }
    }
}

/// `maximum_lag_on_syncnode`: bytes; -1 (Patroni's default) or 0 turns the limit off.
fn lag_limit(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<Option<u64>> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= 0 => Some(None),
        Some(n) => Some(Some(n as u64)),
        None => {
            diag.problem(
                path,
                found(v),
                "a number of bytes (an integer; -1 for no limit)",
            );
            None
        }
    }
}

/// PostgreSQL parameters as `postgresql.conf` text (see [`scalar::pg_value`]).
pub(crate) fn parameters(
    v: &Value,
    path: &KeyPath,
    diag: &mut Diag,
) -> Option<BTreeMap<String, String>> {
    let map = match v {
        Value::Object(m) => m,
        Value::Null => return Some(BTreeMap::new()),
        other => {
            diag.problem(path, found(other), "a mapping of parameter: value");
            return None;
        }
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, val) in map {
        match scalar::pg_value(val) {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None => {
                diag.problem(&path.key(k), found(val), scalar::PG_VALUE_ALLOWED);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `loop_wait + 2 * retry_timeout <= ttl`: a leader that starts a loop just before its lease
/// is due must still get two DCS retries in before the lease expires. Overflow counts as a
/// violation.
fn timings_ok(ttl: Duration, loop_wait: Duration, retry_timeout: Duration) -> bool {
    retry_timeout
        .checked_mul(2)
        .and_then(|r| r.checked_add(loop_wait))
        .is_some_and(|needed| needed <= ttl)
}

/// `bootstrap.dcs` → the dynamic config. `None` (with problems) if a value is bad.
pub(crate) fn from_bootstrap(
    dcs: Option<&Value>,
    base: &KeyPath,
    diag: &mut Diag,
) -> Option<DynamicConfig> {
    let empty = Map::new();
    let map = match dcs {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            diag.problem(base, found(other), "a mapping of key: value");
            return None;
        }
    };
    refuse_unsupported(map, base, diag);
    note_unknown(map, base, diag);
    let before = diag.problems.len();
    let f = read(map, base, diag);
    if diag.problems.len() > before {
        return None;
    }
    let ttl = f.ttl.unwrap_or(DEFAULT_TTL);
    let loop_wait = f.loop_wait.unwrap_or(DEFAULT_LOOP_WAIT);
    let retry_timeout = f.retry_timeout.unwrap_or(DEFAULT_RETRY_TIMEOUT);
    if !timings_ok(ttl, loop_wait, retry_timeout) {
        // Point at whichever of the three keys the file has, ttl first.
        let key = ["ttl", "loop_wait", "retry_timeout"]
            .into_iter()
            .find(|k| map.contains_key(*k));
        let path = key.map_or_else(|| base.clone(), |k| base.key(k));
        diag.problem(
            &path,
            format!(
                "loop_wait {} + 2 × retry_timeout {} = {} s, more than ttl {} \
                 (values in seconds; a key not in the file has pgkeel's default)",
                show_secs(loop_wait),
                show_secs(retry_timeout),
                show_secs(loop_wait + retry_timeout * 2),
                show_secs(ttl),
            ),
            "values with loop_wait + 2 × retry_timeout <= ttl. Patroni silently lowers \
             loop_wait and retry_timeout in this case; pgkeel refuses instead, because its \
             leader must be able to retry the DCS twice within one lease",
        );
        return None;
    }
    let maximum_lag_on_failover = f
        .maximum_lag_on_failover
        .unwrap_or(DEFAULT_MAXIMUM_LAG_ON_FAILOVER);
    let use_pg_rewind = f.use_pg_rewind.unwrap_or(true);
    let use_slots = f.use_slots.unwrap_or(true);

    // What the first leader writes to `/config`: the section as written, every other Patroni
    // key included, with the defaults pgkeel acts on made explicit so that every node (and
    // Patroni nodes reading the same cluster) sees the same values.
    let mut json = map.clone();
    json.entry("ttl").or_insert_with(|| secs_json(ttl));
    json.entry("loop_wait")
        .or_insert_with(|| secs_json(loop_wait));
    json.entry("retry_timeout")
        .or_insert_with(|| secs_json(retry_timeout));
    json.entry("maximum_lag_on_failover")
        .or_insert_with(|| Value::from(maximum_lag_on_failover));
    let pg = json
        .entry("postgresql")
        .or_insert_with(|| Value::Object(Map::new()));
    if pg.is_null() {
        *pg = Value::Object(Map::new());
    }
    if let Value::Object(pg) = pg {
        pg.entry("use_pg_rewind")
            .or_insert(Value::Bool(use_pg_rewind));
        pg.entry("use_slots").or_insert(Value::Bool(use_slots));
    }

    let sync = sync_settings(&f, SyncSettings::default());
    Some(DynamicConfig {
        ttl,
        loop_wait,
        retry_timeout,
        maximum_lag_on_failover,
        use_pg_rewind,
        use_slots,
        parameters: f.parameters.unwrap_or_default(),
        pg_hba: f.pg_hba.unwrap_or_default(),
        sync,
        failsafe_mode: f.failsafe_mode.unwrap_or(false),
        check_timeline: f.check_timeline.unwrap_or(false),
        primary_hang_timeout: f.primary_hang_timeout,
        json: Value::Object(json),
    })
}

/// The dynamic settings in force: `/config` from the DCS when present, otherwise
/// `bootstrap.dcs`. Each field of `/config` that is missing or bad falls back to the local
/// value, so a bad write by an operator or another node cannot stop this one (never a panic).
/// The three timings are kept together: if the DCS values break
/// `loop_wait + 2 × retry_timeout <= ttl`, as many of them are kept as the rule allows
/// (ttl preferred), the others come from the local file.
///
/// `json` is the `/config` value as stored, so that `GET /config` shows what the DCS holds.
pub fn effective_dynamic(local: &Config, dcs: Option<&Value>) -> DynamicConfig {
    let base = &local.bootstrap.dcs;
    let Some(Value::Object(map)) = dcs else {
        return base.clone();
    };
    // Problems in the DCS value are not this node's to report as config errors; they only
    // decide which fields fall back.
    let mut scratch = Diag::default();
    let f = read(map, &KeyPath::root(), &mut scratch);

    let (ttl, loop_wait, retry_timeout) = pick_timings(
        [f.ttl, f.loop_wait, f.retry_timeout],
        [base.ttl, base.loop_wait, base.retry_timeout],
    );
    let sync = sync_settings(&f, SyncSettings::default());
    DynamicConfig {
        ttl,
        loop_wait,
        retry_timeout,
        maximum_lag_on_failover: f
            .maximum_lag_on_failover
            .unwrap_or(base.maximum_lag_on_failover),
        use_pg_rewind: f.use_pg_rewind.unwrap_or(base.use_pg_rewind),
        use_slots: f.use_slots.unwrap_or(base.use_slots),
        parameters: f.parameters.unwrap_or_else(|| base.parameters.clone()),
        pg_hba: f.pg_hba.unwrap_or_else(|| base.pg_hba.clone()),
        // Safety settings must agree on every node: an absent key means Patroni's default,
        // never this node's bootstrap section (a PATCH that removes synchronous_mode turns
        // it off everywhere at once).
        sync,
        failsafe_mode: f.failsafe_mode.unwrap_or(false),
        check_timeline: f.check_timeline.unwrap_or(false),
        // Absent: derived from the ttl in force (see `DynamicConfig::hang_timeout`); a bad
        // value falls back to this node's own setting.
        primary_hang_timeout: f.primary_hang_timeout.or(base.primary_hang_timeout),
        json: Value::Object(map.clone()),
    }
}

/// `synchronous_mode` as a `/config` value sets it, for readers that have no local
/// configuration to fall back on (`/cluster`, `list`, which show what the DCS says): absent
/// or invalid is off, as [`effective_dynamic`] reads it.
pub fn sync_mode_in(dcs: Option<&Value>) -> SyncMode {
    let Some(Value::Object(map)) = dcs else {
        return SyncMode::Off;
    };
    let mut scratch = Diag::default();
    map.get("synchronous_mode")
        .and_then(|v| sync_mode(v, &KeyPath::root().key("synchronous_mode"), &mut scratch))
        .unwrap_or_default()
}

fn sync_settings(f: &Fields, base: SyncSettings) -> SyncSettings {
    SyncSettings {
        mode: f.sync_mode.unwrap_or(base.mode),
        strict: f.sync_strict.unwrap_or(base.strict),
        node_count: f.sync_node_count.unwrap_or(base.node_count),
        maximum_lag_on_syncnode: f
            .max_lag_on_syncnode
            .unwrap_or(base.maximum_lag_on_syncnode),
    }
}

/// Chooses ttl, loop_wait and retry_timeout from the DCS (`remote`) and local values: the
/// combination that keeps the most valid DCS values while obeying the timing rule. The order
/// below tries every subset of the three, largest first, ttl before the others.
fn pick_timings(
    remote: [Option<Duration>; 3],
    local: [Duration; 3],
) -> (Duration, Duration, Duration) {
    const SUBSETS: [[bool; 3]; 8] = [
        [true, true, true],
        [true, true, false],
        [true, false, true],
        [false, true, true],
        [true, false, false],
        [false, true, false],
        [false, false, true],
        [false, false, false],
    ];
    for keep in SUBSETS {
        let mut t = local;
        let mut usable = true;
        for i in 0..3 {
            if keep[i] {
                match remote[i] {
                    Some(d) => t[i] = d,
                    None => usable = false,
                }
            }
        }
        if usable && timings_ok(t[0], t[1], t[2]) {
            return (t[0], t[1], t[2]);
        }
    }
    // The local values were validated when the file loaded; if a caller built a Config by
    // hand that breaks the rule, they are still the best we have.
    (local[0], local[1], local[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn timings_keep_as_many_dcs_values_as_the_rule_allows() {
        let local = [s(10), s(2), s(3)];
        // All three fine together.
        assert_eq!(
            pick_timings([Some(s(30)), Some(s(10)), Some(s(10))], local),
            (s(30), s(10), s(10))
        );
        // ttl 12 with loop_wait 10 and retry 10 breaks the rule; ttl 12 + loop_wait 10 +
        // local retry 3 = 16 > 12 too; ttl 12 + local loop_wait 2 + retry 10 = 22 > 12;
        // loop_wait 10 + retry 10 with local ttl 10 breaks; ttl 12 alone works.
        assert_eq!(
            pick_timings([Some(s(12)), Some(s(10)), Some(s(10))], local),
            (s(12), s(2), s(3))
        );
        // Missing DCS values fall back.
        assert_eq!(pick_timings([None, None, None], local), (s(10), s(2), s(3)));
    }

    #[test]
    fn overflowing_timings_break_the_rule() {
        assert!(!timings_ok(s(10), Duration::MAX, s(1)));
        assert!(timings_ok(s(10), s(2), s(4)));
        assert!(!timings_ok(s(10), s(3), s(4)));
    }
}

/// Checks a whole `/config` value as strictly as `bootstrap.dcs` (used before writing a
/// `PATCH`/`PUT /config` or an `edit-config`): every problem in one message, naming the
/// key, what was found and what is allowed.
pub fn check_dynamic(config: &Value) -> Result<DynamicConfig, String> {
    let mut diag = Diag::default();
    let checked = from_bootstrap(Some(config), &KeyPath::root(), &mut diag);
    if diag.problems.is_empty() {
        if let Some(d) = checked {
            return Ok(d);
        }
    }
    Err(diag
        .problems
        .iter()
        .map(|p| format!("{}: {}; allowed: {}", p.path, p.found, p.allowed))
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn check_dynamic_refuses_unsafe_timings_with_the_reason() {
        assert!(
            check_dynamic(&serde_json::json!({"ttl": 10, "loop_wait": 2, "retry_timeout": 3}))
                .is_ok()
        );
        let e = check_dynamic(&serde_json::json!({"ttl": 4, "loop_wait": 2, "retry_timeout": 3}))
            .unwrap_err();
        assert!(e.contains("ttl") && e.contains("retry_timeout"), "{e}");
        let e = check_dynamic(&serde_json::json!({"ttl": "soon"})).unwrap_err();
        assert!(e.contains("ttl"), "{e}");
    }

    #[test]
    fn primary_hang_timeout_defaults_to_half_the_ttl_and_refuses_bad_values() {
        let d = check_dynamic(&serde_json::json!({"ttl": 10})).unwrap();
        assert_eq!(d.hang_timeout(), Duration::from_secs(5));
        let d =
            check_dynamic(&serde_json::json!({"ttl": 2, "loop_wait": 0.5, "retry_timeout": 0.5}))
                .unwrap();
        assert_eq!(
            d.hang_timeout(),
            super::super::DEFAULT_MIN_HANG_TIMEOUT,
            "the derived bound has a floor"
        );
        let d = check_dynamic(&serde_json::json!({"primary_hang_timeout": 1})).unwrap();
        assert_eq!(
            d.hang_timeout(),
            MIN_HANG_TIMEOUT,
            "an explicit bound may be lower"
        );
        let d = check_dynamic(&serde_json::json!({"primary_hang_timeout": 12})).unwrap();
        assert_eq!(d.hang_timeout(), Duration::from_secs(12));
        for bad in [
            serde_json::json!("abc"),
            serde_json::json!(-3),
            serde_json::json!(0.2),
        ] {
            let e = check_dynamic(&serde_json::json!({"primary_hang_timeout": bad})).unwrap_err();
            assert!(e.contains("primary_hang_timeout"), "{e}");
        }
    }
}

#[cfg(test)]
mod sync_mode_in_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_mode_leniently() {
        assert_eq!(sync_mode_in(None), SyncMode::Off);
        assert_eq!(sync_mode_in(Some(&json!([1]))), SyncMode::Off);
        assert_eq!(sync_mode_in(Some(&json!({"ttl": 30}))), SyncMode::Off);
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": true}))),
            SyncMode::On
        );
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": "Quorum"}))),
            SyncMode::Quorum
        );
        assert_eq!(
            sync_mode_in(Some(&json!({"synchronous_mode": "sometimes"}))),
            SyncMode::Off
        );
    }
}
