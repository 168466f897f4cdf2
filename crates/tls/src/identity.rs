//! A certificate and its key ([`CertKey`]) read, parsed and checked to belong together.

use std::path::Path;

use pgkeel_core::config::CertKey;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys};

use crate::{pem, TlsError};

/// The config keys that name a [`CertKey`]'s files, for messages.
pub(crate) struct Keys {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) password: String,
}

impl Keys {
    /// `restapi` or `ctl`: `certfile`, `keyfile`, `keyfile_password`.
    pub(crate) fn rest(section: &str) -> Keys {
        Keys {
            cert: format!("{section}.certfile"),
            key: format!("{section}.keyfile"),
            password: format!("{section}.keyfile_password"),
        }
    }
}

/// The chain and key of `ck`, from the files the `keys` name: each file read, the key
/// decrypted if need be, and the key checked to be the certificate's.
pub(crate) fn load(
    ck: &CertKey,
    keys: &Keys,
    provider: &CryptoProvider,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_key = &keys.cert;
    let certs = pem::certificates(&ck.certfile, cert_key)?;
    let (key_path, key_key): (&Path, String) = match &ck.keyfile {
        Some(k) => (k, keys.key.clone()),
        None => (
            &ck.certfile,
            format!("{cert_key} (holding the key, as {} is not set)", keys.key),
        ),
    };
    let key = pem::private_key(
        key_path,
        &key_key,
        ck.keyfile_password.as_deref(),
        &keys.password,
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
