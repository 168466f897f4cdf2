//! HTTPS: the listener's TLS settings and the handshake of one connection.
//!
//! The handshake runs before hyper sees the connection and must be done within the header
//! timeout (a client that stalls it holds a connection as a slowloris would); the
//! connection cap and the idle timeout count its bytes like any others ([`Tracked`] is
//! below TLS). Plain HTTP sent to the TLS port fails the handshake: the connection is
//! closed with nothing answered.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::conns::Tracked;

/// What [`crate::serve`] listens on: TCP, with TLS when `tls` is set.
pub struct ApiListener {
    pub tcp: TcpListener,
    pub tls: Option<Https>,
    /// Who may call the unsafe endpoints, and the extra headers of every answer.
    pub access: crate::Access,
}

impl From<TcpListener> for ApiListener {
    fn from(tcp: TcpListener) -> Self {
        ApiListener {
            tcp,
            tls: None,
            access: crate::Access::default(),
        }
    }
}

/// The TLS side of the API (built from `restapi.*` by pgkeel-tls).
#[derive(Clone)]
pub struct Https {
    pub config: Arc<ServerConfig>,
    /// `verify_client: optional` or `required`: requests with unsafe methods (the ones
    /// Patroni's `check_access` guards) from a connection without a verified client
    /// certificate are answered 403 "client certificate required", as Patroni does.
    pub cert_for_unsafe: bool,
}

/// The handshake of one connection, within `timeout`. `Err`: why it failed, for the log.
pub(crate) async fn handshake(
    https: &Https,
    stream: Tracked<TcpStream>,
    timeout: std::time::Duration,
) -> Result<TlsStream<Tracked<TcpStream>>, String> {
    let acceptor = TlsAcceptor::from(https.config.clone());
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err(format!(
            "TLS handshake not done within the header timeout of {timeout:?}"
        )),
    }
}

/// Whether the client presented a certificate (rustls has verified it by then).
pub(crate) fn has_client_cert(s: &TlsStream<Tracked<TcpStream>>) -> bool {
    s.get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty())
}
