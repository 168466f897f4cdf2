//! The seeds' Patroni files (addresses moved to loopback) and pgkeel's example load unchanged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgkeel_core::config::{load_file, HostPort, InitdbOption, Loaded};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(path: &Path) -> Loaded {
    match load_file(path) {
        Ok(l) => l,
        Err(e) => panic!("{} did not load:\n{e}", path.display()),
    }
}

fn hp(host: &str, port: u16) -> HostPort {
    HostPort {
        host: host.into(),
        port,
    }
}

fn flag(f: &str) -> InitdbOption {
    InitdbOption::Flag(f.into())
}

fn opt(k: &str, v: &str) -> InitdbOption {
    InitdbOption::Value(k.into(), v.into())
}

fn has_warning(l: &Loaded, needle: &str) -> bool {
    l.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn seed002_etcd_v2_section_with_basebackup_map() {
    let l = load(&fixture("seed002_patroni.yml"));
    let c = &l.config;
    assert_eq!(c.scope, "pgsql");
    assert_eq!(
        c.namespace, "/service",
        "trailing slash of /service/ removed"
    );
    assert_eq!(c.dcs_prefix(), "/service/pgsql/");
    assert_eq!(c.name, "pg1");
    assert_eq!(
        c.restapi.listen,
        "0.0.0.0:8008".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.restapi.connect_address, hp("127.0.0.1", 8008));
    assert_eq!(c.restapi.api_url(), "http://127.0.0.1:8008/patroni");
    assert_eq!(c.restapi.authentication, None);
    assert_eq!(c.etcd.hosts, vec![hp("127.0.0.1", 2379)]);
    assert!(
        has_warning(&l, "etcd at line 9: pgkeel speaks only the etcd v3 API"),
        "{:?}",
        l.warnings
    );

    let dcs = &c.bootstrap.dcs;
    assert_eq!(dcs.ttl, Duration::from_secs(30));
    assert_eq!(dcs.loop_wait, Duration::from_secs(10));
    assert_eq!(dcs.retry_timeout, Duration::from_secs(10));
    assert_eq!(dcs.maximum_lag_on_failover, 1_048_576);
    assert!(dcs.use_pg_rewind && dcs.use_slots);
    assert_eq!(dcs.parameters["port"], "5432");
    assert_eq!(dcs.parameters["hot_standby"], "on");
    // Translated as Patroni does for PostgreSQL 13+: 100 segments of 16 MB.
    assert_eq!(dcs.parameters.get("wal_keep_segments"), None);
    assert_eq!(dcs.parameters["wal_keep_size"], "1600MB");
    assert_eq!(dcs.parameters["listen_addresses"], "0.0.0.0");
    assert_eq!(dcs.pg_hba.len(), 3);
    assert_eq!(dcs.pg_hba[1], "host replication repl 0.0.0.0/0 trust");
    // Patroni keys pgkeel does not read are kept for /config.
    assert_eq!(dcs.json["primary_start_timeout"], 300);
    assert_eq!(dcs.json["synchronous_mode"], false);
    assert_eq!(dcs.json["ttl"], 30);

    assert_eq!(
        c.bootstrap.initdb,
        vec![opt("encoding", "UTF-8"), flag("data-checksums")]
    );
    let args: Vec<String> = c.bootstrap.initdb.iter().map(|o| o.to_arg()).collect();
    assert_eq!(args, ["--encoding=UTF-8", "--data-checksums"]);
    assert!(c.bootstrap.pg_hba.is_empty());

    let pg = &c.postgresql;
    assert_eq!(pg.listen_addresses, ["0.0.0.0"]);
    assert_eq!(pg.port, 5432);
    assert_eq!(pg.connect_address, hp("127.0.0.1", 5432));
    assert_eq!(pg.data_dir, PathBuf::from("/var/lib/postgresql/15/main"));
    assert_eq!(
        pg.bin_dir,
        Some(PathBuf::from("/usr/lib/postgresql/15/bin"))
    );
    assert_eq!(
        pg.pgpass,
        PathBuf::from("/var/lib/postgresql/15/main.pgpass")
    );
    assert_eq!(pg.superuser.username, "postgres");
    assert_eq!(pg.superuser.password.as_deref(), Some("postgres"));
    assert_eq!(pg.replication.username, "repl");
    assert_eq!(pg.replication.password.as_deref(), Some("123456"));
    assert_eq!(
        pg.basebackup,
        vec![opt("checkpoint", "fast"), opt("max-rate", "100M")]
    );

    assert!(!c.tags.nofailover && !c.tags.noloadbalance && !c.tags.clonefrom && !c.tags.nosync);
    assert_eq!(c.tags.failover_priority, 1);
    assert!(c.tags.other.is_empty());
}

#[test]
fn seed003_etcd3_hosts_users_and_local_parameters() {
    let l = load(&fixture("seed003_patroni.yml"));
    let c = &l.config;
    assert_eq!(c.scope, "pg-cluster");
    assert_eq!(c.namespace, "/service", "Patroni's default");
    assert_eq!(c.name, "node1");
    assert_eq!(c.etcd.hosts, vec![hp("127.0.0.1", 2379); 3]);
    assert_eq!(c.etcd.username, None);

    let dcs = &c.bootstrap.dcs;
    assert_eq!(dcs.ttl, Duration::from_secs(30));
    assert_eq!(dcs.loop_wait, Duration::from_secs(10));
    assert_eq!(dcs.retry_timeout, Duration::from_secs(10));
    assert_eq!(dcs.parameters["max_connections"], "200");
    assert_eq!(dcs.parameters["wal_keep_size"], "1GB");
    assert!(dcs.pg_hba.is_empty());

    assert_eq!(
        c.bootstrap.initdb,
        vec![opt("encoding", "UTF8"), flag("data-checksums")]
    );
    assert!(c.bootstrap.initdb.contains(&flag("data-checksums")));
    assert_eq!(
        c.bootstrap.pg_hba,
        [
            "host replication replicator 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 scram-sha-256"
        ]
    );
    assert!(
        has_warning(&l, "bootstrap.users at line 41: ignored"),
        "{:?}",
        l.warnings
    );

    let pg = &c.postgresql;
    assert_eq!(pg.data_dir, PathBuf::from("/var/lib/pgsql/16/data"));
    assert_eq!(pg.bin_dir, Some(PathBuf::from("/usr/pgsql-16/bin")));
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/pgpass"));
    assert_eq!(pg.replication.username, "replicator");
    assert_eq!(pg.superuser.password.as_deref(), Some("postgres_password"));
    assert_eq!(pg.parameters["shared_buffers"], "4GB");
    assert_eq!(
        pg.parameters["unix_socket_directories"],
        "/var/run/postgresql"
    );
    assert!(pg.basebackup.is_empty());
    assert!(c.tags.may_promote());
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}

#[test]
fn example_config_loads_without_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/example.yml");
    let l = load(&path);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.bootstrap.dcs.ttl, Duration::from_secs(10));
    assert_eq!(c.bootstrap.dcs.loop_wait, Duration::from_secs(2));
    assert_eq!(c.bootstrap.dcs.retry_timeout, Duration::from_secs(3));
    assert!(c.etcd.hosts.iter().all(|h| h.host == "127.0.0.1"));
    assert_eq!(c.restapi.connect_address.host, "127.0.0.1");
    assert_eq!(c.postgresql.connect_address.host, "127.0.0.1");
}
