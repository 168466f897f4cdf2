//! The cluster-wide settings: read from `bootstrap.dcs` (strictly: a bad value refuses the
//! file) and from the DCS `/config` key (leniently: a bad field falls back to the local one,
//! because another node or an operator wrote it and this node must keep running).
//!
//! - [`read`]: what a `/config`-shaped value says, field by field (`None` for a field that
//!   is absent or bad, with the problem noted);
//! - [`effective`]: the settings in force, each field falling back as the rules say;
//! - [`check`]: the strict validation of `bootstrap.dcs` and of a `PATCH`/`PUT /config` or
//!   `edit-config` before it is written.

use std::time::Duration;

mod adopt;
mod check;
mod effective;
mod read;
mod stored;

pub use adopt::{adopt_dynamic, drop_refused_parameters, Adopted, ConfigProblem, StoredConfig};
pub(crate) use check::from_bootstrap;
pub use check::{check_dynamic, check_dynamic_with};
pub use effective::effective_dynamic;
pub(crate) use read::parameters;
pub use read::sync_mode_in;

/// Floors below which the HA loop cannot work: a lease shorter than 2 s expires between two
/// keepalives on a loaded host, and sub-200 ms loops only burn CPU.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);
pub(crate) const MIN_LOOP_WAIT: Duration = Duration::from_millis(200);
pub(crate) const MIN_RETRY_TIMEOUT: Duration = Duration::from_millis(500);

/// The smallest `primary_hang_timeout`: below it a probe's own deadline and one busy
/// moment of a loaded server would already count as a hang.
pub(crate) const MIN_HANG_TIMEOUT: Duration = Duration::from_secs(1);

/// `loop_wait + 2 * retry_timeout <= ttl`: a leader that starts a loop just before its lease
/// is due must still get two DCS retries in before the lease expires. Overflow counts as a
/// violation.
fn timings_ok(ttl: Duration, loop_wait: Duration, retry_timeout: Duration) -> bool {
    retry_timeout
        .checked_mul(2)
        .and_then(|r| r.checked_add(loop_wait))
        .is_some_and(|needed| needed <= ttl)
}
