//! The faults the suite injects, what each is expected to do to writes, and the bounds a run
//! must meet. Pure data: injecting and healing live in [`super::suite`].
//!
//! To add a scenario: a [`Fault`] variant with its number and name here, its place in
//! [`Fault::ALL`] (and in [`SHORT`] if CI should run it), the writes it is expected to
//! interrupt in [`Fault::expect`] (a new [`Outage`] if none fits, with its bound in
//! [`Budget::bounds`]), then its injection in `Suite::inject`, its hold in `Suite::hold` if
//! it is more than a sleep, and its undoing in `Suite::heal`.

use std::time::Duration;

use clap::ValueEnum;

/// Replication mode a scenario runs in (`synchronous_mode` in `/config`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Async,
    Sync,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 1: the leader cannot reach any etcd member (it still reaches replicas and clients).
    LeaderFromEtcd,
    /// 2: the leader reaches nobody and nobody reaches it.
    LeaderIsolated,
    /// 3: one replica (in sync mode the synchronous standby) reaches nobody.
    ReplicaIsolated,
    /// 4: the leader and the replicas cannot reach each other; both reach etcd.
    LeaderFromReplicas,
    /// 5: SIGKILL of etcd's raft leader; restarted at heal.
    EtcdMemberKilled,
    /// 6: two of three etcd members cut from everything, `failsafe_mode` off / on.
    EtcdMajorityLost { failsafe: bool },
    /// 7: SIGSTOP of the leader's agent and postmaster (its backends keep running); SIGCONT
    /// at heal.
    LeaderFrozen,
    /// 8: SIGKILL of the leader's agent only (PostgreSQL keeps running); restarted at heal.
    LeaderAgentKilled,
    /// 9: the leader's WAL file system (a tmpfs) filled up; the filler removed at heal.
    LeaderWalFull,
    /// 10: the leader's veth down and up every second.
    LeaderLinkFlapping,
    /// 11: SIGSTOP of the leader's postmaster and every backend, its agent running (a hung
    /// PostgreSQL); SIGCONT at heal.
    LeaderPgHung,
    /// 12: SIGSTOP of the leader's postmaster alone (backends and agent keep running);
    /// SIGCONT at heal.
    LeaderPostmasterHung,
    /// 13: SIGSTOP of a replica's PostgreSQL (in sync mode the synchronous standby's), its
    /// agent running; SIGCONT at heal.
    ReplicaPgHung,
    /// 14: SIGKILL of the leader's postmaster and backends, its agent running: restarted in
    /// place (crash recovery), the key kept.
    LeaderPgKilled,
    /// 15: the leader's storage (data directory and WAL, one FUSE pass-through) stops
    /// completing I/O, its agent running; resumed at heal.
    LeaderDiskStalled,
}

/// The CI subset (`--short`), in order. The faults that once broke a target stay as regression
/// scenarios: 7 and 8 (overlapping primaries before the fence guardian and the SIGKILL of a
/// stopped postmaster), 6f (failsafe mode never armed in time), 15 (a stall that began just
/// after a probe was noticed three deadlines late).
pub const SHORT: &[(Mode, Fault)] = &[
    (Mode::Async, Fault::LeaderFromEtcd),
    (Mode::Async, Fault::LeaderIsolated),
    (Mode::Async, Fault::EtcdMemberKilled),
    (Mode::Async, Fault::LeaderFrozen),
    (Mode::Async, Fault::LeaderAgentKilled),
    (Mode::Async, Fault::EtcdMajorityLost { failsafe: true }),
    (Mode::Async, Fault::LeaderDiskStalled),
    (Mode::Sync, Fault::LeaderFromEtcd),
];

impl Fault {
    /// Every scenario, in the order a full run takes them.
    pub const ALL: &[Fault] = &[
        Fault::LeaderFromEtcd,
        Fault::LeaderIsolated,
        Fault::ReplicaIsolated,
        Fault::LeaderFromReplicas,
        Fault::EtcdMemberKilled,
        Fault::EtcdMajorityLost { failsafe: false },
        Fault::EtcdMajorityLost { failsafe: true },
        Fault::LeaderFrozen,
        Fault::LeaderAgentKilled,
        Fault::LeaderWalFull,
        Fault::LeaderLinkFlapping,
        Fault::LeaderPgHung,
        Fault::LeaderPostmasterHung,
        Fault::ReplicaPgHung,
        Fault::LeaderPgKilled,
        Fault::LeaderDiskStalled,
    ];

    /// The fault's number in issue 5's list.
    pub fn number(self) -> u8 {
        match self {
            Fault::LeaderFromEtcd => 1,
            Fault::LeaderIsolated => 2,
            Fault::ReplicaIsolated => 3,
            Fault::LeaderFromReplicas => 4,
            Fault::EtcdMemberKilled => 5,
            Fault::EtcdMajorityLost { .. } => 6,
            Fault::LeaderFrozen => 7,
            Fault::LeaderAgentKilled => 8,
            Fault::LeaderWalFull => 9,
            Fault::LeaderLinkFlapping => 10,
            Fault::LeaderPgHung => 11,
            Fault::LeaderPostmasterHung => 12,
            Fault::ReplicaPgHung => 13,
            Fault::LeaderPgKilled => 14,
            Fault::LeaderDiskStalled => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::LeaderFromEtcd => "leader-cut-from-etcd",
            Fault::LeaderIsolated => "leader-isolated",
            Fault::ReplicaIsolated => "replica-isolated",
            Fault::LeaderFromReplicas => "leader-cut-from-replicas",
            Fault::EtcdMemberKilled => "etcd-member-killed",
            Fault::EtcdMajorityLost { failsafe: false } => "etcd-majority-lost",
            Fault::EtcdMajorityLost { failsafe: true } => "etcd-majority-lost-failsafe",
            Fault::LeaderFrozen => "leader-frozen",
            Fault::LeaderAgentKilled => "leader-agent-killed",
            Fault::LeaderWalFull => "leader-wal-full",
            Fault::LeaderLinkFlapping => "leader-link-flapping",
            Fault::LeaderPgHung => "leader-postgres-hung",
            Fault::LeaderPostmasterHung => "leader-postmaster-hung",
            Fault::ReplicaPgHung => "replica-postgres-hung",
            Fault::LeaderPgKilled => "leader-postgres-killed",
            Fault::LeaderDiskStalled => "leader-disk-stalled",
        }
    }

    /// `6` or `6f` (failsafe), as `--fault` takes them.
    pub fn key(self) -> String {
        match self {
            Fault::EtcdMajorityLost { failsafe: true } => "6f".into(),
            f => f.number().to_string(),
        }
    }

    pub fn parse(key: &str) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.key() == key.trim())
    }

    /// The fault stalls the nodes' storage: the cluster must run on FUSE pass-throughs.
    pub fn needs_stallable_disks(self) -> bool {
        self == Fault::LeaderDiskStalled
    }

    /// The writes the fault is expected to interrupt.
    pub fn expect(self, mode: Mode) -> Outage {
        match (self, mode) {
            (Fault::LeaderFromEtcd | Fault::LeaderIsolated, _) => Outage::Failover,
            (Fault::LeaderFrozen | Fault::LeaderAgentKilled, _) => Outage::Failover,
            // The synchronous standby (or every replica) goes silent: commits wait until the
            // leader's walsender times out and the leader picks another standby or none.
            (Fault::ReplicaIsolated | Fault::LeaderFromReplicas, Mode::Sync) => {
                Outage::SyncStandbyLost
            }
            (Fault::ReplicaIsolated | Fault::LeaderFromReplicas, Mode::Async) => Outage::None,
            (Fault::EtcdMemberKilled, _) => Outage::EtcdReelection,
            (Fault::EtcdMajorityLost { failsafe: true }, _) => Outage::None,
            (Fault::EtcdMajorityLost { failsafe: false }, _) => Outage::UntilHeal,
            (Fault::LeaderWalFull | Fault::LeaderLinkFlapping, _) => Outage::UntilHeal,
            (Fault::LeaderPgHung | Fault::LeaderPostmasterHung, _) => Outage::Hang,
            (Fault::ReplicaPgHung, Mode::Sync) => Outage::SyncStandbyLost,
            (Fault::ReplicaPgHung, Mode::Async) => Outage::None,
            (Fault::LeaderPgKilled, Mode::Async) => Outage::Restart,
            (Fault::LeaderPgKilled, Mode::Sync) => Outage::RestartSync,
            (Fault::LeaderDiskStalled, _) => Outage::Stall,
        }
    }
}

/// What a fault does to writes, which sets its write-recovery bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Writes should not stop (a retried statement at most).
    None,
    /// A replica must take over: lease expiry, race, promotion.
    Failover,
    /// etcd elects a new raft leader and the agents' clients leave the dead member. With a
    /// short ttl this can outlast the leader's fence margin (ttl − max(ttl/5, 0.5 s) = 2.4 s
    /// in the fast profile against etcd's 1 s election timeout plus reconnects): the leader
    /// may stop PostgreSQL and start it again, still holding the key.
    EtcdReelection,
    /// Commits wait for a synchronous standby that went silent until the walsender times out.
    SyncStandbyLost,
    /// Writes may stop for as long as the fault is held.
    UntilHeal,
    /// The leader's PostgreSQL answers nobody: after `primary_hang_timeout` it is killed and
    /// the key released; a replica takes over at once.
    Hang,
    /// The leader's PostgreSQL died: its agent restarts it in place (crash recovery).
    Restart,
    /// As [`Outage::Restart`], and commits then wait for the synchronous standby, whose WAL
    /// receiver lost its upstream and tries again only every `wal_retrieve_retry_interval`
    /// (or until the leader takes it out of the `sync` key).
    RestartSync,
    /// The leader's storage stopped: as [`Outage::Hang`], except that a process waiting on
    /// the storage may not be killable (uninterruptible sleep); the agent then cannot prove
    /// its server gone, never releases the key and stops renewing its lease, which expires
    /// a ttl later.
    Stall,
}

/// The settings bounds are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub ttl: Duration,
    pub loop_wait: Duration,
    /// How long a fault is held before it is healed.
    pub hold: Duration,
    /// `wal_sender_timeout` (also `wal_receiver_timeout`) the suite runs PostgreSQL with.
    pub wal_timeout: Duration,
}

/// The most a scenario may take: from the first failed write to the next acknowledged one,
/// and from the heal to a healthy cluster.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub write: Duration,
    pub converge: Duration,
}

/// Margin for scheduling on a loaded 2-core machine: three agents, three PostgreSQL servers,
/// three etcd members and the suite share it.
const SLACK: Duration = Duration::from_secs(5);

/// PostgreSQL's `wal_retrieve_retry_interval` (its default; the suite does not set it).
const WAL_RETRIEVE_RETRY: Duration = Duration::from_secs(5);

impl Budget {
    /// `primary_hang_timeout` at its default: ttl/2, at least 2 s.
    fn hang(&self) -> Duration {
        (self.ttl / 2).max(Duration::from_secs(2))
    }

    pub fn bounds(&self, outage: Outage) -> Bounds {
        let write = match outage {
            Outage::None => SLACK,
            // The lease runs out (ttl), a replica notices on its next loop and promotes; the
            // client then finds the new primary.
            Outage::Failover => self.ttl * 3 + self.loop_wait * 2 + SLACK,
            Outage::EtcdReelection => self.ttl + self.loop_wait * 2 + SLACK,
            Outage::SyncStandbyLost => self.wal_timeout + self.loop_wait * 3 + SLACK,
            Outage::UntilHeal => self.hold + self.ttl * 3 + self.loop_wait * 2 + SLACK,
            // README: the hang bound (ttl/2, at least 2 s; each probe may take that long)
            // from the first unanswered probe, a loop_wait late at most, then the promotion.
            Outage::Hang => self.hang() + self.loop_wait * 2 + SLACK,
            Outage::Restart => self.loop_wait * 2 + SLACK,
            Outage::RestartSync => self.loop_wait * 2 + WAL_RETRIEVE_RETRY + SLACK,
            // README: the hang bound, then at worst the lease's expiry.
            Outage::Stall => self.hang() + self.ttl + self.loop_wait * 2 + SLACK,
        };
        // After the heal: a deposed leader notices, is rewound and restarted as a replica,
        // and streams; a lost etcd quorum is re-formed first.
        let converge = Duration::from_secs(60);
        Bounds { write, converge }
    }
}
