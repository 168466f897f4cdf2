//! TLS to etcd ([`EtcdTls`], `protocol: https`): etcd's certificate checked as Patroni's
//! client checks it (chain and host name, against `cacert`, else the system's trust store,
//! with a self-signed `cacert` accepted as its own CA as OpenSSL does), and the client
//! certificate (`cert`, `key`, pgkeel's `key_password`) read, decrypted and checked to
//! match. The gRPC client (tonic, over rustls with ring) takes the verifier as is and the
//! identity as PEM, so the decrypted key is handed over re-encoded.

use std::sync::Arc;

use pgkeel_core::config::Etcd;
use pkcs8::LineEnding;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::identity::{self, Keys};
use crate::{client, provider, TlsError};

/// What a TLS connection to etcd needs, read from the files once.
#[derive(Clone)]
pub struct EtcdClientTls {
    /// Checks etcd's certificate.
    pub verifier: Arc<dyn ServerCertVerifier>,
    /// The client certificate chain and its (decrypted) key, as PEM, when `cert` is set.
    pub identity_pem: Option<(String, String)>,
    /// Everything read from the files, to tell whether they hold something else later.
    material: Vec<Vec<u8>>,
}

impl std::fmt::Debug for EtcdClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClientTls")
            .field("client_certificate", &self.identity_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Equal when read from files with the same contents (the certificates and the key).
impl PartialEq for EtcdClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.material == other.material
    }
}

/// Reads and checks the files `etcd`'s TLS settings name; `Ok(None)` for plain HTTP.
/// Errors name the key (`etcd3.cert`), the file and the reason.
pub fn etcd_client(etcd: &Etcd) -> Result<Option<EtcdClientTls>, TlsError> {
    let Some(tls) = &etcd.tls else {
        return Ok(None);
    };
    for h in &etcd.hosts {
        if ServerName::try_from(h.host.as_str()).is_err() {
            return Err(TlsError(format!(
                "{}: {h}: the host is not a name or address a TLS certificate can be checked against",
                etcd.key("hosts")
            )));
        }
    }
    let provider = Arc::new(provider(None));
    let (verifier, cas) =
        client::verifier(&tls.client_tls().verify, &etcd.key("cacert"), &provider)?;
    let mut material: Vec<Vec<u8>> = cas.iter().map(|c| c.to_vec()).collect();
    let identity_pem = match &tls.identity {
        None => None,
        Some(ck) => {
            let keys = Keys {
                cert: etcd.key("cert"),
                key: etcd.key("key"),
                password: etcd.key("key_password"),
            };
            let (certs, key) = identity::load(ck, &keys, &provider)?;
            material.extend(certs.iter().map(|c| c.to_vec()));
            material.push(key.secret_der().to_vec());
            Some(to_pem(&certs, &key).map_err(|e| {
                TlsError::file(
                    &keys.cert,
                    &ck.certfile,
                    format!("cannot be re-encoded: {e}"),
                )
            })?)
        }
    };
    Ok(Some(EtcdClientTls {
        verifier,
        identity_pem,
        material,
    }))
}

fn to_pem(
    certs: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(String, String), pkcs8::der::pem::Error> {
    let mut chain = String::new();
    for c in certs {
        chain.push_str(&pkcs8::der::pem::encode_string(
            "CERTIFICATE",
            LineEnding::LF,
            c,
        )?);
    }
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let key = pkcs8::der::pem::encode_string(label, LineEnding::LF, key.secret_der())?;
    Ok((chain, key))
}
