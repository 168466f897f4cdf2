//! `bootstrap.method` and its section, `bootstrap.post_bootstrap` / `post_init`,
//! `postgresql.create_replica_methods` and their sections, `postgresql.basebackup`: read as
//! Patroni reads them; what Patroni would misread is refused, naming the key and its line.

use pgkeel_core::config::{
    load_str, BootstrapMethod, ConfigError, CustomReplicaMethod, InitdbOption, Loaded,
    ReplicaMethod,
};

const BASE: &str = "\
scope: batman
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
etcd3:
  hosts: 127.0.0.1:2379
bootstrap:
  dcs:
    ttl: 10
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/postgresql/15/main
";

/// BASE with `bootstrap` and `postgresql` lines added (each already indented by two).
fn with(bootstrap: &str, postgresql: &str) -> String {
    BASE.replace("  dcs:\n", &format!("{bootstrap}  dcs:\n"))
        .replace(
            "  listen: 127.0.0.1:5432\n",
            &format!("{postgresql}  listen: 127.0.0.1:5432\n"),
        )
}

fn ok(text: &str) -> Loaded {
    load_str(text, "test.yml").unwrap_or_else(|e| panic!("expected to load:\n{e}\n---\n{text}"))
}

fn err(text: &str) -> ConfigError {
    match load_str(text, "test.yml") {
        Ok(l) => panic!("expected an error, loaded {:?}", l.config),
        Err(e) => e,
    }
}

fn mentions(e: &ConfigError, parts: &[&str]) {
    for p in parts {
        assert!(e.message.contains(p), "{p:?} not in:\n{}", e.message);
    }
}

#[test]
fn without_method_the_cluster_is_made_by_initdb_and_replicas_by_basebackup() {
    let l = ok(BASE);
    assert_eq!(l.config.bootstrap.method, BootstrapMethod::Initdb);
    assert_eq!(l.config.bootstrap.post_bootstrap, None);
    assert_eq!(
        l.config.postgresql.create_replica_methods,
        vec![ReplicaMethod::Basebackup]
    );
    let l = ok(&with(
        "  method: initdb\n",
        "  create_replica_methods: []\n",
    ));
    assert_eq!(l.config.bootstrap.method, BootstrapMethod::Initdb);
    assert_eq!(
        l.config.postgresql.create_replica_methods,
        vec![ReplicaMethod::Basebackup]
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn a_custom_bootstrap_method_is_read_with_its_arguments() {
    let l = ok(&with(
        "  method: barman\n  barman:\n    keep_existing_recovery_conf: true\n    command: patroni_barman --api-url https://barman-host:7480 recover\n    barman-server: my_server\n    retries: 3\n    verbose: true\n    recovery_conf:\n      recovery_target_action: promote\n      recovery_target_timeline: latest\n      restore_command: cp /a/%f %p\n",
        "",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let BootstrapMethod::Custom(m) = &l.config.bootstrap.method else {
        panic!("{:?}", l.config.bootstrap.method)
    };
    assert_eq!(m.name, "barman");
    assert_eq!(
        m.command,
        [
            "patroni_barman",
            "--api-url",
            "https://barman-host:7480",
            "recover"
        ]
    );
    assert!(m.keep_existing_recovery_conf && !m.no_params);
    // Python's str() of each value.
    assert_eq!(
        m.args,
        [
            ("barman-server".to_string(), "my_server".to_string()),
            ("retries".into(), "3".into()),
            ("verbose".into(), "True".into()),
        ]
    );
    let rc = m.recovery_conf.as_ref().unwrap();
    assert_eq!(rc["restore_command"], "cp /a/%f %p");
    assert_eq!(rc.len(), 3);
}

/// `scope` and `datadir` are arguments Patroni passes itself and drops from the section
/// silently: the command would not get the value written, so it is refused.
#[test]
fn scope_or_datadir_in_a_bootstrap_method_section_is_refused() {
    for key in ["scope", "datadir"] {
        let e = err(&with(
            &format!("  method: barman\n  barman:\n    command: restore\n    {key}: other\n"),
            "",
        ));
        mentions(
            &e,
            &[
                &format!("bootstrap.barman.{key}"),
                &format!("passes --{key} of the cluster itself"),
            ],
        );
    }
}

#[test]
fn a_method_without_its_section_or_command_is_refused_not_replaced_by_initdb() {
    // Patroni would run initdb instead: an empty new cluster where a restore was asked for.
    let e = err(&with("  method: restore\n", ""));
    assert_eq!(e.key.as_deref(), Some("bootstrap.method"));
    assert_eq!(e.line, Some(9));
    mentions(
        &e,
        &["found the string \"restore\" but no section bootstrap.restore"],
    );
    let e = err(&with(
        "  method: restore\n  restore:\n    keep_data: true\n",
        "",
    ));
    assert_eq!(e.key.as_deref(), Some("bootstrap.restore.command"));
    mentions(&e, &["missing", "a command line"]);
    let e = err(&with("  method: [a]\n", ""));
    mentions(&e, &["bootstrap.method", "found a list"]);
    let e = err(&with("  method: dcs\n", ""));
    mentions(
        &e,
        &[
            "bootstrap.method",
            "other than a key of the bootstrap section",
        ],
    );
}

#[test]
fn bad_values_in_a_bootstrap_method_name_the_key() {
    let e = err(&with(
        "  method: restore\n  restore:\n    command: \"echo 'unclosed\"\n    no_params: \"false\"\n    recovery_conf: [a]\n    extra:\n      nested: 1\n",
        "",
    ));
    for key in [
        "bootstrap.restore.command",
        "bootstrap.restore.no_params",
        "bootstrap.restore.recovery_conf",
        "bootstrap.restore.extra",
    ] {
        assert!(e.message.contains(key), "{key} not in:\n{}", e.message);
    }
    mentions(
        &e,
        &[
            "which Patroni reads as true",
            "a mapping of recovery settings",
        ],
    );
    let e = err(&with("  method: restore\n  restore: ./restore.sh\n", ""));
    assert_eq!(e.key.as_deref(), Some("bootstrap.restore"));
}

#[test]
fn post_bootstrap_or_its_older_name_post_init() {
    let l = ok(&with("  post_bootstrap: psql -w -c \"SELECT 1\"\n", ""));
    assert_eq!(
        l.config.bootstrap.post_bootstrap.as_deref(),
        Some(
            &[
                "psql".to_string(),
                "-w".into(),
                "-c".into(),
                "SELECT 1".into()
            ][..]
        )
    );
    let l = ok(&with("  post_init: /usr/local/bin/init.sh\n", ""));
    assert_eq!(
        l.config.bootstrap.post_bootstrap,
        Some(vec!["/usr/local/bin/init.sh".to_string()])
    );
    // `post_bootstrap or post_init`: an empty post_bootstrap gives way.
    let l = ok(&with("  post_bootstrap: ''\n  post_init: b.sh\n", ""));
    assert_eq!(
        l.config.bootstrap.post_bootstrap,
        Some(vec!["b.sh".to_string()])
    );
    let e = err(&with("  post_bootstrap: 5\n", ""));
    assert_eq!(e.key.as_deref(), Some("bootstrap.post_bootstrap"));
    assert_eq!(e.line, Some(9));
    mentions(&e, &["found the number 5", "a command line"]);
}

#[test]
fn replica_methods_are_read_in_order_with_their_sections() {
    let l = ok(&with(
        "",
        "  create_replica_methods:\n    - wal_e\n    - basebackup\n    - bare\n  wal_e:\n    command: patroni_wale_restore\n    no_leader: 1\n    envdir: /etc/wal-e\n    use_iam: 1\n  basebackup:\n    max-rate: '100M'\n",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let pg = &l.config.postgresql;
    assert_eq!(
        pg.create_replica_methods,
        vec![
            ReplicaMethod::Command(CustomReplicaMethod {
                name: "wal_e".into(),
                command: vec!["patroni_wale_restore".into()],
                no_params: false,
                no_leader: true,
                keep_data: false,
                params: vec![
                    ("envdir".into(), "/etc/wal-e".into()),
                    ("no_leader".into(), "1".into()),
                    ("use_iam".into(), "1".into()),
                ],
            }),
            ReplicaMethod::Basebackup,
            // No section: its name is the command.
            ReplicaMethod::Command(CustomReplicaMethod {
                name: "bare".into(),
                command: vec!["bare".into()],
                no_params: false,
                no_leader: false,
                keep_data: false,
                params: vec![],
            }),
        ]
    );
    assert_eq!(
        pg.basebackup,
        vec![InitdbOption::Value("max-rate".into(), "100M".into())]
    );
    // Patroni's older key.
    let l = ok(&with("", "  create_replica_method:\n    - bare\n"));
    assert_eq!(l.config.postgresql.create_replica_methods[0].name(), "bare");
}

#[test]
fn bad_replica_methods_name_the_key() {
    let e = err(&with("", "  create_replica_methods: wal_e\n"));
    assert_eq!(e.key.as_deref(), Some("postgresql.create_replica_methods"));
    assert_eq!(e.line, Some(12));
    mentions(
        &e,
        &["found the string \"wal_e\"", "a list of method names"],
    );
    let e = err(&with("", "  create_replica_methods:\n    - 5\n"));
    assert_eq!(
        e.key.as_deref(),
        Some("postgresql.create_replica_methods[0]")
    );
    assert_eq!(e.line, Some(13));
    let e = err(&with("", "  create_replica_methods: [parameters]\n"));
    mentions(
        &e,
        &[
            "postgresql.create_replica_methods[0]",
            "not also a key of the postgresql section",
        ],
    );
    let e = err(&with(
        "",
        "  create_replica_methods: [wal_e]\n  wal_e:\n    command: [a, b]\n    keep_data: 'no'\n    no_leader: [1]\n",
    ));
    for key in [
        "postgresql.wal_e.command",
        "postgresql.wal_e.keep_data",
        "postgresql.wal_e.no_leader",
    ] {
        assert!(e.message.contains(key), "{key} not in:\n{}", e.message);
    }
    let e = err(&with("", "  create_replica_methods: [wal_e]\n  wal_e: 1\n"));
    assert_eq!(e.key.as_deref(), Some("postgresql.wal_e"));
}

/// Patroni drops these options with an error and clones without them; pgkeel refuses to
/// start on them, naming each, since the clone would not be what the operator asked for.
#[test]
fn basebackup_options_patroni_does_not_pass_are_refused() {
    let l = ok(&with(
        "",
        "  basebackup:\n    - verbose\n    - compress: server-gzip\n    - checkpoint: fast\n    - max-rate: 1M\n",
    ));
    let args: Vec<String> = l
        .config
        .postgresql
        .basebackup
        .iter()
        .map(|o| o.to_arg())
        .collect();
    assert_eq!(
        args,
        [
            "--verbose",
            "--compress=server-gzip",
            "--checkpoint=fast",
            "--max-rate=1M"
        ]
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let e = err(&with(
        "",
        "  basebackup:\n    - verbose\n    - pgdata: /x\n    - format: tar\n    - compress: gzip\n",
    ));
    mentions(
        &e,
        &[
            "at line 14: postgresql.basebackup[1]: pgdata option for basebackup is not allowed",
            "at line 15: postgresql.basebackup[2]: format option for basebackup is not allowed",
            "at line 16: postgresql.basebackup[3]: compress option for basebackup must use \
             server-side compression",
        ],
    );
    let e = err(&with("", "  basebackup:\n    host: x\n    max-rate: 1M\n"));
    mentions(
        &e,
        &[
            "postgresql.basebackup.host",
            "host option for basebackup is not allowed",
        ],
    );
    let l = ok(&with("", "  basebackup:\n"));
    assert!(l.config.postgresql.basebackup.is_empty());
}
