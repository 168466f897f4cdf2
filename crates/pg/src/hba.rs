//! The managed `pg_hba.conf` and the pgpass file.

use std::fmt::Write as _;

use pgkeel_core::config::Credentials;

use crate::PgSettings;

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
fn method(c: &Credentials, password: &'static str) -> &'static str {
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

pub(crate) fn render_pg_hba(s: &PgSettings) -> String {
    let su = hba_name(&s.superuser.username);
    let repl = hba_name(&s.replication.username);
    let pw = password_method(s);
    let (sum, rm) = (method(&s.superuser, pw), method(&s.replication, pw));
    let mut out = String::from(
        "# managed by pgkeel; edit the pgkeel config (postgresql.pg_hba) instead\n\
         #\n\
         # pgkeel's own lines come first so that the agent (superuser over loopback TCP) and\n\
         # local replication always get in, whatever the lines below say. The data directory's\n\
         # owner may connect over the unix socket with peer authentication.\n",
    );
    let _ = writeln!(out, "local all all peer");
    for net in ["127.0.0.1/32", "::1/128"] {
        let _ = writeln!(out, "host all {su} {net} {sum}");
        let _ = writeln!(out, "host replication {repl} {net} {rm}");
    }
    if s.pg_hba.is_empty() {
        out.push_str(
            "\n# No pg_hba lines were configured; pgkeel's defaults: local TCP clients with a\n\
             # password, and from anywhere the replication user (replicas stream, clone) and\n\
             # the superuser (pg_rewind on a former primary reads from the new one).\n",
        );
        for net in ["127.0.0.1/32", "::1/128"] {
            let _ = writeln!(out, "host all all {net} {pw}");
        }
        for net in ["0.0.0.0/0", "::/0"] {
            let _ = writeln!(out, "host replication {repl} {net} {rm}");
            let _ = writeln!(out, "host all {su} {net} {sum}");
        }
    } else {
        out.push_str("\n# From the pgkeel config:\n");
        for line in &s.pg_hba {
            let _ = writeln!(out, "{}", line.trim_end());
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
    for c in [&s.replication, &s.superuser] {
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
    }

    #[test]
    fn user_lines_replace_defaults() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        s.pg_hba = vec!["host all all 10.0.0.0/8 md5".into()];
        s.replication.username = "Repl User".into();
        s.replication.password = None;
        let text = render_pg_hba(&s);
        assert!(text.contains("host all all 10.0.0.0/8 md5\n"));
        assert!(!text.contains("0.0.0.0/0"));
        assert!(text.contains("host replication \"Repl User\" 127.0.0.1/32 trust\n"));
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
    fn pgpass_escapes() {
        let mut s = sample_settings("n1", "/tmp/d".as_ref(), 5433);
        s.superuser.password = Some(r"a:b\c".into());
        s.replication.password = None;
        assert_eq!(render_pgpass(&s), "*:*:*:postgres:a\\:b\\\\c\n");
    }
}
