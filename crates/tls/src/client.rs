//! The rustls config of a REST API client ([`ClientTls`]): the CLI, or the agent calling
//! its peers.

use std::sync::Arc;

use pgkeel_core::config::{ClientTls, VerifyServer};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};

use crate::verify::{ChainOnly, NamedOrPinned, Pinned, Signatures, Unverified};
use crate::{identity, pem, provider, TlsError};

/// `identity_section`: where `tls.identity` comes from (`ctl` or `restapi`); `ca_key`: the
/// setting that names the CA file (`ctl.cacert`, `restapi.cafile`), both for messages.
pub fn client_config(
    tls: &ClientTls,
    identity_section: &str,
    ca_key: &str,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(provider(None));
    let sigs = Signatures(provider.signature_verification_algorithms);
    let roots = |cafile: &std::path::Path| -> Result<(Arc<RootCertStore>, Pinned), TlsError> {
        let cas = pem::certificates(cafile, ca_key)?;
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots
                .add(ca.clone())
                .map_err(|e| TlsError::file(ca_key, cafile, format!("not a usable CA: {e}")))?;
        }
        Ok((Arc::new(roots), Pinned::new(&cas)))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.verify {
        VerifyServer::Skip => Arc::new(Unverified { sigs }),
        VerifyServer::Chain { cafile } => {
            let (roots, pinned) = roots(cafile)?;
            Arc::new(ChainOnly {
                roots,
                pinned,
                sigs,
            })
        }
        VerifyServer::ChainAndName {
            cafile: Some(cafile),
        } => {
            let (roots, pinned) = roots(cafile)?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::file(ca_key, cafile, format!("not usable: {e}")))?;
            Arc::new(NamedOrPinned {
                inner,
                pinned,
                sigs,
            })
        }
        VerifyServer::ChainAndName { cafile: None } => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| TlsError(format!("the system's trust store: {e}")))?,
        ),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(ck) => {
            let (certs, key) = identity::load(ck, identity_section, &provider)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsError::file(
                    &format!("{identity_section}.certfile"),
                    &ck.certfile,
                    format!("cannot be presented: {e}"),
                )
            })
        }
    }
}
