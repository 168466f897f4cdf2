//! State shared between the loop and its helper tasks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pgkeel_core::observation::{FailsafeRound, LeaseView};

/// Whom a leader asks, from its last read of the DCS.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Targets {
    /// `/failsafe`: name → api_url, this node included.
    pub members: BTreeMap<String, String>,
    pub conn_url: Option<String>,
}

/// The lease as the lease keeper last saw it, and whether PostgreSQL may be a primary.
pub struct Shared {
    lease: Mutex<LeaseView>,
    may_be_primary: AtomicBool,
    paused: AtomicBool,
    /// A lease the loop stopped renewing (`Action::AbandonLease`); 0: none.
    abandoned: AtomicI64,
    /// The last DCS read showed the leader key bound to this agent's current lease.
    holds_key: AtomicBool,
    /// A lease granted after the leader key expired with the previous one, while failsafe
    /// mode kept the primary writable: it protects nothing until the key is bound to it.
    unbound_lease: AtomicI64,
    /// Failsafe mode, as the loop last saw the DCS: whom to ask while this leader cannot
    /// renew its lease (None: not the leader, or failsafe mode off).
    failsafe_targets: Mutex<Option<Targets>>,
    /// The last failsafe round and the start of the last one every member confirmed.
    failsafe_rounds: Mutex<(Option<FailsafeRound>, Option<std::time::Instant>)>,
    /// This primary's replication slot positions (its own slot name at its WAL position
    /// too), as the last slot step saw them: the `slots` of its `POST /failsafe`.
    failsafe_slots: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Shared {
    pub fn new(ttl: Duration) -> Self {
        Shared {
            lease: Mutex::new(LeaseView {
                id: 0,
                ttl,
                renewed_at: None,
            }),
            may_be_primary: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            abandoned: AtomicI64::new(0),
            holds_key: AtomicBool::new(false),
            unbound_lease: AtomicI64::new(0),
            failsafe_targets: Mutex::new(None),
            failsafe_rounds: Mutex::new((None, None)),
            failsafe_slots: Mutex::new(Default::default()),
        }
    }

    pub fn failsafe_slots(&self) -> std::collections::BTreeMap<String, u64> {
        self.failsafe_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_failsafe_slots(&self, slots: std::collections::BTreeMap<String, u64>) {
        *self
            .failsafe_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = slots;
    }

    pub fn lease(&self) -> LeaseView {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_lease(&self, lease: LeaseView) {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease;
    }

    /// Records a successful keepalive of lease `id` sent at `at`, unless the agent moved to
    /// another lease meanwhile (a TTL change): a late answer about the old lease must not
    /// bring it back.
    pub fn renewed(&self, id: i64, at: std::time::Instant) -> bool {
        let mut l = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if l.id != id {
            return false;
        }
        l.renewed_at = Some(at);
        true
    }

    /// Forgets lease `id` (etcd says it expired), unless the agent already moved on.
    pub fn lost(&self, id: i64) -> bool {
        let mut l = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if l.id != id {
            return false;
        }
        l.id = 0;
        l.renewed_at = None;
        true
    }

    /// The leader key is bound to this agent's current lease (as the loop last read it).
    pub fn holds_key(&self) -> bool {
        self.holds_key.load(Ordering::SeqCst)
    }

    pub fn set_holds_key(&self, v: bool) {
        self.holds_key.store(v, Ordering::SeqCst);
        if v {
            self.unbound_lease.store(0, Ordering::SeqCst);
        }
    }

    /// Lease `id` was granted after the key expired with the previous lease: until the loop
    /// sees the key bound to it, the fence does not count it.
    pub fn lease_without_key(&self, id: i64) {
        self.unbound_lease.store(id, Ordering::SeqCst);
    }

    /// Stops renewals of lease `id`: it expires in etcd after its ttl.
    pub fn abandon(&self, id: i64) {
        self.abandoned.store(id, Ordering::SeqCst);
    }

    /// The lease no longer renewed (0: none).
    pub fn abandoned(&self) -> i64 {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Set when PostgreSQL is (or is about to be) writable; the fence watchdog only acts then.
    pub fn may_be_primary(&self) -> bool {
        self.may_be_primary.load(Ordering::SeqCst)
    }

    pub fn set_may_be_primary(&self, v: bool) {
        self.may_be_primary.store(v, Ordering::SeqCst);
    }

    /// Failsafe mode keeps this primary writable at `now`: every member confirmed it in a
    /// recent enough round (core's rule, on the lease's ttl).
    pub fn failsafe_alive(&self, now: std::time::Instant) -> bool {
        pgkeel_core::decide::failsafe_alive(self.failsafe_rounds().1, self.lease().ttl, now)
    }

    /// My current lease is provably alive at `at`.
    pub fn lease_alive(&self, at: std::time::Instant) -> bool {
        pgkeel_core::decide::lease_alive(&self.lease(), at)
    }

    /// The fence's rule: at `at`, a server that may be a primary must be stopped because
    /// neither its lease nor failsafe mode keeps it writable (and the cluster is not paused).
    pub fn fence_due(&self, at: std::time::Instant) -> bool {
        self.writable_until(at).is_some_and(|until| at >= until)
    }

    /// Until when a primary here may stay writable: the later of its lease's fence deadline
    /// and its failsafe deadline (`at` when it has neither). `None` when there is nothing
    /// to guard: PostgreSQL is not a primary, or the cluster is paused.
    pub fn writable_until(&self, at: std::time::Instant) -> Option<std::time::Instant> {
        let lease = self.lease();
        pgkeel_core::decide::writable_until(
            self.may_be_primary(),
            self.paused(),
            &lease,
            lease.id != self.unbound_lease.load(Ordering::SeqCst),
            self.failsafe_rounds().1,
            at,
        )
    }

    pub(crate) fn failsafe_targets(&self) -> Option<Targets> {
        self.failsafe_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_failsafe_targets(&self, t: Option<Targets>) {
        *self
            .failsafe_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// The last round, and the start of the last fully confirmed one.
    pub fn failsafe_rounds(&self) -> (Option<FailsafeRound>, Option<std::time::Instant>) {
        self.failsafe_rounds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn record_failsafe_round(&self, round: FailsafeRound) {
        let mut g = self
            .failsafe_rounds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        g.1 = round.missing.is_empty().then_some(round.started);
        g.0 = Some(round);
    }

    /// Maintenance mode: the fence stands down, as every other automatic action does.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, v: bool) {
        self.paused.store(v, Ordering::SeqCst);
    }
}
