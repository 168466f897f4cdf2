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

use super::scalar;

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

/// Patroni's `_validate_and_adjust_timeouts`, with pgkeel's floors: a value below its floor
/// is raised to it, and when `loop_wait + 2 × retry_timeout > ttl`, `loop_wait` is lowered
/// (to its floor at most), then `retry_timeout`, so that the rule holds; `ttl` is never
/// changed. Returns the timings in force and Patroni's warning for each adjustment.
pub(crate) fn adjust_timings(
    ttl: Duration,
    loop_wait: Duration,
    retry_timeout: Duration,
) -> ((Duration, Duration, Duration), Vec<String>) {
    let mut notes = Vec::new();
    let mut floor = |name: &str, v: Duration, min: Duration| {
        if v < min {
            notes.push(format!(
                "{name}={} can't be smaller than {}, adjusting...",
                scalar::show_secs(v),
                scalar::show_secs(min)
            ));
            min
        } else {
            v
        }
    };
    let loop_wait = floor("loop_wait", loop_wait, MIN_LOOP_WAIT);
    let retry_timeout = floor("retry_timeout", retry_timeout, MIN_RETRY_TIMEOUT);
    let ttl = floor("ttl", ttl, MIN_TTL);
    if timings_ok(ttl, loop_wait, retry_timeout) {
        return ((ttl, loop_wait, retry_timeout), notes);
    }
    let show = scalar::show_secs;
    if !timings_ok(ttl, MIN_LOOP_WAIT, retry_timeout) {
        let retry = (ttl - MIN_LOOP_WAIT) / 2;
        notes.push(format!(
            "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={}. Adjusting \
             loop_wait from {} to {} and retry_timeout from {} to {}",
            show(ttl),
            show(loop_wait),
            show(MIN_LOOP_WAIT),
            show(retry_timeout),
            show(retry)
        ));
        return ((ttl, MIN_LOOP_WAIT, retry), notes);
    }
    let lowered = ttl - retry_timeout * 2;
    notes.push(format!(
        "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={} and \
         retry_timeout={}. Adjusting loop_wait from {} to {}",
        show(ttl),
        show(retry_timeout),
        show(loop_wait),
        show(lowered)
    ));
    ((ttl, lowered, retry_timeout), notes)
}

/// `loop_wait + 2 * retry_timeout <= ttl`: a leader that starts a loop just before its lease
/// is due must still get two DCS retries in before the lease expires. Overflow counts as a
/// violation.
fn timings_ok(ttl: Duration, loop_wait: Duration, retry_timeout: Duration) -> bool {
    retry_timeout
        .checked_mul(2)
        .and_then(|r| r.checked_add(loop_wait))
        .is_some_and(|needed| needed <= ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn timings_are_adjusted_as_patroni_does() {
        // Fine as they are.
        assert_eq!(
            adjust_timings(s(10.0), s(2.0), s(3.0)),
            ((s(10.0), s(2.0), s(3.0)), vec![])
        );
        // Patroni's case from its acceptance suite: ttl 20 with loop_wait 10, retry 10.
        let ((ttl, lw, rt), notes) = adjust_timings(s(20.0), s(10.0), s(10.0));
        assert_eq!((ttl, lw, rt), (s(20.0), MIN_LOOP_WAIT, s(9.9)));
        assert!(notes[0].starts_with("Violated the rule"), "{notes:?}");
        assert!(timings_ok(ttl, lw, rt));
        // Only loop_wait needs to give.
        let ((_, lw, rt), notes) = adjust_timings(s(30.0), s(10.0), s(10.0));
        assert_eq!((lw, rt), (s(10.0), s(10.0)), "{notes:?}");
        let ((_, lw, rt), notes) = adjust_timings(s(25.0), s(10.0), s(10.0));
        assert_eq!((lw, rt), (s(5.0), s(10.0)));
        assert!(
            notes[0].contains("Adjusting loop_wait from 10 to 5"),
            "{notes:?}"
        );
        // Below the floors: raised, said.
        let ((ttl, lw, rt), notes) = adjust_timings(s(1.0), s(0.0), s(0.1));
        assert_eq!(ttl, MIN_TTL);
        assert!(timings_ok(ttl, lw, rt));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("ttl=1 can't be smaller than 2")),
            "{notes:?}"
        );
    }
}
