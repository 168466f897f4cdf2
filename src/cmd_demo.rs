//! `pgkeel demo`: a live local cluster for a new user, until Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pgkeel_localcluster::{healthy, LocalCluster, Options, Timing};

/// `println!` that ignores a closed output: the demo must still stop its cluster.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub async fn run(nodes: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let keep = dir.is_some();
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("pgkeel-demo-{}", std::process::id())),
    };
    let pgkeel = std::env::current_exe().context("locating the pgkeel binary")?;
    // The REST API's unsafe methods (switchover, restart, PATCH /config...) need these; the
    // nodes' config files carry them, so `pgkeel -c <node config>` can call them too.
    let rest_auth = (REST_USER.to_string(), random_password()?);
    say!(
        "Starting etcd and {nodes} pgkeel nodes under {} ...",
        dir.display()
    );
    let mut cluster = LocalCluster::start(Options {
        nodes,
        dir: dir.clone(),
        pgkeel,
        scope: "demo".into(),
        timing: Timing::default(),
        rest_auth: Some(rest_auth.clone()),
        ..Default::default()
    })?;
    let result = show(&mut cluster, nodes, &rest_auth).await;
    say!("\nStopping the cluster ...");
    cluster.shutdown();
    drop(cluster);
    if keep {
        say!("Kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        say!("Removed {}", dir.display());
    }
    result
}

/// The REST API's user in the demo (`restapi.authentication.username`).
const REST_USER: &str = "pgkeel";

/// 24 random characters of base64url (144 bits) from the kernel's generator.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b % 64)] as char)
        .collect())
}

async fn show(
    cluster: &mut LocalCluster,
    nodes: usize,
    (user, password): &(String, String),
) -> anyhow::Result<()> {
    let leader = tokio::select! {
        r = cluster.wait_healthy(nodes, Duration::from_secs(180)) => r.with_context(|| {
            format!("the demo cluster did not come up; agent logs are in {}/node*/agent.log", cluster.opts.dir.display())
        })?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
    };
    let c = cluster.load().await?;
    say!(
        "\nThe cluster is up: {leader} leads, {} replica(s) stream from it.\n",
        nodes - 1
    );
    say!(
        "{}",
        pgkeel_view::output_members(
            &c,
            &pgkeel_api::cluster_json(&c, "demo"),
            "demo",
            false,
            pgkeel_view::View::Format(pgkeel_view::Format::Pretty),
        )
        .trim_end()
    );
    say!(
        "\nPostgreSQL (user postgres, password {}):",
        pgkeel_localcluster::SUPERUSER_PASSWORD
    );
    for n in &cluster.nodes {
        say!("  {}: psql \"{}\"", n.name, n.dsn());
    }
    say!(
        "  read-write, whichever node leads:\n    psql \"{}\"",
        cluster.rw_dsn()
    );
    say!(
        "\nREST API (Patroni-compatible; switchover, restart, PATCH /config and the other unsafe methods need user {user}, password {password}):"
    );
    for n in &cluster.nodes {
        say!(
            "  {}: {}/patroni   {}/primary   {}/replica",
            n.name,
            n.api_url(),
            n.api_url(),
            n.api_url()
        );
    }
    if let Some(n) = cluster.nodes.first() {
        say!(
            "  e.g. curl -s -u {user}:{password} -X POST {}/reload",
            n.api_url()
        );
    }
    say!("\nConfig files:");
    for n in &cluster.nodes {
        say!(
            "  {}: {}   (pgkeel -c {} list)",
            n.name,
            n.config.display(),
            n.config.display()
        );
    }
    if let Some(li) = cluster.index_of(&leader) {
        let pids: Vec<String> = [cluster.nodes[li].agent_pid(), cluster.postmaster_pid(li)]
            .into_iter()
            .flatten()
            .map(|p| p.to_string())
            .collect();
        let exe = std::env::current_exe().unwrap_or_else(|_| "pgkeel".into());
        say!(
            "\nTry losing the leader's host (its agent and PostgreSQL at once) and watch a replica take over:\n  kill -9 {}\nthen bring {leader} back; it rejoins as a replica (pg_rewind):\n  {} agent {} >> {} 2>&1 &",
            pids.join(" "),
            exe.display(),
            cluster.nodes[li].config.display(),
            cluster.nodes[li].log.display(),
        );
    }
    say!("Press Ctrl-C to stop everything.\n");

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tick.tick() => {}
        }
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        let line = match cluster.load().await {
            Ok(c) => status_line(&c, &names),
            Err(e) => format!("etcd unreachable: {e}"),
        };
        // Output closed (piped into a program that exited): stop, cleaning up, rather than
        // die on the write and leave the cluster running.
        let mut out = std::io::stdout();
        if write!(out, "\r\x1b[K{line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

/// One line per second: each node's role and state, and whether the cluster is healthy.
fn status_line(c: &pgkeel_core::Cluster, names: &[&str]) -> String {
    let members: Vec<String> = names
        .iter()
        .map(|name| match c.members.get(*name).map(|e| e.value()) {
            None => format!("{name}: down"),
            Some(None) => format!("{name}: unreadable member key"),
            Some(Some(m)) if c.leader_name() == Some(*name) => {
                format!("{name}: Leader TL{}", m.timeline.unwrap_or(0))
            }
            Some(Some(m)) => format!(
                "{name}: {}",
                m.replication_state
                    .clone()
                    .unwrap_or_else(|| m.state.clone())
            ),
        })
        .collect();
    let health = match healthy(c, names.len()) {
        Ok(_) => "healthy".to_string(),
        Err(why) => why,
    };
    format!("[{health}] {}", members.join(" | "))
}
