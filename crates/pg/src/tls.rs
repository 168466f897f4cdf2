//! TLS of the agent's own connections to its server (tokio-postgres over rustls), made as
//! libpq would make them with the superuser's options (Patroni's local connection is a
//! libpq one with `postgresql.authentication.superuser` as its keywords).
//!
//! libpq's rules, followed here:
//! - `sslmode`: `disable` plain; `allow` plain first, TLS if the server refuses it;
//!   `prefer` (the default) TLS if the server offers it, plain if it does not or the
//!   handshake fails; `require` TLS or nothing; `verify-ca` the chain is checked;
//!   `verify-full` the chain and the host name.
//! - A root certificate present (`sslrootcert`, else `~/.postgresql/root.crt`) makes every
//!   TLS mode check the chain: `require` then behaves as `verify-ca`.
//! - Unset files default to `~/.postgresql/{root.crt,root.crl,postgresql.crt,postgresql.key}`
//!   of the user PostgreSQL's programs run as (the data directory's owner), so that the
//!   agent, the walreceiver, pg_basebackup and pg_rewind read the same files.
//!
//! Where the agent cannot do what libpq does it says so at start (`check`): no GSSAPI
//! (`gssencmode: require`), host names checked against subjectAltName only (webpki; libpq
//! falls back to the CN when a certificate has no DNS name).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pgkeel_core::config::{ConnOptions, Prefer3, SslMode, SslNegotiation};
use pgkeel_tls::{PgClientFiles, PgVerify};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's default files, under the home directory of the user running the program.
const ROOT_CRT: &str = ".postgresql/root.crt";
const ROOT_CRL: &str = ".postgresql/root.crl";
const USER_CRT: &str = ".postgresql/postgresql.crt";
const USER_KEY: &str = ".postgresql/postgresql.key";

/// Which files a role's connection uses and what is checked, by libpq's rules; `None`
/// with `sslmode: disable` (libpq reads no file then). `home`: the data directory owner's.
pub(crate) fn files(
    opts: &ConnOptions,
    home: &Path,
    section: &str,
) -> Result<Option<PgClientFiles>, String> {
    let mode = opts.mode();
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let default = |rel: &str| Some(home.join(rel)).filter(|p| p.exists());
    let root = opts.sslrootcert.clone().or_else(|| default(ROOT_CRT));
    let verify = match root {
        Some(rootcert) => {
            let crls = match (&opts.sslcrl, &opts.sslcrldir) {
                (None, None) => default(ROOT_CRL).into_iter().collect(),
                (file, dir) => {
                    let mut v: Vec<PathBuf> = file.iter().cloned().collect();
                    if let Some(d) = dir {
                        v.extend(pgkeel_tls::crl_files(d));
                    }
                    v
                }
            };
            PgVerify::Chain {
                rootcert,
                check_name: mode == SslMode::VerifyFull,
                crls,
            }
        }
        None if mode.verifies() => {
            return Err(format!(
                "{section}.sslmode is {} but no root certificate is set ({section}.sslrootcert) \
                 and {} does not exist: set sslrootcert to the CA that signed the server's \
                 certificate, or use sslmode require",
                mode.as_str(),
                home.join(ROOT_CRT).display()
            ))
        }
        None => PgVerify::Nothing,
    };
    let cert = opts.sslcert.clone().or_else(|| default(USER_CRT));
    let identity = match cert {
        None => None,
        Some(cert) => {
            let key = opts.sslkey.clone().unwrap_or_else(|| home.join(USER_KEY));
            Some((cert, key, opts.sslpassword.clone()))
        }
    };
    Ok(Some(PgClientFiles {
        verify,
        identity,
        section: section.to_string(),
    }))
}

/// A [`ClientTls`] and the options it was built from.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) opts: ConnOptions,
    pub(crate) tls: ClientTls,
}

/// The agent's TLS for one role, built once from its files.
#[derive(Clone)]
pub(crate) struct ClientTls {
    mode: SslMode,
    /// `None` with `sslmode: disable`.
    config: Option<Arc<rustls::ClientConfig>>,
    negotiation: tokio_postgres::config::SslNegotiation,
    channel_binding: tokio_postgres::config::ChannelBinding,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads every file (an error names the setting, the file and why).
    pub(crate) fn new(opts: &ConnOptions, home: &Path, section: &str) -> Result<Self, String> {
        if opts.gssencmode == Some(Prefer3::Require) {
            return Err(format!(
                "{section}.gssencmode is require, but pgkeel's own connections have no GSSAPI \
                 encryption: use TLS (sslmode) instead, or gssencmode prefer or disable"
            ));
        }
        let config = match files(opts, home, section)? {
            None => None,
            Some(f) => Some(Arc::new(
                pgkeel_tls::pg_client_config(&f).map_err(|e| e.to_string())?,
            )),
        };
        use tokio_postgres::config::{ChannelBinding as Cb, SslNegotiation as Neg};
        Ok(ClientTls {
            mode: opts.mode(),
            config,
            negotiation: match opts.sslnegotiation {
                Some(SslNegotiation::Direct) => Neg::Direct,
                _ => Neg::Postgres,
            },
            channel_binding: match opts.channel_binding {
                Some(Prefer3::Disable) => Cb::Disable,
                Some(Prefer3::Require) => Cb::Require,
                Some(Prefer3::Prefer) | None => Cb::Prefer,
            },
        })
    }

    /// Connects as `sslmode` says, retrying as libpq does (`allow`: TLS after a refused
    /// plain attempt; `prefer`: plain after a failed handshake). The connection task is
    /// spawned; its end is logged at debug level.
    pub(crate) async fn connect(
        &self,
        cfg: &mut tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        use tokio_postgres::config::SslMode as M;
        cfg.channel_binding(self.channel_binding)
            .ssl_negotiation(self.negotiation);
        match (self.mode, &self.config) {
            (SslMode::Disable, _) | (_, None) => plain(cfg).await,
            (SslMode::Allow, Some(c)) => match plain(cfg).await {
                // The server answered and refused: libpq tries again with TLS.
                Err(e) if e.as_db_error().is_some() => {
                    tls(cfg.ssl_mode(M::Require), c.clone()).await
                }
                other => other,
            },
            (SslMode::Prefer, Some(c)) => match tls(cfg.ssl_mode(M::Prefer), c.clone()).await {
                Err(e) if is_handshake_error(&e) => plain(cfg).await,
                other => other,
            },
            (_, Some(c)) => tls(cfg.ssl_mode(M::Require), c.clone()).await,
        }
    }
}

pub(crate) async fn plain(
    cfg: &mut tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = cfg
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .connect(tokio_postgres::NoTls)
        .await?;
    spawn_connection(conn);
    Ok(client)
}

async fn tls(
    cfg: &tokio_postgres::Config,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = cfg.connect(MakeRustls(config)).await?;
    spawn_connection(conn);
    Ok(client)
}

fn spawn_connection<F, E>(conn: F)
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "local PostgreSQL connection ended");
        }
    });
}

/// The handshake failed (the server's certificate refused, or TLS broke): under `prefer`
/// libpq then tries a plain connection.
fn is_handshake_error(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<HandshakeError>().is_some())
}

/// Why a TLS handshake with the server failed.
#[derive(Debug)]
pub(crate) struct HandshakeError(io::Error);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS handshake with the server failed: {}", self.0)
    }
}

impl std::error::Error for HandshakeError {}

struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = String;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, String> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| format!("{domain:?} cannot be checked against a certificate: {e}"))?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
                .map_err(HandshakeError)
        })
    }
}

struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| pgkeel_tls::tls_server_end_point(c.as_ref()))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        let home = tempfile::tempdir().unwrap();
        let opts = |mode| ConnOptions {
            sslmode: Some(mode),
            ..ConnOptions::default()
        };
        // No root certificate anywhere: require checks nothing, verify-ca cannot start.
        let f = files(&opts(SslMode::Require), home.path(), "s")
            .unwrap()
            .unwrap();
        assert_eq!(f.verify, PgVerify::Nothing);
        let e = files(&opts(SslMode::VerifyCa), home.path(), "s").unwrap_err();
        assert!(e.contains("s.sslrootcert") && e.contains("root.crt"), "{e}");
        assert_eq!(
            files(&opts(SslMode::Disable), home.path(), "s").unwrap(),
            None
        );
        // libpq's default root.crt of the owner's home: require now checks the chain.
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(ROOT_CRT), "x").unwrap();
        std::fs::write(home.path().join(ROOT_CRL), "x").unwrap();
        for (mode, check_name) in [
            (SslMode::Prefer, false),
            (SslMode::Require, false),
            (SslMode::VerifyCa, false),
            (SslMode::VerifyFull, true),
        ] {
            let f = files(&opts(mode), home.path(), "s").unwrap().unwrap();
            assert_eq!(
                f.verify,
                PgVerify::Chain {
                    rootcert: home.path().join(ROOT_CRT),
                    check_name,
                    crls: vec![home.path().join(ROOT_CRL)],
                },
                "{mode:?}"
            );
        }
        // An explicit certificate without a key: libpq's default key file.
        let o = ConnOptions {
            sslcert: Some("/tls/c.crt".into()),
            ..ConnOptions::default()
        };
        let f = files(&o, home.path(), "s").unwrap().unwrap();
        assert_eq!(
            f.identity,
            Some(("/tls/c.crt".into(), home.path().join(USER_KEY), None))
        );
    }

    #[test]
    fn gss_encryption_cannot_be_required_of_the_agent() {
        let o = ConnOptions {
            gssencmode: Some(Prefer3::Require),
            ..ConnOptions::default()
        };
        let e = ClientTls::new(&o, Path::new("/nonexistent"), "p.superuser").unwrap_err();
        assert!(e.contains("p.superuser.gssencmode"), "{e}");
    }
}
