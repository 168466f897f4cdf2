//! `switchover [CLUSTER] [--leader/--primary X] [--candidate Y] [--scheduled T] [--force]`
//! and `failover [CLUSTER] [--candidate Y] [--force]` (patronictl's
//! `_do_failover_or_switchover`): checks and prompts, then `POST /switchover` (or
//! `/failover`) to the leader; when its API cannot be reached, the `failover` key is written
//! in etcd directly.

use pgkeel_core::cluster::Cluster;
use pgkeel_core::dcs_values::FailoverValue;
use serde_json::{Map, Value};

use super::api::Api;
use super::common::{
    confirm, fail, isoformat, next_hour, parse_scheduled, prompt, py_list, timestamp, Ctx, Member,
};
use super::members::{output_members, View};
use super::table::Format;

#[derive(clap::Args, Debug)]
pub(crate) struct SwitchoverArgs {
    pub cluster_name: Option<String>,
    /// The name of the current leader.
    #[arg(long = "leader", visible_alias = "primary")]
    pub leader: Option<String>,
    /// The name of the candidate.
    #[arg(long = "candidate")]
    pub candidate: Option<String>,
    /// Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601).
    #[arg(long = "scheduled")]
    pub scheduled: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct FailoverArgs {
    pub cluster_name: Option<String>,
    /// The name of the candidate.
    #[arg(long = "candidate")]
    pub candidate: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Switchover,
    Failover,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }
}

/// Members that may be promoted: not the leader, not `nofailover`, sorted by name.
pub(crate) fn candidate_names(cluster: &Cluster) -> Vec<String> {
    let leader = cluster.leader_name();
    cluster
        .members
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != leader)
        .filter(|(_, e)| e.value().is_none_or(|v| v.tags.may_promote()))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The refusals that come after the candidate is known.
pub(crate) fn check_candidate(
    cluster: &Cluster,
    cluster_name: &str,
    action: Action,
    candidate: Option<&str>,
    candidates: &[String],
) -> anyhow::Result<()> {
    let candidate = candidate.filter(|c| !c.is_empty());
    if action == Action::Failover && candidate.is_none() {
        return fail("Failover could be performed only to a specific candidate");
    }
    if let Some(c) = candidate {
        if !candidates.iter().any(|n| n == c) {
            if Some(c) == cluster.leader_name() {
                return fail(format!(
                    "Member {c} is already the leader of cluster {cluster_name}"
                ));
            }
            return fail(format!(
                "Member {c} does not exist in cluster {cluster_name} or is tagged as nofailover"
            ));
        }
    }
    Ok(())
}

/// The body of `POST /switchover` or `/failover`.
pub(crate) fn request_body(
    action: Action,
    leader: Option<&str>,
    candidate: Option<&str>,
    scheduled_at: Option<&str>,
) -> Value {
    let mut b = Map::new();
    if let Some(c) = candidate.filter(|c| !c.is_empty()) {
        b.insert("candidate".into(), c.into());
    }
    if action == Action::Switchover {
        if let Some(l) = leader {
            b.insert("leader".into(), l.into());
        }
    }
    if let Some(at) = scheduled_at {
        b.insert("scheduled_at".into(), at.into());
    }
    Value::Object(b)
}

pub(crate) async fn switchover(ctx: &Ctx, a: SwitchoverArgs) -> anyhow::Result<()> {
    run(
        ctx,
        Action::Switchover,
        a.cluster_name,
        a.candidate,
        a.force,
        a.leader,
        a.scheduled,
    )
    .await
}

pub(crate) async fn failover(ctx: &Ctx, a: FailoverArgs) -> anyhow::Result<()> {
    run(
        ctx,
        Action::Failover,
        a.cluster_name,
        a.candidate,
        a.force,
        None,
        None,
    )
    .await
}

async fn run(
    ctx: &Ctx,
    action: Action,
    cluster_name: Option<String>,
    mut candidate: Option<String>,
    force: bool,
    mut switchover_leader: Option<String>,
    mut scheduled: Option<String>,
) -> anyhow::Result<()> {
    let name = ctx.cluster_name(cluster_name.as_deref());
    let dcs = ctx.dcs(&name).await?;
    let cluster = super::common::load(&dcs).await?;
    println!("Current cluster topology");
    print!(
        "{}",
        output_members(&cluster, &name, false, View::Format(Format::Pretty))
    );

    let cluster_leader = cluster
        .leader_name()
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    if action == Action::Switchover {
        let Some(current) = cluster_leader.as_deref() else {
            return fail("This cluster has no leader");
        };
        let given = match switchover_leader.take() {
            Some(l) => l,
            None if force => current.to_string(),
            None => {
                let standby = cluster
                    .config
                    .as_ref()
                    .and_then(|c| c.get("standby_cluster"))
                    .is_some_and(|s| s.as_object().is_some_and(|o| !o.is_empty()));
                let label = if standby { "Standby Leader" } else { "Primary" };
                prompt(label, Some(current)).await?
            }
        };
        if given != current {
            return fail(format!(
                "Member {given} is not the leader of cluster {name}"
            ));
        }
        switchover_leader = Some(given);
    }

    let candidates = candidate_names(&cluster);
    if candidates.is_empty() {
        return fail(format!("No candidates found to {} to", action.as_str()));
    }
    if candidate.is_none() && !force {
        candidate = Some(prompt(&format!("Candidate {}", py_list(&candidates)), Some("")).await?);
    }
    check_candidate(&cluster, &name, action, candidate.as_deref(), &candidates)?;

    let mut scheduled_at = None;
    if action == Action::Switchover {
        if scheduled.is_none() && !force {
            let text = format!(
                "When should the switchover take place (e.g. {} ) ",
                next_hour()
            );
            scheduled = Some(prompt(&text, Some("now")).await?);
        }
        if let Some(t) = parse_scheduled(scheduled.as_deref())? {
            if cluster.paused() {
                return fail("Can't schedule switchover in the paused state");
            }
            scheduled_at = Some(isoformat(&t));
        }
    }

    if !force {
        let demote = cluster_leader
            .as_deref()
            .map(|l| format!(", demoting current leader {l}"))
            .unwrap_or_default();
        let question = match &scheduled_at {
            Some(at) => {
                format!("Are you sure you want to schedule switchover of cluster {name} at {at}{demote}?")
            }
            None => format!(
                "Are you sure you want to {} cluster {name}{demote}?",
                action.as_str()
            ),
        };
        if !confirm(&question).await? {
            let what = if scheduled_at.is_some() {
                "Aborting scheduled "
            } else {
                "Aborting "
            };
            return fail(format!("{what}{}", action.as_str()));
        }
    }

    let body = request_body(
        action,
        switchover_leader.as_deref(),
        candidate.as_deref(),
        scheduled_at.as_deref(),
    );
    // The leader, or with no leader the candidate itself.
    let target = cluster_leader
        .as_deref()
        .or(candidate.as_deref())
        .and_then(|n| {
            cluster.member(n).map(|v| Member {
                name: n.to_string(),
                value: v.clone(),
            })
        });
    let api = Api::new(&ctx.cfg)?;
    let result = match &target {
        Some(m) => api
            .call(m, reqwest::Method::POST, action.as_str(), Some(&body))
            .await
            .map_err(|e| format!("{e:#}")),
        None => Err("no member to send the request to".to_string()),
    };
    let mut shown = cluster;
    match result {
        Ok(r) if r.status == 200 || r.status == 202 => {
            shown = super::common::load(&dcs).await?;
            println!("{} {}", timestamp(6), r.body);
        }
        Ok(r) => {
            let title = match action {
                Action::Switchover => "Switchover",
                Action::Failover => "Failover",
            };
            println!("{title} failed, details: {}, {}", r.status, r.body);
            return Ok(());
        }
        Err(e) => {
            tracing::warn!("{e}");
            println!(
                "{} Could not {} using Patroni api, falling back to DCS",
                timestamp(6),
                action.as_str()
            );
            dcs.write_failover(&FailoverValue {
                leader: switchover_leader.clone(),
                member: candidate.clone().filter(|c| !c.is_empty()),
                scheduled_at: scheduled_at.clone(),
            })
            .await?;
        }
    }
    print!(
        "{}",
        output_members(&shown, &name, false, View::Format(Format::Pretty))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_core::cluster::{LeaderKey, MemberEntry};
    use pgkeel_core::dcs_values::MemberValue;
    use serde_json::json;

    fn cluster() -> Cluster {
        let mut c = Cluster::default();
        for n in ["n1", "n2", "n3"] {
            let mut v = MemberValue::default();
            v.tags.nofailover = n == "n3";
            c.members.insert(n.into(), MemberEntry::Ok(v));
        }
        c.leader = Some(LeaderKey {
            name: "n1".into(),
            lease: 1,
            revision: 1,
        });
        c
    }

    #[test]
    fn candidates_exclude_leader_and_nofailover() {
        assert_eq!(candidate_names(&cluster()), vec!["n2".to_string()]);
    }

    #[test]
    fn candidate_refusals_use_patronis_words() {
        let c = cluster();
        let cands = candidate_names(&c);
        let err = |a, cand| {
            check_candidate(&c, "batman", a, cand, &cands)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(Action::Switchover, Some("n3")),
            "Member n3 does not exist in cluster batman or is tagged as nofailover"
        );
        assert_eq!(
            err(Action::Switchover, Some("n1")),
            "Member n1 is already the leader of cluster batman"
        );
        assert_eq!(
            err(Action::Failover, None),
            "Failover could be performed only to a specific candidate"
        );
        assert!(check_candidate(&c, "b", Action::Switchover, Some(""), &cands).is_ok());
        assert!(check_candidate(&c, "b", Action::Failover, Some("n2"), &cands).is_ok());
    }

    #[test]
    fn bodies() {
        assert_eq!(
            request_body(
                Action::Switchover,
                Some("n1"),
                Some("n2"),
                Some("2026-01-01T00:00:00+00:00")
            ),
            json!({"leader": "n1", "candidate": "n2", "scheduled_at": "2026-01-01T00:00:00+00:00"})
        );
        assert_eq!(
            request_body(Action::Switchover, Some("n1"), Some(""), None),
            json!({"leader": "n1"})
        );
        assert_eq!(
            request_body(Action::Failover, None, Some("n2"), None),
            json!({"candidate": "n2"})
        );
    }
}
