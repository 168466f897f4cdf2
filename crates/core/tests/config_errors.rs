//! Every way a config can be refused or warned about: the message names the key, its line,
//! what was found and what is allowed.

use std::time::Duration;

use pgkeel_core::config::{load_str, ConfigError, Loaded};

/// A valid file; each test changes one thing. Line numbers below refer to this text.
const BASE: &str = "\
scope: batman
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
etcd3:
  hosts:
    - 127.0.0.1:2379
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 3
  initdb:
    - data-checksums
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/postgresql/15/main
tags:
  nofailover: false
";

/// BASE with `from` replaced by `to` (which must change the text).
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

fn ok(text: &str) -> Loaded {
    match load_str(text, "test.yml") {
        Ok(l) => l,
        Err(e) => panic!("expected to load, got:\n{e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match load_str(text, "test.yml") {
        Ok(l) => panic!("expected an error, loaded {:?}", l.config),
        Err(e) => e,
    }
}

fn assert_mentions(e: &ConfigError, parts: &[&str]) {
    for p in parts {
        assert!(e.message.contains(p), "{p:?} not in:\n{}", e.message);
    }
}

fn warned(l: &Loaded, needle: &str) -> bool {
    l.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn the_base_file_loads_without_warnings() {
    let l = ok(BASE);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.namespace, "/service");
}

// ---- line numbers (the three the brief requires, and parse errors) ----

#[test]
fn bad_ttl_type_names_key_line_found_and_allowed() {
    let e = err(&with("ttl: 10", "ttl: 30s"));
    assert_eq!(e.key.as_deref(), Some("bootstrap.dcs.ttl"));
    assert_eq!(e.line, Some(11));
    assert_mentions(
        &e,
        &[
            "test.yml, at line 11: bootstrap.dcs.ttl",
            "found the string \"30s\"",
            "a number of seconds",
        ],
    );
}

#[test]
fn missing_name_points_at_the_top_level_mapping() {
    let e = err(&with("name: node1\n", ""));
    assert_eq!(e.key.as_deref(), Some("name"));
    assert_eq!(e.line, Some(1));
    assert_mentions(
        &e,
        &[
            "in the top-level mapping at line 1: name: missing",
            "unique",
        ],
    );
}

#[test]
fn empty_name_is_refused() {
    let e = err(&with("name: node1", "name: ''"));
    assert_eq!(e.line, Some(2));
    assert_mentions(&e, &["name: found an empty string"]);
}

#[test]
fn bad_listen_address_names_the_host() {
    let e = err(&with(
        "listen: 127.0.0.1:8008",
        "listen: db1.example.com:8008",
    ));
    assert_eq!(e.key.as_deref(), Some("restapi.listen"));
    assert_eq!(e.line, Some(4));
    assert_mentions(&e, &["\"db1.example.com\" is not an IP address", "ip:port"]);
}

#[test]
fn listen_accepts_localhost_and_all_interfaces() {
    let l = ok(&with("listen: 127.0.0.1:8008", "listen: localhost:8008"));
    assert_eq!(l.config.restapi.listen, "127.0.0.1:8008".parse().unwrap());
    let l = ok(&with("listen: 127.0.0.1:8008", "listen: 0.0.0.0:8008"));
    assert_eq!(l.config.restapi.listen, "0.0.0.0:8008".parse().unwrap());
    let e = err(&with("listen: 127.0.0.1:8008", "listen: 127.0.0.1"));
    assert_mentions(&e, &["restapi.listen", "no port"]);
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let e = err(&with("  hosts:", "  hosts: [unclosed"));
    assert!(e.line.is_some(), "{e}");
    assert_mentions(&e, &["test.yml, line", "column", "not valid YAML"]);
}

#[test]
fn integers_beyond_64_bits_name_the_key_the_value_and_what_is_allowed() {
    // YAML reads them, but they failed the whole file: "invalid type: integer ... as u128".
    let e = err(&with("ttl: 10", "ttl: 99999999999999999999999"));
    assert_eq!(e.key.as_deref(), Some("bootstrap.dcs.ttl"));
    assert_eq!(e.line, Some(11));
    assert_mentions(
        &e,
        &[
            "test.yml, at line 11: bootstrap.dcs.ttl",
            "found the number 99999999999999999999999, out of range",
            "allowed: a number of seconds",
        ],
    );
    let e = err(&with(
        "nofailover: false",
        "failover_priority: -99999999999999999999999",
    ));
    assert_eq!(e.key.as_deref(), Some("tags.failover_priority"));
    assert_mentions(
        &e,
        &[
            "found the number -99999999999999999999999",
            "allowed: an integer",
        ],
    );
    // Where text is allowed, the digits are the text, as Patroni reads them.
    let l = ok(&with(
        "  data_dir: /var/lib/postgresql/15/main\n",
        "  data_dir: /var/lib/postgresql/15/main\n  authentication:\n    superuser:\n      username: postgres\n      password: 123456789012345678901234567890\n",
    ));
    assert_eq!(
        l.config.postgresql.superuser.password.as_deref(),
        Some("123456789012345678901234567890")
    );
}

#[test]
fn empty_and_non_mapping_files_are_refused() {
    assert_mentions(&err(""), &["holds no settings"]);
    assert_mentions(&err("# only a comment\n"), &["holds no settings"]);
    assert_mentions(&err("- a\n- b\n"), &["found a list", "a mapping"]);
    assert_mentions(&err("just text"), &["found the string"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with("ttl: 10", "ttl: x").replace("name: node1\n", "");
    let e = err(&text);
    assert_eq!(e.message.lines().count(), 2, "{e}");
    assert_mentions(&e, &["bootstrap.dcs.ttl", "name: missing"]);
}

// ---- timings ----

#[test]
fn timings_below_their_floors_are_raised_as_patroni_does() {
    for (from, to, key, said) in [
        (
            "ttl: 10",
            "ttl: 1",
            "bootstrap.dcs.ttl",
            "ttl=1 can't be smaller than 2, adjusting...",
        ),
        (
            "loop_wait: 2",
            "loop_wait: 0.1",
            "bootstrap.dcs.loop_wait",
            "loop_wait=0.1 can't be smaller than 0.2, adjusting...",
        ),
        (
            "retry_timeout: 3",
            "retry_timeout: 0.4",
            "bootstrap.dcs.retry_timeout",
            "retry_timeout=0.4 can't be smaller than 0.5, adjusting...",
        ),
    ] {
        let l = ok(&with(from, to));
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains(key) && w.contains(said)),
            "{:?}",
            l.warnings
        );
    }
    assert_mentions(&err(&with("ttl: 10", "ttl: -5")), &["found the number -5"]);
}

#[test]
fn decimal_timings_are_accepted() {
    let l = ok(&with("loop_wait: 2", "loop_wait: 0.5"));
    assert_eq!(l.config.bootstrap.dcs.loop_wait, Duration::from_millis(500));
    assert_eq!(l.config.bootstrap.dcs.json["loop_wait"], 0.5);
}

#[test]
fn the_timing_rule_is_kept_by_adjusting_as_patroni_does() {
    let l = load_str(&with("ttl: 10", "ttl: 7"), "test.yml").unwrap();
    let d = &l.config.bootstrap.dcs;
    assert_eq!(d.ttl, std::time::Duration::from_secs(7));
    assert!(d.loop_wait + d.retry_timeout * 2 <= d.ttl);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("Violated the rule") && w.contains("ttl=7")),
        "{:?}",
        l.warnings
    );
    // Absent keys count with pgkeel's defaults (loop_wait 2, retry_timeout 3 = 8 > 5).
    let text = with("    loop_wait: 2\n    retry_timeout: 3\n", "").replace("ttl: 10", "ttl: 5");
    let l = load_str(&text, "test.yml").unwrap();
    let d = &l.config.bootstrap.dcs;
    assert!(d.loop_wait + d.retry_timeout * 2 <= d.ttl);
    assert_eq!(d.json["loop_wait"], serde_json::json!(0.2), "{}", d.json);
}

#[test]
fn patroni_defaults_30_10_10_satisfy_the_rule() {
    let text = with("ttl: 10", "ttl: 30")
        .replace("loop_wait: 2", "loop_wait: 10")
        .replace("retry_timeout: 3", "retry_timeout: 10");
    ok(&text);
}

#[test]
fn maximum_lag_must_be_a_byte_count() {
    let e = err(&with(
        "    ttl: 10\n",
        "    ttl: 10\n    maximum_lag_on_failover: 1MB\n",
    ));
    assert_mentions(
        &e,
        &["line 12", "bootstrap.dcs.maximum_lag_on_failover", "bytes"],
    );
}

#[test]
fn without_bootstrap_pgkeel_defaults_are_written_to_config() {
    let text = BASE.replace(
        "bootstrap:\n  dcs:\n    ttl: 10\n    loop_wait: 2\n    retry_timeout: 3\n  initdb:\n    - data-checksums\n",
        "",
    );
    let l = ok(&text);
    let dcs = &l.config.bootstrap.dcs;
    assert_eq!(dcs.ttl, Duration::from_secs(10));
    assert_eq!(dcs.loop_wait, Duration::from_secs(2));
    assert_eq!(dcs.retry_timeout, Duration::from_secs(3));
    assert_eq!(
        dcs.json,
        serde_json::json!({
            "ttl": 10, "loop_wait": 2, "retry_timeout": 3,
            "maximum_lag_on_failover": 1048576,
            "postgresql": {"use_pg_rewind": true, "use_slots": true}
        })
    );
    assert!(l.config.bootstrap.initdb.is_empty());
}

#[test]
fn dynamic_postgresql_section_is_checked() {
    let text = with(
        "    retry_timeout: 3\n",
        "    retry_timeout: 3\n    postgresql:\n      use_slots: maybe\n      parameters:\n        work_mem: [1]\n      pg_hba: host all all\n",
    );
    let e = err(&text);
    assert_mentions(
        &e,
        &[
            "line 15: bootstrap.dcs.postgresql.use_slots: found the string \"maybe\"; allowed: true or false",
            "line 17: bootstrap.dcs.postgresql.parameters.work_mem: found a list",
            "line 18: bootstrap.dcs.postgresql.pg_hba: found the string",
        ],
    );
}

#[test]
fn unknown_dynamic_keys_are_kept_for_config() {
    let l = ok(&with(
        "    retry_timeout: 3\n",
        "    retry_timeout: 3\n    synchronous_mode: false\n    slots:\n      s1: {type: physical}\n",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let json = &l.config.bootstrap.dcs.json;
    assert_eq!(json["synchronous_mode"], false);
    assert_eq!(json["slots"]["s1"]["type"], "physical");
}

#[test]
fn dynamic_keys_patroni_does_not_know_are_noted_but_kept() {
    let l = ok(&with(
        "    retry_timeout: 3\n",
        "    retry_timeout: 3\n    loop_wiat: 5\n",
    ));
    assert!(
        warned(
            &l,
            "bootstrap.dcs.loop_wiat at line 14: not a Patroni setting"
        ),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.config.bootstrap.dcs.json["loop_wiat"], 5);
}

// ---- etcd ----

#[test]
fn etcd_hosts_as_comma_separated_string_or_single_host() {
    let l = ok(&with(
        "  hosts:\n    - 127.0.0.1:2379\n",
        "  hosts: 127.0.0.1:2379, 127.0.0.2\n",
    ));
    let hosts: Vec<String> = l.config.etcd.hosts.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, ["127.0.0.1:2379", "127.0.0.2:2379"]);
    let l = ok(&with(
        "  hosts:\n    - 127.0.0.1:2379\n",
        "  host: '[::1]:2380'\n",
    ));
    assert_eq!(l.config.etcd.hosts[0].to_string(), "[::1]:2380");
}

#[test]
fn no_etcd_hosts_is_an_error() {
    let e = err(&with("  hosts:\n    - 127.0.0.1:2379\n", "  hosts: []\n"));
    assert_mentions(&e, &["line 7: etcd3.hosts: no etcd hosts"]);
    let e = err(&with("  hosts:\n    - 127.0.0.1:2379\n", "  username: u\n"));
    assert_mentions(&e, &["etcd3.hosts: missing"]);
    let e = err(&with("    - 127.0.0.1:2379", "    - 127.0.0.1:99999"));
    assert_mentions(&e, &["line 8: etcd3.hosts[0]", "1 to 65535"]);
}

#[test]
fn etcd_over_https_with_every_key_as_patroni_spells_them() {
    use pgkeel_core::config::{CertKey, EtcdTls};
    let l = ok(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: HTTPS\n  cacert: /etc/etcd/ca.pem\n  cert: /etc/etcd/client.pem\n  \
         key: /etc/etcd/client.key\n  username: root\n  password: 1234\n",
    ));
    let e = &l.config.etcd;
    assert_eq!(
        e.tls,
        Some(EtcdTls {
            cacert: Some("/etc/etcd/ca.pem".into()),
            identity: Some(CertKey {
                certfile: "/etc/etcd/client.pem".into(),
                keyfile: Some("/etc/etcd/client.key".into()),
                keyfile_password: None,
            }),
        })
    );
    assert_eq!(e.urls(), ["https://127.0.0.1:2379"]);
    assert_eq!(
        (e.username.as_deref(), e.password.as_deref()),
        (Some("root"), Some("1234"))
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // https alone: the system's trust store, no client certificate; `cert` alone holds the
    // key too (Patroni: "key can be empty if the key is part of cert"), and pgkeel's
    // key_password decrypts it.
    let l = ok(&with("etcd3:\n", "etcd3:\n  protocol: https\n"));
    assert_eq!(
        l.config.etcd.tls,
        Some(EtcdTls {
            cacert: None,
            identity: None
        })
    );
    let l = ok(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: https\n  cert: /c.pem\n  key: ''\n  key_password: pw\n",
    ));
    let id = l.config.etcd.tls.unwrap().identity.unwrap();
    assert_eq!(
        (id.keyfile, id.keyfile_password.as_deref()),
        (None, Some("pw"))
    );
    // Plain http by default, as in Patroni.
    let l = ok(BASE);
    assert_eq!(l.config.etcd.tls, None);
    assert_eq!(l.config.etcd.urls(), ["http://127.0.0.1:2379"]);
    // The v2 section's keys are named as written.
    let e = err(&with("etcd3:\n", "etcd:\n  cacert: /ca.pem\n"));
    assert_mentions(&e, &["etcd.cacert", "etcd.protocol: https"]);
}

#[test]
fn etcd_tls_files_without_https_or_a_key_without_cert_are_refused() {
    // Patroni talks plain HTTP then and never reads them: an operator who set them expects
    // TLS that would not happen.
    let e = err(&with("etcd3:\n", "etcd3:\n  cacert: /etc/ca.pem\n"));
    assert_eq!(e.key.as_deref(), Some("etcd3.cacert"));
    assert_mentions(
        &e,
        &[
            "line 7: etcd3.cacert",
            "etcd3.protocol is http",
            "allowed: etcd3.protocol: https, or this key removed",
        ],
    );
    let e = err(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: http\n  cert: /c.pem\n  key: /k.pem\n",
    ));
    assert_mentions(&e, &["etcd3.cert", "etcd3.key", "plain HTTP"]);
    // Empty values are no file, as in Patroni.
    ok(&with("etcd3:\n", "etcd3:\n  cacert: ''\n  cert: null\n"));
    let e = err(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: https\n  key: /k.pem\n",
    ));
    assert_mentions(
        &e,
        &["etcd3.key", "etcd3.cert is not", "no client certificate"],
    );
    let e = err(&with("etcd3:\n", "etcd3:\n  protocol: ftp\n"));
    assert_mentions(&e, &["etcd3.protocol", "\"ftp\"", "allowed: http or https"]);
    let e = err(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: https\n  cacert: [a]\n",
    ));
    assert_mentions(&e, &["etcd3.cacert", "the path of a PEM file"]);
}

#[test]
fn etcd_hosts_are_host_port_and_the_scheme_comes_from_protocol() {
    let e = err(&with(
        "    - 127.0.0.1:2379\n",
        "    - https://127.0.0.1:2379\n",
    ));
    assert_mentions(
        &e,
        &[
            "line 8: etcd3.hosts[0]",
            "(a URL)",
            "etcd3.protocol: https for TLS",
        ],
    );
    let e = err(&with(
        "  hosts:\n    - 127.0.0.1:2379\n",
        "  host: http://127.0.0.1:2379\n",
    ));
    assert_mentions(&e, &["etcd3.host", "(a URL)"]);
}

#[test]
fn etcd_username_and_password_go_together() {
    ok(&with(
        "etcd3:\n",
        "etcd3:\n  protocol: http\n  username: root\n  password: 1234\n",
    ));
    let e = err(&with("etcd3:\n", "etcd3:\n  username: root\n"));
    assert_mentions(
        &e,
        &[
            "line 7: etcd3.username",
            "etcd3.password is not",
            "both username and password",
        ],
    );
    let e = err(&with("etcd3:\n", "etcd3:\n  username: ''\n  password: x\n"));
    assert_mentions(&e, &["etcd3.password", "etcd3.username is not"]);
    // Neither, or both empty: no authentication.
    let l = ok(&with(
        "etcd3:\n",
        "etcd3:\n  username: ''\n  password: ''\n",
    ));
    assert_eq!(
        (l.config.etcd.username, l.config.etcd.password),
        (None, None)
    );
}

#[test]
fn the_etcd_v2_section_is_used_over_v3_with_a_warning() {
    let l = ok(&with("etcd3:", "etcd:"));
    assert_eq!(l.config.etcd.hosts[0].port, 2379);
    assert!(
        warned(&l, "etcd at line 6: pgkeel speaks only the etcd v3 API"),
        "{:?}",
        l.warnings
    );
    let both = with("etcd3:", "etcd:\n  host: 127.0.0.9:2379\netcd3:");
    let l = ok(&both);
    assert_eq!(l.config.etcd.hosts[0].host, "127.0.0.1");
    assert!(warned(
        &l,
        "etcd at line 6: ignored: etcd3 is configured too"
    ));
}

#[test]
fn other_dcs_are_refused_without_etcd_and_ignored_with_it() {
    let no_etcd = BASE.replace(
        "etcd3:\n  hosts:\n    - 127.0.0.1:2379\n",
        "consul:\n  host: 127.0.0.1:8500\n",
    );
    let e = err(&no_etcd);
    assert_eq!(e.key.as_deref(), Some("consul"));
    assert_mentions(
        &e,
        &["line 6: consul", "pgkeel supports only etcd v3 as DCS"],
    );
    let e = err(&BASE.replace("etcd3:\n  hosts:\n    - 127.0.0.1:2379\n", ""));
    assert_mentions(
        &e,
        &["etcd3: missing", "pgkeel supports only etcd v3 as DCS"],
    );
    let l = ok(&format!("{BASE}kubernetes:\n  namespace: x\n"));
    assert!(warned(
        &l,
        "kubernetes at line 22: ignored: pgkeel supports only etcd v3"
    ));
}

// ---- postgresql ----

#[test]
fn multi_host_listen_splits_addresses_and_port() {
    let l = ok(&with(
        "listen: 127.0.0.1:5432",
        "listen: 127.0.0.1,127.0.0.2:5433",
    ));
    assert_eq!(
        l.config.postgresql.listen_addresses,
        ["127.0.0.1", "127.0.0.2"]
    );
    assert_eq!(l.config.postgresql.port, 5433);
    let l = ok(&with("listen: 127.0.0.1:5432", "listen: '*:5432'"));
    assert_eq!(l.config.postgresql.listen_addresses, ["*"]);
    let l = ok(&with("listen: 127.0.0.1:5432", "listen: 127.0.0.1"));
    assert_eq!(l.config.postgresql.port, 5432, "Patroni's default port");
    let e = err(&with("listen: 127.0.0.1:5432", "listen: 127.0.0.1,:5432"));
    assert_mentions(&e, &["line 17: postgresql.listen", "empty or blank host"]);
}

#[test]
fn postgresql_required_keys() {
    let e = err(&with("  data_dir: /var/lib/postgresql/15/main\n", ""));
    assert_mentions(
        &e,
        &["in the section at line 16: postgresql.data_dir: missing"],
    );
    let e = err(&with(
        "data_dir: /var/lib/postgresql/15/main",
        "data_dir: pgdata",
    ));
    assert_mentions(&e, &["line 19: postgresql.data_dir", "an absolute path"]);
    let e = err(&with("  connect_address: 127.0.0.1:5432\n", ""));
    assert_mentions(&e, &["postgresql.connect_address: missing"]);
    let e = err(&with(
        "connect_address: 127.0.0.1:5432",
        "connect_address: 127.0.0.1",
    ));
    assert_mentions(&e, &["line 18: postgresql.connect_address", "no port"]);
    let e = err(&BASE.replace("postgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 127.0.0.1:5432\n  data_dir: /var/lib/postgresql/15/main\n", ""));
    assert_mentions(&e, &["postgresql: missing"]);
}

#[test]
fn credentials_default_and_numbers_become_text() {
    let l = ok(BASE);
    let pg = &l.config.postgresql;
    assert_eq!(pg.superuser.username, "postgres");
    assert_eq!(pg.replication.username, "replicator");
    assert_eq!(pg.superuser.password, None);
    let text = format!(
        "{BASE}  authentication:\n    replication:\n      password: 123456\n    rewind:\n      username: rewinder\n"
    )
    .replace("tags:\n  nofailover: false\n", "")
        + "tags:\n  nofailover: false\n";
    let l = ok(&text);
    assert_eq!(
        l.config.postgresql.replication.password.as_deref(),
        Some("123456")
    );
    // pg_rewind's role (Patroni's `rewind` credentials), no longer ignored.
    assert_eq!(l.config.postgresql.rewind_user().username, "rewinder");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn local_parameters_basebackup_and_hba() {
    let text = with(
        "  data_dir: /var/lib/postgresql/15/main\n",
        "  data_dir: /var/lib/postgresql/15/main\n  parameters:\n    fsync: false\n    random_page_cost: 1.1\n  pg_hba:\n    - local all all trust\n  basebackup:\n    - verbose\n    - max-rate: 100M\n",
    );
    let l = ok(&text);
    let pg = &l.config.postgresql;
    assert_eq!(pg.parameters["fsync"], "off");
    assert_eq!(pg.parameters["random_page_cost"], "1.1");
    assert_eq!(pg.pg_hba, ["local all all trust"]);
    let args: Vec<String> = pg.basebackup.iter().map(|o| o.to_arg()).collect();
    assert_eq!(args, ["--verbose", "--max-rate=100M"]);

    let e = err(&with(
        "  data_dir: /var/lib/postgresql/15/main\n",
        "  data_dir: /var/lib/postgresql/15/main\n  parameters:\n    shared_preload_libraries:\n",
    ));
    assert_mentions(
        &e,
        &["line 21: postgresql.parameters.shared_preload_libraries: found an empty value"],
    );
}

#[test]
fn initdb_items_must_be_flags_or_one_key_mappings() {
    let e = err(&with(
        "    - data-checksums",
        "    - {encoding: UTF8, locale: C}",
    ));
    assert_mentions(&e, &["line 15: bootstrap.initdb[0]", "one-key mapping"]);
    let e = err(&with("    - data-checksums", "    - encoding: [a]"));
    assert_mentions(&e, &["bootstrap.initdb.encoding", "found a list"]);
    let e = err(&with(
        "  initdb:\n    - data-checksums\n",
        "  initdb:\n    encoding: UTF8\n",
    ));
    assert_mentions(&e, &["line 14: bootstrap.initdb: found a mapping"]);
}

#[test]
fn patroni_keys_pgkeel_lacks_are_warnings() {
    let text = with(
        "  data_dir: /var/lib/postgresql/15/main\n",
        "  data_dir: /var/lib/postgresql/15/main\n  proxy_address: 10.0.0.1:6432\n  pg_ctl_timeout: 60\n",
    );
    let l = ok(&text);
    // Both taken now (issue 12): proxy_address is published as the member's proxy_url.
    assert!(!warned(&l, "proxy_address"));
    assert_eq!(
        l.config
            .postgresql
            .proxy_address
            .as_ref()
            .map(|a| a.to_string())
            .as_deref(),
        Some("10.0.0.1:6432")
    );
    // Taken now (issue 12).
    assert!(!warned(&l, "pg_ctl_timeout"));
    assert_eq!(
        l.config.postgresql.pg_ctl_timeout,
        Some(std::time::Duration::from_secs(60))
    );
    let l = ok(&format!(
        "{BASE}watchdog:\n  mode: off\nlog:\n  level: INFO\n"
    ));
    assert!(warned(&l, "watchdog at line 22: ignored"));
    // The log section is read now (issue 12).
    assert!(!warned(&l, "log at line 24"));
    assert_eq!(l.config.log.level.as_deref(), Some("info"));
}

#[test]
fn unknown_keys_are_warnings_with_full_path_and_line() {
    let text = with(
        "  data_dir: /var/lib/postgresql/15/main\n",
        "  data_dir: /var/lib/postgresql/15/main\n  foo: 1\n",
    )
    .replace("restapi:\n", "restapi:\n  lisen: x\n");
    let l = ok(&text);
    assert!(
        warned(&l, "unknown key postgresql.foo at line 21, ignored"),
        "{:?}",
        l.warnings
    );
    assert!(
        warned(&l, "unknown key restapi.lisen at line 4, ignored"),
        "{:?}",
        l.warnings
    );
}

// ---- namespace ----

#[test]
fn namespace_is_normalised() {
    for (given, want) in [
        ("/service/", "/service"),
        ("service", "/service"),
        ("/a/b/", "/a/b"),
    ] {
        let l = ok(&format!("namespace: {given}\n{BASE}"));
        assert_eq!(l.config.namespace, want);
    }
    assert_mentions(
        &err(&format!("namespace: /\n{BASE}")),
        &["line 1: namespace"],
    );
}

// ---- tags ----

#[test]
fn tags_accept_booleans_as_strings_and_keep_unknown_tags() {
    let l = ok(&with(
        "  nofailover: false\n",
        "  nofailover: 'true'\n  nosync: yes\n  replicatefrom: node2\n  zone: 3\n",
    ));
    let t = &l.config.tags;
    assert!(t.nofailover && !t.may_promote());
    // YAML 1.2 reads an unquoted yes as a string; Patroni's parse_bool takes it as true.
    assert!(t.nosync);
    assert_eq!(t.other["replicatefrom"], "node2");
    assert_eq!(t.other["zone"], 3);
}

#[test]
fn nofailover_wins_over_a_contradicting_failover_priority_as_in_patroni() {
    let l = ok(&with(
        "  nofailover: false\n",
        "  nofailover: true\n  failover_priority: 2\n",
    ));
    assert!(!l.config.tags.may_promote());
    assert!(warned(
        &l,
        "Conflicting configuration between nofailover: True and failover_priority: 2. Defaulting to nofailover: True"
    ));
    let l = ok(&with(
        "  nofailover: false\n",
        "  nofailover: false\n  failover_priority: 0\n",
    ));
    assert!(l.config.tags.may_promote(), "as if no priority were given");
    assert!(warned(
        &l,
        "Conflicting configuration between nofailover: False and failover_priority: 0. Defaulting to nofailover: False"
    ));
    // Agreeing values are fine.
    ok(&with(
        "  nofailover: false\n",
        "  nofailover: true\n  failover_priority: 0\n",
    ));
    let l = ok(&with("  nofailover: false\n", "  failover_priority: 5\n"));
    assert_eq!(l.config.tags.failover_priority, 5);
    let e = err(&with("  nofailover: false\n", "  failover_priority: -1\n"));
    assert_mentions(
        &e,
        &["tags.failover_priority: found the number -1", "0 or more"],
    );
    let e = err(&with("  nofailover: false\n", "  nofailover: perhaps\n"));
    assert_mentions(&e, &["line 21: tags.nofailover", "true or false"]);
}

#[test]
fn restapi_authentication_needs_a_username() {
    let l = ok(&with(
        "  connect_address: 127.0.0.1:8008\n",
        "  connect_address: 127.0.0.1:8008\n  authentication:\n    username: admin\n    password: secret\n",
    ));
    let auth = l.config.restapi.authentication.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_deref()),
        ("admin", Some("secret"))
    );
    let e = err(&with(
        "  connect_address: 127.0.0.1:8008\n",
        "  connect_address: 127.0.0.1:8008\n  authentication:\n    password: secret\n",
    ));
    assert_mentions(&e, &["restapi.authentication.username: missing"]);
    let e = err(&with("  connect_address: 127.0.0.1:8008\n", ""));
    assert_mentions(
        &e,
        &["in the section at line 3: restapi.connect_address: missing"],
    );
}

/// Patroni publishes its predefined boolean tags only when set (`Tags._filter_tags`): a
/// `nostream: false` in the file is not in `/patroni`'s tags (Patroni's acceptance suite
/// compares the whole mapping).
#[test]
fn a_false_nostream_tag_is_not_published() {
    let l = ok(BASE);
    assert!(l.config.tags.other.get("nostream").is_none());
    let text = BASE.replace(
        "tags:\n",
        "tags:\n  nostream: false\n  new_tag: new_value\n",
    );
    let l = ok(&text);
    assert_eq!(
        l.config.tags.to_json(),
        serde_json::json!({"new_tag": "new_value"}),
        "{text}"
    );
}

/// Patroni publishes the tags as written: a quoted priority stays a string, and
/// `nofailover: false` shows next to `failover_priority` (both are needed to see a
/// contradiction). Patroni's acceptance suite compares `str(tags)` of the member key.
#[test]
fn tags_are_published_as_written() {
    let text = with(
        "tags:\n  nofailover: false\n",
        "tags:\n  failover_priority: '1'\n  nofailover: true\n  nosync: false\n  zone: a\n",
    );
    let l = ok(&text);
    assert_eq!(
        l.config.tags.to_json(),
        serde_json::json!({"failover_priority": "1", "nofailover": true, "zone": "a"}),
        "{text}"
    );
    assert!(!l.config.tags.may_promote());
    let text = with(
        "tags:\n  nofailover: false\n",
        "tags:\n  failover_priority: '0'\n  nofailover: false\n",
    );
    let l = ok(&text);
    assert_eq!(
        l.config.tags.to_json(),
        serde_json::json!({"failover_priority": "0", "nofailover": false})
    );
    // The boolean wins, with Patroni's warning: promotable.
    assert!(l.config.tags.may_promote());
    assert!(warned(
        &l,
        "Conflicting configuration between nofailover: False and failover_priority: 0"
    ));
}
