//! Patroni's other ways to make a data directory: `bootstrap.method` with its section,
//! `bootstrap.post_bootstrap` (`post_init`), and `postgresql.create_replica_methods` with a
//! section per custom method. Values are read as Patroni reads them (`bootstrap.py`): flags
//! by Python's truthiness, arguments printed as Python prints them; what Patroni would
//! silently misread (a method without its section or command, a flag written `"false"`,
//! a list as an argument) is refused, naming the key.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diag::{Diag, KeyPath};
use super::raw::{Node, RawBootstrap, RawPostgresql};
use super::scalar::{found, pg_value, PG_VALUE_ALLOWED};
use super::{BootstrapMethod, CustomBootstrap, CustomReplicaMethod, ReplicaMethod};

/// Keys of `bootstrap.<method>` that are not passed to the command (Patroni's
/// `reserved_args`).
const BOOTSTRAP_RESERVED: &[&str] = &[
    "command",
    "no_params",
    "keep_existing_recovery_conf",
    "recovery_conf",
];

/// Keys of `bootstrap.<method>` Patroni drops silently because it passes them itself: the
/// command would get the cluster's scope and data directory, not the value written, so
/// they are refused rather than ignored.
const BOOTSTRAP_OWN_ARGS: &[&str] = &["scope", "datadir"];

/// Keys of the `bootstrap` section, which cannot also name a custom method's section.
const BOOTSTRAP_KEYS: &[&str] = &[
    "dcs",
    "initdb",
    "pg_hba",
    "method",
    "post_bootstrap",
    "post_init",
    "users",
];

/// Keys of the `postgresql` section, which cannot also name a custom replica method's
/// section (`basebackup` is the built-in method, whose options live there).
const POSTGRESQL_KEYS: &[&str] = &[
    "listen",
    "connect_address",
    "proxy_address",
    "data_dir",
    "config_dir",
    "bin_dir",
    "bin_name",
    "pgpass",
    "authentication",
    "parameters",
    "parameters_primary",
    "parameters_replica",
    "parameters_standby_leader",
    "pg_hba",
    "pg_hba_primary",
    "pg_hba_replica",
    "pg_hba_standby_leader",
    "pg_ident",
    "callbacks",
    "create_replica_methods",
    "create_replica_method",
    "pre_promote",
    "before_stop",
    "recovery_conf",
    "custom_conf",
    "use_unix_socket",
    "use_unix_socket_repl",
    "pg_ctl_timeout",
    "use_pg_rewind",
    "rewind",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
];

const COMMAND_ALLOWED: &str = "a command line (split as a shell splits words, without a shell)";

/// `bootstrap.method` and the section it names. Without `method` (or with `initdb`, or an
/// empty value, Patroni's `method or 'initdb'`) the cluster is made by initdb.
pub(crate) fn bootstrap_method(raw: &RawBootstrap, diag: &mut Diag) -> Option<BootstrapMethod> {
    let Some(m) = &raw.method else {
        return Some(BootstrapMethod::Initdb);
    };
    let name = match &m.value {
        Value::Null => return Some(BootstrapMethod::Initdb),
        Value::String(s) if s.trim().is_empty() => return Some(BootstrapMethod::Initdb),
        Value::String(s) if s == "initdb" => return Some(BootstrapMethod::Initdb),
        Value::String(s) => s.clone(),
        other => {
            diag.problem(
                &m.path,
                found(other),
                "initdb, or the name of a custom method with a section bootstrap.<name>",
            );
            return None;
        }
    };
    if BOOTSTRAP_KEYS.contains(&name.as_str()) {
        diag.problem(
            &m.path,
            found(&m.value),
            "initdb, or the name of a custom method other than a key of the bootstrap \
             section (dcs, initdb, pg_hba, method, post_bootstrap, post_init, users)",
        );
        return None;
    }
    // Patroni runs initdb instead when the section or its command is missing: a restore
    // the operator asked for would silently become an empty new cluster.
    let Some(section) = &raw.method_section else {
        diag.problem(
            &m.path,
            format!("{} but no section bootstrap.{name}", found(&m.value)),
            format!("initdb, or the name of a section bootstrap.{name} with a command"),
        );
        return None;
    };
    let Value::Object(map) = &section.value else {
        diag.problem(
            &section.path,
            found(&section.value),
            "a mapping with command and, optionally, no_params, keep_existing_recovery_conf, \
             recovery_conf and arguments for the command",
        );
        return None;
    };
    let before = diag.problems.len();
    let command = match map.get("command") {
        Some(v) => command(v, &section.path.key("command"), diag),
        None => {
            diag.missing(&section.path.key("command"), COMMAND_ALLOWED);
            None
        }
    };
    let flag = |key: &str, diag: &mut Diag| {
        map.get(key)
            .map_or(Some(false), |v| truth(v, &section.path.key(key), diag))
    };
    let no_params = flag("no_params", diag);
    let keep_existing_recovery_conf = flag("keep_existing_recovery_conf", diag);
    let recovery_conf = match map.get("recovery_conf") {
        None => Some(None),
        Some(v) => recovery_conf(v, &section.path.key("recovery_conf"), diag).map(Some),
    };
    for k in BOOTSTRAP_OWN_ARGS.iter().filter(|k| map.contains_key(**k)) {
        diag.problem(
            &section.path.key(k),
            format!("--{k} given in the method's section"),
            format!(
                "absent: pgkeel (as Patroni) passes --{k} of the cluster itself, and Patroni \
                 would drop this value silently"
            ),
        );
    }
    let args = arguments(
        map.iter().filter(|(k, _)| {
            !BOOTSTRAP_RESERVED.contains(&k.as_str()) && !BOOTSTRAP_OWN_ARGS.contains(&k.as_str())
        }),
        &section.path,
        diag,
    );
    if diag.problems.len() > before {
        return None;
    }
    Some(BootstrapMethod::Custom(CustomBootstrap {
        name,
        command: command?,
        no_params: no_params?,
        keep_existing_recovery_conf: keep_existing_recovery_conf?,
        recovery_conf: recovery_conf?,
        args: args?,
    }))
}

/// `bootstrap.post_bootstrap`, else `bootstrap.post_init` (Patroni's
/// `config.get('post_bootstrap') or config.get('post_init')`).
pub(crate) fn post_bootstrap(raw: &RawBootstrap, diag: &mut Diag) -> Option<Option<Vec<String>>> {
    let given = |n: &&Node| match &n.value {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        _ => true,
    };
    let Some(n) = raw
        .post_bootstrap
        .as_ref()
        .filter(given)
        .or(raw.post_init.as_ref().filter(given))
    else {
        return Some(None);
    };
    command(&n.value, &n.path, diag).map(Some)
}

/// `postgresql.create_replica_methods` (else Patroni's older `create_replica_method`), each
/// with its section; `[basebackup]` when neither lists anything.
pub(crate) fn replica_methods(raw: &RawPostgresql, diag: &mut Diag) -> Option<Vec<ReplicaMethod>> {
    let listed = |n: &&Node| match &n.value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        _ => true,
    };
    let Some(list) = raw
        .create_replica_methods
        .as_ref()
        .filter(listed)
        .or(raw.create_replica_method.as_ref().filter(listed))
    else {
        return Some(vec![ReplicaMethod::Basebackup]);
    };
    let Value::Array(items) = &list.value else {
        diag.problem(
            &list.path,
            found(&list.value),
            "a list of method names, e.g. [wal_e, basebackup]",
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = list.path.index(i);
        let name = match item {
            Value::String(s) if !s.trim().is_empty() => s.as_str(),
            other => {
                diag.problem(
                    &path,
                    found(other),
                    "a method name (basebackup, or a custom one)",
                );
                ok = false;
                continue;
            }
        };
        if name == "basebackup" {
            out.push(ReplicaMethod::Basebackup);
            continue;
        }
        if POSTGRESQL_KEYS.contains(&name) {
            diag.problem(
                &path,
                found(item),
                "basebackup, or the name of a custom method that is not also a key of the \
                 postgresql section",
            );
            ok = false;
            continue;
        }
        let section = raw
            .method_sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s);
        match custom_replica_method(name, section, diag) {
            Some(m) => out.push(ReplicaMethod::Command(m)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `postgresql.<name>`; without a section the method's name is the command (Patroni's
/// `method_config.pop('command', replica_method)`).
fn custom_replica_method(
    name: &str,
    section: Option<&Node>,
    diag: &mut Diag,
) -> Option<CustomReplicaMethod> {
    let mut m = CustomReplicaMethod {
        name: name.to_string(),
        command: vec![name.to_string()],
        no_params: false,
        no_leader: false,
        keep_data: false,
        params: Vec::new(),
    };
    let Some(section) = section else {
        return Some(m);
    };
    let map = match &section.value {
        Value::Null => return Some(m),
        Value::Object(map) => map,
        other => {
            diag.problem(
                &section.path,
                found(other),
                "a mapping with command and, optionally, no_leader, keep_data, no_params and \
                 arguments for the command",
            );
            return None;
        }
    };
    let before = diag.problems.len();
    if let Some(v) = map.get("command") {
        if let Some(c) = command(v, &section.path.key("command"), diag) {
            m.command = c;
        }
    }
    for (key, slot) in [
        ("no_params", &mut m.no_params),
        ("no_leader", &mut m.no_leader),
        ("keep_data", &mut m.keep_data),
    ] {
        if let Some(v) = map.get(key) {
            *slot = truth(v, &section.path.key(key), diag).unwrap_or(false);
        }
    }
    if let Some(params) = arguments(
        map.iter().filter(|(k, _)| k.as_str() != "command"),
        &section.path,
        diag,
    ) {
        m.params = params;
    }
    (diag.problems.len() == before).then_some(m)
}

/// A command line, split as `shlex.split` splits it.
fn command(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<Vec<String>> {
    let words = match v {
        Value::String(s) => crate::callbacks::split_command(s),
        _ => None,
    };
    match words {
        Some(w) if !w.is_empty() => Some(w),
        _ => {
            diag.problem(path, found(v), COMMAND_ALLOWED);
            None
        }
    }
}

/// `--key=value` arguments, values as Python's `str()` prints them (`True`, `1`, `None`).
fn arguments<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    section: &KeyPath,
    diag: &mut Diag,
) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        match python_str(v) {
            Some(s) => out.push((k.clone(), s)),
            None => {
                diag.problem(
                    &section.key(k),
                    found(v),
                    "a value for the command's argument --key=value: a string, number or boolean",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// How Python's `str()` prints a YAML scalar, which is how Patroni formats `--key=value`.
fn python_str(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("None".into()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A flag as Patroni reads it: Python's truthiness (`1`, `True`, any non-empty string are
/// true). A string that says false (`"false"`, `"no"`, `"off"`, `"0"`) is refused: Patroni
/// would read it as true, the opposite of what it says.
fn truth(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<bool> {
    match v {
        Value::Null => Some(false),
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) if s.is_empty() => Some(false),
        Value::String(s) if crate::flag::parse_bool_str(s.trim()) == Some(false) => {
            diag.problem(
                path,
                format!("{} (which Patroni reads as true)", found(v)),
                "true or false, unquoted",
            );
            None
        }
        Value::String(_) => Some(true),
        Value::Array(_) | Value::Object(_) => {
            diag.problem(path, found(v), "true or false");
            None
        }
    }
}

/// `recovery_conf`: recovery setting → value, as written to `postgresql.conf`.
fn recovery_conf(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = v else {
        diag.problem(
            path,
            found(v),
            "a mapping of recovery settings, e.g. restore_command: ..., recovery_target_action: promote",
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, val) in map {
        match pg_value(val) {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None => {
                diag.problem(&path.key(k), found(val), PG_VALUE_ALLOWED);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// The options of `postgresql.basebackup` that Patroni does not pass, because it passes
/// them itself or they would make a data directory PostgreSQL cannot start from.
const BASEBACKUP_NOT_ALLOWED: &[&str] = &[
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];

/// Refuses the `postgresql.basebackup` options Patroni drops (it logs an error when it
/// runs pg_basebackup and clones without them), naming each: a clone from another host,
/// as another user, or in tar format is not what the operator would get, so pgkeel does
/// not start on them. `options` is what `scalar::options` read from `v`, in the same order.
pub(crate) fn refuse_basebackup_options(
    v: &Value,
    path: &KeyPath,
    options: &[super::InitdbOption],
    diag: &mut Diag,
) {
    use super::InitdbOption;
    let paths: Vec<KeyPath> = match v {
        Value::Array(items) => (0..items.len()).map(|i| path.index(i)).collect(),
        Value::Object(m) => m.keys().map(|k| path.key(k)).collect(),
        _ => Vec::new(),
    };
    for (o, p) in options.iter().zip(paths) {
        let (name, value) = match o {
            InitdbOption::Flag(f) => (f.as_str(), None),
            InitdbOption::Value(k, v) => (k.as_str(), Some(v.as_str())),
        };
        if BASEBACKUP_NOT_ALLOWED.contains(&name) {
            diag.problem(
                &p,
                format!("{name} option for basebackup is not allowed"),
                "other options: pgkeel passes the data directory, WAL method and connection \
                 itself (Patroni drops this one with an error)",
            );
        } else if name == "compress" && value.is_some_and(|v| !v.starts_with("server")) {
            diag.problem(
                &p,
                "compress option for basebackup must use server-side compression",
                "server-side compression (e.g., server-gzip, server-zstd); Patroni drops this \
                 one with an error",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_python_prints_them() {
        assert_eq!(python_str(&Value::Bool(true)).as_deref(), Some("True"));
        assert_eq!(python_str(&Value::Null).as_deref(), Some("None"));
        assert_eq!(python_str(&serde_json::json!(1)).as_deref(), Some("1"));
        assert_eq!(
            python_str(&serde_json::json!("a b")).as_deref(),
            Some("a b")
        );
        assert_eq!(python_str(&serde_json::json!([1])), None);
    }

    #[test]
    fn flags_are_read_as_python_reads_them() {
        let mut d = Diag::default();
        let p = KeyPath::root().key("x");
        for (v, want) in [
            (serde_json::json!(1), Some(true)),
            (serde_json::json!(0), Some(false)),
            (serde_json::json!(true), Some(true)),
            (serde_json::json!(""), Some(false)),
            (serde_json::json!("yes"), Some(true)),
            (Value::Null, Some(false)),
        ] {
            assert_eq!(truth(&v, &p, &mut d), want, "{v}");
        }
        assert!(d.problems.is_empty());
        assert_eq!(truth(&serde_json::json!("false"), &p, &mut d), None);
        assert_eq!(d.problems.len(), 1);
    }
}
