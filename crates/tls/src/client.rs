//! The rustls config of a REST API client ([`ClientTls`]): the CLI, or the agent calling
//! its peers; and its parts, which the etcd client ([`crate::etcd`]) uses too.

use std::sync::Arc;

use pgkeel_core::config::{ClientTls, VerifyServer};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::identity::{self, Keys};
use crate::verify::{ChainOnly, NamedOrPinned, Pinned, Signatures, Unverified};
use crate::{pem, provider, TlsError};

/// `identity_section`: where `tls.identity` comes from (`ctl` or `restapi`); `ca_key`: the
/// setting that names the CA file (`ctl.cacert`, `restapi.cafile`), both for messages.
pub fn client_config(
    tls: &ClientTls,
    identity_section: &str,
    ca_key: &str,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(provider(None));
    let (verifier, _) = verifier(&tls.verify, ca_key, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(ck) => {
            let keys = Keys::rest(identity_section);
            let (certs, key) = identity::load(ck, &keys, &provider)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsError::file(
                    &keys.cert,
                    &ck.certfile,
                    format!("cannot be presented: {e}"),
                )
            })
        }
    }
}

/// How a server's certificate is checked, and the CA certificates read for it (none for
/// [`VerifyServer::Skip`] and the system's trust store).
pub(crate) fn verifier(
    verify: &VerifyServer,
    ca_key: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<dyn ServerCertVerifier>, Vec<CertificateDer<'static>>), TlsError> {
    let sigs = Signatures(provider.signature_verification_algorithms);
    let roots = |cafile: &std::path::Path| -> Result<(Arc<RootCertStore>, Vec<CertificateDer<'static>>), TlsError> {
        let cas = pem::certificates(cafile, ca_key)?;
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots
                .add(ca.clone())
                .map_err(|e| TlsError::file(ca_key, cafile, format!("not a usable CA: {e}")))?;
        }
        Ok((Arc::new(roots), cas))
    };
    Ok(match verify {
        VerifyServer::Skip => (Arc::new(Unverified { sigs }), Vec::new()),
        VerifyServer::Chain { cafile } => {
            let (roots, cas) = roots(cafile)?;
            let v = ChainOnly {
                roots,
                pinned: Pinned::new(&cas),
                sigs,
            };
            (Arc::new(v), cas)
        }
        VerifyServer::ChainAndName {
            cafile: Some(cafile),
        } => {
            let (roots, cas) = roots(cafile)?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::file(ca_key, cafile, format!("not usable: {e}")))?;
            let v = NamedOrPinned {
                inner,
                pinned: Pinned::new(&cas),
                sigs,
            };
            (Arc::new(v), cas)
        }
        VerifyServer::ChainAndName { cafile: None } => (
            Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(|e| TlsError(format!("the system's trust store: {e}")))?,
            ),
            Vec::new(),
        ),
    })
}
