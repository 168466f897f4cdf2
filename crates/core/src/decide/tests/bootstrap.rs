//! The bootstrap race: who initializes an empty cluster, who clones from whom.

use super::*;

#[test]
fn an_empty_node_in_an_uninitialized_cluster_races_to_bootstrap() {
    let o = Obs::new("n1").with(|o, _| o.dcs.as_mut().unwrap().initialize = None);
    assert_eq!(
        o.actions(),
        vec![Action::ClaimInitialize, Action::Bootstrap]
    );
}

#[test]
fn a_node_that_may_never_lead_does_not_bootstrap() {
    for tags in [
        Tags {
            nofailover: true,
            ..Tags::default()
        },
        Tags {
            failover_priority: 0,
            ..Tags::default()
        },
    ] {
        let o = Obs::new("n1").with(|o, c| {
            o.dcs.as_mut().unwrap().initialize = None;
            c.tags = tags;
        });
        assert!(o.actions().is_empty());
    }
}

#[test]
fn an_empty_node_waits_while_another_bootstraps() {
    let o = Obs::new("n2").with(|o, _| o.dcs.as_mut().unwrap().initialize = Some(String::new()));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(
        d.reason.contains("another node is bootstrapping"),
        "{}",
        d.reason
    );
}

#[test]
fn an_empty_node_clones_from_the_leader_and_follows_it() {
    let o = Obs::new("n2").member("n1", "primary").leader(Some("n1"), 5);
    let up = upstream("n1", "n2");
    assert_eq!(
        o.actions(),
        vec![
            Action::Clone { source: up.clone() },
            Action::StartReplica { upstream: Some(up) }
        ]
    );
}

#[test]
fn an_empty_node_prefers_a_running_clonefrom_replica() {
    let o = Obs::new("n3")
        .member("n1", "primary")
        .leader(Some("n1"), 5)
        .with(|o, _| {
            let mut m = member("n2", "replica");
            m.tags.clonefrom = true;
            o.dcs
                .as_mut()
                .unwrap()
                .members
                .insert("n2".into(), MemberEntry::Ok(m));
        });
    match &o.actions()[0] {
        Action::Clone { source } => {
            assert_eq!(source.member, "n2");
            assert_eq!(
                source.slot, None,
                "no slot is used on a clone source that is not the leader"
            );
        }
        other => panic!("expected a clone, got {other:?}"),
    }
}

#[test]
fn an_empty_node_waits_for_a_leader_in_an_initialized_cluster() {
    assert!(Obs::new("n2").actions().is_empty());
}
