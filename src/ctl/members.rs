//! patronictl's `output_members` for the CLI: the cluster as `GET /cluster` shows it
//! (`pgkeel_api::cluster_json`), rendered by `pgkeel_view` (the demo uses the same
//! renderer).

use pgkeel_core::cluster::Cluster;

use super::table::Format;

/// How to print the members: one of `-f`'s formats, or `topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Format(Format),
    Topology,
}

/// The member table, exactly as patronictl prints it (trailing newline included), followed
/// for pretty and topology views by the service lines.
pub(crate) fn output_members(cluster: &Cluster, name: &str, extended: bool, view: View) -> String {
    let view = match view {
        View::Format(f) => pgkeel_view::View::Format(f.into()),
        View::Topology => pgkeel_view::View::Topology,
    };
    let json = pgkeel_api::cluster_json(cluster, name);
    pgkeel_view::output_members(cluster, &json, name, extended, view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_core::cluster::{LeaderKey, MemberEntry};
    use pgkeel_core::dcs_values::{FailoverValue, MemberValue, StatusValue};

    fn member(i: u16, lsn: Option<u64>) -> MemberValue {
        MemberValue {
            conn_url: format!("postgres://127.0.0.1:{}/postgres", 5432 + i),
            api_url: format!("http://127.0.0.1:{}/patroni", 8008 + i),
            state: "running".into(),
            role: if lsn.is_some() { "replica" } else { "primary" }.into(),
            replication_state: lsn.map(|_| "streaming".to_string()),
            receive_lsn: lsn,
            replay_lsn: lsn,
            timeline: Some(5),
            ..Default::default()
        }
    }

    fn batman() -> Cluster {
        let lsn = 0x400_04E8;
        let mut c = Cluster {
            initialize: Some("7277694203142172922".into()),
            leader: Some(LeaderKey {
                name: "postgresql0".into(),
                lease: 1,
                revision: 1,
            }),
            status: Some(StatusValue {
                optime: lsn,
                ..Default::default()
            }),
            ..Default::default()
        };
        c.members
            .insert("postgresql0".into(), MemberEntry::Ok(member(0, None)));
        c.members
            .insert("postgresql1".into(), MemberEntry::Ok(member(1, Some(lsn))));
        let mut m2 = member(2, Some(lsn));
        m2.tags
            .other
            .insert("replicatefrom".into(), "postgresql1".into());
        c.members.insert("postgresql2".into(), MemberEntry::Ok(m2));
        c
    }

    #[test]
    fn topology_indents_cascading_replicas_and_shows_schedule() {
        let mut c = batman();
        c.failover = Some(FailoverValue {
            leader: Some("postgresql0".into()),
            member: Some("postgresql1".into()),
            scheduled_at: Some("2026-11-22T12:00:00+00:00".into()),
        });
        let out = output_members(&c, "batman", false, View::Topology);
        let want = "\
+ Cluster: batman (7277694203142172922) -----+-----------+----+-------------+-----+------------+-----+------------------------------+
| Member          | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags                         |
+-----------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------------------+
| postgresql0     | 127.0.0.1:5432 | Leader  | running   |  5 |             |     |            |     |                              |
| + postgresql1   | 127.0.0.1:5433 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |                              |
|   + postgresql2 | 127.0.0.1:5434 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 | {replicatefrom: postgresql1} |
+-----------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------------------+
 Switchover scheduled at: 2026-11-22T12:00:00+00:00
                    from: postgresql0
                      to: postgresql1
";
        assert_eq!(out, want, "\n{out}");
    }

    #[test]
    fn extended_adds_the_restart_columns() {
        let out = output_members(&batman(), "batman", true, View::Format(Format::Tsv));
        assert_eq!(
            out.lines().next(),
            Some("Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag\tPending restart\tPending restart reason\tScheduled restart\tTags")
        );
        assert!(out.contains("\t{replicatefrom: postgresql1}\n"), "{out}");
    }

    #[test]
    fn sync_and_quorum_standbys_in_every_view() {
        use pgkeel_core::dcs_values::SyncValue;
        let mut c = batman();
        c.sync = Some(SyncValue {
            leader: Some("postgresql0".into()),
            sync_standby: ["postgresql1".to_string()].into(),
            quorum: 0,
        });
        c.config = Some(serde_json::json!({"synchronous_mode": "on"}));
        let tsv = output_members(&c, "batman", false, View::Format(Format::Tsv));
        let roles: Vec<&str> = tsv
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(3).unwrap())
            .collect();
        assert_eq!(roles, ["Leader", "Sync Standby", "Replica"]);
        // topology keeps a sync standby under the leader (its role does not end in "leader").
        let topo = output_members(&c, "batman", false, View::Topology);
        assert!(
            topo.contains("| + postgresql1   | 127.0.0.1:5433 | Sync Standby |"),
            "{topo}"
        );
        c.config = Some(serde_json::json!({"synchronous_mode": "quorum"}));
        let json = output_members(&c, "batman", false, View::Format(Format::Json));
        assert!(json.contains(r#""Role": "Quorum Standby""#), "{json}");
    }
}

/// The tests of the renderer `pgkeel_api::list_table` had before it was merged into this
/// one, against the example in Patroni's docs/patronictl.rst.
#[cfg(test)]
mod patroni_docs_tests {
    use std::collections::BTreeMap;

    use pgkeel_core::cluster::{LeaderKey, MemberEntry};
    use pgkeel_core::dcs_values::{MemberValue, StatusValue};

    use pgkeel_api::cluster_json;
    use serde_json::Value;

    use super::*;

    #[derive(Clone, Copy, PartialEq)]
    enum ListFormat {
        Pretty,
        Json,
        Yaml,
        Tsv,
    }

    fn view(f: ListFormat) -> pgkeel_view::View {
        use pgkeel_view::Format as F;
        pgkeel_view::View::Format(match f {
            ListFormat::Pretty => F::Pretty,
            ListFormat::Json => F::Json,
            ListFormat::Yaml => F::Yaml,
            ListFormat::Tsv => F::Tsv,
        })
    }

    fn list_table_extended(c: &Cluster, scope: &str, f: ListFormat, extended: bool) -> String {
        render(c, &cluster_json(c, scope), scope, f, extended)
    }

    fn list_table(c: &Cluster, scope: &str, f: ListFormat) -> String {
        list_table_extended(c, scope, f, false)
    }

    fn render(c: &Cluster, json: &Value, scope: &str, f: ListFormat, extended: bool) -> String {
        pgkeel_view::output_members(c, json, scope, extended, view(f))
    }

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
}
