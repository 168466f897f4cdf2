//! The leader's duties while it holds the key, and a primary that does not hold it.

use super::*;

#[test]
fn the_leader_publishes_initialize_config_history_status_and_slots() {
    let o = Obs::new("n1")
        .primary(500)
        .i_lead()
        .member("n2", "replica")
        .with(|o, _| {
            let c = o.dcs.as_mut().unwrap();
            c.initialize = Some(String::new());
            c.config = None;
            c.history = None;
        });
    assert_eq!(
        o.actions(),
        vec![
            Action::WriteInitialize {
                sysid: "7000".into()
            },
            Action::WriteConfig {
                config: o.cfg.bootstrap.dcs.json.clone()
            },
            Action::WriteHistory,
            Action::WriteStatus { optime: Lsn(500) },
            Action::EnsureSlots {
                names: vec!["n2".into()]
            },
        ]
    );
}

#[test]
fn a_deleted_config_is_written_back_from_the_settings_in_force_and_an_unreadable_one_is_left() {
    let in_force = serde_json::json!({"ttl": 20, "loop_wait": 2, "retry_timeout": 3});
    let o = Obs::new("n1").primary(500).i_lead().with(|o, local| {
        o.config_in_force = Some(crate::config::effective_dynamic(local, Some(&in_force)));
        o.dcs.as_mut().unwrap().config = None;
    });
    assert!(
        o.actions().contains(&Action::WriteConfig {
            config: in_force.clone()
        }),
        "{:?}",
        o.actions()
    );
    let o = o.with(|o, _| {
        o.dcs.as_mut().unwrap().config_unreadable = Some("not valid JSON".into());
    });
    assert!(
        !o.actions()
            .iter()
            .any(|a| matches!(a, Action::WriteConfig { .. })),
        "{:?}",
        o.actions()
    );
}

#[test]
fn a_steady_leader_writes_nothing_new() {
    let o = Obs::new("n1")
        .primary(500)
        .i_lead()
        .optime(500)
        .with(|_, c| {
            c.bootstrap.dcs.json =
                serde_json::json!({"ttl": 10, "postgresql": {"use_slots": false}});
        });
    // /config in the DCS wins over the local bootstrap section.
    let o = o.with(|obs, _| {
        obs.dcs.as_mut().unwrap().config =
            Some(serde_json::json!({"ttl": 10, "postgresql": {"use_slots": false}}))
    });
    let d = o.decide_at(Duration::ZERO);
    assert!(
        d.reason.contains("the leader with the lock"),
        "{}",
        d.reason
    );
    assert!(!d
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteStatus { .. })));
}

#[test]
fn a_primary_whose_key_names_it_under_an_old_lease_takes_it_back() {
    let o = Obs::new("n1").primary(500).leader(Some("n1"), 12);
    assert_eq!(o.actions(), vec![Action::ReclaimLeader]);
}

#[test]
fn a_new_timeline_is_recorded_in_history() {
    let o = Obs::new("n1")
        .pg(PgView::Running(Running {
            timeline: 2,
            ..running(false, 500)
        }))
        .i_lead()
        .optime(500);
    assert!(o.actions().contains(&Action::WriteHistory));
}

#[test]
fn a_primary_demotes_when_another_node_holds_the_key() {
    let o = Obs::new("n1")
        .primary(500)
        .member("n2", "primary")
        .leader(Some("n2"), 5);
    assert_eq!(o.actions(), vec![stop_now()]);
}

#[test]
fn a_primary_without_the_key_that_cannot_win_demotes() {
    let o = Obs::new("n1").primary(500).peer("n2", peer(false, 600));
    assert_eq!(o.actions(), vec![stop_now()]);
}

#[test]
fn a_stale_primary_behind_the_cluster_timeline_does_not_take_the_key() {
    let o = Obs::new("n1").primary(500).with(|o, _| {
        o.dcs.as_mut().unwrap().history = Some(vec![crate::dcs_values::HistoryEntry {
            timeline: 1,
            lsn: 400,
            reason: "x".into(),
            timestamp: None,
            new_leader: Some("n2".into()),
        }])
    });
    assert_eq!(o.actions(), vec![stop_now()]);
}
