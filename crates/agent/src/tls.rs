//! The agent's TLS, read once at start from the files `restapi.*`, `ctl.*` and `etcd3.*`
//! name: the REST API's HTTPS settings, the HTTP client its calls to peers use, and how it
//! reaches etcd; and the files of `postgresql.authentication.*`
//! (`pgkeel_pg::check_client_tls`). A missing, unreadable or mismatched file is an error
//! naming the setting, the file and the reason, so the agent stops before it touches
//! anything (and `--validate-config` fails).

use std::time::Duration;

use anyhow::Context;
use pgkeel_api::Https;
use pgkeel_core::config::VerifyClient;
use pgkeel_core::Config;

/// What the agent serves and calls with.
pub struct AgentTls {
    /// `None`: the API serves plain HTTP (no `restapi.certfile`).
    pub https: Option<Https>,
    /// For `GET /patroni` and `POST /failsafe` to peers, `https://` api_urls included
    /// ([`Config::peer_tls`]).
    pub peers: reqwest::Client,
    /// etcd's endpoints, user and TLS (`etcd3.protocol`, `cacert`, `cert`, `key`).
    pub etcd: pgkeel_dcs::Access,
}

/// Reads every file the config names for the REST API and builds both sides.
pub fn load(cfg: &Config) -> anyhow::Result<AgentTls> {
    pgkeel_tls::install_default_provider();
    pgkeel_pg::check_client_tls(&cfg.postgresql)?;
    let https = match &cfg.restapi.tls {
        None => None,
        Some(tls) => Some(Https {
            config: pgkeel_tls::server_config(tls)?,
            cert_for_unsafe: !matches!(tls.verify_client, VerifyClient::None),
        }),
    };
    let peer_tls = cfg.peer_tls();
    let identity_section = if cfg.ctl.identity.is_some() {
        "ctl"
    } else {
        "restapi"
    };
    let ca_key = if cfg.ctl.cacert.is_some() {
        "ctl.cacert"
    } else {
        "restapi.cafile"
    };
    let client = pgkeel_tls::client_config(&peer_tls, identity_section, ca_key)?;
    let peers = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .tls_backend_preconfigured(client)
        .build()
        .context("building the HTTP client for peers")?;
    let etcd = pgkeel_dcs::Access::from_config(&cfg.etcd)?;
    Ok(AgentTls { https, peers, etcd })
}
