//! The network-fault suite: a real 3-node pgkeel cluster (agent + PostgreSQL 15 per node) and
//! a 3-member etcd, each process group in its own Linux network namespace on a bridge the
//! suite makes, faulted one scenario at a time under continuous writes. Per scenario and in
//! total it reports acknowledged writes lost, writes acknowledged by two primaries in
//! overlapping time, and time to recover, against targets; exits non-zero if one is missed.
//!
//! Needs root (namespaces, veths, tc, tmpfs mounts). The client (writer), the per-node probes
//! and the observer run in the root namespace, reaching the cluster through the bridge.
//!
//!   cargo build --bins && sudo target/debug/pgkeel-netfault            # everything
//!   sudo target/debug/pgkeel-netfault --short                          # the CI subset
//!   sudo target/debug/pgkeel-netfault --fault 2 --fault 7 --mode sync  # a choice

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use pgkeel_localcluster::{Host, LocalCluster, MemberSpec, Network, Options};

#[path = "../netfault/check.rs"]
mod check;
#[path = "../bench/deposed.rs"]
mod deposed;
#[path = "../netfault/faults.rs"]
mod faults;
#[path = "../bench/ready.rs"]
mod ready;
#[path = "../bench/setup.rs"]
mod setup;
#[path = "../netfault/suite.rs"]
mod suite;
#[path = "../netfault/topology.rs"]
mod topology;
#[path = "../bench/writer.rs"]
mod writer;

use faults::{Budget, Fault, Mode};
use topology::{Ep, Topology};

const NODES: usize = 3;
const ETCD_MEMBERS: usize = 3;
/// Each node's WAL file system: small enough to fill in a moment, large enough for
/// `max_wal_size` + `wal_keep_size` below and a replica cut off for the hold.
const WAL_FS: &str = "256m";
/// `wal_sender_timeout` and `wal_receiver_timeout`: how long a silent peer's replication
/// connection lives (PostgreSQL's default, 60 s, would hold synchronous commits that long).
const WAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    about = "network-fault suite: a pgkeel cluster in network namespaces, faulted under writes"
)]
struct Args {
    /// The CI subset: faults 1, 2, 5, 6f, 7 and 8 asynchronous, 1 synchronous.
    #[arg(long)]
    short: bool,
    /// Faults to run (1-10, 6f for 6 with failsafe_mode); repeat the flag. Default: all.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Modes to run each fault in; repeat the flag. Default: async and sync.
    #[arg(long = "mode", value_enum)]
    modes: Vec<Mode>,
    /// How long each fault is held before it is healed, in seconds.
    #[arg(long, default_value_t = 12)]
    hold: u64,
    /// Timing profile (fast: ttl 3 s, loop_wait 1 s; default: ttl 10 s, loop_wait 2 s).
    #[arg(long, value_enum, default_value = "fast")]
    profile: setup::Profile,
    /// Name prefix of namespaces and interfaces (default pgk<pid>; at most 10 characters).
    #[arg(long)]
    prefix: Option<String>,
    /// Working directory (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the working directory (it is always kept when a target was missed).
    #[arg(long)]
    keep: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The scenarios to run, in order: all of one mode, then the other.
fn plan(args: &Args) -> anyhow::Result<Vec<(Mode, Fault)>> {
    if args.short {
        // The faults that once broke a target stay in CI as regression scenarios: 7 and 8
        // (overlapping primaries before the fence guardian and the SIGKILL of a stopped
        // postmaster), 6f (failsafe mode never armed in time).
        return Ok(vec![
            (Mode::Async, Fault::LeaderFromEtcd),
            (Mode::Async, Fault::LeaderIsolated),
            (Mode::Async, Fault::EtcdMemberKilled),
            (Mode::Async, Fault::LeaderFrozen),
            (Mode::Async, Fault::LeaderAgentKilled),
            (Mode::Async, Fault::EtcdMajorityLost { failsafe: true }),
            (Mode::Sync, Fault::LeaderFromEtcd),
        ]);
    }
    let faults = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|k| Fault::parse(k).with_context(|| format!("--fault {k}: expected 1-10 or 6f")))
            .collect::<anyhow::Result<_>>()?
    };
    let modes = if args.modes.is_empty() {
        vec![Mode::Async, Mode::Sync]
    } else {
        args.modes.clone()
    };
    Ok(modes
        .iter()
        .flat_map(|&m| faults.iter().map(move |&f| (m, f)))
        .collect())
}

/// Everything the suite needs, checked up front so that a missing piece is named.
fn preflight() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (network namespaces, veths, tc and tmpfs mounts need it)".to_string());
    }
    for (program, arg, what) in [("ip", "-V", "iproute2's ip"), ("tc", "-V", "iproute2's tc")] {
        if Command::new(program)
            .arg(arg)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            missing.push(format!("{what} ({program} on PATH)"));
        }
    }
    if !Path::new("/usr/lib/postgresql/15/bin/postgres").exists() {
        missing.push("PostgreSQL 15 (/usr/lib/postgresql/15/bin)".into());
    }
    if nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .is_none()
    {
        missing.push("the postgres OS user".into());
    }
    if !missing.is_empty() {
        bail!("the network-fault suite needs: {}", missing.join(", "));
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<bool> {
    preflight()?;
    let plan = plan(&args)?;
    let pgkeel = setup::pgkeel_binary()?;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("pgk{}", std::process::id()));
    if prefix.len() > 10 || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("--prefix {prefix}: at most 10 letters and digits (interface names have 15)");
    }
    let dir = setup::work_dir(args.dir.as_ref(), "pgkeel-netfault");
    let timing = args.profile.timing();
    let budget = Budget {
        ttl: Duration::from_secs_f64(timing.ttl),
        loop_wait: Duration::from_secs_f64(timing.loop_wait),
        hold: Duration::from_secs(args.hold),
        wal_timeout: WAL_TIMEOUT,
    };

    let topo = Topology::create(&prefix, NODES, ETCD_MEMBERS)?;
    let cleanup = topo.cleanup();
    install_cleanup_hooks(cleanup.clone());
    println!(
        "# pgkeel-netfault prefix={prefix} subnet={} bridge={} profile={:?} ttl={}s loop_wait={}s hold={}s scenarios={} dir={}",
        topo.subnet(),
        topo.bridge(),
        args.profile,
        timing.ttl,
        timing.loop_wait,
        args.hold,
        plan.len(),
        dir.display()
    );

    let opts = options(&topo, &dir, pgkeel, timing)?;
    for i in 0..NODES {
        mount_wal_fs(&opts.node_dir(i).join("walfs"), &cleanup)?;
    }
    let c = LocalCluster::start(opts)?;
    let mut s = match suite::Suite::start(topo, c, budget).await {
        Ok(s) => s,
        Err(e) => {
            println!("# kept {} for the logs", dir.display());
            return Err(e);
        }
    };

    let mut rows = Vec::new();
    let mut not_run = Vec::new();
    let mut broken = false;
    let mut mode = None;
    for &(m, fault) in &plan {
        if broken {
            not_run.push((m, fault));
            continue;
        }
        if mode != Some(m) {
            if let Err(e) = s.set_mode(m).await {
                println!("# switching to {} failed: {e:#}", m.name());
                broken = true;
                not_run.push((m, fault));
                continue;
            }
            mode = Some(m);
        }
        match s.scenario(fault).await {
            Ok(row) => {
                println!("{}", row.summary());
                rows.push(row);
            }
            Err((row, e)) => {
                println!("{}", row.summary());
                println!(
                    "# the cluster did not recover: {e:#}; the remaining scenarios are not run"
                );
                rows.push(row);
                broken = true;
            }
        }
    }
    s.stop_writers().await;
    let pass = check::print_report(&rows, &not_run);
    // Stop the agents gracefully, then remove the namespaces and the bridge.
    s.c.shutdown();
    drop(s);
    cleanup.run();
    if pass && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "# kept {} (agent.log per node, etcd logs under etcd/)",
            dir.display()
        );
    }
    Ok(pass)
}

/// The cluster's layout: node `i` at `.11+i`, etcd member `i` at `.21+i`, each started
/// through `ip netns exec`.
fn options(
    topo: &Topology,
    dir: &Path,
    pgkeel: PathBuf,
    timing: pgkeel_localcluster::Timing,
) -> anyhow::Result<Options> {
    let network = Network {
        nodes: (0..NODES)
            .map(|i| Host {
                ip: topo.ip(Ep::Node(i)).to_string(),
                // Distinct ports although every node has its own address: an ack names its
                // server by `inet_server_port()`.
                pg_port: 5441 + i as u16,
                api_port: 8011 + i as u16,
                exec_prefix: topo.exec_prefix(Ep::Node(i)),
            })
            .collect(),
        etcd: (0..ETCD_MEMBERS)
            .map(|i| MemberSpec {
                name: format!("e{}", i + 1),
                host: topo.ip(Ep::Etcd(i)).to_string(),
                client_port: 2379,
                peer_port: 2380,
                exec_prefix: topo.exec_prefix(Ep::Etcd(i)),
            })
            .collect(),
    };
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    Ok(Options {
        nodes: NODES,
        dir: dir.to_path_buf(),
        pgkeel,
        scope: format!("netfault-{}", topo.prefix),
        timing,
        pg_parameters: vec![
            // Keep the WAL small enough for its tmpfs.
            p("wal_keep_size", "64MB"),
            p("max_wal_size", "128MB"),
            p("min_wal_size", "32MB"),
            p("wal_sender_timeout", &format!("{}s", WAL_TIMEOUT.as_secs())),
            p(
                "wal_receiver_timeout",
                &format!("{}s", WAL_TIMEOUT.as_secs()),
            ),
        ],
        separate_waldir: true,
        network: Some(network),
        ..Default::default()
    })
}

/// A tmpfs at `path` owned by `postgres`, so that initdb and pg_basebackup can create
/// `pg_wal` in it.
fn mount_wal_fs(path: &Path, cleanup: &topology::Cleanup) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let pg = nix::unistd::User::from_name("postgres")?.context("no postgres user")?;
    let o = format!("size={WAL_FS},uid={},gid={},mode=0700", pg.uid, pg.gid);
    let p = path.to_str().context("non-UTF-8 path")?;
    topology::sh("mount", &["-t", "tmpfs", "-o", &o, "tmpfs", p])?;
    cleanup.add_mount(path.to_path_buf());
    Ok(())
}

/// Runs the clean-up on a panic and on SIGINT/SIGTERM (then exits), so that no namespace,
/// bridge, mount or process outlives the run.
fn install_cleanup_hooks(cleanup: std::sync::Arc<topology::Cleanup>) {
    let on_panic = cleanup.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        on_panic.run();
    }));
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("# interrupted: removing the namespaces, the bridge and the mounts");
        cleanup.run();
        std::process::exit(130);
    });
}
