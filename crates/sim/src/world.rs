//! The simulated world: etcd, every node's PostgreSQL, the network between them, the
//! clients' pending commits, and the invariant checker. One mutex guards it all; it is
//! never held across an await, and the runtime has one thread, so every step is atomic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pgkeel_api::{AdminSender, FailsafeInbox, SharedSnapshot};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{oneshot, Notify};

use crate::check::Checker;
use crate::etcd::Store;
use crate::postgres::{commit_released, Data, PgModel, Proc, Rec};
use crate::rng::Rng;
use crate::scenario::{Ep, Gray, Scenario};

/// The parts of a running agent the network can reach: its REST API's state.
pub struct Api {
    pub snap: SharedSnapshot,
    pub inbox: Arc<FailsafeInbox>,
    /// Kept so the agent's request channel stays open.
    pub _admin: AdminSender,
}

pub struct NodeSim {
    pub pg: PgModel,
    pub freezes: u32,
    pub slow: u32,
    /// The agent process runs (its API answers).
    pub api: Option<Api>,
    pub agent_down: u32,
    /// Hangs of this node's server (`Gray::PgHang`: every process stopped;
    /// `Gray::PmHang`: the postmaster alone), per fault, with the run of the server they
    /// stopped: a server started afterwards is not stopped.
    pub hangs: BTreeMap<usize, (Gray, u64)>,
    /// Storage stalls in force: no I/O completes.
    pub stalls: u32,
    /// A SIGKILL arrived while the storage stalled: the processes, in uninterruptible sleep,
    /// die when it ends, before they can do anything more.
    pub kill_pending: bool,
}

#[derive(Debug, Default)]
pub struct Net {
    /// Per fault: the directed links it cuts.
    pub cuts: BTreeMap<usize, Vec<(Ep, Ep)>>,
    /// Per fault: extra latency between two points, both ways.
    pub delays: BTreeMap<usize, (Ep, Ep, Duration)>,
    pub etcd_down: u32,
}

impl Net {
    pub fn up(&self, from: Ep, to: Ep) -> bool {
        !self.cuts.values().any(|c| c.contains(&(from, to)))
    }

    fn extra(&self, a: Ep, b: Ep) -> Duration {
        self.delays
            .values()
            .filter(|(x, y, _)| (*x, *y) == (a, b) || (*x, *y) == (b, a))
            .map(|(_, _, d)| *d)
            .max()
            .unwrap_or_default()
    }
}

/// A commit waiting for its flush and its synchronous standbys.
pub struct Pending {
    pub node: usize,
    pub incarnation: u64,
    /// `None`: the request reached a server that could not run it yet (all of it stopped,
    /// or its storage stalled); its record is written once the server runs again.
    pub lsn: Option<pgkeel_core::Lsn>,
    pub write: u64,
    pub not_before: Instant,
    pub reply: oneshot::Sender<(u32, bool)>,
}

pub struct State {
    pub rng: Rng,
    pub store: Store,
    pub net: Net,
    pub nodes: Vec<NodeSim>,
    pub check: Checker,
    pub trace: Vec<String>,
    pub pending: Vec<Pending>,
    /// Gray failures in force: the node each one hit (a `Target::Leader` is resolved when
    /// it begins).
    pub gray_nodes: BTreeMap<usize, usize>,
    /// Gray failures of the leader the availability bound was checked for: the kind, how
    /// long until a writable primary, and the bound.
    pub recoveries: Vec<(Gray, Duration, Duration)>,
    next_uid: u64,
    pub next_write: u64,
    t0: Instant,
}

// tokio's `watch` channel wakes its waiters in a random order (it spreads them over
// shards picked by a thread-local RNG); plain `Notify`s keep a run deterministic.
pub struct World {
    state: Mutex<State>,
    frozen: Vec<(AtomicBool, Notify)>,
    /// One per node: notified on every change in etcd, for that node's watcher.
    pub changes: Vec<Notify>,
    pub t0: Instant,
    pub names: Vec<String>,
    pub scenario: Scenario,
}

pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl World {
    pub fn new(scenario: Scenario) -> Arc<World> {
        let t0 = now();
        let n = scenario.nodes;
        let nodes = (0..n)
            .map(|_| NodeSim {
                pg: PgModel::default(),
                freezes: 0,
                slow: 0,
                api: None,
                agent_down: 0,
                hangs: BTreeMap::new(),
                stalls: 0,
                kill_pending: false,
            })
            .collect();
        Arc::new(World {
            state: Mutex::new(State {
                rng: Rng::new(scenario.seed.wrapping_mul(31).wrapping_add(17)),
                store: Store::default(),
                net: Net::default(),
                nodes,
                check: Checker::new(n, t0),
                trace: Vec::new(),
                pending: Vec::new(),
                gray_nodes: BTreeMap::new(),
                recoveries: Vec::new(),
                next_uid: 1,
                next_write: 1,
                t0,
            }),
            frozen: (0..n)
                .map(|_| (AtomicBool::new(false), Notify::new()))
                .collect(),
            changes: (0..n).map(|_| Notify::new()).collect(),
            t0,
            names: (1..=n).map(|i| format!("node{i}")).collect(),
            scenario,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node index of `host` ("node3" → 2).
    pub fn node_of(&self, host: &str) -> Option<usize> {
        self.names.iter().position(|n| n == host)
    }

    /// Waits while node `i` is frozen (a stopped process runs nothing).
    pub async fn gate(&self, i: usize) {
        let (flag, thawed) = &self.frozen[i];
        loop {
            let wait = thawed.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            if !flag.load(Ordering::SeqCst) {
                return;
            }
            wait.await;
        }
    }

    pub fn set_frozen(&self, i: usize, frozen: bool) {
        let (flag, thawed) = &self.frozen[i];
        flag.store(frozen, Ordering::SeqCst);
        if !frozen {
            thawed.notify_waiters();
        }
    }

    /// Something changed in etcd: every node's watcher hears of it.
    pub fn etcd_changed(&self) {
        for n in &self.changes {
            n.notify_one();
        }
    }

    /// A request from `from` to `to` and its answer, each crossing the network: a cut link
    /// loses it (the caller hears nothing until `timeout`), a frozen receiver holds it, etcd
    /// down refuses it at once. `op` runs at the receiver and may return `None` for a
    /// refused connection. `None` when no answer arrived in time.
    pub async fn rpc<T>(
        &self,
        from: Ep,
        to: Ep,
        timeout: Duration,
        op: impl FnOnce(&mut State) -> Option<T>,
    ) -> Option<T> {
        if let Ep::Node(i) = from {
            self.gate(i).await;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let (up, refused, d1) = {
            let mut s = self.lock();
            let d = s.latency(from, to);
            (s.net.up(from, to), to == Ep::Etcd && s.net.etcd_down > 0, d)
        };
        if refused {
            tokio::time::sleep(Duration::from_millis(1)).await;
            return None;
        }
        if !up {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::sleep(d1).await;
        if let Ep::Node(j) = to {
            if tokio::time::timeout_at(deadline, self.gate(j))
                .await
                .is_err()
            {
                return None;
            }
        }
        let (answer, back, d2) = {
            let mut s = self.lock();
            if to == Ep::Etcd && s.net.etcd_down > 0 {
                return None;
            }
            let answer = op(&mut s);
            let d = s.latency(to, from);
            (answer, s.net.up(to, from), d)
        };
        let answer = answer?;
        if !back || tokio::time::Instant::now() + d2 > deadline {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::sleep(d2).await;
        if let Ep::Node(i) = from {
            self.gate(i).await;
        }
        Some(answer)
    }

    /// A one-way message (an answer already computed): lost on a cut link.
    pub async fn send(&self, from: Ep, to: Ep) -> bool {
        if let Ep::Node(i) = from {
            self.gate(i).await;
        }
        let (up, d) = {
            let mut s = self.lock();
            let d = s.latency(from, to);
            (s.net.up(from, to), d)
        };
        if up {
            tokio::time::sleep(d).await;
        }
        up
    }

    /// A call from node `i` to its own PostgreSQL (local socket or `pg_ctl`).
    pub async fn local<T>(
        &self,
        i: usize,
        latency: Duration,
        op: impl FnOnce(&mut State) -> T,
    ) -> T {
        self.gate(i).await;
        let slow = self.lock().nodes[i].slow > 0;
        tokio::time::sleep(if slow { latency * 4 } else { latency }).await;
        self.gate(i).await;
        op(&mut self.lock())
    }

    pub fn note(&self, what: String) {
        self.lock().note(what);
    }

    /// Waits until `ready` holds, or `within` passed (`None`: for as long as it takes).
    /// Returns whether it holds. Looks every 25 ms; when it holds at once, returns without
    /// a timer (a run without gray failures has the same events as before they existed).
    pub async fn wait_until(
        &self,
        within: Option<Duration>,
        ready: impl Fn(&State) -> bool,
    ) -> bool {
        let deadline = within.map(|d| tokio::time::Instant::now() + d);
        loop {
            if ready(&self.lock()) {
                return true;
            }
            let now = tokio::time::Instant::now();
            let step = Duration::from_millis(25);
            match deadline {
                Some(d) if now >= d => return false,
                Some(d) => tokio::time::sleep(step.min(d - now)).await,
                None => tokio::time::sleep(step).await,
            }
        }
    }
}

impl State {
    pub fn now(&self) -> Instant {
        now()
    }

    pub fn note(&mut self, what: String) {
        let t = now().duration_since(self.t0).as_secs_f64();
        self.trace.push(format!("{t:>9.3}s {what}"));
    }

    fn latency(&mut self, a: Ep, b: Ep) -> Duration {
        Duration::from_micros(self.rng.range(100, 2000)) + self.net.extra(a, b)
    }

    pub fn uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    pub fn frozen(&self, i: usize) -> bool {
        self.nodes[i].freezes > 0
    }

    /// Every process of node `i`'s server is stopped (`PgHang`).
    pub fn pg_hung(&self, i: usize) -> bool {
        self.hung(i, |g| g == Gray::PgHang)
    }

    /// Node `i`'s postmaster is stopped (`PmHang`, or `PgHang`): no new connection, no new
    /// walsender or walreceiver, no reload.
    pub fn pm_hung(&self, i: usize) -> bool {
        self.hung(i, |_| true)
    }

    fn hung(&self, i: usize, kind: impl Fn(Gray) -> bool) -> bool {
        let n = &self.nodes[i];
        n.pg.running()
            && n.hangs
                .values()
                .any(|(g, inc)| kind(*g) && *inc == n.pg.incarnation)
    }

    /// Node `i`'s storage completes no I/O.
    pub fn stalled(&self, i: usize) -> bool {
        self.nodes[i].stalls > 0
    }

    /// A new connection to node `i`'s server would be served now.
    pub fn accepts(&self, i: usize) -> bool {
        self.nodes[i].pg.running() && !self.frozen(i) && !self.pm_hung(i) && !self.stalled(i)
    }

    /// A new connection to node `i`'s server gets an answer (a refusal, if it does not run)
    /// instead of silence.
    pub fn connects(&self, i: usize) -> bool {
        !self.nodes[i].pg.running() || !self.pm_hung(i) && !self.stalled(i)
    }

    /// Node `i` is a primary that new clients can write to (availability).
    pub fn serving(&self, i: usize) -> bool {
        self.nodes[i].pg.is_primary() && self.accepts(i)
    }

    /// Tells the checker whether node `i` can commit now. Open sessions of a primary whose
    /// postmaster alone hangs still commit: it counts as writable.
    pub fn refresh(&mut self, i: usize) {
        let w = self.nodes[i].pg.is_primary()
            && !self.frozen(i)
            && !self.pg_hung(i)
            && !self.stalled(i);
        let now = now();
        self.check.writable(now, i, w);
    }

    /// SIGKILL of node `i`'s server (the agent's kill, the fence, the guardian): at once,
    /// unless its storage stalls; then its processes die when the stall ends.
    pub fn sigkill(&mut self, i: usize, why: &str) {
        if !self.nodes[i].pg.running() {
            return;
        }
        if self.stalled(i) {
            if !self.nodes[i].kill_pending {
                self.nodes[i].kill_pending = true;
                self.note(format!(
                    "node{} SIGKILL pending (storage stalled): {why}",
                    i + 1
                ));
            }
            return;
        }
        self.kill_pg(i, why);
    }

    /// Gray failure `id` begins on node `i` (`PgHang`, `PmHang` stop the server running
    /// now; `DiskStall` stalls the storage).
    pub fn begin_gray(&mut self, i: usize, id: usize, gray: Gray) {
        match gray {
            Gray::DiskStall => self.nodes[i].stalls += 1,
            g => {
                if self.nodes[i].pg.running() {
                    let inc = self.nodes[i].pg.incarnation;
                    self.nodes[i].hangs.insert(id, (g, inc));
                }
            }
        }
        self.refresh(i);
    }

    /// Gray failure `id` ends: a stopped server continues where it was (a reload it missed
    /// takes effect); a stalled one whose kill is pending dies before running anything.
    pub fn end_gray(&mut self, i: usize, id: usize, gray: Gray) {
        match gray {
            Gray::DiskStall => {
                self.nodes[i].stalls -= 1;
                if self.nodes[i].stalls == 0 && self.nodes[i].kill_pending {
                    self.kill_pg(i, "killed (SIGKILL pending since the storage stalled)");
                }
            }
            _ => {
                self.nodes[i].hangs.remove(&id);
            }
        }
        if !self.pm_hung(i) {
            if let Some(v) = self.nodes[i].pg.ssn_pending.take() {
                self.nodes[i].pg.ssn = v;
            }
        }
        self.refresh(i);
    }

    /// Changes node `i`'s server process; every change is a new incarnation.
    pub fn set_proc(&mut self, i: usize, proc: Proc, why: &str) {
        let pg = &mut self.nodes[i].pg;
        if pg.proc == proc {
            return;
        }
        pg.proc = proc;
        pg.incarnation += 1;
        pg.streaming = false;
        // A new run of the server reads postgresql.auto.conf afresh.
        if let Some(v) = pg.ssn_pending.take() {
            pg.ssn = v;
        }
        self.nodes[i].kill_pending = false;
        let pg = &self.nodes[i].pg;
        let tl = pg.data.as_ref().map_or(0, |d| d.timeline);
        self.note(format!(
            "node{} postgres {proc:?} (timeline {tl}): {why}",
            i + 1
        ));
        self.refresh(i);
    }

    /// The postmaster dies (crash, fence, immediate stop): no shutdown checkpoint.
    pub fn kill_pg(&mut self, i: usize, why: &str) {
        if !self.nodes[i].pg.running() {
            return;
        }
        if let Some(d) = self.nodes[i].pg.data.as_mut() {
            d.clean = false;
        }
        self.set_proc(i, Proc::Stopped, why);
    }

    /// A clean (fast) shutdown: a primary writes a shutdown checkpoint and sends its WAL to
    /// the standbys connected to it before it exits.
    pub fn stop_pg(&mut self, i: usize, why: &str) {
        if !self.nodes[i].pg.running() {
            return;
        }
        if self.nodes[i].pg.is_primary() {
            let uid = self.uid();
            if let Some(d) = self.nodes[i].pg.data.as_mut() {
                d.wal.push(Rec {
                    uid,
                    timeline: d.timeline,
                    write: None,
                });
            }
            for s in 0..self.nodes.len() {
                if self.nodes[s].pg.proc == (Proc::Standby { upstream: Some(i) })
                    && self.can_stream(s, i)
                {
                    self.copy_wal(s, i);
                }
            }
        }
        if let Some(d) = self.nodes[i].pg.data.as_mut() {
            d.clean = true;
        }
        self.set_proc(i, Proc::Stopped, why);
    }

    /// Standby `s` can stream from `u` now. A walsender and a walreceiver that run go on
    /// while a postmaster alone hangs; starting them needs both postmasters.
    pub fn can_stream(&self, s: usize, u: usize) -> bool {
        let (ps, pu) = (&self.nodes[s].pg, &self.nodes[u].pg);
        let connected = ps.streaming && ps.proc == (Proc::Standby { upstream: Some(u) });
        s != u
            && pu.running()
            && !self.frozen(s)
            && !self.frozen(u)
            && !self.pg_hung(s)
            && !self.pg_hung(u)
            && !self.stalled(s)
            && !self.stalled(u)
            && (connected || !self.pm_hung(s) && !self.pm_hung(u))
            && self.net.up(Ep::Node(s), Ep::Node(u))
            && self.net.up(Ep::Node(u), Ep::Node(s))
            && match (&ps.data, &pu.data) {
                (Some(a), Some(b)) => a.is_prefix_of(b),
                _ => false,
            }
    }

    fn copy_wal(&mut self, s: usize, u: usize) {
        let have = self.nodes[s].pg.data.as_ref().map_or(0, |d| d.wal.len());
        let Some(src) = self.nodes[u].pg.data.as_ref() else {
            return;
        };
        let tail = src.wal.get(have..).unwrap_or_default().to_vec();
        let (timeline, history) = (src.timeline, src.history.clone());
        if let Some(d) = self.nodes[s].pg.data.as_mut() {
            d.wal.extend(tail);
            d.timeline = timeline;
            d.history = history;
        }
    }

    /// One pass of streaming replication and of commits waiting for it.
    pub fn replicate(&mut self) {
        for s in 0..self.nodes.len() {
            if let Proc::Standby { upstream: Some(u) } = self.nodes[s].pg.proc {
                let ok = self.can_stream(s, u);
                if ok {
                    self.copy_wal(s, u);
                }
                self.nodes[s].pg.streaming = ok;
            } else {
                self.nodes[s].pg.streaming = false;
            }
        }
        self.release_commits();
    }

    /// Standbys streaming from primary `p`, as (name, flushed position).
    pub fn standbys_of(&self, p: usize) -> Vec<(String, pgkeel_core::Lsn)> {
        (0..self.nodes.len())
            .filter(|s| {
                self.nodes[*s].pg.proc == (Proc::Standby { upstream: Some(p) })
                    && self.nodes[*s].pg.streaming
            })
            .filter_map(|s| {
                self.nodes[s]
                    .pg
                    .data
                    .as_ref()
                    .map(|d| (format!("node{}", s + 1), d.lsn()))
            })
            .collect()
    }

    fn release_commits(&mut self) {
        let now = now();
        let pending = std::mem::take(&mut self.pending);
        for mut c in pending {
            let pg = &self.nodes[c.node].pg;
            if pg.incarnation != c.incarnation || !pg.is_primary() {
                continue; // the server went away: the client gets an error
            }
            // A stopped backend runs nothing; on stalled storage nothing is written or
            // flushed.
            if self.frozen(c.node) || self.pg_hung(c.node) || self.stalled(c.node) {
                self.pending.push(c);
                continue;
            }
            let Some(lsn) = c.lsn else {
                c.lsn = Some(self.insert_commit(c.node, c.write));
                c.not_before = now + self.flush_time(c.node);
                self.pending.push(c);
                continue;
            };
            if now < c.not_before {
                self.pending.push(c);
                continue;
            }
            let pg = &self.nodes[c.node].pg;
            let standbys = self.standbys_of(c.node);
            if commit_released(&pg.ssn, &standbys, lsn) {
                let sync = !pgkeel_core::sync::Ssn::parse(&pg.ssn)
                    .unwrap_or_else(pgkeel_core::sync::Ssn::none)
                    .is_empty();
                let tl = pg.data.as_ref().map_or(0, |d| d.timeline);
                let _ = c.reply.send((tl, sync));
            } else {
                self.pending.push(c);
            }
        }
    }

    /// Starts a commit of client write `id` on node `i` (which must be a primary, in run
    /// `incarnation`: the client's session belongs to one run of the server).
    pub fn begin_commit(
        &mut self,
        i: usize,
        incarnation: u64,
        id: u64,
    ) -> Option<oneshot::Receiver<(u32, bool)>> {
        let pg = &self.nodes[i].pg;
        if !pg.is_primary() || pg.incarnation != incarnation || pg.data.is_none() {
            return None;
        }
        // A stopped backend reads the request when it runs again; a stalled disk holds
        // the commit before its record is flushed (until then nothing of it exists).
        let held = self.pg_hung(i) || self.stalled(i);
        let (lsn, not_before) = if held {
            (None, now())
        } else {
            let lsn = self.insert_commit(i, id);
            (Some(lsn), now() + self.flush_time(i))
        };
        let (tx, rx) = oneshot::channel();
        self.pending.push(Pending {
            node: i,
            incarnation,
            lsn,
            write: id,
            not_before,
            reply: tx,
        });
        Some(rx)
    }

    fn flush_time(&mut self, i: usize) -> Duration {
        if self.nodes[i].slow > 0 {
            Duration::from_millis(self.rng.range(100, 800))
        } else {
            Duration::from_micros(self.rng.range(200, 3000))
        }
    }

    /// Appends the commit record of write `id` to primary `i`'s WAL.
    fn insert_commit(&mut self, i: usize, id: u64) -> pgkeel_core::Lsn {
        let uid = self.uid();
        let Some(d) = self.nodes[i].pg.data.as_mut() else {
            return pgkeel_core::Lsn(0);
        };
        d.wal.push(Rec {
            uid,
            timeline: d.timeline,
            write: Some(id),
        });
        d.lsn()
    }

    /// Promotes standby `i`: a new timeline starts after its last record, numbered one past
    /// its own and past `floor` (the newest timeline it has a history file of).
    pub fn promote(&mut self, i: usize, floor: u32) -> Result<(), String> {
        if !matches!(self.nodes[i].pg.proc, Proc::Standby { .. }) {
            return if self.nodes[i].pg.is_primary() {
                Ok(())
            } else {
                Err("promote: the server is not running".into())
            };
        }
        let uid = self.uid();
        let Some(d) = self.nodes[i].pg.data.as_mut() else {
            return Err("promote: no data".into());
        };
        let old = d.timeline;
        let new = old.max(floor) + 1;
        let switch = d.lsn().0;
        d.history.push((old, switch));
        d.timeline = new;
        d.standby_signal = false;
        d.wal.push(Rec {
            uid,
            timeline: new,
            write: None,
        });
        let (tl, snapshot) = (d.timeline, d.clone());
        self.set_proc(i, Proc::Primary, "promoted");
        let now = now();
        self.check.promoted(now, i, tl, &snapshot);
        Ok(())
    }

    /// Node `i`'s data after `pg_basebackup` from `src`.
    pub fn clone_data(&self, src: usize) -> Option<Data> {
        let mut d = self.nodes[src].pg.data.clone()?;
        d.standby_signal = true;
        d.clean = true;
        Some(d)
    }
}
