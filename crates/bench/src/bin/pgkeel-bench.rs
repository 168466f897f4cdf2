//! The failover benchmark: a local cluster like the demo, continuous writes through the
//! multi-host DSN, a fault injected into the leader, and the figures that matter: write
//! downtime (fault → first acknowledged write on the new leader), acknowledged writes lost,
//! and each agent's resident memory. Prints figures; asserts nothing.
//!
//!   cargo build --release -p pgkeel -p pgkeel-bench
//!   target/release/pgkeel-bench --profile default --trials 5
//!   target/release/pgkeel-bench --profile fast --trials 5 --pgbench 600

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use pgkeel_bench::leader_fault::LeaderFault;
use pgkeel_bench::pgbench;
use pgkeel_bench::setup::{self, Profile};
use pgkeel_bench::writer::{self, Journal, Writer};
use pgkeel_localcluster::{LocalCluster, Options};

#[derive(Parser, Debug)]
#[command(about = "pgkeel failover benchmark (prints figures)")]
struct Args {
    /// Timing profile: pgkeel's defaults (ttl 10 s) or the fast profile (ttl 3 s).
    #[arg(long, value_enum, default_value = "default")]
    profile: Profile,
    /// Faults to inject, in turn.
    #[arg(long, value_enum, default_values = ["kill", "freeze"])]
    fault: Vec<LeaderFault>,
    /// Trials per fault.
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// After the trials, run pgbench at full load for this many seconds and report failovers.
    #[arg(long, default_value_t = 0)]
    pgbench: u64,
    /// Working directory (default: a new directory under /tmp, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Trial {
    downtime: Duration,
    acked: usize,
    lost: usize,
    rss_kb: Vec<u64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    run(Args::parse()).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let timing = args.profile.timing();
    let pgkeel = setup::pgkeel_binary()?;
    let keep = args.dir.is_some();
    let dir = setup::work_dir(args.dir.as_ref(), "pgkeel-bench");
    println!(
        "# pgkeel-bench profile={:?} ttl={}s loop_wait={}s retry_timeout={}s, 3 nodes, dir {}",
        args.profile,
        timing.ttl,
        timing.loop_wait,
        timing.retry_timeout,
        dir.display()
    );
    let mut cluster = LocalCluster::start(Options {
        nodes: 3,
        dir: dir.clone(),
        pgkeel,
        scope: "bench".into(),
        timing,
        rest_auth: None,
        stallable_disks: args.fault.iter().any(|f| f.needs_stallable_disks()),
        ..Default::default()
    })?;
    let result = trials(&mut cluster, &args).await;
    cluster.shutdown();
    drop(cluster);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn trials(c: &mut LocalCluster, args: &Args) -> anyhow::Result<()> {
    c.wait_healthy(3, Duration::from_secs(180)).await?;
    writer::create_table(&c.rw_dsn()).await?;
    let ids = Arc::new(AtomicI64::new(1));
    for &fault in &args.fault {
        let mut results = Vec::new();
        for t in 1..=args.trials {
            let r = trial(c, fault, &ids).await?;
            println!(
                "profile={:?} fault={:?} trial={t} downtime={:.2}s acked={} lost={} agent_rss_kb={:?}",
                args.profile,
                fault,
                r.downtime.as_secs_f64(),
                r.acked,
                r.lost,
                r.rss_kb
            );
            results.push(r);
        }
        summary(args.profile, fault, &results);
    }
    if args.pgbench > 0 {
        pgbench(c, args).await?;
    }
    Ok(())
}

async fn trial(
    c: &mut LocalCluster,
    fault: LeaderFault,
    ids: &Arc<AtomicI64>,
) -> anyhow::Result<Trial> {
    let leader = c.wait_healthy(3, Duration::from_secs(180)).await?;
    let li = c.index_of(&leader).context("leader index")?;
    let old_port = c.nodes[li].pg_port;

    let journal = Arc::new(Journal::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writer =
        tokio::spawn(Writer::standard(c.rw_dsn()).run(ids.clone(), journal.clone(), stop.clone()));
    // Let writes flow before the fault.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kb: Vec<u64> = (0..c.nodes.len())
        .filter_map(|i| c.agent_rss_kb(i))
        .collect();

    let t0 = Instant::now();
    fault.inject(c, li);
    // Downtime ends at the first write acknowledged by another server.
    let deadline = t0 + Duration::from_secs(120);
    let downtime = loop {
        let first = journal.with_acks(|acks| {
            acks.iter()
                .find(|a| a.at > t0 && a.port != old_port)
                .map(|a| a.at)
        });
        if let Some(at) = first {
            break at - t0;
        }
        if Instant::now() > deadline {
            bail!("no write succeeded on a new leader within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await?;

    // Bring the old leader back: restart its agent, or wake it.
    fault.undo(c, li)?;
    let new_leader = c.wait_healthy(3, Duration::from_secs(180)).await?;
    let ni = c.index_of(&new_leader).context("new leader index")?;

    // Every acknowledged write must be on the new leader.
    let ids: Vec<i64> = journal.with_acks(|acks| acks.iter().map(|a| a.id).collect());
    let present = writer::present(&c.nodes[ni].dsn(), &ids).await?;
    Ok(Trial {
        downtime,
        acked: ids.len(),
        lost: ids.len() - present.len(),
        rss_kb,
    })
}

fn summary(profile: Profile, fault: LeaderFault, r: &[Trial]) {
    if r.is_empty() {
        return;
    }
    let mut d: Vec<f64> = r.iter().map(|t| t.downtime.as_secs_f64()).collect();
    d.sort_by(f64::total_cmp);
    let mut lost: Vec<usize> = r.iter().map(|t| t.lost).collect();
    lost.sort_unstable();
    let rss_max = r
        .iter()
        .flat_map(|t| t.rss_kb.iter())
        .max()
        .copied()
        .unwrap_or(0);
    let mut rss: Vec<u64> = r.iter().flat_map(|t| t.rss_kb.iter().copied()).collect();
    rss.sort_unstable();
    println!(
        "SUMMARY profile={profile:?} fault={fault:?} trials={} downtime median={:.2}s max={:.2}s lost median={} max={} agent_rss median={:.1}MB max={:.1}MB",
        r.len(),
        d[d.len() / 2],
        d[d.len() - 1],
        lost[lost.len() / 2],
        lost[lost.len() - 1],
        rss[rss.len() / 2] as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
}

/// pgbench at full load against the leader; the profile must not fail over meanwhile.
async fn pgbench(c: &mut LocalCluster, args: &Args) -> anyhow::Result<()> {
    let leader = c.wait_healthy(3, Duration::from_secs(180)).await?;
    let before = c.load().await?;
    let tl_before = before.member(&leader).and_then(|m| m.timeline);
    let li = c.index_of(&leader).context("leader index")?;
    let port = c.nodes[li].pg_port;
    pgbench::init(port, 10).await?;
    let secs = args.pgbench.to_string();
    println!(
        "# pgbench -c 8 -j 2 -T {secs} against {leader} ({:?} profile)",
        args.profile
    );
    let started = Instant::now();
    let child = pgbench::spawn(port, &["-c", "8", "-j", "2", "-T", &secs, "-P", "60"])?;
    let run = child.wait_with_output();
    tokio::pin!(run);
    // Count every change of leader or timeline while pgbench runs.
    let mut seen = (Some(leader.clone()), tl_before);
    let mut failovers = 0u32;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let run = loop {
        tokio::select! {
            out = &mut run => break out?,
            _ = tick.tick() => {}
        }
        if let Ok(now) = c.load().await {
            let l = now.leader_name().map(str::to_string);
            let tl = l
                .as_deref()
                .and_then(|l| now.member(l))
                .and_then(|m| m.timeline);
            if l.is_some() && (l, tl) != seen {
                failovers += 1;
                println!(
                    "pgbench: leadership changed to {:?} on timeline {tl:?}",
                    now.leader_name()
                );
                seen = (now.leader_name().map(str::to_string), tl);
            }
        }
    };
    let after = c.load().await?;
    let tl_after = after
        .leader_name()
        .and_then(|l| after.member(l))
        .and_then(|m| m.timeline);
    for line in String::from_utf8_lossy(&run.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&run.stderr).lines())
    {
        if line.starts_with("progress")
            || line.starts_with("tps")
            || line.contains("transactions actually processed")
            || line.contains("latency average")
        {
            println!("pgbench: {line}");
        }
    }
    println!(
        "PGBENCH profile={:?} duration={:.0}s exit={} leader_before={leader} leader_after={} timeline {:?} -> {:?} failovers={failovers}",
        args.profile,
        started.elapsed().as_secs_f64(),
        run.status,
        after.leader_name().unwrap_or("none"),
        tl_before,
        tl_after,
    );
    Ok(())
}
