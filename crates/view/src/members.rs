//! patronictl's `output_members`: the member table of `list`, `topology`, of every verb
//! that shows the cluster before acting and of the demo, with `-e` columns, the topology
//! tree and the footer (maintenance mode, scheduled switchover). The one renderer of it:
//! patronictl's ctl.py is the reference for every format.

use std::collections::BTreeMap;

use pgkeel_core::cluster::Cluster;
use serde_json::{Map, Value};

use crate::output::{print_output, py_str, Align, Format};
use crate::pyfmt::{yaml_dump, yaml_flow};

/// How to print the members: one of `-f`'s formats, or `topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Format(Format),
    Topology,
}

/// Python's `str.title()`: "standby leader" → "Standby Leader".
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if prev_letter {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_letter = c.is_alphabetic();
    }
    out
}

/// Python's `round()` (half to even) of bytes → MB.
fn lag_mb(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(b) => {
                let x = b as f64 / 1024.0 / 1024.0;
                let r = x.round();
                let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
                    r - x.signum()
                } else {
                    r
                };
                Value::from(r as i64)
            }
            None => v.clone(),
        },
        Value::String(s) if s == "unknown" => Value::from(""),
        other => other.clone(),
    }
}

/// `topology_sort`: the leader, then each member under its upstream (`replicatefrom` when
/// that names another replica, else the leader), names prefixed `+ ` per level.
fn topology_sort(members: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let role = |m: &Map<String, Value>| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = |m: &Map<String, Value>| {
        m.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let leader = members
        .iter()
        .find(|m| role(m).ends_with("leader"))
        .cloned();
    let leader_name = leader.as_ref().map(name);
    let replicas: Vec<String> = members
        .iter()
        .filter(|m| !role(m).ends_with("leader"))
        .map(name)
        .collect();
    let mut children: BTreeMap<Option<String>, Vec<Map<String, Value>>> = BTreeMap::new();
    for m in &members {
        if role(m).ends_with("leader") {
            continue;
        }
        let own = name(m);
        let parent = m
            .get("tags")
            .and_then(|t| t.get("replicatefrom"))
            .and_then(Value::as_str)
            .filter(|p| *p != own && replicas.iter().any(|r| r == p))
            .map(str::to_string)
            .or_else(|| leader_name.clone());
        children.entry(parent).or_default().push(m.clone());
    }
    let mut out = Vec::new();
    let root = leader.unwrap_or_default();
    walk(0, root, &mut children, &mut out);
    out
}

fn walk(
    level: usize,
    mut member: Map<String, Value>,
    children: &mut BTreeMap<Option<String>, Vec<Map<String, Value>>>,
    out: &mut Vec<Map<String, Value>>,
) {
    let name = member
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    // A cycle of replicatefrom tags cannot loop forever: each list is taken once.
    let kids = children.remove(&name).unwrap_or_default();
    if level > 0 {
        let shown = format!(
            "{}+ {}",
            " ".repeat((level - 1) * 2),
            name.clone().unwrap_or_default()
        );
        member.insert("name".into(), shown.into());
    }
    if name.as_deref().is_some_and(|n| !n.is_empty()) {
        out.push(member);
    }
    for k in kids {
        walk(level + 1, k, children, out);
    }
}

/// The member table, exactly as patronictl prints it (trailing newline included), followed
/// for pretty and topology views by the service lines. `json` is the cluster as
/// `GET /cluster` shows it (Patroni's `cluster_as_json`, `pgkeel_api::cluster_json`);
/// `cluster` gives the title's system identifier.
pub fn output_members(
    cluster: &Cluster,
    json: &Value,
    name: &str,
    extended: bool,
    view: View,
) -> String {
    let initialize = match cluster.initialize.as_deref() {
        None => "uninitialized",
        Some("") => "initializing",
        Some(id) => id,
    };
    let members: Vec<Map<String, Value>> = json["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_object().cloned()).collect())
        .unwrap_or_default();
    let with_host: Vec<&Map<String, Value>> =
        members.iter().filter(|m| m.contains_key("host")).collect();

    let mut columns: Vec<&str> = vec![
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
    for c in [
        "Pending restart",
        "Pending restart reason",
        "Scheduled restart",
        "Tags",
    ] {
        let key = c.to_lowercase().replace(' ', "_");
        let any = with_host.iter().any(|m| m.get(&key).is_some_and(truthy));
        if extended || any {
            columns.push(c);
        }
    }
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

    let fmt = match view {
        View::Format(f) => f,
        View::Topology => Format::Pretty,
    };
    let pretty_like = fmt == Format::Pretty;
    let ordered = if view == View::Topology {
        topology_sort(members)
    } else {
        members
    };
    let rows: Vec<Vec<Value>> = ordered
        .iter()
        .map(|m| member_row(m, name, &columns, append_port, view))
        .collect();

    let title = format!(" Cluster: {name} ({initialize}) ");
    let mut out = if pretty_like {
        let cols: Vec<(&str, Align)> = columns[1..]
            .iter()
            .map(|c| match *c {
                "Receive Lag" | "Replay Lag" => ("Lag", Align::Right),
                "TL" | "Receive LSN" | "Replay LSN" => (*c, Align::Right),
                _ => (*c, Align::Left),
            })
            .collect();
        let rows: Vec<Vec<Value>> = rows.into_iter().map(|r| r[1..].to_vec()).collect();
        print_output(&cols, &rows, Format::Pretty, &title)
    } else {
        let cols: Vec<(&str, Align)> = columns.iter().map(|c| (*c, Align::Left)).collect();
        print_output(&cols, &rows, fmt, &title)
    };
    if pretty_like {
        let info = service_info(json);
        if !info.is_empty() {
            out.push(' ');
            out.push_str(&info.join("\n "));
            out.push('\n');
        }
    }
    out
}

fn member_row(
    m: &Map<String, Value>,
    cluster: &str,
    columns: &[&str],
    append_port: bool,
    view: View,
) -> Vec<Value> {
    let get = |k: &str| m.get(k).cloned().unwrap_or_else(|| Value::from(""));
    let (mut receive_lsn, mut receive_lag) = (get("receive_lsn"), get("receive_lag"));
    let (mut replay_lsn, mut replay_lag) = (get("replay_lsn"), get("replay_lag"));
    let lsn = get("lsn");
    let unknown = Value::from("unknown");
    if receive_lsn == unknown && replay_lsn == unknown && lsn != "" && lsn != unknown {
        if m.get("state").and_then(Value::as_str) == Some("streaming") {
            (receive_lag, receive_lsn) = (get("lag"), lsn);
        } else {
            (replay_lag, replay_lsn) = (get("lag"), lsn);
        }
    }
    let mut host = match get("host") {
        Value::String(s) => s,
        other => other.to_string(),
    };
    if append_port && !host.is_empty() {
        if let Some(port) = m.get("port") {
            host = format!("{host}:{port}");
        }
    }
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    let hide_long = matches!(view, View::Topology | View::Format(Format::Pretty));
    let reason: Vec<String> = m
        .get("pending_restart_reason")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let s = |x: &str| v.get(x).map(py_str).unwrap_or_default();
                    let full = format!("{k}: {}->{}", s("old_value"), s("new_value"));
                    if hide_long && full.chars().count() > 50 {
                        format!("{k}: [hidden - too long]")
                    } else {
                        full
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let scheduled = match m.get("scheduled_restart") {
        Some(Value::Object(s)) => {
            let mut v = s.get("schedule").map(py_str).unwrap_or_default();
            if let Some(pv) = s.get("postgres_version") {
                v.push_str(&format!(" if version < {}", py_str(pv)));
            }
            Value::from(v)
        }
        _ => Value::from(""),
    };
    let tags = match m.get("tags") {
        Some(t @ Value::Object(o)) if !o.is_empty() => match view {
            View::Format(Format::Pretty) => Value::from(yaml_dump(t).trim().to_string()),
            View::Format(Format::Tsv) | View::Topology => Value::from(yaml_flow(t)),
            View::Format(_) => t.clone(),
        },
        _ => Value::from(""),
    };
    let pending = m.get("pending_restart").is_some_and(truthy);
    columns
        .iter()
        .map(|c| match *c {
            "Cluster" => Value::from(cluster),
            "Member" => get("name"),
            "Host" => Value::from(host.clone()),
            "Role" => Value::from(title_case(&role.replace('_', " "))),
            "State" => get("state"),
            "TL" => get("timeline"),
            "Receive LSN" => receive_lsn.clone(),
            "Receive Lag" => lag_mb(&receive_lag),
            "Replay LSN" => replay_lsn.clone(),
            "Replay Lag" => lag_mb(&replay_lag),
            "Pending restart" => Value::from(if pending { "*" } else { "" }),
            "Pending restart reason" => Value::from(reason.join("\n")),
            "Scheduled restart" => scheduled.clone(),
            "Tags" => tags.clone(),
            _ => Value::from(""),
        })
        .collect()
}

/// `get_cluster_service_info`.
fn service_info(json: &Value) -> Vec<String> {
    let mut info = Vec::new();
    if pgkeel_core::flag::is_on(json.get("pause")) {
        info.push("Maintenance mode: on".to_string());
    }
    if let Some(s) = json.get("scheduled_switchover") {
        let mut line = format!(
            "Switchover scheduled at: {}",
            s.get("at").and_then(Value::as_str).unwrap_or("")
        );
        for k in ["from", "to"] {
            if let Some(v) = s.get(k).and_then(Value::as_str) {
                line.push_str(&format!("\n{k:>24}: {v}"));
            }
        }
        info.push(line);
    }
    info
}

// Python's `bool(v)`, as patronictl tests a member's value (`if member.get(...)`).
use pgkeel_core::flag::truthy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_title_and_truth() {
        assert_eq!(lag_mb(&Value::from(3 * 1024 * 1024 / 2)), Value::from(2));
        assert_eq!(lag_mb(&Value::from(5 * 1024 * 1024 / 2)), Value::from(2));
        assert_eq!(lag_mb(&Value::from("unknown")), Value::from(""));
        assert_eq!(title_case("standby leader"), "Standby Leader");
        assert_eq!(title_case("replica"), "Replica");
        assert_eq!(title_case("sync standby"), "Sync Standby");
        for v in [
            Value::Null,
            Value::from(false),
            Value::from(0),
            Value::from(""),
        ] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [Value::from(true), Value::from(1), Value::from("false")] {
            assert!(truthy(&v), "{v}");
        }
    }
}
