//! Patroni's `PATRONI_*` environment variables (`Config._build_environment_configuration`
//! in Patroni 4.1): the configuration they give, as the JSON tree a YAML file gives, merged
//! over the file's (the environment wins, as in Patroni). The variables are handed in by
//! the caller: this crate does no I/O.

use serde_json::{Map, Value};

use super::diag::{Diag, KeyPath};
use super::raw::yaml_to_json;

const PREFIX: &str = "PATRONI_";

/// The user-credential fields Patroni reads for `postgresql.authentication.*`.
const AUTH_FIELDS: &[&str] = &[
    "username",
    "password",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];

/// The suffixes of `PATRONI_<DCS>_<SUFFIX>` Patroni reads into the `<dcs>` section.
const DCS_SUFFIXES: &[&str] = &[
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "GROUP",
    "DATABASE",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
    "BOOTSTRAP_LABELS",
];

/// The configuration `vars` give (only `PATRONI_*` ones are read), in Patroni's layout.
pub(crate) fn from_environment(vars: &[(String, String)]) -> Value {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .cloned()
        .collect();
    // Patroni's older names for the log settings, when the new ones are not set.
    for (new, old) in [
        ("LOG_LEVEL", "LOGLEVEL"),
        ("LOG_FORMAT", "LOGFORMAT"),
        ("LOG_DATEFORMAT", "LOG_DATEFMT"),
    ] {
        let new_set = env.iter().any(|(k, _)| k == &format!("{PREFIX}{new}"));
        if let Some(v) = pop(&mut env, old) {
            if !new_set {
                env.push((format!("{PREFIX}{new}"), v));
            }
        }
    }
    let mut ret = Map::new();
    for key in ["name", "namespace", "scope"] {
        if let Some(v) = pop(&mut env, key) {
            ret.insert(key.into(), Value::String(v));
        }
    }
    let sections: &[(&str, &[&str])] = &[
        (
            "restapi",
            &[
                "listen",
                "connect_address",
                "certfile",
                "keyfile",
                "keyfile_password",
                "cafile",
                "ciphers",
                "verify_client",
                "http_extra_headers",
                "https_extra_headers",
                "allowlist",
                "allowlist_include_members",
                "request_queue_size",
                "server_tokens",
            ],
        ),
        (
            "ctl",
            &[
                "insecure",
                "cacert",
                "certfile",
                "keyfile",
                "keyfile_password",
            ],
        ),
        (
            "postgresql",
            &[
                "listen",
                "connect_address",
                "proxy_address",
                "config_dir",
                "data_dir",
                "pgpass",
                "bin_dir",
            ],
        ),
        (
            "log",
            &[
                "type",
                "level",
                "traceback_level",
                "format",
                "dateformat",
                "static_fields",
                "max_queue_size",
                "dir",
                "mode",
                "file_size",
                "file_num",
                "loggers",
                "deduplicate_heartbeat_logs",
            ],
        ),
    ];
    for (section, keys) in sections {
        for key in *keys {
            if let Some(v) = pop(&mut env, &format!("{section}_{key}")) {
                let value = typed(section, key, v);
                section_of(&mut ret, section).insert((*key).into(), value);
            }
        }
    }
    for binary in [
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "postgres",
        "pg_isready",
        "pg_rewind",
    ] {
        if let Some(v) = pop(&mut env, &format!("postgresql_bin_{binary}")) {
            let pg = section_of(&mut ret, "postgresql");
            if !pg.get("bin_name").is_some_and(Value::is_object) {
                pg.insert("bin_name".into(), Value::Object(Map::new()));
            }
            if let Some(Value::Object(names)) = pg.get_mut("bin_name") {
                names.insert(binary.into(), Value::String(v));
            }
        }
    }
    for section in ["ctl", "restapi"] {
        let auth = credentials(&mut env, section, &AUTH_FIELDS[..2]);
        if !auth.is_empty() {
            section_of(&mut ret, section).insert("authentication".into(), Value::Object(auth));
        }
    }
    let mut authentication = Map::new();
    for user in ["replication", "superuser", "rewind"] {
        let entry = credentials(&mut env, user, AUTH_FIELDS);
        if !entry.is_empty() {
            authentication.insert(user.into(), Value::Object(entry));
        }
    }
    if !authentication.is_empty() {
        section_of(&mut ret, "postgresql").insert("authentication".into(), authentication.into());
    }
    // PATRONI_<DCS>_<SUFFIX>: what is left with a known suffix.
    for (k, v) in std::mem::take(&mut env) {
        let rest = &k[PREFIX.len()..];
        let Some((name, suffix)) = rest.split_once('_') else {
            env.push((k, v));
            continue;
        };
        if name.is_empty() || !DCS_SUFFIXES.contains(&suffix) {
            env.push((k, v));
            continue;
        }
        let value = match suffix {
            "PORT" => int_or_text(v),
            "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" => list(&v),
            "LABELS" | "SET_ACLS" | "AUTH_DATA" | "BOOTSTRAP_LABELS" => dict(&v),
            "USE_PROXIES" | "REGISTER_SERVICE" | "USE_ENDPOINTS" | "BYPASS_API_SERVICE"
            | "VERIFY" => boolean(v),
            _ => Value::String(v),
        };
        if !value.is_null() {
            section_of(&mut ret, &name.to_ascii_lowercase())
                .insert(suffix.to_ascii_lowercase(), value);
        }
    }
    for dcs in ["etcd", "etcd3"] {
        if ret.contains_key(dcs) {
            let auth = credentials(&mut env, dcs, &AUTH_FIELDS[..2]);
            section_of(&mut ret, dcs).extend(auth);
        }
    }
    Value::Object(ret)
}

/// Patroni's `patch_config`: the environment's values over the file's, mappings merged.
pub(crate) fn merge(file: &mut Value, env: Value) {
    let Value::Object(env) = env else { return };
    if env.is_empty() {
        return;
    }
    if file.is_null() {
        *file = Value::Object(Map::new());
    }
    // A file that is not a mapping stays as it is: its own error says so.
    let Value::Object(target) = file else { return };
    for (k, v) in env {
        match (target.get_mut(&k), v) {
            (Some(existing @ Value::Object(_)), v @ Value::Object(_)) => merge(existing, v),
            (_, v) => {
                target.insert(k, v);
            }
        }
    }
}

fn pop(env: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let key = format!("{PREFIX}{}", name.to_ascii_uppercase());
    let i = env.iter().position(|(k, _)| *k == key)?;
    let (_, v) = env.remove(i);
    // An empty variable is as good as unset (Patroni: `if value:`).
    (!v.is_empty()).then_some(v)
}

fn section_of<'a>(ret: &'a mut Map<String, Value>, section: &str) -> &'a mut Map<String, Value> {
    let entry = ret
        .entry(section.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

fn credentials(
    env: &mut Vec<(String, String)>,
    prefix: &str,
    fields: &[&str],
) -> Map<String, Value> {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = pop(env, &format!("{prefix}_{f}")) {
            out.insert((*f).into(), Value::String(v));
        }
    }
    out
}

/// The types Patroni gives some settings read from the environment.
fn typed(section: &str, key: &str, v: String) -> Value {
    match (section, key) {
        ("restapi", "allowlist_include_members")
        | ("ctl", "insecure")
        | ("log", "deduplicate_heartbeat_logs") => boolean(v),
        ("restapi", "request_queue_size")
        | ("log", "max_queue_size" | "file_size" | "file_num" | "mode") => int_or_text(v),
        ("restapi", "allowlist") => list(&v),
        ("restapi", "http_extra_headers" | "https_extra_headers")
        | ("log", "static_fields" | "loggers") => dict(&v),
        ("log", "format") if !v.contains("%(") => list(&v),
        _ => Value::String(v),
    }
}

/// Patroni's `parse_bool`; a value it does not read stays text, for the checks to refuse.
fn boolean(v: String) -> Value {
    crate::flag::parse_bool_str(&v).map_or(Value::String(v), Value::Bool)
}

fn int_or_text(v: String) -> Value {
    v.trim()
        .parse::<i64>()
        .map_or(Value::String(v), Value::from)
}

/// Patroni's `_parse_list`: YAML, bracketed unless it already is a list.
fn list(v: &str) -> Value {
    let text = if v.trim().starts_with('-') || v.contains('[') {
        v.to_string()
    } else {
        format!("[{v}]")
    };
    yaml(&text).unwrap_or_else(|| Value::String(v.to_string()))
}

/// Patroni's `_parse_dict`: YAML, braced unless it already is a mapping.
fn dict(v: &str) -> Value {
    let text = if v.trim().starts_with('{') {
        v.to_string()
    } else {
        format!("{{{v}}}")
    };
    yaml(&text).unwrap_or_else(|| Value::String(v.to_string()))
}

fn yaml(text: &str) -> Option<Value> {
    let doc: yaml_serde::Value = yaml_serde::from_str(text).ok()?;
    let mut scratch = Diag::default();
    Some(yaml_to_json(&doc, &KeyPath::root(), &mut scratch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_acceptance_harness_variables_build_patroni_sections() {
        let env = from_environment(&vars(&[
            ("PATRONI_ETCD3_HOST", "127.0.0.1:2379"),
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.1:2379','10.0.0.2:2379'"),
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_USERNAME", "root"),
            ("PATRONI_RESTAPI_USERNAME", "admin"),
            ("PATRONI_RESTAPI_PASSWORD", "s3cret"),
            ("PATRONI_RESTAPI_CERTFILE", "/x/cert.pem"),
            ("PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "true"),
            ("PATRONI_CTL_INSECURE", "on"),
            ("PATRONI_SUPERUSER_PASSWORD", "zalando"),
            ("PATRONI_REPLICATION_SSLMODE", "verify-ca"),
            ("PATRONI_NAME", "postgres-0"),
            ("PATRONI_LOGLEVEL", "DEBUG"),
            ("PATRONI_POSTGRESQL_BIN_PG_CTL", "/opt/pg_ctl"),
            ("PATRONI_UNRELATED_THING", "x"),
            ("PATRONI_SCOPE", ""),
            ("HOME", "/root"),
        ]));
        assert_eq!(
            env,
            json!({
                "name": "postgres-0",
                "etcd3": {
                    "host": "127.0.0.1:2379",
                    "hosts": ["10.0.0.1:2379", "10.0.0.2:2379"],
                    "protocol": "https",
                    "username": "root",
                },
                "restapi": {
                    "certfile": "/x/cert.pem",
                    "allowlist_include_members": true,
                    "authentication": {"username": "admin", "password": "s3cret"},
                },
                "ctl": {"insecure": true},
                "log": {"level": "DEBUG"},
                "postgresql": {
                    "bin_name": {"pg_ctl": "/opt/pg_ctl"},
                    "authentication": {
                        "superuser": {"password": "zalando"},
                        "replication": {"sslmode": "verify-ca"},
                    },
                },
            })
        );
    }

    #[test]
    fn etcd_tls_and_user_variables_fill_the_etcd3_section() {
        let env = from_environment(&vars(&[
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_CACERT", "/etc/etcd/ca.pem"),
            ("PATRONI_ETCD3_CERT", "/etc/etcd/client.pem"),
            ("PATRONI_ETCD3_KEY", "/etc/etcd/client.key"),
            ("PATRONI_ETCD3_USERNAME", "patroni"),
            ("PATRONI_ETCD3_PASSWORD", "s3cret"),
        ]));
        assert_eq!(
            env,
            json!({"etcd3": {
                "protocol": "https",
                "cacert": "/etc/etcd/ca.pem",
                "cert": "/etc/etcd/client.pem",
                "key": "/etc/etcd/client.key",
                "username": "patroni",
                "password": "s3cret",
            }})
        );
        // As in Patroni, the user is read only for a section another variable made.
        let env = from_environment(&vars(&[
            ("PATRONI_ETCD3_USERNAME", "patroni"),
            ("PATRONI_ETCD3_PASSWORD", "s3cret"),
        ]));
        assert_eq!(env, json!({}));
    }

    #[test]
    fn the_environment_wins_over_the_file_and_mappings_merge() {
        let mut file = json!({
            "scope": "batman",
            "etcd3": {"hosts": ["a:1"]},
            "postgresql": {"authentication": {"superuser": {"username": "postgres", "password": "x"}}},
        });
        merge(
            &mut file,
            from_environment(&vars(&[
                ("PATRONI_ETCD3_HOSTS", "b:2"),
                ("PATRONI_SUPERUSER_PASSWORD", "y"),
            ])),
        );
        assert_eq!(
            file,
            json!({
                "scope": "batman",
                "etcd3": {"hosts": ["b:2"]},
                "postgresql": {"authentication": {"superuser": {"username": "postgres", "password": "y"}}},
            })
        );
    }
}
