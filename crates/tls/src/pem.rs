//! PEM files → DER certificates and keys, with errors that name the file and the reason.
//!
//! Keys: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), and
//! encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2 or scrypt and AES-CBC, what
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` and OpenSSL 3's defaults write) decrypted with the
//! password in pure Rust. OpenSSL's older "traditional" encryption (`Proc-Type: 4,ENCRYPTED`
//! headers) is refused with the command that converts the key.

use std::path::Path;

use pkcs8::der::Decode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use crate::TlsError;

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

fn read(path: &Path, key: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(key, path, format!("cannot read it: {e}")))
}

/// Every certificate of a PEM file, in order; an error when there is none.
pub(crate) fn certificates(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    blocks(
        path,
        key,
        "certificate (no -----BEGIN CERTIFICATE----- block)",
    )
}

/// Every revocation list of a PEM file, in order; an error when there is none.
pub(crate) fn crls(
    path: &Path,
    key: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    blocks(path, key, "CRL (no -----BEGIN X509 CRL----- block)")
}

/// Every PEM block of one kind in a file; an error naming `what` when there is none.
fn blocks<T: PemObject>(path: &Path, key: &str, what: &str) -> Result<Vec<T>, TlsError> {
    let bytes = read(path, key)?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(key, path, format!("not a valid PEM file: {e}")))?;
    if items.is_empty() {
        return Err(TlsError::file(key, path, format!("holds no {what}")));
    }
    Ok(items)
}

/// The private key of a PEM file, decrypted with `password` when it is encrypted.
pub(crate) fn private_key(
    path: &Path,
    key: &str,
    password: Option<&str>,
    password_key: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, key)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::file(
            key,
            path,
            "holds a key in OpenSSL's traditional encrypted format, which pgkeel cannot \
             decrypt; convert it to encrypted PKCS#8 with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`",
        ));
    }
    if let Some(der) = encrypted_block(&text) {
        let der = der.map_err(|e| {
            TlsError::file(key, path, format!("bad ENCRYPTED PRIVATE KEY block: {e}"))
        })?;
        let Some(password) = password else {
            return Err(TlsError::file(
                key,
                path,
                format!("holds an encrypted key and {password_key} is not set"),
            ));
        };
        let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| {
            TlsError::file(key, path, format!("bad ENCRYPTED PRIVATE KEY block: {e}"))
        })?;
        let plain = info.decrypt(password).map_err(|e| {
            TlsError::file(
                key,
                path,
                format!(
                    "cannot decrypt the key with {password_key} ({e}): a wrong password, or \
                     an encryption other than PBES2 (PBKDF2 or scrypt with AES-CBC)"
                ),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no private key (no -----BEGIN PRIVATE KEY----- block or the like)"
                    .to_string()
            }
            e => format!("not a valid PEM key: {e}"),
        };
        TlsError::file(key, path, why)
    })
}

/// The DER of the first `ENCRYPTED PRIVATE KEY` block, if the text has one.
fn encrypted_block(text: &str) -> Option<Result<Vec<u8>, String>> {
    let start = text.find(ENCRYPTED_BEGIN)?;
    let Some(len) = text[start..].find(ENCRYPTED_END) else {
        return Some(Err(format!("no {ENCRYPTED_END} line")));
    };
    let block = &text[start..start + len + ENCRYPTED_END.len()];
    Some(
        pkcs8::der::pem::decode_vec(block.as_bytes())
            .map(|(_, der)| der)
            .map_err(|e| e.to_string()),
    )
}
