//! The local cluster's etcd: a single member on free loopback ports (the demo, the tests, the
//! benchmarks), or a multi-member cluster whose members each listen on their own address (the
//! fault suite puts each member in its own network namespace). Its data lives under the
//! cluster's directory and the process is killed when the server is dropped.
//!
//! Tests run in parallel, so a single member uses no fixed ports: it asks the kernel for two
//! free ports (client, peer). Another process can grab such a port between our probe and etcd's
//! bind, so a server that dies during start-up is retried on new ports.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use pgkeel_core::config::HostPort;

const START_ATTEMPTS: usize = 3;
const READY_DEADLINE: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One member of a multi-member cluster: where it listens and how it is started.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    /// The address it listens on for clients and peers (its namespace's address).
    pub host: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Words put before the etcd command (`ip netns exec NS`); empty: run it directly.
    pub exec_prefix: Vec<String>,
}

/// How a single member serves its clients: over TLS (`--cert-file`, `--key-file`,
/// `--trusted-ca-file`, and `--client-cert-auth` when client certificates are required),
/// and how long its auth tokens live (`--auth-token-ttl`, etcd's default 300 s).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub tls: Option<ServerTlsFiles>,
    pub auth_token_ttl: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA of client certificates.
    pub ca: PathBuf,
    /// `--client-cert-auth`: a client without a certificate the CA signed is refused.
    pub client_cert_auth: bool,
}

/// A running etcd, killed when dropped.
pub struct EtcdServer {
    /// Where clients connect: `127.0.0.1:<port>`.
    pub endpoint: HostPort,
    /// `https` when it serves TLS, else `http`.
    pub scheme: &'static str,
    /// Where `GET /health` answers over plain HTTP (the client port, or with TLS the
    /// metrics port).
    health: HostPort,
    /// The member's name in its cluster.
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    exec_prefix: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd with its data (and `etcd.log`) under `data_dir` and waits until it is
    /// healthy.
    pub fn start(data_dir: &Path) -> anyhow::Result<EtcdServer> {
        EtcdServer::start_with(data_dir, &ServeOptions::default())
    }

    /// [`EtcdServer::start`], serving clients as `opts` says.
    pub fn start_with(data_dir: &Path, opts: &ServeOptions) -> anyhow::Result<EtcdServer> {
        let binary = find_etcd()?;
        let mut last_err = anyhow!("etcd was not started");
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        for attempt in 0..START_ATTEMPTS {
            let dir = data_dir.join(format!("etcd-{attempt}"));
            let (client_port, peer_port) = (free_port()?, free_port()?);
            let name = unique_name();
            let client_url = format!("{scheme}://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let mut health_port = client_port;
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", dir.join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={name}={peer_url}"),
                format!("--initial-cluster-token={name}"),
                "--initial-cluster-state=new".to_string(),
            ];
            if let Some(tls) = &opts.tls {
                // /health over plain HTTP on a port of its own, for the readiness poll.
                health_port = free_port()?;
                args.extend([
                    format!("--cert-file={}", tls.cert.display()),
                    format!("--key-file={}", tls.key.display()),
                    format!("--trusted-ca-file={}", tls.ca.display()),
                    format!("--listen-metrics-urls=http://127.0.0.1:{health_port}"),
                ]);
                if tls.client_cert_auth {
                    args.push("--client-cert-auth".into());
                }
            }
            if let Some(ttl) = opts.auth_token_ttl {
                args.push(format!("--auth-token-ttl={ttl}"));
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut server = EtcdServer {
                endpoint: HostPort {
                    host: "127.0.0.1".into(),
                    port: client_port,
                },
                scheme,
                health: HostPort {
                    host: "127.0.0.1".into(),
                    port: health_port,
                },
                name,
                binary: binary.clone(),
                args,
                exec_prefix: Vec::new(),
                log: dir.join("etcd.log"),
                child: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last_err = e.context(format!("start attempt {}", attempt + 1)),
            }
        }
        Err(last_err)
    }

    /// Starts a cluster of `members` (data under `data_dir/<name>`) and waits until every
    /// member is healthy. Addresses are the caller's: no retry on other ports.
    pub fn start_cluster(
        data_dir: &Path,
        members: &[MemberSpec],
        token: &str,
    ) -> anyhow::Result<Vec<EtcdServer>> {
        let binary = find_etcd()?;
        let peer_url = |m: &MemberSpec| format!("http://{}:{}", m.host, m.peer_port);
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, peer_url(m)))
            .collect();
        let mut servers = Vec::with_capacity(members.len());
        for m in members {
            let dir = data_dir.join(&m.name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let client_url = format!("http://{}:{}", m.host, m.client_port);
            let args = vec![
                format!("--name={}", m.name),
                format!("--data-dir={}", dir.join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={}", peer_url(m)),
                format!("--initial-advertise-peer-urls={}", peer_url(m)),
                format!("--initial-cluster={}", initial.join(",")),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".to_string(),
            ];
            let endpoint = HostPort {
                host: m.host.clone(),
                port: m.client_port,
            };
            let mut server = EtcdServer {
                health: endpoint.clone(),
                endpoint,
                scheme: "http",
                name: m.name.clone(),
                binary: binary.clone(),
                args,
                log: dir.join("etcd.log"),
                exec_prefix: m.exec_prefix.clone(),
                child: None,
            };
            // No member is healthy before a quorum runs: start them all, then wait.
            server.spawn()?;
            servers.push(server);
        }
        for s in &mut servers {
            s.wait_healthy()
                .map_err(|e| e.context(format!("etcd log:\n{}", s.log_tail())))?;
        }
        Ok(servers)
    }

    /// `http://127.0.0.1:<port>` (`https://` over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.endpoint)
    }

    /// The etcd process id while it runs (e.g. to SIGSTOP it in a fault test).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills etcd (an outage); its data stays for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already dead is fine: the goal is that it is not running.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data after [`EtcdServer::stop`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// Starts the process again after [`EtcdServer::stop`] without waiting for it to be
    /// healthy: a member of a cluster that lost its quorum is not healthy until enough other
    /// members run too.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Waits until `GET /health` says healthy (the member sees a leader).
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.wait_healthy()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        match self.wait_healthy() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stop();
                Err(e.context(format!("etcd log:\n{}", self.log_tail())))
            }
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = match self.exec_prefix.split_first() {
            Some((program, words)) => {
                let mut c = Command::new(program);
                c.args(words).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // etcd refuses to start on arm64 without this acknowledgement.
        if cfg!(target_arch = "aarch64") {
            cmd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls `GET /health` until etcd reports itself healthy (it has a leader), or fails.
    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        let ip: Ipv4Addr = self.health.host.parse().unwrap_or(Ipv4Addr::LOCALHOST);
        let addr = SocketAddr::from((ip, self.health.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("etcd exited during start-up with {status}");
                }
            }
            if health_ok(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("etcd on {addr} not healthy after {READY_DEADLINE:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn health_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(format!("GET /health HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip()).as_bytes())?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    attempt().is_ok_and(|body| body.contains(r#""health":"true""#))
}

/// `etcd` on PATH, else Debian's `/usr/bin/etcd`.
fn find_etcd() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([
            PathBuf::from("/usr/bin/etcd"),
            PathBuf::from("/usr/local/bin/etcd"),
        ])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("etcd binary not found; install it with: apt-get install etcd-server")
        })
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "pgkeel-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// etcd's `user add root`, `user grant-role root root` and `auth enable`, as an operator
/// turns authentication on, over `tls` when the server serves it (the agents' client
/// certificate presented). Runs on a thread of its own: callers may be inside a runtime.
pub(crate) fn enable_auth(
    server: &EtcdServer,
    tls: Option<&crate::EtcdTls>,
    root_password: &str,
) -> anyhow::Result<()> {
    let url = server.url();
    let password = root_password.to_string();
    let tls = match tls {
        None => None,
        Some(t) => {
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            Some(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(&t.ca)?))
                    .identity(etcd_client::Identity::from_pem(
                        read(&t.client_cert)?,
                        read(&t.client_key)?,
                    )),
            )
        }
    };
    std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut opts = etcd_client::ConnectOptions::new();
            if let Some(tls) = tls {
                opts = opts.with_tls(tls);
            }
            let mut c = etcd_client::Client::connect([url.as_str()], Some(opts)).await?;
            c.user_add("root", password.as_str(), None).await?;
            c.user_grant_role("root", "root").await?;
            c.auth_enable().await?;
            anyhow::Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow!("enabling etcd's authentication panicked"))?
    .context("enabling etcd's authentication")
}
