//! Helpers for tests that run real PostgreSQL (this crate's and the end-to-end suites).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pgkeel_core::config::PgUser;

use crate::run_as::Owner;
use crate::PgSettings;

/// Fails with the install hint when the PostgreSQL 15 programs are missing.
pub fn require_postgres() -> anyhow::Result<()> {
    for p in [
        "initdb",
        "pg_ctl",
        "postgres",
        "pg_basebackup",
        "pg_rewind",
        "pg_controldata",
    ] {
        crate::bin::find(None, p)?;
    }
    Ok(())
}

/// A loopback port that was free a moment ago (the OS picked it for port 0). Tests run in
/// parallel, so fixed ports are never used.
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A fresh directory under /tmp that PostgreSQL's owner can use: when running as root it
/// is given to `postgres`, so data directories, pgpass files and logs can live inside.
/// Removed when dropped. Fails with the install hint when PostgreSQL is missing.
pub fn pg_tempdir() -> anyhow::Result<tempfile::TempDir> {
    require_postgres()?;
    let dir = tempfile::Builder::new()
        .prefix("pgkeel-test-")
        .tempdir_in("/tmp")
        .context("creating a temporary directory under /tmp")?;
    // A path that does not exist resolves to `postgres` when root, to self otherwise.
    Owner::resolve(&dir.path().join("nonexistent"))?.chown(dir.path())?;
    Ok(dir)
}

/// Settings for a node `name` with its data directory and pgpass file under `dir`,
/// listening on 127.0.0.1:`port`, with fixed test passwords.
pub fn sample_settings(name: &str, dir: &Path, port: u16) -> PgSettings {
    PgSettings {
        name: name.to_string(),
        data_dir: dir.join(format!("{name}-data")),
        bin_dir: None,
        listen_addresses: vec!["127.0.0.1".into()],
        port,
        superuser: PgUser::new("postgres", Some("super'secret")),
        replication: PgUser::new("replicator", Some("repl:pass")),
        rewind: PgUser::new("postgres", Some("super'secret")),
        parameters: BTreeMap::new(),
        pg_hba: crate::HbaLines::Defaults,
        pgpass: dir.join(format!("{name}.pgpass")),
        initdb: Vec::new(),
        basebackup: Vec::new(),
        op_timeout: Duration::from_secs(60),
        probe_timeout: Duration::from_secs(2),
        use_unix_socket: false,
        pg_ident: None,
    }
}

/// Stops, on drop, any postmaster still running in these data directories (SIGQUIT: an
/// immediate shutdown), so a failing test does not leave PostgreSQL behind.
#[derive(Debug, Default)]
pub struct StopOnDrop(pub Vec<std::path::PathBuf>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for dir in &self.0 {
            if let Some(pid) = crate::control::live_postmaster(dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGQUIT,
                );
            }
        }
    }
}

/// A session as the agent opens its own: the superuser with its password and TLS options.
pub async fn agent_client(pg: &crate::Pg) -> anyhow::Result<tokio_postgres::Client> {
    pg.client().await
}

/// A superuser session with the password from the settings, as any client would open it.
pub async fn superuser_client(pg: &crate::Pg) -> tokio_postgres::Client {
    let s = pg.settings();
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(s.port)
        .user(&s.superuser.username)
        .password(s.superuser.password.as_deref().unwrap_or_default())
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("superuser password login");
    tokio::spawn(conn);
    client
}

/// What core plans for a replica of `up` made by pg_basebackup (the replication user's
/// connection string, TLS options included), for tests that drive the adapter alone.
pub fn basebackup_plan(
    pg: &crate::Pg,
    up: &pgkeel_core::Upstream,
) -> pgkeel_core::action::ClonePlan {
    let s = pg.settings();
    let pairs = crate::conf::remote_pairs(up, &s.replication);
    pgkeel_core::action::ClonePlan {
        source: Some(up.clone()),
        what: format!("from leader '{}'", up.member),
        methods: vec![pgkeel_core::action::CloneMethod::Basebackup {
            connstring: format!("dbname=postgres {}", crate::conf::conninfo(&pairs)),
        }],
    }
}

/// initdb, start and post_bootstrap (the roles), as the agent bootstraps a new cluster.
pub async fn bootstrap_initdb(pg: &crate::Pg) -> anyhow::Result<()> {
    pg.bootstrap(&pgkeel_core::action::BootstrapPlan::Initdb)
        .await?;
    pg.post_bootstrap(None).await
}
