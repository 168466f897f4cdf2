//! How soon the agent's loop runs its next round.
//!
//! After a change (a promotion, a start) or when the server fell silent after this round's
//! actions, the next round comes at once, so the cluster converges without waiting
//! `loop_wait`. Never more than [`MAX_IMMEDIATE`] rounds in a row: an action that "succeeds"
//! without changing what the next observation shows (a stop of a server whose state cannot
//! be read) must not make the loop spin.

use std::time::Duration;

/// Rounds in a row that may follow at once, without waiting.
pub const MAX_IMMEDIATE: u32 = 3;

/// When the next round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Zero: at once. Otherwise the loop waits this long (or until it is woken: a DCS
    /// change, an admin request, a signal).
    pub wait: Duration,
    /// Rounds in a row that followed at once, including the next one when `wait` is zero.
    pub streak: u32,
}

/// The pace after a round: `changed` (a non-routine action succeeded), `silent_now` (the
/// server stopped answering after this round's actions), `streak` (the previous [`Pace`]'s).
pub fn next_round(changed: bool, silent_now: bool, streak: u32, loop_wait: Duration) -> Pace {
    if (changed || silent_now) && streak < MAX_IMMEDIATE {
        Pace {
            wait: Duration::ZERO,
            streak: streak + 1,
        }
    } else {
        Pace {
            wait: loop_wait,
            streak: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOP_WAIT: Duration = Duration::from_secs(1);

    /// Rounds in `secs` seconds when every round reports `changed`/`silent_now` as given,
    /// each round itself taking no time (the worst case).
    fn rounds_in(secs: u64, changed: bool, silent_now: bool) -> u32 {
        let (mut t, mut streak, mut rounds) = (Duration::ZERO, 0, 0);
        while t < Duration::from_secs(secs) {
            rounds += 1;
            let p = next_round(changed, silent_now, streak, LOOP_WAIT);
            t += p.wait;
            streak = p.streak;
        }
        rounds
    }

    #[test]
    fn a_round_that_changes_something_is_followed_at_once_but_never_more_than_three_times() {
        assert_eq!(next_round(true, false, 0, LOOP_WAIT).wait, Duration::ZERO);
        assert_eq!(next_round(false, true, 2, LOOP_WAIT).wait, Duration::ZERO);
        assert_eq!(next_round(true, false, 3, LOOP_WAIT).wait, LOOP_WAIT);
        assert_eq!(next_round(false, false, 0, LOOP_WAIT).wait, LOOP_WAIT);
        // A quiet round resets the streak.
        assert_eq!(next_round(false, false, 2, LOOP_WAIT).streak, 0);
    }

    #[test]
    fn no_outcome_of_a_round_makes_the_loop_spin() {
        // Whatever each round reports, for as long as it reports it (a stop that "works"
        // on a server whose state cannot be read, forever): at most MAX_IMMEDIATE + 1
        // rounds per loop_wait.
        for (changed, silent) in [(false, false), (true, false), (false, true), (true, true)] {
            let n = rounds_in(60, changed, silent);
            assert!(
                n <= 60 * (MAX_IMMEDIATE + 1),
                "changed={changed} silent={silent}: {n} rounds in 60 s"
            );
        }
    }
}
