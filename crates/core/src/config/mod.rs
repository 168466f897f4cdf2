//! pgkeel's configuration: Patroni's YAML, parsed into a raw form that mirrors the file
//! (`raw`), then validated into the typed [`Config`] the rest of the code sees (`validate`,
//! with one module per section: `etcd`, `postgresql`, `member_tags`, `dynamic`).
//!
//! Bad values are errors naming the key, its line (`lines`) and what is allowed; unknown or
//! unsupported keys are warnings (`diag`). `dynamic` also merges the DCS `/config` key over
//! the local `bootstrap.dcs` ([`effective_dynamic`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::tags::Tags;

mod ciphers;
mod diag;
mod dynamic;
mod env;
mod etcd;
mod lines;
mod log;
mod member_tags;
mod methods;
mod pg_conn;
mod postgresql;
mod raw;
mod reload;
mod rest_access;
mod rest_tls;
mod scalar;
mod validate;

pub use diag::ConfigError;
pub use dynamic::effective_dynamic;
pub use dynamic::sync_mode_in;
pub use dynamic::{
    adopt_dynamic, check_dynamic, check_dynamic_with, drop_refused_parameters, Adopted,
    ConfigProblem, StoredConfig,
};
pub use log::{JsonLog, Log};
pub use pg_conn::{ConnOptions, PgUser, Prefer3, SslMode, SslNegotiation};
pub use reload::{plan_reload, ReloadPlan};
pub use rest_access::{AllowEntry, RestAccess};
pub use validate::{
    load_ctl_file, load_ctl_str, load_ctl_str_env, load_file, load_str, load_str_env, CtlConfig,
    Loaded,
};

/// `host:port` as given (host may be a name, an IPv4 or a bracketed IPv6 address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub scope: String,
    /// Normalised to start with `/` and have no trailing `/` (Patroni's default `/service`).
    pub namespace: String,
    pub name: String,
    pub restapi: RestApi,
    pub etcd: Etcd,
    pub bootstrap: Bootstrap,
    pub postgresql: Postgresql,
    pub tags: Tags,
    /// The `ctl` section: how this node's own REST calls (to peers) and the CLI do TLS.
    pub ctl: Ctl,
    /// The `log` section.
    pub log: Log,
}

impl Config {
    /// The key prefix of this cluster in the DCS: `/<namespace>/<scope>/`.
    pub fn dcs_prefix(&self) -> String {
        format!("{}/{}/", self.namespace, self.scope)
    }

    /// How the agent's calls to its peers' APIs (`GET /patroni`, `POST /failsafe`) do TLS.
    ///
    /// Patroni's agent (`PatroniRequest(config, insecure=True)`) presents `ctl.certfile` and
    /// checks a server's chain against `ctl.cacert` or `restapi.cafile`, never its host
    /// name. pgkeel does the same, and two things more: the chain is checked whenever a CA
    /// is configured (Patroni checks it only when `ctl.certfile` is set too), and without
    /// `ctl.certfile` the agent presents `restapi.certfile`, so that peers requiring client
    /// certificates (`verify_client`) answer it (Patroni's docs: "if not provided, Patroni
    /// will not work correctly"). With no CA at all, servers are not verified, as in Patroni.
    pub fn peer_tls(&self) -> ClientTls {
        let identity = self
            .ctl
            .identity
            .clone()
            .or_else(|| self.restapi.tls.as_ref().map(|t| t.identity.clone()));
        let verify = match self.ctl.cacert.as_ref().or(self.restapi.cafile.as_ref()) {
            Some(ca) => VerifyServer::Chain { cafile: ca.clone() },
            None => VerifyServer::Skip,
        };
        ClientTls { verify, identity }
    }
}

/// A certificate (chain) and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    pub certfile: PathBuf,
    /// `None`: the key is in `certfile` (Patroni's default).
    pub keyfile: Option<PathBuf>,
    /// Decrypts an encrypted PKCS#8 key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`).
    pub keyfile_password: Option<String>,
}

/// `restapi.verify_client`: which requests need a client certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyClient {
    /// None asked for (Patroni's default).
    None,
    /// Asked for; requests with unsafe methods (PUT, POST, PATCH, DELETE) without one are
    /// answered 403.
    Optional { cafile: PathBuf },
    /// Every connection must present one.
    Required { cafile: PathBuf },
}

/// A TLS 1.2 cipher suite `restapi.ciphers` may name (the ones rustls implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls12Cipher {
    EcdheEcdsaAes256Gcm,
    EcdheEcdsaAes128Gcm,
    EcdheEcdsaChacha20,
    EcdheRsaAes256Gcm,
    EcdheRsaAes128Gcm,
    EcdheRsaChacha20,
}

/// `restapi.certfile` is set: the API serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub identity: CertKey,
    pub verify_client: VerifyClient,
    /// `restapi.ciphers`: the TLS 1.2 suites allowed; `None`: all. TLS 1.3 is not affected.
    pub ciphers: Option<Vec<Tls12Cipher>>,
}

/// How a client of the REST API checks the server it calls over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyServer {
    /// Not at all (`ctl.insecure`, or the agent with no CA configured).
    Skip,
    /// The chain up to `cafile`, not the host name (the agent, as Patroni's does).
    Chain { cafile: PathBuf },
    /// Chain and host name; `None`: the system's trust store (the CLI).
    ChainAndName { cafile: Option<PathBuf> },
}

/// TLS of a client of the REST API (the CLI, or the agent calling its peers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub verify: VerifyServer,
    /// The client certificate presented, if any.
    pub identity: Option<CertKey>,
}

/// The `ctl` section (Patroni's): the client side of the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ctl {
    /// `ctl.insecure`: the CLI does not verify servers.
    pub insecure: bool,
    /// `ctl.cacert`: the CA servers are verified with (else `restapi.cafile`).
    pub cacert: Option<PathBuf>,
    /// `ctl.certfile`, `ctl.keyfile`, `ctl.keyfile_password`: the client certificate.
    pub identity: Option<CertKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestApi {
    pub listen: SocketAddr,
    /// What peers and clients use to reach this API (`host:port`).
    pub connect_address: HostPort,
    /// HTTP Basic credentials for unsafe methods, if configured.
    pub authentication: Option<Credentials>,
    /// `restapi.certfile` and what goes with it; `None`: plain HTTP.
    pub tls: Option<ServerTls>,
    /// `restapi.cafile`: the CA of client certificates, and the one clients on this node
    /// verify servers with when `ctl.cacert` is not set (as in Patroni).
    pub cafile: Option<PathBuf>,
    /// `allowlist`, `allowlist_include_members` and the extra headers.
    pub access: RestAccess,
}

impl RestApi {
    /// `http(s)://<connect_address>/patroni`, the `api_url` published in `members/<name>`:
    /// `https` when the API serves TLS, as Patroni publishes it.
    pub fn api_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/patroni", self.connect_address)
    }

    /// The unsafe methods (switchover, failover, restart, reinitialize, `PATCH /config`)
    /// answer anyone who can reach a non-loopback address: no `restapi.authentication`.
    /// Patroni allows it too; the agent warns at start.
    pub fn unsafe_methods_exposed(&self) -> bool {
        self.authentication.is_none() && !self.listen.ip().is_loopback()
    }
}

#[cfg(test)]
mod restapi_tests {
    use super::*;

    #[test]
    fn unsafe_methods_are_exposed_only_off_loopback_without_authentication() {
        let api = |listen: &str, auth: bool| RestApi {
            listen: listen.parse().unwrap(),
            connect_address: HostPort {
                host: "10.0.0.1".into(),
                port: 8008,
            },
            authentication: auth.then(|| Credentials {
                username: "u".into(),
                password: Some("p".into()),
            }),
            tls: None,
            cafile: None,
            access: Default::default(),
        };
        assert!(api("0.0.0.0:8008", false).unsafe_methods_exposed());
        assert!(api("10.0.0.1:8008", false).unsafe_methods_exposed());
        assert!(api("[::]:8008", false).unsafe_methods_exposed());
        assert!(!api("127.0.0.1:8008", false).unsafe_methods_exposed());
        assert!(!api("[::1]:8008", false).unsafe_methods_exposed());
        assert!(!api("0.0.0.0:8008", true).unsafe_methods_exposed());
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Etcd {
    /// The section the settings come from, `etcd3` or `etcd` (Patroni's v2 section, whose
    /// endpoints pgkeel uses over v3): messages name its keys.
    pub section: &'static str,
    /// etcd client endpoints as `host:port` (from `etcd3.hosts`, `etcd3.host` or `etcd.*`).
    pub hosts: Vec<HostPort>,
    /// `username` and `password`: both set, or neither (Patroni authenticates only with both).
    pub username: Option<String>,
    pub password: Option<String>,
    /// `protocol: https` and what goes with it; `None`: plain HTTP.
    pub tls: Option<EtcdTls>,
}

impl Etcd {
    /// The endpoints as URLs, `https://host:port` with TLS, else `http://host:port`.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.hosts
            .iter()
            .map(|h| format!("{scheme}://{h}"))
            .collect()
    }

    /// The config key `name` of this section (`etcd3.cacert`), for messages.
    pub fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.section)
    }
}

/// TLS to etcd (`protocol: https`), as Patroni's client does it: etcd's certificate is
/// verified, chain and host name, against `cacert` (else the system's trust store), and
/// `cert`/`key` are presented when set (etcd's `--client-cert-auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// `cacert`: the CA etcd's certificate is checked against; `None`: the system's.
    pub cacert: Option<PathBuf>,
    /// `cert`, `key` (in `cert` when not set) and pgkeel's `key_password`.
    pub identity: Option<CertKey>,
}

impl EtcdTls {
    /// The same checks as a REST API client's ([`ClientTls`]), chain and host name.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            verify: VerifyServer::ChainAndName {
                cafile: self.cacert.clone(),
            },
            identity: self.identity.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// Dynamic config the first leader writes to `/config`.
    pub dcs: DynamicConfig,
    /// initdb options: `["data-checksums", "encoding=UTF8"]` becomes `--data-checksums --encoding=UTF8`.
    pub initdb: Vec<InitdbOption>,
    /// pg_hba lines used at bootstrap (Patroni's `bootstrap.pg_hba`), if given.
    pub pg_hba: Vec<String>,
    /// `bootstrap.method`: how a new cluster's data directory is made.
    pub method: BootstrapMethod,
    /// `bootstrap.post_bootstrap` (or its older name `post_init`): a command run once the
    /// new primary is up, before it takes the leader key; its words, as `shlex` splits them.
    pub post_bootstrap: Option<Vec<String>>,
}

/// How a new cluster is created (Patroni's `bootstrap.method`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BootstrapMethod {
    /// `initdb` with `bootstrap.initdb` (no `method`, or `method: initdb`).
    #[default]
    Initdb,
    /// A command that fills the data directory (a restore from a backup).
    Custom(CustomBootstrap),
}

/// `bootstrap.<method>`: `{command, no_params, keep_existing_recovery_conf, recovery_conf,
/// ...}`, every other key an argument `--key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomBootstrap {
    /// The method's name (the value of `bootstrap.method`).
    pub name: String,
    /// `command`, split as `shlex` splits it.
    pub command: Vec<String>,
    /// `no_params`: `--scope` and `--datadir` are not passed.
    pub no_params: bool,
    /// `keep_existing_recovery_conf`: the recovery settings and signal files the command
    /// left (pgBackRest, Barman) are kept as they are.
    pub keep_existing_recovery_conf: bool,
    /// `recovery_conf`: recovery settings the restored server first starts with (it ends
    /// its recovery, typically at a `recovery_target_*` with `recovery_target_action:
    /// promote`, before it leads). `standby_mode: on` makes it a standby (`standby.signal`).
    pub recovery_conf: Option<BTreeMap<String, String>>,
    /// The other keys, in key order, as `--key=value` (values as Patroni prints them).
    pub args: Vec<(String, String)>,
}

/// One entry of `postgresql.create_replica_methods`, tried in order until one succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaMethod {
    /// pg_basebackup from the leader (or a `clonefrom` replica), with `postgresql.basebackup`.
    Basebackup,
    Command(CustomReplicaMethod),
}

/// `postgresql.<method>`: `{command, no_leader, keep_data, no_params, ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomReplicaMethod {
    pub name: String,
    /// `command` split as `shlex` splits it; the method's name when there is no `command`.
    pub command: Vec<String>,
    /// `no_params`: neither Patroni's arguments nor `no_leader`, `keep_data`, `no_params`
    /// themselves are passed, only the other keys.
    pub no_params: bool,
    /// `no_leader`: the method also works without a leader to copy from (a restore from a
    /// backup); the connection string it gets is then empty.
    pub no_leader: bool,
    /// `keep_data`: the data directory is not emptied before the command, nor after it fails.
    pub keep_data: bool,
    /// Every key but `command`, in key order, with its value as Patroni prints it.
    pub params: Vec<(String, String)>,
}

impl ReplicaMethod {
    pub fn name(&self) -> &str {
        match self {
            ReplicaMethod::Basebackup => "basebackup",
            ReplicaMethod::Command(c) => &c.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitdbOption {
    Flag(String),
    Value(String, String),
}

impl InitdbOption {
    pub fn to_arg(&self) -> String {
        match self {
            InitdbOption::Flag(f) => format!("--{f}"),
            InitdbOption::Value(k, v) => format!("--{k}={v}"),
        }
    }
}

/// The cluster-wide settings stored in `/config` (seeded from `bootstrap.dcs`).
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicConfig {
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub retry_timeout: Duration,
    pub maximum_lag_on_failover: u64,
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    /// PostgreSQL parameters that must be the same on every node.
    pub parameters: BTreeMap<String, String>,
    pub pg_hba: Vec<String>,
    /// `synchronous_mode`, `synchronous_mode_strict`, `synchronous_node_count`,
    /// `maximum_lag_on_syncnode`.
    pub sync: crate::sync::SyncSettings,
    /// `failsafe_mode`: a leader that loses the DCS keeps running while every member confirms it.
    pub failsafe_mode: bool,
    /// `check_timeline`: a node on a timeline older than the cluster's never races.
    pub check_timeline: bool,
    /// `primary_hang_timeout` (pgkeel's key) as set; `None`: derived from `ttl`, see
    /// [`DynamicConfig::hang_timeout`].
    pub primary_hang_timeout: Option<Duration>,
    /// The value as JSON, exactly what is written to `/config` (Patroni's shape).
    pub json: serde_json::Value,
    /// How the timings as written were adjusted to the ones above (Patroni's warnings);
    /// empty when they are in force as written.
    pub timings_adjusted: Vec<String>,
}

impl DynamicConfig {
    /// How long a primary may leave a health probe unanswered (no new connection accepted,
    /// no status query or WAL flush completed) before it is fenced and gives up the leader
    /// key. Default: half the ttl, at least 2 s. A server that answers nobody for that long
    /// is as unavailable as a dead one, which pgkeel replaces within about one ttl; half of
    /// it keeps the whole outage (this bound, the kill, a replica's promotion) near one ttl.
    /// A busy server answers a probe in milliseconds to a few hundred at full load on two
    /// cores, and any answer (an error included) ends the silence (see README).
    pub fn hang_timeout(&self) -> Duration {
        self.primary_hang_timeout
            .unwrap_or((self.ttl / 2).max(DEFAULT_MIN_HANG_TIMEOUT))
    }
}

/// The floor of the derived `primary_hang_timeout`: under full load on a small machine a
/// new connection can take a good part of a second to be served.
pub const DEFAULT_MIN_HANG_TIMEOUT: Duration = Duration::from_secs(2);

/// pgkeel's defaults, chosen shorter than Patroni's (ttl 30, loop_wait 10, retry_timeout 10)
/// because pgkeel renews its lease from a dedicated task and fences itself on its own
/// monotonic clock, so a short TTL does not depend on a slow HA loop. See README.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_LOOP_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;

#[derive(Debug, Clone, PartialEq)]
pub struct Postgresql {
    /// Addresses PostgreSQL listens on (`listen_addresses`) and its port.
    pub listen_addresses: Vec<String>,
    pub port: u16,
    /// What peers and clients use to reach this PostgreSQL (`host:port`).
    pub connect_address: HostPort,
    pub data_dir: PathBuf,
    /// Where `pg_ctl`, `initdb`... live; `None` means search PATH and Debian's default.
    pub bin_dir: Option<PathBuf>,
    pub pgpass: PathBuf,
    /// `postgresql.authentication.superuser`: the agent's own connections to its server.
    pub superuser: PgUser,
    /// `postgresql.authentication.replication`: streaming (`primary_conninfo`) and clones.
    pub replication: PgUser,
    /// `postgresql.authentication.rewind`, if set: pg_rewind's source connection (else the
    /// superuser's, as in Patroni; see [`Postgresql::rewind_user`]).
    pub rewind: Option<PgUser>,
    /// Local parameters, merged over the dynamic ones.
    pub parameters: BTreeMap<String, String>,
    /// Local pg_hba lines; when empty the dynamic/bootstrap ones or pgkeel's defaults apply.
    pub pg_hba: Vec<String>,
    /// Extra `pg_basebackup` options from `postgresql.basebackup`.
    pub basebackup: Vec<InitdbOption>,
    /// `postgresql.callbacks`.
    pub callbacks: Callbacks,
    /// `postgresql.create_replica_methods` (default: basebackup alone).
    /// `use_unix_socket`: the agent's own sessions go through the server's Unix socket
    /// (the first absolute `unix_socket_directories` entry), as Patroni's do.
    pub use_unix_socket: bool,
    /// `use_unix_socket_repl`: Patroni's local replication connections over the socket;
    /// pgkeel opens none, so the value changes nothing.
    pub use_unix_socket_repl: bool,
    /// `pg_ident`: the lines of pg_ident.conf (`None`: the file is left as it is).
    pub pg_ident: Option<Vec<String>>,
    /// `pg_ctl_timeout`: how long a start, stop or promotion is waited for (Patroni: 60 s).
    pub pg_ctl_timeout: Option<std::time::Duration>,
    /// `use_pg_rewind` set locally: it overrides `/config`'s, as in Patroni.
    pub use_pg_rewind: Option<bool>,
    /// `proxy_address`: a pooler in front of this member, published as `proxy_url`.
    pub proxy_address: Option<HostPort>,
    pub create_replica_methods: Vec<ReplicaMethod>,
}

impl Postgresql {
    /// Who pg_rewind connects to the new primary as: `authentication.rewind`, else the
    /// superuser (Patroni's `rewind_credentials` on PostgreSQL 11 and later).
    pub fn rewind_user(&self) -> &PgUser {
        self.rewind.as_ref().unwrap_or(&self.superuser)
    }
}

/// Patroni's callbacks: event name (`on_start`...) → the command's words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Callbacks {
    pub commands: BTreeMap<String, Vec<String>>,
    /// `postgresql.pre_promote`: run to its end after the key is taken and before the
    /// promotion; a non-zero exit cancels the promotion and gives the key up.
    pub pre_promote: Option<Vec<String>>,
    /// `postgresql.before_stop`: run to its end before PostgreSQL is stopped.
    pub before_stop: Option<Vec<String>>,
}
