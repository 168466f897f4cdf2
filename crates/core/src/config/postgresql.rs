//! The local `postgresql` section → [`Postgresql`].

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diag::{Diag, KeyPath};
use super::dynamic::parameters;
use super::pg_conn::pg_user;
use super::raw::{Node, RawCredentials, RawPostgresql};
use super::scalar::{self, found};
use super::{Callbacks, PgUser, Postgresql};

const LISTEN_ALLOWED: &str =
    "host:port or host1,host2:port (the port after the last colon), e.g. 0.0.0.0:5432";

/// Patroni's default when `postgresql.listen` has no port.
const PG_PORT: u16 = 5432;

pub(crate) fn postgresql(raw: Option<&RawPostgresql>, diag: &mut Diag) -> Option<Postgresql> {
    let Some(raw) = raw else {
        diag.missing(
            &KeyPath::root().key("postgresql"),
            "a postgresql section with at least listen, connect_address and data_dir",
        );
        return None;
    };
    let before = diag.problems.len();
    let listen = required(&raw.listen, &raw.path, "listen", LISTEN_ALLOWED, diag)
        .and_then(|n| listen(n, diag));
    let connect_address = required(
        &raw.connect_address,
        &raw.path,
        "connect_address",
        "host:port that peers use to reach this PostgreSQL, e.g. 127.0.0.1:5432",
        diag,
    )
    .and_then(|n| scalar::host_port(&n.value, &n.path, diag, None));
    let data_dir = required(
        &raw.data_dir,
        &raw.path,
        "data_dir",
        "an absolute path, e.g. /var/lib/postgresql/15/main",
        diag,
    )
    .and_then(|n| absolute_path(n, diag));
    let bin_dir = raw.bin_dir.as_ref().and_then(|n| match &n.value {
        // `bin_dir:` with nothing after it is common in templates: same as absent.
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        _ => absolute_path(n, diag),
    });
    let pgpass = match &raw.pgpass {
        Some(n) => absolute_path(n, diag),
        None => data_dir.as_deref().map(default_pgpass),
    };
    let superuser = credentials(raw.superuser.as_ref(), "postgres", diag);
    let replication = credentials(raw.replication.as_ref(), "replicator", diag);
    // Patroni: without a `rewind` section, pg_rewind uses the superuser's settings.
    let rewind = raw.rewind.as_ref().map(|r| pg_user(r, None, diag));
    let params = raw
        .parameters
        .as_ref()
        .and_then(|n| parameters(&n.value, &n.path, diag));
    let pg_hba = raw
        .pg_hba
        .as_ref()
        .and_then(|n| scalar::string_list(&n.value, &n.path, diag));
    let basebackup = raw.basebackup.as_ref().and_then(|n| {
        if n.value.is_null() {
            return Some(Vec::new());
        }
        let options = scalar::options(&n.value, &n.path, diag, true)?;
        super::methods::refuse_basebackup_options(&n.value, &n.path, &options, diag);
        Some(options)
    });
    let create_replica_methods = super::methods::replica_methods(raw, diag);
    let flag = |n: &Option<Node>, diag: &mut Diag| match n {
        None => Some(false),
        Some(n) if n.value.is_null() => Some(false),
        Some(n) => scalar::boolean(&n.value, &n.path, diag),
    };
    let use_unix_socket = flag(&raw.use_unix_socket, diag);
    let pg_ident = raw.pg_ident.as_ref().and_then(|n| {
        if n.value.is_null() {
            return Some(None);
        }
        scalar::string_list(&n.value, &n.path, diag).map(Some)
    });
    let pg_ctl_timeout = match &raw.pg_ctl_timeout {
        None => Some(None),
        Some(n) if n.value.is_null() => Some(None),
        Some(n) => {
            scalar::seconds(&n.value, &n.path, diag, std::time::Duration::from_secs(1)).map(Some)
        }
    };
    let proxy_address = match &raw.proxy_address {
        None => Some(None),
        Some(n) if n.value.is_null() => Some(None),
        Some(n) => scalar::host_port(&n.value, &n.path, diag, None).map(Some),
    };
    let use_pg_rewind = match &raw.use_pg_rewind {
        None => Some(None),
        Some(n) if n.value.is_null() => Some(None),
        Some(n) => scalar::boolean(&n.value, &n.path, diag).map(Some),
    };
    let use_unix_socket_repl = flag(&raw.use_unix_socket_repl, diag);
    let mut callbacks = raw.callbacks.as_ref().and_then(|n| callbacks(n, diag));
    let pre_promote = raw.pre_promote.as_ref().and_then(|n| hook(n, diag));
    let before_stop = raw.before_stop.as_ref().and_then(|n| hook(n, diag));
    if pre_promote.is_some() || before_stop.is_some() {
        let c = callbacks.get_or_insert_with(Callbacks::default);
        c.pre_promote = pre_promote;
        c.before_stop = before_stop;
    }
    if diag.problems.len() > before {
        return None;
    }
    let (listen_addresses, port) = listen?;
    Some(Postgresql {
        listen_addresses,
        port,
        connect_address: connect_address?,
        data_dir: data_dir?,
        bin_dir,
        pgpass: pgpass?,
        superuser: superuser?,
        replication: replication?,
        // A bad section recorded a problem, and returned above.
        rewind: rewind.flatten(),
        parameters: params.unwrap_or_default(),
        pg_hba: pg_hba.unwrap_or_default(),
        basebackup: basebackup.unwrap_or_default(),
        callbacks: callbacks.unwrap_or_default(),
        create_replica_methods: create_replica_methods?,
        use_unix_socket: use_unix_socket?,
        pg_ident: pg_ident.unwrap_or(None),
        pg_ctl_timeout: pg_ctl_timeout?,
        use_pg_rewind: use_pg_rewind?,
        proxy_address: proxy_address?,
        use_unix_socket_repl: use_unix_socket_repl?,
    })
}

/// `postgresql.callbacks`: `on_start`, `on_stop`, `on_restart`, `on_reload`,
/// `on_role_change`, each a command line (split as a shell would, without a shell).
fn callbacks(n: &Node, diag: &mut Diag) -> Option<Callbacks> {
    const KNOWN: [&str; 5] = [
        "on_start",
        "on_stop",
        "on_restart",
        "on_reload",
        "on_role_change",
    ];
    let map = match &n.value {
        Value::Null => return Some(Callbacks::default()),
        Value::Object(m) => m,
        other => {
            diag.problem(
                &n.path,
                scalar::found(other),
                "a mapping of on_start, on_stop, on_restart, on_reload, on_role_change: command",
            );
            return None;
        }
    };
    let mut out = Callbacks::default();
    for (k, v) in map {
        let path = n.path.key(k);
        if !KNOWN.contains(&k.as_str()) {
            // A typo here would silently never run the operator's script (a VIP move).
            diag.problem(
                &path,
                format!("found the callback {k:?}"),
                "on_start, on_stop, on_restart, on_reload or on_role_change",
            );
            continue;
        }
        let Some(cmd) = v.as_str().filter(|c| !c.trim().is_empty()) else {
            if !v.is_null() {
                diag.problem(&path, scalar::found(v), "a command line");
            }
            continue;
        };
        match crate::callbacks::split_command(cmd) {
            Some(argv) => {
                out.commands.insert(k.clone(), argv);
            }
            None => diag.problem(
                &path,
                scalar::found(v),
                "a command line with balanced quotes",
            ),
        }
    }
    Some(out)
}

/// `postgresql.pre_promote` / `before_stop`: one command line, split as a shell splits
/// words (Patroni's `shlex.split`); empty is none.
fn hook(n: &Node, diag: &mut Diag) -> Option<Vec<String>> {
    match &n.value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => {
            let argv = crate::callbacks::split_command(s);
            if argv.is_none() {
                diag.problem(
                    &n.path,
                    found(&n.value),
                    "a command line with balanced quotes",
                );
            }
            argv
        }
        other => {
            diag.problem(&n.path, found(other), "a command line");
            None
        }
    }
}

/// The node if present; otherwise a "missing" problem.
fn required<'a>(
    n: &'a Option<Node>,
    section: &KeyPath,
    key: &str,
    allowed: &str,
    diag: &mut Diag,
) -> Option<&'a Node> {
    if n.is_none() {
        diag.missing(&section.key(key), allowed);
    }
    n.as_ref()
}

/// `postgresql.listen` → (`listen_addresses`, port). Patroni allows several hosts; the port
/// follows the last colon and defaults to 5432.
fn listen(n: &Node, diag: &mut Diag) -> Option<(Vec<String>, u16)> {
    let Value::String(s) = &n.value else {
        diag.problem(&n.path, found(&n.value), LISTEN_ALLOWED);
        return None;
    };
    let (hosts, port) = match scalar::split_host_port(s, Some(PG_PORT)) {
        Ok(hp) => hp,
        Err(why) => {
            diag.problem(
                &n.path,
                format!("{} ({why})", found(&n.value)),
                LISTEN_ALLOWED,
            );
            return None;
        }
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| {
            h.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        })
        .collect();
    if hosts
        .iter()
        .any(|h| h.is_empty() || h.contains(char::is_whitespace))
    {
        diag.problem(
            &n.path,
            format!("{} (an empty or blank host)", found(&n.value)),
            LISTEN_ALLOWED,
        );
        return None;
    }
    Some((hosts, port))
}

fn absolute_path(n: &Node, diag: &mut Diag) -> Option<PathBuf> {
    match &n.value {
        Value::String(s) if Path::new(s).is_absolute() => Some(PathBuf::from(s)),
        other => {
            diag.problem(&n.path, found(other), "an absolute path");
            None
        }
    }
}

/// Where the password file goes when `postgresql.pgpass` is not set: a sibling of the data
/// directory, `<data_dir>.pgpass` (e.g. `/var/lib/postgresql/15/main.pgpass`). Patroni has no
/// default; a sibling is private to this node, owned by the same user as the data directory,
/// survives reboots (unlike `/tmp`) and is not inside the data directory, which pg_basebackup
/// and pg_rewind overwrite.
pub(crate) fn default_pgpass(data_dir: &Path) -> PathBuf {
    match (data_dir.parent(), data_dir.file_name()) {
        (Some(parent), Some(dir)) => {
            let mut file = dir.to_os_string();
            file.push(".pgpass");
            parent.join(file)
        }
        _ => PathBuf::from("/pgkeel.pgpass"),
    }
}

fn credentials(
    raw: Option<&RawCredentials>,
    default_user: &str,
    diag: &mut Diag,
) -> Option<PgUser> {
    match raw {
        None => Some(PgUser::new(default_user, None)),
        Some(raw) => pg_user(raw, Some(default_user), diag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_defaults_to_a_sibling_of_the_data_dir() {
        assert_eq!(
            default_pgpass(Path::new("/var/lib/postgresql/15/main")),
            PathBuf::from("/var/lib/postgresql/15/main.pgpass")
        );
        assert_eq!(
            default_pgpass(Path::new("/var/lib/pg/data/")),
            PathBuf::from("/var/lib/pg/data.pgpass")
        );
        assert_eq!(
            default_pgpass(Path::new("/")),
            PathBuf::from("/pgkeel.pgpass")
        );
    }
}
