//! Who may call the REST API's unsafe endpoints, and what every answer carries:
//! `restapi.allowlist`, `allowlist_include_members`, `http_extra_headers` and
//! `https_extra_headers` → [`RestAccess`]. Host names are kept as names: they are resolved
//! where the API starts (this crate does no I/O).

use std::net::IpAddr;

use serde_json::Value;

use super::diag::Diag;
use super::raw::{Node, RawRestApi};
use super::scalar::{self, found};

/// One `allowlist` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An address or a network (`10.0.0.0/8`); an address alone is a network of one.
    Net { addr: IpAddr, prefix: u8 },
    /// A host name, allowed from every address it resolves to.
    Host(String),
}

impl AllowEntry {
    /// The address is in this network (host names never match here: resolve them first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let AllowEntry::Net { addr, prefix } = self else {
            return false;
        };
        let ip = match ip {
            // A v4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestAccess {
    /// `restapi.allowlist`: when not empty, unsafe requests from elsewhere get 403.
    pub allowlist: Vec<AllowEntry>,
    /// `restapi.allowlist_include_members`: the members' API addresses are allowed too.
    pub include_members: bool,
    /// `http_extra_headers`, then `https_extra_headers` when the API serves TLS: sent with
    /// every answer.
    pub extra_headers: Vec<(String, String)>,
}

impl RestAccess {
    /// Unsafe requests are checked against an address list at all.
    pub fn restricted(&self) -> bool {
        !self.allowlist.is_empty() || self.include_members
    }
}

pub(crate) fn rest_access(raw: &RawRestApi, tls: bool, diag: &mut Diag) -> RestAccess {
    let mut access = RestAccess::default();
    if let Some(n) = &raw.allowlist {
        if !n.value.is_null() {
            if let Some(list) = scalar::string_list(&n.value, &n.path, diag) {
                for (i, v) in list.iter().enumerate() {
                    match allow_entry(v) {
                        Ok(e) => access.allowlist.push(e),
                        Err(why) => diag.problem(
                            &n.path.index(i),
                            format!("{v:?}: {why}"),
                            "an IP address, a network such as 10.0.0.0/8, or a host name",
                        ),
                    }
                }
            }
        }
    }
    if let Some(n) = &raw.allowlist_include_members {
        if !n.value.is_null() {
            access.include_members = scalar::boolean(&n.value, &n.path, diag).unwrap_or(false);
        }
    }
    headers(raw.http_extra_headers.as_ref(), &mut access, diag);
    // Checked either way; Patroni sends these only when the API serves HTTPS.
    let mut https = RestAccess::default();
    headers(raw.https_extra_headers.as_ref(), &mut https, diag);
    if tls {
        for (k, v) in https.extra_headers {
            access
                .extra_headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
            access.extra_headers.push((k, v));
        }
    }
    access
}

fn allow_entry(v: &str) -> Result<AllowEntry, String> {
    let v = v.trim();
    if let Some((addr, prefix)) = v.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("the prefix length must be 0 to {max}"))?;
        return Ok(AllowEntry::Net { addr, prefix });
    }
    if let Ok(addr) = v.parse::<IpAddr>() {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(AllowEntry::Net { addr, prefix });
    }
    let host_like = !v.is_empty()
        && v.len() <= 253
        && v.split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if host_like {
        Ok(AllowEntry::Host(v.to_string()))
    } else {
        Err("neither an address, a network nor a host name".into())
    }
}

/// `name: value` pairs, each a valid HTTP header (a header that could not be sent would
/// otherwise be dropped without a word).
fn headers(n: Option<&Node>, access: &mut RestAccess, diag: &mut Diag) {
    let Some(n) = n else { return };
    let map = match &n.value {
        Value::Null => return,
        Value::Object(m) => m,
        other => {
            diag.problem(&n.path, found(other), "a mapping of header name: value");
            return;
        }
    };
    for (name, value) in map {
        let path = n.path.key(name);
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(tchar) {
            diag.problem(
                &path,
                format!("the header name {name:?}"),
                "an HTTP header name",
            );
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                diag.problem(&path, found(other), "a header value (text)");
                continue;
            }
        };
        if !text
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            diag.problem(
                &path,
                format!("{text:?}"),
                "a header value of printable ASCII, without line breaks",
            );
            continue;
        }
        access
            .extra_headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        access.extra_headers.push((name.clone(), text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_addresses_networks_or_host_names() {
        let net = |s: &str| allow_entry(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("192.168.1.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        assert_eq!(net("db1.example"), AllowEntry::Host("db1.example".into()));
        assert!(allow_entry("10.0.0.0/33").is_err());
        assert!(allow_entry("10.0.0/8").is_err());
        assert!(allow_entry("bad host!").is_err());
    }
}
