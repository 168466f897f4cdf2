//! The operator's requests (switchover, restart, reinit, config changes): what they mean
//! for this node, as pure functions the runtime calls. Messages and codes are Patroni's.
//! Restarts (immediate and scheduled) are in [`restart`], switchover and failover
//! requests in [`switchover`].

use serde_json::Value;

use crate::action::{slot_name, Action, StopMode, Upstream};
use crate::cluster::Cluster;

pub mod restart;
pub mod switchover;

pub use restart::restart_plan;

/// Whether the ISO 8601 time `at` (with a time zone) has come; `None` when it does not
/// parse. Used for scheduled switchovers and restarts.
pub fn due(at: &str, now: std::time::SystemTime) -> Option<bool> {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .or_else(|_| chrono::DateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?;
    let now: chrono::DateTime<chrono::Utc> = now.into();
    Some(t <= now)
}

/// What `POST /reinitialize` does: wipe this replica and clone it again from the leader,
/// or from a running replica tagged `clonefrom` unless `from_leader`.
pub fn reinit_plan(
    cluster: &Cluster,
    cfg: &crate::Config,
    holds_leader_key: bool,
    from_leader: bool,
    use_slots: bool,
) -> Result<Vec<Action>, (u16, String)> {
    let me = cfg.name.as_str();
    if holds_leader_key {
        return Err((503, "I am the leader, can not reinitialize".into()));
    }
    let Some(leader) = cluster.leader_name() else {
        return Err((503, "Cluster has no leader, can not reinitialize".into()));
    };
    let upstream = |name: &str, slot: bool| {
        let (host, port) = cluster.member(name)?.pg_host_port()?;
        Some(Upstream {
            member: name.to_string(),
            host,
            port,
            slot: (slot && use_slots).then(|| slot_name(me)),
        })
    };
    let follow = upstream(leader, true).ok_or_else(|| {
        (
            503,
            format!("the leader {leader} has not published where to reach it"),
        )
    })?;
    let tagged = (!from_leader)
        .then(|| {
            cluster.members.iter().find_map(|(n, e)| {
                let m = e.value()?;
                (n != me && n != leader && m.tags.clonefrom && m.state == "running")
                    .then(|| upstream(n, false))
                    .flatten()
            })
        })
        .flatten();
    let is_leader = tagged.is_none();
    let source = tagged.unwrap_or_else(|| follow.clone());
    // Patroni's `reinitialize`: the replica creation methods, or basebackup alone from the
    // leader with `from_leader`.
    let plan = crate::plans::clone_plan(
        cfg,
        crate::plans::CloneFrom::Member {
            source: &source,
            leader: is_leader,
        },
        from_leader,
    );
    Ok(vec![
        Action::Stop {
            mode: StopMode::Immediate,
        },
        Action::Reinit { plan },
        Action::StartReplica {
            upstream: Some(follow),
        },
    ])
}

/// `PATCH /config` as Patroni's `patch_config` applies it: an object merges into an
/// existing object recursively and `null` deletes an existing key; anything else, an object
/// for a key that is absent included, is stored as sent, its `null`s too (so
/// `{"slots": {"s1": null}}` on a `/config` without `slots` stores the physical slot `s1`,
/// as Patroni's acceptance suite relies on).
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        match (out.get(k), v) {
            (_, Value::Null) => {
                out.remove(k);
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                let merged = merge_patch(existing, v);
                out.insert(k.clone(), merged);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::{LeaderKey, MemberEntry};
    use crate::dcs_values::{FailoverValue, MemberValue};
    use serde_json::json;

    /// Three members (n3 tagged clonefrom), `leader` holding the key, a failover key if asked.
    pub(crate) fn cluster(leader: Option<&str>, failover: bool) -> Cluster {
        let mut c = Cluster {
            leader: leader.map(|n| LeaderKey {
                name: n.into(),
                lease: 1,
                revision: 1,
            }),
            failover: failover.then(FailoverValue::default),
            ..Default::default()
        };
        for (n, port, clonefrom) in [("n1", 5001, false), ("n2", 5002, false), ("n3", 5003, true)] {
            let mut m = MemberValue {
                conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
                state: "running".into(),
                ..Default::default()
            };
            m.tags.clonefrom = clonefrom;
            c.members.insert(n.into(), MemberEntry::Ok(m));
        }
        c
    }

    #[test]
    fn reinit_refuses_the_leader_and_prefers_clonefrom() {
        let cfg = |n: &str| crate::decide::tests::cfg(n);
        let c = cluster(Some("n1"), false);
        assert_eq!(
            reinit_plan(&c, &cfg("n1"), true, false, true)
                .unwrap_err()
                .1,
            "I am the leader, can not reinitialize"
        );
        assert_eq!(
            reinit_plan(&cluster(None, false), &cfg("n2"), false, false, true)
                .unwrap_err()
                .1,
            "Cluster has no leader, can not reinitialize"
        );
        let source = |plan: &[Action]| match &plan[1] {
            Action::Reinit { plan } => plan.source.clone().unwrap(),
            other => panic!("{other:?}"),
        };
        let plan = reinit_plan(&c, &cfg("n2"), false, false, true).unwrap();
        let s = source(&plan);
        assert!(s.member == "n3" && s.slot.is_none(), "{s:?}");
        let plan = reinit_plan(&c, &cfg("n2"), false, true, true).unwrap();
        assert_eq!(source(&plan).member, "n1");
        assert!(
            matches!(&plan[2], Action::StartReplica { upstream: Some(u) } if u.member == "n1" && u.slot.as_deref() == Some("n2"))
        );
    }

    #[test]
    fn reinit_runs_the_replica_methods_unless_from_the_leader() {
        use crate::action::CloneMethod;
        use crate::config::{CustomReplicaMethod, ReplicaMethod};
        let mut cfg = crate::decide::tests::cfg("n2");
        cfg.postgresql.create_replica_methods = vec![
            ReplicaMethod::Command(CustomReplicaMethod {
                name: "pgbackrest".into(),
                command: vec!["pgbackrest".into(), "restore".into()],
                no_params: true,
                no_leader: false,
                keep_data: true,
                params: vec![("keep_data".into(), "True".into())],
            }),
            ReplicaMethod::Basebackup,
        ];
        let c = cluster(Some("n1"), false);
        let methods = |from_leader: bool| match &reinit_plan(&c, &cfg, false, from_leader, true)
            .unwrap()[1]
        {
            Action::Reinit { plan } => plan.methods.clone(),
            other => panic!("{other:?}"),
        };
        let names: Vec<String> = methods(false)
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        assert_eq!(names, ["pgbackrest", "basebackup"]);
        assert!(matches!(
            &methods(false)[0],
            CloneMethod::Command { argv, keep_data: true, .. } if argv == &["pgbackrest", "restore"]
        ));
        // --from-leader: basebackup alone, from the leader.
        assert!(matches!(
            methods(true).as_slice(),
            [CloneMethod::Basebackup { connstring }] if connstring == "dbname=postgres user=replicator host=127.0.0.1 port=5001"
        ));
    }

    #[test]
    fn due_compares_with_the_time_zone() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000); // 2027-01-15T08:00:00Z
        assert_eq!(due("2027-01-15T08:00:00+00:00", now), Some(true));
        assert_eq!(due("2027-01-15T09:00:01+01:00", now), Some(false));
        assert_eq!(due("2027-01-15T07:59:59Z", now), Some(true));
        assert_eq!(due("tomorrow", now), None);
    }

    #[test]
    fn merge_patch_follows_patroni_patch_config() {
        let t = json!({"ttl": 10, "postgresql": {"parameters": {"a": 1, "b": 2}}, "pause": true});
        let p = json!({"postgresql": {"parameters": {"a": null, "c": 3}}, "pause": null, "loop_wait": 1});
        assert_eq!(
            merge_patch(&t, &p),
            json!({"ttl": 10, "postgresql": {"parameters": {"b": 2, "c": 3}}, "loop_wait": 1})
        );
        // A new key keeps its value as sent, nulls included (Patroni's physical slots
        // written as `null`); an existing one loses the entries patched to null.
        let p = json!({"slots": {"dcs_slot_1": null, "postgres_0": null}});
        assert_eq!(merge_patch(&t, &p)["slots"], p["slots"]);
        let with_slots = merge_patch(&t, &p);
        assert_eq!(
            merge_patch(
                &with_slots,
                &json!({"slots": {"postgres_0": null, "s2": {"type": "physical"}}})
            )["slots"],
            json!({"dcs_slot_1": null, "s2": {"type": "physical"}})
        );
    }
}
