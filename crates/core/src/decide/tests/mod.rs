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

mod bootstrap;
mod fencing;
mod hang;
mod pause;
mod primary;
mod properties;
mod race;
mod replica;
mod shutdown;
mod stopped;
mod switchover;
mod sync;

pub(crate) fn cfg(name: &str) -> Config {
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
            tls: None,
            cafile: None,
            access: Default::default(),
        },
        etcd: Etcd {
            section: "etcd3",
            hosts: vec![hp(2379)],
            username: None,
            password: None,
            tls: None,
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
                timings_adjusted: Vec::new(),
            },
            initdb: vec![],
            pg_hba: vec![],
            method: Default::default(),
            post_bootstrap: None,
        },
        postgresql: Postgresql {
            listen_addresses: vec!["127.0.0.1".into()],
            port: 5432,
            connect_address: hp(5432),
            data_dir: PathBuf::from("/tmp/x"),
            bin_dir: None,
            pgpass: PathBuf::from("/tmp/pgpass"),
            superuser: PgUser::new("postgres", None),
            replication: PgUser::new("replicator", None),
            rewind: None,
            parameters: BTreeMap::new(),
            pg_hba: vec![],
            basebackup: vec![],
            callbacks: Default::default(),
            use_unix_socket: false,
            pg_ident: None,
            pg_ctl_timeout: None,
            use_pg_rewind: None,
            proxy_address: None,
            use_unix_socket_repl: false,
            create_replica_methods: vec![ReplicaMethod::Basebackup],
        },
        tags: Tags::default(),
        log: Default::default(),
        ctl: Default::default(),
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
                rewind_failed: None,
                primary_start_failing_since: None,
                primary_start_exited: false,
                released_for_switchover: false,
                pre_promote_failed: false,
                pre_promote_released_at: None,
                failover_due_since: None,
                pg_silent_since: None,
                kill_failed: false,
                bootstrapping: None,
                pg_was_primary: false,
                shutting_down: false,
                paused: false,
                wall_clock: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                replication: None,
                failsafe_round: None,
                failsafe_confirmed: None,
                failsafe_contact: None,
                config_in_force: None,
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

fn stopped(state: &str, standby_signal: bool) -> Stopped {
    Stopped {
        sysid: "7000".into(),
        cluster_state: state.into(),
        timeline: 1,
        standby_signal,
        checkpoint: Some(Lsn(500)),
    }
}

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
