//! The REST API server's rustls config, from `restapi.*` ([`ServerTls`]).

use std::sync::Arc;

use pgkeel_core::config::{ServerTls, VerifyClient};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::verify::{ClientOrPinned, Pinned};
use crate::{identity, pem, provider, TlsError};

/// The server's certificate and key, and the client-certificate check `verify_client` asks
/// for: none; `optional` (asked for, checked when presented; the API then answers unsafe
/// methods without one 403); `required` (a connection without one fails its handshake).
pub fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider(tls.ciphers.as_deref()));
    let (certs, key) = identity::load(&tls.identity, &identity::Keys::rest("restapi"), &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("restapi.ciphers: {e}")))?;
    let builder = match &tls.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        VerifyClient::Optional { cafile } | VerifyClient::Required { cafile } => {
            let cas = pem::certificates(cafile, "restapi.cafile")?;
            let mut roots = RootCertStore::empty();
            for ca in &cas {
                roots.add(ca.clone()).map_err(|e| {
                    TlsError::file("restapi.cafile", cafile, format!("not a usable CA: {e}"))
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if matches!(tls.verify_client, VerifyClient::Optional { .. }) {
                verifier = verifier.allow_unauthenticated();
            }
            let inner = verifier.build().map_err(|e| {
                TlsError::file("restapi.cafile", cafile, format!("not usable: {e}"))
            })?;
            builder.with_client_cert_verifier(Arc::new(ClientOrPinned {
                inner,
                pinned: Pinned::new(&cas),
            }))
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::file(
            "restapi.certfile",
            &tls.identity.certfile,
            format!("cannot be served: {e}"),
        )
    })?;
    Ok(Arc::new(config))
}
