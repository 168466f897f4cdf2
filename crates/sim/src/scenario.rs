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
    pub family: Family,
    pub nodes: usize,
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    pub sync: SyncMode,
    pub sync_node_count: usize,
    pub failsafe: bool,
    /// `primary_hang_timeout` in `/config` (`None`: pgkeel's default, ttl/2).
    pub hang_timeout: Option<u64>,
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
    /// The postmaster and every backend stop (as under SIGSTOP) while the agent runs: the
    /// server acknowledges nothing, accepts no connection, streams nothing. SIGKILL works.
    PgHang(Target),
    /// The postmaster alone stops: open sessions (clients', walsenders) keep working and
    /// may keep committing; no new connection is accepted. SIGKILL works.
    PmHang(Target),
    /// The data directory's storage completes no I/O: no commit, no WAL written, no file
    /// read. Processes sleep uninterruptibly: a kill takes effect only when it ends.
    DiskStall(Target),
}

/// Which node a gray fault hits: a fixed one, or whichever holds the leader key when the
/// fault begins (so that the leader's gray failures are common whoever won the election).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Node(usize),
    Leader,
}

/// The three gray failures, for the availability bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gray {
    PgHang,
    PmHang,
    DiskStall,
}

impl FaultKind {
    pub fn gray(&self) -> Option<(Gray, Target)> {
        match self {
            FaultKind::PgHang(t) => Some((Gray::PgHang, *t)),
            FaultKind::PmHang(t) => Some((Gray::PmHang, *t)),
            FaultKind::DiskStall(t) => Some((Gray::DiskStall, *t)),
            _ => None,
        }
    }
}

/// The timing a gray failure's recovery depends on, as pgkeel derives it from the
/// configuration (see [`writable_again_within`]).
#[derive(Debug, Clone, Copy)]
pub struct GrayTiming {
    pub ttl: Duration,
    pub loop_wait: Duration,
    /// `primary_hang_timeout`.
    pub hang: Duration,
    /// One health probe's deadline.
    pub probe: Duration,
}

impl GrayTiming {
    /// From a node's configuration, through pgkeel's own derivations.
    pub fn of(cfg: &pgkeel_core::Config) -> GrayTiming {
        let dynamic = pgkeel_core::config::effective_dynamic(cfg, None);
        GrayTiming {
            ttl: dynamic.ttl,
            loop_wait: dynamic.loop_wait,
            hang: dynamic.hang_timeout(),
            probe: pgkeel_agent::pg_settings(cfg, &dynamic).probe_timeout,
        }
    }
}

/// How long `pgkeel_pg::Pg::kill` gives an immediate shutdown before SIGKILL (its
/// `QUIT_GRACE`); processes asleep on a stalled disk then have SIGKILL pending, which the
/// adapter counts as finished.
pub const QUIT_GRACE: Duration = Duration::from_millis(500);

/// The README's bound: after a gray failure of the leader begins (and lasts longer than
/// `primary_hang_timeout`), a writable primary exists again within this much, as long as
/// nothing else fails meanwhile. Term by term, from the failure's start:
///
/// - up to `loop_wait` until the first probe that goes unanswered (the loop was waiting);
///   silence counts from that probe's start;
/// - that probe's deadline: when it is the whole `primary_hang_timeout` (pgkeel's probes),
///   the loop decides as soon as it ends; a shorter deadline takes more probes, and the
///   first to end with the silence past the bound ends at most one loop (a wait and a
///   probe) after the bound is reached;
/// - PostgreSQL hung (all of it, or the postmaster alone): the kill works at once (SIGKILL
///   reaches stopped processes), the key is released, a replica races and promotes: 2 s;
/// - storage stalled: a file access of the loop may be stuck up to one probe deadline
///   first; then the kill takes [`QUIT_GRACE`] (the SIGKILL stays pending in
///   uninterruptible sleep, which counts as finished), the key is released; then 2 s as
///   above.
pub fn writable_again_within(gray: Gray, t: &GrayTiming) -> Duration {
    let detected = if t.probe >= t.hang {
        t.loop_wait + t.probe
    } else {
        t.loop_wait + t.hang + t.probe + t.loop_wait
    };
    let promoted = Duration::from_secs(2);
    match gray {
        Gray::PgHang | Gray::PmHang => detected + promoted,
        Gray::DiskStall => detected + t.probe + QUIT_GRACE + promoted,
    }
}

/// [`writable_again_within`] in words, for a failure's report.
pub fn writable_again_formula(gray: Gray) -> &'static str {
    match gray {
        Gray::PgHang | Gray::PmHang => "primary_hang_timeout + probe deadline + 2 loop_wait + 2s",
        Gray::DiskStall => {
            "primary_hang_timeout + 2 probe deadlines + 2 loop_wait + quit grace 0.5s + 2s"
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// From the end of the initial bootstrap.
    pub at: Duration,
    pub lasts: Duration,
    pub kind: FaultKind,
}

/// How a seed's scenario is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Any fault, gray failures included (`pgkeel-sim --seeds`).
    Mixed,
    /// The generator as it was before gray failures: the seeds that found bugs then replay
    /// the same runs.
    Classic,
    /// At least one gray failure of the leader, often alone.
    GrayLeader,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Mixed => "mixed",
            Family::Classic => "classic",
            Family::GrayLeader => "gray-leader",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        [Family::Mixed, Family::Classic, Family::GrayLeader]
            .into_iter()
            .find(|f| f.name() == s)
    }
}

impl Scenario {
    pub fn from_seed(seed: u64) -> Scenario {
        Scenario::generate(seed, Family::Mixed)
    }

    pub fn generate(seed: u64, family: Family) -> Scenario {
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
        let mut faults: Vec<Fault> = (0..count).map(|_| fault(&mut r, nodes, ttl)).collect();
        // Gray failures are drawn after everything the classic generator drew, so a seed's
        // other faults are the same in every family.
        let mut hang_timeout = None;
        match family {
            Family::Classic => {}
            Family::Mixed => {
                hang_timeout = r.chance(30).then(|| *r.pick(&[1, 2, 3, 5, 8]));
                let h = Hang::new(ttl, loop_wait, hang_timeout);
                if r.chance(40) {
                    for _ in 0..=u64::from(r.chance(25)) {
                        let t = target(&mut r, nodes, 70);
                        faults.push(gray_fault(&mut r, t, &h, 60_000));
                    }
                }
            }
            Family::GrayLeader => {
                let mut r = Rng::new(seed ^ 0x6A11_EAD5_0000_0000);
                hang_timeout = r.chance(30).then(|| *r.pick(&[1, 2, 3, 5, 8]));
                let h = Hang::new(ttl, loop_wait, hang_timeout);
                // Half alone (so the availability bound applies), half among other faults.
                if r.chance(50) {
                    faults.clear();
                } else {
                    faults.truncate(r.range(1, 2) as usize);
                }
                // Early in the run: what follows it is what matters, and short runs keep a few
                // hundred seeds affordable in `cargo test`.
                faults.push(gray_fault(&mut r, Target::Leader, &h, 20_000));
                if r.chance(25) {
                    let t = target(&mut r, nodes, 30);
                    faults.push(gray_fault(&mut r, t, &h, 40_000));
                }
            }
        }
        Scenario {
            seed,
            family,
            nodes,
            ttl,
            loop_wait,
            retry_timeout,
            sync,
            sync_node_count,
            failsafe,
            hang_timeout,
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

/// The hang bound a scenario's agents use, in milliseconds, and what the draws need.
struct Hang {
    ms: u64,
    ttl_ms: u64,
    loop_ms: u64,
}

impl Hang {
    /// pgkeel's default is ttl/2, never below 2 s (`DynamicConfig::hang_timeout`); an
    /// explicit value may go down to 1 s.
    fn new(ttl: u64, loop_wait: u64, explicit: Option<u64>) -> Hang {
        Hang {
            ms: explicit.map_or((ttl * 500).max(2000), |s| s * 1000),
            ttl_ms: ttl * 1000,
            loop_ms: loop_wait * 1000,
        }
    }
}

fn target(r: &mut Rng, nodes: usize, leader_percent: u64) -> Target {
    if r.chance(leader_percent) {
        Target::Leader
    } else {
        Target::Node(r.below(nodes as u64) as usize)
    }
}

/// A gray failure starting within `within_ms`: shorter than the hang bound (the rule must
/// not fire), around it (either outcome), or well past it (it must fire; for a stalled
/// disk, sometimes past the lease's expiry too).
fn gray_fault(r: &mut Rng, t: Target, h: &Hang, within_ms: u64) -> Fault {
    let at = r.millis(0, within_ms);
    let kind = match r.below(3) {
        0 => FaultKind::PgHang(t),
        1 => FaultKind::PmHang(t),
        _ => FaultKind::DiskStall(t),
    };
    let stall = matches!(kind, FaultKind::DiskStall(_));
    let past = h.ms + h.ms / 2 + h.loop_ms + 2000;
    let lasts = match r.below(100) {
        0..=29 => r.millis(200, h.ms * 4 / 5),
        30..=44 => r.millis(h.ms * 4 / 5, past),
        _ if stall => r.millis(past, 2 * (h.ttl_ms + past)),
        _ => r.millis(past, past + 2 * h.ttl_ms + 5000),
    };
    Fault { at, lasts, kind }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} family={} nodes={} ttl={} loop_wait={} retry_timeout={} sync={:?} sync_node_count={} failsafe={} primary_hang_timeout={}",
            self.seed,
            self.family.name(),
            self.nodes,
            self.ttl,
            self.loop_wait,
            self.retry_timeout,
            self.sync,
            self.sync_node_count,
            self.failsafe,
            self.hang_timeout
                .map_or("default".to_string(), |s| format!("{s}s"))
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
