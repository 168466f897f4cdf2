//! The Patroni-shaped YAML each local node runs with.

use crate::{Node, Options, SUPERUSER_PASSWORD};

/// `bootstrap.dcs` timing. The default is pgkeel's default; `fast()` is the documented fast
/// profile (README: "Fast profile").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub ttl: f64,
    pub loop_wait: f64,
    pub retry_timeout: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ttl: 10.0,
            loop_wait: 2.0,
            retry_timeout: 3.0,
        }
    }
}

impl Timing {
    pub fn fast() -> Self {
        Timing {
            ttl: 3.0,
            loop_wait: 1.0,
            retry_timeout: 1.0,
        }
    }
}

/// The cluster's own PostgreSQL parameters; [`Options::pg_parameters`] adds to and overrides
/// them.
const PARAMETERS: [(&str, &str); 3] = [
    ("max_connections", "100"),
    ("shared_buffers", "32MB"),
    ("wal_keep_size", "256MB"),
];

pub(crate) fn render(opts: &Options, node: &Node, etcd: &[String]) -> String {
    let t = opts.timing;
    let mut parameters: Vec<(String, String)> = PARAMETERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tls_parameters = opts.pg_tls.as_ref().map_or(Vec::new(), |t| {
        vec![
            ("ssl".to_string(), "on".to_string()),
            (
                "ssl_cert_file".to_string(),
                quoted(&t.server.0.display().to_string()),
            ),
            (
                "ssl_key_file".to_string(),
                quoted(&t.server.1.display().to_string()),
            ),
            (
                "ssl_ca_file".to_string(),
                quoted(&t.ca.display().to_string()),
            ),
        ]
    });
    for (k, v) in tls_parameters.iter().chain(&opts.pg_parameters) {
        match parameters.iter_mut().find(|(name, _)| name == k) {
            Some(p) => p.1.clone_from(v),
            None => parameters.push((k.clone(), v.clone())),
        }
    }
    let parameters: String = parameters
        .iter()
        .map(|(k, v)| format!("        {k}: {v}\n"))
        .collect();
    // initdb and pg_basebackup both take --waldir: a node's WAL stays there whether it was
    // bootstrapped or cloned.
    let waldir = node
        .wal_dir
        .as_ref()
        .map(|w| format!("    - waldir: {}\n", w.display()));
    let basebackup = waldir
        .as_ref()
        .map_or(String::new(), |w| format!("  basebackup:\n  {w}"));
    format!(
        r#"# Written by pgkeel's local cluster ({scope}). Patroni's format: this file would also run Patroni.
scope: {scope}
namespace: /service
name: {name}

restapi:
  listen: {host}:{api}
  connect_address: {host}:{api}
{auth}{tls}
etcd3:
  hosts:
{etcd}{etcd_security}

bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
{dcs_extra}    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
{parameters}  initdb:
    - encoding: UTF8
    - data-checksums
{waldir}{bootstrap_extra}
postgresql:
  listen: {host}:{pg}
  connect_address: {host}:{pg}
  data_dir: {data}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {SUPERUSER_PASSWORD}
{su_tls}    replication:
      username: replicator
      password: {SUPERUSER_PASSWORD}-replication
{repl_tls}{pg_tls}{basebackup}{callbacks}{postgresql_extra}{tags}"#,
        scope = opts.scope,
        host = node.host,
        etcd = etcd
            .iter()
            .map(|e| format!("    - {e}\n"))
            .collect::<String>(),
        waldir = waldir.unwrap_or_default(),
        callbacks = if opts.callbacks.is_empty() {
            String::new()
        } else {
            let lines: String = opts
                .callbacks
                .iter()
                .map(|(k, v)| format!("    {k}: {}\n", quoted(&v.replace("{name}", &node.name))))
                .collect();
            format!("  callbacks:\n{lines}")
        },
        dcs_extra = indent(&opts.dcs_extra, "    "),
        bootstrap_extra = indent(&opts.bootstrap_extra, "  "),
        postgresql_extra = indent(
            &opts
                .postgresql_extra
                .replace("{name}", &node.name)
                .replace("{data}", &node.data_dir.display().to_string()),
            "  "
        ),
        tags = node_index(node)
            .and_then(|i| opts.node_tags.get(i))
            .filter(|t| !t.trim().is_empty())
            .map_or(String::new(), |t| format!("tags:\n{}", indent(t, "  "))),
        auth = opts.rest_auth.as_ref().map_or(String::new(), |(u, p)| {
            format!(
                "  authentication:\n    username: {}\n    password: {}\n",
                quoted(u),
                quoted(p)
            )
        }),
        tls = opts.rest_tls.as_ref().map_or(String::new(), rest_tls),
        etcd_security = etcd_security(opts),
        su_tls = opts
            .pg_tls
            .as_ref()
            .map_or(String::new(), |t| role_tls(t, "verify-full")),
        repl_tls = opts
            .pg_tls
            .as_ref()
            .map_or(String::new(), |t| role_tls(t, "verify-ca")),
        pg_tls = opts.pg_tls.as_ref().map_or(String::new(), pg_tls),
        name = node.name,
        api = node.api_port,
        pg = node.pg_port,
        ttl = t.ttl,
        loop_wait = t.loop_wait,
        retry = t.retry_timeout,
        data = node.data_dir.display(),
        dir = node.dir.display(),
    )
}

/// `text` as a single-quoted YAML scalar: read as text whatever it holds (`0123`, `yes`).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `restapi` TLS keys, and a `ctl` section when the agents have a client certificate.
fn rest_tls(t: &crate::RestTls) -> String {
    let mut s = format!(
        "  certfile: {}\n  keyfile: {}\n  cafile: {}\n  verify_client: {}\n",
        t.certfile.display(),
        t.keyfile.display(),
        t.cafile.display(),
        t.verify_client
    );
    if let Some((cert, key)) = &t.client {
        s.push_str(&format!(
            "ctl:\n  certfile: {}\n  keyfile: {}\n",
            cert.display(),
            key.display()
        ));
    }
    s
}

/// `etcd3`'s TLS and user keys, as Patroni spells them.
fn etcd_security(opts: &Options) -> String {
    let mut s = String::new();
    if let Some(t) = &opts.etcd_tls {
        s.push_str(&format!(
            "  protocol: https\n  cacert: {}\n  cert: {}\n  key: {}\n",
            t.ca.display(),
            t.client_cert.display(),
            t.client_key.display()
        ));
    }
    if let Some(password) = &opts.etcd_root_password {
        s.push_str(&format!(
            "  username: root\n  password: {}\n",
            quoted(password)
        ));
    }
    s
}

/// A role's TLS options under `postgresql.authentication.<role>`.
fn role_tls(t: &crate::PgTls, sslmode: &str) -> String {
    format!(
        "      sslmode: {sslmode}\n      sslrootcert: {}\n      sslcert: {}\n      sslkey: {}\n",
        quoted(&t.ca.display().to_string()),
        quoted(&t.client.0.display().to_string()),
        quoted(&t.client.1.display().to_string()),
    )
}

/// A dedicated pg_rewind role (`require` with a root certificate: libpq checks the chain),
/// and pg_hba lines that admit TLS clients with a certificate alone.
fn pg_tls(t: &crate::PgTls) -> String {
    format!(
        "    rewind:\n      username: rewinder\n      password: {SUPERUSER_PASSWORD}-rewind\n{}\
         \x20 pg_hba:\n\
         \x20   - hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n\
         \x20   - hostssl replication replicator 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n",
        role_tls(t, "require")
    )
}

/// Each non-empty line of `text`, indented.
fn indent(text: &str, by: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{by}{l}\n"))
        .collect()
}

/// `node3` → 2.
fn node_index(node: &Node) -> Option<usize> {
    node.name
        .strip_prefix("node")?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}
