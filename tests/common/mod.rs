//! Shared by the end-to-end tests: a real cluster (etcd + agents + PostgreSQL 15) on free
//! loopback ports, in a temporary directory, and a few SQL helpers.

#![allow(dead_code)]

use std::time::{Duration, Instant};

pub mod patroni;
pub mod writer;

use pgkeel_localcluster::{LocalCluster, Node, Options, Timing};
use tokio_postgres::Client;

pub const BOOT: Duration = Duration::from_secs(180);

pub struct TestCluster {
    pub cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

pub fn start(scope: &str, nodes: usize, timing: Timing) -> TestCluster {
    start_with(scope, nodes, timing, "", &[])
}

/// A cluster with more `bootstrap.dcs` lines and per-node tags (YAML lines, see
/// `pgkeel_localcluster::Options`).
pub fn start_with(
    scope: &str,
    nodes: usize,
    timing: Timing,
    dcs_extra: &str,
    node_tags: &[&str],
) -> TestCluster {
    start_opts(scope, nodes, timing, |o| {
        o.dcs_extra = dcs_extra.into();
        o.node_tags = node_tags.iter().map(|t| t.to_string()).collect();
    })
}

/// A cluster in a temporary directory with whatever else `tweak` sets in its options.
pub fn start_opts(
    scope: &str,
    nodes: usize,
    timing: Timing,
    tweak: impl FnOnce(&mut Options),
) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgkeel-{scope}-"))
        .tempdir()
        .expect("tempdir");
    let mut opts = Options {
        nodes,
        dir: dir.path().to_path_buf(),
        pgkeel: env!("CARGO_BIN_EXE_pgkeel").into(),
        scope: scope.into(),
        timing,
        rest_auth: None,
        ..Default::default()
    };
    tweak(&mut opts);
    // reqwest needs a process-wide crypto provider before any client is built.
    pgkeel_tls::install_default_provider();
    let cluster = LocalCluster::start(opts).expect("starting the local cluster");
    TestCluster { cluster, _dir: dir }
}

/// Starts a cluster and waits until it has a leader and streaming replicas; returns the
/// leader's name. On failure the agents' logs are printed before the panic.
pub async fn start_healthy(scope: &str, nodes: usize, timing: Timing) -> (TestCluster, String) {
    let c = start(scope, nodes, timing);
    let leader = must(&c, c.wait_healthy(nodes, BOOT).await);
    (c, leader)
}

/// The value, or the agents' logs and a panic.
pub fn must<T>(c: &LocalCluster, r: anyhow::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            dump_logs(c);
            panic!("{e:#}");
        }
    }
}

/// Prints each agent's log: called when a test fails, so CI output explains why.
pub fn dump_logs(c: &LocalCluster) {
    for n in &c.nodes {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!("----- {} ({}) last lines -----", n.name, n.log.display());
        for l in tail.into_iter().rev() {
            eprintln!("{l}");
        }
    }
}

/// How long a test's session gives each host to connect and start a backend. Generous: on a
/// loaded 2-core machine a healthy primary can take seconds to start a backend, and a test
/// that moves on to the next host too early sees only read-only servers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A session through `dsn` with the client every measurement uses
/// ([`pgkeel_bench::client::connect`]), each host given [`CONNECT_TIMEOUT`].
pub async fn connect(dsn: &str) -> anyhow::Result<Client> {
    pgkeel_bench::client::connect(dsn, CONNECT_TIMEOUT).await
}

/// Retries `f` until it succeeds or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not within {timeout:?}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether the server at `dsn` accepts writes.
pub async fn is_writable(dsn: &str) -> anyhow::Result<bool> {
    let c = connect(dsn).await?;
    let row = c.query_one("SELECT NOT pg_is_in_recovery()", &[]).await?;
    Ok(row.get(0))
}

pub async fn count_rows(dsn: &str, table: &str, min: i64) -> anyhow::Result<i64> {
    let c = connect(dsn).await?;
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    anyhow::ensure!(n >= min, "{n} rows in {table}, want {min}");
    Ok(n)
}

/// GET (or another method) and return the status code, over a raw HTTP/1.1 request.
pub async fn http_code(method: &str, url: &str) -> anyhow::Result<u16> {
    pgkeel_tls::install_default_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let m = reqwest::Method::from_bytes(method.as_bytes())?;
    Ok(client.request(m, url).send().await?.status().as_u16())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `node`'s config file copied for another agent on this host, as an operator's copy would
/// be: the member `name`, free ports, and `data_dir`. Written to `dir/pgkeel.yml`.
pub fn copied_config(
    node: &Node,
    name: &str,
    dir: &std::path::Path,
    data_dir: &std::path::Path,
) -> std::path::PathBuf {
    let yaml = std::fs::read_to_string(&node.config)
        .unwrap()
        .replace(&format!("name: {}", node.name), &format!("name: {name}"))
        .replace(
            &format!("127.0.0.1:{}", node.api_port),
            &format!("127.0.0.1:{}", free_port()),
        )
        .replace(
            &format!("127.0.0.1:{}", node.pg_port),
            &format!("127.0.0.1:{}", free_port()),
        )
        .replace(
            &node.data_dir.display().to_string(),
            &data_dir.display().to_string(),
        );
    let config = dir.join("pgkeel.yml");
    std::fs::write(&config, yaml).unwrap();
    config
}

/// What one run of the `pgkeel` binary printed, and its exit code.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `pgkeel` binary with `args` and no input (a prompt would abort it: every call
/// must be non-interactive), bounded by 120 s.
pub async fn run_pgkeel(args: &[&str]) -> Out {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .args(args)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting pgkeel");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("pgkeel {args:?} did not finish within 120 s"))
        .expect("waiting for pgkeel");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
