//! Real Patroni 4.1.5 beside pgkeel: a cluster of Patroni nodes (run as `postgres`, from the
//! virtualenv `scripts/deps.sh` makes) on one etcd, whose nodes can each be handed over to a
//! pgkeel agent started with the very same YAML. Used by `e2e_migration.rs`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pgkeel_localcluster::EtcdServer;

/// Where `scripts/deps.sh` installs Patroni (override with `PGKEEL_PATRONI_VENV`).
pub fn venv() -> PathBuf {
    std::env::var_os("PGKEEL_PATRONI_VENV")
        .map_or_else(|| PathBuf::from("/opt/patroni-venv"), PathBuf::from)
}

/// Why the Patroni tests cannot run here, or `None` when they can.
pub fn missing() -> Option<String> {
    if id_field("-u", "").ok() != Some(0) {
        return Some("run as root: Patroni runs as `postgres`, started by the test".into());
    }
    let bin = venv().join("bin");
    for exe in ["patroni", "patronictl"] {
        if !bin.join(exe).exists() {
            return Some(format!(
                "{} is missing: install Patroni 4.1.5 with `sh scripts/deps.sh` as root \
                 (python3 -m venv {v}; {v}/bin/pip install 'patroni[etcd3,psycopg3]==4.1.5')",
                bin.join(exe).display(),
                v = venv().display()
            ));
        }
    }
    if uid_of("postgres").is_err() {
        return Some("no `postgres` user: apt-get install -y postgresql-15".into());
    }
    None
}

pub const PASSWORD: &str = "migrate-secret";
pub const REST_USER: &str = "admin";

/// Which program runs a node now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Patroni,
    Pgkeel,
}

pub struct MixedNode {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub pg_port: u16,
    pub api_port: u16,
    pub kind: Kind,
    pub https: bool,
    child: Option<Child>,
}

impl MixedNode {
    pub fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api_port)
    }
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres",
            self.pg_port
        )
    }
    /// The log of the program that runs the node now.
    pub fn log(&self) -> PathBuf {
        self.dir.join(match self.kind {
            Kind::Patroni => "patroni.log",
            Kind::Pgkeel => "pgkeel.log",
        })
    }
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

/// How the nodes are configured beyond the common YAML.
#[derive(Default)]
pub struct Spec<'a> {
    /// Node `i` gets `failover_priority: priorities[i]` (Patroni's default, 1, when absent).
    pub priorities: &'a [u32],
    /// More `bootstrap.dcs` lines (`synchronous_mode: true`).
    pub dcs_extra: &'a str,
    /// The REST API over HTTPS with client certificates required (`restapi.certfile`,
    /// `keyfile`, `cafile`, `verify_client: required`; the CLIs' and agents' client
    /// certificate in `ctl`), as Patroni's acceptance suite runs it.
    pub https: bool,
}

pub struct MixedCluster {
    pub scope: String,
    pub etcd: EtcdServer,
    pub nodes: Vec<MixedNode>,
    /// A client of the nodes' REST APIs (with the client certificate over HTTPS).
    pub http: reqwest::Client,
    pgkeel: PathBuf,
    /// Removed on drop unless `PGKEEL_KEEP_TEST_DIR` is set (then its path is printed).
    dir: Option<tempfile::TempDir>,
}

impl MixedCluster {
    /// Writes one Patroni YAML per node (`node1`...), starts etcd; starts no node.
    pub fn new(
        scope: &str,
        nodes: usize,
        spec: &Spec,
        pgkeel: &Path,
    ) -> anyhow::Result<MixedCluster> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgkeel-{scope}-"))
            .tempdir()?;
        open_dir(dir.path())?;
        let etcd = EtcdServer::start(&dir.path().join("etcd"))?;
        let (uid, gid) = (uid_of("postgres")?, gid_of("postgres")?);
        let tls = if spec.https {
            Some(write_pki(&dir.path().join("tls"), uid, gid)?)
        } else {
            None
        };
        let mut out = Vec::new();
        for i in 1..=nodes {
            let ndir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&ndir)?;
            std::os::unix::fs::chown(&ndir, Some(uid), Some(gid))?;
            let node = MixedNode {
                name: format!("node{i}"),
                config: ndir.join("node.yml"),
                data_dir: ndir.join("data"),
                pg_port: super::free_port(),
                api_port: super::free_port(),
                dir: ndir,
                kind: Kind::Patroni,
                https: spec.https,
                child: None,
            };
            let priority = spec.priorities.get(i - 1).copied().unwrap_or(1);
            let etcd = etcd.endpoint.to_string();
            let yaml = render(
                scope,
                &node,
                &etcd,
                priority,
                spec.dcs_extra,
                tls.as_deref(),
            );
            write_private(&node.config, &yaml)?;
            std::os::unix::fs::chown(&node.config, Some(uid), Some(gid))?;
            out.push(node);
        }
        // The tests' own client: the agents' peer client (HTTPS with `ctl`'s certificate).
        let cfg = pgkeel_core::config::load_file(&out[0].config)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .config;
        let http = pgkeel_agent::tls::load(&cfg)?.peers;
        Ok(MixedCluster {
            scope: scope.into(),
            etcd,
            nodes: out,
            http,
            pgkeel: pgkeel.into(),
            dir: Some(dir),
        })
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Starts node `i` under Patroni, as `postgres`, from its own directory.
    pub fn start_patroni(&mut self, i: usize) -> anyhow::Result<()> {
        let (uid, gid) = (uid_of("postgres")?, gid_of("postgres")?);
        let node = &mut self.nodes[i];
        node.kind = Kind::Patroni;
        let log = append(&node.log())?;
        std::os::unix::fs::chown(node.log(), Some(uid), Some(gid))?;
        let child = Command::new(venv().join("bin/patroni"))
            .arg(&node.config)
            .current_dir(&node.dir)
            .env_clear()
            .env("PATH", "/usr/lib/postgresql/15/bin:/usr/bin:/bin")
            .env("HOME", &node.dir)
            .env("LANG", "C.UTF-8")
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting patroni")?;
        node.child = Some(child);
        Ok(())
    }

    /// Starts node `i` under pgkeel as root, with the node's Patroni YAML unchanged.
    pub fn start_pgkeel(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_pgkeel_as(i, None)
    }

    /// Starts node `i` under pgkeel as `postgres`, as Patroni ran (the same service unit
    /// with only its command changed).
    pub fn start_pgkeel_as_postgres(&mut self, i: usize) -> anyhow::Result<()> {
        let ids = (uid_of("postgres")?, gid_of("postgres")?);
        self.start_pgkeel_as(i, Some(ids))
    }

    fn start_pgkeel_as(&mut self, i: usize, user: Option<(u32, u32)>) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        node.kind = Kind::Pgkeel;
        let log = append(&node.log())?;
        let mut cmd = Command::new(&self.pgkeel);
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(node.log(), Some(uid), Some(gid))?;
            cmd.uid(uid)
                .gid(gid)
                .env("HOME", &node.dir)
                .env("PATH", "/usr/bin:/bin");
        }
        let child = cmd
            .arg("agent")
            .arg(&node.config)
            .current_dir(&node.dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting pgkeel")?;
        node.child = Some(child);
        Ok(())
    }

    /// Runs a pgkeel agent with node `i`'s YAML beside the program that runs the node now (an
    /// operator who forgot to stop Patroni); returns its exit status and log once it exits,
    /// or an error if it still runs after `timeout` (it is then killed).
    pub fn start_second_pgkeel(
        &self,
        i: usize,
        timeout: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, String)> {
        let node = &self.nodes[i];
        let path = node.dir.join("second-pgkeel.log");
        let log = append(&path)?;
        let mut child = Command::new(&self.pgkeel)
            .arg("agent")
            .arg(&node.config)
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        if let Err(e) = wait_child(&mut child, timeout) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let status = child.wait()?;
        Ok((status, std::fs::read_to_string(&path)?))
    }

    /// SIGTERM to node `i`'s program and wait for it to exit: Patroni and pgkeel both stop
    /// PostgreSQL (and give the leader key up) before they exit.
    pub fn stop(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.nodes[i].child.take() else {
            return Ok(());
        };
        signal(child.id() as i32, libc_sig::TERM);
        wait_child(&mut child, timeout)
            .with_context(|| format!("{} did not stop on SIGTERM", self.nodes[i].name))
    }

    /// SIGKILL to node `i`'s program and its PostgreSQL at once (the host is lost).
    pub fn kill_host(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut pids = postgres_pids(&node.data_dir);
        if let Some(c) = &node.child {
            pids.push(c.id() as i32);
        }
        for p in pids {
            signal(p, libc_sig::KILL);
        }
        if let Some(mut c) = node.child.take() {
            let _ = c.wait();
        }
    }

    /// The pid of node `i`'s postmaster, if one runs.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        let pid = *postgres_pids(&self.nodes[i].data_dir).first()?;
        std::path::Path::new(&format!("/proc/{pid}"))
            .exists()
            .then_some(pid)
    }

    /// Runs `patronictl -c <node i's YAML> ARGS`.
    pub fn patronictl(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(venv().join("bin/patronictl"))
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .env("LANG", "C.UTF-8"))
    }

    /// Node `i`'s YAML with Patroni's v2 `etcd:` section instead of `etcd3:`.
    pub fn use_v2_section(&self, i: usize) -> anyhow::Result<()> {
        let path = &self.nodes[i].config;
        let yaml = std::fs::read_to_string(path)?.replace("\netcd3:\n", "\netcd:\n");
        std::fs::write(path, yaml)?;
        Ok(())
    }

    /// A data directory for node `i` made by `initdb` as `postgres` (what a node of an
    /// existing cluster has), without any agent.
    pub fn initdb(&self, i: usize) -> anyhow::Result<()> {
        let (uid, gid) = (uid_of("postgres")?, gid_of("postgres")?);
        run(Command::new("/usr/lib/postgresql/15/bin/initdb")
            .arg("-D")
            .arg(&self.nodes[i].data_dir)
            .current_dir(&self.nodes[i].dir)
            .uid(uid)
            .gid(gid))
        .map(|_| ())
    }

    /// Runs `pgkeel agent --validate-config <node i's YAML>`.
    pub fn pgkeel_validate(&self, i: usize) -> anyhow::Result<String> {
        run(Command::new(&self.pgkeel)
            .args(["agent", "--validate-config"])
            .arg(&self.nodes[i].config))
    }

    /// Runs `pgkeel -c <node i's YAML> ARGS`.
    pub fn pgkeel_ctl(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(&self.pgkeel)
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args))
    }

    /// A DSN that reaches whichever node accepts writes.
    pub fn rw_dsn(&self) -> String {
        let ports: Vec<String> = self.nodes.iter().map(|n| n.pg_port.to_string()).collect();
        let hosts = vec!["127.0.0.1"; self.nodes.len()].join(",");
        format!(
            "host={hosts} port={} user=postgres password={PASSWORD} dbname=postgres \
             target_session_attrs=read-write",
            ports.join(",")
        )
    }

    /// Each node's program's last log lines, for a failing test.
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            for kind in ["patroni.log", "pgkeel.log"] {
                let Ok(log) = std::fs::read_to_string(n.dir.join(kind)) else {
                    continue;
                };
                let tail: Vec<&str> = log.lines().rev().take(50).collect();
                eprintln!("----- {} {kind} last lines -----", n.name);
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }

    pub fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(c) = &self.nodes[i].child {
                signal(c.id() as i32, libc_sig::TERM);
            }
        }
        for i in 0..self.nodes.len() {
            if let Some(mut c) = self.nodes[i].child.take() {
                if wait_child(&mut c, Duration::from_secs(30)).is_err() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        for n in &self.nodes {
            for p in postgres_pids(&n.data_dir) {
                signal(p, libc_sig::KILL);
            }
        }
        self.etcd.stop();
        if std::env::var_os("PGKEEL_KEEP_TEST_DIR").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("kept {}", d.keep().display());
            }
        }
    }
}

impl Drop for MixedCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The node's YAML: Patroni's format, every key Patroni 4.1 documents, nothing of pgkeel's.
fn render(
    scope: &str,
    n: &MixedNode,
    etcd: &str,
    priority: u32,
    dcs_extra: &str,
    tls: Option<&Path>,
) -> String {
    let (rest_tls, ctl) = tls.map_or((String::new(), String::new()), tls_sections);
    let dcs_extra: String = dcs_extra
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        r#"scope: {scope}
namespace: /service/
name: {name}

restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
  authentication:
    username: {REST_USER}
    password: {PASSWORD}
{rest_tls}{ctl}
etcd3:
  hosts: {etcd}

bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
{dcs_extra}    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 100
        shared_buffers: 32MB
        wal_keep_size: 128MB
        hot_standby: 'on'
        wal_log_hints: 'on'
  initdb:
    - encoding: UTF8
    - data-checksums

postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {PASSWORD}
    replication:
      username: replicator
      password: {PASSWORD}-repl
  parameters:
    unix_socket_directories: '{dir}'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
  failover_priority: {priority}
"#,
        name = n.name,
        api = n.api_port,
        pg = n.pg_port,
        data = n.data_dir.display(),
        dir = n.dir.display(),
    )
}

mod libc_sig {
    pub const TERM: i32 = 15;
    pub const KILL: i32 = 9;
}

fn signal(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn wait_child(child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pid {} still running after {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The postmaster (from `postmaster.pid`) and its children.
fn postgres_pids(data_dir: &Path) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return Vec::new();
    };
    let Some(pm) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return Vec::new();
    };
    let mut pids = vec![pm];
    if let Ok(out) = Command::new("pgrep").arg("-P").arg(pm.to_string()).output() {
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok()),
        );
    }
    pids
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} exited with {}: {text}", out.status);
    }
    Ok(text)
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, owned by `postgres`
/// (Patroni reads them as that user).
fn write_pki(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<PathBuf> {
    let pki = pgkeel_tls::test_pki::TestPki::new();
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for f in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        let to = dir.join(f);
        write_private(&to, &std::fs::read_to_string(pki.path(f))?)?;
        std::os::unix::fs::chown(&to, Some(uid), Some(gid))?;
    }
    Ok(dir.to_path_buf())
}

/// The REST API's TLS keys (under `restapi`) and the `ctl` section with the client
/// certificate, in Patroni's spelling.
fn tls_sections(dir: &Path) -> (String, String) {
    let f = |name: &str| dir.join(name).display().to_string();
    (
        format!(
            "  certfile: {}\n  keyfile: {}\n  cafile: {}\n  verify_client: required\n",
            f("server.pem"),
            f("server.key"),
            f("ca.pem")
        ),
        format!(
            "ctl:\n  certfile: {}\n  keyfile: {}\n  cacert: {}\n",
            f("client.pem"),
            f("client.key"),
            f("ca.pem")
        ),
    )
}

/// Writes `text` to a new file of mode 0600 (the YAML holds passwords).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(f.write_all(text.as_bytes())?)
}

fn append(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// A directory every user may traverse (PostgreSQL runs as `postgres` below it).
fn open_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `id FLAG [USER]` (no user: this process's).
fn id_field(flag: &str, user: &str) -> anyhow::Result<u32> {
    let mut cmd = Command::new("id");
    cmd.arg(flag);
    if !user.is_empty() {
        cmd.arg(user);
    }
    let out = cmd.output()?;
    anyhow::ensure!(out.status.success(), "no user {user}");
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn uid_of(user: &str) -> anyhow::Result<u32> {
    id_field("-u", user)
}

fn gid_of(user: &str) -> anyhow::Result<u32> {
    id_field("-g", user)
}
