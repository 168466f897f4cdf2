//! Warnings that repeat every loop, logged once and then counted.
//!
//! The agent reads the DCS every loop (and on every watch event), and a bad value gives the
//! same warning each time until someone fixes it. Logging each one buried the log; logging
//! only the first hid that the problem lasts. [`Repeats`] logs a warning the first time, then
//! at most once per period with how many times it came back, and once more when it is gone.
//!
//! Pure: time comes in as an argument, the lines to log come out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often a warning that keeps coming back is logged again, with its count.
pub const REPEAT_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Seen {
    /// When it was last logged.
    logged_at: Instant,
    /// How many times it came back since.
    repeats: u64,
}

/// The warnings of the last round, each with what has been logged about it.
#[derive(Debug)]
pub struct Repeats {
    period: Duration,
    seen: BTreeMap<String, Seen>,
}

impl Repeats {
    pub fn new(period: Duration) -> Self {
        Repeats {
            period,
            seen: BTreeMap::new(),
        }
    }

    /// One round's warnings (one loop's read of the DCS): returns the lines to log now.
    ///
    /// A warning not in the previous round is logged as it is; one that was, only when
    /// `period` has passed since it was last logged, as `"<warning> (repeated N times in
    /// the last M s)"`. A warning missing from this round is forgotten, with a last line
    /// if it had come back unlogged: it is logged afresh when it returns.
    pub fn round(&mut self, warnings: &[String], now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = BTreeMap::new();
        for w in warnings {
            if next.contains_key(w) {
                continue; // the same warning twice in one round counts once
            }
            let seen = match self.seen.remove(w) {
                None => {
                    out.push(w.clone());
                    Seen {
                        logged_at: now,
                        repeats: 0,
                    }
                }
                Some(mut s) => {
                    s.repeats += 1;
                    let since = now.saturating_duration_since(s.logged_at);
                    if since >= self.period {
                        out.push(format!(
                            "{w} (repeated {} times in the last {} s)",
                            s.repeats,
                            since.as_secs()
                        ));
                        s.logged_at = now;
                        s.repeats = 0;
                    }
                    s
                }
            };
            next.insert(w.clone(), seen);
        }
        for (w, s) in std::mem::replace(&mut self.seen, next) {
            if s.repeats > 0 {
                out.push(format!("{w} (repeated {} more times, now gone)", s.repeats));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn first_then_counted_then_gone() {
        let t0 = Instant::now();
        let mut r = Repeats::new(Duration::from_secs(60));
        let w = s(&["bad failover", "bad sync"]);
        assert_eq!(r.round(&w, t0), w);
        // Every 2 s for a minute: nothing more.
        for i in 1..30 {
            assert_eq!(
                r.round(&w, t0 + Duration::from_secs(2 * i)),
                Vec::<String>::new()
            );
        }
        assert_eq!(
            r.round(&w, t0 + Duration::from_secs(60)),
            s(&[
                "bad failover (repeated 30 times in the last 60 s)",
                "bad sync (repeated 30 times in the last 60 s)"
            ])
        );
        // One is fixed: a last line with what was not logged yet.
        assert_eq!(
            r.round(&s(&["bad sync"]), t0 + Duration::from_secs(62)),
            Vec::<String>::new()
        );
        assert_eq!(
            r.round(&s(&["bad sync"]), t0 + Duration::from_secs(64)),
            Vec::<String>::new()
        );
        assert_eq!(
            r.round(&[], t0 + Duration::from_secs(66)),
            s(&["bad sync (repeated 2 more times, now gone)"])
        );
        // It comes back: logged afresh.
        assert_eq!(
            r.round(&s(&["bad sync"]), t0 + Duration::from_secs(68)),
            s(&["bad sync"])
        );
    }

    #[test]
    fn a_warning_gone_after_one_round_leaves_no_line() {
        let t0 = Instant::now();
        let mut r = Repeats::new(REPEAT_PERIOD);
        assert_eq!(r.round(&s(&["a", "a"]), t0), s(&["a"]));
        assert_eq!(r.round(&[], t0), Vec::<String>::new());
    }
}
