//! Calls to members' REST APIs (patronictl's `request_patroni`): the member's `api_url` with
//! its path replaced by the endpoint, HTTP Basic when `restapi.authentication` is set, HTTPS
//! as `ctl.*` says (server verified against `ctl.cacert`, else `restapi.cafile`, unless
//! `ctl.insecure`; `ctl.certfile` presented), and errors that name the member and the URL.

use std::time::Duration;

use anyhow::Context;
use pgkeel_core::config::{Credentials, CtlConfig};
use serde_json::Value;

use super::common::Member;

/// Long enough for `POST /switchover`, which answers only once the switchover is done
/// (Patroni polls for up to `2 * max(10, loop_wait)` seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A member's answer: status code and body text.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

pub(crate) struct Api {
    client: reqwest::Client,
    auth: Option<Credentials>,
}

/// `http://host:port/patroni` → `http://host:port/<endpoint>`.
pub(crate) fn endpoint_url(api_url: &str, endpoint: &str) -> Option<String> {
    let (scheme, rest) = api_url.split_once("://")?;
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}/{endpoint}"))
}

impl Api {
    /// Reads the TLS files `cfg` names (an error names the setting and the file).
    pub fn new(cfg: &CtlConfig) -> anyhow::Result<Api> {
        pgkeel_tls::install_default_provider();
        let tls = pgkeel_tls::client_config(&cfg.tls, "ctl", "ctl.cacert (else restapi.cafile)")?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_backend_preconfigured(tls)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            auth: cfg.authentication.clone(),
        })
    }

    /// One request; `Err` when there is no HTTP answer at all.
    pub async fn call(
        &self,
        member: &Member,
        method: reqwest::Method,
        endpoint: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let url = endpoint_url(&member.value.api_url, endpoint).with_context(|| {
            format!(
                "member {} has no usable api_url ({:?})",
                member.name, member.value.api_url
            )
        })?;
        let mut req = self.client.request(method.clone(), &url);
        if let Some(a) = &self.auth {
            req = req.basic_auth(&a.username, a.password.as_deref());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let what = || format!("{method} {url} (member {})", member.name);
        let resp = req.send().await.with_context(what)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.with_context(what)?;
        Ok(Response { status, body })
    }

    pub async fn get_json(&self, member: &Member, endpoint: &str) -> anyhow::Result<Value> {
        let r = self
            .call(member, reqwest::Method::GET, endpoint, None)
            .await?;
        serde_json::from_str(&r.body).with_context(|| {
            format!(
                "member {}: GET /{endpoint} answered {} with no JSON",
                member.name, r.status
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_replaces_the_path() {
        assert_eq!(
            endpoint_url("http://10.0.0.1:8008/patroni", "switchover").as_deref(),
            Some("http://10.0.0.1:8008/switchover")
        );
        assert_eq!(
            endpoint_url("https://[::1]:8008", "restart").as_deref(),
            Some("https://[::1]:8008/restart")
        );
        assert_eq!(endpoint_url("", "x"), None);
        assert_eq!(endpoint_url("http:///patroni", "x"), None);
    }
}
