//! pgkeel's Patroni-compatible REST API over HTTP or HTTPS ([`Https`]; the `list` table is
//! `pgkeel_view`'s).
//!
//! The agent publishes a [`NodeSnapshot`] after every loop ([`publish`]); every answer
//! is computed from the last snapshot by pure functions ([`status_json`], [`health`],
//! [`cluster_json`], [`route`]), and [`serve`] only moves bytes. [`cluster_json`] (Patroni's
//! `cluster_as_json`) is also what `pgkeel list` renders.
//!
//! Unsafe requests (switchover, restart, reload, reinitialize, config) are checked here
//! with Patroni's codes and texts, then handed to the agent as [`AdminRequest`]s over the
//! channel given to [`serve`]; `GET /metrics` is [`metrics_text`]. `POST /failsafe`, a
//! leader's "I am alive" during a DCS outage, is answered here and left in the
//! [`FailsafeInbox`] for the agent.

mod access;
mod admin;
mod admin_routes;
mod auth;
mod callback_stats;
mod cluster_json;
mod conns;
mod failsafe;
mod failsafe_inbox;
#[cfg(test)]
mod fuzz;
mod health;
mod json_body;
mod limits;
mod metrics;
mod query;
mod restart_body;
mod routes;
mod schedule;
mod server;
mod snapshot;
mod status;
mod switchover;
mod sync_standby;
#[cfg(test)]
mod testutil;
mod tls;

pub use access::Access;
pub use admin::{
    admin_channel, AdminBody, AdminEnvelope, AdminReceiver, AdminReply, AdminRequest, AdminSender,
};
pub use callback_stats::{CallbackOutcome, CallbackStats};
pub use cluster_json::cluster_json;
pub use failsafe::{receive_failsafe, Accepted};
pub use failsafe_inbox::{FailsafeContact, FailsafeInbox};
pub use health::{health, liveness, readiness};
pub use limits::{
    Limits, BODY_TIMEOUT, FD_RESERVE, HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_BODY, MAX_CONNECTIONS,
};
pub use metrics::{metrics_text, METRICS_CONTENT_TYPE};
pub use query::{parse_bytes, Query};
pub use routes::{route, Body, Reply};
pub use server::{instance_id, serve, INSTANCE_HEADER};
pub use snapshot::{
    publish, shared, with_snapshot, LiveStatus, LiveStatusQuery, NodeSnapshot, PostmasterAlive,
    ReplicationRow, SharedSnapshot, SlotRetained,
};
pub use status::status_json;
pub use tls::{ApiListener, Https};
/// The TLS library the API's [`Https`] settings are made with.
pub use tokio_rustls::rustls;
