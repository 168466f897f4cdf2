//! What a reload (SIGHUP, `POST /reload`) does with a re-read config file: the settings a
//! running agent can take on at once are taken (tags, local PostgreSQL parameters and
//! pg_hba, callbacks, the replica creation methods, the bootstrap section); any other change waits for a restart of the agent and is
//! named, so that an operator never believes a change applied that did not.

use super::Config;

/// The outcome of comparing the running config with the one re-read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadPlan {
    /// The config to run with from now on: the running one with what can change applied.
    pub config: Config,
    /// The keys that changed and are applied now.
    pub applied: Vec<&'static str>,
    /// The keys that changed but need an agent restart.
    pub restart_needed: Vec<&'static str>,
}

/// Compares `running` with `reread` (the file as read again, already validated).
pub fn plan_reload(running: &Config, reread: &Config) -> ReloadPlan {
    let mut config = running.clone();
    let mut applied = Vec::new();
    let mut restart_needed = Vec::new();
    macro_rules! live {
        ($key:literal, $($field:ident).+) => {
            if running.$($field).+ != reread.$($field).+ {
                config.$($field).+ = reread.$($field).+.clone();
                applied.push($key);
            }
        };
    }
    macro_rules! fixed {
        ($key:literal, $($field:ident).+) => {
            if running.$($field).+ != reread.$($field).+ {
                restart_needed.push($key);
            }
        };
    }
    live!("tags", tags);
    live!("postgresql.parameters", postgresql.parameters);
    live!("postgresql.pg_hba", postgresql.pg_hba);
    live!("postgresql.pg_ident", postgresql.pg_ident);
    live!("postgresql.use_pg_rewind", postgresql.use_pg_rewind);
    live!("postgresql.callbacks", postgresql.callbacks);
    live!(
        "postgresql.create_replica_methods",
        postgresql.create_replica_methods
    );
    live!("bootstrap", bootstrap);
    live!("log.level", log.level);
    fixed!("scope", scope);
    fixed!("namespace", namespace);
    fixed!("name", name);
    fixed!("restapi", restapi);
    // As in Patroni, whose etcd client is made once: a new connection (TLS, user, hosts)
    // waits for a restart. The certificate files are re-read by the agent (`pgkeel_agent::
    // reload`), which says when their contents changed.
    fixed!("etcd3.hosts", etcd.hosts);
    fixed!("etcd3.username/password", etcd.username);
    fixed!("etcd3.username/password", etcd.password);
    fixed!("etcd3 TLS (protocol, cacert, cert, key)", etcd.tls);
    fixed!("postgresql.listen", postgresql.listen_addresses);
    fixed!("postgresql.listen", postgresql.port);
    fixed!("postgresql.connect_address", postgresql.connect_address);
    fixed!("postgresql.data_dir", postgresql.data_dir);
    fixed!("postgresql.bin_dir", postgresql.bin_dir);
    fixed!("postgresql.pgpass", postgresql.pgpass);
    fixed!("postgresql.authentication.superuser", postgresql.superuser);
    fixed!(
        "postgresql.authentication.replication",
        postgresql.replication
    );
    // Their TLS files are checked at start; a change waits for the next one.
    fixed!("postgresql.authentication.rewind", postgresql.rewind);
    fixed!("postgresql.basebackup", postgresql.basebackup);
    restart_needed.dedup();
    ReloadPlan {
        config,
        applied,
        restart_needed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const BASE: &str = "scope: s\nname: n1\nrestapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}\netcd3: {hosts: 127.0.0.1:2379}\npostgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}\n";

    fn cfg(extra: &str) -> Config {
        load_str(&format!("{BASE}{extra}"), "t.yml").unwrap().config
    }

    #[test]
    fn tags_and_parameters_apply_now_and_the_rest_waits_for_a_restart() {
        let running = cfg("");
        let same = plan_reload(&running, &running);
        assert_eq!((same.applied.len(), same.restart_needed.len()), (0, 0));
        assert_eq!(same.config, running);

        let reread = cfg("tags: {nofailover: true}\n").clone();
        let mut reread = reread;
        reread
            .postgresql
            .parameters
            .insert("work_mem".into(), "9MB".into());
        reread.postgresql.port = 5433;
        reread.restapi.listen = "127.0.0.1:9009".parse().unwrap();
        let p = plan_reload(&running, &reread);
        assert_eq!(p.applied, ["tags", "postgresql.parameters"]);
        assert_eq!(p.restart_needed, ["restapi", "postgresql.listen"]);
        assert!(p.config.tags.nofailover);
        assert_eq!(p.config.postgresql.parameters["work_mem"], "9MB");
        assert_eq!(p.config.postgresql.port, 5432, "kept until a restart");
        assert_eq!(p.config.restapi, running.restapi);
    }

    #[test]
    fn an_etcd_tls_or_user_change_waits_for_a_restart_and_is_named() {
        let running = cfg("");
        let reread = load_str(
            &BASE.replace(
                "etcd3: {hosts: 127.0.0.1:2379}",
                "etcd3: {hosts: 127.0.0.1:2379, protocol: https, cacert: /ca.pem, username: u, password: p}",
            ),
            "t.yml",
        )
        .unwrap()
        .config;
        let p = plan_reload(&running, &reread);
        assert_eq!(
            p.restart_needed,
            [
                "etcd3.username/password",
                "etcd3 TLS (protocol, cacert, cert, key)"
            ]
        );
        assert_eq!(p.config.etcd, running.etcd, "kept until a restart");
    }
}
