//! The planner against a model of PostgreSQL's synchronous commit: thousands of seeded
//! schedules of commits, replication progress, standbys dropping out and coming back,
//! interleaved with the leader's loops. After every event no acknowledged commit may be
//! missing from every member of some electing set of the sync key; once standbys stay
//! connected, the key and the setting reach the target and commits flow.

use std::collections::BTreeMap;

use super::*;
use crate::cluster::{Cluster, MemberEntry};
use crate::dcs_values::{MemberValue, SyncValue};
use crate::lsn::Lsn;
use crate::tags::Tags;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Standby {
    flush: u64,
    connected: bool,
}

struct Model {
    mode: SyncMode,
    settings: SyncSettings,
    cluster: Cluster,
    ssn: Ssn,
    /// `None` until the leader's next observation sees the new value.
    ssn_lsn: Option<Lsn>,
    standbys: BTreeMap<String, Standby>,
    primary_lsn: u64,
    pending: Vec<u64>,
    acked_max: u64,
}

impl Model {
    fn new(rng: &mut Rng) -> Model {
        let mode = if rng.below(2) == 0 {
            SyncMode::On
        } else {
            SyncMode::Quorum
        };
        let n = 1 + rng.below(4) as usize;
        let settings = SyncSettings {
            mode,
            strict: rng.below(2) == 0,
            node_count: 1 + rng.below(3) as u32,
            maximum_lag_on_syncnode: None,
        };
        let mut cluster = Cluster::default();
        cluster.members.insert(
            "p".into(),
            MemberEntry::Ok(MemberValue {
                state: "running".into(),
                role: "primary".into(),
                ..Default::default()
            }),
        );
        let mut standbys = BTreeMap::new();
        for i in 0..n {
            let name = format!("s{i}");
            let mut tags = Tags::default();
            if rng.below(5) == 0 {
                tags.nosync = true;
            }
            tags.sync_priority = 1 + rng.below(2) as u32;
            cluster.members.insert(
                name.clone(),
                MemberEntry::Ok(MemberValue {
                    state: "running".into(),
                    role: "replica".into(),
                    tags,
                    ..Default::default()
                }),
            );
            standbys.insert(
                name,
                Standby {
                    flush: 0,
                    connected: true,
                },
            );
        }
        Model {
            mode,
            settings,
            cluster,
            ssn: Ssn::none(),
            ssn_lsn: None,
            standbys,
            primary_lsn: 0,
            pending: Vec::new(),
            acked_max: 0,
        }
    }

    /// PostgreSQL releases waiting commits once `num` of the named standbys flushed them.
    fn release(&mut self) {
        let ssn = self.ssn.clone();
        let standbys = &self.standbys;
        let acked = |lsn: u64| {
            if ssn.is_empty() {
                return true;
            }
            // `*` matches every standby, nosync ones too.
            let have = standbys
                .iter()
                .filter(|(n, s)| {
                    (ssn.wildcard || ssn.names.contains(n.as_str()))
                        && s.connected
                        && s.flush >= lsn
                })
                .count();
            have >= ssn.num as usize
        };
        let (done, wait): (Vec<u64>, Vec<u64>) = self.pending.iter().partition(|l| acked(**l));
        if let Some(m) = done.iter().max() {
            self.acked_max = self.acked_max.max(*m);
        }
        self.pending = wait;
    }

    fn leader_loop(&mut self) -> Option<SyncStep> {
        if self.ssn_lsn.is_none() {
            self.ssn_lsn = Some(Lsn(self.primary_lsn));
        }
        let rows: Vec<ReplicationRow> = self
            .standbys
            .iter()
            .filter(|(_, s)| s.connected)
            .map(|(n, s)| ReplicationRow {
                application_name: n.clone(),
                streaming: true,
                sync_state: "sync".into(),
                flush: Lsn(s.flush),
                write: Lsn(s.flush),
                replay: Lsn(s.flush),
            })
            .collect();
        let input = PlanInput {
            me: "p",
            settings: self.settings,
            cluster: &self.cluster,
            ssn: &self.ssn,
            ssn_lsn: self.ssn_lsn,
            rows: &rows,
            primary_lsn: Lsn(self.primary_lsn),
            synchronous_commit: "on",
        };
        let (step, _) = plan(&input)?;
        match &step {
            SyncStep::WriteKey(k) => self.cluster.sync = Some(k.clone()),
            SyncStep::SetSsn(s) => {
                if *s != self.ssn {
                    self.ssn = s.clone();
                    self.ssn_lsn = None;
                }
            }
        }
        Some(step)
    }

    /// Every electing set of the key holds the highest acknowledged commit somewhere.
    fn check(&self, trace: &[String]) {
        let Some(key) = &self.cluster.sync else {
            return;
        };
        let voters: Vec<&String> = key.sync_standby.iter().collect();
        let e = key.quorum as usize + 1;
        if e > voters.len() {
            return;
        }
        for mask in 0u32..(1 << voters.len()) {
            if mask.count_ones() as usize != e {
                continue;
            }
            let best = (0..voters.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| self.standbys[voters[i].as_str()].flush)
                .max()
                .unwrap_or(0);
            assert!(
                best >= self.acked_max,
                "electing set {:?} of {key:?} has WAL up to {best} but commit {} was acknowledged \
                 (mode {:?}, ssn {}); trace:\n{}",
                (0..voters.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| voters[i])
                    .collect::<Vec<_>>(),
                self.acked_max,
                self.mode,
                self.ssn,
                trace.join("\n")
            );
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m = Model::new(&mut rng);
    let mut trace = vec![format!(
        "seed {seed}: {:?}, {} standbys",
        m.settings,
        m.standbys.len()
    )];
    let names: Vec<String> = m.standbys.keys().cloned().collect();
    for _ in 0..300 {
        match rng.below(10) {
            0..=2 => {
                m.primary_lsn += 1;
                m.pending.push(m.primary_lsn);
                trace.push(format!("commit {}", m.primary_lsn));
            }
            3..=5 => {
                let n = &names[rng.below(names.len() as u64) as usize];
                let s = m.standbys.get_mut(n).unwrap();
                if s.connected {
                    let gap = m.primary_lsn - s.flush;
                    s.flush += if gap == 0 { 0 } else { 1 + rng.below(gap) };
                    trace.push(format!("{n} flushed {}", s.flush));
                }
            }
            // The operator edits /config: the other mode, or another node count.
            6 if rng.below(8) == 0 => {
                if rng.below(2) == 0 {
                    m.mode = match m.mode {
                        SyncMode::On => SyncMode::Quorum,
                        _ => SyncMode::On,
                    };
                    m.settings.mode = m.mode;
                } else {
                    m.settings.node_count = 1 + rng.below(3) as u32;
                }
                trace.push(format!("settings now {:?}", m.settings));
            }
            6 => {
                let n = &names[rng.below(names.len() as u64) as usize];
                let s = m.standbys.get_mut(n).unwrap();
                s.connected = !s.connected;
                trace.push(format!("{n} connected={}", s.connected));
            }
            _ => {
                let step = m.leader_loop();
                trace.push(format!("leader: {step:?}"));
            }
        }
        m.release();
        m.check(&trace);
    }
    // Faults stop: everyone connects and keeps up. The plan must settle in a few loops.
    for s in m.standbys.values_mut() {
        s.connected = true;
    }
    let mut settled = false;
    for _ in 0..12 {
        for s in m.standbys.values_mut() {
            s.flush = m.primary_lsn;
        }
        m.release();
        m.check(&trace);
        if m.leader_loop().is_none() {
            settled = true;
            break;
        }
        m.check(&trace);
    }
    assert!(
        settled,
        "the plan did not settle; trace:\n{}",
        trace.join("\n")
    );
    let eligible = m
        .cluster
        .members
        .iter()
        .filter(|(n, e)| *n != "p" && e.value().is_some_and(|v| v.tags.may_be_sync()))
        .count();
    if m.settings.strict && eligible == 0 {
        // Strict with no standby that may be synchronous: commits wait, as asked.
        return;
    }
    // And commits flow again.
    m.primary_lsn += 1;
    m.pending.push(m.primary_lsn);
    for s in m.standbys.values_mut() {
        s.flush = m.primary_lsn;
    }
    m.release();
    assert!(
        m.pending.is_empty(),
        "commits block after settling; ssn {}, trace:\n{}",
        m.ssn,
        trace.join("\n")
    );
    let key = m.cluster.sync.clone().unwrap_or_default();
    let want = (m.settings.node_count as usize).min(eligible);
    match m.mode {
        SyncMode::Quorum => assert_eq!(
            key.sync_standby.len(),
            eligible,
            "seed {seed}: {key:?} ssn {} {:?}",
            m.ssn,
            m.settings
        ),
        _ => assert_eq!(key.sync_standby.len(), want, "seed {seed}: {key:?}"),
    }
}

#[test]
fn no_acknowledged_commit_escapes_the_electing_sets_over_seeded_schedules() {
    for seed in 0..2000 {
        run(seed);
    }
}

/// Strict mode with no standby to wait for: `*` (`ANY 1 (*)` for quorum commit), as Patroni
/// sets it, so commits wait for some standby instead of turning asynchronous.
#[test]
fn strict_mode_without_standbys_waits_for_any_standby() {
    for (mode, text) in [(SyncMode::On, "*"), (SyncMode::Quorum, "ANY 1 (*)")] {
        let c = Cluster {
            sync: Some(key_naming_nobody("p")),
            ..Cluster::default()
        };
        let input = PlanInput {
            me: "p",
            settings: SyncSettings {
                mode,
                strict: true,
                ..Default::default()
            },
            cluster: &c,
            ssn: &Ssn::none(),
            ssn_lsn: None,
            rows: &[],
            primary_lsn: Lsn(0),
            synchronous_commit: "on",
        };
        let (step, _) = plan(&input).unwrap();
        let SyncStep::SetSsn(ssn) = step else {
            panic!("{mode:?}: {step:?}");
        };
        assert_eq!(ssn.to_string(), text);
    }
}

#[test]
fn a_leader_takes_over_a_key_it_does_not_own_with_nobody_electable() {
    let c = Cluster {
        sync: Some(SyncValue {
            leader: Some("old".into()),
            sync_standby: ["p".to_string()].into(),
            quorum: 0,
        }),
        ..Cluster::default()
    };
    let input = PlanInput {
        me: "p",
        settings: SyncSettings {
            mode: SyncMode::On,
            ..Default::default()
        },
        cluster: &c,
        ssn: &Ssn::none(),
        ssn_lsn: None,
        rows: &[],
        primary_lsn: Lsn(0),
        synchronous_commit: "on",
    };
    let (step, _) = plan(&input).unwrap();
    assert_eq!(
        step,
        SyncStep::WriteKey(SyncValue {
            leader: Some("p".into()),
            ..Default::default()
        })
    );
}

/// Acceptance `basic_replication` ("stuck sync replica"): under `remote_apply` a standby
/// whose replay is paused flushes everything yet holds every commit; Patroni measures
/// `maximum_lag_on_syncnode` by the position the commit waits for, against the most
/// advanced standby, and swaps it out. Under `on` the same standby is not lagging.
#[test]
fn maximum_lag_on_syncnode_counts_what_the_commit_waits_for() {
    let mut c = Cluster::default();
    for (name, role) in [("p", "primary"), ("s1", "replica"), ("s2", "replica")] {
        c.members.insert(
            name.into(),
            MemberEntry::Ok(MemberValue {
                state: "running".into(),
                role: role.into(),
                ..Default::default()
            }),
        );
    }
    c.sync = Some(SyncValue {
        leader: Some("p".into()),
        sync_standby: ["s2".to_string()].into(),
        quorum: 0,
    });
    let row = |name: &str, replay: u64| ReplicationRow {
        application_name: name.into(),
        streaming: true,
        sync_state: if name == "s2" { "sync" } else { "potential" }.into(),
        flush: Lsn(5000),
        write: Lsn(5000),
        replay: Lsn(replay),
    };
    let rows = [row("s1", 5000), row("s2", 100)];
    let ssn = Ssn::new(SsnKind::First, 1, ["s2".to_string()]);
    let input = |synchronous_commit| PlanInput {
        me: "p",
        settings: SyncSettings {
            mode: SyncMode::On,
            maximum_lag_on_syncnode: Some(1000),
            ..Default::default()
        },
        cluster: &c,
        ssn: &ssn,
        ssn_lsn: Some(Lsn(100)),
        rows: &rows,
        // The primary is no further than the standbys' flush: commits are blocked.
        primary_lsn: Lsn(5000),
        synchronous_commit,
    };
    assert_eq!(plan(&input("on")), None, "flush is caught up: s2 stays");
    let (step, why) = plan(&input("remote_apply")).expect("s2 is swapped out");
    let SyncStep::WriteKey(key) = step else {
        panic!("{step:?}: {why}");
    };
    assert!(!key.names("s2"), "{why}");
}
