//! The command lines of Patroni's ways to make a data directory, as `bootstrap.py` builds
//! them: the custom bootstrap method (`--scope=... --datadir=...` and the section's
//! arguments), the `post_bootstrap` script (the superuser's connection string as its last
//! argument) and the replica creation methods (`--scope --role=replica --datadir
//! --connstring` and the section's arguments), with the connection strings Patroni's
//! `format_dsn` writes. Pure: the runtime runs what these return.

use std::collections::BTreeMap;

use crate::action::Upstream;
use crate::action::{BootstrapPlan, CloneMethod, ClonePlan, CustomBootstrapPlan, RestoreRecovery};
use crate::config::{BootstrapMethod, Config, CustomBootstrap, CustomReplicaMethod, ReplicaMethod};

/// The database in the connection strings methods get (Patroni's `postgresql.database`
/// default, the one pgkeel publishes in `conn_url`).
const DBNAME: &str = "postgres";

/// What `Action::Bootstrap` runs for this config.
pub fn bootstrap_plan(cfg: &Config) -> BootstrapPlan {
    match &cfg.bootstrap.method {
        BootstrapMethod::Initdb => BootstrapPlan::Initdb,
        BootstrapMethod::Custom(m) => BootstrapPlan::Custom(custom_bootstrap(cfg, m)),
    }
}

fn custom_bootstrap(cfg: &Config, m: &CustomBootstrap) -> CustomBootstrapPlan {
    let mut argv = m.command.clone();
    if !m.no_params {
        argv.push(format!("--scope={}", cfg.scope));
        argv.push(format!("--datadir={}", cfg.postgresql.data_dir.display()));
    }
    argv.extend(m.args.iter().map(|(k, v)| format!("--{k}={v}")));
    // `recovery_conf` wins over `keep_existing_recovery_conf` (Patroni writes it when given).
    let recovery = match &m.recovery_conf {
        Some(conf) => {
            let mut settings = conf.clone();
            let standby = settings
                .remove("standby_mode")
                .is_some_and(|v| crate::flag::parse_bool_str(v.trim()) == Some(true));
            // PostgreSQL 12 has no pause_at_recovery_target; Patroni translates it.
            if let Some(pause) = settings.remove("pause_at_recovery_target") {
                if let Some(pause) = crate::flag::parse_bool_str(pause.trim()) {
                    settings
                        .entry("recovery_target_action".into())
                        .or_insert_with(|| if pause { "pause" } else { "promote" }.into());
                }
            }
            RestoreRecovery::Settings { settings, standby }
        }
        None if m.keep_existing_recovery_conf => RestoreRecovery::KeepExisting,
        None => RestoreRecovery::None,
    };
    let hot_standby_off = match &recovery {
        RestoreRecovery::KeepExisting => true,
        RestoreRecovery::Settings { settings, .. } => {
            settings.get("recovery_target_action").map(String::as_str) == Some("promote")
        }
        RestoreRecovery::None => false,
    };
    CustomBootstrapPlan {
        name: m.name.clone(),
        argv,
        command_len: m.command.len(),
        recovery,
        hot_standby_off,
    }
}

/// The `post_bootstrap` command with its last argument, the superuser's connection string
/// to the local server (no password: it is in the pgpass file `PGPASSFILE` names).
pub fn post_bootstrap_script(cfg: &Config) -> Option<Vec<String>> {
    let mut argv = cfg.bootstrap.post_bootstrap.clone()?;
    let pg = &cfg.postgresql;
    argv.push(dsn(
        &pg.superuser,
        &local_host(&pg.listen_addresses),
        pg.port,
    ));
    Some(argv)
}

/// The host of local connections, Patroni's `_get_tcp_local_address`: `localhost` when the
/// server listens on every address or on loopback, else the first listen address.
pub fn local_host(listen_addresses: &[String]) -> String {
    for la in listen_addresses {
        match la.trim().to_lowercase().as_str() {
            "*" | "localhost" | "0.0.0.0" | "127.0.0.1" => return "localhost".into(),
            _ => {}
        }
    }
    listen_addresses
        .first()
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|| "localhost".into())
}

/// The connection string methods get to reach `source` as the replication user.
pub fn replication_connstring(cfg: &Config, source: &Upstream) -> String {
    dsn(&cfg.postgresql.replication, &source.host, source.port)
}

/// Patroni's `format_dsn` of `user` reaching `host:port`: the database, the user, the
/// address and the user's TLS options, never the password (it is in the pgpass file).
fn dsn(user: &crate::config::PgUser, host: &str, port: u16) -> String {
    let port = port.to_string();
    let tls = user.conn.conninfo_pairs();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("dbname", DBNAME),
        ("user", &user.username),
        ("host", host),
        ("port", &port),
    ];
    pairs.extend(tls.iter().map(|(k, v)| (*k, v.as_str())));
    format_dsn(&pairs)
}

/// Patroni's `format_dsn`: `key=value` pairs, with `'`, `\` and spaces escaped by `\`.
fn format_dsn(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut escaped = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '\'' | '\\' | ' ') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            format!("{k}={escaped}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who the copy comes from, in Patroni's words (`from leader 'node1'`).
pub enum CloneFrom<'a> {
    /// The leader, or (`leader: false`) a replica tagged `clonefrom`.
    Member { source: &'a Upstream, leader: bool },
    /// Nobody: only the methods marked `no_leader` run.
    NoLeader,
}

/// The replica creation methods to run, in `create_replica_methods` order; `from_leader`
/// (`reinit --from-leader`) runs basebackup alone, as Patroni does.
pub fn clone_plan(cfg: &Config, from: CloneFrom<'_>, from_leader: bool) -> ClonePlan {
    let configured: Vec<&ReplicaMethod> = if from_leader {
        vec![&ReplicaMethod::Basebackup]
    } else {
        cfg.postgresql.create_replica_methods.iter().collect()
    };
    let (source, what, connstring) = match from {
        CloneFrom::Member { source, leader } => (
            Some(source.clone()),
            format!(
                "from {} '{}'",
                if leader { "leader" } else { "replica" },
                source.member
            ),
            replication_connstring(cfg, source),
        ),
        CloneFrom::NoLeader => (None, "(without leader)".to_string(), String::new()),
    };
    let methods = configured
        .into_iter()
        .filter(|m| source.is_some() || works_without_leader(m))
        .map(|m| match m {
            ReplicaMethod::Basebackup => CloneMethod::Basebackup {
                connstring: connstring.clone(),
            },
            ReplicaMethod::Command(c) => CloneMethod::Command {
                name: c.name.clone(),
                argv: replica_argv(cfg, c, &connstring),
                command_len: c.command.len(),
                keep_data: c.keep_data,
            },
        })
        .collect();
    ClonePlan {
        source,
        what,
        methods,
    }
}

/// A method that can make a replica with no member to copy from (Patroni's
/// `replica_method_can_work_without_replication_connection`).
pub fn works_without_leader(m: &ReplicaMethod) -> bool {
    matches!(m, ReplicaMethod::Command(c) if c.no_leader)
}

/// Whether any configured method can make a replica without a leader.
pub fn can_clone_without_leader(cfg: &Config) -> bool {
    cfg.postgresql
        .create_replica_methods
        .iter()
        .any(works_without_leader)
}

/// A custom method's command line, as `create_replica` builds it: every key of its section
/// (`no_leader`, `keep_data` and `no_params` included) followed by Patroni's `--scope`,
/// `--role=replica`, `--datadir` and `--connstring` (a key of the same name is replaced in
/// its place); with `no_params`, only the section's other keys.
fn replica_argv(cfg: &Config, m: &CustomReplicaMethod, connstring: &str) -> Vec<String> {
    let mut params: Vec<(String, String)> = m.params.clone();
    if m.no_params {
        params.retain(|(k, _)| !matches!(k.as_str(), "no_params" | "no_leader" | "keep_data"));
    } else {
        let ours: BTreeMap<&str, String> = [
            ("scope", cfg.scope.clone()),
            ("role", "replica".to_string()),
            ("datadir", cfg.postgresql.data_dir.display().to_string()),
            ("connstring", connstring.to_string()),
        ]
        .into_iter()
        .collect();
        for (k, v) in &mut params {
            if let Some(ours) = ours.get(k.as_str()) {
                v.clone_from(ours);
            }
        }
        for k in ["scope", "role", "datadir", "connstring"] {
            if !params.iter().any(|(p, _)| p == k) {
                params.push((k.to_string(), ours[k].clone()));
            }
        }
    }
    m.command
        .iter()
        .cloned()
        .chain(params.into_iter().map(|(k, v)| format!("--{k}={v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_escape_as_format_dsn() {
        assert_eq!(
            format_dsn(&[("user", "o'k"), ("host", "a b"), ("password", r"x\y")]),
            r"user=o\'k host=a\ b password=x\\y"
        );
    }

    #[test]
    fn connection_strings_carry_the_users_tls_options_in_format_dsn_order() {
        let mut cfg = crate::decide::tests::cfg("n2");
        let r = &mut cfg.postgresql.replication.conn;
        r.sslmode = Some(crate::config::SslMode::VerifyFull);
        r.sslrootcert = Some("/tls/ca crt".into());
        let up = Upstream {
            member: "n1".into(),
            host: "10.0.0.1".into(),
            port: 5432,
            slot: None,
        };
        assert_eq!(
            replication_connstring(&cfg, &up),
            r"dbname=postgres user=replicator host=10.0.0.1 port=5432 sslmode=verify-full sslrootcert=/tls/ca\ crt"
        );
    }

    #[test]
    fn the_local_host_is_localhost_when_listening_on_loopback_or_everywhere() {
        let h = |a: &[&str]| local_host(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(h(&["0.0.0.0"]), "localhost");
        assert_eq!(h(&["10.0.0.1", "127.0.0.1"]), "localhost");
        assert_eq!(h(&["*"]), "localhost");
        assert_eq!(h(&["10.0.0.1", "10.0.0.2"]), "10.0.0.1");
    }
}
