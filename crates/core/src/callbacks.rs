//! Patroni's callbacks (`postgresql.callbacks`): which one a finished sequence of actions
//! calls, with the role to pass, at Patroni's moments. The runtime runs it as
//! `CMD ACTION ROLE SCOPE`, without waiting, one at a time.

use crate::action::Action;

/// Why a sequence of actions ran: the HA loop's own decision, or an operator's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Loop,
    /// `POST /restart` (and a scheduled restart).
    Restart,
    /// `POST /reload`, SIGHUP.
    Reload,
}

/// The callback to call and the role it is given (`primary`, `replica`), as Patroni 4
/// names them: `on_role_change` after a promotion or a demotion (never `on_stop` and
/// `on_start` for the stop and start a demotion is made of), `on_restart` after a restart,
/// `on_start` after any other start and after post_bootstrap (nothing while bootstrapping),
/// `on_stop` after any other stop, `on_reload` after a reload. `was_primary`: the server last ran as a primary (it may be stopped since: a
/// demotion stops it in one loop and starts it as a replica in a later one);
/// `switching_over`: a switchover is in progress (its stop of the primary is the first step
/// of a demotion, which Patroni runs without `on_stop`).
pub fn after(
    actions: &[Action],
    cause: Cause,
    was_primary: bool,
    switching_over: bool,
) -> Option<(&'static str, &'static str)> {
    let role = |primary: bool| if primary { "primary" } else { "replica" };
    if cause == Cause::Reload {
        return Some(("on_reload", role(was_primary)));
    }
    let has = |f: fn(&Action) -> bool| actions.iter().any(f);
    let started_primary = has(|a| matches!(a, Action::StartPrimary));
    let started_replica = has(|a| matches!(a, Action::StartReplica { .. }));
    let stopped = has(|a| matches!(a, Action::Stop { .. } | Action::Kill));
    if has(|a| matches!(a, Action::Promote)) {
        return Some(("on_role_change", "primary"));
    }
    if has(|a| matches!(a, Action::GiveUpLeader)) {
        return Some(("on_role_change", "demoted"));
    }
    // Patroni calls nothing while bootstrapping, and on_start once the new cluster is
    // initialized (after post_bootstrap).
    if has(|a| matches!(a, Action::PostBootstrap { .. })) {
        return Some(("on_start", "primary"));
    }
    if has(|a| matches!(a, Action::Bootstrap { .. } | Action::AbandonBootstrap)) {
        return None;
    }
    if cause == Cause::Restart && (started_primary || started_replica) {
        return Some(("on_restart", role(started_primary)));
    }
    if was_primary && started_replica {
        return Some(("on_role_change", "replica"));
    }
    if started_primary || started_replica {
        return Some(("on_start", role(started_primary)));
    }
    if stopped && !(was_primary && switching_over) {
        return Some(("on_stop", role(was_primary)));
    }
    None
}

/// A command line split into words as a POSIX shell (Python's `shlex.split`, which Patroni
/// uses) splits it: spaces separate, single quotes keep everything, double quotes keep all
/// but `\\` escapes, a backslash escapes outside quotes. `None` for an unclosed quote.
pub fn split_command(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::StopMode;

    #[test]
    fn the_callback_follows_patronis_moments() {
        let stop = Action::Stop {
            mode: StopMode::Fast,
        };
        let replica = Action::StartReplica { upstream: None };
        let after = |a: &[Action], c, p| after(a, c, p, false);
        assert_eq!(
            after(&[Action::StartPrimary], Cause::Loop, false),
            Some(("on_start", "primary"))
        );
        assert_eq!(
            after(std::slice::from_ref(&replica), Cause::Loop, false),
            Some(("on_start", "replica"))
        );
        assert_eq!(
            after(&[Action::Promote], Cause::Loop, false),
            Some(("on_role_change", "primary"))
        );
        // Patroni's post_recover: the key given up after a failed start.
        assert_eq!(
            after(&[Action::GiveUpLeader], Cause::Loop, true),
            Some(("on_role_change", "demoted"))
        );
        // A demotion is a stop and a start as a replica: on_role_change only.
        assert_eq!(
            after(&[stop.clone(), replica.clone()], Cause::Loop, true),
            Some(("on_role_change", "replica"))
        );
        assert_eq!(
            after(&[stop.clone(), replica], Cause::Restart, false),
            Some(("on_restart", "replica"))
        );
        assert_eq!(
            after(&[stop], Cause::Loop, true),
            Some(("on_stop", "primary"))
        );
        assert_eq!(
            after(&[], Cause::Reload, true),
            Some(("on_reload", "primary"))
        );
        assert_eq!(after(&[Action::WriteHistory], Cause::Loop, true), None);
        assert_eq!(
            after(&[Action::PostBootstrap { script: None }], Cause::Loop, true),
            Some(("on_start", "primary"))
        );
        assert_eq!(after(&[Action::AbandonBootstrap], Cause::Loop, true), None);
        // A switchover's demotion, over two loops: the stop calls nothing, the start as a
        // replica (the server last ran as a primary) calls on_role_change.
        let stop = [Action::Stop {
            mode: StopMode::Fast,
        }];
        assert_eq!(super::after(&stop, Cause::Loop, true, true), None);
        assert_eq!(
            super::after(
                &[Action::StartReplica { upstream: None }],
                Cause::Loop,
                true,
                false
            ),
            Some(("on_role_change", "replica"))
        );
    }

    #[test]
    fn commands_split_as_shlex_does() {
        assert_eq!(
            split_command("python3 features/callback2.py  a 'b c' \"d \\\"e\\\"\" f\\ g").unwrap(),
            [
                "python3",
                "features/callback2.py",
                "a",
                "b c",
                "d \"e\"",
                "f g"
            ]
        );
        assert_eq!(split_command("").unwrap(), Vec::<String>::new());
        assert_eq!(split_command("echo 'unclosed"), None);
        assert_eq!(split_command("echo \"unclosed"), None);
    }
}
