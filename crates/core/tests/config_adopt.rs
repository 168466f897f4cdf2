//! `adopt_dynamic`: which cluster-wide settings a running agent uses after a read of
//! `/config` (issue 11: a bad or unparseable `/config` must not change a node's settings,
//! nor send it back to its own `bootstrap.dcs`).

use std::time::Duration;

use pgkeel_core::config::{adopt_dynamic, load_str, Config, DynamicConfig, StoredConfig};
use pgkeel_core::guc::{GucCatalog, GucRow};
use pgkeel_core::sync::SyncMode;
use serde_json::json;

fn local() -> Config {
    let text = "\
scope: batman
name: node1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
bootstrap:
  dcs:
    ttl: 12
    postgresql:
      parameters: {max_connections: 100, work_mem: 4MB}
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}
";
    match load_str(text, "local.yml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

fn catalog() -> GucCatalog {
    let row = |name: &str, vartype: &str, min: &str, max: &str| GucRow {
        name: name.into(),
        vartype: vartype.into(),
        unit: None,
        min_val: Some(min.into()),
        max_val: Some(max.into()),
        enumvals: Vec::new(),
        context: "postmaster".into(),
    };
    GucCatalog::from_rows(
        150010,
        vec![
            row("max_connections", "integer", "1", "262143"),
            row("work_mem", "string", "", ""),
        ],
    )
}

fn good() -> serde_json::Value {
    json!({"ttl": 30, "loop_wait": 5, "retry_timeout": 5, "synchronous_mode": true,
           "postgresql": {"parameters": {"max_connections": 200}}})
}

fn adopted_good() -> DynamicConfig {
    let c = local();
    let a = adopt_dynamic(&c, StoredConfig::Value(&good()), None, Some(&catalog()));
    assert_eq!(a.problem, None);
    a.settings
}

#[test]
fn a_valid_config_is_adopted_whole_as_stored() {
    let d = adopted_good();
    assert_eq!(d.ttl, Duration::from_secs(30));
    assert_eq!(d.sync.mode, SyncMode::On);
    assert_eq!(d.parameters["max_connections"], "200");
    assert_eq!(d.json, good(), "GET /config shows what the DCS holds");
}

#[test]
fn a_bad_config_keeps_the_last_good_settings_and_says_why() {
    let c = local();
    let last = adopted_good();
    for bad in [
        json!({"ttl": "abc", "loop_wait": 5, "retry_timeout": 5}),
        json!({"ttl": 30, "loop_wait": 5, "retry_timeout": 5, "primary_start_timeout": -1}),
        json!({"ttl": 30, "loop_wait": 5, "retry_timeout": 5, "slots": "abc"}),
        json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": "abc"}}}),
        json!({"ttl": 30, "postgresql": {"parameters": {"no_such_parameter": 1}}}),
    ] {
        let a = adopt_dynamic(&c, StoredConfig::Value(&bad), Some(&last), Some(&catalog()));
        assert_eq!(a.settings, last, "{bad}");
        let why = a.problem.unwrap();
        assert!(
            why.starts_with("/config is not valid") && why.contains("keeping the last valid"),
            "{why}"
        );
    }
    let a = adopt_dynamic(
        &c,
        StoredConfig::Unreadable("not valid JSON: EOF"),
        Some(&last),
        Some(&catalog()),
    );
    assert_eq!(a.settings, last);
    assert!(a
        .problem
        .unwrap()
        .contains("cannot be read: not valid JSON"));
}

#[test]
fn a_deleted_config_keeps_the_last_good_settings() {
    let c = local();
    let last = adopted_good();
    let a = adopt_dynamic(&c, StoredConfig::Absent, Some(&last), None);
    assert_eq!(a.settings, last);
    assert_eq!(a.problem, None);
    // A new cluster: this node's bootstrap section.
    let a = adopt_dynamic(&c, StoredConfig::Absent, None, None);
    assert_eq!(a.settings, c.bootstrap.dcs);
}

#[test]
fn an_agent_starting_on_a_bad_config_says_so_and_never_writes_a_refused_parameter() {
    let c = local();
    let bad = json!({"ttl": "abc", "synchronous_mode": true,
                     "postgresql": {"parameters": {"max_connections": "abc"}}});
    let a = adopt_dynamic(&c, StoredConfig::Value(&bad), None, Some(&catalog()));
    assert!(a.problem.unwrap().contains("no earlier valid settings"));
    assert_eq!(
        a.settings.ttl,
        Duration::from_secs(12),
        "bad ttl: bootstrap's"
    );
    assert_eq!(a.settings.sync.mode, SyncMode::On, "valid fields are used");
    assert!(
        !a.settings.parameters.contains_key("max_connections"),
        "{:?}",
        a.settings.parameters
    );
}
