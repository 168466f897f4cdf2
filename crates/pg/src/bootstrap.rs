//! A new cluster, as Patroni's `Bootstrap` makes one: initdb or a custom method's command
//! (a restore, started in the recovery its `recovery_conf` asks for, with trust for the
//! agent until its passwords are set), then post_bootstrap once it runs as a primary (the
//! superuser's password, the `post_bootstrap` script, the replication role, and pgkeel's own
//! pg_hba and settings instead of the restore's); and the abandon of a failed attempt
//! (`cancel_initialization`: the data directory renamed to `<data_dir>.failed`).

use std::fs;

use anyhow::{bail, Context};
use pgkeel_core::action::{BootstrapPlan, CustomBootstrapPlan, RestoreRecovery};
use pgkeel_core::StopMode;

use crate::conf::{OwnedRole, Restore, Role};
use crate::lifecycle::{quote_ident, quote_literal};
use crate::managed::remove_if_exists;
use crate::{script, Pg};

impl Pg {
    /// Makes the data directory as `plan` says and starts the server: a primary after
    /// initdb; after a custom method, in the recovery its settings ask for (or a primary
    /// without any). Nothing is cleaned up on failure: the abandon renames what is left.
    pub async fn bootstrap(&self, plan: &BootstrapPlan) -> anyhow::Result<()> {
        match plan {
            BootstrapPlan::Initdb => {
                let owner = self
                    .prepare_empty_data_dir("preparing the data directory for initdb", |d| {
                        format!(
                            "cannot bootstrap: data directory {} is not empty",
                            d.display()
                        )
                    })
                    .await?;
                self.initdb(&owner).await?;
                self.start(Role::Primary).await
            }
            BootstrapPlan::Custom(p) => self.custom_bootstrap(p).await,
        }
    }

    async fn custom_bootstrap(&self, p: &CustomBootstrapPlan) -> anyhow::Result<()> {
        let owner = self
            .on_disk_op(
                "preparing the data directory for a custom bootstrap",
                |pg| {
                    if !pg.data_dir_empty() {
                        bail!(
                            "cannot bootstrap: data directory {} is not empty",
                            pg.data_dir().display()
                        );
                    }
                    let owner = pg.owner()?;
                    script::make_room(pg.data_dir(), &owner)?;
                    Ok(owner)
                },
            )
            .await?;
        tracing::info!(
            "Running custom bootstrap script: {}",
            script::shown(&p.argv[..p.command_len.min(p.argv.len())])
        );
        let label = format!("custom bootstrap script ({})", p.name);
        let ran = script::run(&label, &p.argv, &[], &owner).await;
        if !ran.success() {
            return Err(script::failure(&label, &p.argv, &ran));
        }
        let restore = Restore {
            recovery: p.recovery.clone(),
            hot_standby_off: p.hot_standby_off,
        };
        let recovery = p.recovery.clone();
        self.on_disk_op("preparing the restored data directory", move |pg| {
            let dir = pg.data_dir();
            if !dir.join("global/pg_control").is_file() {
                bail!(
                    "the custom bootstrap script left no data directory (no global/pg_control) in {}",
                    dir.display()
                );
            }
            // Patroni's `_post_restore`: a promote trigger left in the backup would promote
            // the server at once.
            remove_if_exists(&dir.join("promote"))?;
            let owner = pg.owner()?;
            let (standby, recovery_signal) = (dir.join("standby.signal"), dir.join("recovery.signal"));
            if recovery != RestoreRecovery::KeepExisting {
                sanitize_auto_conf(dir)?;
            }
            match &recovery {
                RestoreRecovery::None => {
                    remove_if_exists(&standby)?;
                    remove_if_exists(&recovery_signal)?;
                }
                RestoreRecovery::KeepExisting => {}
                RestoreRecovery::Settings { standby: true, .. } => {
                    owner.write_file(&standby, "", 0o600)?;
                }
                RestoreRecovery::Settings { standby: false, .. } => {
                    remove_if_exists(&standby)?;
                    owner.write_file(&recovery_signal, "", 0o600)?;
                }
            }
            Ok(())
        })
        .await?;
        self.start(Role::Restoring(&restore)).await
    }

    /// The new cluster runs as a primary: the superuser's password, `script` (the
    /// `post_bootstrap` command with its connection string), the replication role; after a
    /// custom bootstrap, pgkeel's own pg_hba and settings, applied by a restart when the
    /// restore ran without hot standby (a setting a reload cannot change), else a reload.
    pub async fn post_bootstrap(&self, script: Option<&[String]>) -> anyhow::Result<()> {
        let s = self.settings();
        if let Some(pw) = &s.superuser.password {
            self.create_or_update_role(&s.superuser.username, Some(pw), "SUPERUSER")
                .await?;
        }
        if let Some(argv) = script {
            self.on_disk_op("writing the pgpass file", |pg| pg.write_pgpass())
                .await?;
            let owner = self.owner()?;
            let env = [
                script::pgpass_env(&s.pgpass),
                (
                    "PGOPTIONS",
                    "-c synchronous_commit=local -c statement_timeout=0".into(),
                ),
            ];
            let ran = script::run("post_init script", argv, &env, &owner).await;
            // Patroni names the command as configured, without the connection string.
            let cmd = script::shown(&argv[..argv.len().saturating_sub(1)]);
            match &ran {
                script::Ran::NotStarted(_) => {
                    tracing::error!("post_init script {cmd} failed");
                    return Err(script::failure("post_init script", argv, &ran));
                }
                script::Ran::Exited(st) if !st.success() => {
                    tracing::error!(
                        "post_init script {cmd} returned non-zero code {}",
                        ran.code()
                    );
                    return Err(script::failure("post_init script", argv, &ran));
                }
                script::Ran::Exited(_) => {}
            }
        }
        self.create_or_update_role(
            &s.replication.username,
            s.replication.password.as_deref(),
            "REPLICATION",
        )
        .await?;
        // Patroni's rewind role, when it is not the superuser.
        if s.rewind.username != s.superuser.username {
            let client = self.client().await?;
            self.create_rewind_role(&client).await?;
        }
        let restored = match &*self.last_role.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(OwnedRole::Restoring(r)) => Some(r.clone()),
            _ => None,
        };
        if let Some(r) = restored {
            // At this point there is no recovery left to configure (Patroni's
            // `remove_recovery_conf`); the managed files become a primary's.
            self.on_disk_op("removing the restore's recovery settings", |pg| {
                remove_if_exists(&pg.data_dir().join("recovery.signal"))?;
                remove_if_exists(&pg.data_dir().join("standby.signal"))?;
                sanitize_auto_conf(pg.data_dir())
            })
            .await?;
            if r.hot_standby_off {
                tracing::info!(
                    "restarting the restored primary: hot_standby was off during its recovery"
                );
                self.stop(StopMode::Fast).await?;
                self.start(Role::Primary).await?;
            } else {
                self.write_managed(Role::Primary).await?;
                self.reload().await?;
            }
        }
        Ok(())
    }

    /// Patroni's `create_or_update_role`, with the statement kept out of the server log
    /// (it holds the password).
    async fn create_or_update_role(
        &self,
        name: &str,
        password: Option<&str>,
        option: &str,
    ) -> anyhow::Result<()> {
        let client = self.client().await?;
        let mut options = format!("{option} LOGIN");
        if let Some(pw) = password {
            options.push_str(&format!(" PASSWORD {}", quote_literal(pw)));
        }
        let sql = format!(
            "SET log_statement TO none;\n\
             SET log_min_duration_statement TO -1;\n\
             SET log_min_error_statement TO 'log';\n\
             DO $$\n\
             BEGIN\n\
             \x20   SET local synchronous_commit = 'local';\n\
             \x20   PERFORM * FROM pg_catalog.pg_authid WHERE rolname = {lit};\n\
             \x20   IF FOUND THEN\n\
             \x20       ALTER ROLE {id} WITH {options};\n\
             \x20   ELSE\n\
             \x20       CREATE ROLE {id} WITH {options};\n\
             \x20   END IF;\n\
             END;$$;\n\
             RESET log_min_error_statement;\n\
             RESET log_min_duration_statement;\n\
             RESET log_statement;",
            lit = quote_literal(name),
            id = quote_ident(name),
        );
        client
            .batch_execute(&sql)
            .await
            .with_context(|| format!("creating or updating the role {name:?}"))
    }

    /// After a failed bootstrap (Patroni's `cancel_initialization`): stop the server at
    /// once and rename the data directory to `<data_dir>.failed` (replacing an older one),
    /// with what its `pg_wal` and tablespace links lead to, so that it can be looked at.
    pub async fn abandon_bootstrap(&self) -> anyhow::Result<()> {
        if let Err(e) = self.stop(StopMode::Immediate).await {
            tracing::warn!("stopping PostgreSQL after the failed bootstrap: {e:#}");
        }
        self.on_disk_op("renaming the data directory", |pg| {
            pg.move_data_directory_now()
        })
        .await
    }

    fn move_data_directory_now(&self) -> anyhow::Result<()> {
        let dir = self.data_dir();
        if !dir.is_dir() {
            return Ok(());
        }
        let failed = |p: &std::path::Path| {
            let mut name = p.as_os_str().to_owned();
            name.push(".failed");
            std::path::PathBuf::from(name)
        };
        let replace = |from: &std::path::Path, to: &std::path::Path| -> anyhow::Result<()> {
            if fs::symlink_metadata(to).is_ok() {
                fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
            }
            fs::rename(from, to)
                .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
        };
        for (link, target) in crate::clone::linked_dirs(dir) {
            let to = failed(&target);
            tracing::info!(
                "renaming linked directory and updating symlink: {}",
                target.display()
            );
            if let Err(e) = replace(&target, &to).and_then(|()| {
                fs::remove_file(&link)?;
                std::os::unix::fs::symlink(&to, &link)?;
                Ok(())
            }) {
                tracing::error!("Could not rename {}: {e:#}", target.display());
            }
        }
        let to = failed(dir);
        tracing::info!("renaming data directory to {}", to.display());
        replace(dir, &to)
            .with_context(|| format!("Could not rename data directory {}", dir.display()))
    }
}

/// Recovery settings (Patroni's list) that a backup tool may have left in
/// `postgresql.auto.conf`, where they would override pgkeel's own.
const RECOVERY_PARAMETERS: &[&str] = &[
    "archive_cleanup_command",
    "pause_at_recovery_target",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "standby_mode",
    "trigger_file",
];

/// Patroni's `_sanitize_auto_conf`: the recovery settings removed from
/// `postgresql.auto.conf` (the rest of the file stays as it is).
fn sanitize_auto_conf(dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("postgresql.auto.conf");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let is_recovery = |line: &str| {
        let name: String = line
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
            .collect();
        let rest = line.trim_start()[name.len()..].trim_start();
        rest.starts_with('=') && RECOVERY_PARAMETERS.contains(&name.to_lowercase().as_str())
    };
    if !text.lines().any(is_recovery) {
        return Ok(());
    }
    let kept: String = text
        .lines()
        .filter(|l| !is_recovery(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(&path).map_or(0o600, |m| m.permissions().mode() & 0o777)
    };
    let owner = crate::run_as::Owner::resolve(dir)?;
    owner.write_file(&path, &kept, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_settings_leave_postgresql_auto_conf() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("postgresql.auto.conf");
        fs::write(
            &path,
            "# Do not edit this file manually!\nwork_mem = '8MB'\nrestore_command = 'pgbackrest archive-get %f \"%p\"'\nRecovery_Target_Time='x'\n",
        )
        .unwrap();
        sanitize_auto_conf(t.path()).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# Do not edit this file manually!\nwork_mem = '8MB'\n"
        );
        sanitize_auto_conf(&t.path().join("missing")).unwrap();
    }
}
