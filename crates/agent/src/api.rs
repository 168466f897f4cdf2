//! The REST API's share of the process: a thread and a runtime of its own, and at most
//! the connections that leave the agent its reserve of file descriptors.
//!
//! Issue 11 saw 20,000 idle connections take every descriptor, after which the agent could
//! no longer look at its data directory (EMFILE) while it still held the leader key. Now
//! the soft `RLIMIT_NOFILE` is raised to the hard limit at start, and the API's cap is
//! derived from it ([`Limits::for_fd_limit`]): [`pgkeel_api::FD_RESERVE`] descriptors stay
//! for PostgreSQL connections, etcd, the fence and the programs the agent runs, however
//! many clients knock. On its own thread, a flood's accept and parse work cannot delay
//! the loop's observations either, nor a slow loop the health checks.

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use pgkeel_api::{AdminSender, FailsafeInbox, Limits, SharedSnapshot};
use tokio_util::sync::CancellationToken;

/// Raises the soft open-files limit to the hard one; returns the soft limit in force.
pub(crate) fn raise_open_files_limit() -> u64 {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read the open-files limit: {e}; assuming 1024");
            return 1024;
        }
    };
    if soft >= hard {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!("open-files limit raised from {soft} to {hard} (the hard limit)");
            hard
        }
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            soft
        }
    }
}

/// What the API thread serves.
pub(crate) struct ApiParts {
    pub snap: SharedSnapshot,
    pub admin: AdminSender,
    pub auth: Option<(String, String)>,
    pub failsafe: Arc<FailsafeInbox>,
    /// HTTPS settings; `None`: plain HTTP.
    pub https: Option<pgkeel_api::Https>,
    /// `restapi.allowlist*` and the extra headers, as configured.
    pub access: pgkeel_core::config::RestAccess,
}

/// Starts the API on its own thread: binds first, so that a busy port fails the start,
/// then serves until `stop` is cancelled and the requests being answered are done.
/// Connections the kernel may hold for the API before it accepts them: tokio's default,
/// as `axum::serve` had (Patroni's `restapi.request_queue_size`, default 5, is not read).
/// Not more: under a flood of connection attempts faster than the process accepts them, a
/// health check waits behind everything queued, and a long queue is a long wait.
const BACKLOG: u32 = 1024;

fn bind(listen: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(BACKLOG)?.into_std()
}

pub(crate) fn start(
    listen: std::net::SocketAddr,
    parts: ApiParts,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let nofile = raise_open_files_limit();
    let limits = Limits::for_fd_limit(nofile);
    tracing::info!(
        "REST API: at most {} connections of the {nofile} descriptors the process may open",
        limits.max_connections
    );
    // Bound here, on the caller's runtime, for the error; moved to the API's runtime.
    let listener =
        bind(listen).with_context(|| format!("restapi.listen: cannot listen on {listen}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the REST API's runtime")?;
    std::thread::Builder::new()
        .name("pgkeel-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("REST API: cannot use the listening socket: {e}");
                        return;
                    }
                };
                if parts.https.is_some() {
                    tracing::info!("REST API: serving HTTPS on {listen}");
                }
                let listener = pgkeel_api::ApiListener {
                    tcp: listener,
                    tls: parts.https,
                    access: pgkeel_api::Access::resolve(&parts.access).await,
                };
                let served = pgkeel_api::serve(
                    listener,
                    parts.snap,
                    Some(parts.admin),
                    parts.auth,
                    parts.failsafe,
                    limits,
                    async move { stop.cancelled().await },
                )
                .await;
                if let Err(e) = served {
                    tracing::error!("REST API stopped: {e}");
                }
            })
        })
        .context("starting the REST API's thread")
}
