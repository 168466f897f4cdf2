//! Certificate checks beyond rustls's stock verifiers, each stated once:
//!
//! - [`Pinned`]: a certificate that is itself in the CA file is trusted as presented. This is
//!   what OpenSSL (so Patroni) does with a self-signed certificate used as its own CA, the
//!   shape Patroni's acceptance suite and many small deployments use (`openssl req -x509`,
//!   `cafile` = `certfile`); webpki alone refuses it (a CA certificate used as an end
//!   entity). Only an exact byte match counts; the certificate's dates are not checked.
//! - [`ChainOnly`]: the chain up to the CA, not the host name (Patroni's agent).
//! - [`Unverified`]: no check of the certificate (`ctl.insecure`, or no CA for the agent);
//!   the handshake's signatures are still checked, so the peer holds the certificate's key.
//! - [`NamedOrPinned`]: a stock server verifier (chain and host name), or a pinned
//!   certificate valid for the host name.
//! - [`ClientOrPinned`]: a stock client-certificate verifier, or a pinned certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};

/// The certificates of a CA file, for exact matches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pinned(Vec<CertificateDer<'static>>);

impl Pinned {
    pub(crate) fn new(certs: &[CertificateDer<'static>]) -> Pinned {
        Pinned(certs.to_vec())
    }

    pub(crate) fn holds(&self, cert: &CertificateDer<'_>) -> bool {
        self.0.iter().any(|c| c.as_ref() == cert.as_ref())
    }
}

/// Handshake signatures, checked the same way by every verifier here.
#[derive(Debug, Clone)]
pub(crate) struct Signatures(pub(crate) WebPkiSupportedAlgorithms);

impl Signatures {
    pub(crate) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    pub(crate) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    pub(crate) fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

macro_rules! server_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.sigs.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.sigs.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.sigs.schemes()
        }
    };
}
pub(crate) use server_signatures;

#[derive(Debug)]
pub(crate) struct Unverified {
    pub(crate) sigs: Signatures,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    server_signatures!();
}

#[derive(Debug)]
pub(crate) struct ChainOnly {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) pinned: Pinned,
    pub(crate) sigs: Signatures,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !self.pinned.holds(end_entity) {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.sigs.0.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    server_signatures!();
}

#[derive(Debug)]
pub(crate) struct NamedOrPinned {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) pinned: Pinned,
    pub(crate) sigs: Signatures,
}

impl ServerCertVerifier for NamedOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.pinned.holds(end_entity) {
            verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    server_signatures!();
}

#[derive(Debug)]
pub(crate) struct ClientOrPinned {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) pinned: Pinned,
}

impl ClientCertVerifier for ClientOrPinned {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self.pinned.holds(end_entity) {
            return Ok(ClientCertVerified::assertion());
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
