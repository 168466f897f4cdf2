//! pgkeel's TLS material: the REST API's and etcd's certificates and keys read from their
//! PEM files and checked (every error names the setting, the file and the reason), and the
//! rustls configs built from them: the API server's ([`server_config`]), its clients'
//! ([`client_config`]: the CLI, and the agent calling its peers), etcd's client
//! ([`etcd_client`]) and the agent's own PostgreSQL connections' ([`pg_client_config`]).
//! rustls with the ring provider: no OpenSSL.
//!
//! Everything is read when called, so that a missing, unreadable or mismatched file stops
//! the agent at start (and fails `--validate-config`) rather than the first handshake.

mod client;
mod etcd;
mod identity;
mod pem;
mod pg;
mod server;
mod verify;

use std::path::Path;

pub use client::client_config;
pub use etcd::{etcd_client, EtcdClientTls};
pub use pg::{crl_files, pg_client_config, tls_server_end_point, PgClientFiles, PgVerify};
pub use server::server_config;

/// Why TLS material could not be used: the setting, the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

impl TlsError {
    /// `restapi.certfile /etc/x.pem: cannot read it: No such file or directory`.
    pub(crate) fn file(key: &str, path: &Path, why: impl std::fmt::Display) -> TlsError {
        TlsError(format!("{key} {}: {why}", path.display()))
    }
}

/// The crypto provider: ring, with the TLS 1.2 suites narrowed to `ciphers` (in that order)
/// when given; TLS 1.3 suites always stay (as with Python's `set_ciphers`).
pub(crate) fn provider(
    ciphers: Option<&[pgkeel_core::config::Tls12Cipher]>,
) -> rustls::crypto::CryptoProvider {
    use pgkeel_core::config::Tls12Cipher as C;
    use rustls::crypto::ring::cipher_suite as s;
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(list) = ciphers {
        let mut suites: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|c| matches!(c, rustls::SupportedCipherSuite::Tls13(_)))
            .copied()
            .collect();
        suites.extend(list.iter().map(|c| match c {
            C::EcdheEcdsaAes256Gcm => s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            C::EcdheEcdsaAes128Gcm => s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            C::EcdheEcdsaChacha20 => s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            C::EcdheRsaAes256Gcm => s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            C::EcdheRsaAes128Gcm => s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            C::EcdheRsaChacha20 => s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        }));
        p.cipher_suites = suites;
    }
    p
}

#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;
#[cfg(test)]
mod tests;

/// Makes ring the process's default crypto provider (once; later calls change nothing).
/// reqwest builds its TLS config from the process default even for plain-HTTP clients, and
/// pgkeel compiles in no provider of its own choosing but ring: call this before building
/// any `reqwest::Client`.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
