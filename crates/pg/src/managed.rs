//! Writing the files pgkeel owns in and around the data directory.

use std::fs;

use anyhow::Context;

use crate::conf::{self, Role, BASE_CONF, HEADER};
use crate::hba;
use crate::Pg;

impl Pg {
    /// [`Pg::write_managed_now`] off the runtime, bounded like the operation it is part of.
    pub(crate) async fn write_managed(&self, role: Role<'_>) -> anyhow::Result<()> {
        let role = conf::OwnedRole::of(&role);
        self.on_disk_op("writing the managed configuration files", move |pg| {
            pg.write_managed_now(role.as_role())
        })
        .await
    }

    /// Writes `postgresql.conf`, `pg_hba.conf`, the pgpass file and the signal file for
    /// `role`. Safe to repeat; the server picks the files up on start or reload. Blocking:
    /// callers on the runtime use [`Pg::write_managed`].
    pub(crate) fn write_managed_now(&self, role: Role<'_>) -> anyhow::Result<()> {
        let s = self.settings();
        let owner = self.owner()?;
        let dir = self.data_dir();
        let conf_path = dir.join("postgresql.conf");
        let base_path = dir.join(BASE_CONF);
        // The first time (after initdb, or after cloning a node not managed by pgkeel) the
        // existing postgresql.conf becomes the base the managed file includes. A clone of a
        // pgkeel node already has a base; its managed file is simply replaced.
        if !base_path.exists() {
            let existing = fs::read_to_string(&conf_path).unwrap_or_default();
            if !existing.is_empty() && !existing.starts_with(HEADER) {
                fs::rename(&conf_path, &base_path)
                    .with_context(|| format!("renaming {} to {BASE_CONF}", conf_path.display()))?;
            } else {
                owner.write_file(
                    &base_path,
                    "# settings of this cluster not managed by pgkeel\n",
                    0o600,
                )?;
            }
        }
        owner.write_file(&conf_path, &conf::render_postgresql_conf(&s, role), 0o600)?;
        let hba = match role {
            Role::Restoring(_) => hba::render_restore_pg_hba(&s),
            Role::Primary | Role::Replica(_) => hba::render_pg_hba(&s),
        };
        owner.write_file(&dir.join("pg_hba.conf"), &hba, 0o600)?;
        *self.last_role.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(conf::OwnedRole::of(&role));
        // hba's ident_file points here; PostgreSQL fails to start without it.
        let ident = dir.join("pg_ident.conf");
        if !ident.exists() {
            owner.write_file(&ident, "# MAPNAME SYSTEM-USERNAME PG-USERNAME\n", 0o600)?;
        }
        self.write_pgpass()?;
        let signal = self.standby_signal_path();
        match role {
            Role::Replica(_) => {
                if !signal.exists() {
                    owner.write_file(&signal, "", 0o600)?;
                }
            }
            Role::Primary => remove_if_exists(&signal)?,
            // The signal files of a restore are set once, by the bootstrap.
            Role::Restoring(_) => {}
        }
        Ok(())
    }

    /// Writes the managed files again for the role they were last written for (after
    /// [`Pg::set_config`]) and reloads a running server. Parameters that need a restart
    /// then show as pending in `pg_settings`.
    pub async fn apply(&self) -> anyhow::Result<()> {
        let role = self
            .last_role
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(role) = role else {
            return Ok(()); // never written by this agent: the next start writes them
        };
        // A configuration change on a loaded server: bounded like the loop's other reads.
        let running = self
            .on_disk_quick("rewriting the managed configuration files", move |pg| {
                pg.write_managed_now(role.as_role())?;
                Ok(crate::control::live_postmaster(pg.data_dir()).is_some())
            })
            .await?;
        if running {
            self.reload().await?;
        }
        Ok(())
    }

    /// The pgpass file (mode 0600, owned by the owner: libpq ignores it otherwise).
    pub(crate) fn write_pgpass(&self) -> anyhow::Result<()> {
        let s = self.settings();
        let owner = self.owner()?;
        if let Some(parent) = s.pgpass.parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                owner.create_dir(parent)?;
            }
        }
        owner.write_file(&s.pgpass, &hba::render_pgpass(&s), 0o600)
    }
}

pub(crate) fn remove_if_exists(path: &std::path::Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
