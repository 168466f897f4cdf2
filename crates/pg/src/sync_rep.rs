//! Synchronous replication on the primary: what `synchronous_standby_names` is and how far
//! each standby has flushed.

use anyhow::Context;
use pgkeel_core::sync::ReplicationRow;
use pgkeel_core::Lsn;

use crate::status::OBSERVE_TIMEOUT;
use crate::Pg;

/// One look at the primary's synchronous replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRepState {
    /// `synchronous_standby_names` as a new session sees it (the value after the last reload).
    pub ssn: String,
    /// `pg_current_wal_lsn()`, read after the setting.
    pub current: Lsn,
    pub rows: Vec<ReplicationRow>,
    /// pgkeel set the value (it is in `postgresql.auto.conf`).
    pub managed: bool,
    /// `synchronous_commit` as the configuration files set it (`on` when they do not).
    pub synchronous_commit: String,
}

const SSN: &str = "synchronous_standby_names";
const AUTO_CONF: &str = "postgresql.auto.conf";

impl Pg {
    /// Reads the setting, then the WAL position, then `pg_stat_replication`, in that order:
    /// every commit acknowledged before this setting took effect lies below `current`.
    pub async fn sync_rep_state(&self) -> anyhow::Result<SyncRepState> {
        if self.was_silent() {
            return Err(self.skipped_silent("reading synchronous replication"));
        }
        let client = self
            .client()
            .await
            .context("reading synchronous replication")?;
        let query = async {
            let ssn: String = client
                .query_one("SELECT current_setting('synchronous_standby_names')", &[])
                .await?
                .try_get(0)?;
            // The configuration files' value: the agent's own session runs with
            // synchronous_commit=local, so current_setting would say that.
            let synchronous_commit: String = client
                .query_one(
                    "SELECT coalesce((SELECT setting FROM pg_file_settings \
                       WHERE name = 'synchronous_commit' AND error IS NULL \
                       ORDER BY seqno DESC LIMIT 1), 'on')",
                    &[],
                )
                .await?
                .try_get(0)?;
            let current: String = client
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await?
                .try_get(0)?;
            let rows = client
                .query(
                    "SELECT coalesce(application_name, ''), coalesce(state, ''), \
                            coalesce(sync_state, ''), coalesce(flush_lsn::text, '0/0'), \
                            coalesce(write_lsn::text, '0/0'), coalesce(replay_lsn::text, '0/0') \
                     FROM pg_stat_replication",
                    &[],
                )
                .await?;
            Ok::<_, anyhow::Error>((ssn, synchronous_commit, current, rows))
        };
        let Ok(answer) = tokio::time::timeout(OBSERVE_TIMEOUT, query).await else {
            self.mark_silent();
            anyhow::bail!("reading synchronous replication timed out");
        };
        let (ssn, synchronous_commit, current, rows) = answer?;
        let lsn = |t: &str| -> anyhow::Result<Lsn> {
            t.parse::<Lsn>()
                .map_err(|e| anyhow::anyhow!("bad LSN {t:?}: {e}"))
        };
        let rows = rows
            .iter()
            .map(|r| {
                let state: String = r.try_get(1)?;
                let flush: String = r.try_get(3)?;
                let write: String = r.try_get(4)?;
                let replay: String = r.try_get(5)?;
                Ok(ReplicationRow {
                    application_name: r.try_get(0)?,
                    streaming: state == "streaming",
                    sync_state: r.try_get(2)?,
                    flush: lsn(&flush)?,
                    write: lsn(&write)?,
                    replay: lsn(&replay)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(SyncRepState {
            ssn,
            current: lsn(&current)?,
            rows,
            managed: self.sync_standbys_set().await?,
            synchronous_commit,
        })
    }

    /// Sets `synchronous_standby_names` in `postgresql.auto.conf` (`None`: removes it, so the
    /// configured parameters apply again) and reloads a running server. The file, not the
    /// managed `postgresql.conf`, because it must hold whatever else rewrites the
    /// configuration, across agent restarts and server restarts: a primary that restarts
    /// keeps waiting for the standbys the sync key names. It is what `ALTER SYSTEM` writes,
    /// so it works on a stopped server too (before a start as primary).
    pub async fn set_sync_standbys(&self, value: Option<&str>) -> anyhow::Result<()> {
        let value = value.map(str::to_owned);
        let running = self
            .on_disk_quick("setting synchronous_standby_names", move |pg| {
                let path = pg.data_dir().join(AUTO_CONF);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let updated = with_setting(&text, SSN, value.as_deref());
                pg.owner()?.write_file(&path, &updated, 0o600)?;
                Ok(crate::control::live_postmaster(pg.data_dir()).is_some())
            })
            .await?;
        if running {
            self.reload().await?;
        }
        Ok(())
    }

    /// Whether `postgresql.auto.conf` sets `synchronous_standby_names`.
    pub async fn sync_standbys_set(&self) -> anyhow::Result<bool> {
        self.on_disk_quick("reading postgresql.auto.conf", |pg| {
            Ok(std::fs::read_to_string(pg.data_dir().join(AUTO_CONF))
                .is_ok_and(|t| t.lines().any(|l| setting_name(l) == Some(SSN))))
        })
        .await
    }
}

/// The name a `name = value` line sets.
fn setting_name(line: &str) -> Option<&str> {
    let l = line.trim_start();
    if l.starts_with('#') {
        return None;
    }
    let end = l.find(|c: char| c == '=' || c.is_whitespace())?;
    Some(&l[..end])
}

/// `text` with every line setting `name` removed and, for `Some`, one line setting it added.
fn with_setting(text: &str, name: &str, value: Option<&str>) -> String {
    let mut out: String = text
        .lines()
        .filter(|l| setting_name(l) != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    if out.is_empty() {
        out.push_str("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n");
    }
    if let Some(v) = value {
        out.push_str(&format!("{name} = '{}'\n", v.replace('\'', "''")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_replaces_every_earlier_setting_and_none_removes_it() {
        let text = "# Do not edit\nwork_mem = '4MB'\nsynchronous_standby_names = 'a'\n";
        let set = with_setting(text, SSN, Some("FIRST 1 (\"n2\")"));
        assert_eq!(
            set,
            "# Do not edit\nwork_mem = '4MB'\nsynchronous_standby_names = 'FIRST 1 (\"n2\")'\n"
        );
        assert_eq!(
            with_setting(&set, SSN, None),
            "# Do not edit\nwork_mem = '4MB'\n"
        );
        assert!(
            with_setting("", SSN, Some("it's")).ends_with("synchronous_standby_names = 'it''s'\n")
        );
        assert_eq!(setting_name("  # synchronous_standby_names = 'x'"), None);
        assert_eq!(setting_name("synchronous_standby_names='x'"), Some(SSN));
    }
}
