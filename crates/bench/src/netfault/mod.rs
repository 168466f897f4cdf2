//! The network-fault suite: a real 3-node pgkeel cluster (agent + PostgreSQL 15 per node) and
//! a 3-member etcd, each process group in its own Linux network namespace on a bridge the
//! suite makes, faulted one scenario at a time under continuous writes. Per scenario and in
//! total it reports acknowledged writes lost, writes acknowledged by two primaries in
//! overlapping time, and time to recover, against targets.
//!
//! Needs root (namespaces, veths, tc, tmpfs mounts; FUSE and bindfs for fault 15). The client
//! (writer), the per-node probes and the observer run in the root namespace, reaching the
//! cluster through the bridge. In a plan with fault 15, each node's data directory and WAL (a
//! small tmpfs) sit behind one FUSE pass-through (localcluster's stallable disk), which the
//! fault stalls.
//!
//! - [`faults`]: the scenarios (what each fault is, what it should do to writes, the bounds),
//!   and the CI subset;
//! - [`topology`]: the namespaces, veths and bridge, and the drops that make a partition;
//! - [`suite`]: the cluster under writes, each scenario's inject → hold → heal → check;
//! - [`check`]: the verdict per scenario and the table and SUMMARY lines.
//!
//! `pgkeel-netfault` is the command line over [`run`]; `tests/e2e_netfault.rs` calls [`run`]
//! with the CI subset.

pub mod check;
pub mod faults;
pub mod suite;
pub mod topology;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use pgkeel_localcluster::{Host, LocalCluster, MemberSpec, Network, Options};

use crate::setup::{self, Profile};
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

/// How long each fault is held before it is healed, unless told otherwise.
pub const DEFAULT_HOLD_SECS: u64 = 12;
/// The timing profile the suite runs with unless told otherwise.
pub const DEFAULT_PROFILE: Profile = Profile::Fast;

/// One run of the suite.
#[derive(Debug, Clone)]
pub struct Run {
    /// The scenarios, in order (see [`plan`]).
    pub plan: Vec<(Mode, Fault)>,
    /// How long each fault is held before it is healed.
    pub hold: Duration,
    pub profile: Profile,
    /// Name prefix of namespaces and interfaces (`None`: `pgk<pid>`; at most 10 characters).
    pub prefix: Option<String>,
    /// Working directory (`None`: a new directory under /tmp).
    pub dir: Option<PathBuf>,
    /// Keep the working directory (it is always kept when a target was missed).
    pub keep: bool,
    /// The `pgkeel` binary the agents run.
    pub pgkeel: PathBuf,
}

impl Run {
    /// `plan` with the default hold and profile, a fresh prefix and directory.
    pub fn new(plan: Vec<(Mode, Fault)>, pgkeel: PathBuf) -> Run {
        Run {
            plan,
            hold: Duration::from_secs(DEFAULT_HOLD_SECS),
            profile: DEFAULT_PROFILE,
            prefix: None,
            dir: None,
            keep: false,
            pgkeel,
        }
    }
}

/// The scenarios to run, in order: every fault in `faults` (keys as `--fault` takes them;
/// none: all) in each of `modes` (none: async, then sync), all of one mode, then the other.
pub fn plan(faults: &[String], modes: &[Mode]) -> anyhow::Result<Vec<(Mode, Fault)>> {
    let faults = if faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        faults
            .iter()
            .map(|k| Fault::parse(k).with_context(|| format!("--fault {k}: expected 1-15 or 6f")))
            .collect::<anyhow::Result<_>>()?
    };
    let modes = if modes.is_empty() {
        vec![Mode::Async, Mode::Sync]
    } else {
        modes.to_vec()
    };
    Ok(modes
        .iter()
        .flat_map(|&m| faults.iter().map(move |&f| (m, f)))
        .collect())
}

/// Everything the suite needs, checked up front so that a missing piece is named.
fn preflight(fuse: bool) -> anyhow::Result<()> {
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
    if fuse
        && Command::new("bindfs")
            .arg("--version")
            .output()
            .map_or(true, |o| !o.status.success())
    {
        missing.push(
            "bindfs (each node's storage is a FUSE pass-through that fault 15 stalls)".into(),
        );
    }
    if fuse && !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse".into());
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

/// Runs the scenarios and prints each one's SUMMARY line, then the table and the total.
/// `Ok(false)`: a target was missed; an error: the suite could not run.
pub async fn run(args: Run) -> anyhow::Result<bool> {
    let plan = &args.plan;
    // Storage that can be stalled only when a scenario stalls it: through FUSE every I/O is a
    // round trip to a daemon, and crash recovery in place (14) takes seconds longer.
    let fuse = plan.iter().any(|(_, f)| f.needs_stallable_disks());
    preflight(fuse)?;
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
        hold: args.hold,
        wal_timeout: WAL_TIMEOUT,
    };

    let topo = Topology::create(&prefix, NODES, ETCD_MEMBERS)?;
    let cleanup = topo.cleanup();
    install_cleanup_hooks(cleanup.clone());
    println!(
        "# pgkeel-netfault prefix={prefix} subnet={} bridge={} profile={:?} ttl={}s loop_wait={}s hold={}s scenarios={} storage={} dir={}",
        topo.subnet(),
        topo.bridge(),
        args.profile,
        timing.ttl,
        timing.loop_wait,
        args.hold.as_secs(),
        plan.len(),
        if fuse { "fuse" } else { "local" },
        dir.display()
    );

    let sockets = dir.join("sockets");
    let (opts, network) = layout(&topo, &dir, &sockets, fuse, args.pgkeel.clone(), timing)?;
    postgres_dir(&sockets)?;
    for i in 0..NODES {
        mount_wal_fs(&opts.wal_fs_dir(i), &cleanup)?;
    }
    let c = LocalCluster::start_in(opts, &network)?;
    for (at, daemon) in c.disks() {
        cleanup.add_fuse_mount(at, daemon);
    }
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
    for &(m, fault) in plan {
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
/// The cluster's options and layout: node `i` at `.11+i`, etcd member `i` at `.21+i`, each
/// started through `ip netns exec`; with `fuse`, each node's data directory and WAL on a
/// stallable disk; PostgreSQL's Unix sockets in `sockets`, this run's own directory.
///
/// The ports are fixed: every node and etcd member has a network namespace of its own, so
/// two runs' TCP ports never meet. Unix sockets are files, and the namespaces share the file
/// system: in the default `/tmp` two runs' node1 would both want `/tmp/.s.PGSQL.5441`.
fn layout(
    topo: &Topology,
    dir: &Path,
    sockets: &Path,
    fuse: bool,
    pgkeel: PathBuf,
    timing: pgkeel_localcluster::Timing,
) -> anyhow::Result<(Options, Network)> {
    let sockets = sockets.to_str().context("non-UTF-8 working directory")?;
    // sun_path holds 108 bytes, the terminating NUL included.
    if sockets.len() + "/.s.PGSQL.65535.lock".len() >= 108 {
        bail!(
            "--dir {}: too long for PostgreSQL's Unix socket paths",
            dir.display()
        );
    }
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
    let mut opts = Options {
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
            p("unix_socket_directories", sockets),
        ],
        separate_waldir: true,
        stallable_disks: fuse,
        ..Default::default()
    };
    if fuse {
        // Crash recovery first fsyncs every file of the data directory; through FUSE, one
        // file at a time, that took seconds (scenario 14 missed its bound by 6 s). One
        // syncfs() of the file system instead.
        opts.pg_parameters
            .push(p("recovery_init_sync_method", "syncfs"));
    }
    Ok((opts, network))
}

/// The `postgres` user, who owns what PostgreSQL writes.
fn postgres_user() -> anyhow::Result<nix::unistd::User> {
    nix::unistd::User::from_name("postgres")?.context("no postgres user")
}

/// A directory at `path` that only `postgres` (and root) may use.
fn postgres_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let pg = postgres_user()?;
    nix::unistd::chown(path, Some(pg.uid), Some(pg.gid))
        .with_context(|| format!("giving {} to postgres", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// A tmpfs at `path` owned by `postgres`, so that initdb and pg_basebackup can create
/// `pg_wal` in it.
fn mount_wal_fs(path: &Path, cleanup: &topology::Cleanup) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let pg = postgres_user()?;
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
