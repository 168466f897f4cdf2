//! The managed `postgresql.conf`: what pgkeel forces, what the user sets, and quoting.
//!
//! Pure text in, text out; `managed.rs` writes the files.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `unix_socket_directories` unless the operator sets it (see where it is written).
pub(crate) const DEFAULT_SOCKET_DIR: &str = "/tmp";

use pgkeel_core::action::RestoreRecovery;
use pgkeel_core::config::PgUser;
use pgkeel_core::Upstream;

use crate::PgSettings;

/// The file `initdb` (or the source of a clone) wrote, included first so that everything
/// pgkeel sets after it wins.
pub(crate) const BASE_CONF: &str = "postgresql.base.conf";
pub(crate) const HEADER: &str = "# managed by pgkeel; edit the pgkeel config instead";

/// How the server is about to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role<'a> {
    Primary,
    /// A standby; `None` streams from nobody yet (empty `primary_conninfo`).
    Replica(Option<&'a Upstream>),
    /// A backup a custom bootstrap method restored, until post_bootstrap: its recovery
    /// settings, and trust for the superuser and the replication user from this host (the
    /// backup's passwords are not known yet), as Patroni runs it.
    Restoring(&'a Restore),
}

/// What a restored backup first runs with (see [`Role::Restoring`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restore {
    pub recovery: RestoreRecovery,
    /// `hot_standby = off` until the end of recovery (core's `hot_standby_off`).
    pub hot_standby_off: bool,
}

/// A [`Role`] kept after the call that wrote it, to write the files again on a change.
#[derive(Debug, Clone)]
pub(crate) enum OwnedRole {
    Primary,
    Replica(Option<Upstream>),
    Restoring(Restore),
}

impl OwnedRole {
    pub(crate) fn of(role: &Role<'_>) -> Self {
        match role {
            Role::Primary => OwnedRole::Primary,
            Role::Replica(u) => OwnedRole::Replica(u.cloned()),
            Role::Restoring(r) => OwnedRole::Restoring((*r).clone()),
        }
    }

    pub(crate) fn as_role(&self) -> Role<'_> {
        match self {
            OwnedRole::Primary => Role::Primary,
            OwnedRole::Replica(u) => Role::Replica(u.as_ref()),
            OwnedRole::Restoring(r) => Role::Restoring(r),
        }
    }
}

/// Settings that follow from the role; a user's value for them is ignored.
const RECOVERY_SETTINGS: &[&str] = &[
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
];
/// Settings that come from `PgSettings` fields, not from `parameters`.
const FROM_FIELDS: &[&str] = &["listen_addresses", "port"];
/// pgkeel needs at least this many WAL senders and slots (Patroni's default).
const MIN_SENDERS_AND_SLOTS: u32 = 10;

/// A value as a `postgresql.conf` string literal. The file's lexer treats `\` as an escape
/// character, and `''` as a quote.
pub(crate) fn quote_conf(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A value as a libpq connection-string value (always quoted: `'`, `\` escaped).
pub(crate) fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A libpq connection string of `pairs`, every value quoted.
pub(crate) fn conninfo(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", quote_conninfo(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How PostgreSQL's programs reach `up` as `user`: host, port, user name and the user's
/// TLS options (Patroni's `conn_kwargs` with the credentials merged in). The password is
/// never written: it is in the pgpass file.
pub(crate) fn remote_pairs(up: &Upstream, user: &PgUser) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("host", up.host.clone()),
        ("port", up.port.to_string()),
        ("user", user.username.clone()),
    ];
    pairs.extend(user.conn.conninfo_pairs());
    pairs
}

/// `primary_conninfo` for streaming from `up`: the server's own libpq does TLS here, with
/// the replication user's options (as Patroni writes them). The password comes from the
/// pgpass file, so it never appears in `pg_stat_wal_receiver` or in the config file
/// (`sslpassword`, when set, does: libpq has no file for it; PostgreSQL shows it masked).
pub(crate) fn primary_conninfo(s: &PgSettings, up: &Upstream) -> String {
    let mut pairs = remote_pairs(up, &s.replication);
    pairs.extend([
        ("passfile", s.pgpass.display().to_string()),
        ("application_name", s.name.clone()),
        ("connect_timeout", "2".into()),
    ]);
    conninfo(&pairs)
}

/// Key/value pairs of a libpq connection string (`host=a port='5432'`). Malformed input
/// yields what could be parsed.
pub(crate) fn parse_conninfo(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.insert(key, value);
    }
    out
}

/// GUC names are identifiers, possibly dotted (`pg_stat_statements.max`). Anything else
/// would let a parameter name inject lines into the file.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The settings pgkeel writes, in the order they are written (file order does not matter to
/// PostgreSQL within one file except for duplicates, and there are none).
pub(crate) fn managed_settings(s: &PgSettings, role: Role<'_>) -> BTreeMap<String, String> {
    let data = s.data_dir.display().to_string();
    let mut m: BTreeMap<String, String> = [
        ("cluster_name", s.name.clone()),
        ("hot_standby", "on".into()),
        ("wal_level", "replica".into()),
        ("wal_log_hints", "on".into()),
        ("max_wal_senders", MIN_SENDERS_AND_SLOTS.to_string()),
        ("max_replication_slots", MIN_SENDERS_AND_SLOTS.to_string()),
        ("wal_keep_size", "128MB".into()),
        ("hba_file", format!("{data}/pg_hba.conf")),
        ("ident_file", format!("{data}/pg_ident.conf")),
        // Debian's /var/run/postgresql may be missing and is shared by every instance on
        // the host; /tmp always exists and instances differ by port. The agent itself
        // connects over TCP, so this only serves local tools.
        ("unix_socket_directories", DEFAULT_SOCKET_DIR.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in &s.parameters {
        if FROM_FIELDS.contains(&k.as_str()) || RECOVERY_SETTINGS.contains(&k.as_str()) {
            tracing::debug!(parameter = %k, "ignoring a parameter pgkeel manages itself");
            continue;
        }
        if !valid_name(k) {
            tracing::warn!(parameter = %k, "ignoring a parameter whose name is not a valid GUC name");
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    // Replication and pg_rewind depend on these; a user value cannot turn them off.
    m.insert("hot_standby".into(), "on".into());
    m.insert("wal_log_hints".into(), "on".into());
    if m.get("wal_level").map(|v| v.to_ascii_lowercase()) != Some("logical".into()) {
        m.insert("wal_level".into(), "replica".into());
    }
    for k in ["max_wal_senders", "max_replication_slots"] {
        let n = m
            .get(k)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        m.insert(k.into(), n.max(MIN_SENDERS_AND_SLOTS).to_string());
    }
    m.insert("listen_addresses".into(), s.listen_addresses.join(","));
    m.insert("port".into(), s.port.to_string());
    match role {
        Role::Replica(up) => {
            let conninfo = up.map(|u| primary_conninfo(s, u)).unwrap_or_default();
            m.insert("primary_conninfo".into(), conninfo);
            if let Some(slot) = up.and_then(|u| u.slot.clone()) {
                m.insert("primary_slot_name".into(), slot);
            }
            m.insert("recovery_target_timeline".into(), "latest".into());
        }
        Role::Restoring(r) => {
            if let RestoreRecovery::Settings { settings, .. } = &r.recovery {
                for (k, v) in settings {
                    if valid_name(k) && !FROM_FIELDS.contains(&k.as_str()) {
                        m.insert(k.clone(), v.clone());
                    } else {
                        tracing::warn!(setting = %k, "ignoring a recovery_conf setting pgkeel cannot write");
                    }
                }
            }
            if r.hot_standby_off {
                m.insert("hot_standby".into(), "off".into());
            }
        }
        Role::Primary => {}
    }
    m
}

/// The whole managed `postgresql.conf`.
pub(crate) fn render_postgresql_conf(s: &PgSettings, role: Role<'_>) -> String {
    let mut out = format!(
        "{HEADER}\n# Written on every start, follow and rewind; local edits are lost.\n\
         include {}\n\n",
        quote_conf(BASE_CONF)
    );
    for (k, v) in managed_settings(s, role) {
        let _ = writeln!(out, "{k} = {}", quote_conf(&v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_settings;

    #[test]
    fn quoting() {
        assert_eq!(quote_conf("it's a\\b"), r"'it''s a\\b'");
        assert_eq!(quote_conninfo("it's a\\b"), r"'it\'s a\\b'");
    }

    #[test]
    fn conninfo_round_trips() {
        let mut s = sample_settings("node 'x'", "/tmp/d".as_ref(), 5433);
        s.pgpass = "/tmp/pg pass".into();
        let up = Upstream {
            member: "n1".into(),
            host: "10.0.0.1".into(),
            port: 5432,
            slot: None,
        };
        let parsed = parse_conninfo(&primary_conninfo(&s, &up));
        assert_eq!(parsed["host"], "10.0.0.1");
        assert_eq!(parsed["port"], "5432");
        assert_eq!(parsed["application_name"], "node 'x'");
        assert_eq!(parsed["passfile"], "/tmp/pg pass");
        let plain = parse_conninfo("host=a  port = 7 user='u v'");
        assert_eq!(plain["host"], "a");
        assert_eq!(plain["port"], "7");
        assert_eq!(plain["user"], "u v");
        assert!(parse_conninfo("").is_empty());
    }

    #[test]
    fn primary_conninfo_carries_the_replication_users_tls_options() {
        use pgkeel_core::config::SslMode;
        let mut s = sample_settings("n2", "/tmp/d".as_ref(), 5433);
        s.replication.conn.sslmode = Some(SslMode::VerifyFull);
        s.replication.conn.sslrootcert = Some("/tls/ca.crt".into());
        s.replication.conn.sslcert = Some("/tls/repl's.crt".into());
        s.replication.conn.sslkey = Some("/tls/repl.key".into());
        s.replication.conn.sslpassword = Some("pw".into());
        let up = Upstream {
            member: "n1".into(),
            host: "db1.example".into(),
            port: 5432,
            slot: None,
        };
        let parsed = parse_conninfo(&primary_conninfo(&s, &up));
        assert_eq!(parsed["sslmode"], "verify-full");
        assert_eq!(parsed["sslrootcert"], "/tls/ca.crt");
        assert_eq!(parsed["sslcert"], "/tls/repl's.crt");
        assert_eq!(parsed["sslkey"], "/tls/repl.key");
        assert_eq!(parsed["sslpassword"], "pw");
        assert_eq!(parsed["host"], "db1.example");
        assert!(!parsed.contains_key("password"));
        // Nothing set: nothing written, libpq's defaults apply.
        let plain = parse_conninfo(&primary_conninfo(
            &sample_settings("n2", "/tmp/d".as_ref(), 5433),
            &up,
        ));
        assert!(!plain.keys().any(|k| k.starts_with("ssl")), "{plain:?}");
    }

    #[test]
    fn forced_settings_win_and_user_settings_apply() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        for (k, v) in [
            ("port", "1"),
            ("wal_level", "minimal"),
            ("hot_standby", "off"),
            ("max_wal_senders", "3"),
            ("max_replication_slots", "20"),
            ("work_mem", "8MB"),
            ("bad name\ninclude '/etc/x'", "1"),
            ("primary_conninfo", "host=evil"),
        ] {
            s.parameters.insert(k.into(), v.into());
        }
        let m = managed_settings(&s, Role::Primary);
        assert_eq!(m["port"], "5433");
        assert_eq!(m["wal_level"], "replica");
        assert_eq!(m["hot_standby"], "on");
        assert_eq!(m["max_wal_senders"], "10");
        assert_eq!(m["max_replication_slots"], "20");
        assert_eq!(m["work_mem"], "8MB");
        assert_eq!(m["cluster_name"], "n1");
        assert!(!m.contains_key("primary_conninfo"));
        assert!(!m.keys().any(|k| k.contains('\n')));
        s.parameters.insert("wal_level".into(), "logical".into());
        assert_eq!(managed_settings(&s, Role::Primary)["wal_level"], "logical");
    }

    #[test]
    fn replica_settings() {
        let s = sample_settings("n2", "/tmp/d".as_ref(), 5433);
        let up = Upstream {
            member: "n1".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            slot: Some("n2".into()),
        };
        let m = managed_settings(&s, Role::Replica(Some(&up)));
        assert!(m["primary_conninfo"].contains("host='127.0.0.1'"));
        assert_eq!(m["primary_slot_name"], "n2");
        assert_eq!(m["recovery_target_timeline"], "latest");
        let m = managed_settings(&s, Role::Replica(None));
        assert_eq!(m["primary_conninfo"], "");
        assert!(!m.contains_key("primary_slot_name"));
        let text = render_postgresql_conf(&s, Role::Replica(Some(&up)));
        assert!(text.starts_with(HEADER));
        assert!(text.contains("include 'postgresql.base.conf'"));
        assert!(
            text.contains("primary_conninfo = 'host=''127.0.0.1'' port=''5432''"),
            "{text}"
        );
    }
}
