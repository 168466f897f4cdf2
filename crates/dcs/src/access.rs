//! How to reach etcd ([`Access`]): the endpoints, the user, and TLS with pgkeel's own
//! verifier.
//!
//! etcd-client builds one tonic endpoint per URL and hands them to a balanced channel; its
//! own TLS option can only add CA certificates, which would check etcd's certificate with
//! webpki alone. [`TlsChannel`] sits where the endpoints enter the channel and gives each
//! one the verifier `pgkeel_tls` built from `cacert` (chain and host name, a self-signed
//! `cacert` accepted as its own CA as OpenSSL does, the system's trust store without one)
//! and the client certificate, so that etcd is checked exactly as the REST API's peers are.

use std::time::Duration;

use etcd_client::{BalancedChannelBuilder, Channel, TlsOptions};
use pgkeel_core::config::HostPort;
use pgkeel_tls::{EtcdClientTls, TlsError};
use tokio::sync::mpsc::Sender;
use tonic::codegen::http::Uri;
use tonic::transport::channel::Change;
use tonic::transport::{Endpoint, Identity};

/// Everything needed to connect, the certificate files already read and checked.
#[derive(Clone, PartialEq)]
pub struct Access {
    pub hosts: Vec<HostPort>,
    /// User name and password; etcd's token is refreshed with them when it expires.
    pub user: Option<(String, String)>,
    /// `None`: plain HTTP.
    pub tls: Option<EtcdClientTls>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("hosts", &self.hosts)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .finish()
    }
}

impl Access {
    /// Plain HTTP, no user.
    pub fn plain(hosts: Vec<HostPort>) -> Access {
        Access {
            hosts,
            user: None,
            tls: None,
        }
    }

    /// What the `etcd3` section says, with the files it names read now: an error names the
    /// key, the file and the reason.
    pub fn from_config(etcd: &pgkeel_core::config::Etcd) -> Result<Access, TlsError> {
        pgkeel_tls::install_default_provider();
        Ok(Access {
            hosts: etcd.hosts.clone(),
            user: etcd.username.clone().zip(etcd.password.clone()),
            tls: pgkeel_tls::etcd_client(etcd)?,
        })
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.hosts
            .iter()
            .map(|h| format!("{scheme}://{h}"))
            .collect()
    }
}

/// A balanced channel whose endpoints get pgkeel's TLS on their way in.
pub(crate) struct TlsChannel {
    pub(crate) tls: EtcdClientTls,
    /// Bounds a TLS handshake (the TCP connect has its own timeout).
    pub(crate) handshake_timeout: Duration,
}

impl BalancedChannelBuilder for TlsChannel {
    type Error = tonic::transport::Error;

    fn balanced_channel(
        self,
        buffer_size: usize,
    ) -> Result<(Channel, Sender<Change<Uri, Endpoint>>), Self::Error> {
        let (channel, inner) = tonic::transport::Channel::balance_channel(buffer_size);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Change<Uri, Endpoint>>(buffer_size);
        let mut options = TlsOptions::new().timeout(self.handshake_timeout);
        if let Some((chain, key)) = &self.tls.identity_pem {
            options = options.identity(Identity::from_pem(chain, key));
        }
        let verifier = self.tls.verifier;
        // Ends when the client (the sender's only holder) is dropped.
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                let change = match change {
                    Change::Insert(uri, endpoint) => {
                        match endpoint.tls_config_with_verifier(options.clone(), verifier.clone()) {
                            Ok(endpoint) => Change::Insert(uri, endpoint),
                            Err(e) => {
                                // Host names are checked when the config is loaded.
                                tracing::error!("etcd endpoint {uri}: cannot use TLS: {e}");
                                continue;
                            }
                        }
                    }
                    other => other,
                };
                if inner.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok((Channel::Tonic(channel), tx))
    }
}
