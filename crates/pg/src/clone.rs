//! Making a replica's data directory with the replica creation methods, as Patroni's
//! `Bootstrap.create_replica` does: each in order until one succeeds; pg_basebackup (two
//! attempts, 5 s apart) or an operator's command; the data directory emptied before each
//! (unless the method keeps the data) and after a failure. Patroni's log messages.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pgkeel_core::action::{CloneMethod, ClonePlan};
use pgkeel_core::StopMode;

use crate::conf::Role;
use crate::run_as::Invocation;
use crate::{script, Pg};

/// Bound on emptying a data directory before a re-clone.
const CLEAR_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// Patroni's basebackup: two attempts, 5 s apart.
const BASEBACKUP_ATTEMPTS: usize = 2;
const BASEBACKUP_PAUSE: Duration = Duration::from_secs(5);

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

/// Whether `dir` is a mount point (another device than its parent's): it can be emptied,
/// not removed or renamed.
pub(crate) fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    match (fs::metadata(dir), fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Where the data directory's symlinks lead: `pg_wal` and each tablespace (Patroni
/// removes and renames their targets with the data directory).
pub(crate) fn linked_dirs(dir: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let mut links = Vec::new();
    let mut consider = |link: std::path::PathBuf| {
        if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            if let Ok(target) = fs::canonicalize(&link) {
                links.push((link, target));
            }
        }
    };
    consider(dir.join("pg_wal"));
    if let Ok(entries) = fs::read_dir(dir.join("pg_tblspc")) {
        for e in entries.flatten() {
            consider(e.path());
        }
    }
    links
}

impl Pg {
    /// Patroni's `remove_data_directory`: the data directory goes (emptied instead when it
    /// is a mount point), and what its `pg_wal` and tablespace links lead to is emptied.
    pub(crate) fn remove_data_directory_now(&self) -> anyhow::Result<()> {
        let dir = self.data_dir();
        tracing::info!("Removing data directory: {}", dir.display());
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        if !meta.is_dir() {
            return fs::remove_file(dir).with_context(|| format!("removing {}", dir.display()));
        }
        for (_, target) in linked_dirs(dir) {
            tracing::info!("Removing WAL or tablespace directory: {}", target.display());
            clear_dir(&target)?;
        }
        if is_mount_point(dir) {
            clear_dir(dir)
        } else {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
        }
    }

    async fn remove_data_directory(&self) -> anyhow::Result<()> {
        self.on_disk("removing the data directory", CLEAR_WITHIN, |pg| {
            pg.remove_data_directory_now()
        })
        .await
    }

    /// The data directory holds nothing (it may be missing).
    async fn is_empty(&self) -> anyhow::Result<bool> {
        self.on_disk_op(
            "looking at the data directory",
            |pg| Ok(pg.data_dir_empty()),
        )
        .await
    }

    /// Makes the data directory with `plan`'s methods, in order, until one succeeds; when
    /// all fail it is removed and the error says so (Patroni's `clone`: the next loop tries
    /// them all again). On success the managed files make a plain start a replica of the
    /// source.
    pub async fn create_replica(&self, plan: &ClonePlan) -> anyhow::Result<()> {
        if plan.methods.is_empty() {
            bail!(
                "failed to bootstrap {}: no replica creation method can run",
                plan.what
            );
        }
        let mut failures = Vec::new();
        let mut done = None;
        for method in &plan.methods {
            let result = match method {
                CloneMethod::Basebackup { connstring } => self.basebackup(connstring).await,
                CloneMethod::Command {
                    name,
                    argv,
                    command_len,
                    keep_data,
                } => {
                    self.replica_command(plan, name, argv, *command_len, *keep_data)
                        .await
                }
            };
            match result {
                Ok(()) => {
                    tracing::info!("replica has been created using {}", method.name());
                    done = Some(method.name());
                    break;
                }
                Err(e) => failures.push(format!("{}: {e:#}", method.name())),
            }
        }
        if done.is_none() {
            tracing::error!("failed to bootstrap {}", plan.what);
            if let Err(e) = self.remove_data_directory().await {
                tracing::warn!("cannot remove the data directory: {e:#}");
            }
            bail!(
                "failed to bootstrap {}: every replica creation method failed ({})",
                plan.what,
                failures.join("; ")
            );
        }
        // Patroni's `_post_restore`: no promote trigger left behind by the copy.
        self.on_disk_op("removing a promote trigger file", |pg| {
            crate::managed::remove_if_exists(&pg.data_dir().join("promote"))
        })
        .await?;
        tracing::info!("bootstrapped {}", plan.what);
        // The copy carries the source's managed files (its port, its name): make them ours,
        // and make a plain start come up as a replica of the source.
        self.write_managed(Role::Replica(plan.source.as_ref()))
            .await
    }

    /// pg_basebackup into the (emptied) data directory, twice at most.
    async fn basebackup(&self, connstring: &str) -> anyhow::Result<()> {
        let mut last = None;
        for attempt in 0..BASEBACKUP_ATTEMPTS {
            if !self.is_empty().await? {
                self.remove_data_directory().await?;
            }
            let started = Instant::now();
            match self.pg_basebackup(connstring).await {
                Ok(()) => {
                    tracing::info!(
                        "pg_basebackup exited with code 0 after {:.2}s",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(
                        "Error when fetching backup with pg_basebackup (after {:.2}s): {e:#}",
                        started.elapsed().as_secs_f64()
                    );
                    last = Some(e);
                }
            }
            if attempt + 1 < BASEBACKUP_ATTEMPTS {
                tracing::warn!("Trying again in 5 seconds");
                tokio::time::sleep(BASEBACKUP_PAUSE).await;
            } else if !self.is_empty().await? {
                self.remove_data_directory().await?;
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pg_basebackup did not run")))
    }

    async fn pg_basebackup(&self, connstring: &str) -> anyhow::Result<()> {
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
            // The path as it is (a display() would mangle a name that is not UTF-8).
            "--pgdata".into(),
            dir.into(),
            "-X".into(),
            "stream".into(),
            format!("--dbname={connstring}").into(),
            // pgkeel's defaults, before the operator's options (which win): an immediate
            // checkpoint (a spread one makes a clone wait minutes), and never a prompt.
            "-c".into(),
            "fast".into(),
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
            timeout: Duration::from_secs(24 * 3600),
        }
        .run(&owner)
        .await?;
        Ok(())
    }

    /// A custom replica method: the data directory emptied first unless `keep_data`, and
    /// again after a failure.
    async fn replica_command(
        &self,
        plan: &ClonePlan,
        name: &str,
        argv: &[String],
        command_len: usize,
        keep_data: bool,
    ) -> anyhow::Result<()> {
        if !self.is_empty().await? {
            if keep_data {
                tracing::info!("Leaving data directory uncleaned");
            } else {
                self.remove_data_directory().await?;
            }
        }
        let has_source = plan.source.is_some();
        let owner = self
            .on_disk_op(
                "preparing the data directory for a replica method",
                move |pg| {
                    let owner = pg.owner()?;
                    script::make_room(pg.data_dir(), &owner)?;
                    if has_source {
                        pg.write_pgpass()?;
                    }
                    Ok(owner)
                },
            )
            .await?;
        // Patroni passes the pgpass file (with the replication user's password) when there
        // is a member to connect to.
        let env: Vec<_> = plan
            .source
            .as_ref()
            .map(|_| script::pgpass_env(&self.settings().pgpass))
            .into_iter()
            .collect();
        let label = format!("replica method {name}");
        let ran = script::run(&label, argv, &env, &owner).await;
        let made = ran.success()
            && self
                .on_disk_op("looking at the data directory", |pg| {
                    Ok(pg.data_dir().join("global/pg_control").is_file())
                })
                .await?;
        if made {
            return Ok(());
        }
        let err = if ran.success() {
            anyhow::anyhow!(
                "{} exited with code 0 but left no data directory (no global/pg_control) in {}",
                script::shown(argv),
                self.data_dir().display()
            )
        } else {
            script::failure(&label, argv, &ran)
        };
        tracing::error!(
            "Error creating replica using method {name}: {} exited with code={}",
            script::shown(&argv[..command_len.min(argv.len())]),
            ran.code()
        );
        if !keep_data && !self.is_empty().await? {
            self.remove_data_directory().await?;
        }
        Err(err)
    }

    /// Stops PostgreSQL (the data is thrown away: at once) and makes the data directory
    /// again with `plan` (Patroni's `reinitialize`: each method empties it as it needs).
    pub async fn reinit(&self, plan: &ClonePlan) -> anyhow::Result<()> {
        if self.postmaster_pid().await?.is_some() {
            self.stop(StopMode::Immediate).await?;
        }
        self.create_replica(plan).await
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

    #[test]
    fn removing_the_data_directory_empties_what_pg_wal_links_to() {
        let t = tempfile::tempdir().unwrap();
        let pg = Pg::new(crate::testing::sample_settings("n1", t.path(), 1));
        let data = t.path().join("n1-data");
        let wal = t.path().join("wal");
        fs::create_dir_all(data.join("base")).unwrap();
        fs::create_dir_all(&wal).unwrap();
        fs::write(wal.join("000000010000000000000001"), "x").unwrap();
        std::os::unix::fs::symlink(&wal, data.join("pg_wal")).unwrap();
        assert!(!is_mount_point(&data));
        pg.remove_data_directory_now().unwrap();
        assert!(!data.exists());
        assert!(wal.is_dir());
        assert_eq!(fs::read_dir(&wal).unwrap().count(), 0);
        pg.remove_data_directory_now().unwrap();
    }
}
