//! `effective_dynamic`: the DCS `/config` over the local `bootstrap.dcs`, field by field.

use std::time::Duration;

use pgkeel_core::config::{effective_dynamic, load_str, Config};
use serde_json::json;

fn local() -> Config {
    let text = "\
scope: batman
name: node1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
bootstrap:
  dcs:
    postgresql:
      parameters: {max_connections: 100}
      pg_hba: [local all all trust]
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}
";
    match load_str(text, "local.yml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn without_a_dcs_value_the_local_bootstrap_applies() {
    let c = local();
    assert_eq!(effective_dynamic(&c, None), c.bootstrap.dcs);
    assert_eq!(
        effective_dynamic(&c, Some(&json!("not an object"))),
        c.bootstrap.dcs
    );
    assert_eq!(effective_dynamic(&c, Some(&json!(null))), c.bootstrap.dcs);
}

#[test]
fn a_valid_dcs_value_wins() {
    let c = local();
    let dcs = json!({
        "ttl": 30, "loop_wait": 10, "retry_timeout": 10,
        "maximum_lag_on_failover": 0,
        "postgresql": {
            "use_pg_rewind": false, "use_slots": false,
            "parameters": {"max_connections": 200, "hot_standby": true},
            "pg_hba": ["host all all 127.0.0.1/32 trust"]
        }
    });
    let d = effective_dynamic(&c, Some(&dcs));
    assert_eq!(
        (d.ttl, d.loop_wait, d.retry_timeout),
        (secs(30), secs(10), secs(10))
    );
    assert_eq!(d.maximum_lag_on_failover, 0);
    assert!(!d.use_pg_rewind && !d.use_slots);
    assert_eq!(d.parameters["max_connections"], "200");
    assert_eq!(d.parameters["hot_standby"], "on");
    assert_eq!(d.pg_hba, ["host all all 127.0.0.1/32 trust"]);
    assert_eq!(d.json, dcs, "json is /config as stored");
}

#[test]
fn bad_dcs_fields_fall_back_one_by_one() {
    let c = local();
    let dcs = json!({
        "ttl": "thirty", "loop_wait": 1, "retry_timeout": -3,
        "maximum_lag_on_failover": "lots",
        "postgresql": {"use_pg_rewind": "perhaps", "use_slots": false, "parameters": [1], "pg_hba": "x"}
    });
    let d = effective_dynamic(&c, Some(&dcs));
    let l = &c.bootstrap.dcs;
    assert_eq!(
        (d.ttl, d.loop_wait, d.retry_timeout),
        (l.ttl, secs(1), l.retry_timeout)
    );
    assert_eq!(d.maximum_lag_on_failover, l.maximum_lag_on_failover);
    assert_eq!(d.use_pg_rewind, l.use_pg_rewind);
    assert!(!d.use_slots);
    assert_eq!(d.parameters, l.parameters);
    assert_eq!(d.pg_hba, l.pg_hba);
}

#[test]
fn dcs_timings_that_break_the_rule_are_adjusted_as_patroni_does() {
    let c = local(); // 10 / 2 / 3
                     // loop_wait 25 + 2 × 5 > 30: loop_wait is lowered to 30 - 2 × 5.
    let d = effective_dynamic(
        &c,
        Some(&json!({"ttl": 30, "loop_wait": 25, "retry_timeout": 5})),
    );
    assert_eq!(
        (d.ttl, d.loop_wait, d.retry_timeout),
        (secs(30), secs(20), secs(5))
    );
    assert!(!d.timings_adjusted.is_empty());
    // Below the floors: raised to them (ttl 2 s, loop_wait 0.2 s, retry_timeout 0.5 s),
    // then the rule.
    let d = effective_dynamic(
        &c,
        Some(&json!({"ttl": 1, "loop_wait": 0.1, "retry_timeout": 0.2})),
    );
    assert_eq!(d.ttl, secs(2));
    assert!(d.loop_wait + d.retry_timeout * 2 <= d.ttl);
}

#[test]
fn missing_dcs_fields_take_local_values() {
    let c = local();
    let d = effective_dynamic(&c, Some(&json!({"ttl": 20})));
    assert_eq!(d.ttl, secs(20));
    assert_eq!(d.loop_wait, c.bootstrap.dcs.loop_wait);
    assert_eq!(d.parameters["max_connections"], "100");
    assert_eq!(d.pg_hba, ["local all all trust"]);
}
