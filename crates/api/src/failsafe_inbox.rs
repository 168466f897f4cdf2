//! The last `POST /failsafe` this node accepted: which leader said it is still running,
//! and when. Shared between the REST API (writer) and the agent (reader), which treats a
//! recent contact as "the leader is alive" while the DCS is unreachable (Patroni's
//! `Failsafe.update` / `Failsafe.leader`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One accepted `POST /failsafe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailsafeContact {
    pub leader: String,
    pub at: Instant,
    /// The ttl the leader runs with, when it said (pgkeel's leaders do): it may stay writable
    /// up to a ttl after asking, so a replica holds off for the longer of both ttls.
    pub ttl: Option<Duration>,
    /// The leader's replication slot positions (`slots` of the POST), which replicas use
    /// to advance their copies of the permanent slots while the DCS is away.
    pub slots: Option<std::collections::BTreeMap<String, u64>>,
}

impl FailsafeContact {
    /// Until when the leader may still be running, judged with this node's `ttl`.
    pub fn hold_until(&self, ttl: Duration) -> Instant {
        self.at + self.ttl.map_or(ttl, |t| t.max(ttl))
    }
}

/// One slot, overwritten by every accepted contact; only the latest matters, as in
/// Patroni, whose `Failsafe` object keeps a single leader.
#[derive(Debug, Default)]
pub struct FailsafeInbox {
    last: Mutex<Option<FailsafeContact>>,
}

impl FailsafeInbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `leader` (running with `ttl`, if it said) called now.
    pub fn record(
        &self,
        leader: String,
        ttl: Option<Duration>,
        slots: Option<std::collections::BTreeMap<String, u64>>,
    ) {
        // Holders only copy a value in or out, so a poisoned lock still holds a whole one.
        let mut slot = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(FailsafeContact {
            leader,
            // tokio's clock: the real one, or the simulator's virtual time.
            at: tokio::time::Instant::now().into_std(),
            ttl,
            slots,
        });
    }

    /// The last leader that called, and when.
    pub fn last(&self) -> Option<FailsafeContact> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Patroni's `Failsafe.is_active()` on a replica: a leader called less than a ttl ago.
    pub(crate) fn active(&self, ttl: Duration, now: Instant) -> bool {
        self.last().is_some_and(|c| now < c.hold_until(ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_contact() {
        let inbox = FailsafeInbox::new();
        assert_eq!(inbox.last(), None);
        assert!(!inbox.active(Duration::from_secs(30), Instant::now()));
        inbox.record("node1".into(), None, None);
        inbox.record("node3".into(), None, None);
        let c = inbox.last().expect("a contact");
        let at = c.at;
        assert_eq!(c.leader, "node3");
        let ttl = Duration::from_secs(30);
        assert!(inbox.active(ttl, at));
        assert!(inbox.active(ttl, at + Duration::from_secs(29)));
        assert!(!inbox.active(ttl, at + ttl));
        // A leader with a longer ttl is held for its own.
        inbox.record("node3".into(), Some(Duration::from_secs(60)), None);
        let at = inbox.last().unwrap().at;
        assert!(inbox.active(ttl, at + Duration::from_secs(59)));
        assert!(!inbox.active(ttl, at + Duration::from_secs(60)));
    }
}
