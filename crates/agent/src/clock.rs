//! The agent's clocks. Monotonic time is tokio's: the real one in production, and the
//! simulator's virtual time when its runtime's clock is paused (tokio's `Instant::now()` then
//! reads the runtime's clock; outside a runtime, e.g. on the fence thread, it is the plain
//! monotonic clock). Every deadline of the agent is measured with this one function.

use std::time::Instant;

pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How long ago `t` was (zero if `t` lies in the future).
pub fn since(t: Instant) -> std::time::Duration {
    now().saturating_duration_since(t)
}
