//! initdb, start, stop, reload and promote (the bootstrap that uses them is in `bootstrap`).

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use pgkeel_core::dcs_values::HistoryEntry;
use pgkeel_core::{StopMode, Upstream};
use tokio::io::AsyncReadExt;

use crate::conf::Role;
use crate::run_as::{tail, Invocation};
use crate::status::ConnectFailure;
use crate::Pg;

/// How often waits poll the server.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// An SQL identifier, double-quoted.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An SQL string literal in escape syntax, so it means the same whatever
/// `standard_conforming_strings` says.
pub(crate) fn quote_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Pg {
    fn secs(&self) -> String {
        self.settings().op_timeout.as_secs().max(1).to_string()
    }

    /// A `pg_ctl` invocation on the data directory, with a little more time than pg_ctl's
    /// own `-t` so that pg_ctl reports the timeout itself.
    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<Invocation<'_>> {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        all.push("-D".into());
        all.push(self.data_dir().into());
        Ok(Invocation {
            program: self.program("pg_ctl")?,
            args: all,
            env: vec![],
            subject: self.data_dir(),
            timeout: self.settings().op_timeout + Duration::from_secs(5),
        })
    }

    pub(crate) async fn initdb(&self, owner: &crate::run_as::Owner) -> anyhow::Result<()> {
        let s = self.settings();
        let mut args: Vec<std::ffi::OsString> = vec![
            "-D".into(),
            s.data_dir.clone().into(),
            format!("--username={}", s.superuser.username).into(),
        ];
        // initdb reads the password from a file; it lives only as long as initdb runs.
        let pwfile = match &s.superuser.password {
            Some(pw) => {
                let mut f = tempfile::Builder::new()
                    .prefix("pgkeel-initdb-pw")
                    .tempfile()
                    .context("creating initdb's password file")?;
                writeln!(f, "{pw}").context("writing initdb's password file")?;
                owner.chown(f.path())?;
                args.push(format!("--pwfile={}", f.path().display()).into());
                Some(f)
            }
            None => None,
        };
        let user_sets_auth = s.initdb.iter().any(|o| {
            let name = match o {
                pgkeel_core::config::InitdbOption::Flag(f) => f,
                pgkeel_core::config::InitdbOption::Value(k, _) => k,
            };
            name.starts_with("auth") || name == "A"
        });
        if !user_sets_auth {
            // pg_hba.conf is rewritten right after; these only matter until then.
            args.push("--auth-local=peer".into());
            let host = if pwfile.is_some() {
                "scram-sha-256"
            } else {
                "trust"
            };
            args.push(format!("--auth-host={host}").into());
        }
        args.extend(s.initdb.iter().map(|o| o.to_arg().into()));
        Invocation {
            program: self.program("initdb")?,
            args,
            env: vec![],
            subject: &s.data_dir,
            timeout: s.op_timeout.max(Duration::from_secs(120)),
        }
        .run(owner)
        .await?;
        drop(pwfile);
        Ok(())
    }

    /// A dedicated pg_rewind role (`authentication.rewind`), with what pg_rewind needs and
    /// no more: login, and the four functions it reads the source with (Patroni's grants).
    pub(crate) async fn create_rewind_role(
        &self,
        client: &tokio_postgres::Client,
    ) -> anyhow::Result<()> {
        let s = self.settings();
        let user = &s.rewind.username;
        let id = quote_ident(user);
        let mut sql = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN \
             CREATE ROLE {id}; END IF; END $$;\n\
             ALTER ROLE {id} WITH LOGIN",
            lit = quote_literal(user),
        );
        if let Some(pw) = &s.rewind.password {
            sql.push_str(&format!(" PASSWORD {}", quote_literal(pw)));
        }
        sql.push_str(";\n");
        for f in [
            "pg_ls_dir(text, boolean, boolean)",
            "pg_stat_file(text, boolean)",
            "pg_read_binary_file(text)",
            "pg_read_binary_file(text, bigint, bigint, boolean)",
        ] {
            sql.push_str(&format!(
                "GRANT EXECUTE ON FUNCTION pg_catalog.{f} TO {id};\n"
            ));
        }
        client
            .batch_execute(&sql)
            .await
            .with_context(|| format!("creating the pg_rewind role {user:?}"))
    }

    pub async fn start_primary(&self) -> anyhow::Result<()> {
        self.start(Role::Primary).await
    }

    pub async fn start_replica(&self, upstream: Option<&Upstream>) -> anyhow::Result<()> {
        self.start(Role::Replica(upstream)).await
    }

    /// Writes the managed files for `role` and starts the server with `pg_ctl start -w`.
    /// A replica (or a restored backup) also counts as started once it is in recovery but not consistent yet: a
    /// rewound node cannot become consistent before it streams from its upstream, which
    /// may be down.
    pub(crate) async fn start(&self, role: Role<'_>) -> anyhow::Result<()> {
        let dir = self.data_dir();
        if let Some(pid) = self.postmaster_pid().await? {
            bail!(
                "PostgreSQL in {} is already running (pid {pid})",
                dir.display()
            );
        }
        self.write_managed(role).await?;
        let owner = self.owner()?;
        let log = self.server_log_path();
        let secs = self.secs();
        let log_arg = log.display().to_string();
        let inv = self.pg_ctl(&["start", "-w", "-t", &secs, "-l", &log_arg])?;
        let mut cmd = inv.command(&owner);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running pg_ctl start for {}", dir.display()))?;
        let mut stderr = child.stderr.take();
        let stderr_text = tokio::spawn(async move {
            let mut buf = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut buf).await;
            }
            buf
        });
        // A restored backup in recovery counts as started as soon as it answers, too: its
        // recovery may replay for a long time before it accepts connections.
        let replica = matches!(role, Role::Replica(_) | Role::Restoring(_));
        let status = tokio::select! {
            status = child.wait() => status.with_context(|| format!("waiting for pg_ctl start for {}", dir.display()))?,
            () = self.wait_recovering(), if replica => {
                tracing::info!(data_dir = %dir.display(), "replica started; waiting for WAL to become consistent");
                self.remember_postmaster().await;
                return Ok(());
            }
            () = tokio::time::sleep(inv.timeout) => bail!("pg_ctl start for {} did not finish within {:?}", dir.display(), inv.timeout),
        };
        if status.success() {
            self.remember_postmaster().await;
            return Ok(());
        }
        let pg_ctl_said = stderr_text.await.unwrap_or_default();
        let log_read = log.clone();
        let server_said = self
            .on_disk_quick("reading the server log", move |_| {
                Ok(std::fs::read_to_string(&log_read).unwrap_or_default())
            })
            .await
            .unwrap_or_else(|e| format!("({e:#})"));
        let err = anyhow!(
            "pg_ctl start for {} failed ({status}): {}\nserver log {}:\n{}",
            dir.display(),
            tail(&pg_ctl_said),
            log.display(),
            tail(&server_said)
        );
        Err(match self.postmaster_pid().await {
            Ok(None) => err.context(PostmasterExited),
            _ => err,
        })
    }

    /// Returns once the server accepts connections or answers that it does not yet (in
    /// recovery, waiting for a consistent state); never returns otherwise (the caller races
    /// it against pg_ctl, which reports a postmaster that died).
    async fn wait_recovering(&self) {
        loop {
            if matches!(self.postmaster_pid().await, Ok(Some(_))) {
                // Any answer counts: the texts that tell "starting up" from "not consistent
                // yet" are translated (lc_messages), and a startup failure past this point
                // is one the agent observes later anyway (the postmaster exits).
                match self.connect(Duration::from_secs(1)).await {
                    Ok(_) | Err(ConnectFailure::NotYetAccepting { answered: true }) => return,
                    Err(_) => {}
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn stop(&self, mode: StopMode) -> anyhow::Result<()> {
        if self.postmaster_pid().await?.is_none() {
            return Ok(());
        }
        let m = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let secs = self.secs();
        let result = self
            .pg_ctl(&["stop", "-m", m, "-w", "-t", &secs])?
            .run(&self.owner()?)
            .await;
        match result {
            // It may have stopped on its own meanwhile.
            Err(_) if matches!(self.postmaster_pid().await, Ok(None)) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Makes the server re-read its configuration files (SIGHUP through `pg_ctl reload`).
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["reload"])?.run(&self.owner()?).await?;
        Ok(())
    }

    pub async fn follow(&self, upstream: &Upstream) -> anyhow::Result<()> {
        self.write_managed(Role::Replica(Some(upstream))).await?;
        // PostgreSQL >= 13 restarts the WAL receiver when primary_conninfo or
        // primary_slot_name change on SIGHUP.
        self.pg_ctl(&["reload"])?.run(&self.owner()?).await?;
        Ok(())
    }

    /// Promotes a standby. Timelines up to `newest_known` (the newest any member is known to
    /// have used) get a history file here first (from `cluster_history`, the cluster's
    /// `/history`), so PostgreSQL, which numbers the new timeline one past the newest
    /// history file it finds, never reuses a timeline another member already created (see
    /// `write_known_history`).
    pub async fn promote(
        &self,
        newest_known: u32,
        cluster_history: &[HistoryEntry],
    ) -> anyhow::Result<()> {
        let s = self.settings();
        let deadline = tokio::time::Instant::now() + s.op_timeout;
        let client = self.client().await.context("promote")?;
        if in_recovery(&client).await? {
            let history = cluster_history.to_vec();
            self.on_disk_op("writing the cluster's history files", move |pg| {
                pg.write_known_history(newest_known, &history)
            })
            .await?;
            let secs = i32::try_from(s.op_timeout.as_secs().max(1)).unwrap_or(60);
            let promoted = tokio::time::timeout(
                s.op_timeout + Duration::from_secs(5),
                client.query_one("SELECT pg_promote(true, $1)", &[&secs]),
            )
            .await
            .map_err(|_| anyhow!("pg_promote did not return within {:?}", s.op_timeout))?
            .context("pg_promote")?;
            if !promoted.try_get::<_, bool>(0)? {
                // pg_promote(wait) gives up after its own timeout; keep waiting for the
                // remainder of ours before calling it a failure.
                while in_recovery(&client).await? {
                    if tokio::time::Instant::now() > deadline {
                        bail!(
                            "{} still in recovery {:?} after pg_promote",
                            self.data_dir().display(),
                            s.op_timeout
                        );
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        // Former primaries are rewound against this server: pg_rewind reads the timeline
        // from the control file, which the end-of-recovery checkpoint may not have updated.
        client
            .batch_execute("CHECKPOINT")
            .await
            .context("CHECKPOINT after promote")?;
        // Keep the files consistent with what runs now; nothing to reload (the recovery
        // settings are ignored without standby.signal).
        self.write_managed(Role::Primary).await?;
        Ok(())
    }
}

impl Pg {
    /// A standby left behind on an older timeline (it never received the switch) may be
    /// the best candidate left. Promoted as it is, it would create the timeline the
    /// cluster already has, under the same number but with other contents, and a member
    /// still on the first one would follow it without a rewind. PostgreSQL picks one past
    /// the newest `NNNNNNNN.history` in `pg_wal`, probing upwards from its own timeline;
    /// writing the missing files of the cluster's timelines makes it pick a new number.
    fn write_known_history(
        &self,
        newest: u32,
        cluster_history: &[HistoryEntry],
    ) -> anyhow::Result<()> {
        if newest < 2 {
            return Ok(());
        }
        let owner = self.owner()?;
        let wal = self.data_dir().join("pg_wal");
        for tli in 2..=newest {
            let path = wal.join(format!("{tli:08X}.history"));
            if path.exists() {
                continue;
            }
            let text: String = cluster_history
                .iter()
                .filter(|e| e.timeline < tli)
                .map(|e| {
                    format!(
                        "{}\t{}\t{}\n",
                        e.timeline,
                        pgkeel_core::Lsn(e.lsn),
                        e.reason
                    )
                })
                .collect();
            owner
                .write_file(&path, &text, 0o600)
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!("wrote {} from /history before promoting", path.display());
        }
        Ok(())
    }
}

async fn in_recovery(client: &tokio_postgres::Client) -> anyhow::Result<bool> {
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .context("SELECT pg_is_in_recovery()")?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's\\"), "E'it\\'s\\\\'");
    }
}

/// A start failed and left no postmaster: PostgreSQL cannot start as it is, trying again
/// would fail the same way (the caller branches on it with `downcast_ref`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostmasterExited;

impl std::fmt::Display for PostmasterExited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgreSQL exited while starting")
    }
}

impl std::error::Error for PostmasterExited {}
