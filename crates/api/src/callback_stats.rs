//! Counts of the agent's callback runs (`on_start` ... `on_role_change`, `pre_promote`,
//! `before_stop`), by outcome, for `GET /metrics`. The agent records; the API reads.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallbackOutcome {
    /// Exited 0.
    Ok,
    /// Exited non-zero, by a signal, or could not start.
    Failed,
    /// Killed by the agent because a newer callback was due (Patroni's executor does so).
    Superseded,
}

impl CallbackOutcome {
    pub fn label(self) -> &'static str {
        match self {
            CallbackOutcome::Ok => "ok",
            CallbackOutcome::Failed => "failed",
            CallbackOutcome::Superseded => "superseded",
        }
    }
}

#[derive(Debug, Default)]
pub struct CallbackStats {
    /// (callback, outcome) → (runs, seconds spent).
    runs: Mutex<BTreeMap<(String, CallbackOutcome), (u64, f64)>>,
}

impl CallbackStats {
    pub fn record(&self, callback: &str, outcome: CallbackOutcome, seconds: f64) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let e = runs.entry((callback.to_string(), outcome)).or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    /// Every (callback, outcome, runs, seconds) seen so far, in a stable order.
    pub fn rows(&self) -> Vec<(String, CallbackOutcome, u64, f64)> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter()
            .map(|((c, o), (n, s))| (c.clone(), *o, *n, *s))
            .collect()
    }
}

impl PartialEq for CallbackStats {
    /// Counters are not data of the node's state: snapshots compare equal whatever counts
    /// they carry.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
