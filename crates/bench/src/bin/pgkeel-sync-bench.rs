//! The synchronous replication benchmark: many consecutive failovers under continuous writes,
//! per `synchronous_mode` (off, on, quorum), counting what synchronous replication exists to
//! prevent (acknowledged writes lost, writes acknowledged by a deposed leader) and what it
//! costs (write downtime per failover, pgbench throughput). Prints figures; asserts nothing.
//!
//! Per mode: a local cluster (3 nodes for off and on, 5 for quorum) with
//! `synchronous_mode: true` and `synchronous_node_count: 1` (on) or `synchronous_mode: quorum`
//! and `synchronous_node_count: 2` (quorum); then `--failovers` faults on the leader, kill and
//! freeze in turn, each once the cluster is healthy and (in a synchronous mode) the `/sync`
//! key names a standby. Writers run throughout:
//!
//! - the **client**: one INSERT at a time through the multi-host read-write DSN, as an
//!   application would (downtime is measured on its writes);
//! - one **probe** per node, connected to that node only with `target_session_attrs=read-write`,
//!   writing whenever the node accepts writes: a deposed leader that still accepts writes
//!   after it wakes up or restarts is caught by its probe (the client, already moved to the
//!   new leader, would not go back to it).
//!
//! Every acknowledged write records its id, when, and the port and timeline of the server that
//! acknowledged it.
//!
//!   cargo build --release -p pgkeel -p pgkeel-bench
//!   target/release/pgkeel-sync-bench --mode on --mode quorum --failovers 100
//!   target/release/pgkeel-sync-bench --pgbench-only --pgbench 60

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use pgkeel_bench::deposed::{self, Sighting};
use pgkeel_bench::leader_fault::LeaderFault;
use pgkeel_bench::pgbench;
use pgkeel_bench::ready::{ready, Ready};
use pgkeel_bench::setup::{self, Profile};
use pgkeel_bench::writer::{self, Ack, Journal, Writer};
use pgkeel_dcs::Etcd;
use pgkeel_localcluster::{LocalCluster, Options};

/// How long the cluster may take to become healthy and synchronous again.
const HEAL: Duration = Duration::from_secs(180);

#[derive(Parser, Debug)]
#[command(about = "failovers under writes per synchronous_mode, and pgbench (prints figures)")]
struct Args {
    /// synchronous_mode to measure, in turn (repeat the flag for several).
    #[arg(long, value_enum, default_values = ["off", "on", "quorum"])]
    mode: Vec<Mode>,
    /// Failovers per mode, the faults of --fault in turn.
    #[arg(long, default_value_t = 100)]
    failovers: usize,
    /// Faults the failovers take in turn.
    #[arg(long, value_enum, default_values = ["kill", "freeze"])]
    fault: Vec<LeaderFault>,
    /// Nodes per cluster (default: 3 for off and on, 5 for quorum).
    #[arg(long)]
    nodes: Option<usize>,
    /// Timing profile (fast: ttl 3 s, loop_wait 1 s; default: ttl 10 s, loop_wait 2 s).
    #[arg(long, value_enum, default_value = "fast")]
    profile: Profile,
    /// After the failovers, pgbench (scale 10, 8 clients, 2 threads, TPC-B-like) against the
    /// leader for this many seconds; 0 to skip.
    #[arg(long, default_value_t = 30)]
    pgbench: u64,
    /// Only pgbench, no failovers.
    #[arg(long)]
    pgbench_only: bool,
    /// Keep the working directory (it is always kept when something failed).
    #[arg(long)]
    keep: bool,
    /// Working directory (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Asynchronous replication.
    Off,
    /// `synchronous_mode: true`, `synchronous_node_count: 1` (FIRST 1).
    On,
    /// `synchronous_mode: quorum`, `synchronous_node_count: 2` (ANY 2).
    Quorum,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
            Mode::Quorum => "quorum",
        }
    }
    fn default_nodes(self) -> usize {
        match self {
            Mode::Off | Mode::On => 3,
            Mode::Quorum => 5,
        }
    }
    /// The `bootstrap.dcs` lines that select the mode.
    fn dcs(self) -> &'static str {
        match self {
            Mode::Off => "synchronous_mode: false\n",
            Mode::On => "synchronous_mode: true\nsynchronous_node_count: 1\n",
            Mode::Quorum => "synchronous_mode: quorum\nsynchronous_node_count: 2\n",
        }
    }
    fn synchronous(self) -> bool {
        self != Mode::Off
    }
}

/// One failover's figures.
struct Round {
    downtime: Duration,
}

/// Everything a mode's run shares.
struct Bench<'a> {
    args: &'a Args,
    mode: Mode,
    nodes: usize,
    c: LocalCluster,
    dcs: Etcd,
    /// The client's writes (downtime is measured on them).
    client: Arc<Journal>,
    /// The per-node probes' writes.
    probes: Arc<Journal>,
    /// Timelines seen writable in the DCS, besides what the writers saw.
    sightings: Vec<Sighting>,
    /// How many of each journal's acks were checked after an earlier failover.
    checked: (usize, usize),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    run(Args::parse()).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let pgkeel = setup::pgkeel_binary()?;
    let dir = setup::work_dir(args.dir.as_ref(), "pgkeel-sync-bench");
    let t = args.profile.timing();
    println!(
        "# pgkeel-sync-bench profile={:?} ttl={}s loop_wait={}s retry_timeout={}s failovers={} pgbench={}s, dir {}",
        args.profile,
        t.ttl,
        t.loop_wait,
        t.retry_timeout,
        if args.pgbench_only { 0 } else { args.failovers },
        args.pgbench,
        dir.display()
    );
    let mut failed = false;
    for &mode in &args.mode {
        if let Err(e) = bench_mode(&args, mode, &pgkeel, &dir.join(mode.name())).await {
            failed = true;
            println!("ERROR mode={}: {e:#}", mode.name());
        }
    }
    if failed {
        println!("# kept {} for the logs (agent.log per node)", dir.display());
        bail!("a benchmark failed");
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

async fn bench_mode(args: &Args, mode: Mode, pgkeel: &Path, dir: &Path) -> anyhow::Result<()> {
    let nodes = args.nodes.unwrap_or(mode.default_nodes());
    if nodes < 3 {
        bail!("--nodes {nodes}: a failover benchmark needs at least 3 nodes");
    }
    println!(
        "# mode={} nodes={nodes} bootstrap.dcs: {}, dir {}",
        mode.name(),
        mode.dcs().trim().replace('\n', ", "),
        dir.display()
    );
    let c = LocalCluster::start(Options {
        nodes,
        dir: dir.to_path_buf(),
        pgkeel: pgkeel.to_path_buf(),
        scope: format!("sync-bench-{}", mode.name()),
        timing: args.profile.timing(),
        dcs_extra: mode.dcs().into(),
        stallable_disks: args.fault.iter().any(|f| f.needs_stallable_disks()),
        ..Default::default()
    })?;
    let dcs = c.dcs().await.context("connecting to the cluster's etcd")?;
    let mut b = Bench {
        args,
        mode,
        nodes,
        c,
        dcs,
        client: Arc::default(),
        probes: Arc::default(),
        sightings: Vec::new(),
        checked: (0, 0),
    };
    let r = b.run().await;
    b.c.shutdown();
    r
}

impl Bench<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let ready = self.wait_ready().await?;
        println!(
            "# mode={}: ready after {:.1}s, leader {} on timeline {}, sync {:?}",
            self.mode.name(),
            started.elapsed().as_secs_f64(),
            ready.leader,
            ready.timeline,
            ready.sync
        );
        if !self.args.pgbench_only && self.args.failovers > 0 {
            self.failovers().await?;
        }
        if self.args.pgbench > 0 {
            self.pgbench().await?;
        }
        Ok(())
    }

    /// Waits until the cluster is healthy (one primary, every other member streaming on its
    /// timeline) and, in a synchronous mode, the `/sync` key is that leader's and names at
    /// least one standby.
    async fn wait_ready(&self) -> anyhow::Result<Ready> {
        let deadline = Instant::now() + HEAL;
        let mut last = String::from("etcd not read yet");
        while Instant::now() < deadline {
            match self.dcs.load().await {
                Ok(view) => match ready(&view, self.nodes, self.mode.synchronous()) {
                    Ok(r) => return Ok(r),
                    Err(why) => last = why,
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("cluster not ready after {HEAL:?}: {last}")
    }

    async fn failovers(&mut self) -> anyhow::Result<()> {
        writer::create_table(&self.c.rw_dsn()).await?;

        let ids = Arc::new(AtomicI64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = vec![tokio::spawn(Writer::standard(self.c.rw_dsn()).run(
            ids.clone(),
            self.client.clone(),
            stop.clone(),
        ))];
        for n in &self.c.nodes {
            writers.push(tokio::spawn(Writer::probe(&n.dsn()).run(
                ids.clone(),
                self.probes.clone(),
                stop.clone(),
            )));
        }

        let mut rounds = Vec::new();
        let mut error = None;
        for k in 1..=self.args.failovers {
            let fault = self.args.fault[(k - 1) % self.args.fault.len()];
            match self.failover(k, fault).await {
                Ok(r) => rounds.push(r),
                Err(e) => {
                    error = Some(e.context(format!("failover {k} ({fault:?})")));
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await?;
        }
        // Even after an error: report what was measured, then the error.
        let end = self.final_check(&rounds).await;
        match (error, end) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    async fn failover(&mut self, k: usize, fault: LeaderFault) -> anyhow::Result<Round> {
        let before = self.wait_ready().await?;
        let li = self.c.index_of(&before.leader).context("leader index")?;
        let old_port = self.c.nodes[li].pg_port;
        // Writes must be flowing through the client on this leader before the fault.
        let from = self.client.with_acks(<[_]>::len);
        self.wait_client_ack(from, |a| a.port == old_port)
            .await
            .context("the client wrote nothing on the leader")?;
        tokio::time::sleep(Duration::from_millis(300)).await;

        let from = self.client.with_acks(<[_]>::len);
        let t0 = Instant::now();
        fault.inject(&self.c, li);
        let new = self.c.wait_new_leader(&before.leader, HEAL).await;
        // Bring the old leader back whatever happened, so that it must rejoin.
        fault.undo(&mut self.c, li)?;
        let new = new?;
        if let Ok(view) = self.dcs.load().await {
            if let Some(tl) = view.member(&new).and_then(|m| m.timeline) {
                self.sightings.push((Instant::now(), tl));
            }
        }
        // Downtime: the client's last write before the fault → its first on a newer timeline.
        let first = self
            .wait_client_ack(from, |a| a.timeline > before.timeline)
            .await
            .context("the client wrote nothing on a new leader")?;
        let last = self
            .client
            .with_acks(|acks| acks.iter().rev().find(|a| a.at <= t0).map(|a| a.at))
            .unwrap_or(t0);
        let downtime = first.at - last;

        let after = self.wait_ready().await?;
        let (acked, lost) = self.check_new_acks(&after.leader).await?;
        let deposed = self.deposed(self.round_acks()).len();
        self.checked = (
            self.client.with_acks(<[_]>::len),
            self.probes.with_acks(<[_]>::len),
        );
        println!(
            "mode={} failover={k} fault={fault:?} {}->{} timeline {}->{} downtime={:.2}s acked={acked} lost={lost} deposed_acks={deposed} new_leader_in_sync={} sync_before={:?} sync_after={:?}",
            self.mode.name(),
            before.leader,
            new,
            before.timeline,
            after.timeline,
            downtime.as_secs_f64(),
            if self.mode.synchronous() {
                if before.sync.contains(&new) { "yes" } else { "NO" }
            } else {
                "-"
            },
            before.sync,
            after.sync,
        );
        Ok(Round { downtime })
    }

    /// Waits (up to [`HEAL`]) for the first write of the client's, from its `from`th on,
    /// that satisfies `want`.
    async fn wait_client_ack(
        &self,
        from: usize,
        want: impl Fn(&Ack) -> bool,
    ) -> anyhow::Result<Ack> {
        let deadline = Instant::now() + HEAL;
        loop {
            let found = self.client.with_acks(|acks| {
                acks[from.min(acks.len())..]
                    .iter()
                    .find(|a| want(a))
                    .copied()
            });
            if let Some(a) = found {
                return Ok(a);
            }
            if Instant::now() > deadline {
                bail!("none within {HEAL:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The acks not yet checked after an earlier failover.
    fn round_acks(&self) -> Vec<Ack> {
        let mut v = self.client.with_acks(|a| a[self.checked.0..].to_vec());
        v.extend(self.probes.with_acks(|a| a[self.checked.1..].to_vec()));
        v
    }

    fn all_acks(&self) -> Vec<Ack> {
        let mut v = self.client.with_acks(<[_]>::to_vec);
        v.extend(self.probes.with_acks(<[_]>::to_vec));
        v
    }

    /// Of `acks`, those acknowledged by a deposed leader (see `deposed.rs`). Signs of a
    /// timeline: the DCS, every read-write session and every ack.
    fn deposed(&self, acks: Vec<Ack>) -> Vec<Ack> {
        let mut seen = self.sightings.clone();
        for j in [&self.client, &self.probes] {
            seen.extend(j.sessions().iter().map(|s| (s.at, s.timeline)));
            j.with_acks(|acks| seen.extend(acks.iter().map(|a| (a.at, a.timeline))));
        }
        deposed::deposed(&acks, &seen)
    }

    /// This round's acks missing from `leader`: (acked, lost).
    async fn check_new_acks(&self, leader: &str) -> anyhow::Result<(usize, usize)> {
        let ids: Vec<i64> = self.round_acks().iter().map(|a| a.id).collect();
        let present = self.present(leader, &ids).await?;
        Ok((
            ids.len(),
            ids.iter().filter(|id| !present.contains(id)).count(),
        ))
    }

    /// Which of `ids` are in the table on `leader`.
    async fn present(&self, leader: &str, ids: &[i64]) -> anyhow::Result<HashSet<i64>> {
        let i = self.c.index_of(leader).context("leader index")?;
        writer::present(&self.c.nodes[i].dsn(), ids).await
    }

    /// Every acknowledged write against the final leader's table, and the SUMMARY line.
    async fn final_check(&self, rounds: &[Round]) -> anyhow::Result<()> {
        let ready = self.wait_ready().await?;
        let acks = self.all_acks();
        let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
        let present = self.present(&ready.leader, &ids).await?;
        let mut lost: Vec<Ack> = acks
            .iter()
            .filter(|a| !present.contains(&a.id))
            .copied()
            .collect();
        lost.sort_by_key(|a| a.id);
        let deposed = self.deposed(acks.clone());
        let mut d: Vec<f64> = rounds.iter().map(|r| r.downtime.as_secs_f64()).collect();
        d.sort_by(f64::total_cmp);
        let port_name = |port: u16| {
            self.c
                .nodes
                .iter()
                .find(|n| n.pg_port == port)
                .map_or(port.to_string(), |n| n.name.clone())
        };
        for a in lost.iter().take(10) {
            println!(
                "lost: id={} acknowledged by {} on timeline {}",
                a.id,
                port_name(a.port),
                a.timeline
            );
        }
        println!(
            "SUMMARY mode={} nodes={} profile={:?} failovers={}{} acked={} lost={} deposed_acks={} downtime median={:.2}s max={:.2}s probe_acked={} failed_statements={} final_leader={} timeline={}",
            self.mode.name(),
            self.nodes,
            self.args.profile,
            rounds.len(),
            if rounds.len() < self.args.failovers { " (incomplete)" } else { "" },
            acks.len(),
            lost.len(),
            deposed.len(),
            d.get(d.len() / 2).copied().unwrap_or(f64::NAN),
            d.last().copied().unwrap_or(f64::NAN),
            self.probes.with_acks(<[_]>::len),
            self.client.failed_statements.load(Ordering::Relaxed),
            ready.leader,
            ready.timeline,
        );
        Ok(())
    }

    /// pgbench against the leader; reports tps and whether leadership held meanwhile.
    async fn pgbench(&self) -> anyhow::Result<()> {
        let before = self.wait_ready().await?;
        let li = self.c.index_of(&before.leader).context("leader index")?;
        let port = self.c.nodes[li].pg_port;
        pgbench::init(port, 10).await?;
        let secs = self.args.pgbench.to_string();
        let out = pgbench::spawn(port, &["-c", "8", "-j", "2", "-T", &secs])?
            .wait_with_output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines().filter(|l| {
            l.contains("transactions actually processed")
                || l.contains("latency average")
                || l.contains("error")
        }) {
            println!("pgbench: {line}");
        }
        let after = self.dcs.load().await?;
        let held = after.leader_name() == Some(before.leader.as_str())
            && after.member(&before.leader).and_then(|m| m.timeline) == Some(before.timeline);
        println!(
            "PGBENCH mode={} nodes={} clients=8 seconds={secs} tps={} leader={} sync={:?} leadership_held={} exit={}",
            self.mode.name(),
            self.nodes,
            pgbench::tps(&text).map_or("none".into(), |t| format!("{t:.1}")),
            before.leader,
            before.sync,
            if held { "yes" } else { "NO" },
            out.status,
        );
        Ok(())
    }
}
