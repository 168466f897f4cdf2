//! What the runtime saw this loop: the DCS, the local PostgreSQL, peers and the lease.
//!
//! An observation distinguishes "unknown" from "absent" (neon's observed state): a peer
//! whose API timed out is not a dead primary, and a DCS that did not answer is not an
//! empty cluster.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cluster::Cluster;
use crate::lsn::Lsn;
use crate::tags::Tags;

/// The state of the local PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub enum PgView {
    /// No data directory, or an empty one: this node must bootstrap or clone.
    NoData,
    /// A data directory exists and PostgreSQL is not running.
    Stopped(Stopped),
    /// The postmaster runs but does not accept connections yet (startup, recovery).
    Starting,
    /// Running and answering SQL.
    Running(Running),
    /// The postmaster runs but the status query failed with an answer (an error, a refused
    /// login); nothing is known about its role.
    Unknown,
    /// The postmaster runs but did not answer within the probe's deadline: no new
    /// connection was accepted, or the status query, the WAL flush or the read of the data
    /// directory did not complete. Nothing is known about its role; how long this has
    /// lasted is [`Observation::pg_silent_since`].
    NoAnswer,
}

/// From `pg_controldata` of a stopped cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    pub sysid: String,
    /// `Database cluster state`: "shut down", "shut down in recovery", "in production",
    /// "in archive recovery", "in crash recovery"...
    pub cluster_state: String,
    pub timeline: u32,
    /// `standby.signal` is present, so a start resumes as a replica.
    pub standby_signal: bool,
    /// `Latest checkpoint location`: for a cleanly shut down primary, where its WAL ends.
    pub checkpoint: Option<Lsn>,
}

impl Stopped {
    /// Whether the last run of this data directory was as a primary (it may hold WAL that
    /// the new leader does not have, so it must be rewound before it follows).
    pub fn was_primary(&self) -> bool {
        !self.standby_signal
            && matches!(
                self.cluster_state.as_str(),
                "shut down" | "in production" | "in crash recovery"
            )
    }
}

/// From SQL on a running server.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub sysid: String,
    pub in_recovery: bool,
    pub timeline: u32,
    /// Primary: `pg_current_wal_lsn()`. Replica: max(received, replayed).
    pub wal_position: Lsn,
    pub received: Option<Lsn>,
    pub replayed: Option<Lsn>,
    /// `host:port` from `primary_conninfo`, when a replica has one.
    pub upstream: Option<(String, u16)>,
    /// The WAL receiver is streaming.
    pub streaming: bool,
}

impl Running {
    /// How much WAL a replica has received, as its member key (`receive_lsn`) and `list`
    /// report it. Patroni's rule (`Postgresql.receive_lsn()`): the later of
    /// `pg_last_wal_receive_lsn()` (flushed) and the WAL receiver's `written_lsn` (written,
    /// not flushed yet). pgkeel also never reports it behind `replayed`: a WAL receiver starts
    /// at the beginning of the segment holding the replay position, so until its first flush
    /// (and for as long as it cannot connect) `pg_last_wal_receive_lsn()` is that segment's
    /// start, behind what the replica already replayed from its own `pg_wal` (a replica that
    /// just rejoined showed `0/4000000` under its replay position `0/40457E8`). Nothing behind
    /// the replay position is missing. `None` while nothing was ever streamed.
    pub fn receive_position(
        flushed: Option<Lsn>,
        written: Option<Lsn>,
        replayed: Option<Lsn>,
    ) -> Option<Lsn> {
        flushed
            .max(written)
            .max(replayed.filter(|_| flushed.is_some() || written.is_some()))
    }
}

/// Why a pg_rewind failed, as far as the next attempt cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindFailure {
    /// The timelines cannot be reconciled (no common ancestor, the WAL it needs is gone,
    /// another system, no checksums or `wal_log_hints`), or the cause is unknown: only a
    /// fresh clone brings this node back.
    Irreconcilable,
    /// The source could not be reached or did not answer in time: the same rewind may
    /// work on the next attempt, and wiping the data directory would not help.
    Transient,
}

impl RewindFailure {
    /// Classifies a failed pg_rewind (or a step before it) from its error text (pg_rewind's
    /// messages, in English: the adapter runs it with `LC_ALL=C`). Unknown texts count as
    /// irreconcilable, which is what every failure meant before they were told apart.
    pub fn classify(error: &str) -> RewindFailure {
        const TRANSIENT: &[&str] = &[
            "could not connect to server",
            "connection to server",
            "Connection refused",
            "timeout expired",
            "did not finish within",
            "server closed the connection unexpectedly",
            "No route to host",
            "could not translate host name",
        ];
        if TRANSIENT.iter().any(|t| error.contains(t)) {
            RewindFailure::Transient
        } else {
            RewindFailure::Irreconcilable
        }
    }

    /// Whether the next attempt to rejoin re-clones instead of rewinding again.
    pub fn needs_clone(failure: Option<RewindFailure>) -> bool {
        failure == Some(RewindFailure::Irreconcilable)
    }
}

/// This node won the bootstrap race and is making the new cluster (Patroni's
/// `bootstrapping`): from `Action::Bootstrap` until `Action::PostBootstrap` succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrapping {
    /// The data directory was made and PostgreSQL started (it may still be recovering a
    /// restored backup); post_bootstrap has not run yet.
    Started,
    /// The bootstrap or post_bootstrap failed: the attempt is abandoned.
    Failed,
}

/// What a peer's `GET /patroni` returned during a leader race.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerView {
    /// No answer in time (timeout, refused, bad body): unknown, not dead.
    Unreachable,
    Answered(PeerStatus),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// PostgreSQL runs and answers (`state == "running"`).
    pub running: bool,
    /// False when the peer runs as a primary (`xlog.location` present or role primary).
    pub in_recovery: bool,
    pub wal_position: Lsn,
    pub timeline: u32,
    pub tags: Tags,
}

/// The lease as the runtime knows it. The runtime keeps one etcd lease per agent and renews
/// it from its own task; here it says how long that lease is certainly alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    /// This agent's current lease id (0 while it has none).
    pub id: i64,
    /// The TTL the lease was granted with.
    pub ttl: std::time::Duration,
    /// The instant the last successful keepalive was *sent* (so etcd's expiry is no earlier
    /// than this + ttl). `None` while no keepalive has succeeded.
    pub renewed_at: Option<Instant>,
}

/// On a primary: synchronous replication as PostgreSQL has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationView {
    /// `synchronous_standby_names` in effect.
    pub ssn: crate::sync::Ssn,
    /// pgkeel set `synchronous_standby_names` (rather than the user's parameters).
    pub managed: bool,
    /// The primary's WAL position when `synchronous_standby_names` took its current value.
    pub ssn_lsn: Option<Lsn>,
    pub rows: Vec<crate::sync::ReplicationRow>,
    /// `synchronous_commit` in effect (which standby position a commit waits for).
    pub synchronous_commit: String,
}

/// A leader's failsafe round: while it cannot reach the DCS it asks every member listed in
/// `/failsafe` to confirm it (`POST /failsafe`).
#[derive(Debug, Clone, PartialEq)]
pub struct FailsafeRound {
    /// When the round started: every member that confirmed holds off racing until at
    /// least this + ttl.
    pub started: Instant,
    /// Members that did not confirm (empty: all did).
    pub missing: Vec<String>,
    /// Of those, the ones that certainly did not: they answered and said no, or nothing
    /// listens at their API (connection refused). The others gave no answer in time.
    pub refused: Vec<String>,
}

/// How a member answered one `POST /failsafe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailsafeAnswer {
    /// 200: it confirms this leader.
    Confirmed,
    /// Another status, or its API refused the connection: it does not.
    Refused,
    /// No answer within the timeout (or a network error): unknown.
    NoAnswer,
}

/// Everything `decide` needs, gathered by the runtime without deciding anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `Err(reason)` when the DCS could not be read this loop.
    pub dcs: Result<Cluster, String>,
    pub pg: PgView,
    /// Peers polled this loop (only when the leader key is absent); name → view.
    pub peers: BTreeMap<String, PeerView>,
    pub lease: LeaseView,
    /// How the last pg_rewind of this data directory failed, if it did.
    pub rewind_failed: Option<RewindFailure>,
    /// Since when starting this node's primary has kept failing (None: it has not failed).
    pub primary_start_failing_since: Option<Instant>,
    /// The last start of this node's primary failed and no postmaster is left: PostgreSQL
    /// cannot start as it is (Patroni's post_recover gives the leader key up at once).
    pub primary_start_exited: bool,
    /// This node stopped its primary and released the leader key for a switchover, and has
    /// not started PostgreSQL since: the demotion is not finished until it runs as a
    /// replica, maintenance mode or not (Patroni's demote starts it in the same step).
    pub released_for_switchover: bool,
    /// The last promotion's `pre_promote` command failed (a non-zero exit, or it could not
    /// run) and the leader key has not been given up since.
    pub pre_promote_failed: bool,
    /// When the leader key was given up after a failed `pre_promote`: Patroni's backoff keeps
    /// the node out of leader races for `ttl` from then.
    pub pre_promote_released_at: Option<Instant>,
    /// Since when the current `failover` key (its revision) has been due here: first seen,
    /// or its `scheduled_at` reached while seen. `None`: no key, or not due yet.
    pub failover_due_since: Option<Instant>,
    /// Since when the local PostgreSQL has answered no probe: the start of the first probe
    /// of the current run of [`PgView::NoAnswer`] observations (None: it answered, or it
    /// does not run).
    pub pg_silent_since: Option<Instant>,
    /// When PostgreSQL last answered it ran as a primary, or an action has made it one since
    /// (for a server that now answers nobody: may it be writable when it wakes up?).
    pub pg_was_primary: bool,
    /// This node is bootstrapping the cluster (see [`Bootstrapping`]); `None` otherwise.
    pub bootstrapping: Option<Bootstrapping>,
    /// The last [`Action::Kill`](crate::action::Action::Kill) could not prove every process
    /// of PostgreSQL gone (a process in uninterruptible sleep on a dead disk).
    pub kill_failed: bool,
    /// This agent is shutting down (SIGTERM/SIGINT).
    pub shutting_down: bool,
    /// Maintenance mode (`pause` in `/config`), as last read from the DCS.
    pub paused: bool,
    /// Wall-clock time of the observation, for scheduled operations (`scheduled_at`).
    pub wall_clock: std::time::SystemTime,
    /// On a primary: `synchronous_standby_names` and `pg_stat_replication`.
    pub replication: Option<ReplicationView>,
    /// This loop's failsafe round (a primary that cannot reach the DCS, failsafe_mode on).
    pub failsafe_round: Option<FailsafeRound>,
    /// The start of the last failsafe round in which every member confirmed me (None: none
    /// yet, or the last round was not confirmed by all).
    pub failsafe_confirmed: Option<Instant>,
    /// Replica side: the last leader that confirmed itself through `POST /failsafe`, and
    /// until when it may still be running (its call + the longer of its ttl and ours).
    pub failsafe_contact: Option<(String, Instant)>,
    /// The cluster-wide settings in force on this node (see `config::adopt_dynamic`): the
    /// last valid `/config`, kept through a loop whose DCS read failed or found `/config`
    /// bad, so that failsafe mode, ttl and the sync settings stay those of the cluster, never
    /// this node's bootstrap section. `None` (tests): read from this observation's `/config`.
    pub config_in_force: Option<crate::config::DynamicConfig>,
}

#[cfg(test)]
mod tests {
    use super::RewindFailure::{self, *};
    use super::Running;
    use crate::lsn::Lsn;

    #[test]
    fn received_wal_is_never_reported_behind_replayed_wal() {
        let at = |s: &str| Some(s.parse::<Lsn>().unwrap());
        let received = |flushed, written, replayed| {
            Running::receive_position(flushed, written, replayed).map(|l| l.to_string())
        };
        // Just rejoined: the WAL receiver restarted at the segment's start, behind what was
        // replayed from pg_wal, and has flushed nothing yet.
        assert_eq!(
            received(at("0/4000000"), None, at("0/40457E8")).as_deref(),
            Some("0/40457E8")
        );
        // Streaming: written but not flushed yet counts (Patroni's rule).
        assert_eq!(
            received(at("0/5000000"), at("0/5000100"), at("0/4FFFF00")).as_deref(),
            Some("0/5000100")
        );
        assert_eq!(
            received(at("0/5000100"), None, at("0/5000000")).as_deref(),
            Some("0/5000100")
        );
        // Never streamed (archive recovery only): nothing received, as Patroni reports it.
        assert_eq!(received(None, None, at("0/3000000")), None);
    }

    #[test]
    fn pg_rewind_failures_are_told_apart() {
        let cases = [
            ("pg_rewind failed (exit status: 1): pg_rewind: error: could not find common ancestor of the source and target cluster's timelines", Irreconcilable),
            ("pg_rewind: error: could not find previous WAL record at 0/3000028", Irreconcilable),
            ("pg_rewind: error: source and target clusters are from different systems", Irreconcilable),
            ("pg_rewind: fatal: target server needs to use either data checksums or \"wal_log_hints = on\"", Irreconcilable),
            ("something nobody has seen before", Irreconcilable),
            ("pg_rewind: error: could not connect to server: connection to server at \"10.0.0.1\", port 5432 failed: Connection refused", Transient),
            ("pg_rewind: error: connection to server at \"db1\" (10.0.0.1), port 5432 failed: timeout expired", Transient),
            ("rewinding from node1 (10.0.0.1:5432): pg_rewind: did not finish within 86400s", Transient),
        ];
        for (text, want) in cases {
            assert_eq!(RewindFailure::classify(text), want, "{text}");
        }
        assert!(RewindFailure::needs_clone(Some(Irreconcilable)));
        assert!(!RewindFailure::needs_clone(Some(Transient)));
        assert!(!RewindFailure::needs_clone(None));
    }
}
