//! Test certificates (feature `test-pki`, for this workspace's tests only): a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, an unrelated key, a
//! self-signed certificate shaped as `openssl req -x509` makes them, and the server's key
//! encrypted with the password "secret".
//!
//! Files: `ca.pem`, `server.pem`, `server.key`, `server.enc.key`, `client.pem`,
//! `client.key`, `other.key`, `self.pem` (certificate and key).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;

/// A CA and certificates for tests, written as PEM files into a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, an
    /// unrelated key, and a self-signed certificate (CA:TRUE) for 127.0.0.1 as
    /// `openssl req -x509` makes them.
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca, ca_key);
        for (name, sans, usage) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["client".to_string()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans).unwrap();
            p.extended_key_usages = vec![usage];
            write(
                &format!("{name}.pem"),
                p.signed_by(&key, &issuer).unwrap().pem(),
            );
            write(&format!("{name}.key"), key.serialize_pem());
        }
        write("other.key", KeyPair::generate().unwrap().serialize_pem());
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap().pem();
        write("self.pem", format!("{cert}{}", key.serialize_pem()));
        // The server's key, encrypted with "secret" (PBES2: PBKDF2-SHA256, AES-256-CBC).
        let der =
            rustls::pki_types::PrivateKeyDer::from_pem_file(dir.path().join("server.key")).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(der.secret_der()).unwrap();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
                .unwrap();
        let enc = info.encrypt_with_params(params, "secret").unwrap();
        write(
            "server.enc.key",
            enc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
                .unwrap()
                .to_string(),
        );
        TestPki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
