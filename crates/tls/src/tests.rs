//! The files an operator may give, read and used in real handshakes (in memory).

use std::path::Path;
use std::sync::Arc;

use pgkeel_core::config::{CertKey, ClientTls, ServerTls, VerifyClient, VerifyServer};
use rustls::{ClientConnection, ServerConnection};

use super::*;

use crate::test_pki::TestPki as Pki;

impl Pki {
    fn pair(&self, cert: &str, key: Option<&str>) -> CertKey {
        CertKey {
            certfile: self.path(cert),
            keyfile: key.map(|k| self.path(k)),
            keyfile_password: None,
        }
    }

    fn server(&self, verify_client: VerifyClient) -> ServerTls {
        ServerTls {
            identity: self.pair("server.pem", Some("server.key")),
            verify_client,
            ciphers: None,
        }
    }
}

/// Runs a handshake in memory; the first error either side sees.
fn handshake(
    client: rustls::ClientConfig,
    server: Arc<rustls::ServerConfig>,
    name: &str,
) -> Result<(), rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(server)?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets()?;
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // TLS 1.3: the server sees the client's certificate in the client's last flight.
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets()?;
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn client(pki: &Pki, verify: VerifyServer, identity: Option<CertKey>) -> rustls::ClientConfig {
    let _ = pki;
    client_config(&ClientTls { verify, identity }, "ctl", "ctl.cacert").unwrap()
}

fn ca(pki: &Pki) -> VerifyServer {
    VerifyServer::ChainAndName {
        cafile: Some(pki.path("ca.pem")),
    }
}

#[test]
fn a_server_cert_the_ca_signed_is_verified_with_its_name() {
    let pki = Pki::new();
    let server = server_config(&pki.server(VerifyClient::None)).unwrap();
    handshake(client(&pki, ca(&pki), None), server.clone(), "127.0.0.1").unwrap();
    let wrong = handshake(client(&pki, ca(&pki), None), server.clone(), "example.com");
    assert!(wrong.is_err(), "{wrong:?}");
    // The agent checks the chain only, as Patroni's does.
    let chain = VerifyServer::Chain {
        cafile: pki.path("ca.pem"),
    };
    handshake(client(&pki, chain, None), server.clone(), "example.com").unwrap();
    // Another CA: refused, unless verification is skipped.
    let other = VerifyServer::Chain {
        cafile: pki.path("self.pem"),
    };
    assert!(handshake(client(&pki, other, None), server.clone(), "127.0.0.1").is_err());
    handshake(client(&pki, VerifyServer::Skip, None), server, "127.0.0.1").unwrap();
}

#[test]
fn verify_client_required_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let cafile = pki.path("ca.pem");
    let server = server_config(&pki.server(VerifyClient::Required {
        cafile: cafile.clone(),
    }))
    .unwrap();
    let none = handshake(client(&pki, ca(&pki), None), server.clone(), "127.0.0.1");
    assert!(none.is_err(), "{none:?}");
    let me = pki.pair("client.pem", Some("client.key"));
    handshake(
        client(&pki, ca(&pki), Some(me)),
        server.clone(),
        "127.0.0.1",
    )
    .unwrap();
    // A certificate of another CA is refused too.
    let stranger = pki.pair("self.pem", None);
    let r = handshake(client(&pki, ca(&pki), Some(stranger)), server, "127.0.0.1");
    assert!(r.is_err(), "{r:?}");
    // optional: no certificate is fine at the TLS level.
    let server = server_config(&pki.server(VerifyClient::Optional { cafile })).unwrap();
    handshake(client(&pki, ca(&pki), None), server, "127.0.0.1").unwrap();
}

#[test]
fn a_self_signed_certificate_serves_as_its_own_ca_as_with_openssl() {
    // Patroni's acceptance suite: one self-signed file is certfile, keyfile, cafile, and
    // the clients' certificate too.
    let pki = Pki::new();
    let own = pki.path("self.pem");
    let tls = ServerTls {
        identity: pki.pair("self.pem", None),
        verify_client: VerifyClient::Required {
            cafile: own.clone(),
        },
        ciphers: None,
    };
    let server = server_config(&tls).unwrap();
    let verify = VerifyServer::ChainAndName {
        cafile: Some(own.clone()),
    };
    let me = Some(pki.pair("self.pem", None));
    handshake(
        client(&pki, verify.clone(), me.clone()),
        server.clone(),
        "127.0.0.1",
    )
    .unwrap();
    // The host name is still checked.
    assert!(handshake(client(&pki, verify, me), server, "localhost").is_err());
}

#[test]
fn an_encrypted_pkcs8_key_is_decrypted_with_keyfile_password() {
    let pki = Pki::new();
    let mut tls = pki.server(VerifyClient::None);
    tls.identity.keyfile = Some(pki.path("server.enc.key"));
    let e = server_config(&tls).unwrap_err().0;
    assert!(
        e.contains("restapi.keyfile") && e.contains("restapi.keyfile_password is not set"),
        "{e}"
    );
    tls.identity.keyfile_password = Some("wrong".into());
    let e = server_config(&tls).unwrap_err().0;
    assert!(e.contains("cannot decrypt"), "{e}");
    tls.identity.keyfile_password = Some("secret".into());
    let server = server_config(&tls).unwrap();
    handshake(client(&pki, ca(&pki), None), server, "127.0.0.1").unwrap();
}

#[test]
fn bad_files_are_named_with_the_reason() {
    let pki = Pki::new();
    let err = |tls: &ServerTls| server_config(tls).unwrap_err().0;
    let at = |p: &Path| p.display().to_string();

    let mut tls = pki.server(VerifyClient::None);
    tls.identity.certfile = pki.path("missing.pem");
    let e = err(&tls);
    assert!(
        e.starts_with(&format!(
            "restapi.certfile {}: cannot read it",
            at(&tls.identity.certfile)
        )),
        "{e}"
    );

    let mut tls = pki.server(VerifyClient::None);
    tls.identity.keyfile = Some(pki.path("other.key"));
    let e = err(&tls);
    assert!(
        e.contains("restapi.keyfile") && e.contains("is not the key of the certificate"),
        "{e}"
    );

    // No keyfile: the key must be in certfile.
    let tls = ServerTls {
        identity: pki.pair("server.pem", None),
        ..pki.server(VerifyClient::None)
    };
    let e = err(&tls);
    assert!(e.contains("holds no private key"), "{e}");

    // A key where a certificate should be, and a CA file that holds none.
    let tls = ServerTls {
        identity: pki.pair("server.key", Some("server.key")),
        ..pki.server(VerifyClient::None)
    };
    assert!(err(&tls).contains("holds no certificate"), "{}", err(&tls));
    let tls = pki.server(VerifyClient::Required {
        cafile: pki.path("other.key"),
    });
    let e = err(&tls);
    assert!(
        e.starts_with("restapi.cafile") && e.contains("holds no certificate"),
        "{e}"
    );

    // OpenSSL's traditional encryption is refused with the way out.
    std::fs::write(
        pki.path("old.key"),
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut tls = pki.server(VerifyClient::None);
    tls.identity.keyfile = Some(pki.path("old.key"));
    let e = err(&tls);
    assert!(
        e.contains("traditional encrypted format") && e.contains("openssl pkcs8"),
        "{e}"
    );
}

#[test]
fn ciphers_narrow_tls12_and_leave_tls13() {
    use pgkeel_core::config::Tls12Cipher;
    let p = provider(Some(&[Tls12Cipher::EcdheRsaAes128Gcm]));
    let names: Vec<String> = p
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        names,
        vec![
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ]
    );
}

mod etcd {
    use pgkeel_core::config::{Etcd, EtcdTls, HostPort};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;

    fn etcd(pki: &Pki, cert: Option<(&str, Option<&str>)>, password: Option<&str>) -> Etcd {
        Etcd {
            section: "etcd3",
            hosts: vec![HostPort {
                host: "127.0.0.1".into(),
                port: 2379,
            }],
            username: None,
            password: None,
            tls: Some(EtcdTls {
                cacert: Some(pki.path("ca.pem")),
                identity: cert.map(|(c, k)| CertKey {
                    certfile: pki.path(c),
                    keyfile: k.map(|k| pki.path(k)),
                    keyfile_password: password.map(str::to_string),
                }),
            }),
        }
    }

    /// A rustls client config from the parts, as tonic builds it.
    fn client_from(parts: &EtcdClientTls) -> rustls::ClientConfig {
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(provider(None)))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(parts.verifier.clone());
        match &parts.identity_pem {
            None => b.with_no_client_auth(),
            Some((chain, key)) => {
                let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                b.with_client_auth_cert(certs, key).unwrap()
            }
        }
    }

    #[test]
    fn etcd_parts_verify_the_server_and_present_the_client_certificate() {
        let pki = Pki::new();
        assert_eq!(
            etcd_client(&Etcd {
                tls: None,
                ..etcd(&pki, None, None)
            })
            .unwrap(),
            None
        );
        let server = server_config(&pki.server(VerifyClient::Required {
            cafile: pki.path("ca.pem"),
        }))
        .unwrap();
        let parts = etcd_client(&etcd(&pki, Some(("client.pem", Some("client.key"))), None))
            .unwrap()
            .unwrap();
        handshake(client_from(&parts), server.clone(), "127.0.0.1").unwrap();
        // The host name is checked, as Patroni's urllib3 does.
        assert!(handshake(client_from(&parts), server.clone(), "example.com").is_err());
        // Without a certificate, etcd's --client-cert-auth refuses the handshake.
        let anonymous = etcd_client(&etcd(&pki, None, None)).unwrap().unwrap();
        assert!(handshake(client_from(&anonymous), server.clone(), "127.0.0.1").is_err());
        // An encrypted key is decrypted with key_password, and re-encoded for the client.
        let enc = etcd(&pki, Some(("server.pem", Some("server.enc.key"))), None);
        let e = etcd_client(&enc).unwrap_err().0;
        assert!(
            e.starts_with("etcd3.key ") && e.contains("etcd3.key_password is not set"),
            "{e}"
        );
        let enc = etcd(
            &pki,
            Some(("server.pem", Some("server.enc.key"))),
            Some("secret"),
        );
        let parts = etcd_client(&enc).unwrap().unwrap();
        assert!(parts
            .identity_pem
            .as_ref()
            .unwrap()
            .1
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn bad_etcd_files_are_named_with_the_key_and_the_reason() {
        let pki = Pki::new();
        let err = |e: &Etcd| etcd_client(e).unwrap_err().0;
        let mut e = etcd(&pki, None, None);
        e.tls.as_mut().unwrap().cacert = Some(pki.path("missing.pem"));
        let msg = err(&e);
        assert!(
            msg.starts_with(&format!(
                "etcd3.cacert {}: cannot read it",
                pki.path("missing.pem").display()
            )),
            "{msg}"
        );
        let msg = err(&etcd(&pki, Some(("client.pem", Some("other.key"))), None));
        assert!(
            msg.starts_with("etcd3.key ")
                && msg.contains("is not the key of the certificate in etcd3.cert"),
            "{msg}"
        );
        let msg = err(&etcd(&pki, Some(("client.pem", None)), None));
        assert!(
            msg.contains("etcd3.cert") && msg.contains("as etcd3.key is not set"),
            "{msg}"
        );
        let mut e = etcd(&pki, None, None);
        e.section = "etcd";
        e.tls.as_mut().unwrap().cacert = Some(pki.path("client.key"));
        assert!(err(&e).starts_with("etcd.cacert "), "{}", err(&e));
    }

    #[test]
    fn etcd_parts_compare_by_what_the_files_hold() {
        let pki = Pki::new();
        let cfg = etcd(&pki, Some(("client.pem", Some("client.key"))), None);
        let a = etcd_client(&cfg).unwrap();
        assert_eq!(a, etcd_client(&cfg).unwrap());
        std::fs::copy(pki.path("server.pem"), pki.path("client.pem")).unwrap();
        std::fs::copy(pki.path("server.key"), pki.path("client.key")).unwrap();
        assert_ne!(a, etcd_client(&cfg).unwrap());
    }
}
