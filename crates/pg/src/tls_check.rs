//! The start check of `postgresql.authentication.*`'s TLS files: every file named exists,
//! is readable by the user PostgreSQL's programs run as (the walreceiver, pg_basebackup
//! and pg_rewind read them as the data directory's owner, not as the agent), and a key
//! passes libpq's permission rule; the superuser's files are parsed too (the agent reads
//! them itself). libpq silently skips an explicit certificate file that does not exist;
//! pgkeel refuses to start instead, naming the file, so that nobody believes a client
//! certificate is presented when none is.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use nix::unistd::{Gid, Uid};
use pgkeel_core::config::{PgUser, Postgresql, SslNegotiation};

use crate::run_as::Owner;

/// Each role's settings path and user: superuser, replication and (when set) rewind.
fn roles(pg: &Postgresql) -> Vec<(&'static str, &PgUser)> {
    let mut v = vec![
        ("postgresql.authentication.superuser", &pg.superuser),
        ("postgresql.authentication.replication", &pg.replication),
    ];
    if let Some(r) = &pg.rewind {
        v.push(("postgresql.authentication.rewind", r));
    }
    v
}

/// `Err` names the setting, the file and what is wrong.
pub fn check_client_tls(pg: &Postgresql) -> anyhow::Result<()> {
    let owner = Owner::resolve(&pg.data_dir)?;
    let groups = owner_groups(&owner);
    for (section, user) in roles(pg) {
        let files = crate::tls::files(&user.conn, &owner.home, section).map_err(|e| anyhow!(e))?;
        let Some(files) = files else {
            continue;
        };
        for (key, path) in user.conn.files() {
            readable(
                &format!("{section}.{key}"),
                path,
                key == "sslcrldir",
                &owner,
                &groups,
            )?;
        }
        if let pgkeel_tls::PgVerify::Chain { rootcert, crls, .. } = &files.verify {
            readable(
                &format!("{section}.sslrootcert"),
                rootcert,
                false,
                &owner,
                &groups,
            )?;
            for crl in crls {
                readable(&format!("{section}.sslcrl"), crl, false, &owner, &groups)?;
            }
        }
        if let Some((cert, key, _)) = &files.identity {
            readable(&format!("{section}.sslcert"), cert, false, &owner, &groups)?;
            let key_setting = format!("{section}.sslkey");
            if user.conn.sslkey.is_none() && !key.exists() {
                bail!(
                    "{section}.sslcert {} is set but {section}.sslkey is not, and libpq's \
                     default key file {} does not exist",
                    cert.display(),
                    key.display()
                );
            }
            readable(&key_setting, key, false, &owner, &groups)?;
            key_permissions(&key_setting, key, &owner)?;
        }
        if user.conn.sslnegotiation == Some(SslNegotiation::Direct) {
            let major = libpq_major(pg)?;
            if major < 17 {
                bail!(
                    "{section}.sslnegotiation is direct, which needs PostgreSQL 17 or later \
                     (its libpq and its server); this is PostgreSQL {major}"
                );
            }
        }
    }
    // The agent's own connections: every file parsed and the key decrypted now.
    crate::tls::ClientTls::new(
        &pg.superuser.conn,
        &owner.home,
        "postgresql.authentication.superuser",
    )
    .map_err(|e| anyhow!(e))?;
    Ok(())
}

/// The owner's groups, for the permission bits of files it must read.
fn owner_groups(owner: &Owner) -> Vec<Gid> {
    let Some(name) = owner
        .name
        .as_deref()
        .and_then(|n| std::ffi::CString::new(n).ok())
    else {
        return vec![owner.gid];
    };
    nix::unistd::getgrouplist(&name, owner.gid).unwrap_or_else(|_| vec![owner.gid])
}

/// Could `uid` in `groups` do `bits` (r=4, x=1) on a file of this metadata, by its mode?
fn permits(meta: &std::fs::Metadata, uid: Uid, groups: &[Gid], bits: u32) -> bool {
    if uid.is_root() {
        return true;
    }
    let mode = meta.mode();
    let shift = if meta.uid() == uid.as_raw() {
        6
    } else if groups.iter().any(|g| g.as_raw() == meta.gid()) {
        3
    } else {
        0
    };
    (mode >> shift) & bits == bits
}

fn readable(
    key: &str,
    path: &Path,
    dir: bool,
    owner: &Owner,
    groups: &[Gid],
) -> anyhow::Result<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{key} {shown}: {e}"))?;
    if dir != meta.is_dir() {
        bail!(
            "{key} {shown}: {}",
            if dir {
                "not a directory"
            } else {
                "not a regular file"
            }
        );
    }
    // The agent itself (root reads anything; otherwise it is the owner).
    let opened = if dir {
        std::fs::read_dir(path).map(drop)
    } else {
        std::fs::File::open(path).map(drop)
    };
    opened.map_err(|e| anyhow!("{key} {shown}: cannot be read: {e}"))?;
    // PostgreSQL's programs, as the owner: every directory above must let it through.
    let who = owner
        .name
        .clone()
        .unwrap_or_else(|| format!("uid {}", owner.uid));
    for ancestor in path.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            continue;
        }
        let m = std::fs::metadata(ancestor)
            .with_context(|| format!("{key} {shown}: inspecting {}", ancestor.display()))?;
        if !permits(&m, owner.uid, groups, 1) {
            bail!(
                "{key} {shown}: {who}, whom PostgreSQL's programs run as, cannot enter {}",
                ancestor.display()
            );
        }
    }
    if !permits(&meta, owner.uid, groups, if dir { 5 } else { 4 }) {
        bail!(
            "{key} {shown}: {who}, whom PostgreSQL's programs run as, cannot read it \
             (mode {:04o}, owner uid {}, group gid {})",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        );
    }
    Ok(())
}

/// libpq's rule for a client key, with the owner as libpq's "current user": owned by it,
/// no group or other access (0600 or less); owned by anyone else (root), no group write
/// or execute and no other access (0640 or less). libpq refuses the key otherwise, so the
/// walreceiver would never stream; pgkeel refuses to start.
fn key_permissions(key: &str, path: &Path, owner: &Owner) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{key} {}: {e}", path.display()))?;
    let mode = meta.mode();
    let bad = if meta.uid() == owner.uid.as_raw() {
        mode & 0o077 != 0
    } else {
        mode & 0o037 != 0
    };
    if bad {
        bail!(
            "{key} {}: has group or world access (mode {:04o}), which libpq refuses: it must \
             be u=rw (0600) or less if owned by the user PostgreSQL runs as, or u=rw,g=r (0640) \
             or less if owned by root",
            path.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// The major version of the PostgreSQL programs (`postgres -V`), whose libpq reads the
/// connection strings.
fn libpq_major(pg: &Postgresql) -> anyhow::Result<u32> {
    let postgres = crate::bin::find(pg.bin_dir.as_deref(), "postgres")?;
    let out = std::process::Command::new(&postgres)
        .arg("-V")
        .output()
        .with_context(|| format!("running {} -V", postgres.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-1)"
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split(['.', 'b', 'r']).next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "cannot read the version in {:?} from {} -V",
                text.trim(),
                postgres.display()
            )
        })
}
