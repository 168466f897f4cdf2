//! `pgkeel agent --validate-config`: good files pass, bad ones fail with a message that
//! names the problem, and no input makes it panic.

use std::process::Command;

fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .args(["agent", "--validate-config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

const GOOD: &str = "scope: s\nname: n1\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\netcd3:\n  hosts: 127.0.0.1:2379\npostgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 127.0.0.1:5432\n  data_dir: /tmp/pgkeel-x\n";

#[test]
fn the_seed_configs_and_the_example_validate() {
    for f in [
        "crates/core/tests/fixtures/seed002_patroni.yml",
        "crates/core/tests/fixtures/seed003_patroni.yml",
        "docs/example.yml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .args(["agent", "--validate-config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(validate(GOOD).0);
}

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let cases = [
        (GOOD.replace("name: n1\n", ""), "name"),
        (
            GOOD.replace("listen: 127.0.0.1:8008", "listen: nowhere"),
            "restapi.listen",
        ),
        (format!("{GOOD}bootstrap:\n  dcs:\n    ttl: soon\n"), "ttl"),
        (
            GOOD.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", ""),
            "etcd",
        ),
        ("scope: [unclosed\n".to_string(), "line"),
        (String::new(), "scope"),
    ];
    for (yaml, needle) in cases {
        let (ok, text) = validate(&yaml);
        assert!(!ok, "accepted:\n{yaml}");
        assert!(
            text.contains(needle),
            "message should name {needle:?}: {text}"
        );
    }
}

#[test]
fn list_without_a_config_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("list")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-c CONFIG"));
}

#[test]
fn synchronous_and_failsafe_settings_are_checked() {
    for (key, value) in [
        ("synchronous_mode", "true"),
        ("synchronous_mode", "quorum"),
        ("synchronous_mode", "false"),
        ("synchronous_mode_strict", "true"),
        ("synchronous_node_count", "2"),
        ("maximum_lag_on_syncnode", "-1"),
        ("failsafe_mode", "on"),
        ("check_timeline", "true"),
    ] {
        let (ok, text) = validate(&format!("{GOOD}bootstrap:\n  dcs:\n    {key}: {value}\n"));
        assert!(ok, "{key}: {value} refused: {text}");
    }
    for (key, value, allowed) in [
        ("synchronous_mode", "sometimes", "quorum"),
        ("synchronous_node_count", "0", "1 or more"),
        ("maximum_lag_on_syncnode", "lots", "-1"),
        ("synchronous_mode_strict", "maybe", "true or false"),
    ] {
        let (ok, text) = validate(&format!("{GOOD}bootstrap:\n  dcs:\n    {key}: {value}\n"));
        assert!(!ok, "{key}: {value} accepted");
        assert!(text.contains(key) && text.contains(allowed), "{text}");
    }
    let (ok, text) = validate(&format!(
        "{GOOD}bootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.1\n"
    ));
    assert!(!ok && text.contains("standby_cluster"), "{text}");
}

#[test]
fn the_cli_accepts_a_minimal_patronictl_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patronictl.yaml");
    // Port 1 on loopback: nothing listens, so the verb fails on etcd, after the config loaded.
    std::fs::write(&path, "scope: batman\netcd3:\n  hosts: 127.0.0.1:1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("-c")
        .arg(&path)
        .arg("show-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !err.contains("missing") && !err.contains("restapi"),
        "{err}"
    );
    assert!(err.contains("etcd") || err.contains("127.0.0.1:1"), "{err}");
}

/// Issue 11: a data directory that is a file passed validation, then the agent could not
/// be stopped. Paths are now checked for what they must be, at validation and at start.
#[test]
fn a_data_dir_that_is_a_file_unwritable_or_owned_by_root_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let with_dir = |p: &std::path::Path| {
        GOOD.replace(
            "data_dir: /tmp/pgkeel-x",
            &format!("data_dir: {}", p.display()),
        )
    };
    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let (ok, text) = validate(&with_dir(&file));
    assert!(
        !ok && text.contains("postgresql.data_dir") && text.contains("is a regular file"),
        "{text}"
    );
    // The agent itself refuses too, at once, rather than running on it.
    let cfg = t.path().join("agent.yml");
    std::fs::write(&cfg, with_dir(&file)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("agent")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is a regular file"),
        "{stderr}"
    );

    let dir = t.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    if nix::unistd::Uid::effective().is_root() {
        let (ok, text) = validate(&with_dir(&dir));
        assert!(!ok && text.contains("owned by root"), "{text}");
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user");
        nix::unistd::chown(&dir, Some(pg.uid), Some(pg.gid)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let (ok, text) = validate(&with_dir(&dir));
    assert!(!ok && text.contains("not writable"), "{text}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, text) = validate(&with_dir(&dir));
    assert!(ok, "{text}");
}

/// Issue 11: a parameter PostgreSQL refuses (`max_connections: abc`) reached
/// postgresql.conf and the next start failed. The file's parameters are now read by
/// PostgreSQL itself (`postgres -C`) before the agent starts, each refusal naming the key.
#[test]
fn parameters_postgresql_refuses_are_refused_before_the_first_start() {
    let t = tempfile::tempdir().unwrap();
    let yaml = GOOD.replace(
        "data_dir: /tmp/pgkeel-x\n",
        &format!(
            "data_dir: {}\n  parameters: {{shared_buffers: 12XB, nosuch_param: 1, work_mem: 8MB}}\n\
             bootstrap:\n  dcs:\n    postgresql:\n      parameters: {{max_connections: abc}}\n",
            t.path().join("data").display()
        ),
    );
    let (ok, text) = validate(&yaml);
    assert!(!ok, "{text}");
    for line in [
        "postgresql.parameters.shared_buffers: PostgreSQL refuses it: invalid value for parameter \"shared_buffers\": \"12XB\" (Valid units",
        "postgresql.parameters.nosuch_param: PostgreSQL refuses it: unrecognized configuration parameter \"nosuch_param\"",
        "bootstrap.dcs.postgresql.parameters.max_connections: PostgreSQL refuses it: invalid value for parameter \"max_connections\": \"abc\"",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(!text.contains("work_mem"), "{text}");
    let good = yaml
        .replace("shared_buffers: 12XB, nosuch_param: 1, ", "")
        .replace("max_connections: abc", "max_connections: 50");
    let (ok, text) = validate(&good);
    assert!(ok, "{text}");
}

/// Issue 12: Patroni's `PATRONI_*` environment variables configure the agent as they do
/// Patroni (the acceptance harness passes the DCS, the REST credentials and the superuser
/// password that way); the environment wins over the file.
#[test]
fn patroni_environment_variables_complete_and_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    let without_dcs = GOOD.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "");
    std::fs::write(&path, &without_dcs).unwrap();
    let run = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .args(["agent", "--validate-config"])
            .arg(&path)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, text) = run(&[]);
    assert!(!ok && text.contains("etcd3: missing"), "{text}");
    let (ok, text) = run(&[("PATRONI_ETCD3_HOST", "127.0.0.1:2379")]);
    assert!(ok, "{text}");
    // A bad value from the environment is named like one from the file.
    let (ok, text) = run(&[
        ("PATRONI_ETCD3_HOST", "127.0.0.1:2379"),
        ("PATRONI_RESTAPI_LISTEN", "nowhere"),
    ]);
    assert!(!ok && text.contains("restapi.listen"), "{text}");
}

/// Issue 12: timings that break `loop_wait + 2 × retry_timeout <= ttl` are adjusted as
/// Patroni adjusts them, with Patroni's warning, instead of refused.
#[test]
fn timings_that_break_the_rule_are_adjusted_with_patronis_warning() {
    let (ok, text) = validate(&format!(
        "{GOOD}bootstrap:\n  dcs:\n    ttl: 5\n    loop_wait: 3\n    retry_timeout: 3\n"
    ));
    assert!(ok, "{text}");
    assert!(
        text.contains("Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=5"),
        "{text}"
    );
}

/// Issue 12: callbacks, `pre_promote` and `before_stop` are taken (they were ignored with a
/// warning, then refused); a value that is no command line names its key.
#[test]
fn callbacks_and_gating_commands_are_taken() {
    let with = |extra: &str| {
        GOOD.replace(
            "  data_dir: /tmp/pgkeel-x\n",
            &format!("  data_dir: /tmp/pgkeel-x\n{extra}"),
        )
    };
    let (ok, text) = validate(&with(
        "  callbacks:\n    on_role_change: /usr/local/bin/vip.sh 'eth 0'\n    on_start: /bin/true\n",
    ));
    assert!(ok && !text.contains("callbacks"), "{text}");
    let (ok, text) = validate(&with("  callbacks:\n    on_start: [1]\n"));
    assert!(
        !ok && text.contains("postgresql.callbacks.on_start"),
        "{text}"
    );
    let (ok, text) = validate(&with("  callbacks:\n    on_start: \"echo 'x\"\n"));
    assert!(!ok && text.contains("balanced quotes"), "{text}");
    for key in ["pre_promote", "before_stop"] {
        let (ok, text) = validate(&with(&format!("  {key}: /bin/true --flag\n")));
        assert!(ok && !text.contains(key), "{text}");
        let (ok, text) = validate(&with(&format!("  {key}: [1]\n")));
        assert!(!ok && text.contains(&format!("postgresql.{key}")), "{text}");
        let (ok, text) = validate(&with(&format!("  {key}: \"echo 'x\"\n")));
        assert!(!ok && text.contains("balanced quotes"), "{text}");
    }
}

/// Issue 12: log lines in Patroni's shape (the level at column 24, as Patroni's acceptance
/// steps read it), `log.format`/`log.dateformat` honoured.
#[test]
fn log_lines_take_patronis_shape() {
    let conflict = format!("{GOOD}tags:\n  nofailover: true\n  failover_priority: 1\n");
    let (ok, text) = validate(&conflict);
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("Conflicting configuration between nofailover: True and failover_priority: 1. Defaulting to nofailover: True"))
        .unwrap_or_else(|| panic!("{text}"));
    let b = line.as_bytes();
    assert!(
        b.len() > 32
            && b[4] == b'-'
            && b[10] == b' '
            && b[19] == b','
            && b[23] == b' '
            && line[24..].starts_with("WARNING: "),
        "{line:?}"
    );
    let (ok, text) = validate(&format!(
        "{conflict}log:\n  format: '[%(levelname)-8s] %(message)s'\n  level: WARNING\n"
    ));
    assert!(ok && text.contains("[WARNING ] "), "{text}");
}

/// Issue 12 item 6: `log.dir` sends the agent's lines to `patroni.log` there (not stderr),
/// with `mode`; bad values name their key.
#[test]
fn log_dir_takes_the_lines_into_patroni_log() {
    let logs = tempfile::tempdir().unwrap();
    let conflict = format!(
        "{GOOD}tags:\n  nofailover: true\n  failover_priority: 1\nlog:\n  dir: {}\n  file_size: 100000\n  file_num: 2\n  mode: '0640'\n",
        logs.path().display()
    );
    let (ok, text) = validate(&conflict);
    assert!(ok && !text.contains("Conflicting configuration"), "{text}");
    let file = logs.path().join("patroni.log");
    let written = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        written.lines().any(|l| l[24..].starts_with("WARNING: ")
            && l.contains("Conflicting configuration between nofailover: True")),
        "{written:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    for (bad, key) in [
        ("dir: relative/logs", "log.dir"),
        ("dir: /tmp\n  mode: '1777'", "log.mode"),
        ("dir: /tmp\n  file_size: 0", "log.file_size"),
        ("dir: /tmp\n  file_num: -1", "log.file_num"),
    ] {
        let (ok, text) = validate(&format!("{GOOD}log:\n  {bad}\n"));
        assert!(!ok && text.contains(key), "{bad}: {text}");
    }
}

/// A key set for TLS without `restapi.certfile`, and a misspelt callback, would each be
/// silently ignored (plain HTTP; a script that never runs): both are refused, naming the key.
#[test]
fn keys_whose_silent_ignoring_changes_behaviour_are_refused() {
    let (ok, text) = validate(&GOOD.replace(
        "  connect_address: 127.0.0.1:8008\n",
        "  connect_address: 127.0.0.1:8008\n  keyfile: /etc/ssl/k.pem\n",
    ));
    assert!(!ok && text.contains("restapi.keyfile"), "{text}");
    let (ok, text) = validate(&GOOD.replace(
        "  data_dir: /tmp/pgkeel-x\n",
        "  data_dir: /tmp/pgkeel-x\n  callbacks:\n    on_role_chnage: /bin/true\n",
    ));
    assert!(
        !ok && text.contains("postgresql.callbacks.on_role_chnage"),
        "{text}"
    );
}

/// Issue 12 item 4: `restapi.allowlist` and the extra headers are taken (they were ignored
/// with a warning, which left an operator who restricted access with none); a bad entry
/// names its key.
#[test]
fn rest_allowlist_and_extra_headers_are_taken_and_checked() {
    let with = |extra: &str| {
        GOOD.replace(
            "  connect_address: 127.0.0.1:8008\n",
            &format!("  connect_address: 127.0.0.1:8008\n{extra}"),
        )
    };
    let (ok, text) = validate(&with(
        "  allowlist: [10.0.0.0/8, 127.0.0.1, db1.example]\n  allowlist_include_members: true\n  http_extra_headers:\n    X-Frame-Options: SAMEORIGIN\n",
    ));
    assert!(
        ok && !text.contains("allowlist") && !text.contains("extra_headers"),
        "{text}"
    );
    let (ok, text) = validate(&with("  allowlist: [10.0.0.0/33]\n"));
    assert!(
        !ok && text.contains("restapi.allowlist") && text.contains("prefix"),
        "{text}"
    );
    let (ok, text) = validate(&with("  allowlist: ['bad host!']\n"));
    assert!(!ok && text.contains("restapi.allowlist"), "{text}");
    let (ok, text) = validate(&with("  http_extra_headers:\n    'Bad Name': x\n"));
    assert!(!ok && text.contains("restapi.http_extra_headers"), "{text}");
    let (ok, text) = validate(&with("  https_extra_headers: [1]\n"));
    assert!(
        !ok && text.contains("restapi.https_extra_headers"),
        "{text}"
    );
}

/// Issue 12 item 6: `log.type: json` writes Patroni's JSON lines (python-json-logger's:
/// the fields of `format` in order, renamed by a list's mappings, then `static_fields`).
#[test]
fn json_log_lines_carry_patronis_fields() {
    let conflict = format!("{GOOD}tags:\n  nofailover: true\n  failover_priority: 1\n");
    let (ok, text) = validate(&format!(
        "{conflict}log:\n  type: json\n  format: [asctime, {{levelname: level}}, message]\n  static_fields:\n    app: pgkeel\n"
    ));
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("Conflicting configuration"))
        .unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = vec!["app", "asctime", "level", "message"];
    sorted.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, sorted, "{line}");
    assert_eq!(v["level"], "WARNING");
    assert_eq!(v["app"], "pgkeel");
    assert!(line.starts_with("{\"asctime\": "), "{line}");
    // The default fields with a plain format string.
    let (ok, text) = validate(&format!("{conflict}log:\n  type: json\n"));
    assert!(ok, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("{\"asctime\": ") && l.contains("\"levelname\": \"WARNING\"")),
        "{text}"
    );
    let (ok, text) = validate(&format!("{GOOD}log:\n  format: [message]\n"));
    assert!(!ok && text.contains("log.format"), "{text}");
    let (ok, text) = validate(&format!("{GOOD}log:\n  type: xml\n"));
    assert!(!ok && text.contains("log.type"), "{text}");
}

/// Issue 12 item 1: the `postgresql` keys that were ignored with a warning. `pg_ident`,
/// `pg_ctl_timeout` and a local `use_pg_rewind` are taken; `remove_data_directory_on_*`
/// is accepted as `true` (what pgkeel does); keys whose ignoring would change what runs
/// are refused, naming them.
#[test]
fn postgresql_keys_are_taken_or_refused() {
    let with = |extra: &str| {
        GOOD.replace(
            "  data_dir: /tmp/pgkeel-x\n",
            &format!("  data_dir: /tmp/pgkeel-x\n{extra}"),
        )
    };
    let (ok, text) = validate(&with(
        "  pg_ident: ['ops root postgres']\n  pg_ctl_timeout: 90\n  use_pg_rewind: true\n  remove_data_directory_on_rewind_failure: true\n  remove_data_directory_on_diverged_timelines: true\n",
    ));
    assert!(ok && !text.contains("postgresql."), "{text}");
    for bad in [
        "config_dir: /etc/postgresql/15/main",
        "bin_name: {pg_ctl: pg_ctl15}",
        "custom_conf: /etc/pg/custom.conf",
        "recovery_conf: {recovery_min_apply_delay: 5min}",
        "remove_data_directory_on_rewind_failure: false",
        "pg_ctl_timeout: soon",
        "pg_ident: 5",
        "use_pg_rewind: maybe",
    ] {
        let key = bad.split(':').next().unwrap();
        let (ok, text) = validate(&with(&format!("  {bad}\n")));
        assert!(
            !ok && text.contains(&format!("postgresql.{key}")),
            "{bad}: {text}"
        );
    }
}

/// Issue 12 item 1: `etcd3.url` and `proxy` give the endpoint and the scheme, as Patroni
/// reads them (proxy first); `use_proxies` is accepted (pgkeel never looks beyond the
/// endpoints given); SRV discovery, which pgkeel cannot do, is refused naming the key.
#[test]
fn etcd_url_proxy_and_srv() {
    let with = |etcd: &str| GOOD.replace("etcd3:\n  hosts: 127.0.0.1:2379\n", etcd);
    let (ok, text) = validate(&with(
        "etcd3:\n  url: http://127.0.0.1:2379\n  use_proxies: true\n",
    ));
    assert!(ok && !text.contains("etcd3."), "{text}");
    let (ok, text) = validate(&with(
        "etcd3:\n  proxy: http://10.0.0.9:2379\n  hosts: 127.0.0.1:2379\n",
    ));
    assert!(
        ok && text.contains("etcd3.hosts") && text.contains("ignored"),
        "{text}"
    );
    for (bad, key) in [
        ("etcd3:\n  srv: example.com\n", "etcd3.srv"),
        ("etcd3:\n  url: 127.0.0.1:2379\n", "etcd3.url"),
        (
            "etcd3:\n  url: https://127.0.0.1:2379\n  protocol: http\n",
            "etcd3.url",
        ),
        ("etcd3:\n  proxy: [1]\n", "etcd3.proxy"),
    ] {
        let (ok, text) = validate(&with(bad));
        assert!(!ok && text.contains(key), "{bad}: {text}");
    }
}

/// Keys whose ignoring would change what runs are refused, naming them: a required
/// watchdog (pgkeel has none yet) and a Citus section; `watchdog.mode: automatic` and the
/// cosmetic REST keys stay warnings with their reason.
#[test]
fn a_required_watchdog_and_citus_are_refused() {
    let (ok, text) = validate(&format!("{GOOD}watchdog:\n  mode: required\n"));
    assert!(!ok && text.contains("watchdog.mode"), "{text}");
    let (ok, text) = validate(&format!("{GOOD}citus:\n  group: 0\n  database: citus\n"));
    assert!(!ok && text.contains("citus"), "{text}");
    let (ok, text) = validate(&format!("{GOOD}watchdog:\n  mode: automatic\n"));
    assert!(ok && text.contains("watchdog"), "{text}");
    let (ok, text) = validate(&GOOD.replace(
        "  connect_address: 127.0.0.1:8008\n",
        "  connect_address: 127.0.0.1:8008\n  server_tokens: minimal\n",
    ));
    assert!(ok && text.contains("sends no Server header"), "{text}");
}
