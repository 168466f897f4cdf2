//! A pgkeel cluster on this machine: one etcd and N agents, each with its own PostgreSQL,
//! on free loopback ports. The demo, the end-to-end tests and the benchmark all use it, so
//! what a new user sees is what the tests check.
//!
//! With a [`Network`] layout ([`LocalCluster::start_in`], the network-fault suite) every node
//! and every member of a multi-member etcd runs in its own network namespace instead, on its
//! own address: the caller makes the namespaces, this crate only starts processes inside them.
//! The demo calls [`LocalCluster::start`] only, so the `pgkeel` binary does not link the
//! multi-member spawner.

mod config;
pub mod disk;
mod etcd;
mod procs;
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use pgkeel_core::cluster::Cluster;
use pgkeel_dcs::Etcd;

pub use config::Timing;
pub use etcd::{EtcdServer, MemberSpec, ServeOptions, ServerTlsFiles};
pub use procs::Signal;
pub use wait::healthy;

pub const SUPERUSER_PASSWORD: &str = "pgkeel-demo";

/// How to build the cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub nodes: usize,
    /// Everything lives here: etcd's data, each node's config, data directory and log.
    pub dir: PathBuf,
    /// The `pgkeel` binary that runs the agents.
    pub pgkeel: PathBuf,
    pub scope: String,
    pub timing: Timing,
    /// HTTP Basic credentials for the REST API's unsafe methods (`restapi.authentication`).
    pub rest_auth: Option<(String, String)>,
    /// More `bootstrap.dcs` settings, as unindented YAML lines (`synchronous_mode: true`).
    pub dcs_extra: String,
    /// Tags per node (index 0 is node1), as unindented YAML lines (`nosync: true`).
    pub node_tags: Vec<String>,
    /// PostgreSQL parameters for `bootstrap.dcs.postgresql.parameters`, added to (or
    /// replacing) the local cluster's own.
    pub pg_parameters: Vec<(String, String)>,
    /// Put each node's WAL in `walfs/pg_wal` beside its data directory (`waldir` for initdb
    /// and pg_basebackup), so that the caller can mount a small file system at
    /// [`Options::wal_fs_dir`].
    pub separate_waldir: bool,
    /// Put each node's data directory (its WAL included, separate or not) on a
    /// [`disk::StallableDisk`], so that a test can stop its I/O ([`LocalCluster::stall_disk`]).
    pub stallable_disks: bool,
    /// Serve the REST API over HTTPS (`restapi.certfile` and the rest).
    pub rest_tls: Option<RestTls>,
    /// `postgresql.callbacks`: event (`on_start`...) → command line; `{name}` becomes the
    /// node's name.
    pub callbacks: Vec<(String, String)>,
    /// More `bootstrap` keys, as YAML lines relative to the section (`method: restore`).
    pub bootstrap_extra: String,
    /// More `postgresql` keys, as YAML lines relative to the section
    /// (`create_replica_methods: [restore, basebackup]`); `{name}` becomes the node's name
    /// and `{data}` its data directory.
    pub postgresql_extra: String,
    /// The agents' working directory (default: the caller's): where the commands of
    /// callbacks and methods run, as Patroni runs them.
    pub agent_cwd: Option<PathBuf>,
    /// etcd serving TLS only, requiring client certificates; the agents' `etcd3` section
    /// says `protocol: https`, `cacert`, `cert`, `key`.
    pub etcd_tls: Option<EtcdTls>,
    /// etcd's authentication enabled (`user add root`, `auth enable`) with this root
    /// password, which the agents' `etcd3.username`/`password` give.
    pub etcd_root_password: Option<String>,
    /// PostgreSQL over TLS only: the servers serve `server`, pg_hba.conf admits TLS clients
    /// with a certificate alone, and every role connects with `client`.
    pub pg_tls: Option<PgTls>,
}

/// The single etcd's TLS files and the certificate every agent presents to it.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// Signs etcd's certificate and the agents'.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// PostgreSQL's TLS files, the same for every node (files PostgreSQL's user can read).
#[derive(Debug, Clone, Default)]
pub struct PgTls {
    pub ca: PathBuf,
    /// The servers' certificate and key (`ssl_cert_file`, `ssl_key_file`).
    pub server: (PathBuf, PathBuf),
    /// The certificate and key every role presents (`sslcert`, `sslkey`).
    pub client: (PathBuf, PathBuf),
}

/// The REST API's TLS files, the same for every node (one certificate valid for
/// 127.0.0.1 serves all of them on loopback).
#[derive(Debug, Clone, Default)]
pub struct RestTls {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    pub cafile: PathBuf,
    /// `none`, `optional` or `required`.
    pub verify_client: String,
    /// `ctl.certfile` and `ctl.keyfile`: the certificate the agents present to each other
    /// (without it they present `certfile`).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Per-process network placement: one [`Host`] per node (node1 first) and one etcd member per
/// entry of `etcd`.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub nodes: Vec<Host>,
    pub etcd: Vec<MemberSpec>,
}

/// Where one node runs.
#[derive(Debug, Clone)]
pub struct Host {
    /// The address PostgreSQL and the REST API listen on, and that peers and clients use.
    pub ip: String,
    pub pg_port: u16,
    pub api_port: u16,
    /// Words put before the agent's command (`ip netns exec NS`); PostgreSQL, started by the
    /// agent, inherits the namespace.
    pub exec_prefix: Vec<String>,
}

impl Options {
    /// Node `i`'s directory (0 is node1), where its config, data and log live.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}", i + 1))
    }

    /// The directory node `i`'s stallable disk passes through to.
    fn disk_backing(&self, i: usize) -> PathBuf {
        self.dir.join(".disks").join(format!("node{}", i + 1))
    }

    /// Where the caller mounts node `i`'s WAL file system ([`Options::separate_waldir`]),
    /// before the cluster starts: `<node dir>/walfs`, or on a stallable disk `walfs` in the
    /// disk's backing directory, so that the WAL is reached through the same FUSE mount as
    /// the data directory and stalls with it.
    pub fn wal_fs_dir(&self, i: usize) -> PathBuf {
        if self.stallable_disks {
            self.disk_backing(i).join("walfs")
        } else {
            self.node_dir(i).join("walfs")
        }
    }
}

/// One node: its address, ports, files and agent process.
pub struct Node {
    pub name: String,
    /// The address it listens on (`127.0.0.1` on loopback).
    pub host: String,
    pub pg_port: u16,
    pub api_port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Where its WAL lives when [`Options::separate_waldir`] is set.
    pub wal_dir: Option<PathBuf>,
    /// The REST API serves HTTPS ([`Options::rest_tls`]).
    pub https: bool,
    exec_prefix: Vec<String>,
    agent: Option<Child>,
    /// The storage under `data_dir`, when it can be stalled.
    disk: Option<disk::StallableDisk>,
}

impl Node {
    /// `http://host:port`, or `https://` when the cluster serves TLS.
    pub fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.api_port)
    }
    pub fn dsn(&self) -> String {
        format!(
            "host={} port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres",
            self.host, self.pg_port
        )
    }
    pub fn agent_pid(&self) -> Option<i32> {
        self.agent.as_ref().map(|c| c.id() as i32)
    }
}

pub struct LocalCluster {
    /// One member on loopback, or the members of [`Network::etcd`].
    pub etcd: Vec<EtcdServer>,
    pub nodes: Vec<Node>,
    pub opts: Options,
}

impl LocalCluster {
    /// Starts one etcd and every agent on loopback in this namespace, on free ports. Does not
    /// wait for the cluster to form: see [`LocalCluster::wait_healthy`].
    pub fn start(opts: Options) -> anyhow::Result<LocalCluster> {
        if opts.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        prepare_dir(&opts.dir)?;
        let serve = ServeOptions {
            tls: opts.etcd_tls.as_ref().map(|t| ServerTlsFiles {
                cert: t.server_cert.clone(),
                key: t.server_key.clone(),
                ca: t.ca.clone(),
                client_cert_auth: true,
            }),
            auth_token_ttl: None,
        };
        let etcd = vec![EtcdServer::start_with(&opts.dir.join("etcd"), &serve)?];
        if let Some(password) = &opts.etcd_root_password {
            etcd::enable_auth(&etcd[0], opts.etcd_tls.as_ref(), password)?;
        }
        let hosts = (0..opts.nodes)
            .map(|_| {
                Ok(Host {
                    ip: "127.0.0.1".into(),
                    pg_port: procs::free_port()?,
                    api_port: procs::free_port()?,
                    exec_prefix: Vec::new(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        LocalCluster::launch(opts, etcd, hosts)
    }

    /// Starts a multi-member etcd and every agent where `network` places them. Does not wait
    /// for the cluster to form.
    pub fn start_in(opts: Options, network: &Network) -> anyhow::Result<LocalCluster> {
        if opts.nodes == 0 || network.nodes.len() != opts.nodes || network.etcd.is_empty() {
            bail!(
                "the network layout places {} nodes and {} etcd members, the cluster has {} nodes",
                network.nodes.len(),
                network.etcd.len(),
                opts.nodes
            );
        }
        prepare_dir(&opts.dir)?;
        let etcd = EtcdServer::start_cluster(&opts.dir.join("etcd"), &network.etcd, &opts.scope)?;
        LocalCluster::launch(opts, etcd, network.nodes.clone())
    }

    /// Writes one config per node (node `i` at `hosts[i]`) and starts every agent.
    fn launch(
        opts: Options,
        etcd: Vec<EtcdServer>,
        hosts: Vec<Host>,
    ) -> anyhow::Result<LocalCluster> {
        // Callers talk to the agents over HTTP(S) with reqwest, which needs the process's
        // crypto provider before any client is built.
        pgkeel_tls::install_default_provider();
        let endpoints: Vec<String> = etcd.iter().map(|e| e.endpoint.to_string()).collect();
        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, host) in hosts.into_iter().enumerate() {
            let dir = opts.node_dir(i);
            prepare_dir(&dir)?;
            let disk = if opts.stallable_disks {
                let backing = opts.disk_backing(i);
                prepare_dir(&backing)?;
                Some(disk::StallableDisk::mount(&backing, &dir.join("disk"))?)
            } else {
                None
            };
            // The data directory and a separate WAL directory share one root: on a
            // stallable disk both are below its mount.
            let root = disk.as_ref().map_or_else(|| dir.clone(), |d| d.at.clone());
            let node = Node {
                name: format!("node{}", i + 1),
                host: host.ip,
                pg_port: host.pg_port,
                api_port: host.api_port,
                config: dir.join("pgkeel.yml"),
                data_dir: root.join("data"),
                log: dir.join("agent.log"),
                wal_dir: opts
                    .separate_waldir
                    .then(|| root.join("walfs").join("pg_wal")),
                https: opts.rest_tls.is_some(),
                exec_prefix: host.exec_prefix,
                dir,
                agent: None,
                disk,
            };
            let yaml = config::render(&opts, &node, &endpoints);
            // It holds the superuser's and the replication user's passwords.
            write_private(&node.config, &yaml)
                .with_context(|| format!("writing {}", node.config.display()))?;
            nodes.push(node);
        }
        let mut cluster = LocalCluster { etcd, nodes, opts };
        for i in 0..cluster.nodes.len() {
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }

    /// Starts (or restarts) node `i`'s agent.
    pub fn start_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let mut cmd = match node.exec_prefix.split_first() {
            Some((program, words)) => {
                let mut c = Command::new(program);
                c.args(words).arg(&self.opts.pgkeel);
                c
            }
            None => Command::new(&self.opts.pgkeel),
        };
        if let Some(dir) = &self.opts.agent_cwd {
            cmd.current_dir(dir);
        }
        // PGKEEL_LOG overrides the agents' level; otherwise they log as configured
        // (`log.level`, INFO by default), whatever RUST_LOG the caller runs with.
        match std::env::var("PGKEEL_LOG") {
            Ok(level) => cmd.env("RUST_LOG", level),
            Err(_) => cmd.env_remove("RUST_LOG"),
        };
        let child = cmd
            .arg("agent")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} agent", self.opts.pgkeel.display()))?;
        node.agent = Some(child);
        Ok(())
    }

    /// How the agents reach etcd: its endpoints, and the TLS and user they are given.
    pub fn etcd_config(&self) -> pgkeel_core::config::Etcd {
        pgkeel_core::config::Etcd {
            section: "etcd3",
            hosts: self.etcd.iter().map(|e| e.endpoint.clone()).collect(),
            username: self.opts.etcd_root_password.as_ref().map(|_| "root".into()),
            password: self.opts.etcd_root_password.clone(),
            tls: self
                .opts
                .etcd_tls
                .as_ref()
                .map(|t| pgkeel_core::config::EtcdTls {
                    cacert: Some(t.ca.clone()),
                    identity: Some(pgkeel_core::config::CertKey {
                        certfile: t.client_cert.clone(),
                        keyfile: Some(t.client_key.clone()),
                        keyfile_password: None,
                    }),
                }),
        }
    }

    /// A DCS client for this cluster, reaching etcd as the agents do.
    pub async fn dcs(&self) -> anyhow::Result<Etcd> {
        let access = pgkeel_dcs::Access::from_config(&self.etcd_config())?;
        Ok(Etcd::connect(
            &access,
            format!("/service/{}/", self.opts.scope),
            Duration::from_secs(3),
        )
        .await?)
    }

    pub async fn load(&self) -> anyhow::Result<Cluster> {
        Ok(self.dcs().await?.load().await?)
    }

    /// The multi-host DSN that always reaches the writable node.
    pub fn rw_dsn(&self) -> String {
        let hosts: Vec<&str> = self.nodes.iter().map(|n| n.host.as_str()).collect();
        let ports: Vec<String> = self.nodes.iter().map(|n| n.pg_port.to_string()).collect();
        format!(
            "host={} port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres target_session_attrs=read-write",
            hosts.join(","),
            ports.join(",")
        )
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Sends `sig` to node `i`'s agent, postmaster and every backend at once (a host
    /// crash with SIGKILL, a freeze with SIGSTOP).
    pub fn signal_node(&self, i: usize, sig: Signal) {
        let node = &self.nodes[i];
        let mut pids = procs::postgres_pids(&node.data_dir);
        pids.extend(node.agent_pid());
        procs::signal_all(&pids, sig);
    }

    /// Sends `sig` to node `i`'s agent alone (PostgreSQL and the fence guardian stay).
    pub fn signal_agent(&self, i: usize, sig: Signal) {
        procs::signal_all(
            &self.nodes[i].agent_pid().into_iter().collect::<Vec<_>>(),
            sig,
        );
    }

    /// Sends `sig` to node `i`'s postmaster and every backend, not its agent (SIGSTOP: a
    /// PostgreSQL that hangs while its agent runs).
    pub fn signal_postgres(&self, i: usize, sig: Signal) {
        procs::signal_all(&procs::postgres_pids(&self.nodes[i].data_dir), sig);
    }

    /// Sends `sig` to node `i`'s postmaster alone (its backends and agent keep running).
    pub fn signal_postmaster(&self, i: usize, sig: Signal) {
        let pm: Vec<i32> = procs::postmaster_pid(&self.nodes[i].data_dir)
            .into_iter()
            .collect();
        procs::signal_all(&pm, sig);
    }

    /// Stops node `i`'s data directory's storage from completing any I/O (see
    /// [`disk::StallableDisk`]); needs [`Options::stallable_disks`].
    pub fn stall_disk(&self, i: usize) -> anyhow::Result<()> {
        match &self.nodes[i].disk {
            Some(d) => {
                d.stall();
                Ok(())
            }
            None => bail!(
                "node{} has no stallable disk (Options::stallable_disks)",
                i + 1
            ),
        }
    }

    /// Lets node `i`'s storage complete I/O again.
    pub fn resume_disk(&self, i: usize) {
        if let Some(d) = &self.nodes[i].disk {
            d.resume();
        }
    }

    /// The mount point and daemon pid of each node's stallable disk (none without
    /// [`Options::stallable_disks`]), for a caller that must undo them on a path where
    /// nothing is dropped (a signal handler that exits).
    pub fn disks(&self) -> Vec<(PathBuf, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| n.disk.as_ref())
            .map(|d| (d.at.clone(), d.pid()))
            .collect()
    }

    /// Sends `sig` to the agent and the postmaster only (backends keep running).
    pub fn signal_agent_and_postmaster(&self, i: usize, sig: Signal) {
        let node = &self.nodes[i];
        let mut pids: Vec<i32> = procs::postmaster_pid(&node.data_dir).into_iter().collect();
        pids.extend(node.agent_pid());
        procs::signal_all(&pids, sig);
    }

    /// Sends `sig` to node `i`'s WAL receiver only (SIGSTOP: the replica stops receiving and
    /// flushing WAL while it still looks connected, so its lag grows). Returns whether one ran.
    pub fn signal_walreceiver(&self, i: usize, sig: Signal) -> bool {
        let pids: Vec<i32> = procs::postgres_pids(&self.nodes[i].data_dir)
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("walreceiver"))
            })
            .collect();
        procs::signal_all(&pids, sig);
        !pids.is_empty()
    }

    /// Sends `sig` to every etcd member (SIGSTOP: an outage every node sees at once).
    pub fn signal_etcd(&self, sig: Signal) {
        let pids: Vec<i32> = self
            .etcd
            .iter()
            .filter_map(|e| e.pid())
            .map(|p| p as i32)
            .collect();
        procs::signal_all(&pids, sig);
    }

    /// The pids of node `i`'s PostgreSQL processes (postmaster first), if it runs.
    pub fn postgres_pids(&self, i: usize) -> Vec<i32> {
        procs::postgres_pids(&self.nodes[i].data_dir)
    }

    /// Node `i`'s agent's exit status once it has exited on its own; `None` while it runs
    /// (or when it was not started).
    pub fn agent_exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.nodes[i].agent.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits for a killed agent's process to be reaped (so it can be started again).
    pub fn reap_agent(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].agent.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM to node `i`'s agent, then waits for it to exit (up to `timeout`).
    pub fn stop_agent(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.nodes[i].agent.take() else {
            return Ok(());
        };
        procs::signal_all(&[child.id() as i32], Signal::Term);
        procs::wait_child(&mut child, timeout)
    }

    /// The pid of node `i`'s postmaster, if it runs.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        procs::postmaster_pid(&self.nodes[i].data_dir)
    }

    /// Resident memory of node `i`'s agent, in kB.
    pub fn agent_rss_kb(&self, i: usize) -> Option<u64> {
        procs::rss_kb(self.nodes[i].agent_pid()?)
    }

    /// Stops every agent (their PostgreSQL with them), then whatever is left. Agents of
    /// these nodes that this crate did not start are stopped too: one restarted by hand
    /// with the command the demo prints must not outlive the cluster (and its directory).
    pub fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.resume_disk(i);
        }
        let children: Vec<i32> = self.nodes.iter().filter_map(Node::agent_pid).collect();
        let others: Vec<i32> = self
            .nodes
            .iter()
            .flat_map(|n| procs::agent_pids(&n.config))
            .filter(|p| !children.contains(p))
            .collect();
        for pids in [&children, &others] {
            procs::signal_all(pids, Signal::Cont);
            procs::signal_all(pids, Signal::Term);
        }
        for i in 0..self.nodes.len() {
            if let Some(mut c) = self.nodes[i].agent.take() {
                if procs::wait_child(&mut c, Duration::from_secs(30)).is_err() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        procs::signal_all(
            &procs::wait_gone(&others, Duration::from_secs(30)),
            Signal::Kill,
        );
        for n in &self.nodes {
            // A server whose agent was killed is still running: stop it the hard way, and
            // the guardian left to fence it with it.
            let pids = procs::postgres_pids(&n.data_dir);
            procs::signal_all(&pids, Signal::Cont);
            procs::signal_all(&pids, Signal::Kill);
            procs::signal_all(&procs::guardian_pids(&n.data_dir), Signal::Kill);
        }
        for e in &mut self.etcd {
            e.stop();
        }
        for n in &mut self.nodes {
            n.disk.take();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Creates `dir` readable and traversable by everyone, so that PostgreSQL (running as the
/// `postgres` user) can reach its data directory below it.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} traversable", dir.display()))?;
    Ok(())
}

/// Writes `text` to `path`, readable and writable by its owner only (0600).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}
