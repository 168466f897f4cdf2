//! The REST API's TLS keys: `restapi.certfile`, `keyfile`, `keyfile_password`, `cafile`,
//! `ciphers`, `verify_client` (the server), and the `ctl` section (its clients) → [`ServerTls`],
//! [`Ctl`], [`ClientTls`]. Values only: whether the files exist and hold a matching
//! certificate and key is checked where they are read, at start.

use std::path::PathBuf;

use serde_json::Value;

use super::ciphers;
use super::diag::Diag;
use super::raw::{Node, RawCtl, RawRestApi};
use super::scalar::{self, found};
use super::{CertKey, ClientTls, Ctl, ServerTls, VerifyClient, VerifyServer};

const PATH_ALLOWED: &str = "the path of a PEM file";

/// A file path; an empty string is no file (Patroni: "if the certfile is not specified or
/// is left empty, the API server will work without SSL").
pub(crate) fn file(n: Option<&Node>, diag: &mut Diag) -> Option<Option<PathBuf>> {
    match n.map(|n| (&n.value, n)) {
        None | Some((Value::Null, _)) => Some(None),
        Some((Value::String(s), _)) if s.trim().is_empty() => Some(None),
        Some((Value::String(s), _)) => Some(Some(PathBuf::from(s))),
        Some((other, n)) => {
            diag.problem(&n.path, found(other), PATH_ALLOWED);
            None
        }
    }
}

fn password(n: Option<&Node>, diag: &mut Diag) -> Option<Option<String>> {
    match n {
        None => Some(None),
        Some(n) => scalar::text(&n.value, &n.path, diag, "the password of the key file")
            .map(|p| Some(p).filter(|p| !p.is_empty())),
    }
}

/// What `restapi` says about TLS: the server's settings (`None`: plain HTTP) and `cafile`.
/// `None` when a value is bad (the problem is recorded).
pub(crate) fn server_tls(
    raw: &RawRestApi,
    diag: &mut Diag,
) -> Option<(Option<ServerTls>, Option<PathBuf>)> {
    let before = diag.problems.len();
    let certfile = file(raw.certfile.as_ref(), diag);
    let keyfile = file(raw.keyfile.as_ref(), diag);
    let keyfile_password = password(raw.keyfile_password.as_ref(), diag);
    let cafile = file(raw.cafile.as_ref(), diag);
    let ciphers = raw.ciphers.as_ref().and_then(|n| match &n.value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => match ciphers::parse(s) {
            Ok(list) => Some(list),
            Err(why) => {
                diag.problem(
                    &n.path,
                    format!("{} which pgkeel cannot honour: {why}", found(&n.value)),
                    "an OpenSSL cipher list of suite names (ECDHE-RSA-AES256-GCM-SHA384:...), \
                     classes such as HIGH or ECDHE, and removals such as !aNULL",
                );
                None
            }
        },
        other => {
            diag.problem(&n.path, found(other), "an OpenSSL cipher list (a string)");
            None
        }
    });
    let verify = raw.verify_client.as_ref().and_then(|n| match &n.value {
        // Patroni lower-cases it.
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some((n, "none")),
            "optional" => Some((n, "optional")),
            "required" => Some((n, "required")),
            _ => {
                diag.problem(&n.path, found(&n.value), "none, optional or required");
                None
            }
        },
        Value::Null => None,
        other => {
            diag.problem(&n.path, found(other), "none, optional or required");
            None
        }
    });
    if diag.problems.len() > before {
        return None;
    }
    let (certfile, keyfile, keyfile_password, cafile) =
        (certfile?, keyfile?, keyfile_password?, cafile?);
    let Some(certfile) = certfile else {
        // Plain HTTP. A client-certificate demand cannot be met without TLS: refused, so
        // that nobody believes the API checks certificates when it cannot.
        if let Some((n, mode @ ("optional" | "required"))) = verify {
            diag.problem(
                &n.path,
                format!("{mode} while restapi.certfile is not set"),
                "none, or set restapi.certfile (client certificates need HTTPS)",
            );
            return None;
        }
        for n in [&raw.keyfile, &raw.keyfile_password, &raw.ciphers]
            .into_iter()
            .flatten()
        {
            // Patroni serves plain HTTP here; a key set for TLS that silently gets none is
            // the trap the TLS work removed, so it is refused.
            diag.problem(
                &n.path,
                "set while restapi.certfile is not, so the API would serve plain HTTP",
                "restapi.certfile set too, or this key removed",
            );
        }
        return Some((None, cafile));
    };
    let verify_client = match verify {
        None | Some((_, "none")) => VerifyClient::None,
        Some((n, mode)) => {
            let Some(ca) = cafile.clone() else {
                diag.problem(
                    &n.path,
                    format!("{mode} while restapi.cafile is not set"),
                    "none, or set restapi.cafile to the CA that signs client certificates",
                );
                return None;
            };
            if mode == "required" {
                VerifyClient::Required { cafile: ca }
            } else {
                VerifyClient::Optional { cafile: ca }
            }
        }
    };
    let tls = ServerTls {
        identity: CertKey {
            certfile,
            keyfile,
            keyfile_password,
        },
        verify_client,
        ciphers,
    };
    Some((Some(tls), cafile))
}

/// The `ctl` section's TLS keys. `None` when a value is bad.
pub(crate) fn ctl(raw: Option<&RawCtl>, diag: &mut Diag) -> Option<Ctl> {
    let Some(raw) = raw else {
        return Some(Ctl::default());
    };
    let before = diag.problems.len();
    let insecure = match &raw.insecure {
        None => Some(false),
        Some(n) => scalar::boolean(&n.value, &n.path, diag),
    };
    let cacert = file(raw.cacert.as_ref(), diag);
    let certfile = file(raw.certfile.as_ref(), diag);
    let keyfile = file(raw.keyfile.as_ref(), diag);
    let keyfile_password = password(raw.keyfile_password.as_ref(), diag);
    if diag.problems.len() > before {
        return None;
    }
    let identity = match certfile? {
        Some(certfile) => Some(CertKey {
            certfile,
            keyfile: keyfile?,
            keyfile_password: keyfile_password?,
        }),
        None => {
            for n in [&raw.keyfile, &raw.keyfile_password].into_iter().flatten() {
                diag.warn(&n.path, "ignored: ctl.certfile is not set");
            }
            None
        }
    };
    Some(Ctl {
        insecure: insecure?,
        cacert: cacert?,
        identity,
    })
}

impl Ctl {
    /// How the CLI calls members over HTTPS, as patronictl does: the server verified
    /// (chain and host name) against `ctl.cacert`, else `restapi.cafile`, else the system's
    /// trust store, unless `ctl.insecure`; `ctl.certfile` presented as client certificate.
    pub fn cli_tls(&self, restapi_cafile: Option<&PathBuf>) -> ClientTls {
        let verify = if self.insecure {
            VerifyServer::Skip
        } else {
            VerifyServer::ChainAndName {
                cafile: self.cacert.clone().or_else(|| restapi_cafile.cloned()),
            }
        };
        ClientTls {
            verify,
            identity: self.identity.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_ctl_str, load_str, Tls12Cipher};

    use super::*;

    fn node(restapi: &str, ctl: &str) -> String {
        format!(
            "scope: s\nname: n\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n{restapi}\
             etcd3: {{hosts: 127.0.0.1:2379}}\npostgresql: {{listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}}\n{ctl}"
        )
    }

    fn err(restapi: &str) -> String {
        match load_str(&node(restapi, ""), "n.yml") {
            Ok(_) => panic!("loaded: {restapi}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn without_certfile_the_api_is_http() {
        let c = load_str(&node("", ""), "n.yml").unwrap().config;
        assert_eq!(c.restapi.tls, None);
        assert_eq!(c.restapi.api_url(), "http://127.0.0.1:8008/patroni");
        // An empty certfile is no TLS, as in Patroni; a keyfile then would be ignored, which
        // would serve plain HTTP to an operator who asked for TLS: refused, naming the key.
        let e = load_str(&node("  certfile: ''\n  keyfile: /k.pem\n", ""), "n.yml").unwrap_err();
        assert!(
            e.message.contains("restapi.keyfile") && e.message.contains("plain HTTP"),
            "{}",
            e.message
        );
    }

    #[test]
    fn certfile_turns_https_on_with_every_key() {
        let c = load_str(
            &node(
                "  certfile: /c.pem\n  keyfile: /k.pem\n  keyfile_password: pw\n  cafile: /ca.pem\n  \
                 verify_client: Required\n  ciphers: ECDHE-RSA-AES128-GCM-SHA256\n",
                "",
            ),
            "n.yml",
        )
        .unwrap()
        .config;
        let tls = c.restapi.tls.clone().unwrap();
        assert_eq!(
            tls.identity,
            CertKey {
                certfile: "/c.pem".into(),
                keyfile: Some("/k.pem".into()),
                keyfile_password: Some("pw".into()),
            }
        );
        assert_eq!(
            tls.verify_client,
            VerifyClient::Required {
                cafile: "/ca.pem".into()
            }
        );
        assert_eq!(tls.ciphers, Some(vec![Tls12Cipher::EcdheRsaAes128Gcm]));
        assert_eq!(c.restapi.api_url(), "https://127.0.0.1:8008/patroni");
        // The key defaults to the certificate's file.
        let c = load_str(&node("  certfile: /both.pem\n", ""), "n.yml")
            .unwrap()
            .config;
        let tls = c.restapi.tls.unwrap();
        assert_eq!(
            (tls.identity.keyfile, tls.verify_client),
            (None, VerifyClient::None)
        );
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let e = err("  certfile: /c.pem\n  cafile: /ca.pem\n  verify_client: sometimes\n");
        assert!(
            e.contains("restapi.verify_client") && e.contains("none, optional or required"),
            "{e}"
        );
        let e = err("  certfile: /c.pem\n  verify_client: required\n");
        assert!(
            e.contains("restapi.verify_client") && e.contains("restapi.cafile is not set"),
            "{e}"
        );
        let e = err("  cafile: /ca.pem\n  verify_client: optional\n");
        assert!(e.contains("restapi.certfile is not set"), "{e}");
        let e = err("  certfile: [a, b]\n");
        assert!(
            e.contains("restapi.certfile") && e.contains("the path of a PEM file"),
            "{e}"
        );
        let e = err("  certfile: /c.pem\n  ciphers: 'HIGH:@STRENGTH'\n");
        assert!(
            e.contains("restapi.ciphers") && e.contains("\"@STRENGTH\""),
            "{e}"
        );
        assert!(e.contains("line 7"), "{e}");
    }

    #[test]
    fn environment_variables_land_in_the_same_checks() {
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = crate::config::load_str_env(
            &node("", ""),
            "n.yml",
            &[
                env("PATRONI_RESTAPI_CERTFILE", "/c.pem"),
                env("PATRONI_RESTAPI_CAFILE", "/ca.pem"),
                env("PATRONI_RESTAPI_VERIFY_CLIENT", "required"),
                env("PATRONI_CTL_INSECURE", "on"),
                env("PATRONI_CTL_CERTFILE", "/cc.pem"),
            ],
        )
        .unwrap()
        .config;
        assert!(matches!(
            c.restapi.tls.unwrap().verify_client,
            VerifyClient::Required { .. }
        ));
        assert!(c.ctl.insecure);
        assert_eq!(c.ctl.identity.unwrap().certfile, PathBuf::from("/cc.pem"));
    }

    #[test]
    fn the_agent_presents_ctl_certfile_else_restapi_certfile_and_checks_chains_only() {
        let c = load_str(
            &node("  certfile: /srv.pem\n  cafile: /ca.pem\n", ""),
            "n.yml",
        )
        .unwrap()
        .config;
        let t = c.peer_tls();
        assert_eq!(t.identity.unwrap().certfile, PathBuf::from("/srv.pem"));
        assert_eq!(
            t.verify,
            VerifyServer::Chain {
                cafile: "/ca.pem".into()
            }
        );
        let c = load_str(
            &node(
                "  certfile: /srv.pem\n",
                "ctl:\n  certfile: /cli.pem\n  cacert: /ctlca.pem\n",
            ),
            "n.yml",
        )
        .unwrap()
        .config;
        let t = c.peer_tls();
        assert_eq!(t.identity.unwrap().certfile, PathBuf::from("/cli.pem"));
        assert_eq!(
            t.verify,
            VerifyServer::Chain {
                cafile: "/ctlca.pem".into()
            }
        );
        // No CA anywhere: peers are not verified (Patroni's agent does not either).
        let c = load_str(&node("", ""), "n.yml").unwrap().config;
        assert_eq!(c.peer_tls().verify, VerifyServer::Skip);
    }

    #[test]
    fn the_cli_reads_ctl_then_restapi_cafile() {
        let base = "scope: s\netcd3: {hosts: 127.0.0.1:2379}\n";
        let c = load_ctl_str(
            &format!(
                "{base}restapi: {{cafile: /ca.pem}}\nctl:\n  certfile: /c.pem\n  keyfile: /k.pem\n"
            ),
            "p.yml",
        )
        .unwrap();
        assert_eq!(
            c.tls.verify,
            VerifyServer::ChainAndName {
                cafile: Some("/ca.pem".into())
            }
        );
        assert_eq!(
            c.tls.identity.unwrap().keyfile,
            Some(PathBuf::from("/k.pem"))
        );
        let c = load_ctl_str(&format!("{base}ctl: {{insecure: true}}\n"), "p.yml").unwrap();
        assert_eq!(c.tls.verify, VerifyServer::Skip);
        let e = load_ctl_str(&format!("{base}ctl: {{insecure: maybe}}\n"), "p.yml").unwrap_err();
        assert!(e.message.contains("ctl.insecure"), "{}", e.message);
    }
}
