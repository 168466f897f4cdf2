//! The DCS sections: `etcd3` (or Patroni's v2 `etcd`, whose endpoints pgkeel uses over the v3
//! API) → [`Etcd`]. pgkeel speaks only etcd v3, over HTTP or HTTPS (`protocol`, `cacert`,
//! `cert`, `key`), with or without a user (`username`, `password`). Values only: whether the
//! certificate files exist and hold a matching certificate and key is checked where they are
//! read, at start (`pgkeel_tls`).

use serde_json::Value;

use super::diag::{Diag, KeyPath};
use super::raw::{Node, RawConfig, RawEtcd};
use super::rest_tls;
use super::scalar::{self, found};
use super::{CertKey, Etcd, EtcdTls, HostPort};

/// etcd's client port, Patroni's default when an endpoint has none.
const ETCD_PORT: u16 = 2379;

const HOSTS_ALLOWED: &str = "a list of etcd endpoints as host:port, or one string \
     \"host1:2379,host2:2379\"";

pub(crate) fn etcd(raw: &RawConfig, diag: &mut Diag) -> Option<Etcd> {
    let (section, name) = match (&raw.etcd3, &raw.etcd_v2) {
        (Some(v3), v2) => {
            if let Some(v2) = v2 {
                diag.warn(
                    &v2.path,
                    "ignored: etcd3 is configured too, and pgkeel speaks only etcd v3",
                );
            }
            (v3, "etcd3")
        }
        (None, Some(v2)) => {
            diag.warn(
                &v2.path,
                "pgkeel speaks only the etcd v3 API: these endpoints are used over v3, whose \
                 keys are not the v2 keys Patroni keeps with this section (a node of a cluster \
                 Patroni runs that way is refused); rename the section to etcd3 to silence this",
            );
            (v2, "etcd")
        }
        (None, None) => {
            match raw.other_dcs.first() {
                Some(other) => diag.problem(
                    other,
                    "a DCS section pgkeel cannot use",
                    "an etcd3 section: pgkeel supports only etcd v3 as DCS",
                ),
                None => diag.missing(
                    &KeyPath::root().key("etcd3"),
                    "an etcd3 section with hosts (pgkeel supports only etcd v3 as DCS)",
                ),
            }
            return None;
        }
    };
    for other in &raw.other_dcs {
        diag.warn(other, "ignored: pgkeel supports only etcd v3 as DCS");
    }
    section_to_etcd(section, name, diag)
}

fn section_to_etcd(s: &RawEtcd, section: &'static str, diag: &mut Diag) -> Option<Etcd> {
    let before = diag.problems.len();
    let https = match s.protocol.as_ref().map(|p| (p, &p.value)) {
        None | Some((_, Value::Null)) => Some(false),
        // Patroni builds its URLs with the value as given; URL schemes ignore case.
        Some((_, Value::String(v))) if v.trim().eq_ignore_ascii_case("http") => Some(false),
        Some((_, Value::String(v))) if v.trim().eq_ignore_ascii_case("https") => Some(true),
        Some((p, other)) => {
            diag.problem(&p.path, found(other), "http or https");
            None
        }
    };
    // Patroni's order: `proxy`, then `url`, then `hosts`/`host` (then `srv`, which pgkeel
    // cannot resolve). A URL also gives the scheme.
    let (from_url, https) = match s.proxy.as_ref().or(s.url.as_ref()) {
        Some(n) => match url(n, s, https, diag) {
            Some((host, scheme_https)) => (Some(vec![host]), Some(scheme_https)),
            None => (None, None),
        },
        None => (None, https),
    };
    if let Some(n) = s.use_proxies.as_ref().filter(|n| !n.value.is_null()) {
        // pgkeel never looks for etcd members beyond the endpoints given, which is what
        // `use_proxies: true` asks; `false` differs only in that discovery (README).
        scalar::boolean(&n.value, &n.path, diag);
    }
    for n in [&s.srv, &s.srv_suffix].into_iter().flatten() {
        if !n.value.is_null() {
            diag.problem(
                &n.path,
                found(&n.value),
                "absent: pgkeel does not look etcd up in DNS SRV records; list the endpoints in hosts",
            );
        }
    }
    let tls = https.and_then(|https| tls(s, https, diag));
    let hosts = match (&s.hosts, &s.host) {
        (hosts, host) if from_url.is_some() => {
            for n in [hosts, host].into_iter().flatten() {
                diag.warn(
                    &n.path,
                    "ignored: proxy or url is given (Patroni uses it first)",
                );
            }
            from_url
        }
        (Some(hosts), host) => {
            if let Some(host) = host {
                diag.warn(&host.path, "ignored: hosts is given too");
            }
            endpoints(hosts, diag)
        }
        (None, Some(host)) => endpoint(&host.value, &host.path, diag).map(|h| vec![h]),
        (None, None) => {
            diag.missing(&s.path.key("hosts"), HOSTS_ALLOWED);
            None
        }
    };
    let (username, password) = user(s, diag);
    if diag.problems.len() > before {
        return None;
    }
    Some(Etcd {
        section,
        hosts: hosts?,
        username,
        password,
        tls: tls?,
    })
}

/// `protocol: https` and the files: `cacert`, `cert`, `key` (Patroni's), `key_password`
/// (pgkeel's). Patroni reads them only for https; with http it talks plain HTTP to etcd and
/// never uses them, so a file set for TLS that would get none is refused (as `restapi` keys
/// set without `restapi.certfile` are): the operator asked for something that would not
/// happen. `Some(None)`: plain HTTP.
fn tls(s: &RawEtcd, https: bool, diag: &mut Diag) -> Option<Option<EtcdTls>> {
    let before = diag.problems.len();
    let cacert = rest_tls::file(s.cacert.as_ref(), diag);
    let cert = rest_tls::file(s.cert.as_ref(), diag);
    let key = rest_tls::file(s.key.as_ref(), diag);
    let key_password = match &s.key_password {
        None => Some(None),
        Some(n) => scalar::text(&n.value, &n.path, diag, "the password of the key file")
            .map(|p| Some(p).filter(|p| !p.is_empty())),
    };
    if diag.problems.len() > before {
        return None;
    }
    let (cacert, cert, key, key_password) = (cacert?, cert?, key?, key_password?);
    let set = [
        (&s.cacert, cacert.is_some()),
        (&s.cert, cert.is_some()),
        (&s.key, key.is_some()),
        (&s.key_password, key_password.is_some()),
    ];
    if !https {
        for (n, _) in set.iter().filter(|(_, is_set)| *is_set) {
            let n = n.as_ref().expect("a set value has a node");
            let protocol = s.path.key("protocol");
            diag.problem(
                &n.path,
                format!(
                    "set while {protocol} is http (Patroni's default), so pgkeel would talk \
                     plain HTTP to etcd and never use it"
                ),
                format!("{protocol}: https, or this key removed"),
            );
        }
        return (diag.problems.len() == before).then_some(None);
    }
    let identity = match cert {
        Some(certfile) => Some(CertKey {
            certfile,
            keyfile: key,
            keyfile_password: key_password,
        }),
        None => {
            // Patroni presents no certificate then (it needs both); etcd with
            // --client-cert-auth would refuse, so the operator meant one.
            for (n, _) in set[2..].iter().filter(|(_, is_set)| *is_set) {
                let n = n.as_ref().expect("a set value has a node");
                let cert = s.path.key("cert");
                diag.problem(
                    &n.path,
                    format!("set while {cert} is not, so no client certificate would be presented"),
                    format!("{cert} set too, or this key removed"),
                );
            }
            if diag.problems.len() > before {
                return None;
            }
            None
        }
    };
    Some(Some(EtcdTls { cacert, identity }))
}

/// `username` and `password`: both or neither. Patroni authenticates only with both (and
/// takes an empty value as unset); one alone would silently not authenticate.
fn user(s: &RawEtcd, diag: &mut Diag) -> (Option<String>, Option<String>) {
    let text = |n: &Option<Node>, what: &str, diag: &mut Diag| {
        n.as_ref()
            .and_then(|n| scalar::text(&n.value, &n.path, diag, what))
            .filter(|v| !v.is_empty())
    };
    let username = text(&s.username, "a user name", diag);
    let password = text(&s.password, "a password", diag);
    match (&username, &password, &s.username, &s.password) {
        (Some(_), None, _, _) => diag.problem(
            &s.path.key("username"),
            format!("set while {} is not", s.path.key("password")),
            "both username and password (Patroni authenticates to etcd only with both), or neither",
        ),
        (None, Some(_), _, _) => diag.problem(
            &s.path.key("password"),
            format!("set while {} is not", s.path.key("username")),
            "both username and password (Patroni authenticates to etcd only with both), or neither",
        ),
        _ => {}
    }
    (username, password)
}

/// One endpoint, `host` or `host:port`. A URL is refused with what to write instead: Patroni
/// reads `hosts` as host:port and takes the scheme from `protocol` (a URL there would make
/// it build `http://[https://host]:2379`).
fn endpoint(v: &Value, path: &KeyPath, diag: &mut Diag) -> Option<HostPort> {
    if let Value::String(s) = v {
        let lower = s.trim().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            // The section's key: `hosts[0]` sits at etcd3.hosts[0].
            let protocol = KeyPath(path.0.iter().take(1).cloned().collect()).key("protocol");
            diag.problem(
                path,
                format!("{} (a URL)", found(v)),
                format!(
                    "host or host:port, e.g. 127.0.0.1:2379, with {protocol}: https for TLS \
                     (Patroni takes the scheme from {protocol}, not from hosts)"
                ),
            );
            return None;
        }
    }
    scalar::host_port(v, path, diag, Some(ETCD_PORT))
}

/// `url` or `proxy`: `http(s)://host[:port]`; the scheme must agree with `protocol` when
/// both are given. `(endpoint, https)`.
fn url(
    n: &Node,
    s: &RawEtcd,
    protocol_https: Option<bool>,
    diag: &mut Diag,
) -> Option<(HostPort, bool)> {
    let allowed = "a URL such as http://127.0.0.1:2379 or https://etcd1:2379";
    let Value::String(text) = &n.value else {
        diag.problem(&n.path, found(&n.value), allowed);
        return None;
    };
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("https://") {
        (true, &t[8..])
    } else if lower.starts_with("http://") {
        (false, &t[7..])
    } else {
        diag.problem(&n.path, found(&n.value), allowed);
        return None;
    };
    if s.protocol.is_some() && protocol_https.is_some_and(|p| p != https) {
        diag.problem(
            &n.path,
            format!("{} whose scheme contradicts protocol", found(&n.value)),
            "the same scheme as protocol, or protocol removed",
        );
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = scalar::host_port(&Value::from(authority), &n.path, diag, Some(ETCD_PORT))?;
    Some((host, https))
}

/// `hosts`: a list, or Patroni's comma-separated string.
fn endpoints(n: &Node, diag: &mut Diag) -> Option<Vec<HostPort>> {
    let items: Vec<(KeyPath, Value)> = match &n.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (n.path.index(i), v.clone()))
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| (n.path.clone(), Value::from(h)))
            .collect(),
        other => {
            diag.problem(&n.path, found(other), HOSTS_ALLOWED);
            return None;
        }
    };
    if items.is_empty() {
        diag.problem(&n.path, "no etcd hosts", HOSTS_ALLOWED);
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (path, v) in &items {
        out.push(endpoint(v, path, diag));
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::{load_ctl_str_env, load_str_env};

    const NODE: &str = "scope: s\nname: n\nrestapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}\n\
        etcd3: {hosts: '127.0.0.1:2379'}\npostgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /pg}\n";

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_variables_give_tls_and_a_user_over_the_file() {
        let vars = env(&[
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_CACERT", "/ca.pem"),
            ("PATRONI_ETCD3_CERT", "/c.pem"),
            ("PATRONI_ETCD3_KEY", "/k.pem"),
            ("PATRONI_ETCD3_USERNAME", "root"),
            ("PATRONI_ETCD3_PASSWORD", "pw"),
        ]);
        let c = load_str_env(NODE, "n.yml", &vars).unwrap().config;
        let tls = c.etcd.tls.clone().unwrap();
        assert_eq!(tls.cacert, Some(PathBuf::from("/ca.pem")));
        let id = tls.identity.unwrap();
        assert_eq!(
            (id.certfile, id.keyfile),
            (PathBuf::from("/c.pem"), Some(PathBuf::from("/k.pem")))
        );
        assert_eq!(c.etcd.username.as_deref(), Some("root"));
        assert_eq!(c.etcd.password.as_deref(), Some("pw"));
        assert_eq!(c.etcd.urls(), ["https://127.0.0.1:2379"]);
        // The CLI reads the same.
        let ctl = load_ctl_str_env("etcd3: {hosts: 127.0.0.1:2379}\n", "p.yml", &vars).unwrap();
        assert_eq!(ctl.etcd, c.etcd);
        // A variable's mistake is named like the file's.
        let e =
            load_str_env(NODE, "n.yml", &env(&[("PATRONI_ETCD3_CACERT", "/ca.pem")])).unwrap_err();
        assert!(
            e.message.contains("etcd3.cacert") && e.message.contains("etcd3.protocol is http"),
            "{}",
            e.message
        );
    }
}
