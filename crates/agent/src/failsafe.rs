//! Failsafe mode, the leader's side: while it cannot renew its lease, it asks every member
//! listed in `/failsafe` to confirm it (`POST /failsafe`, as Patroni does). Only while all
//! confirm does it stay writable past its lease (the fence reads the last confirmed round);
//! `decide` demotes it as soon as one does not.
//!
//! The rounds run on their own task, on the lease's cadence, rather than in the HA loop:
//! the loop first has to wait out a DCS timeout before it knows the DCS is gone, and by
//! then a short lease may already be past its fence deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::effective_dynamic;
use pgkeel_core::decide::keepalive_interval;
use pgkeel_core::observation::{FailsafeAnswer, FailsafeRound, Observation};
use pgkeel_core::Config;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::env::Env;
use crate::shared::{Shared, Targets};

/// After each DCS read: remember whom to ask if this node leads with failsafe mode on; on a
/// failed read, hand the latest round to `decide`.
///
/// Failsafe mode is taken from the settings this very read put in force (`adopt_dynamic`),
/// as `decide` and `GET /failsafe` see it, not
/// from the configuration the loop applied one read earlier: otherwise a leader whose
/// `/failsafe` key was already written (it survives failsafe mode being turned off and on)
/// would report failsafe mode on yet have nobody to ask for one more loop.
pub(crate) fn note(obs: &mut Observation, shared: &Shared, cfg: &Config) {
    match &obs.dcs {
        Ok(c) => {
            let on = obs
                .config_in_force
                .as_ref()
                .map_or_else(|| effective_dynamic(cfg, c.config.as_ref()), Clone::clone)
                .failsafe_mode;
            shared.set_failsafe_targets(targets(c, cfg, on, obs.lease.id));
        }
        Err(_) => {
            let (last, _) = shared.failsafe_rounds();
            // Only a round of this outage counts (younger than a ttl).
            obs.failsafe_round = last.filter(|r| clock::since(r.started) < obs.lease.ttl);
        }
    }
    obs.failsafe_confirmed = shared.failsafe_rounds().1;
}

fn targets(c: &Cluster, cfg: &Config, failsafe_mode: bool, lease: i64) -> Option<Targets> {
    if !failsafe_mode || !c.held_by(&cfg.name, lease) {
        return None;
    }
    let members = c.failsafe.clone()?;
    members.contains_key(&cfg.name).then(|| Targets {
        members,
        conn_url: c.member(&cfg.name).map(|m| m.conn_url.clone()),
    })
}

/// Runs a round whenever this leader's lease has not been renewed for longer than one
/// keepalive interval (and a little), once per keepalive interval.
pub(crate) async fn keep<E: Env>(
    shared: Arc<Shared>,
    env: Arc<E>,
    cfg: Arc<Config>,
    stop: CancellationToken,
) {
    let mut last_round: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let lease = shared.lease();
        let every = keepalive_interval(lease.ttl);
        let targets = shared.failsafe_targets();
        if !pgkeel_core::decide::failsafe_round_due(
            &lease,
            shared.abandoned() == lease.id && lease.id != 0,
            targets.is_some(),
            shared.may_be_primary(),
            shared.paused(),
            last_round,
            clock::now(),
        ) {
            continue;
        }
        let Some(targets) = targets else { continue };
        last_round = Some(clock::now());
        let timeout = every.clamp(Duration::from_millis(300), Duration::from_secs(2));
        let slots = shared.failsafe_slots();
        let r = round(&env, &cfg, &targets, &slots, lease.ttl, timeout).await;
        if !r.missing.is_empty() {
            // One member did not confirm: it may race once its last confirmation is a ttl
            // old, so this round (recorded below) ends the reliance on confirmations.
            tracing::warn!(
                "failsafe: {} did not confirm me; no longer running on failsafe",
                r.missing.join(", ")
            );
        }
        shared.record_failsafe_round(r);
    }
}

/// One round: every listed member but me, in parallel, each bounded by `timeout`.
async fn round<E: Env>(
    env: &Arc<E>,
    cfg: &Config,
    targets: &Targets,
    slots: &std::collections::BTreeMap<String, u64>,
    ttl: Duration,
    timeout: Duration,
) -> FailsafeRound {
    let started = clock::now();
    let body = serde_json::json!({
        "name": cfg.name,
        "conn_url": targets.conn_url,
        "api_url": cfg.restapi.api_url(),
        // Patroni's: every slot the primary has and its own name at its WAL position, so
        // that replicas keep their copies of permanent slots moving while the DCS is away.
        "slots": slots,
        // Members hold off racing for this long after answering (Patroni's leaders do not
        // send it; pgkeel's replicas then use their own ttl).
        "ttl": ttl.as_secs_f64(),
    });
    let mut asks = tokio::task::JoinSet::new();
    for (name, api_url) in targets.members.iter().filter(|(n, _)| **n != cfg.name) {
        let url = failsafe_url(api_url);
        let (env, name, body) = (env.clone(), name.clone(), body.clone());
        asks.spawn(async move {
            let confirmed = env.post_failsafe(&url, &body, timeout).await;
            (name, confirmed)
        });
    }
    let (mut missing, mut refused) = (Vec::new(), Vec::new());
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((_, FailsafeAnswer::Confirmed)) => {}
            Ok((name, FailsafeAnswer::Refused)) => {
                refused.push(name.clone());
                missing.push(name);
            }
            Ok((name, FailsafeAnswer::NoAnswer)) => missing.push(name),
            Err(e) => missing.push(format!("(a request task failed: {e})")),
        }
    }
    missing.sort();
    refused.sort();
    FailsafeRound {
        started,
        missing,
        refused,
    }
}

/// `http://h:p/patroni` → `http://h:p/failsafe`.
fn failsafe_url(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    let base = base.strip_suffix("/patroni").unwrap_or(base);
    format!("{base}/failsafe")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_core::cluster::LeaderKey;
    use pgkeel_core::observation::{LeaseView, PgView};
    use std::collections::BTreeMap;

    const LEASE: i64 = 7;

    fn cfg() -> Config {
        crate::testutil::config()
    }

    /// node1 holds the leader key under its lease; `/failsafe` lists node1 and node2.
    fn cluster(config: serde_json::Value) -> Cluster {
        Cluster {
            config: Some(config),
            leader: Some(LeaderKey {
                name: "node1".into(),
                lease: LEASE,
                revision: 1,
            }),
            failsafe: Some(BTreeMap::from([
                ("node1".into(), "http://10.0.0.1:8008/patroni".into()),
                ("node2".into(), "http://10.0.0.2:8008/patroni".into()),
            ])),
            ..Cluster::default()
        }
    }

    fn read(cluster: Cluster) -> Observation {
        Observation {
            dcs: Ok(cluster),
            pg: PgView::NoData,
            peers: BTreeMap::new(),
            lease: LeaseView {
                id: LEASE,
                ttl: Duration::from_secs(3),
                renewed_at: Some(Instant::now()),
            },
            rewind_failed: None,
            primary_start_failing_since: None,
            primary_start_exited: false,
            released_for_switchover: false,
            pre_promote_failed: false,
            pre_promote_released_at: None,
            failover_due_since: None,
            pg_silent_since: None,
            kill_failed: false,
            bootstrapping: None,
            pg_was_primary: false,
            shutting_down: false,
            paused: false,
            wall_clock: std::time::SystemTime::now(),
            replication: None,
            failsafe_round: None,
            failsafe_confirmed: None,
            failsafe_contact: None,
            config_in_force: None,
        }
    }

    #[test]
    fn the_read_that_turns_failsafe_mode_on_gives_the_leader_whom_to_ask() {
        // `/failsafe` was written while failsafe mode was on before: the first read that
        // has the mode on again must arm the leader, as it already shows in GET /failsafe.
        let (cfg, shared) = (cfg(), Shared::new(Duration::from_secs(3)));
        note(
            &mut read(cluster(serde_json::json!({"failsafe_mode": true}))),
            &shared,
            &cfg,
        );
        let asked = shared
            .failsafe_targets()
            .map(|t| t.members.into_keys().collect());
        assert_eq!(asked, Some(vec!["node1".to_string(), "node2".to_string()]));

        note(
            &mut read(cluster(serde_json::json!({"failsafe_mode": false}))),
            &shared,
            &cfg,
        );
        assert_eq!(shared.failsafe_targets(), None);
    }

    #[test]
    fn posts_go_next_to_the_status_endpoint() {
        assert_eq!(
            failsafe_url("http://10.0.0.1:8008/patroni"),
            "http://10.0.0.1:8008/failsafe"
        );
        assert_eq!(failsafe_url("http://h:1/"), "http://h:1/failsafe");
    }
}
