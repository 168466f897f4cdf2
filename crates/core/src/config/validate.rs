//! Raw YAML → validated [`Config`]: the entry points, the top-level keys, `restapi` and
//! `bootstrap`. Each section's checks live in the module named for it.

use std::path::Path;

use serde_json::Value;

use super::diag::{render_warnings, Diag, KeyPath};
use super::dynamic;
use super::etcd::etcd;
use super::lines::LineIndex;
use super::member_tags::tags;
use super::postgresql::postgresql;
use super::raw::{parse_yaml, yaml_to_json, Node, RawBootstrap, RawConfig, RawRestApi};
use super::rest_tls;
use super::scalar::{self, found};
use super::{Bootstrap, Config, ConfigError, Credentials, RestApi};

/// A config that loaded, with warnings (unknown keys, ignored sections) for the operator.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// One line each, naming the key and its line: `unknown key postgresql.foo at line 12, ignored`.
    pub warnings: Vec<String>,
}

/// Reads and validates a Patroni-style YAML file, with Patroni's `PATRONI_*` environment
/// variables over it. The only I/O in this crate.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::plain(format!("cannot read config file {}: {e}", path.display()))
    })?;
    load_str_env(&text, &path.display().to_string(), &patroni_vars())
}

/// The process's `PATRONI_*` variables (others are not read).
fn patroni_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("PATRONI_"))
        .collect()
}

/// Validates Patroni-style YAML; `origin` (a file name) starts every message.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    load_str_env(text, origin, &[])
}

/// [`load_str`] with environment variables (`PATRONI_*` are read, as Patroni reads them).
pub fn load_str_env(
    text: &str,
    origin: &str,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut doc = parse_yaml(text).map_err(|e| {
        let mut err = ConfigError::plain(match e.location() {
            Some(loc) => format!(
                "{origin}, line {} column {}: not valid YAML: {e}",
                loc.line(),
                loc.column()
            ),
            None => format!("{origin}: not valid YAML: {e}"),
        });
        err.line = e.location().map(|l| l.line());
        err
    })?;
    // `<<: *defaults` merge keys, as PyYAML (Patroni's parser) applies them.
    doc.apply_merge()
        .map_err(|e| ConfigError::plain(format!("{origin}: bad YAML merge key (<<): {e}")))?;
    if doc.is_null() {
        return Err(ConfigError::plain(format!(
            "{origin}: the file holds no settings; expected a mapping with at least scope, \
             name, restapi, etcd3 and postgresql"
        )));
    }

    let lines = LineIndex::new(text);
    let mut diag = Diag::default();
    let mut json = yaml_to_json(&doc, &KeyPath::root(), &mut diag);
    super::env::merge(&mut json, super::env::from_environment(env));
    let config = RawConfig::from_json(json, &mut diag).and_then(|raw| build(&raw, &mut diag));
    match config {
        Some(config) if diag.problems.is_empty() => Ok(Loaded {
            config,
            warnings: render_warnings(&diag.warnings, &lines),
        }),
        _ if diag.problems.is_empty() => {
            // Every path that yields no config records a problem; this only guards that.
            Err(ConfigError::plain(format!(
                "{origin}: the config is not valid"
            )))
        }
        _ => Err(ConfigError::from_problems(origin, &diag.problems, &lines)),
    }
}

/// What the operator CLI needs from a file: the cluster, the DCS and the REST API
/// credentials. A full agent config works, and so does a minimal `patronictl.yaml`
/// (`scope`, `namespace`, `etcd3`, `ctl`/`restapi.authentication`).
#[derive(Debug, Clone, PartialEq)]
pub struct CtlConfig {
    /// `scope`; empty when not configured (each verb then needs the cluster's name).
    pub scope: String,
    pub namespace: String,
    pub etcd: super::Etcd,
    /// `ctl.authentication`, else `restapi.authentication` (patronictl's order).
    pub authentication: Option<super::Credentials>,
    /// How members are called over HTTPS (`ctl.*`, `restapi.cafile`).
    pub tls: super::ClientTls,
}

pub fn load_ctl_file(path: &Path) -> Result<CtlConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::plain(format!("cannot read config file {}: {e}", path.display()))
    })?;
    load_ctl_str_env(&text, &path.display().to_string(), &patroni_vars())
}

pub fn load_ctl_str(text: &str, origin: &str) -> Result<CtlConfig, ConfigError> {
    load_ctl_str_env(text, origin, &[])
}

/// [`load_ctl_str`] with environment variables, as patronictl reads them.
pub fn load_ctl_str_env(
    text: &str,
    origin: &str,
    env: &[(String, String)],
) -> Result<CtlConfig, ConfigError> {
    let mut doc = parse_yaml(text)
        .map_err(|e| ConfigError::plain(format!("{origin}: not valid YAML: {e}")))?;
    doc.apply_merge()
        .map_err(|e| ConfigError::plain(format!("{origin}: bad YAML merge key (<<): {e}")))?;
    let lines = LineIndex::new(text);
    let mut diag = Diag::default();
    let mut json = yaml_to_json(&doc, &KeyPath::root(), &mut diag);
    super::env::merge(&mut json, super::env::from_environment(env));
    let authentication = ["ctl", "restapi"].iter().find_map(|section| {
        let a = json.get(*section)?.get("authentication")?;
        Some(super::Credentials {
            username: a.get("username")?.as_str()?.to_string(),
            password: a.get("password").map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        })
    });
    let raw = RawConfig::from_json(json, &mut diag);
    let built = raw.and_then(|raw| {
        // Optional for the CLI, as for patronictl: a verb may name the cluster instead.
        let scope = match &raw.scope {
            Some(n) => scalar::non_empty_text(
                &n.value,
                &n.path,
                &mut diag,
                "the cluster name, a non-empty string",
            ),
            None => Some(String::new()),
        };
        let namespace = namespace(raw.namespace.as_ref(), &mut diag);
        let etcd = etcd(&raw, &mut diag);
        let ctl = rest_tls::ctl(raw.ctl.as_ref(), &mut diag);
        let cafile = rest_tls::file(
            raw.restapi.as_ref().and_then(|r| r.cafile.as_ref()),
            &mut diag,
        );
        Some(CtlConfig {
            scope: scope?,
            namespace: namespace?,
            etcd: etcd?,
            authentication,
            tls: ctl?.cli_tls(cafile?.as_ref()),
        })
    });
    match built {
        Some(c) if diag.problems.is_empty() => Ok(c),
        _ if diag.problems.is_empty() => Err(ConfigError::plain(format!(
            "{origin}: the config is not valid"
        ))),
        _ => Err(ConfigError::from_problems(origin, &diag.problems, &lines)),
    }
}

/// Validates every section (so that all problems are reported at once), then assembles.
fn build(raw: &RawConfig, diag: &mut Diag) -> Option<Config> {
    let scope = required_text(
        &raw.scope,
        "scope",
        "the cluster name, a non-empty string",
        diag,
    );
    let name = required_text(
        &raw.name,
        "name",
        "this member's name, a non-empty string unique in the cluster",
        diag,
    );
    let namespace = namespace(raw.namespace.as_ref(), diag);
    let restapi = restapi(raw.restapi.as_ref(), diag);
    let etcd = etcd(raw, diag);
    let bootstrap = bootstrap(raw.bootstrap.as_ref(), diag);
    let postgresql = postgresql(raw.postgresql.as_ref(), diag);
    let tags = tags(raw.tags.as_ref(), diag);
    let log = super::log::log(raw.log.as_ref(), diag);
    let ctl = rest_tls::ctl(raw.ctl.as_ref(), diag);
    Some(Config {
        scope: scope?,
        namespace: namespace?,
        name: name?,
        restapi: restapi?,
        etcd: etcd?,
        bootstrap: bootstrap?,
        postgresql: postgresql?,
        tags: tags?,
        ctl: ctl?,
        log: log?,
    })
}

fn required_text(n: &Option<Node>, key: &str, allowed: &str, diag: &mut Diag) -> Option<String> {
    match n {
        Some(n) => scalar::non_empty_text(&n.value, &n.path, diag, allowed),
        None => {
            diag.missing(&KeyPath::root().key(key), allowed);
            None
        }
    }
}

/// `/service/` → `/service`, `service` → `/service`: the form DCS keys are built from.
fn namespace(n: Option<&Node>, diag: &mut Diag) -> Option<String> {
    const ALLOWED: &str = "a path such as /service";
    let Some(n) = n else {
        return Some("/service".to_string());
    };
    let Value::String(s) = &n.value else {
        diag.problem(&n.path, found(&n.value), ALLOWED);
        return None;
    };
    let trimmed = s.trim().trim_matches('/');
    if trimmed.is_empty() || trimmed.contains(char::is_whitespace) {
        diag.problem(&n.path, found(&n.value), ALLOWED);
        return None;
    }
    Some(format!("/{trimmed}"))
}

fn restapi(raw: Option<&RawRestApi>, diag: &mut Diag) -> Option<RestApi> {
    let Some(raw) = raw else {
        diag.missing(
            &KeyPath::root().key("restapi"),
            "a restapi section with listen and connect_address",
        );
        return None;
    };
    let before = diag.problems.len();
    let listen = match &raw.listen {
        Some(n) => scalar::listen_addr(&n.value, &n.path, diag),
        None => {
            diag.missing(
                &raw.path.key("listen"),
                "ip:port to bind, e.g. 0.0.0.0:8008",
            );
            None
        }
    };
    let connect_address = match &raw.connect_address {
        Some(n) => scalar::host_port(&n.value, &n.path, diag, None),
        None => {
            diag.missing(
                &raw.path.key("connect_address"),
                "host:port that peers and clients use to reach this API, e.g. 127.0.0.1:8008",
            );
            None
        }
    };
    let authentication = raw.authentication.as_ref().and_then(|a| {
        let username = match &a.username {
            Some(n) => scalar::non_empty_text(&n.value, &n.path, diag, "a user name"),
            None => {
                diag.missing(&a.path.key("username"), "a user name (with password)");
                None
            }
        }?;
        let password = match &a.password {
            Some(n) => Some(scalar::text(&n.value, &n.path, diag, "a password")?),
            None => None,
        };
        Some(Credentials { username, password })
    });
    let tls = rest_tls::server_tls(raw, diag);
    let serves_tls = matches!(&tls, Some((Some(_), _)));
    let access = super::rest_access::rest_access(raw, serves_tls, diag);
    if diag.problems.len() > before {
        return None;
    }
    let (tls, cafile) = tls?;
    Some(RestApi {
        listen: listen?,
        connect_address: connect_address?,
        authentication,
        tls,
        cafile,
        access,
    })
}

fn bootstrap(raw: Option<&RawBootstrap>, diag: &mut Diag) -> Option<Bootstrap> {
    let Some(raw) = raw else {
        // No bootstrap section: every dynamic setting takes pgkeel's default.
        return dynamic::from_bootstrap(None, &KeyPath::root().key("bootstrap").key("dcs"), diag)
            .map(|dcs| Bootstrap {
                dcs,
                initdb: Vec::new(),
                pg_hba: Vec::new(),
                method: Default::default(),
                post_bootstrap: None,
            });
    };
    let dcs_path = raw.path.key("dcs");
    let dcs = dynamic::from_bootstrap(raw.dcs.as_ref().map(|n| &n.value), &dcs_path, diag);
    let initdb = match &raw.initdb {
        None => Some(Vec::new()),
        Some(Node {
            value: Value::Null, ..
        }) => Some(Vec::new()),
        Some(n) => scalar::options(&n.value, &n.path, diag, false),
    };
    let pg_hba = match &raw.pg_hba {
        None => Some(Vec::new()),
        Some(n) => scalar::string_list(&n.value, &n.path, diag),
    };
    let method = super::methods::bootstrap_method(raw, diag);
    let post_bootstrap = super::methods::post_bootstrap(raw, diag);
    Some(Bootstrap {
        dcs: dcs?,
        initdb: initdb?,
        pg_hba: pg_hba?,
        method: method?,
        post_bootstrap: post_bootstrap?,
    })
}

#[cfg(test)]
mod ctl_tests {
    use super::*;

    #[test]
    fn a_minimal_patronictl_yaml_is_enough_for_the_cli() {
        let c = load_ctl_str(
            "scope: batman\nnamespace: /service/\netcd3:\n  hosts: 127.0.0.1:2379\nctl:\n  authentication:\n    username: admin\n    password: x\n",
            "patronictl.yaml",
        )
        .unwrap();
        assert_eq!(
            (c.scope.as_str(), c.namespace.as_str()),
            ("batman", "/service")
        );
        assert_eq!(c.authentication.unwrap().username, "admin");
        // The scope is optional for the CLI (a verb may name the cluster), the DCS is not.
        let c = load_ctl_str("etcd3:\n  hosts: 127.0.0.1:2379\n", "p.yaml").unwrap();
        assert_eq!(c.scope, "");
        let e = load_ctl_str("namespace: /service\n", "p.yaml").unwrap_err();
        assert!(e.message.contains("etcd3"), "{}", e.message);
    }
}
