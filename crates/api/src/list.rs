//! `patronictl list` output (ctl.py `output_members` + `print_output`), in each of its
//! formats, so that scripts and eyes used to Patroni read pgkeel's the same way.

use pgkeel_core::cluster::Cluster;
use serde_json::{Map, Value};

use crate::cluster_json::cluster_json;
use crate::json_body::truthy;
use crate::pretty_table::{Align, Table};
use crate::pyfmt::{json_dumps, yaml_scalar};
use crate::query::round_half_even;

/// `patronictl list -f <format>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Pretty,
    Json,
    Yaml,
    Tsv,
}

const BASE_COLUMNS: [&str; 10] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];

/// Python's `str.title()` on ASCII: "standby leader" → "Standby Leader".
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        out.extend(if prev_letter {
            c.to_lowercase().collect::<Vec<_>>()
        } else {
            c.to_uppercase().collect()
        });
        prev_letter = c.is_alphabetic();
    }
    out
}

/// A lag in bytes as patronictl shows it: whole MB (Python `round`, ties to even);
/// "unknown" becomes blank.
fn lag_mb(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(b) => Value::from(round_half_even(b as f64 / 1024.0 / 1024.0) as i64),
            None => Value::Number(n),
        },
        Value::String(s) if s == "unknown" => Value::from(""),
        other => other,
    }
}

/// Python's `str(v)` for the values a row holds.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The optional columns, each shown when `-e` asks for it or a member has a value for it
/// (ctl.py `output_members`), with the key of `/cluster` it comes from.
const OPTIONAL_COLUMNS: [(&str, &str); 4] = [
    ("Pending restart", "pending_restart"),
    ("Pending restart reason", "pending_restart_reason"),
    ("Scheduled restart", "scheduled_restart"),
    ("Tags", "tags"),
];

/// `pending_restart_reason` as patronictl shows it: `param: old->new` per line; in the
/// table a line longer than 50 characters is hidden.
fn restart_reason(v: Option<&Value>, hide_long: bool) -> Value {
    let Some(Value::Object(m)) = v else {
        return Value::from("");
    };
    let lines: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            let field = |f: &str| v.get(f).map(py_str).unwrap_or_default();
            let full = format!("{k}: {}->{}", field("old_value"), field("new_value"));
            if hide_long && full.chars().count() > 50 {
                format!("{k}: [hidden - too long]")
            } else {
                full
            }
        })
        .collect();
    Value::from(lines.join("\n"))
}

/// `scheduled_restart` as patronictl shows it: the time, and the version condition.
fn scheduled_restart(v: Option<&Value>) -> Value {
    let Some(Value::Object(m)) = v else {
        return Value::from("");
    };
    let mut out = m.get("schedule").map(py_str).unwrap_or_default();
    if let Some(version) = m.get("postgres_version") {
        out.push_str(&format!(" if version < {}", py_str(version)));
    }
    Value::from(out)
}

/// The rows of the table, one value per column, before any format-specific rendering,
/// from the `/cluster` JSON. `pretty`: the table formats (long restart reasons hidden).
fn rows(
    json: &Value,
    scope: &str,
    extended: bool,
    pretty: bool,
) -> (Vec<&'static str>, Vec<Vec<Value>>) {
    let members: Vec<Map<String, Value>> = json["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_object().cloned()).collect())
        .unwrap_or_default();

    let with_host: Vec<&Map<String, Value>> =
        members.iter().filter(|m| m.contains_key("host")).collect();
    let mut columns: Vec<&'static str> = BASE_COLUMNS.to_vec();
    for (column, key) in OPTIONAL_COLUMNS {
        if extended || with_host.iter().any(|m| m.get(key).is_some_and(truthy)) {
            columns.push(column);
        }
    }
    // Show host:port when someone runs on a non-standard port or two members share a host.
    let mut hosts: Vec<&str> = with_host
        .iter()
        .filter_map(|m| m.get("host").and_then(Value::as_str))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let append_port = with_host
        .iter()
        .any(|m| m.get("port").is_some_and(|p| p.as_u64() != Some(5432)))
        || hosts.len() < with_host.len();

    let rows = members
        .iter()
        .map(|m| {
            let get = |k: &str| m.get(k).cloned().unwrap_or_else(|| Value::from(""));
            let (mut receive_lsn, mut receive_lag) = (get("receive_lsn"), get("receive_lag"));
            let (mut replay_lsn, mut replay_lag) = (get("replay_lsn"), get("replay_lag"));
            let lsn = get("lsn");
            // Members written by Patroni < 4.1 publish only xlog_location: show it in the
            // column that matches their state.
            let unknown = Value::from("unknown");
            if receive_lsn == unknown && replay_lsn == unknown && lsn != "" && lsn != unknown {
                if m.get("state").and_then(Value::as_str) == Some("streaming") {
                    (receive_lag, receive_lsn) = (get("lag"), lsn);
                } else {
                    (replay_lag, replay_lsn) = (get("lag"), lsn);
                }
            }
            let mut host = py_str(&get("host"));
            if append_port && !host.is_empty() {
                if let Some(port) = m.get("port") {
                    host = format!("{host}:{port}");
                }
            }
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            columns
                .iter()
                .map(|c| match *c {
                    "Cluster" => Value::from(scope),
                    "Member" => get("name"),
                    "Host" => Value::from(host.clone()),
                    "Role" => Value::from(title_case(&role.replace('_', " "))),
                    "State" => get("state"),
                    "TL" => get("timeline"),
                    "Receive LSN" => receive_lsn.clone(),
                    "Receive Lag" => lag_mb(receive_lag.clone()),
                    "Replay LSN" => replay_lsn.clone(),
                    "Replay Lag" => lag_mb(replay_lag.clone()),
                    "Pending restart" => {
                        let pending = m.get("pending_restart").is_some_and(truthy);
                        Value::from(if pending { "*" } else { "" })
                    }
                    "Pending restart reason" => {
                        restart_reason(m.get("pending_restart_reason"), pretty)
                    }
                    "Scheduled restart" => scheduled_restart(m.get("scheduled_restart")),
                    "Tags" => get("tags"),
                    _ => Value::from(""),
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

/// The lines patronictl prints under the table (`get_cluster_service_info`).
fn service_info(json: &Value) -> String {
    let mut info = Vec::new();
    if pgkeel_core::flag::is_on(json.get("pause")) {
        info.push("Maintenance mode: on".to_string());
    }
    if let Some(s) = json.get("scheduled_switchover") {
        let mut line = format!(
            "Switchover scheduled at: {}",
            s.get("at").map(py_str).unwrap_or_default()
        );
        for name in ["from", "to"] {
            if let Some(v) = s.get(name) {
                line.push_str(&format!("\n{name:>24}: {}", py_str(v)));
            }
        }
        info.push(line);
    }
    if info.is_empty() {
        String::new()
    } else {
        format!(" {}\n", info.join("\n "))
    }
}

/// PyYAML block style of a tags mapping (`format_config_for_editing(tags)`).
fn yaml_block(map: &Map<String, Value>, indent: usize) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let pad = " ".repeat(indent);
    keys.iter()
        .map(|k| match &map[*k] {
            Value::Object(inner) if !inner.is_empty() => format!(
                "{pad}{}:\n{}",
                yaml_scalar(&Value::from(k.as_str())),
                yaml_block(inner, indent + 2)
            ),
            v => format!(
                "{pad}{}: {}\n",
                yaml_scalar(&Value::from(k.as_str())),
                yaml_scalar(v)
            ),
        })
        .collect()
}

/// `patronictl list` for one cluster, exactly as patronictl prints it, trailing newline
/// included (`click.echo`). Pretty output starts with the title in the top border:
/// `+ Cluster: <scope> (<sysid>) -+---`, with `(uninitialized)` before any `initialize`
/// key and `(initializing)` while it is empty.
pub fn list_table(cluster: &Cluster, scope: &str, format: ListFormat) -> String {
    list_table_extended(cluster, scope, format, false)
}

/// `patronictl list -e`: [`list_table`] with the Pending restart, Pending restart reason,
/// Scheduled restart and Tags columns shown even when no member has a value for them.
pub fn list_table_extended(
    cluster: &Cluster,
    scope: &str,
    format: ListFormat,
    extended: bool,
) -> String {
    render(
        cluster,
        &cluster_json(cluster, scope),
        scope,
        format,
        extended,
    )
}

fn render(
    cluster: &Cluster,
    json: &Value,
    scope: &str,
    format: ListFormat,
    extended: bool,
) -> String {
    let (columns, rows) = rows(json, scope, extended, format == ListFormat::Pretty);
    match format {
        ListFormat::Json | ListFormat::Yaml => {
            // Empty values are dropped (`if not header or str(v)`).
            let elements: Vec<Vec<(&str, &Value)>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .copied()
                        .zip(r)
                        .filter(|(_, v)| !py_str(v).is_empty())
                        .collect()
                })
                .collect();
            if format == ListFormat::Json {
                let list: Vec<String> = elements
                    .iter()
                    .map(|e| {
                        let fields: Vec<String> = e
                            .iter()
                            .map(|(k, v)| {
                                format!("{}: {}", json_dumps(&Value::from(*k)), json_dumps(v))
                            })
                            .collect();
                        format!("{{{}}}", fields.join(", "))
                    })
                    .collect();
                format!("[{}]\n", list.join(", "))
            } else if elements.is_empty() {
                "[]\n\n".to_string()
            } else {
                // yaml.safe_dump sorts keys; click.echo adds a newline after the dump's own.
                let mut out = String::new();
                for e in &elements {
                    let map: Map<String, Value> = e
                        .iter()
                        .map(|(k, v)| (k.to_string(), (*v).clone()))
                        .collect();
                    let block = yaml_block(&map, 2);
                    out.push_str("- ");
                    out.push_str(&block[2..]);
                }
                out.push('\n');
                out
            }
        }
        ListFormat::Tsv => {
            let mut out = columns.join("\t");
            out.push('\n');
            for r in &rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|v| match v {
                        v @ Value::Object(_) => crate::pyfmt::yaml_flow(v),
                        v => py_str(v),
                    })
                    .collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            out
        }
        ListFormat::Pretty => {
            let initialize = match cluster.initialize.as_deref() {
                None => "uninitialized",
                Some("") => "initializing",
                Some(id) => id,
            };
            let title = format!(" Cluster: {scope} ({initialize}) ");
            let columns: Vec<(&str, Align)> = columns[1..]
                .iter()
                .map(|c| match *c {
                    "Receive Lag" | "Replay Lag" => ("Lag", Align::Right),
                    "TL" | "Receive LSN" | "Replay LSN" => (*c, Align::Right),
                    _ => (*c, Align::Left),
                })
                .collect();
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r[1..]
                        .iter()
                        .map(|v| match v {
                            Value::Object(m) => yaml_block(m, 0).trim().to_string(),
                            v => py_str(v),
                        })
                        .collect()
                })
                .collect();
            let mut out = Table {
                title: &title,
                columns,
                rows,
            }
            .render();
            out.push('\n');
            out.push_str(&service_info(json));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pgkeel_core::cluster::{LeaderKey, MemberEntry};
    use pgkeel_core::dcs_values::{MemberValue, StatusValue};

    use super::*;

    fn member(port: u16, state: &str, lsn: Option<u64>) -> MemberValue {
        MemberValue {
            conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
            api_url: format!("http://127.0.0.1:{}/patroni", 8008 + port - 5432),
            state: "running".into(),
            role: if lsn.is_some() { "replica" } else { "primary" }.into(),
            replication_state: lsn.map(|_| state.to_string()),
            receive_lsn: lsn,
            replay_lsn: lsn,
            xlog_location: lsn,
            timeline: Some(5),
            ..Default::default()
        }
    }

    /// The cluster of the `patronictl list` example in Patroni's docs/patronictl.rst.
    fn batman() -> Cluster {
        let lsn = 0x400_04E8;
        let mut members = BTreeMap::new();
        members.insert(
            "postgresql0".into(),
            MemberEntry::Ok(member(5432, "", None)),
        );
        members.insert(
            "postgresql1".into(),
            MemberEntry::Ok(member(5433, "streaming", Some(lsn))),
        );
        members.insert(
            "postgresql2".into(),
            MemberEntry::Ok(member(5434, "streaming", Some(lsn))),
        );
        Cluster {
            initialize: Some("7277694203142172922".into()),
            leader: Some(LeaderKey {
                name: "postgresql0".into(),
                lease: 1,
                revision: 1,
            }),
            members,
            status: Some(StatusValue {
                optime: lsn,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pretty_matches_patroni_docs_example() {
        let want = "\
+ Cluster: batman (7277694203142172922) -+-----------+----+-------------+-----+------------+-----+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  5 |             |     |            |     |
| postgresql1 | 127.0.0.1:5433 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |
| postgresql2 | 127.0.0.1:5434 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
";
        assert_eq!(list_table(&batman(), "batman", ListFormat::Pretty), want);
    }

    #[test]
    fn sync_and_quorum_standby_roles() {
        use pgkeel_core::dcs_values::SyncValue;
        let mut c = batman();
        c.sync = Some(SyncValue {
            leader: Some("postgresql0".into()),
            sync_standby: ["postgresql1".to_string()].into(),
            quorum: 0,
        });
        c.config = Some(serde_json::json!({"synchronous_mode": true}));
        let want = "\
+ Cluster: batman (7277694203142172922) ------+-----------+----+-------------+-----+------------+-----+
| Member      | Host           | Role         | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+-------------+----------------+--------------+-----------+----+-------------+-----+------------+-----+
| postgresql0 | 127.0.0.1:5432 | Leader       | running   |  5 |             |     |            |     |
| postgresql1 | 127.0.0.1:5433 | Sync Standby | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |
| postgresql2 | 127.0.0.1:5434 | Replica      | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |
+-------------+----------------+--------------+-----------+----+-------------+-----+------------+-----+
";
        let out = list_table(&c, "batman", ListFormat::Pretty);
        assert_eq!(out, want, "\n{out}");

        c.config = Some(serde_json::json!({"synchronous_mode": "quorum"}));
        let roles = |c: &Cluster| -> Vec<String> {
            list_table(c, "batman", ListFormat::Tsv)
                .lines()
                .skip(1)
                .map(|l| l.split('\t').nth(3).unwrap().to_string())
                .collect()
        };
        assert_eq!(roles(&c), ["Leader", "Quorum Standby", "Replica"]);
        // The /sync key without synchronous_mode in /config is ignored, as by patronictl.
        c.config = None;
        assert_eq!(roles(&c), ["Leader", "Replica", "Replica"]);
    }

    #[test]
    fn host_gets_port_only_when_needed() {
        let host_of = |c: &Cluster| {
            let out = list_table(c, "x", ListFormat::Tsv);
            out.lines()
                .skip(1)
                .map(|l| l.split('\t').nth(2).unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let mut c = batman();
        // Shared host: ports shown.
        assert_eq!(host_of(&c)[0], "127.0.0.1:5432");
        // Distinct hosts, all on 5432: host only.
        for (i, (_, m)) in c.members.iter_mut().enumerate() {
            if let MemberEntry::Ok(m) = m {
                m.conn_url = format!("postgres://10.0.0.{i}:5432/postgres");
            }
        }
        assert_eq!(host_of(&c), vec!["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
        // One non-standard port: ports everywhere.
        if let Some(MemberEntry::Ok(m)) = c.members.get_mut("postgresql2") {
            m.conn_url = "postgres://10.0.0.2:6432/postgres".into();
        }
        assert_eq!(
            host_of(&c),
            vec!["10.0.0.0:5432", "10.0.0.1:5432", "10.0.0.2:6432"]
        );
    }

    #[test]
    fn json_drops_empty_values_and_keeps_column_order() {
        let mut c = batman();
        if let Some(MemberEntry::Ok(m)) = c.members.get_mut("postgresql2") {
            m.replay_lsn = Some(0x400_04E8 - 3 * 1024 * 1024);
        }
        assert_eq!(
            list_table(&c, "batman", ListFormat::Json),
            concat!(
                r#"[{"Cluster": "batman", "Member": "postgresql0", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 5}, "#,
                r#"{"Cluster": "batman", "Member": "postgresql1", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming", "TL": 5, "Receive LSN": "0/40004E8", "Receive Lag": 0, "Replay LSN": "0/40004E8", "Replay Lag": 0}, "#,
                r#"{"Cluster": "batman", "Member": "postgresql2", "Host": "127.0.0.1:5434", "Role": "Replica", "State": "streaming", "TL": 5, "Receive LSN": "0/40004E8", "Receive Lag": 0, "Replay LSN": "0/3D004E8", "Replay Lag": 3}]"#,
                "\n"
            )
        );
    }

    #[test]
    fn yaml_and_tsv() {
        let c = batman();
        let yaml = list_table(&c, "batman", ListFormat::Yaml);
        assert!(yaml.starts_with(
            "- Cluster: batman\n  Host: 127.0.0.1:5432\n  Member: postgresql0\n  Role: Leader\n  State: running\n  TL: 5\n- Cluster: batman\n"
        ), "{yaml}");
        assert!(yaml.ends_with("  Replay Lag: 0\n  Role: Replica\n  State: streaming\n  TL: 5\n\n"));
        let tsv = list_table(&c, "batman", ListFormat::Tsv);
        let mut lines = tsv.lines();
        assert_eq!(
            lines.next(),
            Some("Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag")
        );
        assert_eq!(
            lines.next(),
            Some("batman\tpostgresql0\t127.0.0.1:5432\tLeader\trunning\t5\t\t\t\t")
        );
        assert_eq!(
            list_table(&Cluster::default(), "x", ListFormat::Yaml),
            "[]\n\n"
        );
        assert_eq!(
            list_table(&Cluster::default(), "x", ListFormat::Json),
            "[]\n"
        );
    }

    #[test]
    fn uninitialized_initializing_unknown_lsn_pause_and_tags() {
        let mut c = batman();
        c.initialize = None;
        c.config = Some(serde_json::json!({"pause": true}));
        if let Some(MemberEntry::Ok(m)) = c.members.get_mut("postgresql1") {
            m.receive_lsn = None;
            m.replay_lsn = None;
            m.xlog_location = None;
            m.replication_state = None;
            m.state = "starting".into();
            m.tags.nofailover = true;
            m.tags.other.insert("zone".into(), "a".into());
        }
        let want = "\
+ Cluster: batman (uninitialized) -------+-----------+----+-------------+-----+------------+-----+------------------+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags             |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------+
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  5 |             |     |            |     |                  |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------+
| postgresql1 | 127.0.0.1:5433 | Replica | starting  |  5 |     unknown |     |    unknown |     | nofailover: true |
|             |                |         |           |    |             |     |            |     | zone: a          |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------+
| postgresql2 | 127.0.0.1:5434 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |                  |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------+
 Maintenance mode: on
";
        let got = list_table(&c, "batman", ListFormat::Pretty);
        assert_eq!(got, want, "\n{got}");
        c.initialize = Some(String::new());
        assert!(list_table(&c, "batman", ListFormat::Pretty)
            .starts_with("+ Cluster: batman (initializing) --------+"));
    }

    #[test]
    fn extended_columns_and_restart_values() {
        let c = batman();
        let mut json = cluster_json(&c, "batman");
        let m1 = json["members"][1].as_object_mut().unwrap();
        m1.insert("pending_restart".into(), true.into());
        m1.insert(
            "pending_restart_reason".into(),
            serde_json::json!({
                "max_connections": {"old_value": "100", "new_value": "200"},
                "shared_preload_libraries": {"old_value": "pg_stat_statements", "new_value": "pg_stat_statements,auto_explain"}
            }),
        );
        m1.insert(
            "scheduled_restart".into(),
            serde_json::json!({"schedule": "2024-06-01T13:00:00+00:00", "postgres_version": "16.4"}),
        );
        let tsv = render(&c, &json, "batman", ListFormat::Tsv, false);
        let mut lines = tsv.lines();
        assert!(lines
            .next()
            .unwrap()
            .ends_with("\tReplay Lag\tPending restart\tPending restart reason\tScheduled restart"));
        assert!(lines.next().unwrap().ends_with("\t\t\t"));
        let row = lines.next().unwrap();
        assert!(row.ends_with("\t*\tmax_connections: 100->200"), "{row}");
        // The second reason line is not hidden outside the table.
        let row = lines.next().unwrap();
        assert_eq!(
            row,
            "shared_preload_libraries: pg_stat_statements->pg_stat_statements,auto_explain\t2024-06-01T13:00:00+00:00 if version < 16.4"
        );
        let pretty = render(&c, &json, "batman", ListFormat::Pretty, false);
        assert!(
            pretty.contains("| shared_preload_libraries: [hidden - too long] |"),
            "{pretty}"
        );
        // -e shows all four even when empty.
        let plain = list_table_extended(&c, "batman", ListFormat::Tsv, true);
        assert!(plain
            .lines()
            .next()
            .unwrap()
            .ends_with("\tPending restart\tPending restart reason\tScheduled restart\tTags"));
    }

    #[test]
    fn footer_with_pause_and_scheduled_switchover() {
        use pgkeel_core::dcs_values::FailoverValue;
        let mut c = batman();
        c.config = Some(serde_json::json!({"pause": true}));
        c.failover = Some(FailoverValue {
            leader: Some("postgresql0".into()),
            member: Some("postgresql2".into()),
            scheduled_at: Some("2023-09-13T18:00:00-03:00".into()),
        });
        let out = list_table(&c, "batman", ListFormat::Pretty);
        assert!(
            out.ends_with(
                "+\n Maintenance mode: on\n Switchover scheduled at: 2023-09-13T18:00:00-03:00\n                    from: postgresql0\n                      to: postgresql2\n"
            ),
            "{out}"
        );
        // Machine formats carry no footer.
        assert!(!list_table(&c, "batman", ListFormat::Tsv).contains("Switchover"));
    }

    #[test]
    fn title_case_like_python() {
        assert_eq!(title_case("standby leader"), "Standby Leader");
        assert_eq!(title_case("replica"), "Replica");
        assert_eq!(title_case("sync standby"), "Sync Standby");
    }
}
