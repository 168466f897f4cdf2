//! The slot rules, one behaviour per test: given a cluster and the local slots, the steps.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn member(name: &str) -> SlotMember {
    SlotMember {
        name: name.into(),
        ..Default::default()
    }
}

fn cascading(name: &str, from: &str, lsn: u64) -> SlotMember {
    SlotMember {
        name: name.into(),
        replicatefrom: Some(from.into()),
        lsn,
        ..Default::default()
    }
}

/// node `me` of a cluster led by `leader` with these members (me included).
fn view(me: &str, leader: &str, members: Vec<SlotMember>) -> SlotView {
    SlotView {
        me: me.into(),
        primary: me == leader,
        leader: Some(leader.into()),
        members,
        use_slots: true,
        ..Default::default()
    }
}

fn physical(name: &str, restart: u64) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        restart_lsn: Some(restart),
        ..Default::default()
    }
}

fn logical(name: &str, db: &str, plugin: &str, confirmed: u64) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        logical: true,
        database: Some(db.into()),
        plugin: Some(plugin.into()),
        confirmed_flush_lsn: Some(confirmed),
        restart_lsn: Some(confirmed),
        ..Default::default()
    }
}

fn cfg(v: serde_json::Value) -> SlotsConfig {
    SlotsConfig::from_dynamic(&v)
}

fn create(name: &str) -> SlotAction {
    SlotAction::CreatePhysical { name: name.into() }
}

fn drops(p: &SlotPlan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            SlotAction::Drop { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn three() -> Vec<SlotMember> {
    vec![member("n1"), member("n2"), member("n3")]
}

#[test]
fn the_leader_creates_member_and_permanent_slots() {
    let v = view("n1", "n1", three());
    let c = cfg(
        json!({"slots": {"test_physical": 0, "cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}}),
    );
    let p = plan(&v, &c, &[]);
    assert_eq!(
        p.actions,
        vec![
            SlotAction::CreateLogical {
                name: "cdc".into(),
                database: "postgres".into(),
                plugin: "test_decoding".into()
            },
            create("n2"),
            create("n3"),
            create("test_physical"),
        ]
    );
    assert!(p.problems.is_empty());
}

#[test]
fn a_replica_keeps_slots_for_the_others_and_the_permanent_ones() {
    // Patroni 4 (member_slots_ttl > 0): every member's slot on every node that may lead,
    // so that whoever is promoted already holds WAL for the others.
    let v = view("n2", "n1", three());
    let c = cfg(json!({"slots": {"test_physical": 0}}));
    let p = plan(&v, &c, &[]);
    assert_eq!(
        p.actions,
        vec![create("n1"), create("n3"), create("test_physical")]
    );
}

#[test]
fn a_nofailover_replica_has_only_its_cascade_slots() {
    let mut v = view(
        "n3",
        "n1",
        vec![
            member("n1"),
            member("n2"),
            member("n3"),
            cascading("n4", "n3", 0),
        ],
    );
    v.nofailover = true;
    let c = cfg(json!({"slots": {"test_physical": 0}}));
    assert_eq!(plan(&v, &c, &[]).actions, vec![create("n4")]);
}

#[test]
fn without_retention_slots_follow_the_topology() {
    let members = vec![member("n1"), member("n2"), cascading("n3", "n2", 0)];
    let c = cfg(json!({"member_slots_ttl": 0}));
    // The leader: n2 only (n3 streams from n2, which exists).
    assert_eq!(
        plan(&view("n1", "n1", members.clone()), &c, &[]).actions,
        vec![create("n2")]
    );
    // n2: the slot of the cascade from it.
    assert_eq!(
        plan(&view("n2", "n1", members), &c, &[]).actions,
        vec![create("n3")]
    );
}

#[test]
fn a_cascading_member_gets_its_slot_on_its_upstream() {
    let v = view(
        "n2",
        "n1",
        vec![member("n1"), member("n2"), cascading("n3", "n2", 500)],
    );
    let p = plan(
        &v,
        &SlotsConfig::default(),
        &[physical("n1", 10), physical("n3", 10)],
    );
    assert_eq!(
        p.wanted["n3"],
        Wanted::Physical {
            lsn: Some(500),
            expected_active: Some(true)
        }
    );
    // Active there: not advanced by hand. The leader's copy of n3's slot is inactive
    // and follows n3's reported position.
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let leader = view(
        "n1",
        "n1",
        vec![member("n1"), member("n2"), cascading("n3", "n2", 500)],
    );
    let p = plan(
        &leader,
        &SlotsConfig::default(),
        &[physical("n2", 10), physical("n3", 10)],
    );
    assert_eq!(
        p.actions,
        vec![SlotAction::AdvancePhysical {
            name: "n3".into(),
            lsn: 500
        }]
    );
}

#[test]
fn slots_of_unknown_names_are_dropped_but_ignored_ones_stay() {
    let v = view("n1", "n1", vec![member("n1"), member("n2")]);
    let c = cfg(
        json!({"ignore_slots": [{"name": "ext_physical", "type": "physical"}, {"plugin": "wal2json"}]}),
    );
    let local = [
        physical("n2", 1),
        physical("gone", 1),
        physical("ext_physical", 1),
        logical("debezium", "app", "wal2json", 1),
        logical("stale", "app", "pgoutput", 1),
    ];
    assert_eq!(drops(&plan(&v, &c, &local)), vec!["gone", "stale"]);
}

#[test]
fn nothing_is_dropped_while_paused() {
    let mut v = view("n1", "n1", vec![member("n1"), member("n2")]);
    v.paused = true;
    let p = plan(
        &v,
        &SlotsConfig::default(),
        &[physical("n2", 1), physical("gone", 1)],
    );
    assert!(drops(&p).is_empty());
}

#[test]
fn an_invalid_entry_protects_the_slot_of_that_name_and_is_reported() {
    // An entry written behind validation's back (etcdctl): Patroni skips it and would then
    // drop the consumer's slot as unknown; pgkeel leaves the slot alone and says why.
    let v = view("n1", "n1", vec![member("n1")]);
    let c = cfg(json!({"slots": {"cdc": {"type": "logicl", "database": "d", "plugin": "p"}}}));
    let p = plan(&v, &c, &[logical("cdc", "d", "p", 5)]);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.problems.len(), 1);
    assert!(
        p.problems[0].contains("slots.cdc.type"),
        "{}",
        p.problems[0]
    );
}

#[test]
fn a_departed_member_slot_is_kept_while_retained_then_dropped() {
    let mut v = view("n1", "n1", vec![member("n1"), member("n2")]);
    v.retain_slots = vec!["n1".into(), "n2".into(), "n3".into()];
    let local = [physical("n2", 1), physical("n3", 1)];
    assert!(drops(&plan(&v, &SlotsConfig::default(), &local)).is_empty());
    v.retain_slots = vec!["n1".into(), "n2".into()];
    assert_eq!(
        drops(&plan(&v, &SlotsConfig::default(), &local)),
        vec!["n3"]
    );
}

#[test]
fn retention_lasts_member_slots_ttl() {
    let c = cfg(json!({"member_slots_ttl": 60}));
    let t0 = Instant::now();
    let mut r = Retention::default();
    let slots: BTreeMap<String, u64> = [("n1", 9), ("n2", 5), ("n3", 5), ("test_physical", 5)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let all = vec![member("n1"), member("n2"), member("n3")];
    assert_eq!(
        r.update("n1", &all, &slots, &[], &c, t0),
        vec!["n1", "n2", "n3"]
    );
    // n3's key is gone: kept for the ttl, then not.
    let two = vec![member("n1"), member("n2")];
    let t = t0 + Duration::from_secs(59);
    assert_eq!(
        r.update("n1", &two, &slots, &[], &c, t),
        vec!["n1", "n2", "n3"]
    );
    let t = t0 + Duration::from_secs(61);
    assert_eq!(r.update("n1", &two, &slots, &[], &c, t), vec!["n1", "n2"]);
}

#[test]
fn a_new_leadership_starts_retention_from_status() {
    let c = cfg(json!({"member_slots_ttl": 60}));
    let t0 = Instant::now();
    let mut r = Retention::default();
    let stored = vec!["n0".to_string()];
    let me = vec![member("n1")];
    let slots = BTreeMap::from([("n1".to_string(), 5)]);
    assert_eq!(
        r.update("n1", &me, &slots, &stored, &c, t0),
        vec!["n0", "n1"]
    );
    assert_eq!(
        r.update("n1", &me, &slots, &stored, &c, t0 + Duration::from_secs(61)),
        vec!["n1"]
    );
}

#[test]
fn permanent_physical_slots_named_like_members_are_not_retained() {
    let c = cfg(json!({"slots": {"n3": 0}}));
    let mut r = Retention::default();
    let slots = BTreeMap::from([("n1".to_string(), 5), ("n3".to_string(), 5)]);
    let members = vec![member("n1"), member("n3")];
    assert_eq!(
        r.update("n1", &members, &slots, &[], &c, Instant::now()),
        vec!["n1"]
    );
}

#[test]
fn replicas_advance_inactive_slots_from_status_positions() {
    let mut v = view("n2", "n1", vec![member("n1"), member("n2")]);
    let c = cfg(
        json!({"slots": {"test_physical": 0, "cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}}),
    );
    v.status_slots = BTreeMap::from([
        ("n1".to_string(), 900),
        ("test_physical".to_string(), 700),
        ("cdc".to_string(), 800),
    ]);
    v.replay_lsn = Some(750);
    let local = [
        physical("n1", 100),
        physical("test_physical", 100),
        logical("cdc", "postgres", "test_decoding", 100),
    ];
    assert_eq!(
        plan(&v, &c, &local).actions,
        vec![
            // Logical: never past what this replica has replayed.
            SlotAction::AdvanceLogical {
                name: "cdc".into(),
                database: "postgres".into(),
                lsn: 750
            },
            SlotAction::AdvancePhysical {
                name: "n1".into(),
                lsn: 900
            },
            SlotAction::AdvancePhysical {
                name: "test_physical".into(),
                lsn: 700
            },
        ]
    );
}

#[test]
fn a_slot_is_never_moved_backwards() {
    let mut v = view("n2", "n1", vec![member("n1"), member("n2")]);
    v.status_slots = BTreeMap::from([("n1".to_string(), 50)]);
    assert!(plan(&v, &SlotsConfig::default(), &[physical("n1", 100)])
        .actions
        .is_empty());
}

#[test]
fn a_missing_logical_slot_on_a_replica_is_copied_once_the_leader_reports_it() {
    let mut v = view("n2", "n1", vec![member("n1"), member("n2")]);
    let c = cfg(
        json!({"slots": {"cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}}),
    );
    let local = [physical("n1", 1)];
    // No position in /status yet: nothing to copy.
    assert!(plan(&v, &c, &local).actions.is_empty());
    v.status_slots = BTreeMap::from([("cdc".to_string(), 800)]);
    assert_eq!(
        plan(&v, &c, &local).actions,
        vec![SlotAction::CopyLogical {
            name: "cdc".into(),
            database: "postgres".into(),
            plugin: "test_decoding".into()
        }]
    );
}

#[test]
fn a_logical_slot_with_another_plugin_is_dropped_then_made_again() {
    let v = view("n1", "n1", vec![member("n1")]);
    let c = cfg(
        json!({"slots": {"cdc": {"type": "logical", "database": "postgres", "plugin": "pgoutput"}}}),
    );
    let p = plan(&v, &c, &[logical("cdc", "postgres", "test_decoding", 1)]);
    assert_eq!(drops(&p), vec!["cdc"]);
    assert!(p
        .actions
        .iter()
        .any(|a| matches!(a, SlotAction::CreateLogical { name, .. } if name == "cdc")));
}

#[test]
fn lost_slots_are_dropped_and_made_again() {
    let v = view("n1", "n1", vec![member("n1"), member("n2")]);
    let mut lost = physical("n2", 1);
    lost.wal_lost = true;
    let p = plan(&v, &SlotsConfig::default(), &[lost]);
    assert_eq!(drops(&p), vec!["n2"]);
    assert!(p.actions.contains(&create("n2")));
}

#[test]
fn use_slots_off_wants_nothing() {
    let mut v = view("n1", "n1", three());
    v.use_slots = false;
    let c = cfg(json!({"slots": {"test_physical": 0}}));
    assert!(wanted(&v, &c, &mut Vec::new()).is_empty());
}

#[test]
fn a_nostream_node_has_no_logical_slots_and_no_slot_elsewhere() {
    let c =
        cfg(json!({"slots": {"p": 0, "cdc": {"type": "logical", "database": "d", "plugin": "x"}}}));
    let mut v = view("n2", "n1", vec![member("n1"), member("n2")]);
    v.nostream = true;
    let w = wanted(&v, &c, &mut Vec::new());
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["n1", "p"]);
    let mut ns = member("n3");
    ns.nostream = true;
    let w = wanted(
        &view("n1", "n1", vec![member("n1"), ns]),
        &c,
        &mut Vec::new(),
    );
    assert!(!w.contains_key("n3"));
}

#[test]
fn status_carries_wanted_slot_positions_and_my_own_position() {
    let v = view("n1", "n1", vec![member("n1"), member("n2")]);
    let c = cfg(json!({"slots": {"cdc": {"type": "logical", "database": "d", "plugin": "x"}}}));
    let local = [
        physical("n2", 100),
        logical("cdc", "d", "x", 80),
        physical("ignored_one", 5),
    ];
    let p = plan(&v, &c, &local);
    let s = status_slots(&v, &c, &p.wanted, &local, 120);
    assert_eq!(
        s,
        BTreeMap::from([
            ("cdc".to_string(), 80),
            ("n1".to_string(), 120),
            ("n2".to_string(), 100)
        ])
    );
    // member_slots_ttl 0: only the permanent ones.
    let c = cfg(
        json!({"member_slots_ttl": 0, "slots": {"cdc": {"type": "logical", "database": "d", "plugin": "x"}}}),
    );
    let p = plan(&v, &c, &local);
    assert_eq!(
        status_slots(&v, &c, &p.wanted, &local, 120),
        BTreeMap::from([("cdc".to_string(), 80)])
    );
}

#[test]
fn an_inactive_slot_holding_xmin_is_dropped_where_nothing_should_use_it() {
    // n3 streams from n2: on the leader its slot is not expected active.
    let v = view(
        "n1",
        "n1",
        vec![member("n1"), member("n2"), cascading("n3", "n2", 0)],
    );
    let mut s = physical("n3", 10);
    s.has_xmin = true;
    let c = cfg(json!({"member_slots_ttl": 0}));
    let p = plan(&v, &c, &[physical("n2", 1), s]);
    // Without retention the leader does not want n3's slot at all.
    assert_eq!(drops(&p), vec!["n3"]);
    let mut s = physical("n3", 10);
    s.has_xmin = true;
    let p = plan(&v, &SlotsConfig::default(), &[physical("n2", 1), s]);
    assert_eq!(drops(&p), vec!["n3"]);
}

#[test]
fn from_cluster_reads_tags_and_status() {
    use crate::cluster::{Cluster, LeaderKey, MemberEntry};
    use crate::dcs_values::{MemberValue, StatusValue};
    let mut c = Cluster {
        leader: Some(LeaderKey {
            name: "n1".into(),
            lease: 1,
            revision: 1,
        }),
        ..Default::default()
    };
    for (n, tags) in [
        ("n1", json!({})),
        ("n2", json!({"replicatefrom": "n1", "nostream": true})),
    ] {
        c.members.insert(
            n.into(),
            MemberEntry::Ok(MemberValue {
                xlog_location: Some(42),
                tags: serde_json::from_value(tags).unwrap(),
                ..Default::default()
            }),
        );
    }
    c.status = Some(StatusValue {
        optime: 1,
        slots: serde_json::from_value(json!({"n2": 7, "bad": "x"})).unwrap(),
        retain_slots: vec!["n9".into()],
    });
    let v = SlotView::from_cluster(&c, "n1", &Default::default(), true, true);
    assert_eq!(v.members[1].replicatefrom.as_deref(), Some("n1"));
    assert!(v.members[1].nostream);
    assert_eq!(v.members[1].lsn, 42);
    assert_eq!(v.status_slots, BTreeMap::from([("n2".to_string(), 7)]));
    assert_eq!(v.retain_slots, vec!["n9"]);
    assert_eq!(v.leader.as_deref(), Some("n1"));
}
