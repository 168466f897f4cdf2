//! The agent's ports over the simulated world: [`SimDcs`] (etcd through the network),
//! [`SimPg`] (the node's PostgreSQL model) and [`SimEnv`] (peers' APIs, the fence, clocks).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgkeel_agent::guard::{guard_step, GuardStep};
use pgkeel_agent::{Env, Shared};
use pgkeel_core::action::{StopMode, Upstream};
use pgkeel_core::cluster::Cluster;
use pgkeel_core::dcs_values::{FailoverValue, HistoryEntry, MemberValue, StatusValue, SyncValue};
use pgkeel_core::observation::PgView;
use pgkeel_core::Config;
use pgkeel_dcs::{keys, Dcs, DcsError};
use pgkeel_pg::{PgDetails, PgSettings, Postgres, SyncRepState};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::etcd::Refused;
use crate::postgres::{replication_rows, Data, Proc};
use crate::scenario::Ep;
use crate::world::{State, World};

pub struct SimEnv {
    pub world: Arc<World>,
    pub node: usize,
}

/// The fence of one agent process: dropping it (the agent ends or is killed) ends the fence
/// task, and tells the guardian, which then keeps the last deadline it heard (see
/// `pgkeel_agent::guard`).
struct FenceGuard {
    task: JoinHandle<()>,
    agent_gone: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.agent_gone
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Env for SimEnv {
    type Dcs = SimDcs;
    type Pg = SimPg;

    async fn connect_dcs(&self, _cfg: &Config, timeout: Duration) -> Result<SimDcs, DcsError> {
        let dcs = SimDcs {
            world: self.world.clone(),
            node: self.node,
            timeout,
        };
        dcs.call("connect", |_| Ok(())).await?;
        Ok(dcs)
    }

    fn postgres(&self, settings: PgSettings) -> SimPg {
        SimPg {
            world: self.world.clone(),
            node: self.node,
            probe: settings.probe_timeout,
            fs_stuck: std::sync::atomic::AtomicBool::new(false),
            silent: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The fence thread and the guardian process, as production has them: every 50 ms
    /// the fence applies `Shared::fence_due` and tells the guardian `writable_until`; the
    /// guardian stops the primary at the last deadline it heard, and outlives the agent.
    /// Stopping is immediate; the fence thread, inside the agent, does nothing while the
    /// node is frozen, the guardian does.
    fn start_fence(&self, shared: Arc<Shared>) -> std::io::Result<Box<dyn Send + Sync>> {
        use std::sync::atomic::{AtomicBool, Ordering};
        const TICK: Duration = Duration::from_millis(50);
        let until = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
        let agent_gone = Arc::new(AtomicBool::new(false));
        let (world, i, told) = (self.world.clone(), self.node, until.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                world.gate(i).await;
                let now = pgkeel_agent::clock::now();
                *told.lock().unwrap_or_else(|e| e.into_inner()) = shared.writable_until(now);
                if shared.fence_due(now) {
                    world.lock().sigkill(i, "fenced: lease may have expired");
                }
            }
        });
        // The guardian is a process of its own, in its own session: a freeze (SIGSTOP of
        // the agent and PostgreSQL, the fault model's freeze) does not stop it, and the
        // SIGKILL it sends a stopped postmaster works (`pgkeel_agent::fence`).
        let (world, gone) = (self.world.clone(), agent_gone.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let last = *until.lock().unwrap_or_else(|e| e.into_inner());
                let closed = gone.load(Ordering::SeqCst);
                let running = world.lock().nodes[i].pg.running();
                match guard_step(last, crate::world::now(), closed, running) {
                    GuardStep::Exit => return,
                    GuardStep::Stop => world.lock().sigkill(i, "fence guardian: deadline passed"),
                    GuardStep::Wait => {}
                }
            }
        });
        Ok(Box::new(FenceGuard { task, agent_gone }))
    }

    fn fence_now(&self) {
        self.world
            .lock()
            .sigkill(self.node, "fenced: etcd says the lease is gone");
    }

    async fn peer_status(&self, api_url: &str, timeout: Duration) -> Option<Value> {
        let peer = self.world.node_of(host_of(api_url)?)?;
        // One agent per simulated node: its own address answers from this very process,
        // which counts as no answer (as the real environment's instance header tells).
        if peer == self.node {
            return None;
        }
        self.world
            .rpc(Ep::Node(self.node), Ep::Node(peer), timeout, |s| {
                let api = s.nodes[peer].api.as_ref()?;
                Some(pgkeel_api::with_snapshot(
                    &api.snap,
                    pgkeel_api::status_json,
                ))
            })
            .await
    }

    async fn post_failsafe(
        &self,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> pgkeel_core::observation::FailsafeAnswer {
        use pgkeel_core::observation::FailsafeAnswer;
        let Some(peer) = host_of(url).and_then(|h| self.world.node_of(h)) else {
            return FailsafeAnswer::NoAnswer;
        };
        let bytes = body.to_string().into_bytes();
        self.world
            .rpc(Ep::Node(self.node), Ep::Node(peer), timeout, |s| {
                let api = s.nodes[peer].api.as_ref()?;
                Some(
                    pgkeel_api::with_snapshot(&api.snap, |snap| {
                        pgkeel_api::receive_failsafe(Some(&bytes), snap, &api.inbox)
                    })
                    .is_ok(),
                )
            })
            .await
            .map_or(FailsafeAnswer::NoAnswer, |ok| {
                if ok {
                    FailsafeAnswer::Confirmed
                } else {
                    FailsafeAnswer::Refused
                }
            })
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_800_000_000)
            + crate::world::now().duration_since(self.world.t0)
    }
}

/// `http://node2:8008/patroni` → `node2`.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split("://").nth(1)?;
    rest.split([':', '/']).next()
}

#[derive(Clone)]
pub struct SimDcs {
    world: Arc<World>,
    node: usize,
    timeout: Duration,
}

type R<T> = Result<T, DcsError>;

impl SimDcs {
    /// One request to etcd; `op` runs there. A change bumps the watchers' revision.
    async fn call<T>(&self, what: &str, op: impl FnOnce(&mut State) -> Result<T, Refused>) -> R<T> {
        let world = self.world.clone();
        let answer = self
            .world
            .rpc(Ep::Node(self.node), Ep::Etcd, self.timeout, |s| {
                let now = s.now();
                if s.net.etcd_down == 0 {
                    s.store.expire(now);
                }
                let before = s.store.revision();
                let leader = s.store.leader();
                let r = op(s);
                if s.store.leader() != leader {
                    let l = s.store.leader();
                    s.note(format!("etcd: leader key {leader:?} -> {l:?} ({what})"));
                }
                let after = s.store.revision();
                if after != before {
                    world.etcd_changed();
                }
                Some(r)
            })
            .await;
        match answer {
            None => Err(DcsError::Unavailable(format!("{what}: no answer"))),
            Some(Err(refused)) => Err(DcsError::Unavailable(refused)),
            Some(Ok(v)) => Ok(v),
        }
    }
}

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl Dcs for SimDcs {
    async fn load(&self) -> R<Cluster> {
        self.call("load", |s| Ok(s.store.load())).await
    }
    async fn touch_member(&self, name: &str, value: &MemberValue, lease: i64) -> R<()> {
        let (key, v) = (format!("{}{name}", keys::MEMBERS), json(value));
        self.call("touch_member", move |s| s.store.put(&key, v, lease))
            .await
    }
    async fn claim_initialize(&self) -> R<bool> {
        self.call("claim_initialize", |s| {
            s.store.create_if_absent(keys::INITIALIZE, Vec::new(), 0)
        })
        .await
    }
    async fn write_initialize(&self, sysid: &str) -> R<()> {
        let v = sysid.as_bytes().to_vec();
        self.call("write_initialize", move |s| {
            s.store.put(keys::INITIALIZE, v, 0)
        })
        .await
    }
    async fn cancel_initialize(&self) -> R<()> {
        self.call("cancel_initialize", |s| {
            s.store.delete(keys::INITIALIZE);
            Ok(())
        })
        .await
    }
    async fn write_config_if_absent(&self, config: &Value) -> R<bool> {
        let v = json(config);
        self.call("write_config_if_absent", move |s| {
            s.store.create_if_absent(keys::CONFIG, v, 0)
        })
        .await
    }
    async fn acquire_leader(&self, name: &str, lease: i64) -> R<bool> {
        let v = name.as_bytes().to_vec();
        self.call("acquire_leader", move |s| {
            s.store.create_if_absent(keys::LEADER, v, lease)
        })
        .await
    }
    async fn reclaim_leader(&self, name: &str, lease: i64) -> R<bool> {
        let (me, v) = (name.to_string(), name.as_bytes().to_vec());
        self.call("reclaim_leader", move |s| {
            if s.store.leader().as_deref() != Some(me.as_str()) {
                return Ok(false);
            }
            s.store.put(keys::LEADER, v, lease).map(|()| true)
        })
        .await
    }
    async fn release_leader(&self, name: &str) -> R<bool> {
        let me = name.to_string();
        self.call("release_leader", move |s| {
            Ok(s.store.leader().as_deref() == Some(me.as_str()) && s.store.delete(keys::LEADER))
        })
        .await
    }
    async fn write_status(&self, leader: &str, status: &StatusValue) -> R<bool> {
        let (l, v) = (leader.to_string(), json(status));
        self.call("write_status", move |s| {
            s.store.put_if_leader(&l, keys::STATUS, v)
        })
        .await
    }
    async fn write_history(&self, leader: &str, history: &[HistoryEntry]) -> R<bool> {
        let list = Value::Array(history.iter().map(HistoryEntry::to_json).collect());
        let (l, v) = (leader.to_string(), json(&list));
        self.call("write_history", move |s| {
            s.store.put_if_leader(&l, keys::HISTORY, v)
        })
        .await
    }
    async fn write_sync(&self, leader: &str, value: &SyncValue) -> R<bool> {
        let (l, v) = (leader.to_string(), json(&value.to_json()));
        self.call("write_sync", move |s| {
            s.store.put_if_leader(&l, keys::SYNC, v)
        })
        .await
    }
    async fn write_failsafe(&self, leader: &str, members: &BTreeMap<String, String>) -> R<bool> {
        let (l, v) = (leader.to_string(), json(members));
        self.call("write_failsafe", move |s| {
            s.store.put_if_leader(&l, keys::FAILSAFE, v)
        })
        .await
    }
    async fn write_failover(&self, value: &FailoverValue) -> R<()> {
        let v = json(value);
        self.call("write_failover", move |s| s.store.put(keys::FAILOVER, v, 0))
            .await
    }
    async fn delete_failover(&self, revision: i64) -> R<bool> {
        self.call("delete_failover", move |s| {
            if revision == 0 || s.store.mod_revision(keys::FAILOVER) == revision {
                s.store.delete(keys::FAILOVER);
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .await
    }
    async fn write_config(&self, config: &Value, revision: i64) -> R<bool> {
        let v = json(config);
        self.call("write_config", move |s| {
            if s.store.mod_revision(keys::CONFIG) != revision {
                return Ok(false);
            }
            s.store.put(keys::CONFIG, v, 0).map(|()| true)
        })
        .await
    }
    async fn put_config(&self, config: &Value) -> R<()> {
        let v = json(config);
        self.call("put_config", move |s| s.store.put(keys::CONFIG, v, 0))
            .await
    }
    async fn grant_lease(&self, ttl: Duration) -> R<i64> {
        self.call("grant_lease", move |s| {
            let now = s.now();
            Ok(s.store.grant(ttl, now))
        })
        .await
    }
    async fn keep_alive(&self, lease: i64) -> R<Option<Duration>> {
        self.call("keep_alive", move |s| {
            let now = s.now();
            Ok(s.store.keep_alive(lease, now))
        })
        .await
    }
    async fn revoke_lease(&self, lease: i64) -> R<()> {
        self.call("revoke_lease", move |s| {
            s.store.revoke(lease);
            Ok(())
        })
        .await
    }
    /// Wakes the loop on every change, when etcd can reach this node.
    fn spawn_watcher(&self, wake: Arc<Notify>) -> JoinHandle<()> {
        let (world, i) = (self.world.clone(), self.node);
        tokio::spawn(async move {
            loop {
                world.changes[i].notified().await;
                let reachable = {
                    let s = world.lock();
                    s.net.up(Ep::Etcd, Ep::Node(i)) && s.net.etcd_down == 0
                };
                if reachable {
                    world.gate(i).await;
                    wake.notify_one();
                }
            }
        })
    }
}

/// The adapter (`pgkeel_pg::Pg`) over the node's model, with the adapter's bounds: a
/// probe answers `NoAnswer` after its deadline, operations that connect give up after
/// theirs, `pg_ctl` after its timeout, and file reads and writes of the data directory
/// (postgresql.auto.conf, the managed configuration, history files, `postmaster.pid`) give
/// up after the probe's deadline (the loop's small ones) or the operation's timeout (a role
/// change's), at most one stuck at a time, as they do in the adapter (`pgkeel_pg`'s
/// `disk.rs`).
pub struct SimPg {
    world: Arc<World>,
    node: usize,
    /// The health probe's deadline (`PgSettings::probe_timeout`).
    probe: Duration,
    /// A read of the data directory is stuck on the stalled disk: the adapter starts no
    /// other until it returns, and answers at once instead.
    fs_stuck: std::sync::atomic::AtomicBool,
    /// A file access since the last observation gave up on the stalled disk (the adapter's
    /// `was_silent`): the loop probes again at once.
    silent: std::sync::atomic::AtomicBool,
}

type A<T> = anyhow::Result<T>;

/// The adapter's bound on connecting for an operation (`OBSERVE_TIMEOUT`).
const CONNECT: Duration = Duration::from_secs(2);
/// `pg_ctl`'s `-t`, `pg_basebackup`'s and `pg_rewind`'s bounds (`PgSettings::op_timeout`).
const OP_TIMEOUT: Duration = Duration::from_secs(120);
use crate::scenario::QUIT_GRACE;

impl SimPg {
    fn ms(&self, lo: u64, hi: u64) -> Duration {
        self.world.lock().rng.millis(lo, hi)
    }

    /// The node `upstream` names, reachable from here (both ways) and running.
    fn source(&self, s: &State, upstream: &Upstream) -> A<usize> {
        let u = self
            .world
            .node_of(&upstream.host)
            .ok_or_else(|| anyhow::anyhow!("unknown host {}", upstream.host))?;
        let (me, them) = (Ep::Node(self.node), Ep::Node(u));
        if !(s.net.up(me, them) && s.net.up(them, me)) || s.frozen(u) {
            anyhow::bail!("cannot connect to {}", upstream.host);
        }
        if !s.nodes[u].pg.running() {
            anyhow::bail!("{} is not running", upstream.host);
        }
        if !s.connects(u) || s.stalled(u) {
            anyhow::bail!("{} does not answer", upstream.host);
        }
        Ok(u)
    }

    /// Node `i`'s server is stopped or its storage stalls: the paths that differ from a
    /// healthy server's.
    fn gray(&self) -> bool {
        let s = self.world.lock();
        s.pm_hung(self.node) || s.stalled(self.node)
    }

    /// A file access the loop makes every time round, bounded like a probe (the adapter's
    /// `on_disk_quick`): one stuck on the stalled disk keeps its thread until the disk
    /// answers, and the next fails at once meanwhile.
    async fn disk(&self, what: &str) -> A<()> {
        self.disk_bounded(self.probe, what).await
    }

    /// A role change's file writes, bounded like the operation (`on_disk_op`).
    async fn disk_op(&self, what: &str) -> A<()> {
        self.disk_bounded(OP_TIMEOUT, what).await
    }

    async fn disk_bounded(&self, within: Duration, what: &str) -> A<()> {
        use std::sync::atomic::Ordering;
        let i = self.node;
        if self.world.lock().stalled(i) && self.fs_stuck.load(Ordering::SeqCst) {
            self.silent.store(true, Ordering::SeqCst);
            anyhow::bail!("{what}: an earlier operation on the data directory is still blocked");
        }
        if !self.world.wait_until(Some(within), |s| !s.stalled(i)).await {
            self.fs_stuck.store(true, Ordering::SeqCst);
            self.silent.store(true, Ordering::SeqCst);
            anyhow::bail!("{what}: the data directory did not answer within {within:?}");
        }
        self.fs_stuck.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Waits, up to `within`, for the storage (a command with a timeout).
    async fn disk_within(&self, within: Duration, what: &str) -> A<()> {
        let i = self.node;
        if !self.world.wait_until(Some(within), |s| !s.stalled(i)).await {
            anyhow::bail!(
                "{what} did not finish within {within:?}: the data directory does not answer"
            );
        }
        Ok(())
    }

    /// A connection for an operation, within the adapter's bound.
    async fn connect(&self, what: &str) -> A<()> {
        let i = self.node;
        if !self
            .world
            .wait_until(Some(CONNECT), |s| s.connects(i))
            .await
        {
            anyhow::bail!("{what}: PostgreSQL did not answer within {CONNECT:?}");
        }
        Ok(())
    }

    /// The probe of a server that may not answer: the data directory's files (one read
    /// at a time, within the deadline), then a fresh connection within a deadline of its
    /// own.
    async fn gray_view(&self) -> Option<PgView> {
        use std::sync::atomic::Ordering;
        let i = self.node;
        self.world.gate(i).await;
        let silent = |s: &State| {
            if s.nodes[i].pg.running() {
                PgView::NoAnswer
            } else {
                PgView::Unknown
            }
        };
        if self.world.lock().stalled(i) && self.fs_stuck.load(Ordering::SeqCst) {
            return Some(silent(&self.world.lock()));
        }
        if !self
            .world
            .wait_until(Some(self.probe), |s| !s.stalled(i))
            .await
        {
            self.fs_stuck.store(true, Ordering::SeqCst);
            return Some(silent(&self.world.lock()));
        }
        self.fs_stuck.store(false, Ordering::SeqCst);
        if !self
            .world
            .wait_until(Some(self.probe), |s| s.connects(i))
            .await
        {
            return Some(PgView::NoAnswer);
        }
        None
    }
}

impl Postgres for SimPg {
    fn was_silent(&self) -> bool {
        self.silent.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn observe(&self) -> PgView {
        self.silent
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let i = self.node;
        let stuck = self.fs_stuck.load(std::sync::atomic::Ordering::SeqCst);
        if self.gray() || stuck {
            if let Some(v) = self.gray_view().await {
                return v;
            }
        }
        let d = self.ms(1, 5);
        let names = self.world.names.clone();
        self.world.local(i, d, |s| s.nodes[i].pg.view(&names)).await
    }
    async fn details(&self) -> PgDetails {
        PgDetails {
            server_version: Some(150_010),
            ..PgDetails::default()
        }
    }
    async fn sync_rep_state(&self) -> A<SyncRepState> {
        let i = self.node;
        self.connect("reading synchronous replication").await?;
        let d = self.ms(1, 3);
        self.world
            .local(i, d, |s| {
                let pg = &s.nodes[i].pg;
                let data = pg.data.as_ref().filter(|_| pg.is_primary());
                let data = data.ok_or_else(|| anyhow::anyhow!("not a running primary"))?;
                Ok(SyncRepState {
                    ssn: pg.ssn.clone(),
                    current: data.lsn(),
                    rows: replication_rows(&pg.ssn, &s.standbys_of(i)),
                    managed: !pg.ssn.is_empty(),
                    synchronous_commit: "on".into(),
                })
            })
            .await
    }
    async fn set_sync_standbys(&self, value: Option<&str>) -> A<()> {
        let (i, v) = (self.node, value.unwrap_or("").to_string());
        // postgresql.auto.conf is read and written off the loop, bounded.
        self.disk("setting synchronous_standby_names").await?;
        let d = self.ms(2, 10);
        self.world
            .local(i, d, |s| {
                if s.nodes[i]
                    .pg
                    .ssn_pending
                    .as_ref()
                    .unwrap_or(&s.nodes[i].pg.ssn)
                    != &v
                {
                    s.note(format!("node{} synchronous_standby_names = '{v}'", i + 1));
                }
                // A hung postmaster does not act on the reload (nor pass it on) until it
                // runs again.
                if s.pm_hung(i) {
                    s.nodes[i].pg.ssn_pending = Some(v);
                } else {
                    s.nodes[i].pg.ssn = v;
                    s.nodes[i].pg.ssn_pending = None;
                }
            })
            .await;
        Ok(())
    }
    fn set_config(
        &self,
        _parameters: BTreeMap<String, String>,
        _pg_hba: pgkeel_pg::HbaLines,
        _pg_ident: Option<Vec<String>>,
    ) -> bool {
        false
    }
    async fn apply(&self) -> A<()> {
        Ok(())
    }
    async fn timeline_history(&self) -> A<Vec<HistoryEntry>> {
        let i = self.node;
        if self.gray() {
            // The adapter observes first, then reads the history file: both bounded.
            match self.observe().await {
                PgView::Running(_) | PgView::Stopped(_) => {}
                other => anyhow::bail!("cannot tell the current timeline: PostgreSQL is {other:?}"),
            }
            self.disk("reading the timeline history").await?;
        }
        Ok(self
            .world
            .local(i, Duration::from_millis(1), |s| s.nodes[i].pg.history())
            .await)
    }
    async fn bootstrap(&self, _plan: &pgkeel_core::action::BootstrapPlan) -> A<()> {
        let i = self.node;
        self.disk_within(OP_TIMEOUT, "initdb").await?;
        let d = self.ms(300, 1500);
        self.world
            .local(i, d, |s| {
                if s.nodes[i].pg.data.is_some() {
                    anyhow::bail!("cannot bootstrap: data directory is not empty");
                }
                let sysid = 7_000_000_000_000_000_000 + s.rng.below(1 << 40);
                let uid = s.uid();
                s.nodes[i].pg.data = Some(Data {
                    sysid,
                    timeline: 1,
                    history: Vec::new(),
                    wal: vec![crate::postgres::Rec {
                        uid,
                        timeline: 1,
                        write: None,
                    }],
                    standby_signal: false,
                    clean: false,
                });
                s.set_proc(i, Proc::Primary, "bootstrapped");
                Ok(())
            })
            .await
    }
    async fn post_bootstrap(&self, _script: Option<&[String]>) -> A<()> {
        Ok(())
    }
    async fn abandon_bootstrap(&self) -> A<()> {
        let i = self.node;
        self.world
            .local(i, Duration::from_millis(5), |s| {
                s.kill_pg(i, "failed bootstrap");
                s.nodes[i].pg.data = None;
            })
            .await;
        Ok(())
    }
    async fn create_replica(&self, plan: &pgkeel_core::action::ClonePlan) -> A<()> {
        // The model has pg_basebackup from a member only (no backups to restore).
        let Some(source) = &plan.source else {
            anyhow::bail!(
                "failed to bootstrap {}: no backups in the simulation",
                plan.what
            );
        };
        let i = self.node;
        {
            let s = self.world.lock();
            if s.nodes[i].pg.data.is_some() {
                anyhow::bail!("cannot clone: data directory is not empty");
            }
            self.source(&s, source)?;
        }
        self.disk_within(OP_TIMEOUT, "pg_basebackup").await?;
        let d = self.ms(500, 3000);
        self.world
            .local(i, d, |s| {
                // pg_basebackup ends with the source's state at the end of the copy.
                let u2 = self.source(s, source)?;
                let data = s
                    .clone_data(u2)
                    .ok_or_else(|| anyhow::anyhow!("source has no data"))?;
                s.note(format!("node{} cloned from node{}", i + 1, u2 + 1));
                s.nodes[i].pg.data = Some(data);
                Ok(())
            })
            .await
    }
    async fn kill(&self) -> A<()> {
        let i = self.node;
        if self.world.lock().stalled(i) {
            // Processes in uninterruptible sleep: the SIGKILL stays pending until the
            // storage answers again, and they die before running anything more. The
            // adapter sees it pending (`/proc/PID/status`) after the immediate shutdown's
            // grace and calls them finished.
            self.world.lock().sigkill(i, "killed");
            tokio::time::sleep(QUIT_GRACE).await;
            return Ok(());
        }
        self.world
            .local(i, Duration::from_millis(5), |s| s.kill_pg(i, "killed"))
            .await;
        Ok(())
    }
    async fn reinit(&self, plan: &pgkeel_core::action::ClonePlan) -> A<()> {
        let i = self.node;
        if self.gray() {
            self.kill().await?;
            self.disk_within(OP_TIMEOUT, "removing the data directory")
                .await?;
        }
        self.world
            .local(i, Duration::from_millis(5), |s| {
                s.kill_pg(i, "reinit");
                s.nodes[i].pg.data = None;
            })
            .await;
        self.create_replica(plan).await
    }
    async fn start_primary(&self) -> A<()> {
        let i = self.node;
        self.disk_within(OP_TIMEOUT, "pg_ctl start").await?;
        let d = self.ms(200, 1000);
        self.world
            .local(i, d, |s| {
                if s.nodes[i].pg.running() {
                    return Ok(());
                }
                let data = s.nodes[i]
                    .pg
                    .data
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("no data"))?;
                data.standby_signal = false;
                s.set_proc(i, Proc::Primary, "started as primary");
                Ok(())
            })
            .await
    }
    async fn start_replica(&self, upstream: Option<&Upstream>) -> A<()> {
        let i = self.node;
        let up = upstream.and_then(|u| self.world.node_of(&u.host));
        self.disk_within(OP_TIMEOUT, "pg_ctl start").await?;
        let d = self.ms(200, 1000);
        self.world
            .local(i, d, |s| {
                if s.nodes[i].pg.running() {
                    anyhow::bail!("already running");
                }
                let data = s.nodes[i]
                    .pg
                    .data
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("no data"))?;
                data.standby_signal = true;
                s.set_proc(i, Proc::Standby { upstream: up }, "started as replica");
                Ok(())
            })
            .await
    }
    async fn stop(&self, mode: StopMode) -> A<()> {
        let i = self.node;
        if self.gray() {
            // The adapter reads postmaster.pid first (bounded); pg_ctl's signal then waits
            // for a stopped postmaster to run again, up to its timeout. An immediate
            // shutdown's SIGQUIT reaches processes asleep on the disk when it answers.
            self.disk("reading postmaster.pid").await?;
            if mode == StopMode::Immediate {
                self.world.lock().sigkill(i, "stopped (immediate)");
            }
            let stops = |s: &State| !s.nodes[i].pg.running() || !s.pm_hung(i);
            if !self.world.wait_until(Some(OP_TIMEOUT), stops).await {
                anyhow::bail!("pg_ctl stop: the server did not stop within {OP_TIMEOUT:?}");
            }
        }
        let d = self.ms(50, 500);
        self.world
            .local(i, d, |s| match mode {
                StopMode::Fast => s.stop_pg(i, "stopped (fast)"),
                StopMode::Immediate => s.sigkill(i, "stopped (immediate)"),
            })
            .await;
        Ok(())
    }
    async fn reload(&self) -> A<()> {
        Ok(())
    }
    async fn follow(&self, upstream: &Upstream) -> A<()> {
        let i = self.node;
        let up = self.world.node_of(&upstream.host);
        // The managed configuration is written off the loop, bounded like the operation.
        self.disk_op("writing the managed configuration files")
            .await?;
        let d = self.ms(5, 50);
        self.world
            .local(i, d, |s| match s.nodes[i].pg.proc {
                Proc::Standby { .. } => {
                    s.nodes[i].pg.proc = Proc::Standby { upstream: up };
                    s.nodes[i].pg.streaming = false;
                    s.note(format!("node{} follows {}", i + 1, upstream.host));
                    Ok(())
                }
                p => anyhow::bail!("follow: server is {p:?}"),
            })
            .await
    }
    async fn promote(&self, newest_known: u32, _cluster_history: &[HistoryEntry]) -> A<()> {
        let i = self.node;
        let d = self.ms(50, 400);
        // pgkeel_pg writes history files up to the newest known timeline first, so the new
        // timeline is one past both its own and that one.
        let floor = newest_known;
        if self.gray() {
            // A connection (bounded), history files (written within the operation's
            // timeout), then pg_promote, which needs the postmaster and the disk (likewise).
            self.connect("promote").await?;
            self.disk_op("writing the cluster's history files").await?;
            let i = self.node;
            if !self
                .world
                .wait_until(Some(OP_TIMEOUT), |s| s.connects(i) && !s.stalled(i))
                .await
            {
                anyhow::bail!("pg_promote did not return within {OP_TIMEOUT:?}");
            }
        }
        self.world
            .local(i, d, |s| s.promote(i, floor).map_err(anyhow::Error::msg))
            .await
    }
    async fn rewind(&self, source: &Upstream) -> A<()> {
        let i = self.node;
        self.disk_within(OP_TIMEOUT, "pg_rewind").await?;
        let d = self.ms(300, 2000);
        self.world
            .local(i, d, |s| {
                if s.nodes[i].pg.running() {
                    anyhow::bail!("pg_rewind: target server must be shut down");
                }
                let u = self.source(s, source)?;
                let src = s.nodes[u]
                    .pg
                    .data
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("source has no data"))?;
                let data = s.nodes[i]
                    .pg
                    .data
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("no data"))?;
                if data.sysid != src.sysid {
                    anyhow::bail!(
                        "pg_rewind: source and target clusters are from different systems"
                    );
                }
                let keep = data.common_prefix(&src);
                data.wal.truncate(keep);
                data.timeline = src.timeline;
                data.history = src.history.clone();
                data.standby_signal = true;
                data.clean = true;
                s.note(format!(
                    "node{} rewound from node{} (kept {keep} records)",
                    i + 1,
                    u + 1
                ));
                Ok(())
            })
            .await
    }
    async fn ensure_slots(&self, _names: &[String]) -> A<()> {
        Ok(())
    }
}
