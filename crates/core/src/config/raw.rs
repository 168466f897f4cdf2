//! The YAML as written: each section split into the keys pgkeel reads, every value still
//! unchecked. Keys pgkeel does not read are reported here, because only this layer knows the
//! file's shape: Patroni keys pgkeel does not support yet get a note, anything else is an
//! unknown key (often a typo).

use serde_json::{Map, Number, Value};

use super::diag::{Diag, KeyPath};
use super::scalar::found;

/// One value from the file and the key path it sits at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) path: KeyPath,
    pub(crate) value: Value,
}

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) scope: Option<Node>,
    pub(crate) namespace: Option<Node>,
    pub(crate) name: Option<Node>,
    pub(crate) restapi: Option<RawRestApi>,
    pub(crate) etcd3: Option<RawEtcd>,
    /// The etcd v2 section (`etcd:`): its endpoints are used, but over the v3 API.
    pub(crate) etcd_v2: Option<RawEtcd>,
    /// Sections of DCSs pgkeel does not speak (consul, zookeeper, kubernetes...).
    pub(crate) other_dcs: Vec<KeyPath>,
    pub(crate) bootstrap: Option<RawBootstrap>,
    pub(crate) postgresql: Option<RawPostgresql>,
    pub(crate) tags: Option<Node>,
    pub(crate) ctl: Option<RawCtl>,
    pub(crate) log: Option<Node>,
}

#[derive(Debug)]
pub(crate) struct RawRestApi {
    pub(crate) path: KeyPath,
    pub(crate) listen: Option<Node>,
    pub(crate) connect_address: Option<Node>,
    pub(crate) authentication: Option<RawCredentials>,
    pub(crate) certfile: Option<Node>,
    pub(crate) keyfile: Option<Node>,
    pub(crate) keyfile_password: Option<Node>,
    pub(crate) cafile: Option<Node>,
    pub(crate) ciphers: Option<Node>,
    pub(crate) verify_client: Option<Node>,
    pub(crate) allowlist: Option<Node>,
    pub(crate) allowlist_include_members: Option<Node>,
    pub(crate) http_extra_headers: Option<Node>,
    pub(crate) https_extra_headers: Option<Node>,
}

/// The `ctl` section: the client side of the REST API (patronictl's, and the agent's own
/// calls to its peers). `ctl.authentication` is read by the CLI loader.
#[derive(Debug)]
pub(crate) struct RawCtl {
    pub(crate) insecure: Option<Node>,
    pub(crate) cacert: Option<Node>,
    pub(crate) certfile: Option<Node>,
    pub(crate) keyfile: Option<Node>,
    pub(crate) keyfile_password: Option<Node>,
}

#[derive(Debug)]
pub(crate) struct RawCredentials {
    pub(crate) path: KeyPath,
    pub(crate) username: Option<Node>,
    pub(crate) password: Option<Node>,
    /// libpq connection options (`sslmode`, `sslcert`...): only under
    /// `postgresql.authentication.*`, in [`CONN_OPTIONS`] order.
    pub(crate) options: Vec<(&'static str, Node)>,
}

#[derive(Debug)]
pub(crate) struct RawEtcd {
    pub(crate) path: KeyPath,
    pub(crate) host: Option<Node>,
    pub(crate) hosts: Option<Node>,
    pub(crate) protocol: Option<Node>,
    pub(crate) username: Option<Node>,
    pub(crate) password: Option<Node>,
    pub(crate) cacert: Option<Node>,
    pub(crate) cert: Option<Node>,
    pub(crate) key: Option<Node>,
    /// pgkeel's own: the password of an encrypted `key` (Patroni's etcd has none).
    pub(crate) key_password: Option<Node>,
    pub(crate) url: Option<Node>,
    pub(crate) proxy: Option<Node>,
    pub(crate) use_proxies: Option<Node>,
    pub(crate) srv: Option<Node>,
    pub(crate) srv_suffix: Option<Node>,
}

#[derive(Debug)]
pub(crate) struct RawBootstrap {
    pub(crate) path: KeyPath,
    pub(crate) dcs: Option<Node>,
    pub(crate) initdb: Option<Node>,
    pub(crate) pg_hba: Option<Node>,
    /// `method`: `initdb` or the name of a custom method.
    pub(crate) method: Option<Node>,
    /// `bootstrap.<method>`, the section `method` names (when it names one).
    pub(crate) method_section: Option<Node>,
    pub(crate) post_bootstrap: Option<Node>,
    pub(crate) post_init: Option<Node>,
}

#[derive(Debug)]
pub(crate) struct RawPostgresql {
    pub(crate) path: KeyPath,
    pub(crate) listen: Option<Node>,
    pub(crate) connect_address: Option<Node>,
    pub(crate) data_dir: Option<Node>,
    pub(crate) bin_dir: Option<Node>,
    pub(crate) pgpass: Option<Node>,
    pub(crate) superuser: Option<RawCredentials>,
    pub(crate) replication: Option<RawCredentials>,
    pub(crate) rewind: Option<RawCredentials>,
    pub(crate) parameters: Option<Node>,
    pub(crate) pg_hba: Option<Node>,
    pub(crate) basebackup: Option<Node>,
    pub(crate) callbacks: Option<Node>,
    pub(crate) pre_promote: Option<Node>,
    pub(crate) before_stop: Option<Node>,
    pub(crate) use_unix_socket: Option<Node>,
    pub(crate) use_unix_socket_repl: Option<Node>,
    pub(crate) pg_ident: Option<Node>,
    pub(crate) pg_ctl_timeout: Option<Node>,
    pub(crate) use_pg_rewind: Option<Node>,
    pub(crate) proxy_address: Option<Node>,
    pub(crate) create_replica_methods: Option<Node>,
    /// Patroni's older spelling, read when `create_replica_methods` is absent or empty.
    pub(crate) create_replica_method: Option<Node>,
    /// `postgresql.<name>` for each custom method `create_replica_methods` names, when the
    /// section exists (a method without one runs its name as the command).
    pub(crate) method_sections: Vec<(String, Node)>,
}

/// Top-level sections Patroni knows and pgkeel ignores, with the reason given to the operator.
const TOP_IGNORED: &[(&str, &str)] = &[
    ("watchdog", "ignored: pgkeel has no watchdog support yet; it fences itself by stopping writes before its lease can expire"),
    ("thread_pool_size", "ignored (pgkeel has no thread pool to size)"),
    ("thread_stack_size", "ignored (pgkeel has no thread pool to size)"),
];

/// DCS sections of Patroni that pgkeel cannot use: it speaks only etcd v3.
const OTHER_DCS: &[&str] = &["consul", "zookeeper", "kubernetes", "exhibitor", "raft"];

/// `restapi` keys whose ignoring changes nothing an operator relies on, with why.
const RESTAPI_IGNORED: &[(&str, &str)] = &[
    ("request_queue_size", "ignored: the API's listen backlog is 1024"),
    ("server_tokens", "ignored: pgkeel's API sends no Server header at all (less than any setting of it discloses)"),
];

const ETCD_UNSUPPORTED: &[&str] = &[];

const POSTGRESQL_UNSUPPORTED: &[&str] = &[];

/// `postgresql` keys of Patroni that pgkeel does not honour and whose silent ignoring would
/// change what runs: refused, with what the operator gets instead.
const POSTGRESQL_REFUSED: &[(&str, &str)] = &[
    ("config_dir", "absent: pgkeel keeps postgresql.conf in the data directory and would not use the files there"),
    ("bin_name", "absent: pgkeel runs the standard program names from bin_dir"),
    ("custom_conf", "absent: pgkeel includes the initdb postgresql.conf as its base file and would not read a custom one"),
    ("recovery_conf", "absent: extra recovery settings for replicas are not written yet"),
];

/// Patroni's `remove_data_directory_on_*`: pgkeel always re-clones a node whose data
/// directory cannot rejoin, which is `true`; `false` (Patroni's default when absent, see
/// the README's defaults) asks for what pgkeel does not do.
const POSTGRESQL_TRUE_ONLY: &[&str] = &[
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
];

/// Connection options of `postgresql.authentication.*` beyond user name and password
/// (Patroni's list): passed to libpq, and honoured by the agent's own connections.
pub(crate) const CONN_OPTIONS: &[&str] = &[
    "sslmode",
    "sslkey",
    "sslpassword",
    "sslcert",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslnegotiation",
    "gssencmode",
    "channel_binding",
];

const NOT_SUPPORTED: &str = "not supported yet, ignored";

/// A mapping whose known keys are taken one by one; what is left is reported by `finish`.
struct Section {
    path: KeyPath,
    map: Map<String, Value>,
}

impl Section {
    /// `None` (and a problem) when the node is not a mapping. An empty value (`tags:` with
    /// nothing under it) is an empty section.
    fn new(node: Node, diag: &mut Diag) -> Option<Section> {
        match node.value {
            Value::Object(map) => Some(Section {
                path: node.path,
                map,
            }),
            Value::Null => Some(Section {
                path: node.path,
                map: Map::new(),
            }),
            other => {
                diag.problem(&node.path, found(&other), "a mapping of key: value");
                None
            }
        }
    }

    fn take(&mut self, key: &str) -> Option<Node> {
        self.map.remove(key).map(|value| Node {
            path: self.path.key(key),
            value,
        })
    }

    fn take_section(&mut self, key: &str, diag: &mut Diag) -> Option<Section> {
        self.take(key).and_then(|n| Section::new(n, diag))
    }

    /// Reports every key not taken: `unsupported` ones as Patroni keys pgkeel ignores for
    /// now, the rest as unknown.
    fn finish(self, unsupported: &[&str], diag: &mut Diag) {
        for key in self.map.keys() {
            let path = self.path.key(key);
            if unsupported.contains(&key.as_str()) {
                diag.warn(&path, NOT_SUPPORTED);
            } else {
                diag.unknown(&path);
            }
        }
    }
}

impl RawConfig {
    /// Splits the document. `None` when the top level is not a mapping.
    pub(crate) fn from_json(doc: Value, diag: &mut Diag) -> Option<RawConfig> {
        let mut top = Section::new(
            Node {
                path: KeyPath::root(),
                value: doc,
            },
            diag,
        )?;
        let mut raw = RawConfig {
            scope: top.take("scope"),
            namespace: top.take("namespace"),
            name: top.take("name"),
            tags: top.take("tags"),
            log: top.take("log"),
            ..RawConfig::default()
        };
        raw.restapi = top.take_section("restapi", diag).map(|mut s| {
            let r = RawRestApi {
                path: s.path.clone(),
                listen: s.take("listen"),
                connect_address: s.take("connect_address"),
                authentication: s
                    .take_section("authentication", diag)
                    .map(|a| credentials(a, &[], diag)),
                certfile: s.take("certfile"),
                keyfile: s.take("keyfile"),
                keyfile_password: s.take("keyfile_password"),
                cafile: s.take("cafile"),
                ciphers: s.take("ciphers"),
                verify_client: s.take("verify_client"),
                allowlist: s.take("allowlist"),
                allowlist_include_members: s.take("allowlist_include_members"),
                http_extra_headers: s.take("http_extra_headers"),
                https_extra_headers: s.take("https_extra_headers"),
            };
            for (key, why) in RESTAPI_IGNORED {
                if let Some(n) = s.take(key) {
                    diag.warn(&n.path, *why);
                }
            }
            s.finish(&[], diag);
            r
        });
        raw.ctl = top.take_section("ctl", diag).map(|mut s| {
            let c = RawCtl {
                insecure: s.take("insecure"),
                cacert: s.take("cacert"),
                certfile: s.take("certfile"),
                keyfile: s.take("keyfile"),
                keyfile_password: s.take("keyfile_password"),
            };
            // Read by the CLI loader (`ctl.auth` is Patroni's internal "user:password").
            s.take("authentication");
            s.take("auth");
            s.finish(&[], diag);
            c
        });
        raw.etcd3 = top.take_section("etcd3", diag).map(|s| etcd(s, diag));
        raw.etcd_v2 = top.take_section("etcd", diag).map(|s| etcd(s, diag));
        for name in OTHER_DCS {
            if top.map.remove(*name).is_some() {
                raw.other_dcs.push(KeyPath::root().key(name));
            }
        }
        raw.bootstrap = top
            .take_section("bootstrap", diag)
            .map(|s| bootstrap(s, diag));
        raw.postgresql = top
            .take_section("postgresql", diag)
            .map(|s| postgresql(s, diag));
        refuse_what_changes_behaviour(&mut top, diag);
        for (name, why) in TOP_IGNORED {
            if top.map.remove(*name).is_some() {
                diag.warn(&KeyPath::root().key(name), *why);
            }
        }
        top.finish(&[], diag);
        Some(raw)
    }
}

/// Top-level settings pgkeel cannot honour whose ignoring would change what runs: a
/// `watchdog` with `mode: required` (Patroni then lets no node lead without one) and a
/// `citus` section (the cluster would run without its coordinator's bookkeeping).
fn refuse_what_changes_behaviour(top: &mut Section, diag: &mut Diag) {
    if let Some(watchdog) = top.map.get("watchdog") {
        let mode = watchdog.get("mode").and_then(Value::as_str).map(str::trim);
        if mode.is_some_and(|m| m.eq_ignore_ascii_case("required")) {
            let path = KeyPath::root().key("watchdog").key("mode");
            diag.problem(
                &path,
                "\"required\"",
                "off or automatic: pgkeel has no watchdog support yet, and required promises \
                 that no node leads without one",
            );
            top.map.remove("watchdog");
        }
    }
    if let Some(n) = top.take("citus") {
        diag.problem(
            &n.path,
            found(&n.value),
            "absent: pgkeel does not run Citus clusters",
        );
    }
}

/// `options`: the connection options this section takes besides user name and password.
fn credentials(mut s: Section, options: &[&'static str], diag: &mut Diag) -> RawCredentials {
    let c = RawCredentials {
        path: s.path.clone(),
        username: s.take("username"),
        password: s.take("password"),
        options: options
            .iter()
            .filter_map(|k| s.take(k).map(|n| (*k, n)))
            .collect(),
    };
    s.finish(&[], diag);
    c
}

fn etcd(mut s: Section, diag: &mut Diag) -> RawEtcd {
    let e = RawEtcd {
        path: s.path.clone(),
        host: s.take("host"),
        hosts: s.take("hosts"),
        protocol: s.take("protocol"),
        username: s.take("username"),
        password: s.take("password"),
        cacert: s.take("cacert"),
        cert: s.take("cert"),
        key: s.take("key"),
        key_password: s.take("key_password"),
        url: s.take("url"),
        proxy: s.take("proxy"),
        use_proxies: s.take("use_proxies"),
        srv: s.take("srv"),
        srv_suffix: s.take("srv_suffix"),
    };
    s.finish(ETCD_UNSUPPORTED, diag);
    e
}

fn bootstrap(mut s: Section, diag: &mut Diag) -> RawBootstrap {
    let mut b = RawBootstrap {
        path: s.path.clone(),
        dcs: s.take("dcs"),
        initdb: s.take("initdb"),
        pg_hba: s.take("pg_hba"),
        method: s.take("method"),
        method_section: None,
        post_bootstrap: s.take("post_bootstrap"),
        post_init: s.take("post_init"),
    };
    // The section a custom method names (`bootstrap.method: restore` reads
    // `bootstrap.restore`); sections no method names are unknown keys, as in any section.
    if let Some(Value::String(name)) = b.method.as_ref().map(|n| &n.value) {
        if name != "initdb" {
            let name = name.clone();
            b.method_section = s.take(&name);
        }
    }
    if let Some(users) = s.take("users") {
        diag.warn(
            &users.path,
            "ignored: Patroni deprecated bootstrap.users and pgkeel does not create users; \
             create them with SQL after bootstrap",
        );
    }
    s.finish(&[], diag);
    b
}

fn postgresql(mut s: Section, diag: &mut Diag) -> RawPostgresql {
    let mut p = RawPostgresql {
        path: s.path.clone(),
        listen: s.take("listen"),
        connect_address: s.take("connect_address"),
        data_dir: s.take("data_dir"),
        bin_dir: s.take("bin_dir"),
        pgpass: s.take("pgpass"),
        superuser: None,
        replication: None,
        rewind: None,
        parameters: s.take("parameters"),
        pg_hba: s.take("pg_hba"),
        basebackup: s.take("basebackup"),
        callbacks: s.take("callbacks"),
        pre_promote: s.take("pre_promote"),
        before_stop: s.take("before_stop"),
        use_unix_socket: s.take("use_unix_socket"),
        use_unix_socket_repl: s.take("use_unix_socket_repl"),
        pg_ident: s.take("pg_ident"),
        pg_ctl_timeout: s.take("pg_ctl_timeout"),
        use_pg_rewind: s.take("use_pg_rewind"),
        proxy_address: s.take("proxy_address"),
        create_replica_methods: s.take("create_replica_methods"),
        create_replica_method: s.take("create_replica_method"),
        method_sections: Vec::new(),
    };
    if let Some(mut auth) = s.take_section("authentication", diag) {
        p.superuser = auth
            .take_section("superuser", diag)
            .map(|c| credentials(c, CONN_OPTIONS, diag));
        p.replication = auth
            .take_section("replication", diag)
            .map(|c| credentials(c, CONN_OPTIONS, diag));
        p.rewind = auth
            .take_section("rewind", diag)
            .map(|c| credentials(c, CONN_OPTIONS, diag));
        auth.finish(&[], diag);
    }
    // Each custom replica method's section (`postgresql.wal_e`); `basebackup`'s is the
    // `basebackup` key, taken above. A name that is also a key of this section found that
    // key taken already: the validator refuses such names.
    for list in [&p.create_replica_methods, &p.create_replica_method]
        .into_iter()
        .flatten()
    {
        if let Value::Array(items) = &list.value {
            for name in items.iter().filter_map(Value::as_str) {
                if name == "basebackup" || p.method_sections.iter().any(|(n, _)| n == name) {
                    continue;
                }
                if let Some(section) = s.take(name) {
                    p.method_sections.push((name.to_string(), section));
                }
            }
        }
    }
    for (key, allowed) in POSTGRESQL_REFUSED {
        if let Some(n) = s.take(key) {
            if !n.value.is_null() && n.value.as_str().is_none_or(|v| !v.trim().is_empty()) {
                diag.problem(&n.path, found(&n.value), *allowed);
            }
        }
    }
    for key in POSTGRESQL_TRUE_ONLY {
        if let Some(n) = s.take(key) {
            if !n.value.is_null() && crate::flag::parse_bool(&n.value) != Some(true) {
                diag.problem(
                    &n.path,
                    found(&n.value),
                    "true or absent: pgkeel re-clones a node whose data directory cannot \
                     rejoin; keeping it instead is not supported",
                );
            }
        }
    }
    s.finish(POSTGRESQL_UNSUPPORTED, diag);
    p
}

/// Reads a YAML document as `yaml_serde::from_str` does, except for integers beyond 64 bits,
/// which `yaml_serde::Value` cannot hold (it failed the whole file with "invalid type: integer
/// `99999999999999999999999` as u128"): they become their digits as a string, as
/// `yaml_serde`'s own serializer stores them, so the key's check reports the value with the
/// key, its line and what is allowed. YAML tags are dropped here ([`yaml_to_json`] ignores
/// them anyway).
pub(crate) fn parse_yaml(text: &str) -> Result<yaml_serde::Value, yaml_serde::Error> {
    yaml_serde::from_str::<AnyYaml>(text).map(|d| d.0)
}

struct AnyYaml(yaml_serde::Value);

impl<'de> serde::Deserialize<'de> for AnyYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyYamlVisitor).map(AnyYaml)
    }
}

struct AnyYamlVisitor;

impl<'de> serde::de::Visitor<'de> for AnyYamlVisitor {
    type Value = yaml_serde::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Number(i.into()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Number(u.into()))
    }
    fn visit_i128<E>(self, i: i128) -> Result<Self::Value, E> {
        Ok(i64::try_from(i).map_or_else(
            |_| yaml_serde::Value::String(i.to_string()),
            |i| yaml_serde::Value::Number(i.into()),
        ))
    }
    fn visit_u128<E>(self, u: u128) -> Result<Self::Value, E> {
        Ok(u64::try_from(u).map_or_else(
            |_| yaml_serde::Value::String(u.to_string()),
            |u| yaml_serde::Value::Number(u.into()),
        ))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Number(f.into()))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(yaml_serde::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(AnyYaml(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(yaml_serde::Value::Sequence(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = yaml_serde::Mapping::new();
        while let Some(AnyYaml(k)) = map.next_key()? {
            if out.contains_key(&k) {
                // yaml_serde's own wording.
                let which = match &k {
                    yaml_serde::Value::String(s) => format!("with key {s:?}"),
                    yaml_serde::Value::Number(n) => format!("with key {n}"),
                    yaml_serde::Value::Bool(b) => format!("with key `{b}`"),
                    yaml_serde::Value::Null => "with null key".into(),
                    _ => "in YAML map".into(),
                };
                return Err(serde::de::Error::custom(format!("duplicate entry {which}")));
            }
            let AnyYaml(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(yaml_serde::Value::Mapping(out))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        let (_tag, contents): (String, _) = data.variant()?;
        contents.newtype_variant::<AnyYaml>().map(|d| d.0)
    }
}

/// The YAML document as JSON, the form `/config` is stored in and the one all checks read.
/// Mapping keys become strings (YAML allows `5432: x`); YAML tags are dropped; `.nan` and
/// `.inf`, which JSON cannot hold, become strings so that checks report them as found.
pub(crate) fn yaml_to_json(v: &yaml_serde::Value, path: &KeyPath, diag: &mut Diag) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Number::from_f64(f).map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &path.index(i), diag))
                .collect(),
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => {
                        let key = yaml_to_json(other, path, diag);
                        diag.problem(
                            path,
                            format!("a key that is not text ({})", found(&key)),
                            "keys that are strings",
                        );
                        continue;
                    }
                };
                let child = yaml_to_json(val, &path.key(&key), diag);
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(&t.value, path, diag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> (Option<RawConfig>, Diag) {
        let mut diag = Diag::default();
        let doc = parse_yaml(text).unwrap_or(yaml_serde::Value::Null);
        let json = yaml_to_json(&doc, &KeyPath::root(), &mut diag);
        (RawConfig::from_json(json, &mut diag), diag)
    }

    #[test]
    fn known_keys_are_taken_and_others_reported() {
        let (r, diag) =
            raw("scope: a\nfoo: 1\nrestapi:\n  request_queue_size: 5\npostgresql:\n  bar: 2\n");
        let r = r.unwrap();
        assert_eq!(r.scope.unwrap().value, Value::from("a"));
        let shown: Vec<String> = diag
            .warnings
            .iter()
            .map(|w| match w {
                super::super::diag::Warning::Unknown(p) => format!("unknown {p}"),
                super::super::diag::Warning::Note(p, t) => format!("{p}: {t}"),
            })
            .collect();
        assert!(shown
            .iter()
            .any(|w| w.starts_with("restapi.request_queue_size: ignored")));
        assert!(shown.contains(&"unknown postgresql.bar".to_string()));
        assert!(shown.contains(&"unknown foo".to_string()));
    }

    #[test]
    fn yaml_scalars_become_json() {
        let (r, _) = raw("tags:\n  5: x\n  n: .nan\n  t: !custom yes\n");
        let tags = r.unwrap().tags.unwrap().value;
        assert_eq!(tags["5"], Value::from("x"));
        assert_eq!(tags["n"], Value::from(".nan"));
        assert_eq!(tags["t"], Value::from("yes"));
    }

    #[test]
    fn a_list_at_the_top_is_not_a_config() {
        let (r, diag) = raw("- a\n- b\n");
        assert!(r.is_none());
        assert_eq!(diag.problems.len(), 1);
    }
}
