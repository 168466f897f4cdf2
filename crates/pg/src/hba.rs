//! The managed `pg_hba.conf` and the pgpass file.

use std::fmt::Write as _;

use pgkeel_core::config::{PgUser, SslMode};

use crate::{HbaLines, PgSettings};

/// A role name as a pg_hba.conf field: double-quoted unless it is a plain lower-case word
/// (a quoted name also stops `all`, `+group` or `@file` from meaning something else).
fn hba_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            name,
            "all" | "sameuser" | "samerole" | "samegroup" | "replication"
        );
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Password authentication when the role has a password. A role without one can only be
/// let in by `trust`, which is what the operator chose by not configuring one.
fn method(c: &PgUser, password: &'static str) -> &'static str {
    if c.password.is_some() {
        password
    } else {
        "trust"
    }
}

/// The password method of pgkeel's own lines: `scram-sha-256`, unless the passwords are
/// stored as md5 (`password_encryption = md5`, which initdb writes for `auth: md5`, the
/// setting Patroni's docs show): then `md5`, which also takes a SCRAM secret.
fn password_method(s: &PgSettings) -> &'static str {
    use pgkeel_core::config::InitdbOption;
    let md5_param = s
        .parameters
        .get("password_encryption")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("md5"));
    let md5_initdb = s.initdb.iter().any(|o| {
        matches!(o, InitdbOption::Value(k, v)
            if (k == "auth" || k.starts_with("auth-") || k == "A") && v.trim() == "md5")
    });
    let scram_param = s
        .parameters
        .get("password_encryption")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("scram-sha-256"));
    if md5_param || (md5_initdb && !scram_param) {
        "md5"
    } else {
        "scram-sha-256"
    }
}

/// While a restored backup runs before post_bootstrap: Patroni's lines, trust for the
/// superuser and the replication user over the socket and from this host alone (the
/// backup's roles and passwords are not this configuration's yet).
pub(crate) fn render_restore_pg_hba(s: &PgSettings) -> String {
    let su = hba_name(&s.superuser.username);
    let repl = hba_name(&s.replication.username);
    let mut out = String::from(
        "# managed by pgkeel: a restored backup until post_bootstrap sets the passwords\n",
    );
    let _ = writeln!(out, "local replication {repl} trust");
    let _ = writeln!(out, "local all {su} trust");
    for net in ["127.0.0.1/32", "::1/128"] {
        let _ = writeln!(out, "host replication {repl} {net} trust");
        let _ = writeln!(out, "host all {su} {net} trust");
    }
    out
}

/// `host`, or `hostssl` when the role's connections always use TLS (`sslmode` require or
/// stronger), so that pgkeel's line for it admits no plain connection.
fn host_kind(u: &PgUser) -> &'static str {
    match u.conn.mode() {
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "hostssl",
        _ => "host",
    }
}

/// The roles of pgkeel's own lines: (kind, database, role, method) for each.
fn own_roles(s: &PgSettings) -> Vec<(&'static str, &'static str, String, &'static str)> {
    let pw = password_method(s);
    let mut v = vec![
        (
            host_kind(&s.superuser),
            "all",
            hba_name(&s.superuser.username),
            method(&s.superuser, pw),
        ),
        (
            host_kind(&s.replication),
            "replication",
            hba_name(&s.replication.username),
            method(&s.replication, pw),
        ),
    ];
    if s.rewind.username != s.superuser.username {
        // pg_rewind reads the source through the `postgres` database.
        v.push((
            host_kind(&s.rewind),
            "postgres",
            hba_name(&s.rewind.username),
            method(&s.rewind, pw),
        ));
    }
    v
}

/// pgkeel's own lines: the data directory's owner over the unix socket (initdb's default),
/// and each of its roles from loopback, where the agent reaches its own server.
fn own_lines(s: &PgSettings, out: &mut String) {
    let _ = writeln!(out, "local all all peer");
    for net in ["127.0.0.1/32", "::1/128"] {
        for (kind, db, role, m) in own_roles(s) {
            let _ = writeln!(out, "{kind} {db} {role} {net} {m}");
        }
    }
}

/// The managed pg_hba.conf:
///
/// - `postgresql.pg_hba` configured (locally or in the dynamic config): exactly those lines,
///   as Patroni writes them. pgkeel adds none: an operator's `hostssl ... clientcert=verify-ca`
///   is the whole policy, and the agent gets in only as they allow (as Patroni's does).
/// - only `bootstrap.pg_hba`: Patroni appends these to initdb's pg_hba.conf, whose loopback
///   and local lines let its agent in. pgkeel writes them first, then its own narrow lines
///   (`own_lines`: its roles from loopback only), which therefore only admit what the
///   operator's lines do not match.
/// - nothing configured: pgkeel's own lines, then its defaults.
pub(crate) fn render_pg_hba(s: &PgSettings) -> String {
    let pw = password_method(s);
    let mut out =
        String::from("# managed by pgkeel; edit the pgkeel config (postgresql.pg_hba) instead\n");
    match &s.pg_hba {
        HbaLines::Configured(lines) => {
            out.push_str(
                "#\n# Exactly the lines of postgresql.pg_hba, as Patroni writes them: pgkeel adds\n\
                 # none, so one of them must let the agent in (the superuser over loopback TCP).\n",
            );
            for line in lines {
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        HbaLines::Bootstrap(lines) => {
            out.push_str("#\n# From bootstrap.pg_hba:\n");
            for line in lines {
                let _ = writeln!(out, "{}", line.trim_end());
            }
            out.push_str(
                "\n# pgkeel's own lines, standing in for initdb's that Patroni keeps with\n\
                 # bootstrap.pg_hba: the agent (superuser over loopback TCP), local replication\n\
                 # and pg_rewind get in, for whatever the lines above do not match. Set\n\
                 # postgresql.pg_hba to have exactly your lines.\n",
            );
            own_lines(s, &mut out);
        }
        HbaLines::Defaults => {
            out.push_str(
                "#\n# No pg_hba lines were configured. pgkeel's own lines: the agent (superuser\n\
                 # over loopback TCP), local replication and pg_rewind; the data directory's\n\
                 # owner over the unix socket with peer authentication.\n",
            );
            own_lines(s, &mut out);
            out.push_str(
                "\n# pgkeel's defaults: local TCP clients with a password, and from anywhere the\n\
                 # replication user (replicas stream, clone) and the superuser and rewind user\n\
                 # (pg_rewind on a former primary reads from the new one).\n",
            );
            for net in ["127.0.0.1/32", "::1/128"] {
                let _ = writeln!(out, "host all all {net} {pw}");
            }
            for net in ["0.0.0.0/0", "::/0"] {
                for (kind, db, role, m) in own_roles(s) {
                    let _ = writeln!(out, "{kind} {db} {role} {net} {m}");
                }
            }
        }
    }
    out
}

/// A pgpass field: `:` and `\` are escaped with `\`.
fn pgpass_field(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

/// The pgpass file used by replicas (`passfile=` in `primary_conninfo`), pg_basebackup and
/// pg_rewind (`PGPASSFILE`). Roles without a password have no line.
pub(crate) fn render_pgpass(s: &PgSettings) -> String {
    let mut out = String::new();
    let mut users = vec![&s.replication, &s.superuser];
    if s.rewind.username != s.superuser.username {
        users.push(&s.rewind);
    }
    for c in users {
        if let Some(pw) = &c.password {
            let _ = writeln!(
                out,
                "*:*:*:{}:{}",
                pgpass_field(&c.username),
                pgpass_field(pw)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_settings;

    #[test]
    fn own_lines_then_defaults() {
        let s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        let text = render_pg_hba(&s);
        assert!(
            text.contains("host all postgres 127.0.0.1/32 scram-sha-256\n"),
            "{text}"
        );
        assert!(text.contains("host replication replicator ::1/128 scram-sha-256\n"));
        assert!(text.contains("host replication replicator 0.0.0.0/0 scram-sha-256\n"));
        assert!(text.contains("local all all peer\n"));
    }

    /// An operator's `hostssl ... clientcert=verify-ca` must not be weakened by a plain
    /// `host` line of pgkeel's ahead of it: configured lines are written alone.
    #[test]
    fn configured_lines_are_written_exactly() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        let lines = vec![
            "hostssl all all 127.0.0.1/32 md5 clientcert=verify-ca".to_string(),
            "hostssl replication replicator 127.0.0.1/32 md5 clientcert=verify-ca".to_string(),
        ];
        s.pg_hba = HbaLines::Configured(lines.clone());
        let text = render_pg_hba(&s);
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(rules, lines.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn bootstrap_lines_come_before_pgkeels_narrow_ones() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        s.pg_hba = HbaLines::Bootstrap(vec!["host all all 10.0.0.0/8 md5".into()]);
        s.replication.username = "Repl User".into();
        s.replication.password = None;
        s.superuser.conn.sslmode = Some(SslMode::VerifyFull);
        s.rewind = PgUser::new("rewinder", Some("x"));
        let text = render_pg_hba(&s);
        let operator = text.find("host all all 10.0.0.0/8 md5\n").unwrap();
        let own = text
            .find("hostssl all postgres 127.0.0.1/32 scram-sha-256\n")
            .unwrap_or_else(|| panic!("{text}"));
        assert!(operator < own, "{text}");
        assert!(!text.contains("0.0.0.0/0"));
        assert!(text.contains("host replication \"Repl User\" 127.0.0.1/32 trust\n"));
        assert!(text.contains("host postgres rewinder ::1/128 scram-sha-256\n"));
    }

    /// Patroni's docs bootstrap with `initdb: [{auth: md5}, {auth-host: md5}]`: initdb then
    /// stores passwords as md5, and pgkeel's own scram-sha-256 lines locked the agent out.
    #[test]
    fn md5_passwords_get_md5_lines() {
        use pgkeel_core::config::InitdbOption;
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        s.initdb = vec![InitdbOption::Value("auth-host".into(), "md5".into())];
        let text = render_pg_hba(&s);
        assert!(
            text.contains("host all postgres 127.0.0.1/32 md5\n"),
            "{text}"
        );
        assert!(!text.contains("scram-sha-256"), "{text}");
        s.parameters
            .insert("password_encryption".into(), "scram-sha-256".into());
        assert!(render_pg_hba(&s).contains("host all postgres 127.0.0.1/32 scram-sha-256\n"));
        s.initdb.clear();
        s.parameters
            .insert("password_encryption".into(), "md5".into());
        assert!(render_pg_hba(&s).contains("host all postgres 127.0.0.1/32 md5\n"));
    }

    #[test]
    fn pgpass_escapes_and_holds_the_rewind_user() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        s.superuser.password = Some(r"a:b\c".into());
        s.rewind = s.superuser.clone();
        s.replication.password = None;
        assert_eq!(render_pgpass(&s), "*:*:*:postgres:a\\:b\\\\c\n");
        s.rewind = PgUser::new("rewinder", Some("r"));
        assert_eq!(
            render_pgpass(&s),
            "*:*:*:postgres:a\\:b\\\\c\n*:*:*:rewinder:r\n"
        );
    }
}
