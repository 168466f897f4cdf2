//! Bringing a stopped former primary onto the new leader's timeline with pg_rewind.

use anyhow::{bail, Context};
use pgkeel_core::Upstream;

use crate::conf::Role;
use crate::managed::remove_if_exists;
use crate::run_as::Invocation;
use crate::Pg;

/// Control-file states pg_rewind accepts as a clean shutdown.
fn cleanly_shut_down(state: &str) -> bool {
    matches!(state, "shut down" | "shut down in recovery")
}

impl Pg {
    pub async fn rewind(&self, source: &Upstream) -> anyhow::Result<()> {
        let s = self.settings();
        let dir = self.data_dir();
        if let Some(pid) = self.postmaster_pid().await? {
            bail!(
                "cannot rewind {}: PostgreSQL is running (pid {pid})",
                dir.display()
            );
        }
        let state = self.stopped_view().await?.cluster_state;
        if !cleanly_shut_down(&state) {
            self.ensure_clean_shutdown(&state).await?;
        }
        self.on_disk_op("writing the pgpass file", |pg| pg.write_pgpass())
            .await?;
        // The rewind user (else the superuser) with its TLS options, to the primary only
        // (Patroni adds target_session_attrs too).
        let mut pairs = crate::conf::remote_pairs(source, &s.rewind);
        pairs.extend([
            ("dbname", "postgres".to_string()),
            ("connect_timeout", "5".to_string()),
            ("target_session_attrs", "read-write".to_string()),
        ]);
        let conninfo = crate::conf::conninfo(&pairs);
        let result = Invocation {
            program: self.program("pg_rewind")?,
            args: vec![
                format!("--target-pgdata={}", dir.display()).into(),
                format!("--source-server={conninfo}").into(),
                // pgkeel did the crash recovery itself, with settings that cannot archive
                // or listen; pg_rewind's own would use the target's full config.
                "--no-ensure-shutdown".into(),
            ],
            env: vec![
                ("PGPASSFILE", s.pgpass.clone().into()),
                // Its messages are classified (`RewindFailure::classify`): untranslated.
                ("LC_ALL", "C".into()),
            ],
            subject: dir,
            timeout: std::time::Duration::from_secs(24 * 3600),
        }
        .run(&self.owner()?)
        .await
        .with_context(|| {
            format!(
                "rewinding from {} ({}:{})",
                source.member, source.host, source.port
            )
        });
        // pg_rewind copied the source's config files over ours (even when it failed part
        // way). Whatever happened, this node must not come back as a primary on its own:
        // the managed files say replica of the source.
        self.write_managed(Role::Replica(Some(source))).await?;
        result.map(|_| ())
    }

    /// Runs crash recovery in single-user mode so that pg_rewind accepts the directory
    /// (Patroni's `ensure_clean_shutdown`). Skipped with a `backup_label`: recovery from a
    /// backup needs its WAL source, which single-user mode does not have.
    async fn ensure_clean_shutdown(&self, state: &str) -> anyhow::Result<()> {
        let dir = self.data_dir();
        let state_now = state.to_owned();
        self.on_disk_op("preparing crash recovery", move |pg| {
            let dir = pg.data_dir();
            if dir.join("backup_label").exists() {
                bail!(
                    "cannot rewind {}: it was not shut down cleanly ({state_now}) and has a backup_label",
                    dir.display()
                );
            }
            // Single-user mode refuses to run as a standby.
            remove_if_exists(&pg.standby_signal_path())?;
            remove_if_exists(&dir.join("recovery.signal"))
        })
        .await?;
        tracing::info!(data_dir = %dir.display(), state, "crash recovery in single-user mode before pg_rewind");
        let args: Vec<std::ffi::OsString> = [
            "--single",
            "-D",
            &dir.display().to_string(),
            // Recovery must not archive or restore anything, nor wait for replicas.
            "-c",
            "archive_mode=off",
            "-c",
            "archive_command=",
            "-c",
            "restore_command=",
            "-c",
            "synchronous_standby_names=",
            "-c",
            "hot_standby=off",
            "template1",
        ]
        .iter()
        .map(Into::into)
        .collect();
        Invocation {
            program: self.program("postgres")?,
            args,
            env: vec![],
            subject: dir,
            timeout: self
                .settings()
                .op_timeout
                .max(std::time::Duration::from_secs(300)),
        }
        .run(&self.owner()?)
        .await
        .context("single-user crash recovery")?;
        let after = self.stopped_view().await?.cluster_state;
        if !cleanly_shut_down(&after) {
            bail!(
                "after single-user crash recovery {} is still {after:?}",
                dir.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_states() {
        assert!(cleanly_shut_down("shut down"));
        assert!(cleanly_shut_down("shut down in recovery"));
        assert!(!cleanly_shut_down("in production"));
        assert!(!cleanly_shut_down("in archive recovery"));
    }
}
