//! A certificate and its key ([`CertKey`]) read, parsed and checked to belong together.

use std::path::Path;

use pgkeel_core::config::CertKey;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};

use crate::{pem, TlsError};

/// The chain and key of `ck`, from the files the `section`'s keys name (`restapi` or
/// `ctl`): each file read, the key decrypted if need be, and the key checked to be the
/// certificate's.
pub(crate) fn load(
    ck: &CertKey,
    section: &str,
    provider: &CryptoProvider,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_key = format!("{section}.certfile");
    let certs = pem::certificates(&ck.certfile, &cert_key)?;
    let (key_path, key_key): (&Path, String) = match &ck.keyfile {
        Some(k) => (k, format!("{section}.keyfile")),
        None => (
            &ck.certfile,
            format!("{cert_key} (holding the key, as {section}.keyfile is not set)"),
        ),
    };
    let key = pem::private_key(
        key_path,
        &key_key,
        ck.keyfile_password.as_deref(),
        &format!("{section}.keyfile_password"),
    )?;
    match CertifiedKey::from_der(certs.clone(), key.clone_key(), provider) {
        Ok(_) => Ok((certs, key)),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::file(
            &key_key,
            key_path,
            format!(
                "is not the key of the certificate in {cert_key} {}",
                ck.certfile.display()
            ),
        )),
        Err(e) => Err(TlsError::file(
            &key_key,
            key_path,
            format!(
                "cannot use the key with the certificate in {}: {e}",
                ck.certfile.display()
            ),
        )),
    }
}
