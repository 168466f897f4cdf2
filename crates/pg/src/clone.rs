//! Making a replica's data directory: pg_basebackup, and wiping for a re-clone.

use std::fs;
use std::path::Path;

use anyhow::Context;
use pgkeel_core::{StopMode, Upstream};

use crate::conf::Role;
use crate::run_as::Invocation;
use crate::Pg;

/// Bound on emptying a data directory before a re-clone.
const CLEAR_WITHIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes everything inside `dir` but not `dir` itself, which may be a mount point.
pub(crate) fn clear_dir(dir: &Path) -> anyhow::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        // symlink_metadata: a symlinked pg_wal or tablespace is unlinked, not followed.
        let is_dir = fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

impl Pg {
    pub async fn clone_from(&self, source: &Upstream) -> anyhow::Result<()> {
        let s = self.settings();
        let dir = self.data_dir();
        let owner = self
            .prepare_empty_data_dir("preparing the data directory for a clone", |d| {
                format!("cannot clone into {}: it is not empty", d.display())
            })
            .await?;
        self.on_disk_op("writing the pgpass file", |pg| pg.write_pgpass())
            .await?;
        let mut args: Vec<std::ffi::OsString> = vec![
            "-D".into(),
            dir.into(),
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
            // Host, port, user and the replication user's TLS options, as Patroni passes
            // them (`--dbname=` takes a connection string).
            format!(
                "--dbname={}",
                crate::conf::conninfo(&crate::conf::remote_pairs(source, &s.replication))
            )
            .into(),
            // Never prompt: the password is in the pgpass file or nowhere.
            "-w".into(),
        ];
        args.extend(s.basebackup.iter().map(|o| o.to_arg().into()));
        Invocation {
            program: self.program("pg_basebackup")?,
            args,
            env: vec![("PGPASSFILE", s.pgpass.clone().into())],
            subject: dir,
            // Copying a large cluster takes as long as it takes; op_timeout bounds waits
            // for PostgreSQL, not data transfer.
            timeout: std::time::Duration::from_secs(24 * 3600),
        }
        .run(&owner)
        .await
        .with_context(|| {
            format!(
                "cloning from {} ({}:{})",
                source.member, source.host, source.port
            )
        })?;
        // The copy carries the source's managed files (its port, its name): make them ours,
        // and make a plain start come up as a replica of the source.
        self.write_managed(Role::Replica(Some(source))).await
    }

    pub async fn reinit(&self, source: &Upstream) -> anyhow::Result<()> {
        if self.postmaster_pid().await?.is_some() {
            // The data is being thrown away: no need for a clean shutdown.
            self.stop(StopMode::Immediate).await?;
        }
        // Removing a large data directory takes as long as it takes (like the copy).
        self.on_disk(
            "emptying the data directory before re-cloning",
            CLEAR_WITHIN,
            |pg| {
                clear_dir(pg.data_dir()).with_context(|| {
                    format!("emptying {} before re-cloning", pg.data_dir().display())
                })
            },
        )
        .await?;
        self.clone_from(source).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_dir_keeps_the_dir() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::write(t.path().join("a/b/c"), "x").unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("link")).unwrap();
        clear_dir(t.path()).unwrap();
        assert!(t.path().is_dir());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
        assert!(Path::new("/etc").is_dir());
        clear_dir(&t.path().join("missing")).unwrap();
    }
}
