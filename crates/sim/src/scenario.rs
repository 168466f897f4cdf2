//! What one seed simulates: the cluster, its timing and synchronous mode, and a schedule of
//! faults. Everything here is drawn from the seed, so a seed names one run exactly.

use std::fmt;
use std::time::Duration;

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Off,
    On,
    Strict,
    Quorum,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub nodes: usize,
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    pub sync: SyncMode,
    pub sync_node_count: usize,
    pub failsafe: bool,
    pub faults: Vec<Fault>,
}

/// A point in the network: a node (agent and PostgreSQL share its host), etcd, or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ep {
    Node(usize),
    Etcd,
    Client(usize),
}

pub const CLIENTS: usize = 2;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// kill -9 of the agent only; PostgreSQL keeps running.
    AgentCrash(usize),
    /// The postmaster dies; the agent stays.
    PgCrash(usize),
    /// Agent and PostgreSQL die (host loss); the host comes back when the fault ends.
    HostCrash(usize),
    /// SIGSTOP of agent and PostgreSQL.
    Freeze(usize),
    /// The nodes in `side` (with etcd if `etcd_with_side`) cannot talk to the others;
    /// each client is on the side its flag says.
    Partition {
        side: Vec<usize>,
        etcd_with_side: bool,
        clients_with_side: Vec<bool>,
    },
    /// Messages from `from` to `to` are lost; the other direction works.
    OneWay { from: Ep, to: Ep },
    /// Messages between `a` and `b` take `extra` longer each way.
    Delay { a: Ep, b: Ep, extra: Duration },
    /// etcd refuses every request (all members down).
    EtcdDown,
    /// The node's disk is slow: commits, start, promote, clone and rewind take longer.
    SlowDisk(usize),
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// From the end of the initial bootstrap.
    pub at: Duration,
    pub lasts: Duration,
    pub kind: FaultKind,
}

impl Scenario {
    pub fn from_seed(seed: u64) -> Scenario {
        let mut r = Rng::new(seed);
        let nodes = *r.pick(&[2, 3, 3, 3, 4, 5]);
        let ttl = *r.pick(&[3, 5, 10, 10, 20, 30]);
        let loop_wait = r.range(1, (ttl / 3).clamp(1, 10));
        let retry_timeout = r.range(1, ((ttl - loop_wait) / 2).max(1));
        let sync = *r.pick(&[
            SyncMode::Off,
            SyncMode::Off,
            SyncMode::On,
            SyncMode::On,
            SyncMode::Strict,
            SyncMode::Quorum,
            SyncMode::Quorum,
        ]);
        let sync_node_count = r.range(1, (nodes as u64 - 1).max(1)) as usize;
        let failsafe = r.chance(30);
        let count = r.range(1, 4);
        let faults = (0..count).map(|_| fault(&mut r, nodes, ttl)).collect();
        Scenario {
            seed,
            nodes,
            ttl,
            loop_wait,
            retry_timeout,
            sync,
            sync_node_count,
            failsafe,
            faults,
        }
    }

    /// When the last fault ends, from the end of the bootstrap.
    pub fn heal_at(&self) -> Duration {
        self.faults
            .iter()
            .map(|f| f.at + f.lasts)
            .max()
            .unwrap_or_default()
    }

    /// How long after the faults end the cluster must have converged: a lease must run
    /// out (ttl), a few loops, a DCS timeout, and a re-clone or rewind with a slow disk.
    pub fn convergence_bound(&self) -> Duration {
        Duration::from_secs(2 * self.ttl + 4 * self.loop_wait + 2 * self.retry_timeout + 30)
    }
}

fn fault(r: &mut Rng, nodes: usize, ttl: u64) -> Fault {
    let at = r.millis(0, 60_000);
    // From a blip to well past a lease.
    let lasts = r.millis(200, (2 * ttl + 5) * 1000);
    let node = |r: &mut Rng| r.below(nodes as u64) as usize;
    let ep = |r: &mut Rng| {
        if r.chance(30) {
            Ep::Etcd
        } else if r.chance(15) {
            Ep::Client(r.below(CLIENTS as u64) as usize)
        } else {
            Ep::Node(r.below(nodes as u64) as usize)
        }
    };
    let kind = match r.below(11) {
        0 => FaultKind::AgentCrash(node(r)),
        1 => FaultKind::PgCrash(node(r)),
        2 => FaultKind::HostCrash(node(r)),
        3 => FaultKind::Freeze(node(r)),
        4 | 5 => {
            let side: Vec<usize> = (0..nodes).filter(|_| r.chance(40)).collect();
            let side = if side.is_empty() { vec![node(r)] } else { side };
            FaultKind::Partition {
                side,
                etcd_with_side: r.chance(30),
                clients_with_side: (0..CLIENTS).map(|_| r.chance(50)).collect(),
            }
        }
        6 | 7 => {
            let from = ep(r);
            let mut to = ep(r);
            while to == from {
                to = ep(r);
            }
            FaultKind::OneWay { from, to }
        }
        8 => {
            let a = ep(r);
            let mut b = ep(r);
            while b == a {
                b = ep(r);
            }
            FaultKind::Delay {
                a,
                b,
                extra: r.millis(50, 3000),
            }
        }
        9 => FaultKind::EtcdDown,
        _ => FaultKind::SlowDisk(node(r)),
    };
    Fault { at, lasts, kind }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} nodes={} ttl={} loop_wait={} retry_timeout={} sync={:?} sync_node_count={} failsafe={}",
            self.seed,
            self.nodes,
            self.ttl,
            self.loop_wait,
            self.retry_timeout,
            self.sync,
            self.sync_node_count,
            self.failsafe
        )?;
        for x in &self.faults {
            write!(
                f,
                "\n  fault at +{:.1}s for {:.1}s: {:?}",
                x.at.as_secs_f64(),
                x.lasts.as_secs_f64(),
                x.kind
            )?;
        }
        Ok(())
    }
}
