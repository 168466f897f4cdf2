//! `decide`: one pure function from what the runtime saw to what it must do.
//!
//! The order of the checks is the safety argument, so it reads top to bottom:
//! fencing (a primary whose lease may have expired stops at once), a leader whose
//! PostgreSQL hangs (killed, then the key released), shutting down, then what to do with
//! the local PostgreSQL given who holds the leader key.

mod bootstrap;
mod fencing;
mod hang;
mod pause;
mod primary;
mod race;
mod replica;
mod shutdown;
mod stopped;
mod switchover;
mod sync_duties;

#[cfg(test)]
pub(crate) mod tests;

use std::time::Instant;

use crate::action::{slot_name, Action, Decision, StopMode, Upstream};
use crate::cluster::Cluster;
use crate::config::{effective_dynamic, Config, DynamicConfig};
use crate::observation::{Observation, PgView};

pub use fencing::{
    failsafe_alive, failsafe_deadline, failsafe_round_due, fence_deadline, fence_margin,
    keepalive_interval, lease_alive, may_be_writable, predecessor_guard_may_go, writable_until,
};
pub use shutdown::{forced_exit, shutdown_exit, ShutdownExit, SHUTDOWN_BOUND};
pub use switchover::{candidate_problem, sync_switchover_problem, takeover_problem};

/// Decides this loop's actions. Pure: no I/O, no clock (time is `now`).
pub fn decide(obs: &Observation, cfg: &Config, now: Instant) -> Decision {
    let ctx = Ctx::new(obs, cfg, now);

    // Maintenance mode: the operator is in charge; nothing automatic happens, not even
    // fencing (Patroni: no demotion on DCS loss while paused).
    if obs.paused {
        return pause::decide(&ctx);
    }
    // Fencing comes first, even before a clean shutdown: past the deadline a checkpoint
    // would keep the server writable for too long.
    if let Some(d) = fencing::check(&ctx) {
        return d;
    }
    // A hung primary next: it cannot shut down cleanly, and while it holds the key no
    // replica may take over.
    if let Some(d) = hang::check(&ctx) {
        return d;
    }
    if obs.shutting_down {
        return shutdown::decide(&ctx);
    }
    let Ok(cluster) = &obs.dcs else {
        return dcs_unreachable(&ctx);
    };
    // The bootstrap this node started goes on until post_bootstrap (or is abandoned).
    if let Some(b) = obs.bootstrapping {
        return bootstrap::in_progress(&ctx, b);
    }
    match &obs.pg {
        PgView::NoData => bootstrap::no_data(&ctx, cluster),
        PgView::Stopped(s) => stopped::stopped(&ctx, cluster, s),
        PgView::Starting => Decision::nothing(format!(
            "no action: I am {}, PostgreSQL is starting",
            ctx.me()
        )),
        PgView::Unknown => Decision::nothing(format!(
            "no action: I am {}, PostgreSQL runs but its state cannot be read",
            ctx.me()
        )),
        // Not the leader (`hang::check` had its turn): an unhealthy member that does not race.
        PgView::NoAnswer => Decision::nothing(format!(
            "no action: I am {}, PostgreSQL has not answered for {:.1}s",
            ctx.me(),
            hang::silent_for(&ctx).unwrap_or_default().as_secs_f64()
        )),
        PgView::Running(r) if r.in_recovery => replica::running_replica(&ctx, cluster, r),
        PgView::Running(r) => primary::running_primary(&ctx, cluster, r),
    }
}

/// The agent moves to a lease with `/config`'s ttl (see the agent's `lease::change_ttl`)
/// when it has a lease whose ttl differs, unless it is shutting down.
pub fn moves_to_new_ttl(
    lease: &crate::observation::LeaseView,
    wanted: std::time::Duration,
    shutting_down: bool,
) -> bool {
    lease.id != 0 && lease.ttl != wanted && !shutting_down
}

/// Inputs shared by the rules, with the derived facts they all need.
pub(crate) struct Ctx<'a> {
    pub obs: &'a Observation,
    pub cfg: &'a Config,
    pub dynamic: DynamicConfig,
    pub now: Instant,
}

impl<'a> Ctx<'a> {
    fn new(obs: &'a Observation, cfg: &'a Config, now: Instant) -> Self {
        let dynamic = obs.config_in_force.clone().unwrap_or_else(|| {
            effective_dynamic(cfg, obs.dcs.as_ref().ok().and_then(|c| c.config.as_ref()))
        });
        Ctx {
            obs,
            cfg,
            dynamic,
            now,
        }
    }

    pub fn me(&self) -> &str {
        &self.cfg.name
    }

    /// The leader key names me and is bound to my current lease.
    pub fn holds_leader_key(&self, cluster: &Cluster) -> bool {
        cluster.held_by(&self.cfg.name, self.obs.lease.id)
    }

    /// My lease is provably alive in etcd now: only then may this node become (or start
    /// as) a writable primary. A key observed under a lease whose renewals went stale may
    /// be gone already, and the fence would stop the server again at once.
    pub fn lease_alive(&self) -> bool {
        fencing::lease_alive(&self.obs.lease, self.now)
    }

    /// "renewed 2.1s ago" / "never renewed": the lease's age, for reasons people read.
    pub fn lease_age(&self) -> String {
        self.obs
            .lease
            .renewed_at
            .map(|t| {
                format!(
                    "renewed {:.1}s ago",
                    self.now.saturating_duration_since(t).as_secs_f64()
                )
            })
            .unwrap_or_else(|| "never renewed".into())
    }

    /// Why this node may not become writable yet although the key names it.
    pub fn stale_lease_wait(&self) -> Decision {
        let ago = self.lease_age();
        Decision::nothing(format!(
            "waiting: I am {}, the leader key names me but my lease ({ago}, ttl {}s) may have lapsed; not becoming writable until it is renewed",
            self.me(),
            self.obs.lease.ttl.as_secs()
        ))
    }

    /// The leader key names me but is bound to another lease (this agent restarted).
    pub fn names_me_with_old_lease(&self, cluster: &Cluster) -> bool {
        cluster.leader.as_ref().is_some_and(|l| {
            l.name == self.cfg.name && !(l.lease == self.obs.lease.id && l.lease != 0)
        })
    }

    /// `primary_start_timeout` from `/config` (Patroni's default: 300 s).
    pub fn primary_start_timeout(&self) -> std::time::Duration {
        let key = |k: &str| self.dynamic.json.get(k).and_then(serde_json::Value::as_f64);
        let secs = key("primary_start_timeout")
            .or_else(|| key("master_start_timeout"))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(300.0);
        std::time::Duration::from_secs_f64(secs)
    }

    /// Where to stream from when `member` leads: its conn_url, and my slot if slots are on.
    pub fn upstream_of(&self, cluster: &Cluster, member: &str) -> Option<Upstream> {
        let (host, port) = cluster.member(member)?.pg_host_port()?;
        Some(Upstream {
            member: member.to_string(),
            host,
            port,
            slot: self.dynamic.use_slots.then(|| slot_name(self.me())),
        })
    }
}

fn dcs_unreachable(ctx: &Ctx) -> Decision {
    let why = ctx.obs.dcs.as_ref().err().map_or("", String::as_str);
    if let Some(round) = &ctx.obs.failsafe_round {
        if fencing::may_be_writable(&ctx.obs.pg) {
            // A member that certainly does not confirm (it said no, or nothing listens at its
            // API): Patroni's check_failsafe_topology fails, and the leader demotes at once.
            if !round.refused.is_empty() {
                return Decision::act(
                    vec![Action::Stop {
                        mode: StopMode::Immediate,
                    }],
                    format!(
                        "demoting self because DCS is not accessible and I was a leader: I am {}, the DCS is unreachable ({why}) and {} did not confirm me (failsafe mode)",
                        ctx.me(),
                        round.refused.join(", ")
                    ),
                );
            }
            // One that gave no answer in time may be slow rather than gone: while the lease
            // is provably alive nobody can take the key, so it matters only once the lease
            // may be gone (a timeout under load must not cost the cluster its primary).
            if !round.missing.is_empty() && !lease_alive(&ctx.obs.lease, ctx.now) {
                return Decision::act(
                    vec![Action::Stop {
                        mode: StopMode::Immediate,
                    }],
                    format!(
                        "demoting: I am {}, the DCS is unreachable ({why}) and failsafe mode could not confirm me with {}",
                        ctx.me(),
                        round.missing.join(", ")
                    ),
                );
            }
            if !round.missing.is_empty() {
                return Decision::nothing(format!(
                    "continuing as the leader while my lease lasts: I am {}, the DCS is unreachable ({why}) and failsafe mode could not confirm me with {}; demoting once the lease may be gone",
                    ctx.me(),
                    round.missing.join(", ")
                ));
            }
            return Decision::nothing(format!(
                "continuing as the leader: I am {}, the DCS is unreachable ({why}) but every member confirmed me (failsafe mode)",
                ctx.me()
            ));
        }
    }
    // Patroni's offline demotion: a former primary stopped (fenced) while the DCS is away
    // runs again read-only, a replica without an upstream, so that it still serves reads
    // and rejoins (or is rewound) once the DCS is back. Read-only cannot take writes.
    if let PgView::Stopped(s) = &ctx.obs.pg {
        if s.was_primary() && ctx.obs.bootstrapping.is_none() {
            return Decision::act(
                vec![Action::StartReplica { upstream: None }],
                format!(
                    "demoted: I am {}, a former primary stopped while the DCS is unreachable ({why}); starting it read-only",
                    ctx.me()
                ),
            );
        }
    }
    // A primary reaching this point still has a live lease (fencing passed): nobody else can
    // hold the leader key before it expires, so it keeps running until the fence deadline.
    Decision::nothing(format!(
        "no action: I am {}, the DCS is unreachable ({why}); keeping PostgreSQL as it is",
        ctx.me()
    ))
}
