//! pgkeel's adapter for the local PostgreSQL: observe it, and bootstrap (initdb or a custom
//! method), start, stop, promote, follow, clone (the replica creation methods), rewind and
//! re-clone it.
//!
//! Nothing here decides anything: the agent runtime calls these operations when
//! `pgkeel_core::decide` asks for them. Every PostgreSQL program runs as the data
//! directory's owner (see `run_as`), and pgkeel owns `postgresql.conf` and `pg_hba.conf`
//! in the data directory (see `conf`, `hba`, `managed`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pgkeel_core::config::{InitdbOption, PgUser};

mod bin;
mod bootstrap;
mod catalog;
mod clone;
mod conf;
mod control;
mod data_dir_check;
mod details;
mod disk;
mod dynamic_cache;
mod hba;
mod history;
mod kill;
mod lifecycle;
mod managed;
mod offline_check;
mod port;
mod rewind;
mod run_as;
mod script;
pub mod signal;
mod slots;
mod status;
mod sync_rep;
/// Test helpers (temporary data directories, sample settings): this crate's unit tests, and
/// its integration tests through the `testing` feature, which no product crate enables.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tls;
mod tls_check;

pub use control::live_postmaster;
pub use data_dir_check::check_data_dir;
pub use details::{PgDetails, ReplicationInfo};
pub use lifecycle::PostmasterExited;
pub use offline_check::{check_parameters_offline, OfflineRefusal};
pub use port::Postgres;
pub use slots::SlotCopy;
pub use sync_rep::SyncRepState;
pub use tls_check::check_client_tls;

/// Everything the adapter needs to know about the local PostgreSQL, already validated and
/// merged by the caller.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Member name: `cluster_name`, and `application_name` in `primary_conninfo`.
    pub name: String,
    pub data_dir: PathBuf,
    /// `None`: `/usr/lib/postgresql/15/bin`, then `PATH`.
    pub bin_dir: Option<PathBuf>,
    pub listen_addresses: Vec<String>,
    pub port: u16,
    /// The agent connects as this role over loopback TCP, with its password and TLS
    /// options (see `tls`).
    pub superuser: PgUser,
    /// Replicas stream (`primary_conninfo`) and clone (pg_basebackup) as this role.
    pub replication: PgUser,
    /// pg_rewind's source connection: `authentication.rewind`, else the superuser.
    pub rewind: PgUser,
    /// Dynamic and local `parameters`, merged.
    pub parameters: BTreeMap<String, String>,
    /// The pg_hba lines configured, and where from (see `hba`).
    pub pg_hba: HbaLines,
    pub pgpass: PathBuf,
    pub initdb: Vec<InitdbOption>,
    pub basebackup: Vec<InitdbOption>,
    /// Bound for start, stop and promote waits.
    pub op_timeout: Duration,
    /// Deadline of one health probe (data directory read, new connection, status query,
    /// WAL flush): past it the server counts as not answering.
    pub probe_timeout: Duration,
    /// The agent's own sessions go through the Unix socket (`postgresql.use_unix_socket`).
    pub use_unix_socket: bool,
    /// `postgresql.pg_ident`: pg_ident.conf's lines (`None`: an existing file is kept).
    pub pg_ident: Option<Vec<String>>,
}

/// The pg_hba lines of the config, by where they came from: that decides whether pgkeel
/// adds lines of its own (see `hba::render_pg_hba`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HbaLines {
    /// None configured: pgkeel's defaults.
    #[default]
    Defaults,
    /// Only `bootstrap.pg_hba`: Patroni appends them to initdb's pg_hba.conf, whose
    /// loopback lines let the agent in; pgkeel writes them after its own narrow ones.
    Bootstrap(Vec<String>),
    /// `postgresql.pg_hba` (local, or in the dynamic config): written exactly, as Patroni
    /// writes them, with no line of pgkeel's.
    Configured(Vec<String>),
}

/// The local PostgreSQL. Cheap to clone: clones share the settings.
#[derive(Debug, Clone)]
pub struct Pg {
    data_dir: PathBuf,
    /// Replaced as a whole when the cluster's dynamic configuration changes; readers take
    /// a snapshot (`settings()`), so one operation sees one consistent version.
    settings: Arc<std::sync::RwLock<Arc<PgSettings>>>,
    /// The role the managed files were last written for, to rewrite them on a change.
    last_role: Arc<std::sync::Mutex<Option<conf::OwnedRole>>>,
    /// The postmaster as last seen, to check and signal it through `/proc` alone.
    postmaster: Arc<signal::PostmasterCache>,
    /// A blocking read of the data directory is in flight (see `bounded_fs`).
    fs_busy: Arc<AtomicBool>,
    /// The server is silent: the last observation, or a call made since, got no answer
    /// within its deadline (see `status::was_silent`).
    last_silent: Arc<AtomicBool>,
    /// The primary's flushed WAL position at the last probe (see `status::wal_flushes`).
    last_flush: Arc<std::sync::Mutex<Option<pgkeel_core::Lsn>>>,
    /// Who PostgreSQL programs run as, once the data directory exists: not looked up
    /// (`stat`, `getpwuid`) again for every program the agent runs.
    owner: Arc<std::sync::Mutex<Option<run_as::Owner>>>,
    /// The agent's TLS for its own connections, with the options and home it was built
    /// from (rebuilt when they change).
    client_tls: Arc<std::sync::Mutex<Option<tls::Cached>>>,
}

impl Pg {
    /// A relative `data_dir` is made absolute now, because PostgreSQL resolves relative
    /// paths in its config against the data directory, not against the agent's cwd.
    pub fn new(settings: PgSettings) -> Pg {
        Pg::with_postmaster_cache(settings, Arc::default())
    }

    /// As [`Pg::new`], sharing the remembered postmaster with the fence, which must signal
    /// it without reading the data directory.
    pub fn with_postmaster_cache(
        mut settings: PgSettings,
        postmaster: Arc<signal::PostmasterCache>,
    ) -> Pg {
        if let Ok(abs) = std::path::absolute(&settings.data_dir) {
            settings.data_dir = abs;
        }
        Pg {
            data_dir: settings.data_dir.clone(),
            settings: Arc::new(std::sync::RwLock::new(Arc::new(settings))),
            last_role: Arc::default(),
            postmaster,
            fs_busy: Arc::default(),
            last_silent: Arc::default(),
            last_flush: Arc::default(),
            owner: Arc::default(),
            client_tls: Arc::default(),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<PgSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the parameters and pg_hba lines (a dynamic configuration change). Returns
    /// whether anything changed; the caller then rewrites and reloads ([`Pg::apply`]).
    pub fn set_config(
        &self,
        parameters: BTreeMap<String, String>,
        pg_hba: HbaLines,
        pg_ident: Option<Vec<String>>,
    ) -> bool {
        let mut guard = self.settings.write().unwrap_or_else(|e| e.into_inner());
        if guard.parameters == parameters && guard.pg_hba == pg_hba && guard.pg_ident == pg_ident {
            return false;
        }
        let mut next = (**guard).clone();
        next.parameters = parameters;
        next.pg_hba = pg_hba;
        next.pg_ident = pg_ident;
        *guard = Arc::new(next);
        true
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn program(&self, name: &str) -> anyhow::Result<PathBuf> {
        bin::find(self.settings().bin_dir.as_deref(), name)
    }

    pub(crate) fn owner(&self) -> anyhow::Result<run_as::Owner> {
        let mut cached = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = &*cached {
            return Ok(o.clone());
        }
        let owner = run_as::Owner::resolve(self.data_dir())?;
        if owner.from_data_dir {
            *cached = Some(owner.clone());
        }
        Ok(owner)
    }

    pub(crate) fn standby_signal_path(&self) -> PathBuf {
        self.data_dir().join("standby.signal")
    }

    /// Where the postmaster's stderr goes (`pg_ctl -l`); its tail explains failed starts.
    pub(crate) fn server_log_path(&self) -> PathBuf {
        self.data_dir().join("pgkeel-postmaster.log")
    }

    /// The data directory is missing or holds nothing but what a mount point brings
    /// (`lost+found`) and hidden files, as Patroni judges it.
    pub(crate) fn data_dir_empty(&self) -> bool {
        data_dir_is_empty(self.data_dir())
    }
}

/// See [`Pg::data_dir_empty`].
pub(crate) fn data_dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "lost+found" || name.starts_with('.')
        }),
        Err(_) => !dir.exists(),
    }
}
