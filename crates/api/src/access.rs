//! Patroni's `restapi.allowlist` / `allowlist_include_members` (which addresses may call the
//! unsafe endpoints; 403 `Access is denied` otherwise) and `http(s)_extra_headers` (sent with
//! every answer).

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use pgkeel_core::config::{AllowEntry, RestAccess};

use crate::snapshot::{with_snapshot, SharedSnapshot};

/// Bound on resolving one host name: a slow resolver must not hold a request for long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The resolved form of [`RestAccess`].
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Networks allowed (host names of the allowlist resolved at start, as Patroni resolves
    /// them when it reads its config).
    nets: Vec<AllowEntry>,
    include_members: bool,
    /// Whether an allowlist was configured at all (it may have resolved to nothing).
    listed: bool,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl Access {
    /// Resolves the allowlist's host names; one that does not resolve is logged and left
    /// out (narrower, never wider, than configured).
    pub async fn resolve(cfg: &RestAccess) -> Access {
        let mut nets = Vec::new();
        for e in &cfg.allowlist {
            match e {
                AllowEntry::Host(h) => nets.extend(resolve(h, 8080).await),
                net => nets.push(net.clone()),
            }
        }
        let headers = cfg
            .extra_headers
            .iter()
            // Validated when the config was read.
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        Access {
            nets,
            include_members: cfg.include_members,
            listed: !cfg.allowlist.is_empty(),
            headers,
        }
    }

    /// May a request to an unsafe endpoint from `ip` go on? `members`: whether members'
    /// addresses count (Patroni leaves them out for `POST /failsafe`).
    pub(crate) async fn allows(
        &self,
        ip: Option<IpAddr>,
        members: bool,
        snap: &SharedSnapshot,
    ) -> bool {
        let members = members && self.include_members;
        if !self.listed && !members {
            return true;
        }
        let Some(ip) = ip else { return false };
        if self.nets.iter().any(|n| n.contains(ip)) {
            return true;
        }
        if !members {
            return false;
        }
        for (host, port) in member_hosts(snap) {
            if resolve(&host, port).await.iter().any(|n| n.contains(ip)) {
                return true;
            }
        }
        false
    }
}

/// Each member's `api_url` host and port, from the last snapshot of the cluster.
fn member_hosts(snap: &SharedSnapshot) -> Vec<(String, u16)> {
    with_snapshot(snap, |s| {
        let Some(cluster) = &s.cluster else {
            return Vec::new();
        };
        cluster
            .members
            .values()
            .filter_map(|m| m.value())
            .filter_map(|m| host_port_of_url(&m.api_url))
            .collect()
    })
}

/// `http(s)://host[:port]/...` → host and port (the scheme's default without one).
fn host_port_of_url(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_string(), port.unwrap_or(default)));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

async fn resolve(host: &str, port: u16) -> Vec<AllowEntry> {
    let one = |addr: IpAddr| AllowEntry::Net {
        addr,
        prefix: if addr.is_ipv4() { 32 } else { 128 },
    };
    if let Ok(addr) = host.parse::<IpAddr>() {
        return vec![one(addr)];
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => addrs.map(|a| one(a.ip())).collect(),
        Ok(Err(e)) => {
            tracing::error!("Failed to resolve {host}: {e}");
            Vec::new()
        }
        Err(_) => {
            tracing::error!("Failed to resolve {host}: no answer within {RESOLVE_TIMEOUT:?}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_urls_give_host_and_port() {
        assert_eq!(
            host_port_of_url("https://10.0.0.2:8008/patroni"),
            Some(("10.0.0.2".into(), 8008))
        );
        assert_eq!(
            host_port_of_url("http://db1/patroni"),
            Some(("db1".into(), 80))
        );
        assert_eq!(
            host_port_of_url("https://[fd00::1]:8009/patroni"),
            Some(("fd00::1".into(), 8009))
        );
        assert_eq!(host_port_of_url("garbage"), None);
    }
}
