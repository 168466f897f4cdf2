//! The rustls config of the agent's own PostgreSQL connections, from files already chosen
//! by libpq's rules (`pgkeel_pg` decides which files and which checks an `sslmode` means),
//! and the `tls-server-end-point` channel binding of a server certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use crate::verify::{server_signatures, Pinned, Signatures, Unverified};
use crate::{pem, provider, TlsError};

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgVerify {
    /// Not at all (no root certificate, and `sslmode` require or weaker).
    Nothing,
    /// The chain up to the roots in `rootcert`, and the host name when `check_name`
    /// (`verify-full`), with the CRLs given (every certificate of the chain must then be
    /// covered by one, as libpq's `X509_V_FLAG_CRL_CHECK_ALL` demands).
    Chain {
        rootcert: PathBuf,
        check_name: bool,
        crls: Vec<PathBuf>,
    },
}

/// The files of one role's connection, each with the setting that names it (for messages:
/// `postgresql.authentication.superuser.sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgClientFiles {
    pub verify: PgVerify,
    /// Client certificate and key, and the key's password.
    pub identity: Option<(PathBuf, PathBuf, Option<String>)>,
    /// `postgresql.authentication.superuser`: prefixes the key names in errors.
    pub section: String,
}

/// Reads every file and builds the config: an error names the setting, the file and why.
pub fn pg_client_config(files: &PgClientFiles) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(provider(None));
    let sigs = Signatures(provider.signature_verification_algorithms);
    let key = |k: &str| format!("{}.{k}", files.section);
    let verifier: Arc<dyn ServerCertVerifier> = match &files.verify {
        PgVerify::Nothing => Arc::new(Unverified { sigs }),
        PgVerify::Chain {
            rootcert,
            check_name,
            crls,
        } => {
            let root_key = key("sslrootcert");
            let cas = pem::certificates(rootcert, &root_key)?;
            let mut roots = RootCertStore::empty();
            for ca in &cas {
                roots.add(ca.clone()).map_err(|e| {
                    TlsError::file(&root_key, rootcert, format!("not a usable CA: {e}"))
                })?;
            }
            let mut revoked = Vec::new();
            for crl in crls {
                revoked.extend(pem::crls(crl, &key("sslcrl"))?);
            }
            let mut builder =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !revoked.is_empty() {
                builder = builder.with_crls(revoked).enforce_revocation_expiration();
            }
            let inner = builder
                .build()
                .map_err(|e| TlsError::file(&root_key, rootcert, format!("not usable: {e}")))?;
            Arc::new(PgVerifier {
                inner,
                pinned: Pinned::new(&cas),
                check_name: *check_name,
                sigs,
            })
        }
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &files.identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, keyfile, password)) => {
            let cert_key = key("sslcert");
            let key_key = key("sslkey");
            let certs = pem::certificates(cert, &cert_key)?;
            let private =
                pem::private_key(keyfile, &key_key, password.as_deref(), &key("sslpassword"))?;
            builder.with_client_auth_cert(certs, private).map_err(|e| {
                TlsError::file(
                    &key_key,
                    keyfile,
                    format!(
                        "cannot be used with the certificate in {}: {e}",
                        cert.display()
                    ),
                )
            })
        }
    }
}

/// The CRLs of a PEM file (`sslcrl`), or of every file of a directory that holds some
/// (`sslcrldir`, OpenSSL's hashed directory: certificates there are skipped).
pub fn crl_files(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .map(|b| String::from_utf8_lossy(&b).contains("-----BEGIN X509 CRL-----"))
                .unwrap_or(false)
        })
        .collect()
}

/// The chain (with CRLs), and the name unless `verify-ca`; a certificate that is itself in
/// the root file is trusted as presented, as OpenSSL (so libpq) trusts a self-signed one.
#[derive(Debug)]
struct PgVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Pinned,
    check_name: bool,
    sigs: Signatures,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.pinned.holds(end_entity) {
            if self.check_name {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
            }
            return Ok(ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the name last, after the chain and the CRLs: a name error means
            // everything else held, which is all `verify-ca` asks.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    server_signatures!();
}

/// RFC 5929's `tls-server-end-point` for SCRAM-SHA-256-PLUS: the certificate's hash with
/// the hash of its signature algorithm (SHA-256 for MD5 and SHA-1), as the server computes
/// it. `None` for an algorithm without one (Ed25519, RSA-PSS): PostgreSQL offers no channel
/// binding then either.
pub fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use ring::digest;
    let oid = signature_oid(cert)?;
    // 1.2.840.113549.1.1.{4,5,11,12,13}: md5/sha1/sha256/sha384/sha512 WithRSAEncryption;
    // 1.2.840.10045.4.1 and 4.3.{2,3,4}: ecdsa-with-SHA1/256/384/512.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let alg = match oid {
        [p @ .., 4 | 5 | 11] if p == RSA => &digest::SHA256,
        [p @ .., 12] if p == RSA => &digest::SHA384,
        [p @ .., 13] if p == RSA => &digest::SHA512,
        [p @ .., 1] if p == ECDSA => &digest::SHA256,
        [p @ .., 3, 2] if p == ECDSA => &digest::SHA256,
        [p @ .., 3, 3] if p == ECDSA => &digest::SHA384,
        [p @ .., 3, 4] if p == ECDSA => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(alg, cert).as_ref().to_vec())
}

/// The signatureAlgorithm OID of a DER certificate: `SEQUENCE { tbsCertificate SEQUENCE,
/// signatureAlgorithm SEQUENCE { OID, ... }, signature }`.
fn signature_oid(der: &[u8]) -> Option<&[u8]> {
    /// (tag, contents, rest) of the first element of `b`.
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let (bytes, rest) = b.split_at(n);
            b = rest;
            bytes
                .iter()
                .fold(0usize, |acc, x| (acc << 8) | usize::from(*x))
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, _tbs, rest) = element(cert)? else {
        return None;
    };
    let (0x30, alg, _) = element(rest)? else {
        return None;
    };
    let (0x06, oid, _) = element(alg)? else {
        return None;
    };
    Some(oid)
}
