//! Each rule of the HA loop, as a sentence: given this observation, these actions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::action::{Action, StopMode, Upstream};
use crate::cluster::{Cluster, LeaderKey, MemberEntry};
use crate::config::*;
use crate::dcs_values::{MemberValue, StatusValue};
use crate::lsn::Lsn;
use crate::observation::*;
use crate::tags::Tags;

const TTL: Duration = Duration::from_secs(10);
const MY_LEASE: i64 = 77;

mod hang;
mod sync;

fn cfg(name: &str) -> Config {
    let hp = |port| HostPort {
        host: "127.0.0.1".into(),
        port,
    };
    Config {
        scope: "demo".into(),
        namespace: "/service".into(),
        name: name.into(),
        restapi: RestApi {
            listen: "127.0.0.1:8008".parse().unwrap(),
            connect_address: hp(8008),
            authentication: None,
        },
        etcd: Etcd {
            hosts: vec![hp(2379)],
            username: None,
            password: None,
        },
        bootstrap: Bootstrap {
            dcs: DynamicConfig {
                ttl: TTL,
                loop_wait: Duration::from_secs(2),
                retry_timeout: Duration::from_secs(3),
                maximum_lag_on_failover: 1_048_576,
                use_pg_rewind: true,
                use_slots: true,
                parameters: BTreeMap::new(),
                pg_hba: vec![],
                sync: Default::default(),
                failsafe_mode: false,
                check_timeline: false,
                primary_hang_timeout: None,
                json: serde_json::json!({"ttl": 10}),
            },
            initdb: vec![],
            pg_hba: vec![],
        },
        postgresql: Postgresql {
            listen_addresses: vec!["127.0.0.1".into()],
            port: 5432,
            connect_address: hp(5432),
            data_dir: PathBuf::from("/tmp/x"),
            bin_dir: None,
            pgpass: PathBuf::from("/tmp/pgpass"),
            superuser: Credentials {
                username: "postgres".into(),
                password: None,
            },
            replication: Credentials {
                username: "replicator".into(),
                password: None,
            },
            parameters: BTreeMap::new(),
            pg_hba: vec![],
            basebackup: vec![],
        },
        tags: Tags::default(),
    }
}

fn member(name: &str, role: &str) -> MemberValue {
    let port = 5000 + name.bytes().map(u16::from).sum::<u16>();
    MemberValue {
        conn_url: format!("postgres://127.0.0.1:{port}/postgres"),
        api_url: format!("http://127.0.0.1:{}/patroni", port + 1000),
        state: "running".into(),
        role: role.into(),
        ..Default::default()
    }
}

fn upstream(leader: &str, me: &str) -> Upstream {
    let (host, port) = member(leader, "primary").pg_host_port().unwrap();
    Upstream {
        member: leader.into(),
        host,
        port,
        slot: Some(crate::action::slot_name(me)),
    }
}

fn running(in_recovery: bool, lsn: u64) -> Running {
    Running {
        sysid: "7000".into(),
        in_recovery,
        timeline: 1,
        wal_position: Lsn(lsn),
        received: in_recovery.then_some(Lsn(lsn)),
        replayed: in_recovery.then_some(Lsn(lsn)),
        upstream: None,
        streaming: in_recovery,
    }
}

fn peer(in_recovery: bool, lsn: u64) -> PeerView {
    PeerView::Answered(PeerStatus {
        running: true,
        in_recovery,
        wal_position: Lsn(lsn),
        timeline: 1,
        tags: Tags::default(),
    })
}

#[derive(Debug, Clone)]
/// An observation builder: `Obs::new("node2").replica(120).leader(None)...`.
struct Obs {
    obs: Observation,
    cfg: Config,
    t0: Instant,
}

impl Obs {
    fn new(me: &str) -> Self {
        let t0 = Instant::now();
        let mut cluster = Cluster {
            initialize: Some("7000".into()),
            config: Some(serde_json::json!({"ttl": 10})),
            history: Some(vec![]),
            ..Default::default()
        };
        cluster
            .members
            .insert(me.into(), MemberEntry::Ok(member(me, "replica")));
        Obs {
            obs: Observation {
                dcs: Ok(cluster),
                pg: PgView::NoData,
                peers: BTreeMap::new(),
                lease: LeaseView {
                    id: MY_LEASE,
                    ttl: TTL,
                    renewed_at: Some(t0),
                },
                rewind_failed: false,
                primary_start_failing_since: None,
                pg_silent_since: None,
                kill_failed: false,
                shutting_down: false,
                paused: false,
                wall_clock: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                replication: None,
                failsafe_round: None,
                failsafe_confirmed: None,
                failsafe_contact: None,
                last_config: None,
            },
            cfg: cfg(me),
            t0,
        }
    }
    fn cluster(&mut self) -> &mut Cluster {
        self.obs.dcs.as_mut().unwrap()
    }
    fn pg(mut self, pg: PgView) -> Self {
        self.obs.pg = pg;
        self
    }
    fn replica(self, lsn: u64) -> Self {
        self.pg(PgView::Running(running(true, lsn)))
    }
    fn primary(self, lsn: u64) -> Self {
        self.pg(PgView::Running(running(false, lsn)))
    }
    fn leader(mut self, name: Option<&str>, lease: i64) -> Self {
        self.cluster().leader = name.map(|n| LeaderKey {
            name: n.into(),
            lease,
            revision: 1,
        });
        self
    }
    fn i_lead(self) -> Self {
        let me = self.cfg.name.clone();
        self.leader(Some(&me), MY_LEASE)
    }
    fn member(mut self, name: &str, role: &str) -> Self {
        self.cluster()
            .members
            .insert(name.into(), MemberEntry::Ok(member(name, role)));
        self
    }
    fn peer(mut self, name: &str, view: PeerView) -> Self {
        self.obs.peers.insert(name.into(), view);
        if !self.cluster().members.contains_key(name) {
            self = self.member(name, "replica");
        }
        self
    }
    fn optime(mut self, lsn: u64) -> Self {
        self.cluster().status = Some(StatusValue {
            optime: lsn,
            ..Default::default()
        });
        self
    }
    fn with<F: FnOnce(&mut Observation, &mut Config)>(mut self, f: F) -> Self {
        f(&mut self.obs, &mut self.cfg);
        self
    }
    fn decide_at(&self, after: Duration) -> Decision {
        decide(&self.obs, &self.cfg, self.t0 + after)
    }
    fn actions(&self) -> Vec<Action> {
        self.decide_at(Duration::ZERO).actions
    }
}

/// The node races: it takes the key, promotes, and creates its peers' slots at once.
fn assert_takes_over(o: &Obs) {
    let mut others: Vec<String> = o
        .obs
        .dcs
        .as_ref()
        .unwrap()
        .members
        .keys()
        .filter(|n| **n != o.cfg.name)
        .cloned()
        .collect();
    others.sort();
    let mut want = vec![Action::AcquireLeader, Action::Promote, Action::WriteHistory];
    if !others.is_empty() {
        want.push(Action::EnsureSlots { names: others });
    }
    assert_eq!(o.actions(), want);
}

fn stop_now() -> Action {
    Action::Stop {
        mode: StopMode::Immediate,
    }
}

// --- bootstrap race ---

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

// --- lock renewal / leader duties ---

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
            Action::WriteConfig,
            Action::WriteHistory,
            Action::WriteStatus { optime: Lsn(500) },
            Action::EnsureSlots {
                names: vec!["n2".into()]
            },
        ]
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

// --- self-fencing ---

#[test]
fn a_leader_stops_writes_before_its_lease_can_expire() {
    let o = Obs::new("n1").primary(500).i_lead().optime(500);
    let margin = fence_margin(TTL);
    assert!(!o
        .decide_at(TTL - margin - Duration::from_millis(1))
        .actions
        .contains(&stop_now()));
    assert_eq!(o.decide_at(TTL - margin).actions, vec![stop_now()]);
}

#[test]
fn a_primary_fences_even_when_the_dcs_is_unreachable() {
    let o = Obs::new("n1")
        .primary(500)
        .with(|o, _| o.dcs = Err("timeout".into()));
    assert!(o.decide_at(Duration::from_secs(1)).actions.is_empty());
    assert_eq!(o.decide_at(TTL).actions, vec![stop_now()]);
}

#[test]
fn a_primary_with_a_never_renewed_lease_stops() {
    let o = Obs::new("n1")
        .primary(500)
        .i_lead()
        .with(|o, _| o.lease.renewed_at = None);
    assert_eq!(o.actions(), vec![stop_now()]);
}

#[test]
fn replicas_are_not_fenced() {
    let o = Obs::new("n2")
        .replica(500)
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    assert!(!o.decide_at(TTL * 3).actions.contains(&stop_now()));
}

#[test]
fn fence_deadline_is_before_expiry_by_the_margin() {
    let t = Instant::now();
    let lease = LeaseView {
        id: 1,
        ttl: Duration::from_secs(3),
        renewed_at: Some(t),
    };
    assert_eq!(
        fence_deadline(&lease),
        Some(t + Duration::from_millis(2400))
    );
    assert!(keepalive_interval(lease.ttl) * 3 < lease.ttl - fence_margin(lease.ttl));
}

// --- leader race ---

#[test]
fn a_replica_ahead_of_its_peers_acquires_the_key_and_promotes() {
    let o = Obs::new("n2")
        .replica(120)
        .peer("n3", peer(true, 100))
        .optime(120);
    assert_takes_over(&o);
}

#[test]
fn a_replica_behind_a_reachable_peer_does_not_race() {
    let o = Obs::new("n2").replica(100).peer("n3", peer(true, 120));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("n3 is ahead"), "{}", d.reason);
}

#[test]
fn a_replica_does_not_race_while_a_primary_answers() {
    let o = Obs::new("n2").replica(100).peer("n1", peer(false, 90));
    assert!(o.actions().is_empty());
}

#[test]
fn an_unreachable_peer_does_not_block_the_race() {
    let o = Obs::new("n2")
        .replica(100)
        .peer("n1", PeerView::Unreachable);
    assert_takes_over(&o);
}

#[test]
fn a_nofailover_replica_never_races() {
    let o = Obs::new("n2")
        .replica(100)
        .with(|_, c| c.tags.nofailover = true);
    assert!(o.actions().is_empty());
    let o = Obs::new("n2")
        .replica(100)
        .with(|_, c| c.tags.failover_priority = 0);
    assert!(o.actions().is_empty());
}

#[test]
fn a_nofailover_peer_ahead_does_not_block_the_race() {
    let tags = Tags {
        nofailover: true,
        ..Tags::default()
    };
    let o = Obs::new("n2").replica(100).peer(
        "n3",
        PeerView::Answered(PeerStatus {
            running: true,
            in_recovery: true,
            wal_position: Lsn(200),
            timeline: 1,
            tags,
        }),
    );
    assert_takes_over(&o);
}

#[test]
fn a_replica_too_far_behind_the_last_leader_position_does_not_race() {
    let o = Obs::new("n2").replica(100).optime(100 + 1_048_577);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("maximum_lag_on_failover"), "{}", d.reason);
    let o = Obs::new("n2").replica(100).optime(100 + 1_048_576);
    assert_takes_over(&o);
}

#[test]
fn ties_go_to_the_higher_failover_priority_then_the_smaller_name() {
    // Level with n3, same priority: n2 < n3, so n2 races and n3 does not.
    let n2 = Obs::new("n2").replica(100).peer("n3", peer(true, 100));
    assert_takes_over(&n2);
    let n3 = Obs::new("n3").replica(100).peer("n2", peer(true, 100));
    assert!(n3.actions().is_empty());
    // A higher priority beats the name.
    let n3 = n3.with(|_, c| c.tags.failover_priority = 5);
    assert_takes_over(&n3);
}

fn on_timeline(mut o: Obs, tl: u32) -> Obs {
    if let PgView::Running(r) = &mut o.obs.pg {
        r.timeline = tl;
    }
    o
}

fn history_to(tl: u32) -> Vec<crate::dcs_values::HistoryEntry> {
    (1..tl)
        .map(|t| crate::dcs_values::HistoryEntry {
            timeline: t,
            lsn: u64::from(t) * 100,
            reason: "no recovery target specified".into(),
            timestamp: None,
            new_leader: None,
        })
        .collect()
}

#[test]
fn a_replica_on_an_old_timeline_never_races_even_when_ahead_in_bytes() {
    // A former primary replaying its old timeline-1 WAL, after the cluster moved to 2.
    let o = on_timeline(Obs::new("n1").replica(900), 1)
        .with(|o, _| o.dcs.as_mut().unwrap().history = Some(history_to(2)));
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("timeline"), "{}", d.reason);
}

#[test]
fn a_replica_still_on_the_old_timeline_before_the_fork_may_race() {
    // Right after a switchover a replica may still report the old timeline (nothing of the
    // new one received yet); its WAL ends before the fork, so it is a prefix and may lead.
    let o = on_timeline(Obs::new("n1").replica(100), 1)
        .with(|o, _| o.dcs.as_mut().unwrap().history = Some(history_to(2)));
    assert_takes_over(&o);
}

#[test]
fn a_peer_on_a_newer_timeline_beats_more_bytes_on_an_older_one() {
    let newer = PeerView::Answered(PeerStatus {
        running: true,
        in_recovery: true,
        wal_position: Lsn(100),
        timeline: 2,
        tags: Tags::default(),
    });
    let o = on_timeline(Obs::new("n1").replica(900), 1).peer("n2", newer);
    assert!(o.actions().is_empty());
    // And the node on the newer timeline is not stopped by the older one's bytes.
    let o = on_timeline(Obs::new("n2").replica(100), 2).peer("n1", peer(true, 900));
    assert_takes_over(&o);
}

#[test]
fn a_stopped_peer_does_not_take_part_in_the_race() {
    let o = Obs::new("n3").replica(100).peer(
        "n2",
        PeerView::Answered(PeerStatus {
            running: false,
            in_recovery: true,
            wal_position: Lsn(500),
            timeline: 1,
            tags: Tags::default(),
        }),
    );
    assert_takes_over(&o);
}

// --- replicas follow whoever holds the key ---

#[test]
fn a_replica_following_the_leader_does_nothing() {
    let (host, port) = member("n1", "primary").pg_host_port().unwrap();
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some((host, port)),
            ..running(true, 100)
        }))
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "no action: I am n2, a replica following n1");
}

#[test]
fn a_replica_switches_to_the_new_leader() {
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some(("127.0.0.1".into(), 1)),
            ..running(true, 100)
        }))
        .member("n3", "primary")
        .leader(Some("n3"), 5);
    assert_eq!(
        o.actions(),
        vec![Action::Follow {
            upstream: upstream("n3", "n2")
        }]
    );
}

/// Found by the simulation (seed 2487): a member promoted to timeline 2 while the cluster
/// was split; later another member, still on timeline 1, was promoted (to 3, past the
/// cluster's 2). The leader's /history lists only timeline 1; the member on the dead
/// timeline 2 can never stream from it and must rewind. While /history does not yet name
/// the leader's timeline it is stale, and nothing is concluded.
#[test]
fn a_replica_on_a_timeline_the_leader_never_had_rewinds() {
    // /history as the leader wrote it after going from timeline 1 to 3 (its own history
    // file knows nothing of 2); `newest_by`: who made the newest switch it records.
    let on_dead_branch = |newest_by: &str| {
        let newest_by = newest_by.to_string();
        on_timeline(Obs::new("n3").replica(500), 2)
            .leader(Some("n1"), 5)
            .with(move |o, _| {
                let c = o.dcs.as_mut().unwrap();
                let mut m = member("n1", "primary");
                m.timeline = Some(3);
                c.members.insert("n1".into(), MemberEntry::Ok(m));
                let mut h = history_to(2);
                h[0].new_leader = Some(newest_by);
                c.history = Some(h);
            })
    };
    let up = upstream("n1", "n3");
    let d = on_dead_branch("n1").decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::Rewind { source: up.clone() },
            Action::StartReplica {
                upstream: Some(up.clone())
            }
        ],
        "{}",
        d.reason
    );
    assert!(d.reason.contains("not in n1's history"), "{}", d.reason);
    // /history from before the leader's promotion (its newest switch was n2's): stale,
    // nothing is concluded from what it lacks.
    assert_eq!(
        on_dead_branch("n2").actions(),
        vec![Action::Follow { upstream: up }]
    );
}

#[test]
fn a_replica_past_the_new_timelines_fork_point_rewinds() {
    let diverged = |my_lsn: u64| {
        Obs::new("n3")
            .replica(my_lsn)
            .leader(Some("n1"), 5)
            .with(|o, _| {
                let c = o.dcs.as_mut().unwrap();
                let mut m = member("n1", "primary");
                m.timeline = Some(2);
                c.members.insert("n1".into(), MemberEntry::Ok(m));
                c.history = Some(vec![crate::dcs_values::HistoryEntry {
                    timeline: 1,
                    lsn: 1000,
                    reason: "no recovery target specified".into(),
                    timestamp: None,
                    new_leader: Some("n1".into()),
                }]);
            })
    };
    let up = upstream("n1", "n3");
    assert_eq!(
        diverged(1001).actions(),
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::Rewind { source: up.clone() },
            Action::StartReplica {
                upstream: Some(up.clone())
            }
        ]
    );
    // At or before the fork point it can simply follow the new timeline.
    assert_eq!(
        diverged(1000).actions(),
        vec![Action::Follow {
            upstream: up.clone()
        }]
    );
    // A failed rewind means a fresh clone.
    let o = diverged(1001).with(|o, _| o.rewind_failed = true);
    assert!(matches!(o.actions()[1], Action::Reinit { .. }));
}

#[test]
fn a_replica_waits_for_the_new_leader_to_finish_promoting() {
    let o = Obs::new("n2")
        .pg(PgView::Running(Running {
            upstream: Some(("127.0.0.1".into(), 1)),
            ..running(true, 100)
        }))
        .member("n3", "replica")
        .leader(Some("n3"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("finish its promotion"), "{}", d.reason);
}

#[test]
fn a_replica_holding_the_key_promotes() {
    assert_eq!(
        Obs::new("n2").replica(100).i_lead().actions(),
        vec![Action::Promote]
    );
}

#[test]
fn a_stopped_replica_starts_following_the_leader() {
    let o = Obs::new("n2")
        .pg(PgView::Stopped(stopped("shut down in recovery", true)))
        .member("n1", "primary")
        .leader(Some("n1"), 5);
    assert_eq!(
        o.actions(),
        vec![Action::StartReplica {
            upstream: Some(upstream("n1", "n2"))
        }]
    );
}

fn stopped(state: &str, standby_signal: bool) -> Stopped {
    Stopped {
        sysid: "7000".into(),
        cluster_state: state.into(),
        timeline: 1,
        standby_signal,
        checkpoint: Some(Lsn(500)),
    }
}

// --- a former primary never comes back writable without the key ---

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

#[test]
fn a_stopped_former_primary_rewinds_then_follows() {
    for state in ["in production", "shut down"] {
        let o = Obs::new("n1")
            .pg(PgView::Stopped(stopped(state, false)))
            .member("n2", "primary")
            .leader(Some("n2"), 5);
        let up = upstream("n2", "n1");
        assert_eq!(
            o.actions(),
            vec![
                Action::Rewind { source: up.clone() },
                Action::StartReplica { upstream: Some(up) }
            ]
        );
    }
}

#[test]
fn a_former_primary_waits_for_the_new_leaders_checkpoint() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .leader(Some("n2"), 5)
        .with(|o, _| {
            let mut m = member("n2", "primary");
            m.checkpoint_after_promote = Some(false);
            o.dcs
                .as_mut()
                .unwrap()
                .members
                .insert("n2".into(), MemberEntry::Ok(m));
        });
    assert!(o.actions().is_empty());
}

#[test]
fn a_former_primary_whose_rewind_failed_is_cloned_again() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .member("n2", "primary")
        .leader(Some("n2"), 5)
        .with(|o, _| o.rewind_failed = true);
    assert!(matches!(o.actions()[0], Action::Reinit { .. }));
}

#[test]
fn a_stopped_former_primary_without_a_leader_starts_read_only() {
    let o = Obs::new("n1").pg(PgView::Stopped(stopped("in production", false)));
    assert_eq!(o.actions(), vec![Action::StartReplica { upstream: None }]);
}

#[test]
fn a_stopped_primary_holding_the_key_starts_as_primary() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("shut down", false)))
        .i_lead();
    assert_eq!(o.actions(), vec![Action::StartPrimary]);
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(Stopped {
            sysid: "999".into(),
            ..stopped("shut down", false)
        }))
        .member("n2", "primary")
        .leader(Some("n2"), 5);
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("system identifier"), "{}", d.reason);
}

// --- shutdown ---

#[test]
fn a_leader_shutting_down_checkpoints_then_releases_the_key() {
    let o = Obs::new("n1")
        .primary(5)
        .i_lead()
        .with(|o, _| o.shutting_down = true);
    assert_eq!(
        o.actions(),
        vec![
            Action::Stop {
                mode: StopMode::Fast
            },
            Action::ReleaseLeader
        ]
    );
}

#[test]
fn a_replica_shutting_down_only_stops() {
    let o = Obs::new("n2")
        .replica(5)
        .with(|o, _| o.shutting_down = true);
    assert_eq!(
        o.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

// --- properties over arbitrary observations ---

fn arb_pg() -> impl Strategy<Value = PgView> {
    prop_oneof![
        Just(PgView::NoData),
        Just(PgView::Starting),
        Just(PgView::Unknown),
        (any::<bool>(), 0u64..1000, 1u32..3).prop_map(|(rec, lsn, tl)| PgView::Running(Running {
            timeline: tl,
            ..running(rec, lsn)
        })),
        (
            any::<bool>(),
            prop::sample::select(vec!["shut down", "in production", "shut down in recovery"])
        )
            .prop_map(|(sig, st)| PgView::Stopped(stopped(st, sig))),
    ]
}

fn arb_peer() -> impl Strategy<Value = PeerView> {
    prop_oneof![
        Just(PeerView::Unreachable),
        (any::<bool>(), any::<bool>(), 0u64..1000, 0u32..3, 1u32..3).prop_map(
            |(running, rec, lsn, prio, timeline)| {
                let tags = Tags {
                    failover_priority: prio,
                    ..Tags::default()
                };
                PeerView::Answered(PeerStatus {
                    running,
                    in_recovery: rec,
                    wal_position: Lsn(lsn),
                    timeline,
                    tags,
                })
            }
        ),
    ]
}

fn arb_obs() -> impl Strategy<Value = (Obs, u64)> {
    (
        arb_pg(),
        prop::option::of(prop::sample::select(vec!["n1", "n2", "n3"])),
        prop::sample::select(vec![0i64, MY_LEASE, 5]),
        prop::collection::vec(arb_peer(), 2),
        any::<bool>(),
        0u64..20_000,
        any::<bool>(),
        any::<bool>(),
        1u32..4,
    )
        .prop_map(
            |(pg, leader, lease, peers, dcs_ok, ms, nofailover, shutting, cluster_tl)| {
                let mut o = Obs::new("n2").pg(pg).leader(leader, lease);
                for (name, p) in ["n1", "n3"].into_iter().zip(peers) {
                    o = o.peer(name, p);
                }
                let o = o.with(|obs, cfg| {
                    if !dcs_ok {
                        obs.dcs = Err("down".into());
                    }
                    cfg.tags.nofailover = nofailover;
                    obs.shutting_down = shutting;
                    if let Ok(c) = obs.dcs.as_mut() {
                        c.history = Some(history_to(cluster_tl));
                    }
                });
                (o, ms)
            },
        )
}

proptest! {
    /// Whatever it sees, the agent never ends a decision writable without the key: any
    /// promotion is preceded by acquiring or reclaiming the key, or made while holding it.
    #[test]
    fn promotion_only_with_the_key((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if let Some(i) = d.actions.iter().position(|a| matches!(a, Action::Promote | Action::StartPrimary)) {
            let took_key = d.actions[..i].iter().any(|a| matches!(a, Action::AcquireLeader | Action::ReclaimLeader));
            let held = o.obs.dcs.as_ref().is_ok_and(|c| c.leader.as_ref().is_some_and(|l| l.name == "n2" && l.lease == MY_LEASE));
            prop_assert!(took_key || held, "{:?}", d);
        }
    }

    /// A node on a timeline older than the cluster's, with WAL past the point where the
    /// newer timeline forked off its own, never takes the key.
    #[test]
    fn a_diverged_old_timeline_never_acquires((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if let (Ok(c), PgView::Running(r)) = (&o.obs.dcs, &o.obs.pg) {
            let fork = c.history.as_ref().and_then(|h| h.iter().find(|e| e.timeline == r.timeline)).map(|e| e.lsn);
            if r.timeline < c.timeline() && fork.is_none_or(|f| r.wal_position.0 > f) {
                prop_assert!(!d.actions.contains(&Action::AcquireLeader), "{:?}", d);
            }
        }
    }

    /// A nofailover node never takes a free leader key.
    #[test]
    fn nofailover_never_acquires((o, ms) in arb_obs()) {
        let d = o.decide_at(Duration::from_millis(ms));
        if o.cfg.tags.nofailover {
            prop_assert!(!d.actions.contains(&Action::AcquireLeader), "{:?}", d);
        }
    }

    /// Past the fence deadline, a node that may be a primary always stops at once.
    #[test]
    fn past_the_fence_deadline_a_primary_stops((o, ms) in arb_obs()) {
        let at = Duration::from_millis(ms);
        let d = o.decide_at(at);
        if may_be_writable(&o.obs.pg) && at >= TTL - fence_margin(TTL) {
            prop_assert_eq!(d.actions, vec![stop_now()]);
        }
    }

    /// Every decision says why.
    #[test]
    fn every_decision_has_a_reason((o, ms) in arb_obs()) {
        prop_assert!(!o.decide_at(Duration::from_millis(ms)).reason.is_empty());
    }

    /// Two replicas that see each other never both race for the key.
    #[test]
    fn two_level_replicas_never_both_race(a in 0u64..50, b in 0u64..50, pa in 0u32..3, pb in 0u32..3) {
        let mk = |me: &str, other: &str, mine: u64, theirs: u64, my_prio: u32, their_prio: u32| {
            let tags = Tags {
                failover_priority: their_prio,
                ..Tags::default()
            };
            Obs::new(me).replica(mine).peer(other, PeerView::Answered(PeerStatus {
                running: true, in_recovery: true, wal_position: Lsn(theirs), timeline: 1, tags,
            })).with(|_, c| c.tags.failover_priority = my_prio)
        };
        let x = mk("n2", "n3", a, b, pa, pb).actions().contains(&Action::AcquireLeader);
        let y = mk("n3", "n2", b, a, pb, pa).actions().contains(&Action::AcquireLeader);
        prop_assert!(!(x && y));
        // And unless both are unable to promote, one of them does race.
        if pa > 0 || pb > 0 {
            prop_assert!(x || y);
        }
    }
}

// --- switchover and failover through the failover key ---

fn request(o: Obs, leader: Option<&str>, member: Option<&str>, at: Option<&str>) -> Obs {
    o.with(|obs, _| {
        let c = obs.dcs.as_mut().unwrap();
        c.failover = Some(crate::dcs_values::FailoverValue {
            leader: leader.map(str::to_string),
            member: member.map(str::to_string),
            scheduled_at: at.map(str::to_string),
        });
        c.failover_revision = 42;
    })
}

fn streaming_member(name: &str) -> MemberValue {
    MemberValue {
        replication_state: Some("streaming".into()),
        ..member(name, "replica")
    }
}

fn with_streaming(o: Obs, name: &str) -> Obs {
    o.with(|obs, _| {
        obs.dcs
            .as_mut()
            .unwrap()
            .members
            .insert(name.into(), MemberEntry::Ok(streaming_member(name)));
    })
}

#[test]
fn a_leader_asked_to_switch_over_stops_cleanly_first() {
    let o = with_streaming(Obs::new("n1").primary(500).i_lead().optime(500), "n2");
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(
        o.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

#[test]
fn a_cleanly_stopped_leader_then_releases_the_key() {
    let o = with_streaming(
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("shut down", false)))
            .i_lead(),
        "n2",
    );
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(o.actions(), vec![Action::ReleaseLeader]);
    // A crash is not a switchover step: the key holder restarts its primary instead.
    let o = with_streaming(
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("in production", false)))
            .i_lead(),
        "n2",
    );
    let o = request(o, Some("n1"), Some("n2"), None);
    assert_eq!(o.actions(), vec![Action::StartPrimary]);
}

#[test]
fn an_unfit_candidate_cancels_the_switchover() {
    for m in [
        member("n2", "replica"), // not streaming
        MemberValue {
            tags: Tags {
                nofailover: true,
                ..Tags::default()
            },
            ..streaming_member("n2")
        },
        MemberValue {
            receive_lsn: Some(1),
            xlog_location: Some(1),
            ..streaming_member("n2")
        },
    ] {
        let o = Obs::new("n1")
            .primary(5_000_000)
            .i_lead()
            .optime(5_000_000)
            .with(|obs, _| {
                obs.dcs
                    .as_mut()
                    .unwrap()
                    .members
                    .insert("n2".into(), MemberEntry::Ok(m.clone()));
            });
        let o = request(o, Some("n1"), Some("n2"), None);
        let d = o.decide_at(Duration::ZERO);
        assert_eq!(
            d.actions[0],
            Action::DeleteFailover { revision: 42 },
            "{m:?}"
        );
        assert!(!d.actions.contains(&Action::Stop {
            mode: StopMode::Fast
        }));
    }
}

#[test]
fn a_scheduled_switchover_waits_for_its_time() {
    // The observation's wall clock is 2027-01-15T08:00:00Z.
    let o = with_streaming(Obs::new("n1").primary(500).i_lead().optime(500), "n2");
    let later = request(
        o.clone(),
        Some("n1"),
        Some("n2"),
        Some("2030-01-01T00:00:00+00:00"),
    );
    let d = later.decide_at(Duration::ZERO);
    assert!(d.actions.iter().all(Action::is_routine), "{d:?}");
    assert!(d.reason.contains("scheduled"), "{}", d.reason);
    let due = request(o, Some("n1"), Some("n2"), Some("2020-01-01T00:00:00+00:00"));
    assert_eq!(
        due.actions(),
        vec![Action::Stop {
            mode: StopMode::Fast
        }]
    );
}

#[test]
fn only_the_candidate_takes_the_free_key() {
    let cand = request(
        Obs::new("n3").replica(100).peer("n2", peer(true, 900)),
        Some("n1"),
        Some("n3"),
        None,
    );
    assert_eq!(
        &cand.actions()[..2],
        &[Action::AcquireLeader, Action::Promote]
    );
    let other = request(
        Obs::new("n2").replica(900).peer("n3", peer(true, 100)),
        Some("n1"),
        Some("n3"),
        None,
    );
    let d = other.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("waiting for n3"), "{}", d.reason);
    // A nofailover candidate does not promote even when asked.
    let nofail = cand.with(|_, c| c.tags.nofailover = true);
    assert!(nofail.actions().is_empty());
}

#[test]
fn the_new_leader_deletes_the_request() {
    let o = request(
        Obs::new("n3").primary(500).i_lead().optime(500),
        Some("n1"),
        Some("n3"),
        None,
    );
    assert_eq!(o.actions()[0], Action::DeleteFailover { revision: 42 });
}

#[test]
fn the_old_leader_rejoins_without_rewind_after_a_clean_switchover() {
    let fork = |lsn: u64| {
        Obs::new("n1")
            .pg(PgView::Stopped(stopped("shut down", false))) // checkpoint at 500
            .leader(Some("n2"), 5)
            .with(move |obs, _| {
                let c = obs.dcs.as_mut().unwrap();
                let mut m = member("n2", "primary");
                m.timeline = Some(2);
                c.members.insert("n2".into(), MemberEntry::Ok(m));
                c.history = Some(vec![crate::dcs_values::HistoryEntry {
                    timeline: 1,
                    lsn,
                    reason: "no recovery target specified".into(),
                    timestamp: None,
                    new_leader: Some("n2".into()),
                }]);
            })
    };
    let up = upstream("n2", "n1");
    assert_eq!(
        fork(528).actions(),
        vec![Action::StartReplica {
            upstream: Some(up.clone())
        }]
    );
    // Forked before my checkpoint: I may hold WAL the new leader lacks.
    assert!(matches!(fork(400).actions()[0], Action::Rewind { .. }));
}

#[test]
fn in_maintenance_mode_nothing_automatic_happens() {
    let paused = |o: Obs| o.with(|obs, _| obs.paused = true);
    // No race for a free key.
    assert!(paused(Obs::new("n2").replica(100)).actions().is_empty());
    // No restart of a stopped server.
    let o = paused(
        Obs::new("n2")
            .pg(PgView::Stopped(stopped("shut down in recovery", true)))
            .member("n1", "primary")
            .leader(Some("n1"), 5),
    );
    assert!(o.actions().is_empty());
    // No fencing of a primary whose lease is old.
    let o = paused(Obs::new("n1").primary(500).i_lead().optime(500));
    assert!(!o.decide_at(TTL * 3).actions.contains(&stop_now()));
    // No demotion of a primary that lost the key.
    let o = paused(
        Obs::new("n1")
            .primary(500)
            .member("n2", "primary")
            .leader(Some("n2"), 5),
    );
    assert!(o.actions().is_empty());
    // Shutdown leaves PostgreSQL running.
    let o = paused(Obs::new("n1").primary(500).i_lead()).with(|obs, _| obs.shutting_down = true);
    assert!(o.actions().is_empty());
    // A running primary without a key takes it.
    assert_eq!(
        paused(Obs::new("n1").primary(500)).actions(),
        vec![Action::AcquireLeader]
    );
}

#[test]
fn a_leader_whose_primary_will_not_start_gives_the_key_up_after_primary_start_timeout() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .i_lead();
    assert_eq!(
        o.actions(),
        vec![Action::StartPrimary],
        "a crash is first recovered in place"
    );
    let failing = o.with(|obs, _| obs.primary_start_failing_since = Some(Instant::now()));
    // The lease keeps being renewed meanwhile (a stale one is another test's subject).
    let renewed = |o: &Obs, at: u64| {
        let t0 = o.t0;
        o.clone()
            .with(move |obs, _| obs.lease.renewed_at = Some(t0 + Duration::from_secs(at)))
    };
    assert_eq!(
        renewed(&failing, 298)
            .decide_at(Duration::from_secs(299))
            .actions,
        vec![Action::StartPrimary]
    );
    let d = failing.decide_at(Duration::from_secs(301));
    assert_eq!(d.actions, vec![Action::ReleaseLeader], "{}", d.reason);
    // A shorter primary_start_timeout from /config applies.
    let short = failing.with(|obs, _| {
        obs.dcs.as_mut().unwrap().config =
            Some(serde_json::json!({"ttl": 10, "primary_start_timeout": 5}))
    });
    assert_eq!(
        short.decide_at(Duration::from_secs(6)).actions,
        vec![Action::ReleaseLeader]
    );
}

/// Found by the simulation (seed 172): a leader cut off long enough to be fenced came back,
/// still read its key (under a lease whose renewals had gone stale) and started its
/// primary; etcd then expired the lease, the keeper took a new one (which satisfied the
/// fence), and a replica was promoted beside it. A key under a stale lease is not enough
/// to become writable.
#[test]
fn a_key_under_a_stale_lease_does_not_make_a_primary() {
    let stopped_leader = Obs::new("n1")
        .pg(PgView::Stopped(stopped("in production", false)))
        .i_lead();
    assert_eq!(stopped_leader.actions(), vec![Action::StartPrimary]);
    let d = stopped_leader.decide_at(Duration::from_secs(9));
    assert!(d.actions.is_empty(), "{:?}: {}", d.actions, d.reason);
    assert!(d.reason.contains("may have lapsed"), "{}", d.reason);
    let replica = Obs::new("n1").replica(100).i_lead();
    assert!(replica.actions().contains(&Action::Promote));
    let d = replica.decide_at(Duration::from_secs(9));
    assert!(d.actions.is_empty(), "{:?}: {}", d.actions, d.reason);
}

#[test]
fn a_former_primary_waits_for_the_fork_point_before_choosing_rewind() {
    let o = Obs::new("n1")
        .pg(PgView::Stopped(stopped("shut down", false)))
        .leader(Some("n2"), 5)
        .with(|obs, _| {
            let c = obs.dcs.as_mut().unwrap();
            let mut m = member("n2", "primary");
            m.timeline = Some(2);
            c.members.insert("n2".into(), MemberEntry::Ok(m));
            c.history = Some(vec![]);
        });
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("forked"), "{}", d.reason);
}

/// Found by the simulation (seed 3709): the former primary's timeline 2 is a branch the
/// leader (timeline 3, promoted from 1) never had; its /history, written after its own
/// promotion, will never list timeline 2. Waiting for that fork point would wait forever:
/// it rewinds (pg_rewind finds the divergence itself).
#[test]
fn a_former_primary_on_a_branch_the_leader_never_had_rewinds() {
    let on_branch = Stopped {
        timeline: 2,
        ..stopped("in production", false)
    };
    let o = Obs::new("n1")
        .pg(PgView::Stopped(on_branch))
        .leader(Some("n2"), 5)
        .with(|obs, _| {
            let c = obs.dcs.as_mut().unwrap();
            let mut m = member("n2", "primary");
            m.timeline = Some(3);
            c.members.insert("n2".into(), MemberEntry::Ok(m));
            let mut h = history_to(2);
            h[0].new_leader = Some("n2".into());
            c.history = Some(h);
        });
    let d = o.decide_at(Duration::ZERO);
    assert!(
        matches!(d.actions.first(), Some(Action::Rewind { .. })),
        "{:?}: {}",
        d.actions,
        d.reason
    );
}

#[test]
fn a_takeover_without_a_leader_needs_only_a_running_promotable_member() {
    let o = Obs::new("n1").member("n2", "replica");
    let c = o.obs.dcs.as_ref().unwrap();
    // No leader: nobody streams, a running member that may be promoted is fit.
    assert_eq!(takeover_problem(c, "n2", 0), None);
    assert!(takeover_problem(c, "ghost", 0).is_some());
    // With a leader, the candidate must stream.
    let o = o.member("n3", "primary").leader(Some("n3"), 5);
    let c = o.obs.dcs.as_ref().unwrap();
    assert!(takeover_problem(c, "n2", 0)
        .unwrap()
        .contains("not streaming"));
}
