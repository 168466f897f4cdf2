//! The switchover benchmark: a planned switchover under continuous writes through the
//! multi-host DSN, pgkeel side by side with Patroni on the same machine in the same run.
//!
//! For each system: a 3-node cluster (its own etcd, PostgreSQL 15 on loopback), one INSERT at
//! a time through the multi-host read-write DSN (each host in turn with a 300 ms limit, as
//! libpq's `connect_timeout` does), then per trial `<ctl> switchover --candidate X --force` and:
//!
//! - **downtime**: last write acknowledged by the old leader → first write acknowledged by
//!   the new one;
//! - **failed**: statements sent that did not succeed (error or no answer within 500 ms),
//!   and multi-host connection attempts that found no writable server;
//! - **lost**: acknowledged writes missing from the new leader once the cluster has healed.
//!
//! pgkeel runs with `Timing::default()` (ttl 10 s, loop_wait 2 s, retry_timeout 3 s) and is
//! driven by `pgkeel -c <leader's config> switchover`; Patroni runs with its own defaults
//! (ttl 30 s, loop_wait 10 s, retry_timeout 10 s) as the `postgres` user and is driven by
//! `patronictl -c <config> switchover --leader L --candidate X --force`. Prints figures;
//! asserts nothing.
//!
//!   python3 -m venv /opt/patroni-venv && /opt/patroni-venv/bin/pip install 'patroni[etcd3,psycopg3]==4.1.5'
//!   chmod -R a+rX /opt/patroni-venv
//!   cargo build --release -p pgkeel -p pgkeel-bench && target/release/pgkeel-switchover-bench --trials 5

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use pgkeel_bench::setup;
use pgkeel_bench::writer::{self, Journal, Writer};
use pgkeel_localcluster::{EtcdServer, LocalCluster, Options, Timing};

const PASSWORD: &str = pgkeel_localcluster::SUPERUSER_PASSWORD;
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

#[derive(Parser, Debug)]
#[command(about = "planned switchover under writes: pgkeel vs Patroni (prints figures)")]
struct Args {
    /// Systems to measure, in turn.
    #[arg(long, value_enum, default_values = ["pgkeel", "patroni"])]
    system: Vec<System>,
    /// Switchovers per system.
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// The Patroni virtualenv (readable by the `postgres` user).
    #[arg(long, default_value = "/opt/patroni-venv")]
    patroni_venv: PathBuf,
    /// Working directory, kept at the end (default: a new directory under /tmp, removed at
    /// the end unless something failed).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum System {
    Pgkeel,
    Patroni,
}

struct Trial {
    downtime: Duration,
    failed_statements: u64,
    failed_connects: u64,
    acked: usize,
    lost: usize,
}

/// What a trial needs from a cluster, whichever system runs it.
trait Cluster {
    /// Waits until one leader runs and every other member streams from it; returns the
    /// leader's name.
    async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<String>;
    fn names(&self) -> Vec<String>;
    fn pg_port(&self, name: &str) -> u16;
    fn rw_dsn(&self) -> String;
    /// The switchover command line (program, arguments).
    fn switchover_cmd(&self, leader: &str, candidate: &str) -> (PathBuf, Vec<String>);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    run(Args::parse()).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let keep = args.dir.is_some();
    let dir = setup::work_dir(args.dir.as_ref(), "pgkeel-switchover-bench");
    prepare_dir(&dir)?;
    println!(
        "# pgkeel-switchover-bench: 3 nodes per system, {} switchovers each, dir {}",
        args.trials,
        dir.display()
    );
    let mut medians = Vec::new();
    let mut failed = false;
    for &system in &args.system {
        let r = match system {
            System::Pgkeel => bench_pgkeel(&args, &dir.join("pgkeel")).await,
            System::Patroni => bench_patroni(&args, &dir.join("patroni")).await,
        };
        match r {
            Ok(results) => {
                if let Some(m) = summary(system, &results) {
                    medians.push((system, m));
                }
            }
            Err(e) => {
                failed = true;
                println!("ERROR system={system:?}: {e:#}");
            }
        }
    }
    if let (Some((_, k)), Some((_, p))) = (
        medians.iter().find(|m| m.0 == System::Pgkeel),
        medians.iter().find(|m| m.0 == System::Patroni),
    ) {
        println!(
            "RATIO median downtime pgkeel/patroni = {:.2}/{:.2} = {:.2} (target <= 0.50)",
            k,
            p,
            k / p
        );
    }
    if failed {
        println!("# kept {} for the logs", dir.display());
        bail!("a benchmark failed");
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// pgkeel

struct Pgkeel {
    c: LocalCluster,
    ctl: PathBuf,
}

impl Cluster for Pgkeel {
    async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<String> {
        self.c.wait_healthy(3, timeout).await
    }
    fn names(&self) -> Vec<String> {
        self.c.nodes.iter().map(|n| n.name.clone()).collect()
    }
    fn pg_port(&self, name: &str) -> u16 {
        self.c.nodes[self.c.index_of(name).unwrap_or(0)].pg_port
    }
    fn rw_dsn(&self) -> String {
        self.c.rw_dsn()
    }
    fn switchover_cmd(&self, leader: &str, candidate: &str) -> (PathBuf, Vec<String>) {
        let cfg = &self.c.nodes[self.c.index_of(leader).unwrap_or(0)].config;
        (
            self.ctl.clone(),
            vec![
                "-c".into(),
                cfg.display().to_string(),
                "switchover".into(),
                "--candidate".into(),
                candidate.into(),
                "--force".into(),
            ],
        )
    }
}

async fn bench_pgkeel(args: &Args, dir: &Path) -> anyhow::Result<Vec<Trial>> {
    let pgkeel = setup::pgkeel_binary()?;
    let timing = Timing::default();
    println!(
        "# pgkeel {} ttl={}s loop_wait={}s retry_timeout={}s, dir {}",
        env!("CARGO_PKG_VERSION"),
        timing.ttl,
        timing.loop_wait,
        timing.retry_timeout,
        dir.display()
    );
    let c = LocalCluster::start(Options {
        nodes: 3,
        dir: dir.to_path_buf(),
        pgkeel: pgkeel.clone(),
        scope: "swbench".into(),
        timing,
        rest_auth: None,
        ..Default::default()
    })?;
    let mut cluster = Pgkeel { c, ctl: pgkeel };
    let r = trials(&cluster, System::Pgkeel, args.trials).await;
    cluster.c.shutdown();
    r
}

// ---------------------------------------------------------------------------------------
// Patroni

struct PatroniNode {
    name: String,
    pg_port: u16,
    config: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
}

struct Patroni {
    etcd: EtcdServer,
    nodes: Vec<PatroniNode>,
    patronictl: PathBuf,
}

impl Patroni {
    fn start(venv: &Path, dir: &Path) -> anyhow::Result<Patroni> {
        let patroni = venv.join("bin/patroni");
        let patronictl = venv.join("bin/patronictl");
        if !patroni.exists() {
            bail!(
                "{} not found: python3 -m venv {0} && {0}/bin/pip install 'patroni[etcd3,psycopg3]==4.1.5'",
                venv.display()
            );
        }
        let pg = nix::unistd::User::from_name("postgres")?
            .context("no `postgres` OS user (PostgreSQL refuses to run as root)")?;
        prepare_dir(dir)?;
        let etcd = EtcdServer::start(&dir.join("etcd"))?;
        let mut cluster = Patroni {
            etcd,
            nodes: Vec::new(),
            patronictl,
        };
        for i in 1..=3 {
            let name = format!("pnode{i}");
            let ndir = dir.join(&name);
            prepare_dir(&ndir)?;
            nix::unistd::chown(&ndir, Some(pg.uid), Some(pg.gid))?;
            let (pg_port, api_port) = (free_port()?, free_port()?);
            let config = ndir.join("patroni.yml");
            let data_dir = ndir.join("data");
            std::fs::write(
                &config,
                patroni_yaml(
                    &name,
                    api_port,
                    pg_port,
                    &cluster.etcd.endpoint.to_string(),
                    &ndir,
                ),
            )?;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644))?;
            cluster.nodes.push(PatroniNode {
                name,
                pg_port,
                config,
                data_dir,
                child: None,
            });
        }
        for n in &mut cluster.nodes {
            let log = std::fs::File::create(n.config.with_file_name("patroni.log"))?;
            let child = std::process::Command::new(&patroni)
                .arg(&n.config)
                .uid(pg.uid.as_raw())
                .gid(pg.gid.as_raw())
                .current_dir(n.config.parent().unwrap_or(Path::new("/")))
                .env("HOME", &pg.dir)
                .env("USER", "postgres")
                .env("LOGNAME", "postgres")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {} as postgres", patroni.display()))?;
            n.child = Some(child);
        }
        Ok(cluster)
    }

    async fn list(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = tokio::process::Command::new(&self.patronictl)
            .arg("-c")
            .arg(&self.nodes[0].config)
            .args(["list", "-f", "json"])
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "patronictl list: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// SIGTERM to every Patroni (it stops its PostgreSQL), then whatever is left.
    fn shutdown(&mut self) {
        for n in &self.nodes {
            if let Some(c) = &n.child {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match c.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() > deadline => {
                            let _ = c.kill();
                            let _ = c.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            }
            // A postmaster left behind (Patroni killed): stop it the hard way.
            if let Some(pid) = postmaster_pid(&n.data_dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGQUIT,
                );
            }
        }
        self.etcd.stop();
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let s = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = s.lines().next()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn patroni_yaml(name: &str, api: u16, pg: u16, etcd: &str, dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"scope: swbench-patroni
namespace: /service
name: {name}

restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}

etcd3:
  hosts:
    - {etcd}

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 100
        shared_buffers: 32MB
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums

postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {PG_BIN}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {PASSWORD}
    replication:
      username: replicator
      password: {PASSWORD}-replication
  parameters:
    unix_socket_directories: '{dir}'
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
"#
    )
}

impl Cluster for Patroni {
    async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not listed yet");
        while Instant::now() < deadline {
            match self.list().await {
                Ok(members) => match patroni_healthy(&members) {
                    Ok(l) => return Ok(l),
                    Err(why) => last = why,
                },
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("Patroni cluster not healthy after {timeout:?}: {last}")
    }
    fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
    fn pg_port(&self, name: &str) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map_or(0, |n| n.pg_port)
    }
    fn rw_dsn(&self) -> String {
        let ports: Vec<String> = self.nodes.iter().map(|n| n.pg_port.to_string()).collect();
        format!(
            "host=127.0.0.1,127.0.0.1,127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres target_session_attrs=read-write",
            ports.join(",")
        )
    }
    fn switchover_cmd(&self, leader: &str, candidate: &str) -> (PathBuf, Vec<String>) {
        let cfg = &self
            .nodes
            .iter()
            .find(|n| n.name == leader)
            .unwrap_or(&self.nodes[0])
            .config;
        (
            self.patronictl.clone(),
            vec![
                "-c".into(),
                cfg.display().to_string(),
                "switchover".into(),
                "--leader".into(),
                leader.into(),
                "--candidate".into(),
                candidate.into(),
                "--force".into(),
            ],
        )
    }
}

/// `patronictl list -f json`: 3 members, one `Leader` running, the others streaming on the
/// leader's timeline.
fn patroni_healthy(members: &[serde_json::Value]) -> Result<String, String> {
    let s = |m: &serde_json::Value, k: &str| {
        m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    };
    let leaders: Vec<&serde_json::Value> = members
        .iter()
        .filter(|m| s(m, "Role") == "Leader")
        .collect();
    let [leader] = leaders.as_slice() else {
        return Err(format!("{} leaders", leaders.len()));
    };
    if s(leader, "State") != "running" {
        return Err(format!("leader is {}", s(leader, "State")));
    }
    if members.len() != 3 {
        return Err(format!("{} of 3 members listed", members.len()));
    }
    for m in members {
        if s(m, "Role") == "Leader" {
            continue;
        }
        if s(m, "State") != "streaming" {
            return Err(format!(
                "{} is {} / {}",
                s(m, "Member"),
                s(m, "Role"),
                s(m, "State")
            ));
        }
        if m.get("TL") != leader.get("TL") {
            return Err(format!(
                "{} is on timeline {:?}",
                s(m, "Member"),
                m.get("TL")
            ));
        }
    }
    Ok(s(leader, "Member"))
}

async fn bench_patroni(args: &Args, dir: &Path) -> anyhow::Result<Vec<Trial>> {
    let version = std::process::Command::new(args.patroni_venv.join("bin/patroni"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "# {version} ttl=30s loop_wait=10s retry_timeout=10s (Patroni's defaults), run as postgres, dir {}",
        dir.display()
    );
    let mut cluster = Patroni::start(&args.patroni_venv, dir)?;
    let r = trials(&cluster, System::Patroni, args.trials).await;
    cluster.shutdown();
    r
}

// ---------------------------------------------------------------------------------------
// The trials, the same for both systems

async fn trials<C: Cluster>(c: &C, system: System, n: usize) -> anyhow::Result<Vec<Trial>> {
    let started = Instant::now();
    let leader = c.wait_healthy(Duration::from_secs(300)).await?;
    println!(
        "# {system:?}: healthy after {:.1}s, leader {leader}",
        started.elapsed().as_secs_f64()
    );
    writer::create_table(&c.rw_dsn()).await?;
    let ids = Arc::new(AtomicI64::new(1));
    let mut results = Vec::new();
    for t in 1..=n {
        let r = trial(c, system, t, &ids).await?;
        results.push(r);
    }
    Ok(results)
}

async fn trial<C: Cluster>(
    c: &C,
    system: System,
    t: usize,
    ids: &Arc<AtomicI64>,
) -> anyhow::Result<Trial> {
    let leader = c.wait_healthy(Duration::from_secs(300)).await?;
    let names = c.names();
    let li = names
        .iter()
        .position(|n| *n == leader)
        .context("leader index")?;
    // The next node after the leader, so that every node takes its turn.
    let candidate = names[(li + 1) % names.len()].clone();
    let old_port = c.pg_port(&leader);
    let new_port = c.pg_port(&candidate);

    let journal = Arc::new(Journal::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writer =
        tokio::spawn(Writer::standard(c.rw_dsn()).run(ids.clone(), journal.clone(), stop.clone()));
    // Let writes flow before the switchover.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (prog, argv) = c.switchover_cmd(&leader, &candidate);
    let t0 = Instant::now();
    let cmd = tokio::process::Command::new(&prog)
        .args(&argv)
        .stdin(Stdio::null())
        .output();
    tokio::pin!(cmd);
    let mut cmd_out = None;
    // The switchover is over at the first write acknowledged by another server.
    let deadline = t0 + Duration::from_secs(120);
    let first_new = loop {
        if cmd_out.is_none() {
            tokio::select! {
                out = &mut cmd => cmd_out = Some((out, t0.elapsed())),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = journal.with_acks(|acks| {
            acks.iter()
                .find(|a| a.at > t0 && a.port != old_port)
                .map(|a| (a.port, a.at))
        });
        if let Some(f) = first {
            break f;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            let _ = writer.await;
            let out = match cmd_out {
                Some((Ok(o), _)) => describe(&o),
                Some((Err(e), _)) => e.to_string(),
                None => "still running".into(),
            };
            bail!(
                "trial {t}: no write succeeded on a new leader within 120 s after `{} {}`: {out}",
                prog.display(),
                argv.join(" ")
            );
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    let (out, cli_secs) = match cmd_out {
        Some(o) => o,
        None => ((&mut cmd).await, t0.elapsed()),
    };
    let out = out.with_context(|| format!("running {}", prog.display()))?;

    let last_old = journal
        .with_acks(|acks| {
            acks.iter()
                .filter(|a| a.port == old_port && a.at < first_new.1)
                .map(|a| a.at)
                .max()
        })
        .unwrap_or(t0);
    let downtime = first_new.1 - last_old;

    let healed = c.wait_healthy(Duration::from_secs(300)).await?;
    // Every acknowledged write must be on the new leader.
    let ids: Vec<i64> = journal.with_acks(|acks| acks.iter().map(|a| a.id).collect());
    let healed_dsn = format!(
        "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres",
        c.pg_port(&healed)
    );
    let present = writer::present(&healed_dsn, &ids).await?;
    let r = Trial {
        downtime,
        failed_statements: journal.failed_statements.load(Ordering::Relaxed),
        failed_connects: journal.failed_connects.load(Ordering::Relaxed),
        acked: ids.len(),
        lost: ids.len() - present.len(),
    };
    // What the CLI says about the switchover (not the member tables it prints around it).
    let last_line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('+') && !l.starts_with('|'))
        .unwrap_or("")
        .to_string();
    println!(
        "system={system:?} trial={t} {leader}->{candidate} downtime={:.2}s failed_statements={} failed_connects={} acked={} lost={} new_leader={healed}{} cli_exit={} cli={:.2}s cli_says={last_line:?}",
        r.downtime.as_secs_f64(),
        r.failed_statements,
        r.failed_connects,
        r.acked,
        r.lost,
        if first_new.0 == new_port { "" } else { " (first write on another node than the candidate)" },
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        cli_secs.as_secs_f64(),
    );
    if !out.status.success() {
        println!("  cli output: {}", describe(&out));
    }
    Ok(r)
}

fn describe(o: &std::process::Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// Prints the SUMMARY line; returns the median downtime in seconds.
fn summary(system: System, r: &[Trial]) -> Option<f64> {
    if r.is_empty() {
        return None;
    }
    let mut d: Vec<f64> = r.iter().map(|t| t.downtime.as_secs_f64()).collect();
    d.sort_by(f64::total_cmp);
    let sorted = |f: fn(&Trial) -> u64| {
        let mut v: Vec<u64> = r.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let fs = sorted(|t| t.failed_statements);
    let fc = sorted(|t| t.failed_connects);
    let lost = sorted(|t| t.lost as u64);
    let acked: usize = r.iter().map(|t| t.acked).sum();
    println!(
        "SUMMARY system={system:?} trials={} downtime median={:.2}s max={:.2}s failed_statements median={} max={} failed_connects median={} max={} lost median={} max={} total_acked={acked}",
        r.len(),
        d[d.len() / 2],
        d[d.len() - 1],
        fs[fs.len() / 2],
        fs[fs.len() - 1],
        fc[fc.len() / 2],
        fc[fc.len() - 1],
        lost[lost.len() / 2],
        lost[lost.len() - 1],
    );
    Some(d[d.len() / 2])
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Creates `dir` readable and traversable by everyone (PostgreSQL runs as `postgres`).
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} traversable", dir.display()))?;
    Ok(())
}
