//! `POST /switchover` and `POST /failover`: whether the request can be carried out, which
//! `failover` key to write for it, and what to answer. Patroni's `is_failover_possible`
//! and `poll_failover_result` (api.py), with the same codes and texts.
//!
//! Two halves, both pure. [`request_problem`] is what the REST API checks against the last
//! snapshot before it passes the request on (the leader and candidate named exist, the
//! synchronous-mode rule). [`plan_switchover`] is what the agent decides on a fresh read
//! of the DCS: that at least one candidate can take over (Patroni's "no good candidates"),
//! the key to write, then whether to answer at once (scheduled) or poll with
//! [`SwitchoverPoll`]. The agent only writes the key, polls and replies.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::dcs_values::FailoverValue;
use crate::decide::{sync_switchover_problem, takeover_problem};
use crate::sync::SyncMode;

/// A switchover or failover request, as the REST API validated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchoverRequest<'a> {
    /// The leader it is from (always given for a switchover, never for a failover).
    pub leader: Option<&'a str>,
    /// The member to promote; `None`: any member that can.
    pub candidate: Option<&'a str>,
    /// When, in the form Patroni stores (`2024-06-01T13:00:00+00:00`); `None`: now.
    pub scheduled_at: Option<&'a str>,
    pub failover: bool,
}

impl SwitchoverRequest<'_> {
    /// `"switchover"` or `"failover"`, as Patroni's texts say it.
    pub fn action(&self) -> &'static str {
        if self.failover {
            "failover"
        } else {
            "switchover"
        }
    }
}

/// The DCS half of Patroni's `is_failover_possible`: `Some(text)` (answered with 412) when
/// the request names a leader that is not the leader, a candidate that is not a member, a
/// switchover candidate that the synchronous-mode rule excludes, or when no member but the
/// leader could be asked. `sync_mode` is the mode in force on this node.
pub fn request_problem(
    cluster: &Cluster,
    req: &SwitchoverRequest,
    sync_mode: SyncMode,
) -> Option<String> {
    let action = req.action();
    let current = cluster.leader_name();
    if req.leader.is_some() && current != req.leader {
        return Some("leader name does not match".into());
    }
    let not_sync = |c: &str| {
        (!req.failover)
            .then(|| sync_switchover_problem(sync_mode, cluster, c))
            .flatten()
    };
    match req.candidate {
        // Patroni's text, grammar included: scripts match on it.
        Some(c) if !cluster.members.contains_key(c) => Some("candidate does not exists".into()),
        Some(c) => not_sync(c).map(String::from),
        None => {
            // Without a leader every member counts; with one, the others that publish an
            // API to be asked through.
            let any = cluster.members.iter().any(|(name, m)| {
                current.is_none()
                    || (Some(name.as_str()) != current
                        && m.value().is_some_and(|v| !v.api_url.is_empty()))
            });
            (!any).then(|| {
                format!("{action} is not possible: cluster does not have members except leader")
            })
        }
    }
}

/// What the agent does with a request once it has read the DCS.
#[derive(Debug, Clone, PartialEq)]
pub enum SwitchoverPlan {
    /// Answer `status`/`text` without writing anything; `why` names each candidate's
    /// problem, for the log.
    Refuse {
        status: u16,
        text: String,
        why: String,
    },
    /// Write `key` to the `failover` key, then `then`.
    Write {
        key: FailoverValue,
        then: AfterWrite,
    },
}

/// What follows a written `failover` key.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterWrite {
    /// Answer at once: a scheduled request is carried out later by the leader.
    Reply { status: u16, text: String },
    /// Wait for the outcome, as Patroni's `poll_failover_result` does.
    Poll(SwitchoverPoll),
}

/// Waiting for an immediate switchover or failover to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchoverPoll {
    /// The leader when the request was made (`None`: there was none).
    pub old_leader: Option<String>,
    pub candidate: Option<String>,
    pub failover: bool,
    /// How long to poll: Patroni's `2 × max(10 s, loop_wait)`.
    pub window: Duration,
}

impl SwitchoverPoll {
    /// The answer once the outcome shows in `cluster`, `None` while it does not.
    pub fn outcome(&self, cluster: &Cluster) -> Option<(u16, String)> {
        switchover_outcome(
            cluster,
            self.old_leader.as_deref(),
            self.candidate.as_deref(),
            self.failover,
        )
    }

    /// The answer when `window` passed without an outcome.
    pub fn timed_out(&self) -> (u16, String) {
        (
            503,
            format!(
                "{} status unknown after {} seconds; operation may still be in progress",
                capitalized(action(self.failover)),
                self.window.as_secs()
            ),
        )
    }
}

/// How long an immediate switchover is waited for: Patroni's `2 × max(10 s, loop_wait)`.
/// The REST API polls for the outcome that long, and a leader waits that long for a
/// candidate to stream before it gives the request up.
pub fn poll_window(loop_wait: Duration) -> Duration {
    loop_wait.max(Duration::from_secs(10)) * 2
}

/// Chooses what to do with `req` given the cluster as the DCS holds it now: refuse with
/// Patroni's 412 when no candidate (the one named, or every member but the leader) could
/// take over ([`takeover_problem`]), otherwise write the request into the `failover` key
/// (a switchover names the leader it is from, by default the current one; a failover none).
pub fn plan_switchover(
    cluster: &Cluster,
    req: &SwitchoverRequest,
    max_lag: u64,
    loop_wait: Duration,
) -> SwitchoverPlan {
    let action = req.action();
    // Patroni's refusals in maintenance mode, on this fresh read: the REST API's snapshot
    // may predate a pause or a resume just made.
    if cluster.paused() {
        let refuse = |text: &str| SwitchoverPlan::Refuse {
            status: 400,
            text: text.into(),
            why: "the cluster is paused".into(),
        };
        if req.scheduled_at.is_some() {
            return refuse("Can't schedule switchover in the paused state");
        }
        if req.candidate.is_none() {
            return refuse("Switchover is possible only to a specific candidate in a paused state");
        }
    }
    let current = cluster.leader_name();
    let candidates: Vec<&str> = match req.candidate {
        Some(c) => vec![c],
        None => cluster
            .members
            .keys()
            .map(String::as_str)
            .filter(|n| Some(*n) != current)
            .collect(),
    };
    let problems: Vec<String> = candidates
        .iter()
        .filter_map(|c| takeover_problem(cluster, c, max_lag))
        .collect();
    if problems.len() == candidates.len() {
        let why = if problems.is_empty() {
            "there is no other member".to_string()
        } else {
            problems.join("; ")
        };
        return SwitchoverPlan::Refuse {
            status: 412,
            text: format!("{action} is not possible: no good candidates have been found"),
            why,
        };
    }
    let key = FailoverValue {
        leader: if req.failover {
            None
        } else {
            req.leader.or(current).map(str::to_string)
        },
        member: req.candidate.map(str::to_string),
        scheduled_at: req.scheduled_at.map(str::to_string),
    };
    let then = if req.scheduled_at.is_some() {
        AfterWrite::Reply {
            status: 202,
            text: format!("{} scheduled", capitalized(action)),
        }
    } else {
        AfterWrite::Poll(SwitchoverPoll {
            old_leader: current.map(str::to_string),
            candidate: req.candidate.map(str::to_string),
            failover: req.failover,
            window: poll_window(loop_wait),
        })
    };
    SwitchoverPlan::Write { key, then }
}

/// The answer Patroni gives while polling a switchover's progress
/// (`poll_failover_result`): `Some` once the outcome is known.
pub fn switchover_outcome(
    cluster: &Cluster,
    old_leader: Option<&str>,
    candidate: Option<&str>,
    failover: bool,
) -> Option<(u16, String)> {
    let (action, past) = if failover {
        ("Failover", "failed over")
    } else {
        ("Switchover", "switched over")
    };
    if let Some(l) = cluster.leader_name() {
        if Some(l) != old_leader {
            return Some(match candidate {
                Some(c) if c != l => (
                    200,
                    format!(
                        "{}ed over to \"{l}\" instead of \"{c}\"",
                        &action[..action.len() - 4]
                    ),
                ),
                _ => (200, format!("Successfully {past} to \"{l}\"")),
            });
        }
    }
    if cluster.failover.is_none() {
        return Some((503, format!("{action} failed")));
    }
    None
}

fn action(failover: bool) -> &'static str {
    if failover {
        "failover"
    } else {
        "switchover"
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MemberEntry;
    use crate::dcs_values::{MemberValue, StatusValue, SyncValue};

    use crate::admin::tests::cluster;

    /// n1 leads; n2 and n3 are streaming replicas publishing an API.
    fn healthy() -> Cluster {
        let mut c = cluster(Some("n1"), false);
        for (name, e) in c.members.iter_mut() {
            if let MemberEntry::Ok(m) = e {
                m.api_url = format!("http://127.0.0.1:8008/{name}");
                if name == "n1" {
                    m.role = "primary".into();
                } else {
                    m.role = "replica".into();
                    m.replication_state = Some("streaming".into());
                }
            }
        }
        c
    }

    fn member<'a>(c: &'a mut Cluster, name: &str) -> &'a mut MemberValue {
        match c.members.get_mut(name) {
            Some(MemberEntry::Ok(m)) => m,
            _ => panic!("no member {name}"),
        }
    }

    fn switchover<'a>(leader: &'a str, candidate: Option<&'a str>) -> SwitchoverRequest<'a> {
        SwitchoverRequest {
            leader: Some(leader),
            candidate,
            scheduled_at: None,
            failover: false,
        }
    }

    fn failover(candidate: &str) -> SwitchoverRequest<'_> {
        SwitchoverRequest {
            leader: None,
            candidate: Some(candidate),
            scheduled_at: None,
            failover: true,
        }
    }

    const LOOP_WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_request_naming_the_wrong_leader_or_a_stranger_is_refused() {
        let c = healthy();
        let off = SyncMode::Off;
        assert_eq!(
            request_problem(&c, &switchover("n1", Some("n2")), off),
            None
        );
        assert_eq!(request_problem(&c, &switchover("n1", None), off), None);
        assert_eq!(
            request_problem(&c, &switchover("n2", Some("n1")), off).as_deref(),
            Some("leader name does not match")
        );
        assert_eq!(
            request_problem(&c, &switchover("n1", Some("n7")), off).as_deref(),
            Some("candidate does not exists")
        );
        assert_eq!(
            request_problem(&c, &failover("n7"), off).as_deref(),
            Some("candidate does not exists")
        );
    }

    #[test]
    fn a_switchover_needs_another_member_with_an_api() {
        let mut c = healthy();
        c.members.remove("n3");
        member(&mut c, "n2").api_url.clear();
        assert_eq!(
            request_problem(&c, &switchover("n1", None), SyncMode::Off).as_deref(),
            Some("switchover is not possible: cluster does not have members except leader")
        );
        // Without a leader every member counts.
        c.leader = None;
        assert_eq!(request_problem(&c, &failover("n2"), SyncMode::Off), None);
    }

    #[test]
    fn in_on_mode_a_switchover_goes_only_to_a_sync_standby() {
        let mut c = healthy();
        c.sync = Some(SyncValue {
            leader: Some("n1".into()),
            sync_standby: ["n3".to_string()].into(),
            quorum: 0,
        });
        assert_eq!(
            request_problem(&c, &switchover("n1", Some("n2")), SyncMode::On).as_deref(),
            Some("candidate name does not match with sync_standby")
        );
        assert_eq!(
            request_problem(&c, &switchover("n1", Some("n3")), SyncMode::On),
            None
        );
        // A failover may name any member; quorum mode has no such rule.
        assert_eq!(request_problem(&c, &failover("n2"), SyncMode::On), None);
        assert_eq!(
            request_problem(&c, &switchover("n1", Some("n2")), SyncMode::Quorum),
            None
        );
    }

    #[test]
    fn a_fit_candidate_gets_the_key_written_and_the_agent_polls() {
        let c = healthy();
        assert_eq!(
            plan_switchover(&c, &switchover("n1", Some("n2")), 0, LOOP_WAIT),
            SwitchoverPlan::Write {
                key: FailoverValue {
                    leader: Some("n1".into()),
                    member: Some("n2".into()),
                    scheduled_at: None,
                },
                then: AfterWrite::Poll(SwitchoverPoll {
                    old_leader: Some("n1".into()),
                    candidate: Some("n2".into()),
                    failover: false,
                    window: Duration::from_secs(20),
                }),
            }
        );
        // A failover names no leader in the key; the window is at least 2 × 10 s.
        let SwitchoverPlan::Write { key, then } =
            plan_switchover(&c, &failover("n2"), 0, Duration::from_secs(1))
        else {
            panic!("refused");
        };
        assert_eq!(key.leader, None);
        assert!(matches!(then, AfterWrite::Poll(p) if p.window == Duration::from_secs(20)));
        // A long loop_wait widens it.
        let SwitchoverPlan::Write {
            then: AfterWrite::Poll(p),
            ..
        } = plan_switchover(&c, &switchover("n1", None), 0, Duration::from_secs(30))
        else {
            panic!("not polled");
        };
        assert_eq!(p.window, Duration::from_secs(60));
        assert_eq!(
            p.timed_out(),
            (
                503,
                "Switchover status unknown after 60 seconds; operation may still be in progress"
                    .into()
            )
        );
    }

    #[test]
    fn a_scheduled_request_is_answered_once_written() {
        let c = healthy();
        let req = SwitchoverRequest {
            scheduled_at: Some("2030-01-01T00:00:00+00:00"),
            ..switchover("n1", None)
        };
        assert_eq!(
            plan_switchover(&c, &req, 0, LOOP_WAIT),
            SwitchoverPlan::Write {
                key: FailoverValue {
                    leader: Some("n1".into()),
                    member: None,
                    scheduled_at: Some("2030-01-01T00:00:00+00:00".into()),
                },
                then: AfterWrite::Reply {
                    status: 202,
                    text: "Switchover scheduled".into()
                },
            }
        );
    }

    /// Maintenance mode as the DCS has it now: no scheduled switchover, and only to a named
    /// candidate (Patroni's 400s).
    #[test]
    fn a_paused_cluster_refuses_a_scheduled_or_unnamed_switchover() {
        let mut c = healthy();
        c.config = Some(serde_json::json!({"pause": true}));
        let scheduled = SwitchoverRequest {
            scheduled_at: Some("2030-01-01T00:00:00+00:00"),
            ..switchover("n1", Some("n2"))
        };
        let refused =
            |c: &Cluster, req: &SwitchoverRequest| match plan_switchover(c, req, 0, LOOP_WAIT) {
                SwitchoverPlan::Refuse { status, text, .. } => Some((status, text)),
                SwitchoverPlan::Write { .. } => None,
            };
        assert_eq!(
            refused(&c, &scheduled),
            Some((400, "Can't schedule switchover in the paused state".into()))
        );
        assert_eq!(
            refused(&c, &switchover("n1", None)),
            Some((
                400,
                "Switchover is possible only to a specific candidate in a paused state".into()
            ))
        );
        assert_eq!(refused(&c, &switchover("n1", Some("n2"))), None);
        // Resumed: the same scheduled request is written.
        c.config = Some(serde_json::json!({}));
        assert_eq!(refused(&c, &scheduled), None);
    }

    #[test]
    fn without_a_good_candidate_the_answer_is_patronis_412() {
        let mut c = healthy();
        // The named candidate lags too far behind.
        c.status = Some(StatusValue {
            optime: 10_000,
            ..Default::default()
        });
        let refused = plan_switchover(&c, &switchover("n1", Some("n2")), 100, LOOP_WAIT);
        let SwitchoverPlan::Refuse { status, text, why } = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(status, 412);
        assert_eq!(
            text,
            "switchover is not possible: no good candidates have been found"
        );
        assert!(why.contains("n2") && why.contains("behind"), "{why}");
        // Any member will do: one fit replica is enough.
        member(&mut c, "n3").xlog_location = Some(10_000);
        assert!(matches!(
            plan_switchover(&c, &switchover("n1", None), 100, LOOP_WAIT),
            SwitchoverPlan::Write { .. }
        ));
        // Nobody but the leader.
        let mut alone = healthy();
        alone.members.retain(|n, _| n == "n1");
        assert_eq!(
            plan_switchover(&alone, &failover("n2"), 0, LOOP_WAIT),
            SwitchoverPlan::Refuse {
                status: 412,
                text: "failover is not possible: no good candidates have been found".into(),
                why: "n2 is not a member".into(),
            }
        );
        assert!(matches!(
            plan_switchover(&alone, &switchover("n1", None), 0, LOOP_WAIT),
            SwitchoverPlan::Refuse { why, .. } if why == "there is no other member"
        ));
    }

    #[test]
    fn switchover_outcomes_use_patronis_words() {
        assert_eq!(
            switchover_outcome(&cluster(Some("n1"), true), Some("n1"), Some("n2"), false),
            None
        );
        assert_eq!(
            switchover_outcome(&cluster(Some("n2"), false), Some("n1"), Some("n2"), false),
            Some((200, "Successfully switched over to \"n2\"".into()))
        );
        assert_eq!(
            switchover_outcome(&cluster(Some("n3"), false), Some("n1"), Some("n2"), false),
            Some((200, "Switched over to \"n3\" instead of \"n2\"".into()))
        );
        assert_eq!(
            switchover_outcome(&cluster(Some("n2"), false), None, Some("n2"), true),
            Some((200, "Successfully failed over to \"n2\"".into()))
        );
        assert_eq!(
            switchover_outcome(&cluster(Some("n1"), false), Some("n1"), Some("n2"), false),
            Some((503, "Switchover failed".into()))
        );
    }
}
