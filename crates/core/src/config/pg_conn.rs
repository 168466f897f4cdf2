//! `postgresql.authentication.{superuser,replication,rewind}` → [`PgUser`]: a role, its
//! password, and Patroni's libpq connection options (`sslmode`, `sslcert`, `sslkey`,
//! `sslpassword`, `sslrootcert`, `sslcrl`, `sslcrldir`, `sslnegotiation`, `gssencmode`,
//! `channel_binding`).
//!
//! Values only, checked as libpq checks them (the same spellings, case-sensitive). Whether
//! the files exist, can be read by PostgreSQL's programs and hold a usable certificate or
//! key is checked at start by `pgkeel_pg::check_client_tls`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diag::Diag;
use super::raw::{Node, RawCredentials};
use super::scalar::{self, found};

/// A PostgreSQL role that the agent, PostgreSQL's walreceiver, pg_basebackup or pg_rewind
/// log in as, with how they connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgUser {
    pub username: String,
    pub password: Option<String>,
    pub conn: ConnOptions,
}

impl PgUser {
    /// A role with a password and libpq's default connection options.
    pub fn new(username: &str, password: Option<&str>) -> PgUser {
        PgUser {
            username: username.to_string(),
            password: password.map(str::to_string),
            conn: ConnOptions::default(),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Plain first; TLS if the server refuses the plain connection.
    Allow,
    /// TLS if the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS or nothing; the server's certificate is checked against a root certificate only
    /// when one is present (libpq then behaves as `verify-ca`).
    Require,
    /// TLS, the server's chain checked against the root certificate, not its host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    const ALL: [(&'static str, SslMode); 6] = [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("prefer", |(s, _)| s)
    }

    /// The server's certificate must be checked against a root certificate.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// `gssencmode` and `channel_binding`: libpq's disable / prefer / require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer3 {
    Disable,
    Prefer,
    Require,
}

impl Prefer3 {
    pub fn as_str(self) -> &'static str {
        match self {
            Prefer3::Disable => "disable",
            Prefer3::Prefer => "prefer",
            Prefer3::Require => "require",
        }
    }
}

/// `sslnegotiation` (libpq 17+): the PostgreSQL SSLRequest first, or TLS at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslNegotiation {
    Postgres,
    Direct,
}

/// The libpq connection options of one role; `None`: not set (libpq's default applies, and
/// its default files under `~/.postgresql/` of the user running the program).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnOptions {
    pub sslmode: Option<SslMode>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    /// Decrypts `sslkey`.
    pub sslpassword: Option<String>,
    pub sslrootcert: Option<PathBuf>,
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    pub sslnegotiation: Option<SslNegotiation>,
    pub gssencmode: Option<Prefer3>,
    pub channel_binding: Option<Prefer3>,
}

impl ConnOptions {
    /// The `sslmode` in force: libpq's default is `prefer`.
    pub fn mode(&self) -> SslMode {
        self.sslmode.unwrap_or(SslMode::Prefer)
    }

    /// The files named, with their keys: `[("sslcert", "/etc/pg/client.crt"), ...]`.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        [
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
            ("sslrootcert", &self.sslrootcert),
            ("sslcrl", &self.sslcrl),
            ("sslcrldir", &self.sslcrldir),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }

    /// Keyword/value pairs for a libpq connection string (`primary_conninfo`, pg_basebackup's
    /// and pg_rewind's), in Patroni's `format_dsn` order; unset options are left out, so
    /// libpq's defaults apply. `sslnegotiation=postgres` is libpq's default and a keyword
    /// that libpq before 17 refuses, so only `direct` is written.
    pub fn conninfo_pairs(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("sslmode", self.sslmode.map(|m| m.as_str().to_string())),
            ("sslcert", path(&self.sslcert)),
            ("sslkey", path(&self.sslkey)),
            ("sslpassword", self.sslpassword.clone()),
            ("sslrootcert", path(&self.sslrootcert)),
            ("sslcrl", path(&self.sslcrl)),
            ("sslcrldir", path(&self.sslcrldir)),
            (
                "gssencmode",
                self.gssencmode.map(|m| m.as_str().to_string()),
            ),
            (
                "channel_binding",
                self.channel_binding.map(|m| m.as_str().to_string()),
            ),
            (
                "sslnegotiation",
                (self.sslnegotiation == Some(SslNegotiation::Direct)).then(|| "direct".into()),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// One `postgresql.authentication.<role>` section; `None` (with problems recorded) when a
/// value is bad. `default_user`: the user name when the key is absent; `None`: required.
pub(crate) fn pg_user(
    raw: &RawCredentials,
    default_user: Option<&str>,
    diag: &mut Diag,
) -> Option<PgUser> {
    let before = diag.problems.len();
    let username = match (&raw.username, default_user) {
        (Some(n), _) => scalar::non_empty_text(&n.value, &n.path, diag, "a user name"),
        (None, Some(d)) => Some(d.to_string()),
        (None, None) => {
            diag.missing(&raw.path.key("username"), "a user name");
            None
        }
    };
    let password = match &raw.password {
        Some(Node {
            value: Value::Null, ..
        })
        | None => None,
        Some(n) => scalar::text(&n.value, &n.path, diag, "a password"),
    };
    let mut conn = ConnOptions::default();
    let mut negotiation_node = None;
    for (key, n) in &raw.options {
        // An empty value is no value, as libpq reads it.
        let Some(text) = option_text(n, diag) else {
            continue;
        };
        match *key {
            "sslmode" => {
                conn.sslmode = choice(n, &text, &SslMode::ALL, diag);
            }
            "gssencmode" | "channel_binding" => {
                let v = choice(
                    n,
                    &text,
                    &[
                        ("disable", Prefer3::Disable),
                        ("prefer", Prefer3::Prefer),
                        ("require", Prefer3::Require),
                    ],
                    diag,
                );
                if *key == "gssencmode" {
                    conn.gssencmode = v;
                } else {
                    conn.channel_binding = v;
                }
            }
            "sslnegotiation" => {
                conn.sslnegotiation = choice(
                    n,
                    &text,
                    &[
                        ("postgres", SslNegotiation::Postgres),
                        ("direct", SslNegotiation::Direct),
                    ],
                    diag,
                );
                negotiation_node = Some(n);
            }
            "sslpassword" => conn.sslpassword = Some(text),
            file_key => {
                let Some(path) = file(n, &text, file_key, diag) else {
                    continue;
                };
                let slot = match file_key {
                    "sslcert" => &mut conn.sslcert,
                    "sslkey" => &mut conn.sslkey,
                    "sslrootcert" => &mut conn.sslrootcert,
                    "sslcrl" => &mut conn.sslcrl,
                    _ => &mut conn.sslcrldir,
                };
                *slot = Some(path);
            }
        }
    }
    if let (Some(n), Some(SslNegotiation::Direct)) = (negotiation_node, conn.sslnegotiation) {
        if !matches!(
            conn.mode(),
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        ) {
            // libpq's own rule: a direct handshake cannot fall back to a plain connection.
            diag.problem(
                &n.path,
                format!(
                    "direct with sslmode {} (libpq refuses a weak sslmode with a direct TLS handshake)",
                    conn.mode().as_str()
                ),
                "postgres, or sslmode require, verify-ca or verify-full",
            );
        }
    }
    if diag.problems.len() > before {
        return None;
    }
    Some(PgUser {
        username: username?,
        password,
        conn,
    })
}

/// The option's text; `None` when empty or null (unset) or not text (a problem).
fn option_text(n: &Node, diag: &mut Diag) -> Option<String> {
    match &n.value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        // YAML reads `sslpassword: 1234` as a number.
        Value::Number(x) => Some(x.to_string()),
        other => {
            diag.problem(&n.path, found(other), "a string");
            None
        }
    }
}

fn choice<T: Copy>(n: &Node, text: &str, allowed: &[(&str, T)], diag: &mut Diag) -> Option<T> {
    if let Some((_, v)) = allowed.iter().find(|(s, _)| *s == text) {
        return Some(*v);
    }
    let names: Vec<&str> = allowed.iter().map(|(s, _)| *s).collect();
    diag.problem(
        &n.path,
        found(&n.value),
        format!("one of {} (as libpq spells them)", names.join(", ")),
    );
    None
}

fn file(n: &Node, text: &str, key: &str, diag: &mut Diag) -> Option<PathBuf> {
    if key == "sslrootcert" && text == "system" {
        diag.problem(
            &n.path,
            "system (the operating system's trust store, libpq 16+), which pgkeel's own \
             connections cannot use yet",
            "the absolute path of a PEM file of root certificates",
        );
        return None;
    }
    if !Path::new(text).is_absolute() {
        // The walreceiver would read it relative to the data directory, the agent relative
        // to its own working directory: the same setting would name two files.
        diag.problem(
            &n.path,
            format!("{} (a relative path)", found(&n.value)),
            if key == "sslcrldir" {
                "the absolute path of a directory"
            } else {
                "the absolute path of a PEM file"
            },
        );
        return None;
    }
    Some(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    use super::*;

    fn node(auth: &str) -> String {
        format!(
            "scope: s\nname: n\nrestapi: {{listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}}\n\
             etcd3: {{hosts: 127.0.0.1:2379}}\npostgresql:\n  listen: 127.0.0.1:5432\n  \
             connect_address: 127.0.0.1:5432\n  data_dir: /pg\n  authentication:\n{auth}"
        )
    }

    fn err(auth: &str) -> String {
        match load_str(&node(auth), "n.yml") {
            Ok(_) => panic!("loaded: {auth}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn every_patroni_option_is_read_for_each_role() {
        let loaded = load_str(
            &node(
                "    superuser:\n      username: postgres\n      password: pw\n      sslmode: verify-full\n      \
                 sslcert: /tls/su.crt\n      sslkey: /tls/su.key\n      sslpassword: 1234\n      \
                 sslrootcert: /tls/ca.crt\n      sslcrl: /tls/ca.crl\n      sslcrldir: /tls/crls\n      \
                 sslnegotiation: direct\n      gssencmode: disable\n      channel_binding: require\n    \
                 replication:\n      username: repl\n      sslmode: verify-ca\n      sslrootcert: /tls/ca.crt\n    \
                 rewind:\n      username: rewinder\n      password: rw\n      sslmode: require\n",
            ),
            "n.yml",
        )
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let pg = loaded.config.postgresql;
        let su = &pg.superuser.conn;
        assert_eq!(su.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(su.sslpassword.as_deref(), Some("1234"));
        assert_eq!(su.sslnegotiation, Some(SslNegotiation::Direct));
        assert_eq!(su.channel_binding, Some(Prefer3::Require));
        assert_eq!(
            su.files(),
            vec![
                ("sslcert", Path::new("/tls/su.crt")),
                ("sslkey", Path::new("/tls/su.key")),
                ("sslrootcert", Path::new("/tls/ca.crt")),
                ("sslcrl", Path::new("/tls/ca.crl")),
                ("sslcrldir", Path::new("/tls/crls")),
            ]
        );
        assert_eq!(
            pg.replication.conn.conninfo_pairs(),
            vec![
                ("sslmode", "verify-ca".to_string()),
                ("sslrootcert", "/tls/ca.crt".to_string())
            ]
        );
        assert_eq!(pg.rewind_user().username, "rewinder");
        assert_eq!(pg.rewind_user().conn.mode(), SslMode::Require);
    }

    #[test]
    fn without_a_rewind_section_pg_rewind_connects_as_the_superuser() {
        let c = load_str(
            &node("    superuser:\n      username: admin\n      sslmode: require\n"),
            "n.yml",
        )
        .unwrap()
        .config;
        assert_eq!(c.postgresql.rewind, None);
        assert_eq!(c.postgresql.rewind_user(), &c.postgresql.superuser);
        assert_eq!(c.postgresql.replication.username, "replicator");
        assert_eq!(c.postgresql.replication.conn, ConnOptions::default());
        // Patroni requires a user name in the rewind section.
        let e = err("    rewind:\n      password: x\n");
        assert!(
            e.contains("postgresql.authentication.rewind.username") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_what_libpq_allows() {
        let e = err("    superuser:\n      sslmode: Require\n");
        assert!(
            e.contains("postgresql.authentication.superuser.sslmode")
                && e.contains("\"Require\"")
                && e.contains("disable, allow, prefer, require, verify-ca, verify-full"),
            "{e}"
        );
        assert!(e.contains("line 11"), "{e}");
        let e = err("    replication:\n      gssencmode: always\n");
        assert!(
            e.contains("replication.gssencmode") && e.contains("disable, prefer, require"),
            "{e}"
        );
        let e = err("    rewind:\n      username: r\n      sslcert: client.crt\n");
        assert!(
            e.contains("rewind.sslcert") && e.contains("relative path"),
            "{e}"
        );
        let e = err("    superuser:\n      sslrootcert: system\n");
        assert!(e.contains("superuser.sslrootcert"), "{e}");
        let e = err("    superuser:\n      sslnegotiation: direct\n");
        assert!(
            e.contains("superuser.sslnegotiation") && e.contains("sslmode prefer"),
            "{e}"
        );
        let e = err("    superuser:\n      sslkey: [a]\n");
        assert!(
            e.contains("superuser.sslkey") && e.contains("a string"),
            "{e}"
        );
    }

    #[test]
    fn empty_values_are_unset_and_postgres_negotiation_is_not_written() {
        let c = load_str(
            &node("    superuser:\n      sslmode: ''\n      sslcert:\n      sslnegotiation: postgres\n"),
            "n.yml",
        )
        .unwrap()
        .config;
        let conn = &c.postgresql.superuser.conn;
        assert_eq!(conn.sslmode, None);
        assert_eq!(conn.mode(), SslMode::Prefer);
        assert_eq!(conn.sslcert, None);
        assert!(conn.conninfo_pairs().is_empty());
    }

    #[test]
    fn patroni_environment_variables_set_the_options() {
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = crate::config::load_str_env(
            &node("    superuser:\n      username: postgres\n"),
            "n.yml",
            &[
                env("PATRONI_SUPERUSER_SSLMODE", "verify-ca"),
                env("PATRONI_SUPERUSER_SSLROOTCERT", "/tls/ca.crt"),
                env("PATRONI_REPLICATION_SSLCERT", "/tls/r.crt"),
                env("PATRONI_REWIND_USERNAME", "rewinder"),
                env("PATRONI_REWIND_CHANNEL_BINDING", "require"),
            ],
        )
        .unwrap()
        .config;
        let pg = c.postgresql;
        assert_eq!(pg.superuser.conn.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(
            pg.superuser.conn.sslrootcert.as_deref(),
            Some(Path::new("/tls/ca.crt"))
        );
        assert_eq!(
            pg.replication.conn.sslcert.as_deref(),
            Some(Path::new("/tls/r.crt"))
        );
        assert_eq!(pg.rewind_user().username, "rewinder");
        assert_eq!(
            pg.rewind_user().conn.channel_binding,
            Some(Prefer3::Require)
        );
    }
}
