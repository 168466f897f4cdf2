//! Gathering one loop's observation. No decisions: only reads, each bounded in time.

use std::collections::BTreeMap;
use std::time::Duration;

use pgkeel_core::observation::{Observation, PgView, ReplicationView};
use pgkeel_core::sync::Ssn;
use pgkeel_dcs::Dcs;
use pgkeel_pg::Postgres;

use crate::env::Env;

use crate::peers;
use crate::shared::Shared;

pub(crate) struct Observer<'a, E: Env> {
    pub env: &'a std::sync::Arc<E>,
    pub dcs: &'a E::Dcs,
    pub pg: &'a E::Pg,
    pub shared: &'a Shared,
    pub me: &'a str,
    pub peer_timeout: Duration,
}

impl<E: Env> Observer<'_, E> {
    pub async fn observe(
        &self,
        memory: &mut crate::act::Memory,
        shutting_down: bool,
        paused_before: bool,
        silent: Option<PgView>,
    ) -> Observation {
        // A server found silent at the end of the last loop is not probed again: that would
        // wait out another whole deadline before anything is decided about it.
        let local = async {
            match silent {
                Some(view) => view,
                None => self.local_pg(memory).await,
            }
        };
        let (dcs, pg) = tokio::join!(self.dcs.load(), local);
        let dcs = dcs.map_err(|e| e.to_string());
        let replication = match &pg {
            PgView::Running(r) if !r.in_recovery => self.replication(memory).await,
            _ => {
                // Not a primary: a mark from an earlier term must not count in the next one.
                memory.ssn_seen = None;
                None
            }
        };
        // Peers matter only for the leader race, which happens only without a leader key.
        let peers = match &dcs {
            Ok(c) if c.leader.is_none() && !shutting_down && matches!(pg, PgView::Running(_)) => {
                peers::poll(self.env, c, self.me, self.peer_timeout).await
            }
            _ => BTreeMap::new(),
        };
        // Maintenance mode as last known: a DCS outage while paused must not end the pause.
        let paused = dcs.as_ref().map_or(paused_before, |c| c.paused());
        let wall_clock = self.env.wall_clock();
        if let Ok(c) = &dcs {
            memory.failover_due = failover_due(c, wall_clock, memory.failover_due);
        }
        Observation {
            paused,
            dcs,
            pg,
            peers,
            lease: self.shared.lease(),
            rewind_failed: memory.rewind_failed,
            primary_start_failing_since: memory.primary_start_failing_since,
            primary_start_exited: memory.primary_start_exited,
            released_for_switchover: memory.released_for_switchover,
            pre_promote_failed: memory.pre_promote_failed,
            pre_promote_released_at: memory.pre_promote_released_at,
            failover_due_since: memory.failover_due.map(|(_, t)| t),
            pg_silent_since: memory.pg_silent_since,
            kill_failed: memory.kill_failed,
            bootstrapping: memory.bootstrapping,
            pg_was_primary: memory.pg_was_primary,
            shutting_down,
            wall_clock,
            replication,
            failsafe_round: None,
            failsafe_confirmed: None,
            failsafe_contact: None,
            config_in_force: None,
        }
    }

    /// The local PostgreSQL, with the bookkeeping of its silences: a run of them starts
    /// with its first unanswered probe, and any answer ends it.
    pub async fn local_pg(&self, memory: &mut crate::act::Memory) -> PgView {
        let started = crate::clock::now();
        let pg = self.pg.observe().await;
        match pg {
            PgView::NoAnswer => {
                memory.pg_silent_since.get_or_insert(started);
            }
            _ => memory.pg_silent_since = None,
        }
        match &pg {
            PgView::Running(r) => {
                memory.pg_was_primary = !r.in_recovery;
                memory.ran_as_primary = !r.in_recovery;
            }
            PgView::NoData | PgView::Stopped(_) => memory.pg_was_primary = false,
            PgView::Starting | PgView::Unknown | PgView::NoAnswer => {}
        }
        // A kill that failed matters while the processes may still be there.
        if !matches!(pg, PgView::NoAnswer | PgView::Unknown) {
            memory.kill_failed = false;
        }
        pg
    }

    /// `synchronous_standby_names` and `pg_stat_replication` on a primary. The WAL position
    /// is remembered the first time a value of the setting is seen: commits acknowledged
    /// under an earlier value all lie below it.
    async fn replication(&self, memory: &mut crate::act::Memory) -> Option<ReplicationView> {
        let state = match self.pg.sync_rep_state().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("reading synchronous replication failed: {e:#}");
                return None;
            }
        };
        let ssn_lsn = match &memory.ssn_seen {
            Some((text, lsn)) if *text == state.ssn => *lsn,
            _ => {
                memory.ssn_seen = Some((state.ssn.clone(), state.current));
                state.current
            }
        };
        // A value PostgreSQL accepted but pgkeel cannot read: as if any standby could
        // acknowledge, so that no key change counts on it.
        let ssn = Ssn::parse(&state.ssn).unwrap_or_else(Ssn::anyone);
        Some(ReplicationView {
            ssn,
            managed: state.managed,
            ssn_lsn: Some(ssn_lsn),
            rows: state.rows,
            synchronous_commit: state.synchronous_commit,
        })
    }
}

/// The current `failover` key's revision and since when it has been due on this node
/// (kept while the same revision stays due; a DCS read that failed keeps the last value).
fn failover_due(
    cluster: &pgkeel_core::Cluster,
    wall_clock: std::time::SystemTime,
    last: Option<(i64, std::time::Instant)>,
) -> Option<(i64, std::time::Instant)> {
    let f = cluster.failover.as_ref()?;
    let due = f
        .scheduled_at
        .as_deref()
        .is_none_or(|at| pgkeel_core::admin::due(at, wall_clock) == Some(true));
    if !due {
        return None;
    }
    let rev = cluster.failover_revision;
    match last {
        Some((r, since)) if r == rev => Some((r, since)),
        _ => Some((rev, crate::clock::now())),
    }
}
