//! Deterministic simulation of a pgkeel cluster.
//!
//! Each agent is the real one: `pgkeel_agent::run_with`, the same loop, lease keeper,
//! failsafe task and decision core that production runs, over in-memory ports (see `env`)
//! instead of etcd, PostgreSQL and HTTP. Time is tokio's paused clock: the runtime has one
//! thread and jumps to the next timer whenever every task waits, so a run of minutes takes
//! milliseconds and, given the seed, happens the same way every time.
//!
//! Why not turmoil: the agent talks to etcd over gRPC and to peers over HTTP; simulating
//! those byte streams would test tonic and hyper, not pgkeel. The ports are where pgkeel's
//! own behaviour begins, so the network is simulated at that level (per request: loss,
//! delay, one-way cuts, frozen receivers).
//!
//! One seed decides the cluster size, timing, synchronous mode and a fault schedule (see
//! `scenario`). The invariants (see `check`) are checked at every step; the run ends when
//! the cluster has converged after the last fault, or fails.

pub mod check;
mod client;
mod env;
pub mod etcd;
mod faults;
pub mod postgres;
pub mod rng;
pub mod scenario;
mod world;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgkeel_agent::{run_with, Io};
use pgkeel_core::Config;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use scenario::{writable_again_within, Family, Gray, GrayTiming, Scenario, SyncMode};
use world::{Api, World};

/// What one seed did.
#[derive(Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    pub violations: Vec<String>,
    /// From the end of the last fault to one leader with every node streaming from it.
    pub convergence: Option<Duration>,
    pub acked: usize,
    /// Acknowledged writes missing from the final leader (allowed only when asynchronous).
    pub lost: usize,
    /// Gray failures of the leader the availability bound was checked for: the kind, how
    /// long until a writable primary, and the bound.
    pub recoveries: Vec<(Gray, Duration, Duration)>,
    /// The world's events (faults, server state changes, leader key changes).
    pub events: Vec<String>,
    /// The agents' own logs, when asked for.
    pub log: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The seed, the scenario, what broke, and the last events before it.
    pub fn report(&self, last_events: usize) -> String {
        let mut out = format!("FAILED {}\n", self.scenario);
        for v in &self.violations {
            out.push_str(&format!("  {v}\n"));
        }
        let from = self.events.len().saturating_sub(last_events);
        out.push_str(&format!("  events (last {}):\n", self.events.len() - from));
        for e in &self.events[from..] {
            out.push_str(&format!("    {e}\n"));
        }
        let family = match self.scenario.family {
            scenario::Family::Mixed => String::new(),
            f => format!(" --family {}", f.name()),
        };
        out.push_str(&format!(
            "  replay: cargo run --release -p pgkeel-sim -- --seed {}{family} --log\n",
            self.scenario.seed
        ));
        out
    }
}

/// Runs one seed (of the mixed family) to the end. `log`: capture the agents' logs too
/// (slower).
pub fn run_seed(seed: u64, log: bool) -> Outcome {
    run_scenario(Scenario::from_seed(seed), log)
}

/// Runs one scenario to the end.
pub fn run_scenario(scenario: Scenario, log: bool) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    // The agent's loop future is not `Send` (nor needs to be): agents run on a LocalSet.
    let run = || {
        let local = tokio::task::LocalSet::new();
        rt.block_on(local.run_until(simulate(scenario.clone())))
    };
    let mut outcome = if log {
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LogSink(sink.clone()))
            .with_ansi(false)
            .with_timer(VirtualTime(tokio::time::Instant::now()))
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, run)
    } else {
        run()
    };
    outcome.log =
        String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    outcome
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines stamped with virtual seconds since the start.
struct VirtualTime(tokio::time::Instant);

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let t = tokio::time::Instant::now().duration_since(self.0);
        write!(w, "{:>9.3}s", t.as_secs_f64())
    }
}

/// The agents of the run: each node's config and its running task.
pub(crate) struct Agents {
    world: Arc<World>,
    configs: Vec<Config>,
    tasks: Mutex<Vec<Option<JoinHandle<()>>>>,
}

impl Agents {
    pub fn start(self: &Arc<Self>, i: usize) {
        let name = self.world.names[i].clone();
        let snap = pgkeel_api::shared(pgkeel_api::NodeSnapshot::new(&name, "sim"));
        let inbox = Arc::new(pgkeel_api::FailsafeInbox::new());
        let (tx, rx) = pgkeel_api::admin_channel();
        {
            let mut s = self.world.lock();
            s.nodes[i].api = Some(Api {
                snap: snap.clone(),
                inbox: inbox.clone(),
                _admin: tx,
            });
            s.note(format!("{name} agent started"));
        }
        let env = Arc::new(env::SimEnv {
            world: self.world.clone(),
            node: i,
        });
        let io = Io {
            snap,
            admin: rx,
            failsafe_inbox: inbox,
            config_path: None,
        };
        let agent = run_with(
            env,
            self.configs[i].clone(),
            io,
            pgkeel_agent::Stop::default(),
        );
        let span = tracing::info_span!("agent", node = %name);
        let task = tokio::task::spawn_local(
            async move {
                if let Err(e) = agent.await {
                    tracing::error!("agent stopped: {e:#}");
                }
            }
            .instrument(span),
        );
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(task);
    }

    /// kill -9 of the agent: its tasks stop where they are; PostgreSQL is untouched.
    pub fn crash(&self, i: usize) {
        if let Some(t) = self.tasks.lock().unwrap_or_else(|e| e.into_inner())[i].take() {
            t.abort();
        }
        let mut s = self.world.lock();
        s.nodes[i].api = None;
        s.note(format!("node{} agent killed", i + 1));
    }
}

async fn simulate(scenario: Scenario) -> Outcome {
    let world = World::new(scenario.clone());
    let configs = match (0..scenario.nodes)
        .map(|i| faults::config(&scenario, i))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                scenario,
                violations: vec![format!("the generated configuration is invalid: {e}")],
                convergence: None,
                acked: 0,
                lost: 0,
                recoveries: Vec::new(),
                events: Vec::new(),
                log: String::new(),
            }
        }
    };
    let agents = Arc::new(Agents {
        world: world.clone(),
        configs,
        tasks: Mutex::new((0..scenario.nodes).map(|_| None).collect()),
    });
    for i in 0..scenario.nodes {
        agents.start(i);
    }
    let ticker = tokio::spawn(faults::physics(world.clone()));
    for k in 0..scenario::CLIENTS {
        tokio::spawn(client::run(world.clone(), k));
    }
    // The run ends at the first violation (its events are then the ones that matter).
    let (convergence, lost) = tokio::select! {
        biased;
        r = faults::drive(&world, &agents) => r,
        _ = faults::first_violation(&world) => (None, 0),
    };
    ticker.abort();
    let mut s = world.lock();
    Outcome {
        scenario,
        violations: std::mem::take(&mut s.check.violations),
        convergence,
        acked: s.check.acks.len(),
        lost,
        recoveries: std::mem::take(&mut s.recoveries),
        events: std::mem::take(&mut s.trace),
        log: String::new(),
    }
}
